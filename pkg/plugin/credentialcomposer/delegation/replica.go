package composer

import (
	"fmt"
	"sync"
	"time"

	domain "github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// sweepChunk bounds how many expired entries one write lock removes, so that
// a lookup never waits behind a long sweep.
const sweepChunk = 1000

// replica is the in-memory copy of the delegations agentid-server streams:
// every live delegation of the snapshot, plus revoked ones seen on the
// stream (so that their tokens fail as "revoked", not "unknown"), until a
// while after they expire.
//
// Lookups take a read lock for a map access. Every write section is O(1) or
// bounded by sweepChunk; snapshots are built outside the lock and swapped
// in. Nothing under the lock touches the network.
type replica struct {
	mu sync.RWMutex
	// ready is true from the first snapshot_end until a resync discards
	// the replica.
	ready bool
	// revision is the last revision applied (snapshot_end, change or
	// progress): where a broken stream resumes.
	revision uint64
	// lastHeard is when the last message arrived on a stream while ready.
	// reset keeps it: lookups judge readiness first, and the age gauge
	// goes on counting from the last message through a resync.
	lastHeard time.Time
	byID      map[domain.ID]*domain.Delegation
	// changed is closed and replaced after every update; tests wait on it.
	changed chan struct{}
}

func newReplica() *replica {
	return &replica{byID: map[domain.ID]*domain.Delegation{}, changed: make(chan struct{})}
}

// lookup returns the delegation id if it lets sub have a token at now. The
// checks run in the order of the README: freshness of the replica first,
// then existence, ownership, revocation, expiry. Ownership comes before
// state so that an agent learns nothing about another agent's delegation
// beyond that it exists.
func (r *replica) lookup(id domain.ID, sub spiffeid.ID, now time.Time, maxStaleness time.Duration) (*domain.Delegation, error) {
	d, _, err := r.lookupOrWait(id, sub, now, maxStaleness)
	return d, err
}

// lookupOrWait is lookup that also returns the channel the replica's next
// update closes, read under the same lock as the answer: a caller told
// "unknown" can wait on it without missing an update that came between.
// One lock per token: this is on SPIRE's signing path.
func (r *replica) lookupOrWait(id domain.ID, sub spiffeid.ID, now time.Time, maxStaleness time.Duration) (*domain.Delegation, <-chan struct{}, error) {
	r.mu.RLock()
	ready, heard, d, changed := r.ready, r.lastHeard, r.byID[id], r.changed
	r.mu.RUnlock()
	d, err := judge(id, sub, now, maxStaleness, ready, heard, d)
	return d, changed, err
}

// judge gives lookup's answer from what the replica held.
func judge(id domain.ID, sub spiffeid.ID, now time.Time, maxStaleness time.Duration, ready bool, heard time.Time, d *domain.Delegation) (*domain.Delegation, error) {
	switch {
	case !ready:
		return nil, ErrNotReady
	case now.Sub(heard) > maxStaleness:
		return nil, fmt.Errorf("%w: last heard from agentid-server %s ago, bound %s",
			ErrStale, now.Sub(heard).Truncate(time.Millisecond), maxStaleness)
	case d == nil:
		return nil, fmt.Errorf("%w: %s", ErrUnknownDelegation, id)
	case d.Agent != sub:
		return nil, fmt.Errorf("%w: %s", ErrForeignDelegation, id)
	case d.State == domain.StateRevoked:
		return nil, fmt.Errorf("%w: %s", ErrRevoked, id)
	case !d.ActiveAt(now):
		return nil, fmt.Errorf("%w: %s", ErrExpired, id)
	}
	return d, nil
}

// install replaces the content with a snapshot taken at revision and marks
// the replica ready.
func (r *replica) install(snapshot []*domain.Delegation, revision uint64, now time.Time) {
	m := make(map[domain.ID]*domain.Delegation, len(snapshot))
	for _, d := range snapshot {
		m[d.ID] = d
	}
	r.mu.Lock()
	r.byID, r.revision, r.lastHeard, r.ready = m, revision, now, true
	r.broadcastLocked()
	r.mu.Unlock()
}

// apply records one change: d replaces the entry id, or removes it when d is
// nil. fresh says whether the change proves the replica current: a change
// on a fresh watch after snapshot_end is live, while one of a resumed
// watch's backlog is not (later changes of the backlog, revocations among
// them, are still to come), so it advances the revision but not lastHeard;
// the progress that ends the backlog does.
//
// These are protocol errors, answered by a resync: a revision that does
// not increase, the zero id (a change whose id did not parse: the replica
// cannot tell what it names, and it may be a revocation), and an active
// delegation replacing a revoked one (revocation is final; a "created"
// change for a revoked id means the streams disagree).
func (r *replica) apply(id domain.ID, d *domain.Delegation, revision uint64, now time.Time, fresh bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if revision <= r.revision {
		return fmt.Errorf("%w: change revision %d after revision %d", errProtocol, revision, r.revision)
	}
	if id.IsZero() {
		return fmt.Errorf("%w: change at revision %d names no valid delegation id", errProtocol, revision)
	}
	if old := r.byID[id]; old != nil && old.State == domain.StateRevoked && d != nil && d.State != domain.StateRevoked {
		return fmt.Errorf("%w: change at revision %d reactivates revoked delegation %s", errProtocol, revision, id)
	}
	if d == nil {
		delete(r.byID, id)
	} else {
		r.byID[id] = d
	}
	r.revision = revision
	if fresh {
		r.lastHeard = now
	}
	r.broadcastLocked()
	return nil
}

// progress records a heartbeat: the stream is alive and current up to
// revision.
func (r *replica) progress(revision uint64, now time.Time) {
	r.mu.Lock()
	r.revision = max(r.revision, revision)
	r.lastHeard = now
	r.broadcastLocked()
	r.mu.Unlock()
}

// reset discards everything: the replica is not ready until the next
// snapshot_end.
func (r *replica) reset() {
	r.mu.Lock()
	r.byID, r.revision, r.ready = map[domain.ID]*domain.Delegation{}, 0, false
	r.broadcastLocked()
	r.mu.Unlock()
}

// resumePoint returns the revision to resume from, and whether there is one.
func (r *replica) resumePoint() (uint64, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.revision, r.ready
}

// sweep forgets delegations whose expiry is more than grace before now
// (revoked ones included). Until then an expired delegation is reported as
// expired rather than unknown. It collects under the read lock and deletes
// in chunks, so lookups keep running. It returns how many it removed.
func (r *replica) sweep(now time.Time, grace time.Duration) int {
	var old []domain.ID
	r.mu.RLock()
	for id, d := range r.byID {
		if !now.Before(d.ExpiresAt.Add(grace)) {
			old = append(old, id)
		}
	}
	r.mu.RUnlock()
	removed := 0
	for len(old) > 0 {
		n := min(len(old), sweepChunk)
		r.mu.Lock()
		for _, id := range old[:n] {
			// The entry may have changed since the scan; re-check.
			if d, ok := r.byID[id]; ok && !now.Before(d.ExpiresAt.Add(grace)) {
				delete(r.byID, id)
				removed++
			}
		}
		r.mu.Unlock()
		old = old[n:]
	}
	return removed
}

// size returns the number of entries.
func (r *replica) size() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byID)
}

// heard returns whether the replica is ready and when it last heard from
// agentid-server (zero if never).
func (r *replica) heard() (bool, time.Time) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.ready, r.lastHeard
}

// changes returns a channel that is closed at the next update.
func (r *replica) changes() <-chan struct{} {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.changed
}

func (r *replica) broadcastLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}
