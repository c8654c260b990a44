package composer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	domain "github.com/agentid/agentid/pkg/delegation"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errProtocol marks a stream that broke the WatchDelegations contract (a
// snapshot on a resumed watch, a change before snapshot_end, a revision that
// does not increase, an unspecified change type, a change whose id does not
// parse, a revoked delegation made active again). The replica cannot know
// what it missed, so it resyncs from a fresh snapshot, as after OUT_OF_RANGE.
var errProtocol = errors.New("composer: watch stream broke protocol")

// errIdle is returned when a stream stays silent for the idle timeout.
var errIdle = errors.New("composer: watch stream silent")

// watcher keeps the replica in step with agentid-server's WatchDelegations:
// a fresh watch (snapshot, snapshot_end, changes) or, after a break, a
// resumed one from the last revision applied. OUT_OF_RANGE or a protocol
// violation discards the replica and starts over from a snapshot.
type watcher struct {
	client  delegationv1.DelegationServiceClient
	replica *replica
	now     func() time.Time
	log     hclog.Logger
	tuning  tuning
	// ended, when set, is called after every stream ends (tests).
	ended func(err error)
}

// run watches until ctx ends, reconnecting with jittered exponential backoff.
// A stream that delivered messages resets the backoff; a resync after
// OUT_OF_RANGE starts at once.
func (w *watcher) run(ctx context.Context) {
	backoff := w.tuning.minBackoff
	failures := 0
	for {
		since, received, err := w.watchOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if w.ended != nil {
			w.ended(err)
		}
		resync := status.Code(err) == codes.OutOfRange || errors.Is(err, errProtocol)
		if received {
			backoff, failures = w.tuning.minBackoff, 0
		}
		failures++
		log := w.log.With(logKeySinceRevision, since, logKeyError, errorText(err))
		switch {
		case resync:
			log.Warn("Discarding the delegation replica to resync from a fresh snapshot")
			w.replica.reset()
		case failures == 1 || failures%10 == 0:
			log.Warn("Delegation watch stream ended; reconnecting", logKeyAttempt, failures)
		default:
			log.Debug("Delegation watch stream ended; reconnecting", logKeyAttempt, failures)
		}
		delay := jitter(backoff)
		if resync && since > 0 {
			// A resumed watch told to start over: a fresh watch cannot get
			// OUT_OF_RANGE, so retrying at once cannot spin.
			delay = 0
		}
		backoff = min(2*backoff, w.tuning.maxBackoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// jitter spreads d over [0.8d, 1.2d) so that restarted plugins do not
// reconnect in step.
func jitter(d time.Duration) time.Duration {
	return d*4/5 + rand.N(d*2/5+1)
}

// watchOnce runs one stream to its end. It returns the revision it asked to
// resume from, whether any message arrived, and why the stream ended.
func (w *watcher) watchOnce(ctx context.Context) (since uint64, received bool, err error) {
	since, ready := w.replica.resumePoint()
	if !ready {
		since = 0
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var idle atomic.Bool
	timer := time.AfterFunc(w.tuning.idleTimeout, func() {
		idle.Store(true)
		cancel()
	})
	defer timer.Stop()

	stream, err := w.client.WatchDelegations(ctx, &delegationv1.WatchDelegationsRequest{SinceRevision: since})
	if err != nil {
		return since, false, err
	}
	snapshotting := since == 0
	// caughtUp: the stream has sent everything up to now, so a change
	// proves the replica current. A fresh watch is caught up at
	// snapshot_end; a resumed one only at its first progress, which the
	// server sends once the backlog is out.
	caughtUp := false
	var snapshot []*domain.Delegation
	for {
		msg, err := stream.Recv()
		if err != nil {
			if idle.Load() {
				err = fmt.Errorf("%w for %s", errIdle, w.tuning.idleTimeout)
			}
			return since, received, err
		}
		received = true
		timer.Reset(w.tuning.idleTimeout)
		now := w.now()
		switch kind := msg.GetKind().(type) {
		case *delegationv1.WatchDelegationsResponse_Snapshot:
			if !snapshotting {
				return since, received, fmt.Errorf("%w: snapshot outside a fresh watch's snapshot", errProtocol)
			}
			for _, pb := range kind.Snapshot.GetDelegations() {
				if d := w.convert(pb); d != nil {
					snapshot = append(snapshot, d)
				}
			}
			w.replica.touch(now)
		case *delegationv1.WatchDelegationsResponse_SnapshotEnd:
			if !snapshotting {
				return since, received, fmt.Errorf("%w: snapshot_end outside a fresh watch", errProtocol)
			}
			snapshotting, caughtUp = false, true
			revision := kind.SnapshotEnd.GetRevision()
			w.replica.install(snapshot, revision, now)
			w.log.Info("Delegation replica ready", logKeyRevision, revision, logKeyDelegations, len(snapshot))
			snapshot = nil
		case *delegationv1.WatchDelegationsResponse_Change:
			if snapshotting {
				return since, received, fmt.Errorf("%w: change before snapshot_end", errProtocol)
			}
			if err := w.applyChange(kind.Change, now, caughtUp); err != nil {
				return since, received, err
			}
		case *delegationv1.WatchDelegationsResponse_Progress:
			if !snapshotting {
				caughtUp = true
				w.replica.progress(kind.Progress.GetRevision(), now)
			}
		default:
			return since, received, fmt.Errorf("%w: message of unknown kind", errProtocol)
		}
	}
}

// applyChange applies one change. A delegation that does not convert, or a
// "revoked" change whose delegation is not revoked, removes any entry under
// its id: the replica only ever loses authority on bad input. A change whose
// id does not parse is a protocol error (replica.apply). fresh is passed to
// replica.apply.
func (w *watcher) applyChange(c *delegationv1.DelegationChange, now time.Time, fresh bool) error {
	t := c.GetType()
	if t != delegationv1.ChangeType_CHANGE_TYPE_CREATED && t != delegationv1.ChangeType_CHANGE_TYPE_REVOKED {
		return fmt.Errorf("%w: change type %s at revision %d", errProtocol, t, c.GetRevision())
	}
	pb := c.GetDelegation()
	d := w.convert(pb)
	if d != nil && t == delegationv1.ChangeType_CHANGE_TYPE_REVOKED && d.State != domain.StateRevoked {
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

func errorText(err error) string {
	if err == nil {
		return "stream ended without status"
	}
	return err.Error()
}
