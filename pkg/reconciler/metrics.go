package reconciler

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Pass results, the values of agentid_reconcile_runs_total's result label.
const (
	resultSuccess    = "success"    // every agent synced, every stale entry deleted
	resultIncomplete = "incomplete" // SPIRE reached, some items failed (ErrIncomplete)
	resultError      = "error"      // entries could not be listed; nothing written
)

type metrics struct {
	runs        *prometheus.CounterVec
	writes      *prometheus.CounterVec
	syncState   *prometheus.GaugeVec
	ownedCount  prometheus.Gauge
	lastSuccess prometheus.Gauge
}

// newMetrics creates the reconciler's collectors and registers them with reg
// when it is not nil. Unregistered collectors cost a few map updates a pass.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentid_reconcile_runs_total",
			Help: "Reconciliation passes of declared agents into SPIRE entries, by result (success, incomplete, error).",
		}, []string{"result"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentid_reconcile_entry_writes_total",
			Help: "SPIRE entry writes by operation (create, update, delete) and gRPC status code.",
		}, []string{"op", "code"}),
		syncState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "agentid_agent_sync_state",
			Help: "1 for the current sync state of each declared agent (pending, synced, error), 0 for the others.",
		}, []string{"agent", "state"}),
		ownedCount: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agentid_reconcile_owned_entries",
			Help: "SPIRE entries carrying the reconciler's id prefix, as last listed.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agentid_reconcile_last_success_timestamp_seconds",
			Help: "Unix time of the last pass that synced every agent.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.runs, m.writes, m.syncState, m.ownedCount, m.lastSuccess} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("reconciler: failed to register metrics: %w", err)
			}
		}
	}
	for _, r := range []string{resultSuccess, resultIncomplete, resultError} {
		m.runs.WithLabelValues(r)
	}
	return m, nil
}

func (m *metrics) setState(agent string, st State) {
	for s := StatePending; s <= StateError; s++ {
		v := 0.0
		if s == st {
			v = 1
		}
		m.syncState.WithLabelValues(agent, s.String()).Set(v)
	}
}

// forget drops an undeclared agent's series. (DeletePartialMatch would scan
// every series for each agent: quadratic when many agents go at once.)
func (m *metrics) forget(agent string) {
	for s := StatePending; s <= StateError; s++ {
		m.syncState.DeleteLabelValues(agent, s.String())
	}
}
