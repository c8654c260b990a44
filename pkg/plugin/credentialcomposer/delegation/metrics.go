package composer

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/agentid/agentid/pkg/claims"
	"github.com/hashicorp/go-hclog"
	metricsv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/hostservice/common/metrics/v1"
)

// Metric keys, as the metrics host service takes them: SPIRE prefixes its
// service name and joins the parts with "_" for Prometheus
// (spire_server_agentid_composer_tokens_composed) or "." for statsd. The
// README's Metrics section lists them.
var (
	metricTokensComposed     = []string{"agentid_composer", "tokens_composed"}
	metricTokensRefused      = []string{"agentid_composer", "tokens_refused"}
	metricAuditRecordsLost   = []string{"agentid_composer", "audit_records_lost"}
	metricReplicaDelegations = []string{"agentid_composer", "replica_delegations"}
	metricReplicaAge         = []string{"agentid_composer", "replica_age_seconds"}
	metricReplicaReady       = []string{"agentid_composer", "replica_ready"}
	metricAuditQueueDepth    = []string{"agentid_composer", "audit_queue_depth"}
)

// labelReason is the label of tokens_refused naming why.
const labelReason = "reason"

// reason is why a delegated token was refused, the reason label of
// tokens_refused.
type reason int

const (
	reasonUnknown reason = iota
	reasonRevoked
	reasonExpired
	reasonForeign
	reasonStale
	reasonNotReady
	reasonAuditQueueFull
	reasonBadRequest
	reasonInternal
	numReasons
)

// reasonNames are the label values, indexed by reason. SPIRE's telemetry
// rewrites every run of characters outside [A-Za-z0-9_] in a label value, so
// these use none.
var reasonNames = [numReasons]string{
	reasonUnknown:        "unknown",
	reasonRevoked:        "revoked",
	reasonExpired:        "expired",
	reasonForeign:        "foreign",
	reasonStale:          "stale",
	reasonNotReady:       "not_ready",
	reasonAuditQueueFull: "audit_queue_full",
	reasonBadRequest:     "bad_request",
	reasonInternal:       "internal",
}

// reasonOf classifies a refusal as codeOf does its code; it must not be
// given errNoMarker, which is no refusal. A backend stopping under the call
// (errAuditStopped: reconfigured or unloading) counts as not_ready, as the
// caller sees the same Unavailable and the same remedy: retry.
func reasonOf(err error) reason {
	switch {
	case errors.Is(err, ErrNotReady), errors.Is(err, errAuditStopped):
		return reasonNotReady
	case errors.Is(err, ErrStale):
		return reasonStale
	case errors.Is(err, ErrUnknownDelegation):
		return reasonUnknown
	case errors.Is(err, ErrForeignDelegation):
		return reasonForeign
	case errors.Is(err, ErrRevoked):
		return reasonRevoked
	case errors.Is(err, ErrExpired):
		return reasonExpired
	case errors.Is(err, ErrAuditQueueFull):
		return reasonAuditQueueFull
	case errors.Is(err, errBadRequest), errors.Is(err, claims.ErrMarker):
		return reasonBadRequest
	default:
		return reasonInternal
	}
}

// counters are counted on the signing path with one atomic add each and
// read only by the flusher: no token waits on SPIRE's metrics host service.
// They live as long as the plugin process, across reconfigurations.
type counters struct {
	// The pads keep the counters, written on every token, off the cache
	// lines of the Plugin's other fields, which every token reads (state):
	// a flood of refusals must not slow the signing of other tokens.
	_         [64]byte
	composed  atomic.Uint64
	refused   [numReasons]atomic.Uint64
	auditLost atomic.Uint64
	_         [64]byte

	// reported is what SPIRE acknowledged, per series; only the one
	// flusher running at a time touches it. It is kept here, not in the
	// flusher, so that a flusher started after Close and Configure sends
	// growth, not the totals again.
	reported *reported
}

// reported is the flushers' state: the series, what the host service has
// acknowledged of each (a failed IncrCounter is sent again as part of the
// next delta), and whether each was announced (sent once, zero included,
// so that each series exists in SPIRE's sinks before its first event).
type reported struct {
	series    []counterSeries
	sent      []uint64
	announced []bool
}

// counterSeries is one counter as reported: its key, labels and value.
type counterSeries struct {
	key    []string
	labels []*metricsv1.Label
	value  *atomic.Uint64
}

// series lists every counter, in a fixed order.
func (c *counters) series() []counterSeries {
	out := []counterSeries{
		{key: metricTokensComposed, value: &c.composed},
		{key: metricAuditRecordsLost, value: &c.auditLost},
	}
	for r := range numReasons {
		out = append(out, counterSeries{
			key:    metricTokensRefused,
			labels: []*metricsv1.Label{{Name: labelReason, Value: reasonNames[r]}},
			value:  &c.refused[r],
		})
	}
	return out
}

