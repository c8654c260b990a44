package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/internal/pagetoken"
)

// CreateDelegation implements store.Store. Concurrent calls share
// transactions (see commit.go).
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
	d = d.Clone() // the cache holds it; the caller may change theirs
	prefetch := []string{d.ID.String()}
	if !d.IsRoot() {
		prefetch = append(prefetch, d.Parent.String())
	}
	var (
		rev      store.Revision
		rejected error
	)
	err = s.committer.write(ctx, prefetch, func(w *wtx) error {
		var err error
		rev, rejected, err = insert(w, d, record, ev)
		return err
	})
	if err != nil {
		return 0, s.dbErr(ctx, "create delegation "+d.ID.String(), err)
	}
	return rev, rejected
}

// insert queues a new delegation, its change and its event, or refuses it
// (rejected) without queuing anything.
func insert(w *wtx, d *delegation.Delegation, record []byte, ev audit.Event) (rev store.Revision, rejected, err error) {
	existing, err := w.get(d.ID.String())
	if err != nil {
		return 0, nil, err
	}
	if existing != nil {
		return 0, fmt.Errorf("%w: delegation %s", store.ErrAlreadyExists, d.ID), nil
	}
	var parentSeq uint64
	if !d.IsRoot() {
		parent, err := w.get(d.Parent.String())
		switch {
		case err != nil:
			return 0, nil, err
		case parent == nil:
			return 0, fmt.Errorf("%w: parent delegation %s", store.ErrNotFound, d.Parent), nil
		case !parent.d.ActiveAt(d.CreatedAt):
			return 0, fmt.Errorf("%w: parent %s is %s", store.ErrParentInactive, d.Parent, parent.d.EffectiveState(d.CreatedAt)), nil
		case parent.d.Root != d.Root:
			return 0, fmt.Errorf("%w: root %s differs from parent's %s", store.ErrInvalidArgument, d.Root, parent.d.Root), nil
		}
		parentSeq = parent.seq
	}
	// The delegation's seq is the revision that created it.
	seq := w.meta.revision + 1
	w.addChange(store.ChangeCreated, seq)
	w.insert(&row{seq: seq, parentSeq: parentSeq, d: d}, record)
	return store.Revision(seq), nil, w.appendEvents([]*audit.Event{&ev})
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
	if ev.Type < 1 || ev.Type > math.MaxInt16 {
		return fmt.Errorf("%w: event type %d out of range", store.ErrInvalidArgument, ev.Type)
	}
	if err := ev.Validate(); err != nil {
		return fmt.Errorf("%w: %w", store.ErrInvalidArgument, err)
	}
	return nil
}

// decodeDelegation decodes the record at seq.
func decodeDelegation(seq uint64, v []byte) (*delegation.Delegation, error) {
	d := new(delegation.Delegation)
	if err := d.UnmarshalJSON(v); err != nil {
		return nil, fmt.Errorf("store: corrupt delegation record at seq %d: %w", seq, err)
	}
	return d, nil
}

// readTx runs fn in a read-only transaction that sees one snapshot.
func (s *Store) readTx(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
	return s.dbErr(ctx, what, err)
}

// GetDelegation implements store.Store.
func (s *Store) GetDelegation(ctx context.Context, id delegation.ID) (*delegation.Delegation, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	if id.IsZero() {
		return nil, fmt.Errorf("%w: empty delegation id", store.ErrInvalidArgument)
	}
	var (
		seq int64
		rec []byte
	)
	err := s.pool.QueryRow(ctx, "SELECT seq, record FROM agentid_delegations WHERE id = $1", id.String()).Scan(&seq, &rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: delegation %s", store.ErrNotFound, id)
	}
	if err != nil {
		return nil, s.dbErr(ctx, "read delegation", err)
	}
	d, err := decodeDelegation(uint64(seq), rec)
	if err != nil {
		return nil, err
	}
	if d.ID != id {
		return nil, fmt.Errorf("store: corrupt delegation record at seq %d: holds %s, not %s", seq, d.ID, id)
	}
	return d, nil
}

