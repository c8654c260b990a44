package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/pkg/store"
)

// PurgeExpired implements store.Store with boltstore's rules: a delegation
// is purged when it expired before before, no retained change names it
// (its creation or its revocation) and no stored delegation is its child.
// It runs in one transaction that holds the meta row's lock, so no replica
// logs a change naming a delegation while it is being deleted; each
// statement deletes the oldest purgeable delegations, and the next one the
// parents they left childless, up to limit. Audit events are kept: they
// name delegations by id, so ListEvents still finds them.
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
	purged := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		purged = 0
		if _, err := tx.Exec(ctx, "SELECT 1 FROM agentid_meta FOR UPDATE"); err != nil {
			return err
		}
		for purged < limit {
			tag, err := tx.Exec(ctx, `DELETE FROM agentid_delegations WHERE seq IN (
	SELECT d.seq FROM agentid_delegations d
	WHERE d.expires_at < $1
		AND NOT EXISTS (SELECT 1 FROM agentid_changes c WHERE c.seq = d.seq)
		AND NOT EXISTS (SELECT 1 FROM agentid_delegations k WHERE k.parent_seq = d.seq)
	ORDER BY d.seq LIMIT $2)`, before.UnixNano(), limit-purged)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				break
			}
			purged += int(tag.RowsAffected())
		}
		return nil
	})
	if err != nil {
		return 0, s.dbErr(ctx, "purge expired delegations", err)
	}
	return purged, nil
}
