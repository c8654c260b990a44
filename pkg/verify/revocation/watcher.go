package revocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/internal/delegationwatch"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
)

// Defaults filled in by New for zero Config fields.
const (
	// DefaultMaxStaleness is three of agentid-server's default 10-second
	// heartbeats: one lost heartbeat is not an outage, three are.
	DefaultMaxStaleness = 30 * time.Second
	// DefaultRetention keeps a revoked id this long past its expires_at, so
	// a verifier whose clock lags, or that allows clock skew on exp, still
	// refuses its tokens. It equals pkg/verify's largest allowed clock
	// skew (5 minutes): once it has passed, every token of the delegation
	// is refused as expired whatever skew the verifier allows.
	DefaultRetention = 5 * time.Minute
	// DefaultMinBackoff and DefaultMaxBackoff bound the wait between
	// reconnection attempts, doubling from the first to the second.
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
	// pruneInterval is how often expired ids are dropped.
	pruneInterval = time.Minute
)

// StalePolicy is what Revoked answers once the stream has been silent for
// longer than MaxStaleness, or before the first snapshot.
type StalePolicy int

const (
	// FailClosed returns ErrStale (or ErrNotReady): verifiers refuse every
	// delegated token until the stream is back. The zero value.
	FailClosed StalePolicy = iota
	// FailOpen answers from the revocations already known: availability
	// over the revocations made during the outage. Choose it deliberately.
	FailOpen
)

// Config configures a Watcher. Client is required.
type Config struct {
	// Client reaches agentid-server's DelegationService over mTLS with the
	// verifier's own X509-SVID, e.g. a grpc.ClientConn made with go-spiffe's
	// grpccredentials.MTLSClientCredentials. The server must list the
	// verifier's SPIFFE ID among its verifiers.
	Client delegationv1.DelegationServiceClient
	// MaxStaleness is how long the stream may be silent (no change and no
	// heartbeat) before Revoked applies OnStale. Default DefaultMaxStaleness.
	MaxStaleness time.Duration
	// OnStale is what Revoked answers when the stream is stale. Default
	// FailClosed.
	OnStale StalePolicy
	// Retention keeps revoked ids past their expiry. Default
	// DefaultRetention.
	Retention time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnections.
	// Defaults DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Clock returns the current time, for staleness and expiry. Default
	// time.Now.
	Clock func() time.Time
	// Logger receives reconnections and protocol errors. Default: silent.
	Logger *slog.Logger
}

// Watcher keeps the set of revoked, unexpired delegation ids from
// agentid-server's WatchDelegations stream (revoked_only), and answers
// verify.RevocationChecker from memory. Start it with Run.
type Watcher struct {
	config Config

	mu          sync.RWMutex
	revoked     map[delegation.ID]time.Time // id → expires_at; zero: never pruned
	ready       bool
	lastContact time.Time
	revision    uint64
	lastPrune   time.Time
	changed     chan struct{} // closed and replaced on every applied message
}

// New returns a Watcher for config.
func New(config Config) (*Watcher, error) {
	if config.Client == nil {
		return nil, errors.New("revocation: client is required")
	}
	if config.MaxStaleness < 0 || config.Retention < 0 || config.MinBackoff < 0 || config.MaxBackoff < 0 {
		return nil, errors.New("revocation: durations must not be negative")
	}
	if config.OnStale != FailClosed && config.OnStale != FailOpen {
		return nil, fmt.Errorf("revocation: unknown stale policy %d", config.OnStale)
	}
	if config.MaxStaleness == 0 {
		config.MaxStaleness = DefaultMaxStaleness
	}
	if config.Retention == 0 {
		config.Retention = DefaultRetention
	}
	if config.MinBackoff == 0 {
		config.MinBackoff = DefaultMinBackoff
	}
	if config.MaxBackoff == 0 {
		config.MaxBackoff = DefaultMaxBackoff
	}
	if config.MaxBackoff < config.MinBackoff {
		return nil, errors.New("revocation: max backoff is less than min backoff")
	}
	if config.Clock == nil {
		config.Clock = time.Now
	}
	if config.Logger == nil {
		config.Logger = slog.New(slog.DiscardHandler)
	}
	return &Watcher{config: config, revoked: map[delegation.ID]time.Time{}, changed: make(chan struct{})}, nil
}

// Revoked reports whether id is a revoked delegation that has not expired.
// It implements verify.RevocationChecker and never blocks on the network.
func (w *Watcher) Revoked(id delegation.ID) (bool, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.config.OnStale == FailClosed {
		if !w.ready {
			return false, ErrNotReady
		}
		if silent := w.config.Clock().Sub(w.lastContact); silent > w.config.MaxStaleness {
			return false, fmt.Errorf("%w: silent for %v, bound %v", ErrStale, silent.Truncate(time.Second), w.config.MaxStaleness)
		}
	}
	_, revoked := w.revoked[id]
	return revoked, nil
}

// Revision is the last store revision applied, 0 before the first snapshot.
func (w *Watcher) Revision() uint64 {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.revision
}

