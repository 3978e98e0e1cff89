package orchestrator_test

import (
	"byoc/internal/testnet"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"byoc/internal/workerstub"
	"byoc/ledger"
	"byoc/orchestrator"
	"byoc/wire"
)

var (
	hostileRounds = flag.Int("hostile.rounds", 400, "requests TestHostileInputs sends (raise for a longer run)")
	hostileSeed   = flag.Uint64("hostile.seed", 0, "seed of TestHostileInputs (0: from the clock)")
)

// TestHostileInputs throws malformed, mutated, replayed and forged requests
// at a live orchestrator while honest jobs run, then checks that nothing
// answered 5xx or hung, every honest job went through, and the ledger holds
// exactly what the honest payments paid minus what their jobs used: bad
// input moved no money.
func TestHostileInputs(t *testing.T) {
	n := testnet.StartNode(t, t.TempDir(), func(c *orchestrator.NodeConfig) { c.Orchestrator.MaxBodyBytes = 4096 })
	w := testnet.StartWorker(t)
	testnet.Register(t, n.URL, w, workerstub.Reverse, "reverse", 1000, 8)
	honest, mallory := testnet.NewClient(t, n.URL, testnet.KeyA), testnet.NewClient(t, n.URL, testnet.KeyB)
	seed := *hostileSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)

	// Material to mutate: a real signed job header and real payments.
	tok := honest.Token("reverse", "") // for the setup payment; later payments take fresh tokens (sessions cap nonces)
	goodReq := &wire.JobRequest{ID: "template", Request: "{}", Parameters: "{}", Capability: "reverse", TimeoutSeconds: 30}
	wire.Bind(goodReq, time.Now().Add(time.Hour))
	wire.SignJobRequest(honest.Signer, goodReq)
	goodHeader, _ := wire.EncodeJobRequestHeader(goodReq)
	spent := honest.Pay(tok, 6)
	if r := honest.Job(testnet.JobSpec{Capability: "reverse", ID: "spent", Body: "x", Payment: spent}); r.Status != 200 {
		t.Fatalf("setup job: %d %s", r.Status, r.Body)
	}

	mutate := func(s string) string {
		b := []byte(s)
		switch rng.IntN(5) {
		case 0: // flip a byte
			if len(b) > 0 {
				b[rng.IntN(len(b))] ^= byte(1 << rng.IntN(8))
			}
		case 1: // truncate
			b = b[:rng.IntN(len(b)+1)]
		case 2: // duplicate a slice
			i := rng.IntN(len(b) + 1)
			b = append(b[:i], append(append([]byte(nil), b[i:]...), b[i:]...)...)
		case 3: // random bytes
			b = make([]byte, rng.IntN(200))
			for i := range b {
				b[i] = byte(rng.IntN(256))
			}
		case 4: // valid base64 of mutated JSON
			raw, err := base64.StdEncoding.DecodeString(s)
			if err == nil && len(raw) > 0 {
				raw[rng.IntN(len(raw))] = "{}[]\":,0x-9e"[rng.IntN(12)]
				return base64.StdEncoding.EncodeToString(raw)
			}
		}
		return string(b)
	}
	// Header values: bytes net/http refuses to send become 'A'.
	mutateHeader := func(s string) string {
		b := []byte(mutate(s))
		for i, c := range b {
			if c < 0x20 || c == 0x7f {
				b[i] = 'A'
			}
		}
		return string(b)
	}

	kinds := map[string]int{}
	credited, okJobs := int64(6000), int64(1) // the setup job: 6 tickets, one second used
	templateRuns := 0
	creditedNow := func() int64 {
		r, err := ledger.Verify(t.Context(), n.Store, ledger.VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return testnet.Amount(r.Credited)
	}
	for i := range *hostileRounds {
		var r testnet.JobResult
		switch k := rng.IntN(9); k {
		case 0:
			kinds["mutated job header"]++
			r = mallory.Job(testnet.JobSpec{Capability: "reverse", ID: fmt.Sprint("h", i), Body: "x", Header: map[string]string{wire.HeaderJobRequest: mutateHeader(goodHeader)}})
			switch {
			case r.Status == http.StatusServiceUnavailable && strings.Contains(r.Body, "No capacity"):
				r.Status = 0 // the mutation renamed the capability: unknown here, 503 so a gateway tries elsewhere
			case r.Status == http.StatusOK:
				// The mutation left the honest, bound header intact: it runs
				// the job it names, once; every later copy is refused.
				if templateRuns++; templateRuns > 1 {
					t.Fatalf("round %d: the captured job header ran twice", i)
				}
				okJobs++
			}
		case 1:
			kinds["mutated payment"]++
			r = honest.Job(testnet.JobSpec{Capability: "reverse", ID: fmt.Sprint("p", i), Body: "x", Payment: mutateHeader(honest.Pay(honest.Token("reverse", ""), 1+rng.IntN(3)))})
			// A mutation may leave some genuinely signed tickets intact;
			// those are the honest sender's money and may be credited.
			credited = creditedNow()
			if r.Status == http.StatusOK {
				okJobs++
			}
		case 2:
			kinds["replayed payment"]++
			r = honest.Job(testnet.JobSpec{Capability: "reverse", ID: fmt.Sprint("r", i), Body: "x", Payment: spent})
		case 3:
			kinds["forged tickets"]++
			r = honest.Job(testnet.JobSpec{Capability: "reverse", ID: fmt.Sprint("f", i), Body: "x", Payment: tamper(t, honest.Pay(honest.Token("reverse", ""), 3))})
		case 4:
			kinds["stolen payment"]++
			r = mallory.Job(testnet.JobSpec{Capability: "reverse", ID: fmt.Sprint("s", i), Body: "x", Payment: honest.Pay(honest.Token("reverse", ""), 6)})
		case 5:
			kinds["oversized body"]++
			r = honest.Job(testnet.JobSpec{Capability: "reverse", ID: fmt.Sprint("b", i), Body: strings.Repeat("z", 5000+rng.IntN(5000))})
		case 6:
			kinds["mutated sender header"]++
			js, _ := wire.NewJobSender(honest.Signer)
			h, _ := wire.EncodeJobSenderHeader(js)
			req, _ := http.NewRequest(http.MethodGet, n.URL+"/process/token", nil)
			req.Header.Set(wire.HeaderJobSender, mutateHeader(h))
			req.Header.Set(wire.HeaderCapability, "reverse")
			resp, err := testnet.Insecure.Do(req)
			if err != nil {
				t.Fatalf("token: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			r = testnet.JobResult{Status: resp.StatusCode}
		case 7:
			kinds["absurd numbers"]++
			r = honest.Job(testnet.JobSpec{Capability: "reverse", ID: fmt.Sprint("n", i), Body: "x",
				Edit: func(q *wire.JobRequest) { q.TimeoutSeconds = []int{-1, 1 << 40, -(1 << 40)}[rng.IntN(3)] }})
		case 8:
			kinds["honest job"]++
			r = honest.Job(testnet.JobSpec{Capability: "reverse", ID: fmt.Sprint("ok", i), Body: "x", Payment: honest.Pay(honest.Token("reverse", ""), 2)})
			if r.Status != http.StatusOK {
				t.Fatalf("honest job %d refused: %d %s", i, r.Status, r.Body)
			}
			credited += 2000
			okJobs++
		}
		if r.Err != nil || r.Status >= 500 {
			t.Fatalf("round %d: %d %v %s", i, r.Status, r.Err, r.Body)
		}
	}
	kinds["slow client"] += slowClients(t, n.URL)

	rep := testnet.Verify(t, n)
	if testnet.Amount(rep.Credited) != credited || testnet.Amount(rep.Charged) != 1000*okJobs || rep.OpenJobs != 0 {
		t.Errorf("credited %s (want %d), charged %s (want %d for %d jobs), open jobs %d",
			rep.Credited, credited, rep.Charged, 1000*okJobs, okJobs, rep.OpenJobs)
	}
	if got := testnet.Balance(t, n, testnet.Pool(honest.Addr(), "reverse")); got != credited-1000*okJobs || testnet.Balance(t, n, testnet.Pool(mallory.Addr(), "reverse")) != 0 {
		t.Errorf("honest pool %d, want %d; mallory's pool %d", got, credited-1000*okJobs, testnet.Balance(t, n, testnet.Pool(mallory.Addr(), "reverse")))
	}
	t.Logf("hostile inputs: %v; %d ledger entries, invariants hold, money lost 0", kinds, rep.Entries)
}

// slowClients opens connections that trickle a request header and never
// finish it; the orchestrator must drop them and keep serving.
func slowClients(t *testing.T, base string) int {
	host := strings.TrimPrefix(base, "https://")
	const n = 20
	var conns []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", host, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{0x16, 0x03, 0x01}) // the start of a TLS hello, then nothing
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// The node still answers promptly.
	resp, err := testnet.Insecure.Get(base + "/process/token")
	if err != nil {
		t.Fatalf("node unresponsive with slow clients: %v", err)
	}
	resp.Body.Close()
	return n
}
