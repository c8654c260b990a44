package server

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/oidcauth"
	"github.com/agentid/agentid/pkg/policy"
	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/boltstore"
	"github.com/agentid/agentid/pkg/store/storetest"
)

var purgeT0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// purgeServer is a Server over a store whose revision log keeps one change,
// so that every delegation but the newest can be purged, with a clock the
// test sets.
func purgeServer(t testing.TB, now *time.Time) (*Server, *boltstore.Store) {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "agentid.db"), boltstore.Options{ChangeLogLimit: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Check(context.Background()); err != nil {
			t.Errorf("check: %v", err)
		}
		st.Close()
	})
	users, err := oidcauth.New(oidcauth.Config{Issuers: []oidcauth.IssuerConfig{{URL: "https://idp.example.com", Audiences: []string{"agentid"}}}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Compile([]policy.Rule{{Name: "all", When: "true", Scopes: []string{"crm:read"}, MaxTTL: time.Hour, MaxDepth: 1}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Store: st, Users: users, Policy: pol, Clock: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

// storeDelegation stores a delegation of agent n that lives for ttl from
// purgeT0, as a child of parent when it is not nil.
func storeDelegation(t testing.TB, st store.Store, parent *delegation.Delegation, n int, ttl time.Duration) *delegation.Delegation {
	t.Helper()
	id := delegation.NewID()
	agent := spiffeid.RequireFromString("spiffe://example.org/agent/a" + string(rune('0'+n)))
	var (
		d   *delegation.Delegation
		err error
	)
	if parent == nil {
		// user is declared apart so that err below stays the outer one: a
		// := here would shadow it and NewRoot's error would go unchecked.
		var user delegation.User
		if user, err = delegation.NewUser("https://idp.example.com", "alice", ""); err != nil {
			t.Fatal(err)
		}
		d, err = delegation.NewRoot(delegation.RootParams{
			ID: id, Agent: agent, User: user, Scopes: delegation.MustParseScopes("crm:read"), MaxDepth: 2,
			CreatedBy: spiffeid.RequireFromString("spiffe://example.org/app/frontend"),
			CreatedAt: purgeT0, ExpiresAt: purgeT0.Add(ttl),
		})
	} else {
		d, err = delegation.NewChild(parent, delegation.ChildParams{
			ID: id, Agent: agent, Scopes: parent.Scopes, CreatedBy: parent.Agent,
			CreatedAt: purgeT0, ExpiresAt: purgeT0.Add(ttl),
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	typ := audit.TypeDelegationCreated
	if parent != nil {
		typ = audit.TypeSubDelegated
	}
	if _, err := st.CreateDelegation(context.Background(), d, audit.Event{Time: purgeT0, Type: typ, Actor: "local"}); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPurge(t *testing.T) {
	ctx := context.Background()
	now := purgeT0
	s, st := purgeServer(t, &now)
	root := storeDelegation(t, st, nil, 1, time.Hour)
	child := storeDelegation(t, st, root, 2, time.Hour)
	revoked := storeDelegation(t, st, nil, 3, time.Hour)
	if _, _, err := st.RevokeDelegation(ctx, store.Revocation{ID: revoked.ID, Reason: "done",
		Event: audit.Event{Time: purgeT0, Type: audit.TypeRevoked, Actor: "local"}}); err != nil {
		t.Fatal(err)
	}
	long := storeDelegation(t, st, nil, 4, 48*time.Hour)
	reg := prometheus.NewRegistry()
	p, err := newPurger(s, reg)
	if err != nil {
		t.Fatal(err)
	}

	revokedIDs := func() []string {
		t.Helper()
		snap, _, err := st.ListDelegations(ctx, store.Filter{State: delegation.StateRevoked}, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range snap {
			out = append(out, d.ID.String())
		}
		return out
	}
	if got := revokedIDs(); !slices.Equal(got, []string{revoked.ID.String()}) {
		t.Fatalf("revoked-only snapshot = %v, want [%s]", got, revoked.ID)
	}

	// Expired, but less than the retention ago: kept.
	now = root.ExpiresAt.Add(PurgeRetention)
	p.once(ctx)
	if got := testutil.ToFloat64(p.purged); got != 0 {
		t.Fatalf("purged_total = %v at exactly the retention, want 0", got)
	}
	now = now.Add(time.Nanosecond)
	p.once(ctx)
	if got := testutil.ToFloat64(p.purged); got != 3 {
		t.Fatalf("purged_total = %v, want 3", got)
	}
	for _, d := range []*delegation.Delegation{root, child, revoked} {
		if _, err := st.GetDelegation(ctx, d.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetDelegation(%s) after purge = %v, want ErrNotFound", d.ID, err)
		}
	}
	if _, err := st.GetDelegation(ctx, long.ID); err != nil {
		t.Fatalf("long-lived delegation: %v", err)
	}
	if got := revokedIDs(); len(got) != 0 {
		t.Fatalf("revoked-only snapshot after purge = %v, want none", got)
	}
	if n, err := s.Purge(ctx, PurgeRetention); n != 0 || err != nil {
		t.Fatalf("second Purge = %d, %v; want 0", n, err)
	}
}

func TestPurgeRejects(t *testing.T) {
	now := purgeT0
	s, _ := purgeServer(t, &now)
	if _, err := s.Purge(context.Background(), -time.Second); err == nil || err.Error() != "server: purge retention -1s is negative" {
		t.Fatalf("Purge(-1s) = %v", err)
	}
	reg := prometheus.NewRegistry()
	if _, err := newPurger(s, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := newPurger(s, reg); err == nil {
		t.Fatal("second registration of agentid_delegations_purged_total succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Purge(ctx, PurgeRetention); !errors.Is(err, context.Canceled) {
		t.Fatalf("Purge with a canceled context = %v, want context.Canceled", err)
	}
}

// TestPurgeStoreFailure: a failed purge stops at the failing batch with the
// count so far; the purger logs it and tries again at the next interval.
func TestPurgeStoreFailure(t *testing.T) {
	ctx := context.Background()
	now := purgeT0
	s, st := purgeServer(t, &now)
	faults := storetest.NewErrorStore(st)
	s.store = faults
	storeDelegation(t, st, nil, 1, time.Hour)
	storeDelegation(t, st, nil, 2, time.Hour)
	now = purgeT0.Add(48 * time.Hour)
	errDown := errors.New("injected outage")
	faults.SetNextError(errDown)
	if n, err := s.Purge(ctx, PurgeRetention); !errors.Is(err, errDown) || n != 0 {
		t.Fatalf("Purge = %d, %v; want 0, the injected error", n, err)
	}
	p, err := newPurger(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	faults.SetNextError(errDown)
	p.once(ctx)
	if got := testutil.ToFloat64(p.purged); got != 0 {
		t.Fatalf("purged_total after a failed purge = %v, want 0", got)
	}
	p.once(ctx)
	if got := testutil.ToFloat64(p.purged); got != 1 {
		t.Fatalf("purged_total after the retry = %v, want 1 (the newest change is kept)", got)
	}
}
