package delegationwatch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Defaults filled in by New for zero Config fields.
const (
	// DefaultIdleTimeout is three of agentid-server's default 10-second
	// heartbeats: a stream silent that long is wedged, not quiet.
	DefaultIdleTimeout = 30 * time.Second
	// DefaultMinBackoff and DefaultMaxBackoff bound the wait between
	// attempts, doubling from the first to the second.
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
)

// ErrProtocol marks a stream that broke the WatchDelegations contract, or a
// change the replica refused (Replica.Apply's error). The replica cannot
// know what it missed, so the Client resets it and starts over from a fresh
// snapshot, as after OUT_OF_RANGE.
var ErrProtocol = errors.New("delegationwatch: stream broke protocol")

// ErrIdle ends a stream that delivered nothing, not even a heartbeat, for
// the idle timeout.
var ErrIdle = errors.New("delegationwatch: stream silent")

// Replica is the state a Client keeps in step with agentid-server. Its
// methods are called from Run's goroutine only, in stream order. T is what
// the replica keeps of one delegation of a snapshot.
type Replica[T any] interface {
	// Resume returns the last revision applied, to resume from, or 0 when
	// the replica needs a snapshot (never filled, or Reset).
	Resume() uint64
	// Convert turns one delegation of a snapshot into T; false drops it
	// (the replica says why, in its own log).
	Convert(d *delegationv1.Delegation) (T, bool)
	// Install takes a fresh watch's complete snapshot, taken at revision.
	Install(snapshot []T, revision uint64, now time.Time)
	// Apply applies one change after the snapshot or resume point, of type
	// CREATED or REVOKED, its revision larger than any before. caughtUp
	// says whether the stream had sent everything up to now when the change
	// arrived (a fresh watch after its snapshot, a resumed one after its
	// first progress): only then does the change prove the replica current.
	// An error is a protocol violation: the Client resets the replica.
	Apply(c *delegationv1.DelegationChange, caughtUp bool, now time.Time) error
	// Progress records a heartbeat: the stream is alive and every change up
	// to revision has been sent.
	Progress(revision uint64, now time.Time)
	// Reset prepares for a fresh snapshot: the server cannot resume from
	// the replica's revision, or the stream broke protocol.
	Reset()
}

// End describes a stream that ended, for the caller's log.
type End struct {
	// Err is why it ended; never nil.
	Err error
	// Since is the revision the stream resumed from, 0 for a fresh watch.
	Since uint64
	// Resync reports that the replica was Reset: a fresh snapshot follows.
	Resync bool
	// Attempt counts the consecutive streams that ended without delivering
	// anything, this one included (1: the first failure after progress).
	Attempt int
	// Retry is how long the Client waits before the next attempt.
	Retry time.Duration
}

// Config configures a Client. Client and Replica are required.
type Config[T any] struct {
	// Client reaches agentid-server's DelegationService: over the local
	// socket (the composer) or mTLS (verifiers).
	Client delegationv1.DelegationServiceClient
	// Replica is kept in step.
	Replica Replica[T]
	// RevokedOnly asks for the deny list only (verifiers must).
	RevokedOnly bool
	// IdleTimeout ends a stream that delivers nothing for this long, so a
	// wedged connection is redialed. Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MinBackoff and MaxBackoff bound the jittered wait between attempts.
	// Defaults DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Clock gives the time passed to the Replica. Default time.Now.
	Clock func() time.Time
	// Ended, when set, is called after each stream ends, before the wait:
	// the Client itself is silent.
	Ended func(End)
}

// Client follows agentid-server's WatchDelegations stream into a Replica: a
// fresh watch (snapshot, snapshot_end, changes) or, after a break, a resumed
// one from the replica's revision. OUT_OF_RANGE and protocol violations
// reset the replica and start over from a snapshot.
type Client[T any] struct {
	config Config[T]
}

// New returns a Client for config.
func New[T any](config Config[T]) (*Client[T], error) {
	switch {
	case config.Client == nil:
		return nil, errors.New("delegationwatch: client is required")
	case config.Replica == nil:
		return nil, errors.New("delegationwatch: replica is required")
	case config.IdleTimeout < 0 || config.MinBackoff < 0 || config.MaxBackoff < 0:
		return nil, errors.New("delegationwatch: durations must not be negative")
	}
	if config.IdleTimeout == 0 {
		config.IdleTimeout = DefaultIdleTimeout
	}
	if config.MinBackoff == 0 {
		config.MinBackoff = DefaultMinBackoff
	}
	if config.MaxBackoff == 0 {
		config.MaxBackoff = DefaultMaxBackoff
	}
	if config.MaxBackoff < config.MinBackoff {
		return nil, errors.New("delegationwatch: max backoff is less than min backoff")
	}
	if config.Clock == nil {
		config.Clock = time.Now
	}
	return &Client[T]{config: config}, nil
}

