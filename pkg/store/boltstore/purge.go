package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
)

// PurgeExpired implements store.Store. There is no index by expiry: a call
// walks the records in creation order, decoding each, from the oldest up
// to the first one whose creation is still in the revision log (the log
// names records by seq, so a record it names must stay), and stops once it
// has limit to delete. Its cost is therefore the number of old records it
// keeps (not yet expired, or still named by a retained revocation) plus
// limit, and one pass over the revision log (up to Options.ChangeLogLimit
// keys) to find the revocations it still names. The server calls it every
// few minutes, so neither is a hot path; an expiry index would need a schema
// migration for a gain that only matters to stores full of long-lived
// delegations.
//
// A purge deletes the record and its entries in ids, idx_user, idx_agent,
// idx_state and idx_children, and moves the entries of its audit events in
// idx_event_delegation from its seq to its id text, where events naming an
// unknown id live, so ListEvents still finds them. bbolt does not shrink the
// file: the freed pages are reused by later writes.
//
// The search runs in a read transaction, beside writers; the deletion in a
// short write transaction of its own, not through the committer, so a purge
// is never retried with, nor slows, the small writes the committer groups.
func (s *Store) PurgeExpired(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	switch {
	case before.IsZero():
		return 0, fmt.Errorf("%w: zero purge time", store.ErrInvalidArgument)
	case limit < 1:
		return 0, fmt.Errorf("%w: purge limit %d is not positive", store.ErrInvalidArgument, limit)
	}
	// The search runs in a read transaction, which bbolt runs beside the
	// writer: however many old records it walks, creates and revokes do not
	// wait for it. The write transaction then re-checks each candidate and
	// deletes it, a short write.
	var (
		doomed, parents []node
		lastRevision    uint64
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		doomed, parents, lastRevision, err = purgeCandidates(ctx, tx, before, limit)
		return err
	})
	if err != nil {
		return 0, boltErr("find expired delegations", err)
	}
	if len(doomed) == 0 && len(parents) == 0 {
		return 0, nil
	}
	var purged int
	err = s.db.Update(func(tx *bolt.Tx) error {
		var err error
		purged, err = deleteCandidates(tx, doomed, parents, lastRevision, limit)
		return err
	})
	if err != nil {
		return 0, boltErr("purge expired delegations", err)
	}
	return purged, nil
}

// maxParentsPerCall bounds, as a multiple of the limit, the parents a call
// sets aside for after their children, so memory stays bounded when many
// expired parents still have stored children.
const maxParentsPerCall = 4

// purgeCandidates finds up to limit purgeable delegations without children
// (doomed) and the parents met with children still stored, which become
// purgeable once those go; and the last revision of the log it saw. Parents
// come before their children in creation order, so the parents are deleted
// after the pass, in reverse order.
func purgeCandidates(ctx context.Context, tx *bolt.Tx, before time.Time, limit int) (doomed, parents []node, lastRevision uint64, err error) {
	compacted, err := readU64(tx.Bucket(bucketMeta).Get(keyCompacted))
	if err != nil || compacted == 0 {
		return nil, nil, 0, err // every record is still named by its creation
	}
	if k, _ := tx.Bucket(bucketChanges).Cursor().Last(); len(k) == 8 {
		lastRevision = binary.BigEndian.Uint64(k)
	}
	named, err := revokedInLog(ctx, tx, compacted)
	if err != nil {
		return nil, nil, 0, err
	}
	c := tx.Bucket(bucketDelegations).Cursor()
	n := 0
	for k, v := c.First(); k != nil && len(doomed) < limit; k, v = c.Next() {
		if n++; n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, nil, 0, err
			}
		}
		if len(k) != 8 {
			return nil, nil, 0, fmt.Errorf("store: corrupt delegation key %x", k)
		}
		seq := binary.BigEndian.Uint64(k)
		if seq > compacted {
			break // this record and all later ones are named by their creation
		}
		d, err := decodeDelegation(k, v, "")
		if err != nil {
			return nil, nil, 0, err
		}
		if !d.ExpiresAt.Before(before) || named[seq] {
			continue
		}
		nd := node{d, bytes.Clone(k)}
		switch {
		case !hasChildren(tx, k):
			doomed = append(doomed, nd)
		case len(parents) < maxParentsPerCall*limit:
			parents = append(parents, nd)
		default:
			// Set aside no more: a parent left out here has no children
			// left once they are purged, and a later call deletes it.
		}
	}
	return doomed, parents, lastRevision, nil
}

