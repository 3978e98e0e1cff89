package orchestrator

import (
	"math/big"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"byoc/ledger"
)

// Metrics are the orchestrator's Prometheus metrics. Wei totals are
// float64 counters: fine for dashboards, not for accounting (the ledger is
// exact; `byoc ledger` reads it).
type Metrics struct {
	reg *prometheus.Registry

	jobs          *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	openJobs      prometheus.Gauge
	creditedWei   prometheus.Counter
	chargedWei    prometheus.Counter
	tickets       *prometheus.CounterVec
	workerSeconds *prometheus.HistogramVec
	capabilities  prometheus.Gauge

	openStreams    prometheus.Gauge
	streamsStopped *prometheus.CounterVec
	settleSeconds  prometheus.Histogram
}

// NewMetrics returns the metrics on a registry of their own (with the Go
// runtime and process collectors).
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.jobs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "byoc_orchestrator_jobs_total",
		Help: "Jobs that reached a worker or were refused after admission, by capability and outcome."}, []string{"capability", "outcome"})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "byoc_orchestrator_rejected_total",
		Help: "Requests refused before a worker was called, by endpoint (job, token, register, unregister) and reason."}, []string{"endpoint", "reason"})
	m.openJobs = prometheus.NewGauge(prometheus.GaugeOpts{Name: "byoc_orchestrator_open_holds",
		Help: "Jobs running now, each with an open hold in the ledger."})
	m.creditedWei = prometheus.NewCounter(prometheus.CounterOpts{Name: "byoc_orchestrator_credited_wei_total",
		Help: "Wei credited from PM tickets (approximate: float64)."})
	m.chargedWei = prometheus.NewCounter(prometheus.CounterOpts{Name: "byoc_orchestrator_charged_wei_total",
		Help: "Wei charged for compute (approximate: float64)."})
	m.tickets = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "byoc_orchestrator_tickets_total",
		Help: "PM tickets received, by result: credited, rejected, won."}, []string{"result"})
	m.workerSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "byoc_orchestrator_worker_seconds",
		Help: "Time from forwarding a job to the worker until its response ended.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)},
		[]string{"capability"})
	m.capabilities = prometheus.NewGauge(prometheus.GaugeOpts{Name: "byoc_orchestrator_capabilities",
		Help: "Capabilities with at least one registered worker."})
	m.openStreams = prometheus.NewGauge(prometheus.GaugeOpts{Name: "byoc_orchestrator_open_streams",
		Help: "Streams running now, each with an open hold in the ledger."})
	m.streamsStopped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "byoc_orchestrator_streams_stopped_total",
		Help: "Streams stopped, by reason (stopped, insufficient_balance, start_failed, hold_expired)."}, []string{"reason"})
	m.settleSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "byoc_orchestrator_stream_settle_seconds",
		Help: "Time one batch settlement of every stream took (the billing lag).", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)})
	m.reg.MustRegister(m.openStreams, m.streamsStopped, m.settleSeconds)
	// Series with known labels exist from the start, at zero, so that a
	// rate or an alert sees the first refusal.
	for endpoint, reasons := range rejectReasons {
		for _, reason := range reasons {
			m.rejected.WithLabelValues(endpoint, reason)
		}
	}
	for _, result := range []string{"credited", "rejected", "won"} {
		m.tickets.WithLabelValues(result)
	}
	m.reg.MustRegister(m.jobs, m.rejected, m.openJobs, m.creditedWei, m.chargedWei, m.tickets, m.workerSeconds, m.capabilities,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// rejectReasons are the reasons byoc_orchestrator_rejected_total counts,
// by endpoint.
var rejectReasons = map[string][]string{
	"job": {"bad_path", "bad_request", "bad_credentials", "bad_binding", "unbound", "bad_payment",
		"body_too_large", "body_timeout", "bad_body", "no_capacity", "unsigned", "too_many_jobs"},
	"token": {"bad_credentials", "unknown_capability", "no_capacity"},
	"stream": {"bad_request", "bad_credentials", "bad_binding", "bad_payment", "bad_stream_id", "bad_body",
		"no_capacity", "unsigned", "stream_exists", "unknown_stream"},
	"register":   {"method_not_allowed", "bad_secret", "body_too_large", "body_timeout", "bad_body", "bad_request", "bad_price"},
	"unregister": {"method_not_allowed", "bad_secret", "body_too_large", "body_timeout", "bad_body"},
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

// Registry is where the metrics are registered.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// meterMetrics reports the meter's money outcomes in the metrics.
type meterMetrics struct{ m *Metrics }

func (r meterMetrics) PaymentRefused(n int) { r.m.tickets.WithLabelValues("rejected").Add(float64(n)) }

func (r meterMetrics) PaymentRecorded(n int, res ledger.PaymentResult) {
	credited := res.Tickets - res.Replayed
	r.m.tickets.WithLabelValues("credited").Add(float64(credited))
	r.m.tickets.WithLabelValues("rejected").Add(float64(n - credited))
	r.m.tickets.WithLabelValues("won").Add(float64(res.Winners))
	r.m.creditedWei.Add(approx(res.Credited))
}

func (r meterMetrics) Charged(a ledger.Amount) { r.m.chargedWei.Add(approx(a)) }

func approx(a ledger.Amount) float64 {
	f, _ := new(big.Float).SetInt(a.Big()).Float64()
	return f
}
