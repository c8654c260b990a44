package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus series. Labels hold fixed codes only
// (RPC names, reason codes), never ids, users or tokens, so cardinality stays
// bounded.
type metrics struct {
	created          *prometheus.CounterVec
	revoked          prometheus.Counter
	denied           *prometheus.CounterVec
	deniedSuppressed prometheus.Counter
	watchers         prometheus.Gauge
	issuances        prometheus.Counter
	auditPruned      prometheus.Counter
	storeErrors      prometheus.Counter
	requests         *prometheus.CounterVec
	latency          *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		created: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentid_delegations_created_total", Help: "Delegations created, by kind (root, sub).",
		}, []string{"kind"}),
		revoked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentid_delegations_revoked_total", Help: "Delegations revoked, cascades included.",
		}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentid_requests_denied_total", Help: "Requests refused, by RPC and reason code.",
		}, []string{"rpc", "reason"}),
		deniedSuppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentid_denied_audit_events_suppressed_total", Help: "Denied audit events not written because the caller exceeded its rate (counted in its next event).",
		}),
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agentid_watch_streams", Help: "Open WatchDelegations streams.",
		}),
		issuances: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentid_token_issuances_recorded_total", Help: "Delegated JWT-SVID issuances recorded from the composer.",
		}),
		auditPruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentid_audit_events_pruned_total", Help: "Audit events deleted by PruneEvents.",
		}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentid_store_errors_total", Help: "Store operations that failed (requests failed closed).",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentid_grpc_requests_total", Help: "gRPC requests handled, by method and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "agentid_grpc_request_duration_seconds", Help: "gRPC request latency (streams: their lifetime).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 10},
		}, []string{"method"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.created, m.revoked, m.denied, m.deniedSuppressed, m.watchers, m.issuances, m.auditPruned, m.storeErrors, m.requests, m.latency} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