// scanDelegations reads rows of (seq, record) and returns the
// delegations and their seqs.
func scanDelegations(rows pgx.Rows) ([]*delegation.Delegation, []uint64, error) {
	defer rows.Close()
	var (
		out  []*delegation.Delegation
		seqs []uint64
	)
	for rows.Next() {
		var (
			seq int64
			rec []byte
		)
		if err := rows.Scan(&seq, &rec); err != nil {
			return nil, nil, err
		}
		d, err := decodeDelegation(uint64(seq), rec)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, d)
		seqs = append(seqs, uint64(seq))
	}
	return out, seqs, rows.Err()
}

// ListDelegations implements store.Store, in creation (seq) order.
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
	if after > math.MaxInt64 {
		return nil, "", nil
	}
	q := "SELECT seq, record FROM agentid_delegations WHERE seq > $1"
	args := []any{int64(after)}
	if f.UserIssuer != "" {
		args = append(args, f.UserIssuer, f.UserSubject)
		q += fmt.Sprintf(" AND user_issuer = $%d AND user_subject = $%d", len(args)-1, len(args))
	}
	if f.Agent != "" {
		args = append(args, f.Agent)
		q += fmt.Sprintf(" AND agent = $%d", len(args))
	}
	if f.State != delegation.StateUnspecified {
		args = append(args, int16(f.State))
		q += fmt.Sprintf(" AND state = $%d", len(args))
	}
	args = append(args, limit+1)
	q += fmt.Sprintf(" ORDER BY seq LIMIT $%d", len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, "", s.dbErr(ctx, "list delegations", err)
	}
	out, seqs, err := scanDelegations(rows)
	if err != nil {
		return nil, "", s.dbErr(ctx, "list delegations", err)
	}
	if len(out) <= limit {
		return out, "", nil
	}
	return out[:limit], pagetoken.Make(pagetoken.Delegations, seqs[limit-1], tag), nil
}

// Children implements store.Store.
func (s *Store) Children(ctx context.Context, id delegation.ID) ([]*delegation.Delegation, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	if id.IsZero() {
		return nil, fmt.Errorf("%w: empty delegation id", store.ErrInvalidArgument)
	}
	rows, err := s.pool.Query(ctx, `SELECT c.seq, c.record FROM agentid_delegations c
JOIN agentid_delegations p ON c.parent_seq = p.seq WHERE p.id = $1 ORDER BY c.seq`, id.String())
	if err != nil {
		return nil, s.dbErr(ctx, "list children", err)
	}
	out, _, err := scanDelegations(rows)
	if err != nil {
		return nil, s.dbErr(ctx, "list children", err)
	}
	return out, nil
}

// RevokeDelegation implements store.Store, with the events boltstore
// records (see store.Revocation).
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
	err := s.committer.write(ctx, []string{r.ID.String()}, func(w *wtx) error {
		var err error
		revoked, rev, rejected, err = revokeTree(w, r)
		return err
	})
	if err != nil {
		return nil, 0, s.dbErr(ctx, "revoke delegation "+r.ID.String(), err)
	}
	if rejected != nil {
		return nil, 0, rejected
	}
	return revoked, rev, nil
}

