package gateway

import (
	"math/big"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"byoc/ledger"
)

// Metrics are the gateway's Prometheus metrics. Wei totals are float64
// counters: fine for dashboards, not for accounting (the books are exact;
// `byoc ledger` reads them).
type Metrics struct {
	reg *prometheus.Registry

	jobs             *prometheus.CounterVec
	attempts         *prometheus.CounterVec
	inflight         prometheus.Gauge
	tickets          prometheus.Counter
	paidWei          prometheus.Counter
	chargedWei       prometheus.Counter
	jobSeconds       *prometheus.HistogramVec
	tokenSeconds     prometheus.Histogram
	selectionSeconds prometheus.Histogram
	reconciled       *prometheus.CounterVec
	discrepancyWei   *prometheus.CounterVec
	writtenDownWei   prometheus.Counter
	overcharges      *prometheus.CounterVec
	overchargeWei    *prometheus.CounterVec
	booksErrors      prometheus.Counter
	topUpsUncredited *prometheus.CounterVec
}

// NewMetrics returns the metrics on a registry of their own (with the Go
// runtime and process collectors).
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	latency := prometheus.ExponentialBuckets(0.0002, 2, 16) // 0.2 ms … 6.5 s
	m.jobs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "byoc_gateway_jobs_total",
		Help: "Client jobs by capability and outcome: ok, relayed_error (a final 4xx/5xx from the orchestrator or worker), bad_request, no_orchestrator, failed (every orchestrator tried failed), timeout (no answer within timeout_seconds + the job margin: 504), client_gone, internal."},
		[]string{"capability", "outcome"})
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "byoc_gateway_orchestrator_attempts_total",
		Help: "Token requests and job requests per orchestrator, by stage (token, payment, job) and outcome."},
		[]string{"orchestrator", "stage", "outcome"})
	m.inflight = prometheus.NewGauge(prometheus.GaugeOpts{Name: "byoc_gateway_jobs_in_flight", Help: "Client jobs being handled now."})
	m.tickets = prometheus.NewCounter(prometheus.CounterOpts{Name: "byoc_gateway_tickets_sent_total", Help: "PM tickets sent to orchestrators."})
	m.paidWei = prometheus.NewCounter(prometheus.CounterOpts{Name: "byoc_gateway_paid_wei_total",
		Help: "Wei paid in tickets and credited by orchestrators, as booked (expected value, floored per ticket; approximate: float64)."})
	m.chargedWei = prometheus.NewCounter(prometheus.CounterOpts{Name: "byoc_gateway_charged_wei_total",
		Help: "Wei orchestrators charged for compute, as booked (approximate: float64)."})
	m.jobSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "byoc_gateway_job_seconds",
		Help: "Time from a client's request to the end of its answer.", Buckets: latency}, []string{"capability"})
	m.tokenSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "byoc_gateway_token_seconds",
		Help: "Time an orchestrator took to answer a token request.", Buckets: latency})
	m.selectionSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "byoc_gateway_selection_seconds",
		Help: "Time spent collecting tokens for one job.", Buckets: latency})
	m.reconciled = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "byoc_gateway_books_comparisons_total",
		Help: "Comparisons of the books with an orchestrator's reported pool, by result: agree, orchestrator_higher, orchestrator_lower."},
		[]string{"result"})
	m.discrepancyWei = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "byoc_gateway_books_discrepancy_wei_total",
		Help: "Sum of the differences found by those comparisons, by direction (approximate: float64)."}, []string{"direction"})
	m.writtenDownWei = prometheus.NewCounter(prometheus.CounterOpts{Name: "byoc_gateway_books_written_down_wei_total",
		Help: "Confirmed shortfalls taken off the books' pools (approximate: float64)."})
	m.overcharges = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "byoc_gateway_overcharge_claims_total",
		Help: "Jobs an orchestrator claimed to charge more than the job held and was paid; the books took only that."}, []string{"orchestrator"})
	m.overchargeWei = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "byoc_gateway_overcharge_claimed_wei_total",
		Help: "What those claims exceeded the jobs' holds by, not booked (approximate: float64)."}, []string{"orchestrator"})
	m.booksErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "byoc_gateway_books_errors_total",
		Help: "Ledger operations of the gateway's books that failed."})
	m.topUpsUncredited = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "byoc_gateway_stream_topups_uncredited_total",
		Help: "Stream top-ups whose tickets the orchestrator credited nothing for (Livepeer-Payment-Credited: 0), per orchestrator."}, []string{"orchestrator"})
	// Series with known labels exist from the start, at zero.
	for _, r := range []string{"agree", "orchestrator_higher", "orchestrator_lower"} {
		m.reconciled.WithLabelValues(r)
		if r != "agree" {
			m.discrepancyWei.WithLabelValues(r)
		}
	}
	m.reg.MustRegister(m.jobs, m.attempts, m.inflight, m.tickets, m.paidWei, m.chargedWei, m.jobSeconds, m.tokenSeconds,
		m.selectionSeconds, m.reconciled, m.discrepancyWei, m.writtenDownWei, m.overcharges, m.overchargeWei, m.booksErrors,
		m.topUpsUncredited,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

// Registry is where the metrics are registered.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func approx(a ledger.Amount) float64 {
	f, _ := new(big.Float).SetInt(a.Big()).Float64()
	return f
}
