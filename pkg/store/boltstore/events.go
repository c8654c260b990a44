package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/internal/pagetoken"
)

// appendEvents seals evs onto the chain, after the last event recorded in
// the meta bucket, and writes them with their index entries. The sequence
// and hash come from the transaction, so a retried batch seals the same way.
func appendEvents(tx *bolt.Tx, evs []*audit.Event) error {
	meta := tx.Bucket(bucketMeta)
	head, err := readAuditHead(meta)
	if err != nil {
		return err
	}
	seq, prev := head.Sequence, head.Hash
	events := tx.Bucket(bucketEvents)
	events.FillPercent = appendFill
	byDelegation := tx.Bucket(bucketEventsByDelegation)
	byType := tx.Bucket(bucketEventsByType)
	byType.FillPercent = appendFill
	// A batch of token issuances names a few delegations many times: find
	// each one's index prefix once.
	prefixes := map[string][]byte{}
	for _, e := range evs {
		seq++
		e.Seal(seq, prev)
		prev = e.Hash
		record, err := e.MarshalJSON()
		if err != nil {
			return fmt.Errorf("store: failed to encode audit event %d: %w", seq, err)
		}
		key := u64(seq)
		if err := events.Put(key, record); err != nil {
			return fmt.Errorf("store: failed to write audit event %d: %w", seq, err)
		}
		typeKey, err := eventTypeKey(e.Type)
		if err != nil {
			return err
		}
		if err := byType.Put(join(typeKey, key), []byte{}); err != nil {
			return fmt.Errorf("store: failed to index audit event %d: %w", seq, err)
		}
		if e.DelegationID != "" {
			prefix, ok := prefixes[e.DelegationID]
			if !ok {
				prefix = eventDelegationPrefix(tx, e.DelegationID)
				prefixes[e.DelegationID] = prefix
			}
			if err := byDelegation.Put(join(prefix, key), []byte{}); err != nil {
				return fmt.Errorf("store: failed to index audit event %d: %w", seq, err)
			}
		}
	}
	if err := meta.Put(keyAuditSeq, u64(seq)); err != nil {
		return fmt.Errorf("store: failed to write audit head: %w", err)
	}
	if err := meta.Put(keyAuditHash, prev[:]); err != nil {
		return fmt.Errorf("store: failed to write audit head: %w", err)
	}
	return nil
}

// AuditHead implements store.Store.
func (s *Store) AuditHead(ctx context.Context) (audit.Anchor, error) {
	if err := s.begin(ctx); err != nil {
		return audit.Anchor{}, err
	}
	var head audit.Anchor
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		head, err = readAuditHead(tx.Bucket(bucketMeta))
		return err
	})
	return head, boltErr("read audit head", err)
}

// readAuditHead reads the sequence and hash of the last event from the meta
// bucket; the zero Anchor for an empty log.
func readAuditHead(meta *bolt.Bucket) (audit.Anchor, error) {
	var head audit.Anchor
	seq, err := readU64(meta.Get(keyAuditSeq))
	if err != nil || seq == 0 {
		return head, err
	}
	v := meta.Get(keyAuditHash)
	if len(v) != len(head.Hash) {
		return head, fmt.Errorf("store: corrupt audit head: hash of %d bytes", len(v))
	}
	head.Sequence = seq
	copy(head.Hash[:], v)
	return head, nil
}

// AppendEvents implements store.Store. Each event must pass Validate (a
// zero Time is set from the clock first); if one fails, none is written.
// Concurrent calls share transactions (see commit.go).
func (s *Store) AppendEvents(ctx context.Context, evs ...audit.Event) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	if len(evs) == 0 {
		return nil
	}
	checked := make([]audit.Event, len(evs))
	for i, e := range evs {
		if e.Type == audit.TypeAuditPruned {
			// Only PruneEvents records a prune, with the base it moves.
			return fmt.Errorf("%w: event %d: %s events are recorded by PruneEvents only", store.ErrInvalidArgument, i, e.Type)
		}
		if err := s.checkEvent(&e); err != nil {
			return err
		}
		checked[i] = e
	}
	err := s.committer.write(ctx, func(tx *bolt.Tx) error {
		// Seal copies: a retried run must start from the unsealed events.
		ptrs := make([]*audit.Event, len(checked))
		for i := range checked {
			e := checked[i]
			ptrs[i] = &e
		}
		return appendEvents(tx, ptrs)
	})
	return boltErr("append audit events", err)
}