// WaitForRevision blocks until revision rev (e.g. from a
// RevokeDelegationResponse's delegation.revision) has been applied, or ctx
// ends. A caller that just revoked a delegation can wait until this
// verifier refuses it.
func (w *Watcher) WaitForRevision(ctx context.Context, rev uint64) error {
	for {
		w.mu.RLock()
		done, ch := w.ready && w.revision >= rev, w.changed
		w.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Ready blocks until the first snapshot has been applied, or ctx ends.
func (w *Watcher) Ready(ctx context.Context) error { return w.WaitForRevision(ctx, 0) }

// Run follows the stream until ctx ends, through the shared watch client
// (pkg/internal/delegationwatch): it reconnects with jittered backoff and
// resumes from the last applied revision, takes a fresh snapshot after
// OUT_OF_RANGE or a protocol violation (keeping the revocations it knew: a
// revoked id never becomes valid again), and redials a stream silent for
// MaxStaleness. It returns ctx's error.
func (w *Watcher) Run(ctx context.Context) error {
	c, err := delegationwatch.New(delegationwatch.Config[revokedID]{
		Client:      w.config.Client,
		Replica:     replica{w},
		RevokedOnly: true,
		// A stream silent for longer than the staleness bound is useless
		// (Revoked fails closed on it): redial rather than wait for TCP.
		IdleTimeout: w.config.MaxStaleness,
		MinBackoff:  w.config.MinBackoff,
		MaxBackoff:  w.config.MaxBackoff,
		Clock:       w.config.Clock,
		Ended: func(e delegationwatch.End) {
			w.config.Logger.Warn("Delegation watch stream ended", "error", e.Err, "since_revision", e.Since,
				"resync", e.Resync, "attempt", e.Attempt, "retry_in", e.Retry)
		},
	})
	if err != nil {
		return err // New validated the same durations: unreachable
	}
	return c.Run(ctx)
}

// revokedID is one revoked delegation of a snapshot or change: its id and
// expiry (zero: unknown, never pruned).
type revokedID struct {
	id  delegation.ID
	exp time.Time
}

// replica is the Watcher as the watch client sees it. Its methods run on
// Run's goroutine.
type replica struct{ w *Watcher }

func (r replica) Resume() uint64 {
	r.w.mu.RLock()
	defer r.w.mu.RUnlock()
	return r.w.revision
}

// Convert keeps the revoked delegations of a snapshot (revoked_only sends
// no others).
func (r replica) Convert(d *delegationv1.Delegation) (revokedID, bool) {
	if d.GetState() != delegationv1.State_STATE_REVOKED {
		return revokedID{}, false
	}
	return r.w.parse(d)
}

func (r replica) Install(snapshot []revokedID, revision uint64, now time.Time) {
	r.w.apply(snapshot, revision, true, true, now)
}

// Apply takes a CREATED change as progress and a REVOKED one as a new
// revoked id. Only a caught-up stream proves contact: a resumed stream's
// backlog says nothing of what happened since.
func (r replica) Apply(c *delegationv1.DelegationChange, caughtUp bool, now time.Time) error {
	var batch []revokedID
	if c.GetType() == delegationv1.ChangeType_CHANGE_TYPE_REVOKED {
		if d, ok := r.w.parse(c.GetDelegation()); ok {
			batch = append(batch, d)
		}
	}
	r.w.apply(batch, c.GetRevision(), false, caughtUp, now)
	return nil
}

func (r replica) Progress(revision uint64, now time.Time) {
	r.w.apply(nil, revision, false, true, now)
}

// Reset forgets the revision, not the revoked ids: the next watch is a
// fresh snapshot, merged into what is known.
func (r replica) Reset() {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	r.w.revision = 0
}

// parse returns a revoked delegation's id and expiry, skipping (and
// logging) one whose id the server should never have sent: no token can
// carry it. A revoked delegation without a valid expires_at is kept for the
// watcher's lifetime (zero time: never pruned): pruning it by an unknown
// expiry could make its tokens valid again, and refusing the message would
// stall the whole stream on one record.
func (w *Watcher) parse(d *delegationv1.Delegation) (revokedID, bool) {
	id, err := delegation.ParseID(d.GetId())
	if err != nil {
		w.config.Logger.Error("Ignoring revoked delegation with malformed id", "error", err)
		return revokedID{}, false
	}
	ts := d.GetExpiresAt()
	if ts == nil || !ts.IsValid() || ts.GetSeconds() <= 0 {
		w.config.Logger.Error("Revoked delegation has no expires_at: keeping it until restart", "id", id.String())
		return revokedID{id: id}, true
	}
	return revokedID{id: id, exp: ts.AsTime()}, true
}

// apply merges batch into the revoked set, moves to revision (a snapshot
// may set a lower one: a restored store), and records contact when the
// stream is caught up.
func (w *Watcher) apply(batch []revokedID, revision uint64, snapshot, contact bool, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range batch {
		w.revoked[d.id] = d.exp
	}
	if snapshot || revision > w.revision {
		w.revision = revision
	}
	if snapshot {
		w.ready = true
	}
	if contact {
		w.lastContact = now
	}
	if now.Sub(w.lastPrune) >= pruneInterval {
		for id, exp := range w.revoked {
			if !exp.IsZero() && now.After(exp.Add(w.config.Retention)) {
				delete(w.revoked, id)
			}
		}
		w.lastPrune = now
	}
	close(w.changed)
	w.changed = make(chan struct{})
}
