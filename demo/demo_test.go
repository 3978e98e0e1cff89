package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"byoc/ledger"
)

// TestDemo runs the demo end to end and checks what it reports: every job
// succeeded, the money adds up per job, the prepaid job paid no tickets,
// and both ledgers verify.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	res, err := Run(context.Background(), Options{Out: &out})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Verified || len(res.Jobs) != 5 {
		t.Fatalf("verified %v, %d jobs", res.Verified, len(res.Jobs))
	}
	for _, j := range res.Jobs {
		// Each hold: paid + reserved = charged + released.
		if j.Paid.Add(j.Reserved).Cmp(j.Charged.Add(j.Released)) != 0 || j.Charged.Sign() <= 0 {
			t.Errorf("%s: paid %s + reserved %s ≠ charged %s + released %s", j.ID, j.Paid, j.Reserved, j.Charged, j.Released)
		}
	}
	if p := res.Jobs[1]; !p.Paid.IsZero() || p.Reserved.IsZero() {
		t.Errorf("the prepaid job paid %s and reserved %s; want no tickets, a reservation", p.Paid, p.Reserved)
	}
	if len(res.Streams) != 2 {
		t.Fatalf("%d streams", len(res.Streams))
	}
	short, long := res.Streams[0], res.Streams[1]
	if short.State != "lost" || short.Reason != "insufficient_balance" || short.Charged.Cmp(short.Paid) != 0 || !short.Released.IsZero() {
		t.Errorf("the stream that ran dry: %+v; want lost, insufficient_balance, all it paid charged", short)
	}
	if long.State != "stopped" || long.Reason != "stopped" || long.Released.Sign() <= 0 || long.Charged.Sign() <= 0 {
		t.Errorf("the stream that kept running: %+v; want stopped by the client, charged, the rest released", long)
	}
	for _, s := range res.Streams {
		if s.GatewayPaid.Cmp(s.Paid) != 0 || s.GatewayCharged.Cmp(s.Charged) != 0 {
			t.Errorf("%s: the gateway's books (paid %s, charged %s) differ from the orchestrator's (%s, %s)", s.ID, s.GatewayPaid, s.GatewayCharged, s.Paid, s.Charged)
		}
	}
	for _, want := range []string{"all invariants hold", "!coyb ,olleH", "Winners are queued, not redeemed",
		"2 tickets × 8 gwei expected value = 16 gwei", "max(30 s, 60 s) × 0.2 gwei/s = 12 gwei",
		"released by the two", `"token":"SSE"`, "--keep-running", `"smaerts ,olleh"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q", want)
		}
	}
}

// TestDemoChain runs the demo on the local chain: the same jobs, and every
// winning ticket redeemed on the test TicketBroker for its face value.
func TestDemoChain(t *testing.T) {
	var out bytes.Buffer
	res, err := Run(context.Background(), Options{Out: &out, Chain: true})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Verified || len(res.Jobs) != 5 || len(res.Winners) == 0 {
		t.Fatalf("verified %v, %d jobs, %d winners", res.Verified, len(res.Jobs), len(res.Winners))
	}
	for _, w := range res.Winners {
		if w.State != ledger.WinnerRedeemed || w.Payout == nil || w.Payout.Cmp(w.FaceValue) != 0 || w.TxHash == "" {
			t.Errorf("winner %s: %s, paid %v of %s, tx %q (%s)", w.Key, w.State, w.Payout, w.FaceValue, w.TxHash, w.LastError)
		}
	}
}

// TestDemoSigner runs the signer scenario: per customer, the signer's
// charges equal the orchestrator's credits; bob's budget cannot pay and
// only bob is refused, until a top-up; every ledger verifies.
func TestDemoSigner(t *testing.T) {
	var out bytes.Buffer
	res, err := RunSigner(context.Background(), Options{Out: &out})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Verified || len(res.Customers) != 2 {
		t.Fatalf("verified %v, %d customers", res.Verified, len(res.Customers))
	}
	alice, bob := res.Customers[0], res.Customers[1]
	if alice.Jobs != 3 || alice.Refused != 0 || bob.Jobs != 2 || bob.Refused != 1 {
		t.Errorf("alice %d/%d, bob %d/%d (jobs/refused)", alice.Jobs, alice.Refused, bob.Jobs, bob.Refused)
	}
	for _, c := range res.Customers {
		if c.Spent.Sign() <= 0 || c.Spent.Cmp(c.Credited) != 0 {
			t.Errorf("%s: signer charged %s, orchestrator credited %s", c.Name, c.Spent, c.Credited)
		}
	}
	if !strings.Contains(out.String(), "alert: bob has spent 80 % of 20 gwei") {
		t.Errorf("no 80 %% alert for bob")
	}
}
