package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/store"
)

// defaultPruneChunk bounds the work of one deletion transaction of
// PruneEvents: keys deleted plus index groups skipped. bbolt has one writer
// at a time, so a create that arrives during a prune waits for at most one
// chunk, not for the whole deletion (BenchmarkPruneEvents measures both).
// Tests lower Store.pruneChunk to cross many chunk boundaries.
const defaultPruneChunk = 5000

// PruneEvents implements store.Store. It runs in two steps.
//
// The first is one transaction, through the committer like any append: it
// checks the anchor against the stored event, moves the base (meta
// "audit_base_seq", "audit_base_hash") to it and appends the TypeAuditPruned
// event. From that commit on, every reader starts after the base (ListEvents,
// Check), so the events at or below it are gone as far as anyone can see,
// whether or not their bytes are.
//
// The second deletes those events and their index entries in transactions
// of at most defaultPruneChunk keys (sweepPruned), outside the committer so
// that the small writes it groups wait for one chunk at a time, then records
// in meta "audit_swept" the base it finished. A crash or a Close in between leaves
// keys at or below the base that nobody reads; Open finishes the deletion
// when "audit_swept" is behind the base, and so does the next PruneEvents
// (its base covers them).
func (s *Store) PruneEvents(ctx context.Context, through audit.Anchor, ev audit.Event) (int, error) {
	pruned, err := s.commitPrune(ctx, through, ev)
	if err != nil {
		return 0, err
	}
	// The prune is committed: the deletion is not the caller's to cancel
	// (an interrupted one is finished later anyway), so ctx is not passed.
	if _, err := s.sweepPruned(); err != nil {
		return pruned, fmt.Errorf("store: pruned through %s, but deleting the pruned events failed (they stay invisible and are deleted on the next Open): %w", through, err)
	}
	return pruned, nil
}

// commitPrune is the first step of PruneEvents: the checks, the base and
// the prune's event, in one transaction.
func (s *Store) commitPrune(ctx context.Context, through audit.Anchor, ev audit.Event) (int, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	if through.Sequence == 0 {
		return 0, fmt.Errorf("%w: prune through sequence 0: no event has it", store.ErrInvalidArgument)
	}
	if ev.Type != audit.TypeAuditPruned {
		return 0, fmt.Errorf("%w: prune event has type %s, want %s", store.ErrInvalidArgument, ev.Type, audit.TypeAuditPruned)
	}
	ev.Detail = maps.Clone(ev.Detail)
	if ev.Detail == nil {
		ev.Detail = map[string]string{}
	}
	ev.Detail[store.DetailThroughSequence] = strconv.FormatUint(through.Sequence, 10)
	ev.Detail[store.DetailThroughHash] = through.Hash.String()
	if err := s.checkEvent(&ev); err != nil {
		return 0, err
	}
	var pruned int
	err := s.committer.write(ctx, func(tx *bolt.Tx) error {
		pruned = 0 // a retried run starts over
		meta := tx.Bucket(bucketMeta)
		base, err := readAuditBase(meta)
		if err != nil {
			return err
		}
		head, err := readAuditHead(meta)
		if err != nil {
			return err
		}
		switch {
		case through.Sequence <= base.Sequence:
			return fmt.Errorf("%w: the log was already pruned through %s", store.ErrAnchorMismatch, base)
		case through.Sequence > head.Sequence:
			return fmt.Errorf("%w: sequence %d is beyond the last event %d", store.ErrInvalidArgument, through.Sequence, head.Sequence)
		}
		v := tx.Bucket(bucketEvents).Get(u64(through.Sequence))
		if v == nil {
			return fmt.Errorf("store: corrupt audit log: no event %d between the base %d and the head %d", through.Sequence, base.Sequence, head.Sequence)
		}
		var stored audit.Event
		if err := stored.UnmarshalJSON(v); err != nil {
			return fmt.Errorf("store: corrupt audit event %d: %w", through.Sequence, err)
		}
		if stored.Hash != through.Hash {
			return fmt.Errorf("%w: event %d has hash %s, not %s", store.ErrAnchorMismatch, through.Sequence, stored.Hash, through.Hash)
		}
		if err := meta.Put(keyAuditBaseSeq, u64(through.Sequence)); err != nil {
			return fmt.Errorf("store: failed to write audit base: %w", err)
		}
		if err := meta.Put(keyAuditBaseHash, through.Hash[:]); err != nil {
			return fmt.Errorf("store: failed to write audit base: %w", err)
		}
		e := ev // seal a copy: a retried run must start from the unsealed event
		if err := appendEvents(tx, []*audit.Event{&e}); err != nil {
			return err
		}
		pruned = int(through.Sequence - base.Sequence) //nolint:gosec // through is at or after base: the count of events in the store
		return nil
	})
	if err != nil {
		return 0, boltErr("prune audit events", err)
	}
	return pruned, nil
}

// AuditBase implements store.Store.
func (s *Store) AuditBase(ctx context.Context) (audit.Anchor, error) {
	if err := s.begin(ctx); err != nil {
		return audit.Anchor{}, err
	}
	var base audit.Anchor
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		base, err = readAuditBase(tx.Bucket(bucketMeta))
		return err
	})
	return base, boltErr("read audit base", err)
}

