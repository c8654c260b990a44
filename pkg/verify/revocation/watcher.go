package revocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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

// Run follows the stream until ctx ends, reconnecting with backoff and
// resuming from the last applied revision; it returns ctx's error.
func (w *Watcher) Run(ctx context.Context) error {
	backoff := w.config.MinBackoff
	for {
		progressed, err := w.watch(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if status.Code(err) == codes.OutOfRange || errors.Is(err, errResync) {
			// The server cannot resume from our revision: start over with
			// a snapshot. Known revocations stay until it arrives (a
			// revoked id never becomes valid again).
			w.mu.Lock()
			w.revision = 0
			w.mu.Unlock()
		}
		if progressed {
			backoff = w.config.MinBackoff
		}
		w.config.Logger.Warn("Delegation watch stream ended", "error", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, w.config.MaxBackoff)
	}
}

var errResync = errors.New("revocation: stream out of order, resynchronising")

// watch runs one stream; progressed reports whether anything was applied.
func (w *Watcher) watch(ctx context.Context) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w.mu.RLock()
	since := w.revision
	w.mu.RUnlock()
	stream, err := w.config.Client.WatchDelegations(ctx, &delegationv1.WatchDelegationsRequest{SinceRevision: since, RevokedOnly: true})
	if err != nil {
		return false, err
	}
	snapshotting := since == 0
	staging := map[delegation.ID]time.Time{}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return progressed, err
		}
		switch k := msg.GetKind().(type) {
		case *delegationv1.WatchDelegationsResponse_Snapshot:
			if !snapshotting {
				return progressed, errResync
			}
			for _, d := range k.Snapshot.GetDelegations() {
				if d.GetState() == delegationv1.State_STATE_REVOKED {
					w.stage(staging, d)
				}
			}
		case *delegationv1.WatchDelegationsResponse_SnapshotEnd:
			if !snapshotting {
				return progressed, errResync
			}
			snapshotting = false
			w.apply(staging, k.SnapshotEnd.GetRevision(), true)
			staging = map[delegation.ID]time.Time{}
			progressed = true
		case *delegationv1.WatchDelegationsResponse_Change:
			c := k.Change
			if snapshotting || c.GetType() == delegationv1.ChangeType_CHANGE_TYPE_UNSPECIFIED {
				return progressed, errResync
			}
			if c.GetType() == delegationv1.ChangeType_CHANGE_TYPE_REVOKED {
				w.stage(staging, c.GetDelegation())
			}
			w.apply(staging, c.GetRevision(), false)
			clear(staging)
			progressed = true
		case *delegationv1.WatchDelegationsResponse_Progress:
			if snapshotting {
				continue // the replica is incomplete: no contact yet
			}
			w.apply(nil, k.Progress.GetRevision(), false)
			progressed = true
		default:
			return progressed, errResync
		}
	}
}

// stage adds a revoked delegation to a batch, skipping (and logging) one
// whose id the server should never have sent. A revoked delegation without
// a valid expires_at is kept for the watcher's lifetime (zero time: never
// pruned): pruning it by an unknown expiry could make its tokens valid
// again, and refusing the message would stall the whole stream on one
// record.
func (w *Watcher) stage(batch map[delegation.ID]time.Time, d *delegationv1.Delegation) {
	id, err := delegation.ParseID(d.GetId())
	if err != nil {
		w.config.Logger.Error("Ignoring revoked delegation with malformed id", "error", err)
		return
	}
	ts := d.GetExpiresAt()
	if ts == nil || !ts.IsValid() || ts.GetSeconds() <= 0 {
		w.config.Logger.Error("Revoked delegation has no expires_at: keeping it until restart", "id", id.String())
		batch[id] = time.Time{}
		return
	}
	batch[id] = ts.AsTime()
}

// apply merges batch into the revoked set and records contact at revision.
func (w *Watcher) apply(batch map[delegation.ID]time.Time, revision uint64, snapshot bool) {
	now := w.config.Clock()
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, exp := range batch {
		w.revoked[id] = exp
	}
	if snapshot || revision > w.revision {
		w.revision = revision
	}
	w.ready = true
	w.lastContact = now
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
