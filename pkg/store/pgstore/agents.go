package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/pkg/store"
)

// MaxAgentNameLength bounds an agent's name in bytes, as boltstore.
const MaxAgentNameLength = 256

// agentJSON is the stored form of a store.Agent, boltstore's.
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
	for i := 0; i < len(name); i++ {
		if name[i] == 0 {
			// PostgreSQL's text cannot hold NUL.
			return fmt.Errorf("%w: agent name holds a NUL byte", store.ErrInvalidArgument)
		}
	}
	return nil
}

// PutAgent implements store.Store. The registry is not part of the
// revision or audit order, so it is written outside the committer.
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
	_, err = s.pool.Exec(ctx, `INSERT INTO agentid_agents (name, record) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET record = excluded.record`, a.Name, record)
	return s.dbErr(ctx, "write agent", err)
}

// GetAgent implements store.Store.
func (s *Store) GetAgent(ctx context.Context, name string) (store.Agent, error) {
	if err := s.begin(ctx); err != nil {
		return store.Agent{}, err
	}
	if err := checkAgentName(name); err != nil {
		return store.Agent{}, err
	}
	var rec []byte
	err := s.pool.QueryRow(ctx, "SELECT record FROM agentid_agents WHERE name = $1", name).Scan(&rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Agent{}, fmt.Errorf("%w: agent %q", store.ErrNotFound, name)
	}
	if err != nil {
		return store.Agent{}, s.dbErr(ctx, "read agent", err)
	}
	return decodeAgent(name, rec)
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

// ListAgents implements store.Store, ordered by name (bytewise: the
// column's collation is "C").
func (s *Store) ListAgents(ctx context.Context) ([]store.Agent, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, "SELECT name, record FROM agentid_agents ORDER BY name")
	if err != nil {
		return nil, s.dbErr(ctx, "list agents", err)
	}
	defer rows.Close()
	var out []store.Agent
	for rows.Next() {
		var (
			name string
			rec  []byte
		)
		if err := rows.Scan(&name, &rec); err != nil {
			return nil, s.dbErr(ctx, "list agents", err)
		}
		a, err := decodeAgent(name, rec)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, s.dbErr(ctx, "list agents", err)
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
	_, err := s.pool.Exec(ctx, "DELETE FROM agentid_agents WHERE name = $1", name)
	return s.dbErr(ctx, "delete agent", err)
}