// readAuditBase reads the anchor of the last event pruned; the zero Anchor
// when the keys are absent (a store never pruned, or written before pruning
// existed).
func readAuditBase(meta *bolt.Bucket) (audit.Anchor, error) {
	var base audit.Anchor
	seq, err := readU64(meta.Get(keyAuditBaseSeq))
	if err != nil || seq == 0 {
		return base, err
	}
	v := meta.Get(keyAuditBaseHash)
	if len(v) != len(base.Hash) {
		return base, fmt.Errorf("store: corrupt audit base: hash of %d bytes", len(v))
	}
	base.Sequence = seq
	copy(base.Hash[:], v)
	return base, nil
}

// readPruneState returns the base and the base up to which the deletion of
// pruned keys finished ("audit_swept"; at most the base).
func readPruneState(meta *bolt.Bucket) (base audit.Anchor, swept uint64, err error) {
	if base, err = readAuditBase(meta); err != nil {
		return base, 0, err
	}
	if swept, err = readU64(meta.Get(keyAuditSwept)); err != nil {
		return base, 0, err
	}
	return base, swept, nil
}

// sweepPruned deletes the events and index entries at or below the base
// read when it starts, s.pruneChunk units of work per transaction, and then
// records that base as swept. It returns how many events it deleted. One
// sweep runs at a time; a sweep that finds the base already swept does
// nothing.
//
// The indexes are walked rather than derived from the events: an
// idx_event_delegation key's prefix depends on whether its delegation was
// stored when the event was appended and whether it was purged since (see
// eventDelegationPrefix, moveEventIndex), and the walk needs neither. Keys
// are grouped by prefix, each group's sequences ascending, so the walk
// deletes a group's leading keys up to the base and seeks past the rest of
// the group: one seek per group plus one step per key deleted.
func (s *Store) sweepPruned() (int, error) {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	var (
		base  audit.Anchor
		swept uint64
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		base, swept, err = readPruneState(tx.Bucket(bucketMeta))
		return err
	})
	if err != nil || swept >= base.Sequence {
		return 0, boltErr("read audit base", err)
	}
	deleted := 0
	sweeps := []*sweep{
		{bucket: bucketEvents, prefixLen: func([]byte) int { return 0 }},
		{bucket: bucketEventsByType, prefixLen: func([]byte) int { return 1 }},
		{bucket: bucketEventsByDelegation, prefixLen: eventDelegationPrefixLen},
	}
	for _, sw := range sweeps {
		for !sw.done {
			if s.closed.Load() {
				return deleted, store.ErrClosed
			}
			err := s.db.Update(func(tx *bolt.Tx) error {
				n, err := sw.step(tx, base.Sequence, s.pruneChunk)
				if bytes.Equal(sw.bucket, bucketEvents) {
					deleted += n
				}
				return err
			})
			if err != nil {
				return deleted, boltErr("delete pruned audit events", err)
			}
		}
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		// A later prune's sweep may have finished first (they take turns,
		// but in no set order): the mark only moves forward.
		if cur, err := readU64(meta.Get(keyAuditSwept)); err != nil || cur >= base.Sequence {
			return err
		}
		return meta.Put(keyAuditSwept, u64(base.Sequence))
	})
	return deleted, boltErr("record pruned audit events as deleted", err)
}

// sweep is the position of sweepPruned in one bucket whose keys are a
// prefix followed by an 8-byte sequence, grouped by prefix.
type sweep struct {
	bucket    []byte
	prefixLen func(key []byte) int // -1 for a malformed key
	next      []byte               // the key to resume at; nil: the first
	done      bool
}

// step deletes the keys at or below base from the resume position on, and
// stops after budget units of work (a key deleted, or a seek past the rest
// of a group). Keys before the resume position at or below base were
// deleted by earlier steps, and none is added since: new events have
// sequences above the base.
func (sw *sweep) step(tx *bolt.Tx, base uint64, budget int) (int, error) {
	b := tx.Bucket(sw.bucket)
	c := b.Cursor()
	var k []byte
	if sw.next == nil {
		k, _ = c.First()
	} else {
		k, _ = c.Seek(sw.next)
	}
	// Collect first: deleting under a moving cursor skips keys in bbolt.
	var doomed [][]byte
	for work := 0; k != nil && work < budget; work++ {
		n := sw.prefixLen(k)
		if n < 0 || len(k) != n+8 {
			// A malformed key is Check's to report, not a reason to stop:
			// a sweep that failed on it would fail every Open after, and
			// the store could never start again.
			k, _ = c.Next()
			continue
		}
		if binary.BigEndian.Uint64(k[n:]) <= base {
			doomed = append(doomed, bytes.Clone(k))
			k, _ = c.Next()
			continue
		}
		// The rest of this group is above the base: go to the next group.
		last := join(k[:n], u64(math.MaxUint64))
		if k, _ = c.Seek(last); k != nil && bytes.Equal(k, last) {
			k, _ = c.Next()
		}
	}
	sw.next, sw.done = bytes.Clone(k), k == nil
	for _, key := range doomed {
		if err := b.Delete(key); err != nil {
			return 0, fmt.Errorf("store: failed to delete pruned %s key %x: %w", sw.bucket, key, err)
		}
	}
	return len(doomed), nil
}

// eventDelegationPrefixLen is the length of the prefix of an
// idx_event_delegation key (see eventDelegationPrefix), -1 if malformed.
func eventDelegationPrefixLen(k []byte) int {
	switch {
	case len(k) > 0 && k[0] == eventsOfSeq:
		return 1 + 8
	case len(k) > 0 && k[0] == eventsOfID:
		// An id holds no NUL, so the first one ends it.
		if i := bytes.IndexByte(k, 0); i > 0 {
			return i + 1
		}
	}
	return -1
}
