package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/store"
)

// maxProblems bounds how many problems Check reports.
const maxProblems = 20

// Check verifies the whole file: bbolt's own page consistency check, that
// every index entry matches a record and every record its index entries,
// that the revision log is contiguous up to the current revision, and that
// the audit log is an unbroken hash chain ending at the head kept in the meta
// bucket. It reads every record, and blocks writers while it runs: it is for
// tests, and for operators after a crash or a restore, not for a hot path.
// It returns nil or the problems found (at most 20), joined.
func (s *Store) Check(ctx context.Context) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	var problems []error
	report := func(format string, args ...any) bool {
		problems = append(problems, fmt.Errorf("store: check: "+format, args...))
		return len(problems) < maxProblems
	}
	// A write transaction holds writers off, which bbolt requires for
	// Check, and is rolled back: Check writes nothing.
	errDone := errors.New("done")
	err := s.db.Update(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			if !report("bbolt: %v", err) {
				return errDone
			}
		}
		for _, check := range []func(*bolt.Tx, func(string, ...any) bool) bool{
			checkDelegations, checkChanges, checkEvents,
		} {
			if err := ctx.Err(); err != nil {
				return err
			}
			if !check(tx, report) {
				return errDone
			}
		}
		return errDone
	})
	if err != nil && !errors.Is(err, errDone) {
		return boltErr("check", err)
	}
	return errors.Join(problems...)
}

// entrySet is the set of keys of one bucket.
func entrySet(tx *bolt.Tx, name []byte) map[string]bool {
	keys := make(map[string]bool)
	_ = tx.Bucket(name).ForEach(func(k, _ []byte) error {
		keys[string(k)] = true
		return nil
	})
	return keys
}

// checkDelegations compares the records with the id, user, agent, state
// and children indexes, entry by entry.
func checkDelegations(tx *bolt.Tx, report func(string, ...any) bool) bool {
	indexes := map[string]map[string]bool{
		string(bucketByUser):   entrySet(tx, bucketByUser),
		string(bucketByAgent):  entrySet(tx, bucketByAgent),
		string(bucketByState):  entrySet(tx, bucketByState),
		string(bucketChildren): entrySet(tx, bucketChildren),
	}
	ids := make(map[string][]byte)
	_ = tx.Bucket(bucketIDs).ForEach(func(k, v []byte) error {
		ids[string(k)] = bytes.Clone(v)
		return nil
	})
	ok := true
	_ = tx.Bucket(bucketDelegations).ForEach(func(seq, v []byte) error {
		d, err := decodeDelegation(seq, v, "")
		if err != nil {
			ok = ok && report("%v", err)
			return nil
		}
		if got, found := ids[d.ID.String()]; !found || !bytes.Equal(got, seq) {
			ok = ok && report("delegation %s at seq %x: %s entry is %x", d.ID, seq, bucketIDs, got)
		}
		delete(ids, d.ID.String())
		want := map[string][]byte{
			string(bucketByUser):  join(userPrefix(d.User.Issuer(), d.User.Subject()), seq),
			string(bucketByAgent): join(agentPrefix(d.Agent.String()), seq),
			string(bucketByState): join([]byte{stateByte(d.State)}, seq),
		}
		if !d.IsRoot() {
			parentSeq := tx.Bucket(bucketIDs).Get([]byte(d.Parent.String()))
			if parentSeq == nil {
				ok = ok && report("delegation %s: parent %s is missing", d.ID, d.Parent)
			} else {
				want[string(bucketChildren)] = join(parentSeq, seq)
			}
		}
		for index, key := range want {
			if !indexes[index][string(key)] {
				ok = ok && report("delegation %s: no %s entry", d.ID, index)
			}
			delete(indexes[index], string(key))
		}
		return nil
	})
	for id, seq := range ids {
		ok = ok && report("%s: %s points to seq %x, which holds another record or none", bucketIDs, id, seq)
	}
	for index, rest := range indexes {
		for key := range rest {
			ok = ok && report("%s: entry %x has no matching record", index, key)
		}
	}
	return ok
}

// checkChanges checks that the revision log holds exactly the revisions
// after the compacted one up to the current one, each naming a record.
func checkChanges(tx *bolt.Tx, report func(string, ...any) bool) bool {
	meta := tx.Bucket(bucketMeta)
	rev, err1 := readU64(meta.Get(keyRevision))
	compacted, err2 := readU64(meta.Get(keyCompacted))
	if err := errors.Join(err1, err2); err != nil {
		return report("meta: %v", err)
	}
	if compacted > rev {
		return report("revision log: compacted revision %d is after the current %d", compacted, rev)
	}
	next := compacted + 1
	ok := true
	records := tx.Bucket(bucketDelegations)
	_ = tx.Bucket(bucketChanges).ForEach(func(k, v []byte) error {
		if len(k) != 8 || len(v) != 9 {
			ok = ok && report("revision log: malformed entry %x", k)
			return nil
		}
		r := binary.BigEndian.Uint64(k)
		if r != next {
			ok = ok && report("revision log: revision %d where %d was expected", r, next)
		}
		next = r + 1
		if v[0] != changeCreated && v[0] != changeRevoked {
			ok = ok && report("revision log: revision %d has kind %q", r, v[0])
		}
		if records.Get(v[1:]) == nil {
			ok = ok && report("revision log: revision %d names missing seq %x", r, v[1:])
		}
		return nil
	})
	if next != rev+1 {
		ok = ok && report("revision log ends at %d, the current revision is %d", next-1, rev)
	}
	return ok
}

