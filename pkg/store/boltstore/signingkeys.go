package boltstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/agentid/agentid/pkg/store"
)

// keySigningKeys is the one key of bucketSigningKeys.
var keySigningKeys = []byte("set")

type signingKeyJSON struct {
	ID        string    `json:"id"`
	Private   []byte    `json:"private"`
	CreatedAt time.Time `json:"created_at"`
	ActiveAt  time.Time `json:"active_at"`
}

type signingKeySetJSON struct {
	Version uint64           `json:"version"`
	Keys    []signingKeyJSON `json:"keys"`
}

// SigningKeys returns the stored OAuth signing key set; Version 0 and no keys
// when none was ever stored.
func (s *Store) SigningKeys(ctx context.Context) (store.SigningKeySet, error) {
	if err := s.begin(ctx); err != nil {
		return store.SigningKeySet{}, err
	}
	var set store.SigningKeySet
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		set, err = readSigningKeys(tx)
		return err
	})
	return set, boltErr("read signing keys", err)
}

// SwapSigningKeys replaces the signing key set with keys if the stored set's
// version is still version, and returns the new version. store.ErrConflict
// when it moved on; store.ErrInvalidArgument for more than
// store.MaxSigningKeys keys, an empty or repeated id, or a key without
// private bytes or times.
func (s *Store) SwapSigningKeys(ctx context.Context, version uint64, keys []store.SigningKey) (uint64, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	if err := store.ValidateSigningKeys(keys); err != nil {
		return 0, err
	}
	var next uint64
	err := s.committer.write(ctx, func(tx *bolt.Tx) error {
		cur, err := readSigningKeys(tx)
		if err != nil {
			return err
		}
		if cur.Version != version {
			return fmt.Errorf("%w: signing keys are at version %d, not %d", store.ErrConflict, cur.Version, version)
		}
		w := signingKeySetJSON{Version: version + 1, Keys: make([]signingKeyJSON, len(keys))}
		for i, k := range keys {
			w.Keys[i] = signingKeyJSON{ID: k.ID, Private: k.Private, CreatedAt: k.CreatedAt.UTC(), ActiveAt: k.ActiveAt.UTC()}
		}
		b, err := json.Marshal(w)
		if err != nil {
			return fmt.Errorf("store: failed to encode signing keys: %w", err)
		}
		if err := tx.Bucket(bucketSigningKeys).Put(keySigningKeys, b); err != nil {
			return fmt.Errorf("store: failed to write signing keys: %w", err)
		}
		next = w.Version
		return nil
	})
	if err != nil {
		return 0, boltErr("write signing keys", err)
	}
	return next, nil
}

func readSigningKeys(tx *bolt.Tx) (store.SigningKeySet, error) {
	v := tx.Bucket(bucketSigningKeys).Get(keySigningKeys)
	if v == nil {
		return store.SigningKeySet{}, nil
	}
	var w signingKeySetJSON
	if err := json.Unmarshal(v, &w); err != nil {
		return store.SigningKeySet{}, fmt.Errorf("store: signing keys record is malformed: %w", err)
	}
	set := store.SigningKeySet{Version: w.Version, Keys: make([]store.SigningKey, len(w.Keys))}
	for i, k := range w.Keys {
		set.Keys[i] = store.SigningKey{ID: k.ID, Private: k.Private, CreatedAt: k.CreatedAt, ActiveAt: k.ActiveAt}
	}
	return set, nil
}
