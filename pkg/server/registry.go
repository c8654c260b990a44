package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/agentid/agentid/pkg/agent"
	"github.com/agentid/agentid/pkg/reconciler"
	"github.com/agentid/agentid/pkg/store"
	"github.com/sirupsen/logrus"
)

// The store's agent registry holds the declared agents and their SPIRE sync
// state, and AgentService answers from it: every server on one store (the
// replicas of issue 14, of which only one reconciles SPIRE) then tells the
// same story, and the state survives a restart.
//
// registryRefresh bounds how stale a synced agent's last_synced_at may get:
// the reconciler passes every 10 s, and writing each pass for every agent
// would cost a commit per agent per pass for a timestamp; a state change is
// written at once.
const registryRefresh = time.Minute

// registry writes the agent registry for Run.
type registry struct {
	store store.Store
	log   logrus.FieldLogger

	mu   sync.Mutex
	last map[string]store.Agent // what was last written, by name
}

func newRegistry(st store.Store, log logrus.FieldLogger) *registry {
	return &registry{store: st, log: log, last: map[string]store.Agent{}}
}

// DeclareAgents writes the declared agents into the store's agent registry
// and removes the records of agents no longer declared, before the first
// request is served. An agent whose stored declaration is unchanged keeps
// its stored sync state; a new or changed one starts pending.
func (s *Server) DeclareAgents(ctx context.Context) error {
	return newRegistry(s.store, s.log).declare(ctx, s.agents.Agents())
}

func (r *registry) declare(ctx context.Context, agents []agent.Agent) error {
	stored, err := r.store.ListAgents(ctx)
	if err != nil {
		return fmt.Errorf("failed to read the agent registry: %w", err)
	}
	byName := make(map[string]store.Agent, len(stored))
	for _, a := range stored {
		byName[a.Name] = a
	}
	declared := make(map[string]bool, len(agents))
	for _, a := range agents {
		declared[a.Name] = true
		spec, err := agent.Marshal(a)
		if err != nil {
			return fmt.Errorf("failed to encode agent %s: %w", a.Name, err)
		}
		if old, ok := byName[a.Name]; ok && bytes.Equal(old.Spec, spec) && old.SPIFFEID == a.SPIFFEID.String() {
			r.remember(old)
			continue
		}
		rec := store.Agent{Name: a.Name, SPIFFEID: a.SPIFFEID.String(), SyncState: reconciler.StatePending.String(), Spec: spec}
		if err := r.store.PutAgent(ctx, rec); err != nil {
			return fmt.Errorf("failed to record agent %s: %w", a.Name, err)
		}
		r.remember(rec)
	}
	for _, a := range stored {
		if declared[a.Name] {
			continue
		}
		if err := r.store.DeleteAgent(ctx, a.Name); err != nil {
			return fmt.Errorf("failed to remove undeclared agent %s: %w", a.Name, err)
		}
	}
	return nil
}

func (r *registry) remember(a store.Agent) {
	r.mu.Lock()
	r.last[a.Name] = a
	r.mu.Unlock()
}

// onSync records an agent's sync state when it changed, or when the stored
// last_synced_at is registryRefresh old. A failed write is logged: the
// record catches up at the next pass, and nothing about issuance depends on
// it.
func (r *registry) onSync(ctx context.Context, name string, st reconciler.SyncState) {
	r.mu.Lock()
	old, ok := r.last[name]
	r.mu.Unlock()
	if !ok {
		// Declared after start-up (not possible today: the set only changes
		// with a restart) or removed: nothing to update.
		return
	}
	rec := old
	rec.SyncState, rec.EntryID, rec.LastError, rec.LastSynced = st.State.String(), st.EntryID, st.LastError, st.LastSynced
	if rec.SyncState == old.SyncState && rec.EntryID == old.EntryID && rec.LastError == old.LastError &&
		rec.LastSynced.Sub(old.LastSynced) < registryRefresh {
		return
	}
	if err := r.store.PutAgent(ctx, rec); err != nil {
		if !errors.Is(err, context.Canceled) {
			r.log.WithError(err).WithField("agent", name).Warn("Failed to record agent sync state")
		}
		return
	}
	r.remember(rec)
}
