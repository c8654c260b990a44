package pgstore

import (
	"context"
	"fmt"
	"maps"
	"math"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/internal/pagetoken"
)

// defaultPruneChunk bounds the events one deletion statement of a prune
// removes, so that the deletion never holds many row locks nor a long
// transaction; writers do not wait for it (it does not lock the meta row).
const defaultPruneChunk = 5000

// AppendEvents implements store.Store: all or none, sealed onto the one
// chain of the database. Concurrent calls share transactions.
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
			return fmt.Errorf("%w: event %d: %s events are recorded by PruneEvents only", store.ErrInvalidArgument, i, e.Type)
		}
		if err := s.checkEvent(&e); err != nil {
			return err
		}
		checked[i] = e
	}
	err := s.committer.write(ctx, nil, func(w *wtx) error {
		ptrs := make([]*audit.Event, len(checked))
		for i := range checked {
			ptrs[i] = &checked[i]
		}
		return w.appendEvents(ptrs)
	})
	return s.dbErr(ctx, "append audit events", err)
}

// ListEvents implements store.Store, in sequence order after AfterSeq and
// after the base of the last prune.
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
	if after >= math.MaxInt64 {
		return nil, "", nil
	}
	// Events at or below the base are pruned, whether or not their rows
	// are deleted yet.
	q := "SELECT seq, record FROM agentid_events WHERE seq > greatest($1, (SELECT audit_base_seq FROM agentid_meta))"
	args := []any{int64(after)}
	if f.DelegationID != "" {
		args = append(args, f.DelegationID)
		q += fmt.Sprintf(" AND delegation_id = $%d", len(args))
	}
	if f.Type != audit.TypeUnspecified {
		args = append(args, int16(f.Type))
		q += fmt.Sprintf(" AND type = $%d", len(args))
	}
	args = append(args, limit+1)
	q += fmt.Sprintf(" ORDER BY seq LIMIT $%d", len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, "", s.dbErr(ctx, "list audit events", err)
	}
	out, err := scanEvents(rows)
	if err != nil {
		return nil, "", s.dbErr(ctx, "list audit events", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = pagetoken.Make(pagetoken.Events, out[limit-1].Sequence, tag)
	}
	return out, next, nil
}

func scanEvents(rows pgx.Rows) ([]audit.Event, error) {
	defer rows.Close()
	var out []audit.Event
	for rows.Next() {
		var (
			seq int64
			rec []byte
		)
		if err := rows.Scan(&seq, &rec); err != nil {
			return nil, err
		}
		var e audit.Event
		if err := e.UnmarshalJSON(rec); err != nil {
			return nil, fmt.Errorf("store: corrupt audit event %d: %w", seq, err)
		}
		if e.Sequence != uint64(seq) {
			return nil, fmt.Errorf("store: corrupt audit event %d: holds sequence %d", seq, e.Sequence)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// readMeta reads the meta row outside a write.
func (s *Store) readMeta(ctx context.Context, what string) (meta, error) {
	if err := s.begin(ctx); err != nil {
		return meta{}, err
	}
	m, err := scanMeta(s.pool.QueryRow(ctx, "SELECT "+metaColumns+" FROM agentid_meta"))
	return m, s.dbErr(ctx, what, err)
}

// AuditHead implements store.Store.
func (s *Store) AuditHead(ctx context.Context) (audit.Anchor, error) {
	m, err := s.readMeta(ctx, "read audit head")
	return m.head, err
}

// AuditBase implements store.Store.
func (s *Store) AuditBase(ctx context.Context) (audit.Anchor, error) {
	m, err := s.readMeta(ctx, "read audit base")
	return m.base, err
}

// PruneEvents implements store.Store. The checks, the new base and the
// prune's event are one write transaction, ordered with every replica's
// appends by the meta row's lock; the events at or below the base are
// then deleted in chunks (sweepPruned), invisible to readers from the
// commit on. An interrupted deletion is finished by the next Open or
// prune of any replica.
func (s *Store) PruneEvents(ctx context.Context, through audit.Anchor, ev audit.Event) (int, error) {
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
	var (
		pruned   int
		rejected error
	)
	err := s.committer.write(ctx, nil, func(w *wtx) error {
		var err error
		pruned, rejected, err = commitPrune(w, through, ev)
		return err
	})
	if err != nil {
		return 0, s.dbErr(ctx, "prune audit events", err)
	}
	if rejected != nil {
		return 0, rejected
	}
	// The prune is committed: the deletion is not the caller's to cancel.
	if _, err := s.sweepPruned(context.Background()); err != nil {
		return pruned, fmt.Errorf("store: pruned through %s, but deleting the pruned events failed (they stay invisible and are deleted on the next Open): %w", through, err)
	}
	return pruned, nil
}

func commitPrune(w *wtx, through audit.Anchor, ev audit.Event) (pruned int, rejected, err error) {
	base, head := w.meta.base, w.meta.head
	switch {
	case through.Sequence <= base.Sequence:
		return 0, fmt.Errorf("%w: the log was already pruned through %s", store.ErrAnchorMismatch, base), nil
	case through.Sequence > head.Sequence:
		return 0, fmt.Errorf("%w: sequence %d is beyond the last event %d", store.ErrInvalidArgument, through.Sequence, head.Sequence), nil
	}
	// The event may be one of this group's appends.
	if err := w.flush(); err != nil {
		return 0, nil, err
	}
	rows, err := w.conn.Query(w.ctx, "SELECT seq, record FROM agentid_events WHERE seq = $1", int64(through.Sequence))
	if err != nil {
		return 0, nil, err
	}
	stored, err := scanEvents(rows)
	if err != nil {
		return 0, nil, err
	}
	if len(stored) != 1 {
		return 0, nil, fmt.Errorf("store: corrupt audit log: no event %d between the base %d and the head %d", through.Sequence, base.Sequence, head.Sequence)
	}
	if stored[0].Hash != through.Hash {
		return 0, fmt.Errorf("%w: event %d has hash %s, not %s", store.ErrAnchorMismatch, through.Sequence, stored[0].Hash, through.Hash), nil
	}
	w.meta.base = through
	if err := w.appendEvents([]*audit.Event{&ev}); err != nil {
		return 0, nil, err
	}
	return int(through.Sequence - base.Sequence), nil, nil
}

// sweepPruned deletes the events at or below the base, s.pruneChunk per
// statement, then records the base as swept. It returns how many it
// deleted. Replicas may sweep at the same time: each deletes what is left.
func (s *Store) sweepPruned(ctx context.Context) (int, error) {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	m, err := s.readMeta(ctx, "read audit base")
	if err != nil || m.swept >= m.base.Sequence {
		return 0, err
	}
	deleted := 0
	for {
		if s.closed.Load() {
			return deleted, store.ErrClosed
		}
		tag, err := s.pool.Exec(ctx, `DELETE FROM agentid_events WHERE seq IN
	(SELECT seq FROM agentid_events WHERE seq <= $1 ORDER BY seq LIMIT $2)`, int64(m.base.Sequence), s.pruneChunk)
		if err != nil {
			return deleted, s.dbErr(ctx, "delete pruned audit events", err)
		}
		deleted += int(tag.RowsAffected())
		if tag.RowsAffected() < int64(s.pruneChunk) {
			break
		}
	}
	// Another replica's later prune may have finished first: the mark only
	// moves forward.
	_, err = s.pool.Exec(ctx, "UPDATE agentid_meta SET audit_swept = greatest(audit_swept, $1)", int64(m.base.Sequence))
	return deleted, s.dbErr(ctx, "record pruned audit events as deleted", err)
}
