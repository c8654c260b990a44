package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/pkg/audit"
)

// Check reads the whole database and reports the first inconsistency: the
// meta row's heads against the tables (the last change is the revision,
// the last event the audit head), every change naming a stored delegation,
// and the audit chain from its base to its head. A database that fails it
// was edited or damaged: PostgreSQL commits each transaction whole or not
// at all, so an interrupted write cannot cause it. It reads one snapshot
// and may run beside writers.
func (s *Store) Check(ctx context.Context) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	return s.readTx(ctx, "check", func(tx pgx.Tx) error {
		m, err := scanMeta(tx.QueryRow(ctx, "SELECT "+metaColumns+" FROM agentid_meta"))
		if err != nil {
			return err
		}
		var lastChange, changes, minChange int64
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(revision), 0), count(*), coalesce(min(revision), 0) FROM agentid_changes").Scan(&lastChange, &changes, &minChange); err != nil {
			return err
		}
		if m.revision > m.compacted && uint64(lastChange) != m.revision {
			return fmt.Errorf("store: corrupt database: revision log ends at %d, meta says %d", lastChange, m.revision)
		}
		if want := m.revision - m.compacted; uint64(changes) != want || changes > 0 && uint64(minChange) != m.compacted+1 {
			return fmt.Errorf("store: corrupt database: %d changes from %d, want %d from %d", changes, minChange, want, m.compacted+1)
		}
		var orphans int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM agentid_delegations d
WHERE d.parent_seq IS NOT NULL AND NOT EXISTS (SELECT 1 FROM agentid_delegations p WHERE p.seq = d.parent_seq)`).Scan(&orphans); err != nil {
			return err
		}
		if orphans > 0 {
			return fmt.Errorf("store: corrupt database: %d delegations without their parent", orphans)
		}
		var lastEvent int64
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(seq), 0) FROM agentid_events").Scan(&lastEvent); err != nil {
			return err
		}
		if uint64(lastEvent) != m.head.Sequence && !(lastEvent == 0 && m.head.Sequence == m.base.Sequence) {
			return fmt.Errorf("store: corrupt database: audit log ends at %d, meta says %d", lastEvent, m.head.Sequence)
		}
		rows, err := tx.Query(ctx, "SELECT seq, record FROM agentid_events WHERE seq > $1 ORDER BY seq", int64(m.base.Sequence))
		if err != nil {
			return err
		}
		evs, err := scanEvents(rows)
		if err != nil {
			return err
		}
		last, err := audit.VerifyWith(audit.VerifyConfig{From: m.base, Head: m.head}, audit.FromSlice(evs))
		if err != nil {
			return fmt.Errorf("store: corrupt database: audit chain: %w", err)
		}
		if last != m.head && !(len(evs) == 0 && m.head == m.base) {
			return fmt.Errorf("store: corrupt database: audit chain ends at %s, meta says %s", last, m.head)
		}
		return nil
	})
}