// ListEvents implements store.Store. With a DelegationID it walks that
// delegation's events, else with a Type the events of that type, else the
// whole log; in every case in sequence order from AfterSeq (exclusive),
// and after the base of the last PruneEvents.
func (s *Store) ListEvents(ctx context.Context, f store.EventFilter, p store.Page) ([]audit.Event, string, error) {
	if err := s.begin(ctx); err != nil {
		return nil, "", err
	}
	limit, err := p.Limit()
	if err != nil {
		return nil, "", err
	}
	tag := pagetoken.EventsTag(f)
	after, err := pagetoken.Parse(pagetoken.Events, p.Token, tag)
	if err != nil {
		return nil, "", err
	}
	after = max(after, f.AfterSeq)
	if f.Type != audit.TypeUnspecified && !f.Type.Valid() {
		return nil, "", fmt.Errorf("%w: filter event type %d is unknown", store.ErrInvalidArgument, f.Type)
	}

	var out []audit.Event
	err = s.db.View(func(tx *bolt.Tx) error {
		// Events at or below the base are pruned, whether or not their
		// keys are deleted yet (see PruneEvents): start after it.
		base, err := readAuditBase(tx.Bucket(bucketMeta))
		if err != nil {
			return err
		}
		after := max(after, base.Sequence)
		if after == ^uint64(0) {
			return nil
		}
		// Each source yields sequence numbers in order; a delegation's
		// events may come from two (see eventDelegationPrefix), merged here.
		var sources []*seqCursor
		switch {
		case f.DelegationID != "":
			for _, prefix := range eventDelegationPrefixes(tx, f.DelegationID) {
				sources = append(sources, newSeqCursor(tx, bucketEventsByDelegation, prefix, after))
			}
		case f.Type != audit.TypeUnspecified:
			sources = append(sources, newSeqCursor(tx, bucketEventsByType, []byte{byte(f.Type)}, after)) //nolint:gosec // audit.Type is a small enum; the filter is validated by the caller
		default:
			sources = append(sources, newSeqCursor(tx, bucketEvents, nil, after))
		}
		records := tx.Bucket(bucketEvents)
		for n := 1; ; n++ {
			if n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			var next *seqCursor
			for _, src := range sources {
				if src.err != nil {
					return src.err
				}
				if src.key != nil && (next == nil || bytes.Compare(src.key, next.key) < 0) {
					next = src
				}
			}
			if next == nil {
				return nil
			}
			key := next.key
			next.advance()
			v := records.Get(key)
			if v == nil {
				return fmt.Errorf("store: corrupt index %s: no event %d", next.bucket, binary.BigEndian.Uint64(key))
			}
			var e audit.Event
			if err := e.UnmarshalJSON(v); err != nil {
				return fmt.Errorf("store: corrupt audit event %d: %w", binary.BigEndian.Uint64(key), err)
			}
			if f.Type != audit.TypeUnspecified && e.Type != f.Type {
				continue
			}
			if out = append(out, e); len(out) > limit {
				return nil
			}
		}
	})
	if err != nil {
		return nil, "", boltErr("list audit events", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = pagetoken.Make(pagetoken.Events, out[limit-1].Sequence, tag)
	}
	return out, next, nil
}

// seqCursor walks the keys of one bucket that start with prefix and end
// with an 8-byte sequence number, in order, from after (exclusive). key is
// the current sequence number, nil at the end.
type seqCursor struct {
	bucket []byte
	c      *bolt.Cursor
	prefix []byte
	key    []byte
	err    error
}

func newSeqCursor(tx *bolt.Tx, bucket, prefix []byte, after uint64) *seqCursor {
	sc := &seqCursor{bucket: bucket, c: tx.Bucket(bucket).Cursor(), prefix: prefix}
	k, _ := sc.c.Seek(join(prefix, u64(after+1)))
	sc.set(k)
	return sc
}

func (sc *seqCursor) advance() {
	k, _ := sc.c.Next()
	sc.set(k)
}

func (sc *seqCursor) set(k []byte) {
	switch {
	case k == nil || !bytes.HasPrefix(k, sc.prefix):
		sc.key = nil
	case len(k) != len(sc.prefix)+8:
		sc.key, sc.err = nil, fmt.Errorf("store: corrupt index %s: key %x", sc.bucket, k)
	default:
		sc.key = k[len(sc.prefix):]
	}
}
