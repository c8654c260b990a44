package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	bolt "go.etcd.io/bbolt"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/internal/pagetoken"
)

// ctxCheckEvery is how many records a long read handles between looks at
// its context.
const ctxCheckEvery = 1024

// CreateDelegation implements store.Store. d must validate and be active.
// The event's DelegationID, Agent and User are filled from d when empty (and
// must match d when set); a zero Time is set from the clock. Concurrent
// calls share transactions (see commit.go).
func (s *Store) CreateDelegation(ctx context.Context, d *delegation.Delegation, ev audit.Event) (store.Revision, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	if d == nil {
		return 0, fmt.Errorf("%w: nil delegation", store.ErrInvalidArgument)
	}
	if err := d.Validate(); err != nil {
		return 0, fmt.Errorf("%w: %w", store.ErrInvalidArgument, err)
	}
	if d.State != delegation.StateActive {
		return 0, fmt.Errorf("%w: a new delegation must be active, not %s", store.ErrInvalidArgument, d.State)
	}
	if err := s.fillEvent(&ev, d); err != nil {
		return 0, err
	}
	record, err := d.MarshalJSON()
	if err != nil {
		return 0, fmt.Errorf("store: failed to encode delegation %s: %w", d.ID, err)
	}

	// The committer may run fn more than once, in transactions that are
	// rolled back and retried, so fn derives everything from the transaction
	// and resets its results on entry. A refusal (duplicate, inactive parent)
	// writes nothing and returns nil, so that it does not abort the other
	// writes of the batch; it is reported through rejected.
	var (
		rev      store.Revision
		rejected error
	)
	fn := func(tx *bolt.Tx) error {
		var err error
		rev, rejected, err = s.insert(tx, d, record, ev)
		return err
	}
	if err := s.committer.write(ctx, fn); err != nil {
		return 0, boltErr("create delegation "+d.ID.String(), err)
	}
	if rejected != nil {
		return 0, rejected
	}
	s.notify()
	return rev, nil
}

// insert writes a new delegation, its change and its event, or refuses it
// without writing (rejected). err is a failed read or write, which must abort
// the transaction.
func (s *Store) insert(tx *bolt.Tx, d *delegation.Delegation, record []byte, ev audit.Event) (rev store.Revision, rejected, err error) {
	ids := tx.Bucket(bucketIDs)
	if ids.Get([]byte(d.ID.String())) != nil {
		return 0, fmt.Errorf("%w: delegation %s", store.ErrAlreadyExists, d.ID), nil
	}
	var parentSeq []byte
	if !d.IsRoot() {
		if parentSeq = ids.Get([]byte(d.Parent.String())); parentSeq == nil {
			return 0, fmt.Errorf("%w: parent delegation %s", store.ErrNotFound, d.Parent), nil
		}
		parent, err := recordAt(tx, parentSeq, d.Parent.String())
		switch {
		case err != nil:
			return 0, nil, err
		case !parent.ActiveAt(d.CreatedAt):
			return 0, fmt.Errorf("%w: parent %s is %s", store.ErrParentInactive, d.Parent, parent.EffectiveState(d.CreatedAt)), nil
		case parent.Root != d.Root:
			return 0, fmt.Errorf("%w: root %s differs from parent's %s", store.ErrInvalidArgument, d.Root, parent.Root), nil
		}
		parentSeq = bytes.Clone(parentSeq)
	}
	// Nothing below refuses: from here an error is a failed write and
	// aborts the transaction.
	log, err := s.openLog(tx)
	if err != nil {
		return 0, nil, err
	}
	// The delegation's seq is the revision that created it.
	seq := u64(log.rev + 1)
	if err := log.add(changeCreated, seq); err != nil {
		return 0, nil, err
	}
	if err := putNewDelegation(tx, d, seq, parentSeq, record); err != nil {
		return 0, nil, err
	}
	if err := log.close(); err != nil {
		return 0, nil, err
	}
	return store.Revision(log.rev), nil, appendEvents(tx, []*audit.Event{&ev})
}

// fillEvent completes and checks the event recorded with a change to d.
func (s *Store) fillEvent(ev *audit.Event, d *delegation.Delegation) error {
	fill := func(field *string, value, name string) error {
		switch *field {
		case "":
			*field = value
		case value:
		default:
			return fmt.Errorf("%w: event %s %q differs from the delegation's %q", store.ErrInvalidArgument, name, *field, value)
		}
		return nil
	}
	if err := fill(&ev.DelegationID, d.ID.String(), "delegation id"); err != nil {
		return err
	}
	if err := fill(&ev.Agent, d.Agent.String(), "agent"); err != nil {
		return err
	}
	if err := fill(&ev.User, d.User.String(), "user"); err != nil {
		return err
	}
	return s.checkEvent(ev)
}

