package api

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the server's Prometheus series, shared by its services.
// Labels hold fixed codes only (RPC names, reason codes), never ids, users or
// tokens, so cardinality stays bounded.
// Each field's Help text (below) says what it counts.
type Metrics struct {
	Created          *prometheus.CounterVec   // by kind: root, sub
	Revoked          prometheus.Counter       // cascades included
	Denied           *prometheus.CounterVec   // by rpc, reason
	DeniedSuppressed prometheus.Counter       // denied events over a caller's rate
	Watchers         prometheus.Gauge         // open watch streams
	Issuances        prometheus.Counter       // token issuances recorded
	AuditPruned      prometheus.Counter       // audit events pruned
	StoreErrors      prometheus.Counter       // store calls failed (requests failed closed)
	Requests         *prometheus.CounterVec   // by method, code
	Latency          *prometheus.HistogramVec // by method
}

// NewMetrics returns the series registered on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := newMetrics()
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.Created, m.Revoked, m.Denied, m.DeniedSuppressed, m.Watchers, m.Issuances, m.AuditPruned, m.StoreErrors, m.Requests, m.Latency} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// NewUnregisteredMetrics returns series that no registry exports: for a
// service built without a registry (tests).
func NewUnregisteredMetrics() *Metrics { return newMetrics() }

func newMetrics() *Metrics {
	m := &Metrics{
		Created: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentid_delegations_created_total", Help: "Delegations created, by kind (root, sub).",
		}, []string{"kind"}),
		Revoked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentid_delegations_revoked_total", Help: "Delegations revoked, cascades included.",
		}),
		Denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentid_requests_denied_total", Help: "Requests refused, by RPC and reason code.",
		}, []string{"rpc", "reason"}),
		DeniedSuppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentid_denied_audit_events_suppressed_total", Help: "Denied audit events not written because the caller exceeded its rate (counted in its next event).",
		}),
		Watchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agentid_watch_streams", Help: "Open WatchDelegations streams.",
		}),
		Issuances: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentid_token_issuances_recorded_total", Help: "Delegated JWT-SVID issuances recorded from the composer.",
		}),
		AuditPruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentid_audit_events_pruned_total", Help: "Audit events deleted by PruneEvents.",
		}),
		StoreErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentid_store_errors_total", Help: "Store operations that failed (requests failed closed).",
		}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentid_grpc_requests_total", Help: "gRPC requests handled, by method and status code.",
		}, []string{"method", "code"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "agentid_grpc_request_duration_seconds", Help: "gRPC request latency (streams: their lifetime).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 10},
		}, []string{"method"}),
	}
	return m
}
