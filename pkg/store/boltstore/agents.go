package boltstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/agentid/agentid/pkg/store"
)

// MaxAgentNameLength bounds an agent's name in bytes. Names come from the
// server's configuration; the bound keeps them well inside bbolt's key limit.
const MaxAgentNameLength = 256

// agentJSON is the stored form of a store.Agent.
type agentJSON struct {
	Name       string    `json:"name"`
	SPIFFEID   string    `json:"spiffe_id,omitempty"`
	EntryID    string    `json:"entry_id,omitempty"`
	SyncState  string    `json:"sync_state,omitempty"`
	LastSynced time.Time `json:"last_synced,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	Spec       []byte    `json:"spec,omitempty"`
}

func checkAgentName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty agent name", store.ErrInvalidArgument)
	case len(name) > MaxAgentNameLength:
		return fmt.Errorf("%w: agent name is %d bytes, at most %d", store.ErrInvalidArgument, len(name), MaxAgentNameLength)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: agent name is not valid UTF-8", store.ErrInvalidArgument)
	}
	return nil
}

// PutAgent implements store.Store.
func (s *Store) PutAgent(ctx context.Context, a store.Agent) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	if err := checkAgentName(a.Name); err != nil {
		return err
	}
	record, err := json.Marshal(agentJSON(a))
	if err != nil {
		return fmt.Errorf("store: failed to encode agent %q: %w", a.Name, err)
	}
	err = s.committer.write(ctx, func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketAgents).Put([]byte(a.Name), record); err != nil {
			return fmt.Errorf("store: failed to write agent %q: %w", a.Name, err)
		}
		return nil
	})
	return boltErr("write agent", err)
}

// GetAgent implements store.Store.
func (s *Store) GetAgent(ctx context.Context, name string) (store.Agent, error) {
	if err := s.begin(ctx); err != nil {
		return store.Agent{}, err
	}
	if err := checkAgentName(name); err != nil {
		return store.Agent{}, err
	}
	var a store.Agent
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAgents).Get([]byte(name))
		if v == nil {
			return fmt.Errorf("%w: agent %q", store.ErrNotFound, name)
		}
		var err error
		a, err = decodeAgent(name, v)
		return err
	})
	if err != nil {
		return store.Agent{}, boltErr("read agent", err)
	}
	return a, nil
}

func decodeAgent(key string, v []byte) (store.Agent, error) {
	var j agentJSON
	if err := json.Unmarshal(v, &j); err != nil {
		return store.Agent{}, fmt.Errorf("store: corrupt agent record %q: %w", key, err)
	}
	if j.Name != key {
		return store.Agent{}, fmt.Errorf("store: corrupt agent record %q: holds name %q", key, j.Name)
	}
	return store.Agent(j), nil
}

// ListAgents implements store.Store.
func (s *Store) ListAgents(ctx context.Context) ([]store.Agent, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	var out []store.Agent
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAgents).ForEach(func(k, v []byte) error {
			a, err := decodeAgent(string(k), v)
			if err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	})
	if err != nil {
		return nil, boltErr("list agents", err)
	}
	return out, nil
}

// DeleteAgent implements store.Store.
func (s *Store) DeleteAgent(ctx context.Context, name string) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	if err := checkAgentName(name); err != nil {
		return err
	}
	err := s.committer.write(ctx, func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketAgents).Delete([]byte(name)); err != nil {
			return fmt.Errorf("store: failed to delete agent %q: %w", name, err)
		}
		return nil
	})
	return boltErr("delete agent", err)
}
