package signer

import (
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/pm"
	"byoc/pmledger"
	"byoc/wire"
)

// TestSignBYOCJob: the job request comes back bound (its ID, capability,
// timeout and the customer the webhook or header named — the webhook's
// auth_id wins) and signed by the signer's key.
func TestSignBYOCJob(t *testing.T) {
	rc := loadRecorded(t)
	env := ledgertest.NewEnv(t, ledgertest.SQLite)
	b := &Budgets{Ledger: env.Ledger, Owner: rc.key.Address().Hex()}
	hk := newHook(t)
	s, clk := newTestSigner(t, rc, func(c *Config) { c.Budget = b; c.Webhook = &Webhook{URL: hk.srv.URL} })
	h := s.Handler()
	b.Grant(env.Ctx, "acme:alice", ledger.Wei(1000), "g")
	hk.set(0, `{"status":200,"auth_id":"acme:alice"}`)
	job := `{"id":"job-1","request":"{}","parameters":"{\"x\":1}","capability":"echo","timeout_seconds":30,"sender":"0xforged","sig":"0xforged"}`
	code, body, _ := post(t, h, "/sign-byoc-job", job, HeaderAuthID, "acme:bob")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var r wire.SignBYOCJobResponse
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	addr, err := wire.VerifyJobSig(r.Request.Sender, &r.Request)
	if err != nil || addr != rc.key.Address() {
		t.Fatalf("signature: %v %v", addr, err)
	}
	bind, err := r.Request.Binding()
	if err != nil || bind == nil || bind.Customer != "acme:alice" || bind.ID != "job-1" || bind.Capability != "echo" || r.Customer != "acme:alice" {
		t.Errorf("binding %+v (%v), customer %q", bind, err, r.Customer)
	}
	if bound, err := r.Request.CheckBinding(clk.Now()); !bound || err != nil {
		t.Errorf("binding check: %v %v", bound, err)
	}
	if !strings.Contains(r.Request.Parameters, `"x":1`) {
		t.Errorf("parameters lost: %s", r.Request.Parameters)
	}
	// Bob has no budget, but signing a job moves no money: signed, for bob.
	hk.set(0, `{"status":200,"auth_id":"acme:bob"}`)
	if code, body, _ := post(t, h, "/sign-byoc-job", job); code != 200 || !strings.Contains(body, `"customer":"acme:bob"`) {
		t.Errorf("bob: %d %s", code, body)
	}
	for _, bad := range []string{`{`, `{"id":"","capability":"echo","timeout_seconds":1}`, `{"id":"j","capability":"echo","timeout_seconds":1,"parameters":"[1]"}`} {
		hk.set(0, `{"status":200,"auth_id":"acme:alice"}`)
		if code, body, _ := post(t, h, "/sign-byoc-job", bad); code != 400 {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}
}

// TestGenerateBYOCPayment: a payment worth at least the amount, from the
// token's params, which a recipient with the orchestrator's secret accepts
// ticket for ticket, crediting exactly the credits the answer lists; the
// budget is charged that; over budget is 483 with no nonce spent.
func TestGenerateBYOCPayment(t *testing.T) {
	rc := loadRecorded(t)
	everyStore(t, func(t *testing.T, env *ledgertest.Env) {
		b := &Budgets{Ledger: env.Ledger, Owner: rc.key.Address().Hex(), Events: true}
		s, _ := newTestSigner(t, rc, func(c *Config) { c.Budget = b })
		h := s.Handler()
		b.Grant(env.Ctx, "carl", costOf(t, 3), "g")
		req := func(amount string) string {
			m := map[string]any{"ticket_params": base64.StdEncoding.EncodeToString(rc.info.TicketParams.Marshal()),
				"price": base64.StdEncoding.EncodeToString(rc.info.PriceInfo.Marshal()), "amount": amount,
				"capability": "echo", "job_id": "job-7", "orchestrator": "https://o:8935"}
			out, _ := json.Marshal(m)
			return string(out)
		}
		code, body, _ := post(t, h, "/generate-byoc-payment", req("20000000000"), HeaderAuthID, "carl") // 2.5 tickets → 3
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var r wire.BYOCPaymentResponse
		json.Unmarshal([]byte(body), &r)
		p, err := wire.DecodePaymentHeader(r.Payment)
		if err != nil {
			t.Fatal(err)
		}
		var secret [pm.SecretLength]byte
		for i := range secret {
			secret[i] = byte(i + 1)
		}
		rcp, err := pm.NewRecipient(pm.RecipientConfig{Address: common.BytesToAddress(rc.info.TicketParams.Recipient), Secret: secret,
			Blocks: &pm.StaticBlocks{Block: big.NewInt(20_000_000), Round: 3500}})
		if err != nil {
			t.Fatal(err)
		}
		v, err := rcp.Validate(p, big.NewRat(2000, 3))
		if err != nil {
			t.Fatalf("the orchestrator would refuse the payment: %v", err)
		}
		if len(v.Tickets) != 3 || len(r.Credits) != 3 || r.Customer != "carl" || p.TicketParams.ExpirationParams == nil {
			t.Fatalf("%d tickets, credits %+v, customer %q", len(v.Tickets), r.Credits, r.Customer)
		}
		for i, tr := range v.Tickets {
			if tr.Err != nil || r.Credits[i].Key != pmledger.TicketKey(tr.TicketHash) || r.Credits[i].Amount != ledger.CreditFor(tr.EV).String() {
				t.Errorf("ticket %d: %+v, credit %+v", i, tr, r.Credits[i])
			}
		}
		if v, _ := b.Read(env.Ctx, "carl"); !v.Balance.IsZero() {
			t.Errorf("budget %+v", v)
		}
		if code, body, _ := post(t, h, "/generate-byoc-payment", req("1"), HeaderAuthID, "carl"); code != 483 {
			t.Errorf("over budget: %d %s", code, body)
		}
		b.Grant(env.Ctx, "carl", costOf(t, 1), "g2")
		code, body, _ = post(t, h, "/generate-byoc-payment", req("1"), HeaderAuthID, "carl")
		var r2 wire.BYOCPaymentResponse
		json.Unmarshal([]byte(body), &r2)
		if p2, err := wire.DecodePaymentHeader(r2.Payment); code != 200 || err != nil || len(p2.TicketSenderParams) != 1 || p2.TicketSenderParams[0].SenderNonce != 4 {
			t.Errorf("after a top-up: %d %s", code, body)
		}
		for _, bad := range []string{`{`, req("0"), req("-5"), strings.Replace(req("1"), `"job_id":"job-7"`, `"job_id":""`, 1),
			`{"ticket_params":"","price":"CNAPEAM=","amount":"1","capability":"c","job_id":"j"}`} {
			if code, body, _ := post(t, h, "/generate-byoc-payment", bad, HeaderAuthID, "carl"); code != 400 {
				t.Errorf("%.60s: %d %s", bad, code, body)
			}
		}
	})
}
