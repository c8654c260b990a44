package server

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/agent"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/reconciler"
	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/boltstore"
	"github.com/agentid/agentid/pkg/store/storetest"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func registryAgents() []agent.Agent {
	return []agent.Agent{
		{Name: "writer", SPIFFEID: spiffeid.RequireFromString("spiffe://example.org/agent/writer"), ScopeCeiling: delegation.MustParseScopes("crm:read")},
		{Name: "analyst", SPIFFEID: spiffeid.RequireFromString("spiffe://example.org/agent/analyst"), ScopeCeiling: delegation.MustParseScopes("crm:read")},
	}
}

func states(t *testing.T, st store.Store) string {
	t.Helper()
	list, err := st.ListAgents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range list {
		out = append(out, a.Name+"="+a.SyncState+"/"+a.EntryID)
	}
	return strings.Join(out, " ")
}

// TestRegistry: the declared agents reach the store with their sync state,
// which survives a restart while the declaration is unchanged.
func TestRegistry(t *testing.T) {
	ctx := context.Background()
	bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "agentid.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	st := storetest.NewErrorStore(bolt)
	if err := st.PutAgent(ctx, store.Agent{Name: "retired", SyncState: "synced"}); err != nil {
		t.Fatal(err)
	}
	r := newRegistry(st, testLog(&syncBuffer{}))
	if err := r.declare(ctx, registryAgents()); err != nil {
		t.Fatal(err)
	}
	if got := states(t, st); got != "analyst=pending/ writer=pending/" {
		t.Fatalf("after declare: %s", got)
	}
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	r.onSync(ctx, "writer", reconciler.SyncState{State: reconciler.StateSynced, EntryID: "e1", LastSynced: t0})
	r.onSync(ctx, "ghost", reconciler.SyncState{State: reconciler.StateSynced}) // undeclared: ignored
	if got := states(t, st); got != "analyst=pending/ writer=synced/e1" {
		t.Fatalf("after sync: %s", got)
	}
	// The same state within registryRefresh is not written again; after it,
	// the timestamp is.
	st.SetNextError(errors.New("must not be written"))
	r.onSync(ctx, "writer", reconciler.SyncState{State: reconciler.StateSynced, EntryID: "e1", LastSynced: t0.Add(registryRefresh - time.Second)})
	if st.Pending() != 1 {
		t.Fatal("an unchanged state was written")
	}
	st.SetNextError(nil)
	r.onSync(ctx, "writer", reconciler.SyncState{State: reconciler.StateSynced, EntryID: "e1", LastSynced: t0.Add(registryRefresh)})
	if rec, err := st.GetAgent(ctx, "writer"); err != nil || !rec.LastSynced.Equal(t0.Add(registryRefresh)) {
		t.Fatalf("writer after the refresh: %+v, %v", rec, err)
	}
	// A failed write is logged and retried with the next state.
	var logs syncBuffer
	r.log = testLog(&logs)
	st.SetNextError(errors.New("injected outage"))
	r.onSync(ctx, "writer", reconciler.SyncState{State: reconciler.StateError, EntryID: "e1", LastError: "refused", LastSynced: t0})
	if !strings.Contains(logs.String(), "Failed to record agent sync state") || states(t, st) != "analyst=pending/ writer=synced/e1" {
		t.Fatalf("after a failed write: %s; log %s", states(t, st), logs.String())
	}
	r.onSync(ctx, "writer", reconciler.SyncState{State: reconciler.StateError, EntryID: "e1", LastError: "refused", LastSynced: t0})
	if got := states(t, st); got != "analyst=pending/ writer=error/e1" {
		t.Fatalf("after the retry: %s", got)
	}

	// A restart with the same declaration keeps the states; a changed
	// agent starts pending again.
	changed := registryAgents()
	changed[1].ScopeCeiling = delegation.MustParseScopes("crm:read", "crm:write")
	r2 := newRegistry(st, testLog(&syncBuffer{}))
	if err := r2.declare(ctx, registryAgents()); err != nil {
		t.Fatal(err)
	}
	if got := states(t, st); got != "analyst=pending/ writer=error/e1" {
		t.Fatalf("after a restart: %s", got)
	}
	r.onSync(ctx, "analyst", reconciler.SyncState{State: reconciler.StateSynced, EntryID: "e2", LastSynced: t0})
	if err := newRegistry(st, testLog(&syncBuffer{})).declare(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if got := states(t, st); got != "analyst=pending/ writer=error/e1" {
		t.Fatalf("after a changed declaration: %s", got)
	}
}

// TestRegistryStoreFailures: start-up stops when the registry cannot be
// written, naming what failed.
func TestRegistryStoreFailures(t *testing.T) {
	ctx := context.Background()
	bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "agentid.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	st := storetest.NewErrorStore(bolt)
	if err := st.PutAgent(ctx, store.Agent{Name: "retired"}); err != nil {
		t.Fatal(err)
	}
	down := errors.New("injected outage")
	for errs, want := range map[*[]error]string{
		{down}:                "failed to read the agent registry: injected outage",
		{nil, down}:           "failed to record agent writer: injected outage",
		{nil, nil, nil, down}: "failed to remove undeclared agent retired: injected outage",
	} {
		st.AppendNextError(*errs...)
		err := newRegistry(st, testLog(&syncBuffer{})).declare(ctx, registryAgents())
		st.SetNextError(nil)
		if err == nil || err.Error() != want {
			t.Errorf("declare = %v, want %q", err, want)
		}
		// Undo what a partial declare wrote, so each case starts alike.
		for _, a := range registryAgents() {
			if err := st.DeleteAgent(ctx, a.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
}
