package signer

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"byoc/ledger"
	"byoc/ledger/ledgertest"
	"byoc/pm"
	"byoc/wire"
)

// The signer's throughput: signed payments per second (one ticket each)
// through the /generate-live-payment handler, with 1 and 16 concurrent
// clients, without a ledger and with every payment charged to a budget in
// SQLite or PostgreSQL; beside it the baseline of the same run, a bare
// local-key ticket batch (pm.Sender.CreateTicketBatch, one ticket), which
// is what a gateway holding its own key does per payment.
//
//	go test -run '^$' -bench Signer -benchtime 2s ./signer
func BenchmarkSigner(b *testing.B) {
	rc := loadRecorded(b)
	b.Run("baseline=local-key", func(b *testing.B) {
		for _, clients := range []int{1, 16} {
			b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
				snd := pm.NewSender(pm.SenderConfig{Signer: rc.key, MaxNonces: 1 << 31})
				id, err := snd.StartSession(rc.info.TicketParams, rc.info.PriceInfo)
				if err != nil {
					b.Fatal(err)
				}
				parallel(b, clients, func() {
					if _, err := snd.CreateTicketBatch(id, 1); err != nil {
						b.Error(err)
					}
				})
			})
		}
	})
	for _, store := range []struct {
		name   string
		f      ledgertest.Factory
		shared bool
	}{{"memory", nil, false}, {"sqlite", ledgertest.SQLite, false}, {"postgres", ledgertest.Postgres, false},
		{"postgres+shared-nonces", ledgertest.Postgres, true}} {
		b.Run("signer="+store.name, func(b *testing.B) {
			for _, clients := range []int{1, 16} {
				b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
					benchSigner(b, rc, store.f, store.shared, clients)
				})
			}
		})
	}
}

func benchSigner(b *testing.B, rc *recorded, f ledgertest.Factory, shared bool, clients int) {
	var budget Budget
	var nonces Nonces
	if f != nil {
		env := ledgertest.NewEnv(b, f)
		bg := &Budgets{Ledger: env.Ledger, Owner: rc.key.Address().Hex()}
		if _, err := bg.Grant(env.Ctx, "bench", ledger.MustParseAmount("1000000000000000000000000"), "g"); err != nil {
			b.Fatal(err)
		}
		budget = bg
		if shared {
			nonces = &LedgerNonces{Ledger: env.Ledger, Owner: rc.key.Address().Hex()}
		}
	}
	s, _ := newTestSigner(b, rc, func(c *Config) { c.Budget, c.Nonces = budget, nonces })
	h := s.Handler()
	// A fresh recipientRandHash every 500 payments keeps each ticket
	// session below the recipient's 600-nonce cap.
	var (
		mu     sync.Mutex
		bodies = map[int64]string{}
		n      atomic.Int64
	)
	body := func() string {
		i := n.Add(1) / 500
		mu.Lock()
		defer mu.Unlock()
		if s, ok := bodies[i]; ok {
			return s
		}
		info := new(wire.OrchestratorInfo)
		info.Unmarshal(rc.info.Marshal())
		rand.Read(info.TicketParams.RecipientRandHash)
		bodies[i] = `{"orchestrator":"` + b64(info.Marshal()) + `","inPixels":1}`
		return bodies[i]
	}
	parallel(b, clients, func() {
		req := httptest.NewRequest(http.MethodPost, "/generate-live-payment", strings.NewReader(body()))
		req.Header.Set(HeaderAuthID, "bench")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Errorf("%d %s", w.Code, w.Body)
		}
	})
}

// parallel runs fn b.N times from clients goroutines and reports payments/s.
func parallel(b *testing.B, clients int, fn func()) {
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	b.ResetTimer()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				fn()
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payments/s")
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
