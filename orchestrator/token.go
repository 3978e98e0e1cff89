package orchestrator

import (
	"encoding/json"
	"errors"
	"net/http"

	"byoc/ledger"
	"byoc/orchestrator/meter"
	"byoc/pm"
	"byoc/wire"
)

// handleToken issues a job token: the price, fresh ticket params for this
// sender (also at price 0, which go-livepeer gateways need), our service
// address, the free capacity and the sender's balance: the pool's in
// `balance` (what go-livepeer gateways read), or the job's when
// Livepeer-Job-Id names an open job of this sender; both also exactly in
// pool_balance / job_balance.
func (o *Orchestrator) handleToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		httpError(w, "Method not allowed", http.StatusMethodNotAllowed)
		return
	}
	header := r.Header.Get(wire.HeaderJobSender)
	if header == "" {
		httpError(w, "Must have eth address and signature on address in Livepeer-Eth-Address header", http.StatusBadRequest)
		return
	}
	sender, _, err := o.senders.sender(header)
	if err != nil {
		o.m.rejected.WithLabelValues("token", "bad_credentials").Inc()
		httpError(w, "Invalid eth address header: "+err.Error(), http.StatusBadRequest)
		return
	}
	capName := r.Header.Get(wire.HeaderCapability)
	if capName == "" {
		httpError(w, "Job capabilities not provided, must provide comma separated capabilities in Livepeer-Capability header", http.StatusBadRequest)
		return
	}
	ci, err := o.reg.info(capName)
	if err != nil {
		o.m.rejected.WithLabelValues("token", "unknown_capability").Inc()
		httpError(w, "Unknown capability "+capName, http.StatusNotFound)
		return
	}
	if ci.available == 0 && !o.streams.hasSender(sender.Hex(), capName) {
		// A sender with a running stream still gets tokens, to pay for it.
		o.m.rejected.WithLabelValues("token", "no_capacity").Inc()
		httpError(w, "No capacity available for capability "+capName, http.StatusServiceUnavailable)
		return
	}
	params, err := o.cfg.Recipient.TicketParams(sender, ci.price)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, pm.ErrInsufficientReserve) {
			status = http.StatusServiceUnavailable
		}
		httpError(w, "Could not get ticket params err="+err.Error(), status)
		return
	}
	price, err := pm.WirePrice(ci.price)
	if err != nil {
		httpError(w, "Could not get price err="+err.Error(), http.StatusInternalServerError)
		return
	}
	js := wire.JobSender{Addr: sender.Hex()}
	if sh, err := wire.DecodeJobSenderHeader(header); err == nil {
		js = *sh
	}
	tok := wire.JobToken{
		SenderAddress:     &js,
		TicketParams:      params.Wire(),
		Price:             price,
		ServiceAddr:       o.cfg.ServiceAddr,
		AvailableCapacity: int64(ci.available),
	}
	ctx := r.Context()
	// A remote signer's customer (Livepeer-Customer) reads its own pool.
	pk := meter.Pool{Sender: sender, Capability: capName, Customer: r.Header.Get(wire.HeaderCustomer)}
	pool := pk.Ref()
	if err := pool.Validate(); err != nil {
		httpError(w, "Invalid "+wire.HeaderCustomer+" header: "+err.Error(), http.StatusBadRequest)
		return
	}
	poolBal, err := o.cfg.Ledger.Balance(ctx, pool)
	if err != nil {
		httpError(w, "Could not read balance", http.StatusInternalServerError)
		return
	}
	tok.PoolBalance = poolBal.String()
	tok.Balance = wire.BalanceForToken(poolBal.Big())
	if id := r.Header.Get(wire.HeaderJobID); id != "" {
		if bal, ok := o.streamBalance(ctx, id, sender.Hex()); ok {
			// A running stream: its hold less what it owes (0 when it
			// owes more).
			bal = ledger.MaxOf(bal, ledger.Amount{})
			tok.JobBalance = bal.String()
			tok.Balance = wire.BalanceForToken(bal.Big())
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(tok)
			return
		}
		job, err := o.cfg.Ledger.Account(ctx, pk.Job(id).Ref())
		if err == nil && job.State == ledger.StateOpen && job.PoolRef == pool {
			tok.JobBalance = job.Balance.String()
			tok.Balance = wire.BalanceForToken(job.Balance.Big())
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(tok)
}