// deleteCandidates deletes, in the write transaction, the candidates that
// are still purgeable: still stored, without children, and not named by a
// change logged after the search (a revocation since would change the
// record and must keep it for the log).
func deleteCandidates(tx *bolt.Tx, doomed, parents []node, lastRevision uint64, limit int) (int, error) {
	namedSince := make(map[uint64]bool)
	c := tx.Bucket(bucketChanges).Cursor()
	for k, v := c.Seek(u64(lastRevision + 1)); k != nil; k, v = c.Next() {
		if len(k) != 8 || len(v) != 9 {
			return 0, fmt.Errorf("store: corrupt revision log entry %x", k)
		}
		namedSince[binary.BigEndian.Uint64(v[1:])] = true
	}
	records := tx.Bucket(bucketDelegations)
	purgeable := func(nd node) bool {
		return records.Get(nd.seq) != nil && !hasChildren(tx, nd.seq) && !namedSince[binary.BigEndian.Uint64(nd.seq)]
	}
	purged := 0
	for _, nd := range doomed {
		if !purgeable(nd) {
			continue
		}
		if err := deleteRecord(tx, nd); err != nil {
			return 0, err
		}
		purged++
	}
	// In reverse creation order, a child set aside is deleted before its
	// parent is looked at.
	for _, nd := range slices.Backward(parents) {
		if purged == limit {
			break
		}
		if !purgeable(nd) {
			continue // a child was not purgeable, or beyond this call's limit
		}
		if err := deleteRecord(tx, nd); err != nil {
			return 0, err
		}
		purged++
	}
	return purged, nil
}

// revokedInLog returns the seqs, created at or before compacted, that a
// revocation retained in the revision log names.
func revokedInLog(ctx context.Context, tx *bolt.Tx, compacted uint64) (map[uint64]bool, error) {
	named := make(map[uint64]bool)
	n := 0
	err := tx.Bucket(bucketChanges).ForEach(func(k, v []byte) error {
		if n++; n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if len(k) != 8 || len(v) != 9 {
			return fmt.Errorf("store: corrupt revision log entry %x", k)
		}
		if seq := binary.BigEndian.Uint64(v[1:]); v[0] == changeRevoked && seq <= compacted {
			named[seq] = true
		}
		return nil
	})
	return named, err
}

// hasChildren reports whether idx_children holds a child of the record at seq.
func hasChildren(tx *bolt.Tx, seq []byte) bool {
	k, _ := tx.Bucket(bucketChildren).Cursor().Seek(seq)
	return k != nil && bytes.HasPrefix(k, seq)
}

// deleteRecord deletes one record with its index entries and re-indexes
// its audit events under its id.
func deleteRecord(tx *bolt.Tx, nd node) error {
	d, seq := nd.d, nd.seq
	id := []byte(d.ID.String())
	deletes := []struct{ bucket, key []byte }{
		{bucketDelegations, seq},
		{bucketIDs, id},
		{bucketByUser, join(userPrefix(d.User.Issuer(), d.User.Subject()), seq)},
		{bucketByAgent, join(agentPrefix(d.Agent.String()), seq)},
		{bucketByState, join([]byte{stateByte(d.State)}, seq)},
	}
	if !d.IsRoot() {
		// A parent is never deleted before its children, so it is stored.
		if parentSeq := tx.Bucket(bucketIDs).Get([]byte(d.Parent.String())); parentSeq != nil {
			deletes = append(deletes, struct{ bucket, key []byte }{bucketChildren, join(parentSeq, seq)})
		}
	}
	for _, del := range deletes {
		if err := tx.Bucket(del.bucket).Delete(del.key); err != nil {
			return fmt.Errorf("store: failed to delete %s of %s: %w", del.bucket, d.ID, err)
		}
	}
	return moveEventIndex(tx, d.ID, seq)
}

// moveEventIndex moves the idx_event_delegation entries of the record at
// seq to the prefix of its id text (see eventDelegationPrefix). Entries of
// pruned events (at or below the audit base, left by a deletion still in
// progress) are deleted, not moved: a deletion that already walked past the
// id's prefix would never see them there.
func moveEventIndex(tx *bolt.Tx, id delegation.ID, seq []byte) error {
	base, err := readAuditBase(tx.Bucket(bucketMeta))
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketEventsByDelegation)
	from := join([]byte{eventsOfSeq}, seq)
	to := join([]byte{eventsOfID}, []byte(id.String()), []byte{0})
	// Collect first: deleting under a moving cursor skips keys in bbolt.
	var sequences [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(from); k != nil && bytes.HasPrefix(k, from); k, _ = c.Next() {
		if len(k) != len(from)+8 {
			return fmt.Errorf("store: corrupt index %s: key %x", bucketEventsByDelegation, k)
		}
		sequences = append(sequences, bytes.Clone(k[len(from):]))
	}
	for _, sq := range sequences {
		if err := b.Delete(join(from, sq)); err != nil {
			return fmt.Errorf("store: failed to re-index events of %s: %w", id, err)
		}
		if binary.BigEndian.Uint64(sq) <= base.Sequence {
			continue
		}
		if err := b.Put(join(to, sq), []byte{}); err != nil {
			return fmt.Errorf("store: failed to re-index events of %s: %w", id, err)
		}
	}
	return nil
}
