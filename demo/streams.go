package demo

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"byoc/gateway"
	"byoc/internal/nodefiles"
	"byoc/ledger"
	"byoc/orchestrator"
	"byoc/trickle"
	"byoc/wire"
	"byoc/worker"
)

// streamPrice is the streams' price: 4 gwei per second, so that a ticket
// (8 gwei) buys 2 s and a stream paid for a few seconds runs dry soon.
const streamPrice = 4_000_000_000

// StreamReport is one stream of the demo as both ledgers saw it.
type StreamReport struct {
	ID                          string
	State                       string // at the gateway when it ended: stopped or lost
	Paid, Charged, Released     ledger.Amount
	GatewayPaid, GatewayCharged ledger.Amount
	Reason                      string // why the orchestrator closed its hold
}

// streams runs part 5: two streams of one sender on a second
// orchestrator and gateway with short timings (2 s minimum, a settlement
// every second, a 2 s grace, no top-ups), so that the stream paid for 2 s
// runs dry and is stopped alone while the one paid for 20 s keeps running
// and transforms what it is sent.
func (d *run) streams(ctx context.Context, dir string, logger *slog.Logger, wk *worker.Server) ([]StreamReport, error) {
	orch, err := orchestrator.StartNode(ctx, orchestrator.NodeConfig{
		Listen: "https://127.0.0.1:0", DataDir: filepath.Join(dir, "orchestrator-streams"),
		TicketEV: ticketEV, MaxFaceValue: maxFaceValue, SweepInterval: time.Second,
		Orchestrator: orchestrator.Config{Secret: secret, Logger: logger, MinCompute: 2 * time.Second,
			StreamSettleInterval: time.Second, StreamGrace: 2 * time.Second},
	})
	if err != nil {
		return nil, err
	}
	defer orch.Close()
	c := wk.Capability(worker.Reverse)
	c.Name, c.PricePerUnit, c.PriceScaling, c.Currency, c.Capacity = "live", streamPrice, 1, "wei", 4
	if err := worker.Register(ctx, orch.URL, secret, c, worker.InsecureSkipVerify()); err != nil {
		return nil, fmt.Errorf("register live: %w", err)
	}
	key, err := nodefiles.Key(filepath.Join(dir, "gateway"))
	if err != nil {
		return nil, err
	}
	gw, err := gateway.StartNode(ctx, gateway.NodeConfig{
		Listen: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway-streams"),
		Discovery: gateway.DiscoveryConfig{Static: []string{orch.URL}}, SweepInterval: time.Second,
		Gateway: gateway.Config{Signer: key, Logger: logger, MinCompute: 2 * time.Second, StreamPayInterval: time.Hour},
	})
	if err != nil {
		return nil, err
	}
	defer gw.Close()
	defer gw.CloseIdleConnections()

	start := func(id string, timeout int) (http.Header, error) {
		hdr, _ := json.Marshal(wire.JobRequest{Request: "{}", Capability: "live", TimeoutSeconds: timeout,
			Parameters: `{"enable_video_ingress":true,"enable_video_egress":true}`})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw.URL+"/process/stream/start",
			strings.NewReader(fmt.Sprintf(`{"stream_id":%q,"params":"{}"}`, id)))
		req.Header.Set(wire.HeaderJobRequest, base64.StdEncoding.EncodeToString(hdr))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("start %s: %d", id, resp.StatusCode)
		}
		if st := gw.StreamState(ctx, id); st != "running" {
			return nil, fmt.Errorf("start %s: %s", id, st)
		}
		return resp.Header, nil
	}
	long, err := start("demo-long", 20)
	if err != nil {
		return nil, err
	}
	if _, err := start("demo-short", 2); err != nil {
		return nil, err
	}
	fmt.Fprintf(d.out, "   demo-long paid for 20 s, demo-short for 2 s (one ticket), at %s gwei/s; the orchestrator settles every second, 2 s grace\n", gwei(ledger.Wei(streamPrice)))

	client := trickle.NewHTTPClient(false)
	defer client.CloseIdleConnections() // else the gateway's shutdown waits for them
	pub, _ := trickle.NewPublisher(trickle.PublisherConfig{URL: long.Get(wire.HeaderPublishURL), Client: client})
	sub, _ := trickle.NewSubscriber(trickle.SubscriberConfig{URL: long.Get(wire.HeaderSubscribeURL), Client: client})
	if _, _, err := pub.Write(ctx, strings.NewReader("hello, streams")); err != nil {
		return nil, fmt.Errorf("publish to demo-long: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	seg, err := sub.Read(rctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("read demo-long's output: %w", err)
	}
	out, _ := io.ReadAll(seg.Body)
	seg.Body.Close()
	pub.Close(ctx)
	fmt.Fprintf(d.out, "   demo-long: sent %q through the gateway's trickle channel, the worker sent back %q\n", "hello, streams", out)

	// demo-short runs dry at about 3 s and is stopped at the first
	// settlement past its grace: wait for the gateway to see it.
	deadline := time.Now().Add(20 * time.Second)
	for gwState(gw, "demo-short") != "lost" {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("demo-short did not run dry")
		}
		time.Sleep(100 * time.Millisecond)
	}
	open, err := orch.Streams(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range open {
		fmt.Fprintf(d.out, "   still running at the orchestrator: %s, %s gwei left\n", s.ID, gwei(s.Balance))
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw.URL+"/process/stream/demo-long/stop", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	var reps []StreamReport
	for _, id := range []string{"demo-short", "demo-long"} {
		r := StreamReport{ID: id, State: "stopped"}
		if id == "demo-short" {
			r.State = "lost"
		}
		st, err := orch.Ledger.Statement(ctx, ledger.JobKey{Sender: d.sender, JobID: id}.Ref(), 0)
		if err != nil {
			return nil, err
		}
		r.Paid, r.Charged, r.Released = st.Credited, st.Charged, st.Released
		for _, e := range st.Entries {
			if k := e.Key; strings.HasPrefix(k, "stream-end:") {
				if p := strings.Split(k, ":"); len(p) == 4 {
					r.Reason = p[2]
				}
			}
		}
		gs, err := gw.Ledger.Statement(ctx, ledger.JobKey{Sender: orch.Address.Hex(), JobID: "~stream-" + id}.Ref(), 0)
		if err != nil {
			return nil, err
		}
		r.GatewayPaid, r.GatewayCharged = gs.Credited, gs.Charged
		fmt.Fprintf(d.out, "   stream %-10s %-7s orchestrator: paid %s, charged %s, released %s gwei (%s); gateway's books: paid %s, charged %s gwei\n",
			id, r.State, gwei(r.Paid), gwei(r.Charged), gwei(r.Released), r.Reason, gwei(r.GatewayPaid), gwei(r.GatewayCharged))
		reps = append(reps, r)
	}
	gw.CloseIdleConnections()
	client.CloseIdleConnections()
	for _, side := range []struct {
		name  string
		l     *ledger.Ledger
		store ledger.Store
	}{{"orchestrator-streams", orch.Ledger, orch.Store}, {"gateway-streams", gw.Ledger, gw.Store}} {
		rep, err := ledger.Verify(ctx, side.store, ledger.VerifyOptions{Now: side.l.Now(), StaleAfter: time.Minute})
		if err != nil {
			return nil, err
		}
		if !rep.OK() {
			return reps, fmt.Errorf("ledger verify (%s): %s", side.name, strings.Join(rep.Problems, "; "))
		}
		fmt.Fprintf(d.out, "   ledger verify (%s): all invariants hold\n", side.name)
	}
	return reps, nil
}

// gwState is a stream's state at the gateway, without waiting.
func gwState(gw *gateway.Node, id string) string {
	for _, s := range gw.Streams() {
		if s.ID == id {
			return s.State
		}
	}
	return ""
}
