package server_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/oidcauth"
	"github.com/agentid/agentid/pkg/policy"
	"github.com/agentid/agentid/pkg/server"
	"github.com/agentid/agentid/pkg/server/servertest"
	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/boltstore"
	"github.com/agentid/agentid/pkg/store/storetest"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// TestRevokeUndeclared: an agent removed from the declaration loses its
// delegations (and their sub-delegations) when the server starts.
func TestRevokeUndeclared(t *testing.T) {
	ctx := context.Background()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "agentid.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	user, _ := delegation.NewUser("https://idp.example.com", "alice", "")
	now := time.Now()
	put := func(d *delegation.Delegation) {
		t.Helper()
		if _, err := st.CreateDelegation(ctx, d, audit.Event{Time: now, Type: audit.TypeDelegationCreated, Actor: "test", DelegationID: d.ID.String()}); err != nil {
			t.Fatal(err)
		}
	}
	root := func(agent string) *delegation.Delegation {
		d, err := delegation.NewRoot(delegation.RootParams{Agent: mustID(t, agent), User: user, Scopes: delegation.MustParseScopes("campaigns:read"),
			MaxDepth: 2, CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		put(d)
		return d
	}
	kept := root(servertest.Orchestrator.String())
	gone := root("spiffe://example.org/agent/retired")
	child, err := delegation.NewChild(gone, delegation.ChildParams{Agent: servertest.Analyst, Scopes: delegation.MustParseScopes("campaigns:read"),
		CreatedAt: now, ExpiresAt: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	put(child)

	users, _ := oidcauth.New(oidcauth.Config{Issuers: []oidcauth.IssuerConfig{{URL: "https://idp.example.com", Audiences: []string{"a"}}}})
	pol, err := policy.Compile([]policy.Rule{{Name: "r", When: "true", Scopes: []string{"campaigns:read"}, MaxTTL: time.Hour, MaxDepth: 1}})
	if err != nil {
		t.Fatal(err)
	}
	faults := storetest.NewErrorStore(st)
	srv, err := server.New(server.Config{Store: faults, Users: users, Policy: pol, Agents: servertest.Agents()})
	if err != nil {
		t.Fatal(err)
	}
	// A store that fails stops start-up with an error that says where, and
	// revokes nothing.
	errDown := errors.New("injected outage")
	faults.SetNextError(errDown)
	if n, err := srv.RevokeUndeclared(ctx); !errors.Is(err, errDown) || n != 0 {
		t.Fatalf("RevokeUndeclared with listing failing = %d, %v", n, err)
	}
	faults.AppendNextError(nil, errDown)
	if n, err := srv.RevokeUndeclared(ctx); !errors.Is(err, errDown) || n != 0 ||
		err.Error() != "failed to revoke "+gone.ID.String()+": injected outage" {
		t.Fatalf("RevokeUndeclared with revoking failing = %d, %v", n, err)
	}
	if got, err := st.GetDelegation(ctx, gone.ID); err != nil || got.State != delegation.StateActive {
		t.Fatalf("after failed revocations: %v, %v; want active", got, err)
	}
	n, err := srv.RevokeUndeclared(ctx)
	if err != nil || n != 1 {
		t.Fatalf("RevokeUndeclared = %d, %v; want 1", n, err)
	}
	for d, want := range map[*delegation.Delegation]delegation.State{kept: delegation.StateActive, gone: delegation.StateRevoked, child: delegation.StateRevoked} {
		got, err := st.GetDelegation(ctx, d.ID)
		if err != nil || got.State != want {
			t.Fatalf("%s: state %v (%v), want %v", d.Agent, got.State, err, want)
		}
	}
	got, _ := st.GetDelegation(ctx, gone.ID)
	if got.RevokeReason != server.RevokeReasonUndeclared {
		t.Fatalf("reason %q", got.RevokeReason)
	}
	evs, _, err := st.ListEvents(ctx, store.EventFilter{Type: audit.TypeRevoked}, store.Page{})
	if err != nil || len(evs) != 2 || evs[0].Actor != "agentid-server" {
		t.Fatalf("revoked events: %+v %v", evs, err)
	}
	// Idempotent: nothing left to revoke.
	if n, err := srv.RevokeUndeclared(ctx); err != nil || n != 0 {
		t.Fatalf("second run = %d, %v", n, err)
	}
}

func mustID(tb testing.TB, s string) spiffeid.ID {
	tb.Helper()
	id, err := spiffeid.FromString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}