// Run follows the stream until ctx ends, reconnecting with jittered
// exponential backoff; it returns ctx's error. A stream that delivered
// messages resets the backoff; a resumed watch told to resync retries at
// once (a fresh watch cannot get OUT_OF_RANGE, so this cannot spin).
func (c *Client[T]) Run(ctx context.Context) error {
	backoff := c.config.MinBackoff
	failures := 0
	for {
		since, received, err := c.watchOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			err = errors.New("delegationwatch: stream ended without status")
		}
		resync := status.Code(err) == codes.OutOfRange || errors.Is(err, ErrProtocol)
		if resync {
			c.config.Replica.Reset()
		}
		if received {
			backoff, failures = c.config.MinBackoff, 0
		}
		failures++
		delay := jitter(backoff)
		if resync && since > 0 {
			delay = 0
		}
		if c.config.Ended != nil {
			c.config.Ended(End{Err: err, Since: since, Resync: resync, Attempt: failures, Retry: delay})
		}
		backoff = min(2*backoff, c.config.MaxBackoff)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// jitter spreads d over [0.8d, 1.2d) so that restarted clients do not
// reconnect in step.
func jitter(d time.Duration) time.Duration {
	return d*4/5 + rand.N(d*2/5+1) //nolint:gosec // reconnect jitter needs spread, not unpredictability
}

func protocolf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

// watchOnce runs one stream to its end. It returns the revision it resumed
// from, whether any message arrived, and why the stream ended.
func (c *Client[T]) watchOnce(ctx context.Context) (since uint64, received bool, err error) {
	since = c.config.Replica.Resume()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var idle atomic.Bool
	timer := time.AfterFunc(c.config.IdleTimeout, func() {
		idle.Store(true)
		cancel()
	})
	defer timer.Stop()

	stream, err := c.config.Client.WatchDelegations(ctx, &delegationv1.WatchDelegationsRequest{SinceRevision: since, RevokedOnly: c.config.RevokedOnly})
	if err != nil {
		return since, false, err
	}
	snapshotting := since == 0
	// caughtUp: the stream has sent everything up to now. A fresh watch is
	// caught up at snapshot_end; a resumed one only at its first progress,
	// which the server sends once the backlog is out.
	caughtUp := false
	last := since // the revision every later change must exceed
	var snapshot []T
	for {
		msg, err := stream.Recv()
		if err != nil {
			if idle.Load() {
				err = fmt.Errorf("%w for %s", ErrIdle, c.config.IdleTimeout)
			}
			return since, received, err
		}
		received = true
		timer.Reset(c.config.IdleTimeout)
		now := c.config.Clock()
		switch kind := msg.GetKind().(type) {
		case *delegationv1.WatchDelegationsResponse_Snapshot:
			if !snapshotting {
				return since, received, protocolf("snapshot outside a fresh watch's snapshot")
			}
			for _, pb := range kind.Snapshot.GetDelegations() {
				if d, ok := c.config.Replica.Convert(pb); ok {
					snapshot = append(snapshot, d)
				}
			}
		case *delegationv1.WatchDelegationsResponse_SnapshotEnd:
			if !snapshotting {
				return since, received, protocolf("snapshot_end outside a fresh watch")
			}
			snapshotting, caughtUp = false, true
			last = kind.SnapshotEnd.GetRevision()
			c.config.Replica.Install(snapshot, last, now)
			snapshot = nil
		case *delegationv1.WatchDelegationsResponse_Change:
			ch := kind.Change
			switch {
			case snapshotting:
				return since, received, protocolf("change before snapshot_end")
			case ch.GetRevision() <= last:
				return since, received, protocolf("change revision %d after revision %d", ch.GetRevision(), last)
			}
			// The one rule for change types: those of this protocol version
			// are applied; any other (UNSPECIFIED, or one added by a newer
			// server) may take authority away in a way this client cannot
			// tell, so it resyncs, and the snapshot is authoritative.
			if t := ch.GetType(); t != delegationv1.ChangeType_CHANGE_TYPE_CREATED && t != delegationv1.ChangeType_CHANGE_TYPE_REVOKED {
				return since, received, protocolf("change type %s at revision %d", t, ch.GetRevision())
			}
			if err := c.config.Replica.Apply(ch, caughtUp, now); err != nil {
				if !errors.Is(err, ErrProtocol) {
					err = fmt.Errorf("%w: %w", ErrProtocol, err)
				}
				return since, received, err
			}
			last = ch.GetRevision()
		case *delegationv1.WatchDelegationsResponse_Progress:
			if snapshotting {
				continue // the replica is incomplete: nothing to vouch for
			}
			caughtUp = true
			last = max(last, kind.Progress.GetRevision())
			c.config.Replica.Progress(kind.Progress.GetRevision(), now)
		default:
			return since, received, protocolf("message of unknown kind")
		}
	}
}