// checkEvent sets a zero Time from the clock and validates the event.
func (s *Store) checkEvent(ev *audit.Event) error {
	if ev.Time.IsZero() {
		ev.Time = s.clock()
	}
	if _, err := eventTypeKey(ev.Type); err != nil {
		return err
	}
	if err := ev.Validate(); err != nil {
		return fmt.Errorf("%w: %w", store.ErrInvalidArgument, err)
	}
	return nil
}

// putNewDelegation writes a new record under seq and its index entries;
// parentSeq is the parent's seq, nil for a root.
func putNewDelegation(tx *bolt.Tx, d *delegation.Delegation, seq, parentSeq, record []byte) error {
	puts := []struct {
		bucket, key, value []byte
	}{
		{bucketDelegations, seq, record},
		{bucketIDs, []byte(d.ID.String()), seq},
		{bucketByUser, join(userPrefix(d.User.Issuer(), d.User.Subject()), seq), nil},
		{bucketByAgent, join(agentPrefix(d.Agent.String()), seq), nil},
		{bucketByState, join([]byte{stateByte(d.State)}, seq), nil},
	}
	if parentSeq != nil {
		puts = append(puts, struct{ bucket, key, value []byte }{bucketChildren, join(parentSeq, seq), nil})
	}
	for _, p := range puts {
		b := tx.Bucket(p.bucket)
		if !bytes.Equal(p.bucket, bucketIDs) {
			// Every key but an id grows within its prefix.
			b.FillPercent = appendFill
		}
		if p.value == nil {
			p.value = []byte{}
		}
		if err := b.Put(p.key, p.value); err != nil {
			return fmt.Errorf("store: failed to write %s of %s: %w", p.bucket, d.ID, err)
		}
	}
	return nil
}

// getDelegation reads and validates the record of id and returns it with
// its seq.
func getDelegation(tx *bolt.Tx, id delegation.ID) (*delegation.Delegation, []byte, error) {
	seq := tx.Bucket(bucketIDs).Get([]byte(id.String()))
	if seq == nil {
		return nil, nil, fmt.Errorf("%w: delegation %s", store.ErrNotFound, id)
	}
	d, err := recordAt(tx, seq, id.String())
	if err != nil {
		return nil, nil, err
	}
	return d, bytes.Clone(seq), nil
}

// recordAt reads the record at seq; want is its id when known, else "".
func recordAt(tx *bolt.Tx, seq []byte, want string) (*delegation.Delegation, error) {
	v := tx.Bucket(bucketDelegations).Get(seq)
	if v == nil {
		return nil, fmt.Errorf("store: corrupt index: no delegation record at seq %x", seq)
	}
	return decodeDelegation(seq, v, want)
}

// decodeDelegation decodes the record at seq and checks that it is the
// delegation want (when want is not "").
func decodeDelegation(seq, v []byte, want string) (*delegation.Delegation, error) {
	d := new(delegation.Delegation)
	if err := d.UnmarshalJSON(v); err != nil {
		return nil, fmt.Errorf("store: corrupt delegation record at seq %x: %w", seq, err)
	}
	if want != "" && d.ID.String() != want {
		return nil, fmt.Errorf("store: corrupt delegation record at seq %x: holds %s, not %s", seq, d.ID, want)
	}
	return d, nil
}

// revisionLog appends changes within one transaction. Revisions come from
// the meta bucket, never from a Go counter, so a retried transaction
// allocates the same numbers again.
type revisionLog struct {
	s             *Store
	meta, changes *bolt.Bucket
	rev           uint64 // the last revision allocated
}

func (s *Store) openLog(tx *bolt.Tx) (*revisionLog, error) {
	meta := tx.Bucket(bucketMeta)
	rev, err := readU64(meta.Get(keyRevision))
	if err != nil {
		return nil, err
	}
	changes := tx.Bucket(bucketChanges)
	changes.FillPercent = appendFill
	return &revisionLog{s: s, meta: meta, changes: changes, rev: rev}, nil
}

// add appends one change to the delegation at seq.
func (l *revisionLog) add(kind byte, seq []byte) error {
	l.rev++
	if err := l.changes.Put(u64(l.rev), join([]byte{kind}, seq)); err != nil {
		return fmt.Errorf("store: failed to write revision %d: %w", l.rev, err)
	}
	return nil
}