// revokeTree revokes r.ID and its active descendants, breadth first from
// the root, children in creation order, as boltstore.
func revokeTree(w *wtx, r store.Revocation) (revoked []delegation.ID, rev store.Revision, rejected, err error) {
	root, err := w.get(r.ID.String())
	switch {
	case err != nil:
		return nil, 0, nil, err
	case root == nil:
		return nil, 0, fmt.Errorf("%w: delegation %s", store.ErrNotFound, r.ID), nil
	case root.d.State == delegation.StateRevoked:
		return nil, 0, fmt.Errorf("%w: delegation %s at %s", store.ErrAlreadyRevoked, r.ID, root.d.RevokedAt.UTC().Format(time.RFC3339)), nil
	}
	tree, err := w.subtree(root.seq)
	if err != nil {
		return nil, 0, nil, err
	}
	kids := map[uint64][]*row{}
	for _, n := range tree {
		if n.seq != root.seq {
			kids[n.parentSeq] = append(kids[n.parentSeq], n)
		}
	}
	for _, k := range kids {
		slices.SortFunc(k, func(a, b *row) int { return cmp.Compare(a.seq, b.seq) })
	}
	root = w.rows[r.ID.String()] // as read with the tree
	var evs []*audit.Event
	queue := []*row{root}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		queue = append(queue, kids[n.seq]...)
		// Descendants already revoked keep their first revocation; their
		// subtrees are still walked.
		if n.d.State == delegation.StateRevoked {
			continue
		}
		d := n.d.Clone()
		d.State, d.RevokedAt, d.RevokeReason = delegation.StateRevoked, r.At, r.Reason
		record, err := d.MarshalJSON()
		if err != nil {
			return nil, 0, nil, fmt.Errorf("store: failed to encode delegation %s: %w", d.ID, err)
		}
		updated := &row{seq: n.seq, parentSeq: n.parentSeq, d: d}
		w.rows[d.ID.String()] = updated
		w.revoke(updated, record)
		rev = store.Revision(w.addChange(store.ChangeRevoked, n.seq))
		revoked = append(revoked, d.ID)
		e := r.Event
		if n != root {
			e.DelegationID = d.ID.String()
			e.Agent = d.Agent.String()
			e.User = d.User.String()
			e.Detail = withDetail(r.Event.Detail, store.DetailCascadeOf, r.ID.String())
		}
		evs = append(evs, &e)
	}
	evs[0].Agent = fillEmpty(evs[0].Agent, root.d.Agent.String())
	evs[0].User = fillEmpty(evs[0].User, root.d.User.String())
	evs[0].Detail = withDetail(r.Event.Detail, store.DetailCascadeCount, strconv.Itoa(len(evs)-1))
	return revoked, rev, nil, w.appendEvents(evs)
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
		rev int64
	)
	err := s.readTx(ctx, "take snapshot", func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT revision FROM agentid_meta").Scan(&rev); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT seq, record FROM agentid_delegations WHERE state = $1 ORDER BY seq", int16(delegation.StateActive))
		if err != nil {
			return err
		}
		out, _, err = scanDelegations(rows)
		return err
	})
	if err != nil {
		return nil, 0, err
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
	err := s.readTx(ctx, "read changes", func(tx pgx.Tx) error {
		var rev, compacted int64
		if err := tx.QueryRow(ctx, "SELECT revision, compacted FROM agentid_meta").Scan(&rev, &compacted); err != nil {
			return err
		}
		switch {
		case uint64(since) > uint64(rev):
			return fmt.Errorf("%w: revision %d, the store is at %d", store.ErrFutureRevision, since, rev)
		case uint64(since) < uint64(compacted):
			return fmt.Errorf("%w: revision %d, the log starts after %d", store.ErrCompacted, since, compacted)
		}
		rows, err := tx.Query(ctx, `SELECT c.revision, c.kind, d.seq, d.record FROM agentid_changes c
JOIN agentid_delegations d USING (seq) WHERE c.revision > $1 ORDER BY c.revision LIMIT $2`, int64(since), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				r, seq int64
				kind   int16
				rec    []byte
			)
			if err := rows.Scan(&r, &kind, &seq, &rec); err != nil {
				return err
			}
			d, err := decodeDelegation(uint64(seq), rec)
			if err != nil {
				return err
			}
			ch := store.Change{Revision: store.Revision(r), Kind: store.ChangeKind(kind), Delegation: d}
			switch ch.Kind {
			case store.ChangeCreated:
				// Records change only by revocation, so the created state
				// is the record without it.
				d.State, d.RevokedAt, d.RevokeReason = delegation.StateActive, time.Time{}, ""
			case store.ChangeRevoked:
			default:
				return fmt.Errorf("store: corrupt revision log entry %d: kind %d", r, kind)
			}
			out = append(out, ch)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Revision implements store.Store.
func (s *Store) Revision(ctx context.Context) (store.Revision, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	var rev int64
	if err := s.pool.QueryRow(ctx, "SELECT revision FROM agentid_meta").Scan(&rev); err != nil {
		return 0, s.dbErr(ctx, "read revision", err)
	}
	return store.Revision(rev), nil
}
