package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/agentid/agentid/pkg/store"
)

type signingKeyJSON struct {
	ID        string    `json:"id"`
	Private   []byte    `json:"private"`
	CreatedAt time.Time `json:"created_at"`
	ActiveAt  time.Time `json:"active_at"`
}

// SigningKeys returns the stored OAuth signing key set; Version 0 and no keys
// when none was ever stored.
func (s *Store) SigningKeys(ctx context.Context) (store.SigningKeySet, error) {
	if err := s.begin(ctx); err != nil {
		return store.SigningKeySet{}, err
	}
	var (
		version int64
		rec     []byte
	)
	if err := s.pool.QueryRow(ctx, "SELECT version, keys FROM agentid_signing_keys").Scan(&version, &rec); err != nil {
		return store.SigningKeySet{}, s.dbErr(ctx, "read signing keys", err)
	}
	var keys []signingKeyJSON
	if err := json.Unmarshal(rec, &keys); err != nil {
		return store.SigningKeySet{}, fmt.Errorf("store: signing keys record is malformed: %w", err)
	}
	set := store.SigningKeySet{Version: uint64(version)}
	for _, k := range keys {
		set.Keys = append(set.Keys, store.SigningKey{ID: k.ID, Private: k.Private, CreatedAt: k.CreatedAt, ActiveAt: k.ActiveAt})
	}
	return set, nil
}

// SwapSigningKeys replaces the signing key set with keys if the stored set's
// version is still version, and returns the new version: one UPDATE that
// compares and moves the version under the row's lock, so of two replicas
// swapping from one version exactly one wins, the other gets
// store.ErrConflict. store.ErrInvalidArgument as store.ValidateSigningKeys.
// The set is not part of the revision or audit order, so it is written
// outside the committer.
func (s *Store) SwapSigningKeys(ctx context.Context, version uint64, keys []store.SigningKey) (uint64, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	if err := store.ValidateSigningKeys(keys); err != nil {
		return 0, err
	}
	w := make([]signingKeyJSON, len(keys))
	for i, k := range keys {
		w[i] = signingKeyJSON{ID: k.ID, Private: k.Private, CreatedAt: k.CreatedAt.UTC(), ActiveAt: k.ActiveAt.UTC()}
	}
	rec, err := json.Marshal(w)
	if err != nil {
		return 0, fmt.Errorf("store: failed to encode signing keys: %w", err)
	}
	tag, err := s.pool.Exec(ctx, "UPDATE agentid_signing_keys SET version = version + 1, keys = $2 WHERE version = $1", int64(version), rec)
	if err != nil {
		return 0, s.dbErr(ctx, "write signing keys", err)
	}
	if tag.RowsAffected() == 0 {
		var cur int64
		if err := s.pool.QueryRow(ctx, "SELECT version FROM agentid_signing_keys").Scan(&cur); err != nil {
			return 0, s.dbErr(ctx, "read signing keys", err)
		}
		return 0, fmt.Errorf("%w: signing keys are at version %d, not %d", store.ErrConflict, cur, version)
	}
	return version + 1, nil
}