// close records the last revision and deletes the changes that fell out
// of the log: in steady state one per change added, always at the front of
// the bucket.
func (l *revisionLog) close() error {
	if err := l.meta.Put(keyRevision, u64(l.rev)); err != nil {
		return fmt.Errorf("store: failed to write revision: %w", err)
	}
	if l.rev <= l.s.changeLogLimit {
		return nil
	}
	cutoff := u64(l.rev - l.s.changeLogLimit)
	c := l.changes.Cursor()
	deleted := false
	for k, _ := c.First(); k != nil && bytes.Compare(k, cutoff) <= 0; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return fmt.Errorf("store: failed to compact revision log: %w", err)
		}
		deleted = true
	}
	if deleted {
		if err := l.meta.Put(keyCompacted, cutoff); err != nil {
			return fmt.Errorf("store: failed to write compacted revision: %w", err)
		}
	}
	return nil
}

// GetDelegation implements store.Store.
func (s *Store) GetDelegation(ctx context.Context, id delegation.ID) (*delegation.Delegation, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	if id.IsZero() {
		return nil, fmt.Errorf("%w: empty delegation id", store.ErrInvalidArgument)
	}
	var d *delegation.Delegation
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		d, _, err = getDelegation(tx, id)
		return err
	})
	if err != nil {
		return nil, boltErr("read delegation", err)
	}
	return d, nil
}

// ListDelegations implements store.Store. It walks the most selective index
// the filter allows (user, then agent, then state) in creation order and
// checks the rest of the filter on each record.
func (s *Store) ListDelegations(ctx context.Context, f store.Filter, p store.Page) ([]*delegation.Delegation, string, error) {
	if err := s.begin(ctx); err != nil {
		return nil, "", err
	}
	if err := f.Validate(); err != nil {
		return nil, "", err
	}
	if f.Agent != "" {
		if _, err := spiffeid.FromString(f.Agent); err != nil {
			return nil, "", fmt.Errorf("%w: filter agent: %w", store.ErrInvalidArgument, err)
		}
	}
	limit, err := p.Limit()
	if err != nil {
		return nil, "", err
	}
	tag := pagetoken.DelegationsTag(f)
	after, err := pagetoken.Parse(pagetoken.Delegations, p.Token, tag)
	if err != nil {
		return nil, "", err
	}

	bucket, prefix := bucketDelegations, []byte(nil)
	switch {
	case f.UserIssuer != "":
		bucket, prefix = bucketByUser, userPrefix(f.UserIssuer, f.UserSubject)
	case f.Agent != "":
		bucket, prefix = bucketByAgent, agentPrefix(f.Agent)
	case f.State != delegation.StateUnspecified:
		bucket, prefix = bucketByState, []byte{stateByte(f.State)}
	}
	match := func(d *delegation.Delegation) bool {
		return (f.UserIssuer == "" || d.User.Issuer() == f.UserIssuer && d.User.Subject() == f.UserSubject) &&
			(f.Agent == "" || d.Agent.String() == f.Agent) &&
			(f.State == delegation.StateUnspecified || d.State == f.State)
	}

	var (
		out     []*delegation.Delegation
		lastSeq uint64 // seq of the last delegation in out
		more    bool   // a match follows the page
	)
	err = s.db.View(func(tx *bolt.Tx) error {
		if after == ^uint64(0) {
			return nil
		}
		records := tx.Bucket(bucketDelegations)
		c := tx.Bucket(bucket).Cursor()
		n := 0
		for k, v := c.Seek(join(prefix, u64(after+1))); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if n++; n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			seq := k[len(prefix):]
			if len(seq) != 8 {
				return fmt.Errorf("store: corrupt index %s: key %x", bucket, k)
			}
			if prefix != nil { // an index: read the record it points to
				if v = records.Get(seq); v == nil {
					return fmt.Errorf("store: corrupt index %s: no record at seq %x", bucket, seq)
				}
			}
			d, err := decodeDelegation(seq, v, "")
			if err != nil {
				return err
			}
			if !match(d) {
				continue
			}
			if len(out) == limit {
				more = true
				return nil
			}
			out = append(out, d)
			lastSeq = binary.BigEndian.Uint64(seq)
		}
		return nil
	})
	if err != nil {
		return nil, "", boltErr("list delegations", err)
	}
	if !more {
		return out, "", nil
	}
	return out, pagetoken.Make(pagetoken.Delegations, lastSeq, tag), nil
}

