package composer

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	domain "github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/internal/delegationwatch"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/hashicorp/go-hclog"
)

// errProtocol marks a change the replica refuses (a revision that does not
// increase, a change whose id does not parse, a revoked delegation made
// active again): the watch client then resyncs from a fresh snapshot, as
// for the stream's own protocol violations and OUT_OF_RANGE.
var errProtocol = delegationwatch.ErrProtocol

// watcher keeps the replica in step with agentid-server's WatchDelegations
// through the shared watch client (pkg/internal/delegationwatch), which
// resumes, resyncs and abandons silent streams; watcher converts and logs.
type watcher struct {
	client  delegationv1.DelegationServiceClient
	replica *replica
	now     func() time.Time
	log     hclog.Logger
	tuning  tuning
	// ended, when set, is called after every stream ends (tests).
	ended func(err error)
}

// run watches until ctx ends.
func (w *watcher) run(ctx context.Context) {
	c, err := delegationwatch.New(delegationwatch.Config[*domain.Delegation]{
		Client:      w.client,
		Replica:     replicaAdapter{w},
		IdleTimeout: w.tuning.idleTimeout,
		MinBackoff:  w.tuning.minBackoff,
		MaxBackoff:  w.tuning.maxBackoff,
		Clock:       w.now,
		Ended:       w.streamEnded,
	})
	if err != nil { // the tuning is the plugin's own: a bug
		w.log.Error("Cannot watch agentid-server's delegations", logKeyError, err.Error())
		return
	}
	_ = c.Run(ctx)
}

// streamEnded logs a stream's end: every resync, the first failure and
// every tenth of a run at Warn, the rest at Debug.
func (w *watcher) streamEnded(e delegationwatch.End) {
	if w.ended != nil {
		w.ended(e.Err)
	}
	log := w.log.With(logKeySinceRevision, e.Since, logKeyError, e.Err.Error())
	switch {
	case e.Resync:
		log.Warn("Discarding the delegation replica to resync from a fresh snapshot")
	case e.Attempt == 1 || e.Attempt%10 == 0:
		log.Warn("Delegation watch stream ended; reconnecting", logKeyAttempt, e.Attempt)
	default:
		log.Debug("Delegation watch stream ended; reconnecting", logKeyAttempt, e.Attempt)
	}
}

// replicaAdapter is the replica as the watch client sees it.
type replicaAdapter struct{ w *watcher }

func (a replicaAdapter) Resume() uint64 {
	since, ready := a.w.replica.resumePoint()
	if !ready {
		return 0
	}
	return since
}

func (a replicaAdapter) Convert(pb *delegationv1.Delegation) (*domain.Delegation, bool) {
	d := a.w.convert(pb)
	return d, d != nil
}

func (a replicaAdapter) Install(snapshot []*domain.Delegation, revision uint64, now time.Time) {
	a.w.replica.install(snapshot, revision, now)
	a.w.log.Info("Delegation replica ready", logKeyRevision, revision, logKeyDelegations, len(snapshot))
}

func (a replicaAdapter) Apply(c *delegationv1.DelegationChange, caughtUp bool, now time.Time) error {
	return a.w.applyChange(c, now, caughtUp)
}

func (a replicaAdapter) Progress(revision uint64, now time.Time) { a.w.replica.progress(revision, now) }

func (a replicaAdapter) Reset() { a.w.replica.reset() }

// jitter spreads d over [0.8d, 1.2d) so that restarted plugins do not
// retry in step.
func jitter(d time.Duration) time.Duration {
	return d*4/5 + rand.N(d*2/5+1) //nolint:gosec // reconnect jitter needs spread, not unpredictability
}

// applyChange applies one change, of type CREATED or REVOKED (the watch
// client refuses the others). A delegation that does not convert, or a
// "revoked" change whose delegation is not revoked, removes any entry under
// its id: the replica only ever loses authority on bad input. A change whose
// id does not parse is a protocol error (replica.apply). fresh is passed to
// replica.apply.
func (w *watcher) applyChange(c *delegationv1.DelegationChange, now time.Time, fresh bool) error {
	pb := c.GetDelegation()
	d := w.convert(pb)
	if d != nil && c.GetType() == delegationv1.ChangeType_CHANGE_TYPE_REVOKED && d.State != domain.StateRevoked {
		w.log.Warn("Dropping delegation: revoked change carries an unrevoked delegation", logKeyDelegationID, d.ID.String())
		d = nil
	}
	id := domain.ID{}
	if d != nil {
		id = d.ID
	} else if parsed, err := domain.ParseID(pb.GetId()); err == nil {
		id = parsed
	}
	return w.replica.apply(id, d, c.GetRevision(), now, fresh)
}

// convert returns the domain delegation, or nil (logged) when pb is
// malformed or not live.
func (w *watcher) convert(pb *delegationv1.Delegation) *domain.Delegation {
	d, err := fromProto(pb)
	if err == nil {
		return d
	}
	log := w.log
	if id, idErr := domain.ParseID(pb.GetId()); idErr == nil {
		log = log.With(logKeyDelegationID, id.String())
	}
	if errors.Is(err, errNotLive) {
		log.Debug("Dropping delegation that is not live", logKeyError, err.Error())
	} else {
		log.Warn("Dropping malformed delegation from agentid-server; its tokens will fail", logKeyError, err.Error())
	}
	return nil
}

// sweepLoop forgets expired delegations every sweepInterval.
func (w *watcher) sweepLoop(ctx context.Context) {
	ticker := time.NewTicker(w.tuning.sweepInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			if n := w.replica.sweep(w.now(), w.tuning.sweepGrace); n > 0 {
				w.log.Debug("Forgot expired delegations", logKeyDelegations, n)
			}
		}
	}
}
