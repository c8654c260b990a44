package api

import (
	"context"
	"strconv"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/internal/denylimit"
	"github.com/agentid/agentid/pkg/store"
	"github.com/sirupsen/logrus"
)

// Denied audit events are rate limited per caller (package denylimit:
// the policy agentid-server's OAuth token endpoint shares). The log line and
// the metric are never suppressed.
const denyEventWriteTimeout = 5 * time.Second

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
	limiter denylimit.Limiter
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
// denylimit); a store that fails to record one is logged, and the
// refusal stands.
func (d *Denier) Deny(ctx context.Context, rpc string, c Caller, reason, detail string, ev audit.Event) {
	d.metrics.Denied.WithLabelValues(rpc, reason).Inc()
	d.log.WithFields(logrus.Fields{"rpc": rpc, "caller": c.String(), "reason": reason, "detail": detail,
		"delegation_id": ev.DelegationID, "agent_id": ev.Agent}).Info("Request denied")
	ev.Time = d.clock()
	ok, suppressed := d.limiter.Allow(c.String(), ev.Time)
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