// Children implements store.Store. The children come in creation order; an
// unknown id has none.
func (s *Store) Children(ctx context.Context, id delegation.ID) ([]*delegation.Delegation, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	if id.IsZero() {
		return nil, fmt.Errorf("%w: empty delegation id", store.ErrInvalidArgument)
	}
	var out []*delegation.Delegation
	err := s.db.View(func(tx *bolt.Tx) error {
		seq := tx.Bucket(bucketIDs).Get([]byte(id.String()))
		if seq == nil {
			return nil
		}
		kids, err := children(tx, seq)
		for _, k := range kids {
			out = append(out, k.d)
		}
		return err
	})
	if err != nil {
		return nil, boltErr("list children", err)
	}
	return out, nil
}

// node is a delegation with its seq.
type node struct {
	d   *delegation.Delegation
	seq []byte
}

// children returns the children of the delegation at parentSeq.
func children(tx *bolt.Tx, parentSeq []byte) ([]node, error) {
	var out []node
	records := tx.Bucket(bucketDelegations)
	c := tx.Bucket(bucketChildren).Cursor()
	for k, _ := c.Seek(parentSeq); k != nil && bytes.HasPrefix(k, parentSeq); k, _ = c.Next() {
		seq := k[len(parentSeq):]
		v := records.Get(seq)
		if len(seq) != 8 || v == nil {
			return nil, fmt.Errorf("store: corrupt index %s: no record for key %x", bucketChildren, k)
		}
		d, err := decodeDelegation(seq, v, "")
		if err != nil {
			return nil, err
		}
		out = append(out, node{d, bytes.Clone(seq)})
	}
	return out, nil
}

// RevokeDelegation implements store.Store. It records one event per revoked
// delegation: r.Event for the one named, with Detail[store.DetailCascadeCount]
// set to the number of descendants revoked with it, and for each descendant
// a copy naming the descendant, with Detail[store.DetailCascadeOf] set to
// r.ID. A zero r.At is set from the clock.
func (s *Store) RevokeDelegation(ctx context.Context, r store.Revocation) ([]delegation.ID, store.Revision, error) {
	if err := s.begin(ctx); err != nil {
		return nil, 0, err
	}
	if err := r.Prepare(s.clock, s.checkEvent); err != nil {
		return nil, 0, err
	}

	var (
		revoked  []delegation.ID
		rev      store.Revision
		rejected error
	)
	err := s.committer.write(ctx, func(tx *bolt.Tx) error {
		revoked, rev, rejected = nil, 0, nil
		root, rootSeq, err := getDelegation(tx, r.ID)
		if err != nil {
			rejected = err
			return nil
		}
		if root.State == delegation.StateRevoked {
			rejected = fmt.Errorf("%w: delegation %s at %s", store.ErrAlreadyRevoked, r.ID, root.RevokedAt.UTC().Format(time.RFC3339))
			return nil
		}
		log, err := s.openLog(tx)
		if err != nil {
			return err
		}
		// Walk the tree breadth first from the root. Descendants already
		// revoked keep their first revocation, but their subtrees are still
		// walked: a store must not trust that they were revoked too.
		var (
			queue = []node{{root, rootSeq}}
			evs   []*audit.Event
		)
		for len(queue) > 0 {
			n := queue[0]
			queue = queue[1:]
			kids, err := children(tx, n.seq)
			if err != nil {
				return err
			}
			queue = append(queue, kids...)
			if n.d.State == delegation.StateRevoked {
				continue
			}
			if err := revokeRecord(tx, n, r); err != nil {
				return err
			}
			if err := log.add(changeRevoked, n.seq); err != nil {
				return err
			}
			revoked = append(revoked, n.d.ID)
			e := r.Event
			if n.d != root {
				e.DelegationID = n.d.ID.String()
				e.Agent = n.d.Agent.String()
				e.User = n.d.User.String()
				e.Detail = withDetail(r.Event.Detail, store.DetailCascadeOf, r.ID.String())
			}
			evs = append(evs, &e)
		}
		evs[0].Agent = fillEmpty(evs[0].Agent, root.Agent.String())
		evs[0].User = fillEmpty(evs[0].User, root.User.String())
		evs[0].Detail = withDetail(r.Event.Detail, store.DetailCascadeCount, strconv.Itoa(len(evs)-1))
		if err := log.close(); err != nil {
			return err
		}
		rev = store.Revision(log.rev)
		return appendEvents(tx, evs)
	})
	if err != nil {
		return nil, 0, boltErr("revoke delegation "+r.ID.String(), err)
	}
	if rejected != nil {
		return nil, 0, rejected
	}
	s.notify()
	return revoked, rev, nil
}

