package api

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/store"
	"github.com/sirupsen/logrus"
)

// Denied audit events are permanent (the hash chain forbids pruning) and
// every refused request from any workload in the trust domain would write
// one, so they are rate limited per caller: a token bucket of denyBurst
// events refilled at denyRate per second. Refusals over the limit are counted
// and the count goes into the caller's next recorded event ("suppressed"),
// so the log still says how many there were. The log line and the metric are
// never suppressed.
const (
	denyRate              = 5.0
	denyBurst             = 50.0
	denyMaxCallers        = 10000
	denyEventWriteTimeout = 5 * time.Second
)

type denyLimiter struct {
	mu      sync.Mutex
	callers map[string]*denyBucket
}

type denyBucket struct {
	tokens     float64
	last       time.Time
	suppressed int
}

// allow reports whether a denied event of caller may be recorded now, and
// how many were suppressed since the last one that was.
func (l *denyLimiter) allow(caller string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.callers == nil || len(l.callers) >= denyMaxCallers {
		// Bounded memory: forgetting every bucket at once only ever lets
		// more events through, never fewer.
		l.callers = make(map[string]*denyBucket)
	}
	b, ok := l.callers[caller]
	if !ok {
		b = &denyBucket{tokens: denyBurst, last: now}
		l.callers[caller] = b
	}
	b.tokens += now.Sub(b.last).Seconds() * denyRate
	if b.tokens > denyBurst {
		b.tokens = denyBurst
	}
	b.last = now
	if b.tokens < 1 {
		b.suppressed++
		return false, 0
	}
	b.tokens--
	n := b.suppressed
	b.suppressed = 0
	return true, n
}

// DenierConfig is what a Denier records with.
type DenierConfig struct {
	// Store receives the denied events.
	Store store.Store
	// Metrics counts the refusals; nil: unregistered metrics of its own.
	Metrics *Metrics
	// Log defaults to a logger that discards.
	Log logrus.FieldLogger
	// Clock defaults to time.Now.
	Clock func() time.Time
}

// Denier records refusals. The services of one server share one, so the
// rate limit is per caller across all of them.
type Denier struct {
	store   store.Store
	metrics *Metrics
	log     logrus.FieldLogger
	clock   func() time.Time
	limiter denyLimiter
}

// NewDenier returns a Denier.
func NewDenier(c DenierConfig) *Denier {
	if c.Metrics == nil {
		c.Metrics = NewUnregisteredMetrics()
	}
	return &Denier{store: c.Store, metrics: c.Metrics, log: LogOrDiscard(c.Log), clock: ClockOrNow(c.Clock)}
}

// Deny records a refusal as a denied audit event, counts it, and logs it.
// reason is a short fixed code (a metric label); detail may say more. Never
// pass a user token in either. Events are rate limited per caller (see
// denyLimiter); a store that fails to record one is logged, and the
// refusal stands.
func (d *Denier) Deny(ctx context.Context, rpc string, c Caller, reason, detail string, ev audit.Event) {
	d.metrics.Denied.WithLabelValues(rpc, reason).Inc()
	d.log.WithFields(logrus.Fields{"rpc": rpc, "caller": c.String(), "reason": reason, "detail": detail,
		"delegation_id": ev.DelegationID, "agent_id": ev.Agent}).Info("Request denied")
	ev.Time = d.clock()
	ok, suppressed := d.limiter.allow(c.String(), ev.Time)
	if !ok {
		d.metrics.DeniedSuppressed.Inc()
		return
	}
	ev.Type = audit.TypeDenied
	ev.Actor = c.String()
	ev.Detail = map[string]string{"rpc": rpc, "reason": reason}
	if detail != "" {
		ev.Detail["detail"] = TruncateUTF8(detail, audit.MaxDetailValueLength)
	}
	if suppressed > 0 {
		ev.Detail["suppressed"] = strconv.Itoa(suppressed)
	}
	// The caller must not be able to erase its own denial by cancelling the
	// request, so the write outlives the request's context.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), denyEventWriteTimeout)
	defer cancel()
	if err := d.store.AppendEvents(wctx, ev); err != nil {
		d.log.WithError(err).Error("Failed to record denied audit event")
	}
}