// flusher sends the counters and gauges to SPIRE's metrics host service
// every tuning.metricsInterval, and once more when stopped.
type flusher struct {
	p        *Plugin
	client   metricsv1.MetricsClient
	log      hclog.Logger
	r        *reported
	failures int
	stopCh   chan struct{}
	done     chan struct{}
	// ctx ends a periodic flush in flight when stop is called, so that a
	// hanging host service cannot hold up the plugin's unload.
	ctx    context.Context
	cancel context.CancelFunc
}

// finalFlushTimeout bounds the last flush at Close. SPIRE gives a plugin
// 10 s to unload; the audit queue's drain may take 2 of them.
const finalFlushTimeout = time.Second

// maxIncrement is the largest count one IncrCounter carries: its value is a
// float32, exact for integers up to 2^24. A larger backlog (counts carried
// over a long host-service outage) goes out over several calls.
const maxIncrement = 1 << 24

// newFlusher starts a flusher; the caller (holding configMu) makes sure
// that no other runs.
func newFlusher(p *Plugin, client metricsv1.MetricsClient, log hclog.Logger) *flusher {
	if p.counters.reported == nil {
		series := p.counters.series()
		p.counters.reported = &reported{
			series:    series,
			sent:      make([]uint64, len(series)),
			announced: make([]bool, len(series)),
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &flusher{
		p: p, client: client, log: log, r: p.counters.reported,
		stopCh: make(chan struct{}),
		done:   make(chan struct{}),
		ctx:    ctx, cancel: cancel,
	}
	go f.run()
	return f
}

// stop cuts short a flush in flight, sends the counters a last time within
// finalFlushTimeout (the backend is stopped by then, so no gauge is sent)
// and waits for the flusher's goroutine.
func (f *flusher) stop() {
	close(f.stopCh)
	f.cancel()
	<-f.done
}

func (f *flusher) run() {
	defer close(f.done)
	ticker := time.NewTicker(f.p.tuning.metricsInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			// A stop that came with the tick wins: select picks at random.
			select {
			case <-f.stopCh:
			default:
				f.flush(f.ctx, f.p.tuning.metricsTimeout, false)
				continue
			}
		case <-f.stopCh:
		}
		f.flush(context.Background(), finalFlushTimeout, true)
		return
	}
}

// flush sends each counter's growth since the last acknowledged flush as an
// IncrCounter, then the gauges of the current backend, if any. One flush is
// bounded by tuning.metricsTimeout; a failure is logged (at Warn the first
// time and every tenth, at Debug otherwise) and the unsent growth carried
// over.
func (f *flusher) flush(parent context.Context, timeout time.Duration, final bool) {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	var firstErr error
	r := f.r
	for i, s := range r.series {
		cur := s.value.Load()
		delta := min(cur-r.sent[i], maxIncrement)
		if delta == 0 && r.announced[i] {
			continue
		}
		_, err := f.client.IncrCounter(ctx, &metricsv1.IncrCounterRequest{Key: s.key, Val: float32(delta), Labels: s.labels})
		if err != nil {
			firstErr = err
			break
		}
		r.sent[i], r.announced[i] = r.sent[i]+delta, true
	}
	if firstErr == nil {
		firstErr = f.setGauges(ctx)
	}
	if firstErr == nil {
		f.failures = 0
		return
	}
	f.failures++
	log := f.log.With(logKeyAttempt, f.failures, logKeyError, firstErr.Error())
	if final {
		// Nothing comes after this one: what it could not send is lost.
		log.Warn("Failed to report metrics to SPIRE while unloading; the counts since the last report are lost")
		return
	}
	if f.failures == 1 || f.failures%10 == 0 {
		log.Warn("Failed to report metrics to SPIRE; retrying at the next flush")
	} else {
		log.Debug("Failed to report metrics to SPIRE; retrying at the next flush")
	}
}

// setGauges sends the gauges of the current backend; none when the plugin
// is not configured (or closing).
func (f *flusher) setGauges(ctx context.Context) error {
	st := f.p.state.Load()
	if st == nil {
		return nil
	}
	ready, heard := st.rt.replica.heard()
	if heard.IsZero() {
		// Never heard from agentid-server: as old as the backend.
		heard = st.rt.started
	}
	readyValue := float32(0)
	if ready {
		readyValue = 1
	}
	for _, g := range []struct {
		key []string
		val float32
	}{
		{metricReplicaDelegations, float32(st.rt.replica.size())},
		{metricReplicaAge, float32(max(f.p.now().Sub(heard), 0).Seconds())},
		{metricReplicaReady, readyValue},
		{metricAuditQueueDepth, float32(st.rt.audit.depth())},
	} {
		if _, err := f.client.SetGauge(ctx, &metricsv1.SetGaugeRequest{Key: g.key, Val: g.val}); err != nil {
			return err
		}
	}
	return nil
}