// checkEvents verifies the audit chain against the head in the meta bucket
// and the event indexes against the events.
func checkEvents(tx *bolt.Tx, report func(string, ...any) bool) bool {
	meta := tx.Bucket(bucketMeta)
	seq, err := readU64(meta.Get(keyAuditSeq))
	if err != nil {
		return report("meta: %v", err)
	}
	var head audit.Anchor
	if seq > 0 {
		head.Sequence = seq
		copy(head.Hash[:], meta.Get(keyAuditHash))
	}
	base, swept, err := readPruneState(meta)
	if err != nil {
		return report("meta: %v", err)
	}
	// Keys at or below the base are pruned: left over while a deletion is
	// unfinished (swept behind the base), but a fault once it finished, and
	// always at or below an earlier finished deletion (swept).
	ok := true
	pruned := func(what string, k []byte, seq uint64) bool {
		if seq > base.Sequence {
			return false
		}
		if swept >= base.Sequence || seq <= swept {
			ok = ok && report("%s %x is at or below the audit base %d, whose deletion finished", what, k, min(swept, base.Sequence))
		}
		return true
	}
	// The remaining log is a chain from the base.
	verifier := audit.NewVerifier(audit.VerifyConfig{From: base, Head: head})
	byType := entrySet(tx, bucketEventsByType)
	byDelegation := entrySet(tx, bucketEventsByDelegation)
	for _, index := range []struct {
		name    []byte
		entries map[string]bool
		prefix  func([]byte) int
	}{
		{bucketEventsByType, byType, func([]byte) int { return 1 }},
		{bucketEventsByDelegation, byDelegation, eventDelegationPrefixLen},
	} {
		for key := range index.entries {
			k := []byte(key)
			if n := index.prefix(k); n >= 0 && len(k) == n+8 && pruned(string(index.name)+" entry", k, binary.BigEndian.Uint64(k[n:])) {
				delete(index.entries, key)
			}
		}
	}
	// The base comes only from a prune, whose audit_pruned event stays
	// above it and names it: someone who deleted a prefix of the log and
	// moved the base by hand would have to forge that event's hash too.
	lastPrune := ""
	_ = tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
		if len(k) == 8 && pruned("audit event", k, binary.BigEndian.Uint64(k)) {
			return nil
		}
		var e audit.Event
		if err := e.UnmarshalJSON(v); err != nil {
			ok = ok && report("audit event %x: %v", k, err)
			return nil
		}
		if e.Type == audit.TypeAuditPruned {
			lastPrune = e.Detail[store.DetailThroughSequence] + ":" + e.Detail[store.DetailThroughHash]
		}
		if !bytes.Equal(k, u64(e.Sequence)) {
			ok = ok && report("audit event %x holds sequence %d", k, e.Sequence)
		}
		_ = verifier.Add(&e)                 // sticky: reported by Close below
		key := join([]byte{byte(e.Type)}, k) //nolint:gosec // audit.Type is a small enum (validated before it is stored)
		if !byType[string(key)] {
			ok = ok && report("audit event %d: no %s entry", e.Sequence, bucketEventsByType)
		}
		delete(byType, string(key))
		if e.DelegationID != "" {
			found := false
			for _, prefix := range eventDelegationPrefixes(tx, e.DelegationID) {
				key := string(join(prefix, k))
				if byDelegation[key] {
					found = true
					delete(byDelegation, key)
				}
			}
			if !found {
				ok = ok && report("audit event %d: no %s entry", e.Sequence, bucketEventsByDelegation)
			}
		}
		return nil
	})
	if err := verifier.Close(); err != nil {
		ok = ok && report("audit log: %v", err)
	} else if verifier.Last() != head {
		ok = ok && report("audit log ends at %s, the head is %s", verifier.Last(), head)
	}
	if !base.IsZero() && lastPrune != base.String() {
		ok = ok && report("audit base %s is not the anchor the last audit_pruned event names (%q)", base, lastPrune)
	}
	for key := range byType {
		ok = ok && report("%s: entry %x has no matching event", bucketEventsByType, key)
	}
	for key := range byDelegation {
		ok = ok && report("%s: entry %x has no matching event", bucketEventsByDelegation, key)
	}
	return ok
}