// revokeRecord rewrites one record as revoked and moves its state index entry.
func revokeRecord(tx *bolt.Tx, n node, r store.Revocation) error {
	d := n.d
	d.State = delegation.StateRevoked
	d.RevokedAt = r.At
	d.RevokeReason = r.Reason
	record, err := d.MarshalJSON()
	if err != nil {
		return fmt.Errorf("store: failed to encode delegation %s: %w", d.ID, err)
	}
	if err := tx.Bucket(bucketDelegations).Put(n.seq, record); err != nil {
		return fmt.Errorf("store: failed to write delegation %s: %w", d.ID, err)
	}
	states := tx.Bucket(bucketByState)
	if err := states.Delete(join([]byte{stateActive}, n.seq)); err != nil {
		return fmt.Errorf("store: failed to write state of %s: %w", d.ID, err)
	}
	if err := states.Put(join([]byte{stateRevoked}, n.seq), []byte{}); err != nil {
		return fmt.Errorf("store: failed to write state of %s: %w", d.ID, err)
	}
	return nil
}

// withDetail returns a copy of detail with key set to value.
func withDetail(detail map[string]string, key, value string) map[string]string {
	out := make(map[string]string, len(detail)+1)
	maps.Copy(out, detail)
	out[key] = value
	return out
}

func fillEmpty(s, value string) string {
	if s == "" {
		return value
	}
	return s
}

// Snapshot implements store.Store.
func (s *Store) Snapshot(ctx context.Context) ([]*delegation.Delegation, store.Revision, error) {
	if err := s.begin(ctx); err != nil {
		return nil, 0, err
	}
	var (
		out []*delegation.Delegation
		rev uint64
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		if rev, err = readU64(tx.Bucket(bucketMeta).Get(keyRevision)); err != nil {
			return err
		}
		records := tx.Bucket(bucketDelegations)
		prefix := []byte{stateActive}
		c := tx.Bucket(bucketByState).Cursor()
		n := 0
		for k, _ := c.Seek(prefix); k != nil && k[0] == stateActive; k, _ = c.Next() {
			if n++; n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			seq := k[1:]
			v := records.Get(seq)
			if v == nil {
				return fmt.Errorf("store: corrupt index %s: no record at seq %x", bucketByState, seq)
			}
			d, err := decodeDelegation(seq, v, "")
			if err != nil {
				return err
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, 0, boltErr("take snapshot", err)
	}
	return out, store.Revision(rev), nil
}

// Changes implements store.Store.
func (s *Store) Changes(ctx context.Context, since store.Revision, limit int) ([]store.Change, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > store.MaxPageSize {
		limit = store.MaxPageSize
	}
	var out []store.Change
	err := s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		rev, err := readU64(meta.Get(keyRevision))
		if err != nil {
			return err
		}
		compacted, err := readU64(meta.Get(keyCompacted))
		if err != nil {
			return err
		}
		switch {
		case uint64(since) > rev:
			return fmt.Errorf("%w: revision %d, the store is at %d", store.ErrFutureRevision, since, rev)
		case uint64(since) < compacted:
			return fmt.Errorf("%w: revision %d, the log starts after %d", store.ErrCompacted, since, compacted)
		}
		records := tx.Bucket(bucketDelegations)
		c := tx.Bucket(bucketChanges).Cursor()
		for k, v := c.Seek(u64(uint64(since) + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			if len(k) != 8 || len(v) != 9 {
				return fmt.Errorf("store: corrupt revision log entry %x", k)
			}
			seq := v[1:]
			rv := records.Get(seq)
			if rv == nil {
				return fmt.Errorf("store: corrupt revision log: no record at seq %x", seq)
			}
			d, err := decodeDelegation(seq, rv, "")
			if err != nil {
				return err
			}
			ch := store.Change{Revision: store.Revision(binary.BigEndian.Uint64(k)), Delegation: d}
			switch v[0] {
			case changeCreated:
				// Records change only by revocation, so the created state is
				// the record without it.
				ch.Kind = store.ChangeCreated
				d.State, d.RevokedAt, d.RevokeReason = delegation.StateActive, time.Time{}, ""
			case changeRevoked:
				ch.Kind = store.ChangeRevoked
			default:
				return fmt.Errorf("store: corrupt revision log entry %d: kind %q", ch.Revision, v[0])
			}
			out = append(out, ch)
		}
		return nil
	})
	if err != nil {
		return nil, boltErr("read changes", err)
	}
	return out, nil
}

// Revision implements store.Store.
func (s *Store) Revision(ctx context.Context) (store.Revision, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	var rev uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		rev, err = readU64(tx.Bucket(bucketMeta).Get(keyRevision))
		return err
	})
	return store.Revision(rev), boltErr("read revision", err)
}
