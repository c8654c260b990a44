package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
)

// ChangeLogLimit is the revision log limit the suite expects: the factory
// passed to Run must open stores that keep exactly this many changes, so that
// the suite can reach ErrCompacted in a few writes.
const ChangeLogLimit = 20

// Run runs the conformance suite against the stores newStore returns. Each
// subtest calls newStore once for an empty store of its own; newStore must
// register the store's cleanup (Close must be idempotent: some subtests close
// the store themselves) and may check the backend's consistency there.
func Run(t *testing.T, newStore func(t testing.TB) store.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, f *fixture)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"CreateRejects", testCreateRejects},
		{"CreateConcurrent", testCreateConcurrent},
		{"ListFilters", testListFilters},
		{"ListPaging", testListPaging},
		{"ListRejects", testListRejects},
		{"Children", testChildren},
		{"RevokeCascade", testRevokeCascade},
		{"RevokeRejects", testRevokeRejects},
		{"RevokeRacingSubDelegation", testRevokeRacingSubDelegation},
		{"PurgeExpired", testPurgeExpired},
		{"PurgeKeepsLoggedRevocations", testPurgeKeepsLoggedRevocations},
		{"PurgeGuardsChildren", testPurgeGuardsChildren},
		{"PurgeRejects", testPurgeRejects},
		{"SnapshotAndChanges", testSnapshotAndChanges},
		{"ChangesCompacted", testChangesCompacted},
		{"Notify", testNotify},
		{"AppendAndListEvents", testAppendAndListEvents},
		{"AppendEventsRejects", testAppendEventsRejects},
		{"AuditChainAfterMixedOperations", testAuditChain},
		{"PruneEvents", testPruneEvents},
		{"PruneRejects", testPruneRejects},
		{"PruneThenPurge", testPruneThenPurge},
		{"PruneThroughHead", testPruneThroughHead},
		{"Agents", testAgents},
		{"CanceledContext", testCanceledContext},
		{"Closed", testClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, newStore(t))
			tt.run(t, f)
			if !f.closed && !t.Failed() {
				f.verifyChain() // whatever the test did, the audit log is a chain
			}
		})
	}
}

// T0 is the creation time of the suite's delegations; every time in the
// suite is relative to it, so no test depends on the clock.
var T0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// Users of the suite's delegations.
var (
	Alice = mustUser("https://idp.example.com", "alice", "alice@example.com")
	Bob   = mustUser("https://idp.example.com", "bob", "")
	// Mallory has the same subject at another issuer: a different user.
	Mallory = mustUser("https://other.example.com", "alice", "")
)

// Agent returns the SPIFFE ID of the suite's agent n.
func Agent(n int) spiffeid.ID {
	return spiffeid.RequireFromString(fmt.Sprintf("spiffe://example.org/agent/a%d", n))
}

func mustUser(iss, sub, email string) delegation.User {
	u, err := delegation.NewUser(iss, sub, email)
	if err != nil {
		panic(err)
	}
	return u
}

type fixture struct {
	t      testing.TB
	s      store.Store
	ctx    context.Context
	rng    *rand.ChaCha8
	closed bool // the test closed the store
}

func newFixture(t testing.TB, s store.Store) *fixture {
	var seed [32]byte
	copy(seed[:], t.Name())
	return &fixture{t: t, s: s, ctx: context.Background(), rng: rand.NewChaCha8(seed)}
}

func (f *fixture) newID() delegation.ID {
	id, err := delegation.NewIDFrom(f.rng)
	if err != nil {
		f.t.Fatal(err)
	}
	return id
}

// root builds (without storing) a root delegation from user to agent that
// may be sub-delegated down to depth 8.
func (f *fixture) root(user delegation.User, agent spiffeid.ID) *delegation.Delegation {
	f.t.Helper()
	d, err := delegation.NewRoot(delegation.RootParams{
		ID:        f.newID(),
		Agent:     agent,
		User:      user,
		Scopes:    delegation.MustParseScopes("campaigns:read", "compliance:check", "crm:write"),
		MaxDepth:  8,
		Intent:    mustIntent("check the spring campaign"),
		CreatedBy: spiffeid.RequireFromString("spiffe://example.org/app/frontend"),
		CreatedAt: T0,
		ExpiresAt: T0.Add(time.Hour),
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

// child builds (without storing) a sub-delegation of parent to agent.
func (f *fixture) child(parent *delegation.Delegation, agent spiffeid.ID) *delegation.Delegation {
	f.t.Helper()
	d, err := delegation.NewChild(parent, delegation.ChildParams{
		ID:        f.newID(),
		Agent:     agent,
		Scopes:    delegation.MustParseScopes("campaigns:read"),
		CreatedBy: parent.Agent,
		CreatedAt: T0.Add(time.Minute),
		ExpiresAt: parent.ExpiresAt,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

func mustIntent(s string) delegation.Intent {
	i, err := delegation.ParseIntent(s)
	if err != nil {
		panic(err)
	}
	return i
}

// createdEvent is the event the server records with a new delegation.
func createdEvent(d *delegation.Delegation) audit.Event {
	ev := audit.Event{
		Time:   d.CreatedAt,
		Type:   audit.TypeDelegationCreated,
		Actor:  "user:" + d.User.String(),
		Detail: map[string]string{"scopes": d.Scopes.String()},
	}
	if !d.IsRoot() {
		ev.Type = audit.TypeSubDelegated
		ev.Actor = d.Chain[len(d.Chain)-2].String()
	}
	return ev
}

// create stores d and fails the test on error.
func (f *fixture) create(d *delegation.Delegation) store.Revision {
	f.t.Helper()
	rev, err := f.s.CreateDelegation(f.ctx, d, createdEvent(d))
	if err != nil {
		f.t.Fatalf("CreateDelegation(%s): %v", d.ID, err)
	}
	return rev
}

// revoke revokes id and fails the test on error.
func (f *fixture) revoke(id delegation.ID, reason string) []delegation.ID {
	f.t.Helper()
	ids, _, err := f.s.RevokeDelegation(f.ctx, revocation(id, reason))
	if err != nil {
		f.t.Fatalf("RevokeDelegation(%s): %v", id, err)
	}
	return ids
}

func revocation(id delegation.ID, reason string) store.Revocation {
	at := T0.Add(2 * time.Minute)
	return store.Revocation{
		ID:     id,
		At:     at,
		Reason: reason,
		Event: audit.Event{
			Time:   at,
			Type:   audit.TypeRevoked,
			Actor:  "local",
			Detail: map[string]string{"reason": reason},
		},
	}
}

// events returns the whole audit log, reading it page by page.
func (f *fixture) events() []audit.Event {
	f.t.Helper()
	return f.listEvents(store.EventFilter{}, 7)
}

func (f *fixture) listEvents(filter store.EventFilter, size int) []audit.Event {
	f.t.Helper()
	return readAll(f, fmt.Sprintf("ListEvents(%+v)", filter), size, func(p store.Page) ([]audit.Event, string, error) {
		return f.s.ListEvents(f.ctx, filter, p)
	})
}

// list returns every delegation the filter selects, reading page by page.
func (f *fixture) list(filter store.Filter, size int) []*delegation.Delegation {
	f.t.Helper()
	return readAll(f, fmt.Sprintf("ListDelegations(%+v)", filter), size, func(p store.Page) ([]*delegation.Delegation, string, error) {
		return f.s.ListDelegations(f.ctx, filter, p)
	})
}

// readAll pages through a listing with pages of size, checking the paging
// contract on the way: no page larger than asked, no empty page with a next
// token, an end.
func readAll[T any](f *fixture, what string, size int, list func(store.Page) ([]T, string, error)) []T {
	f.t.Helper()
	var all []T
	token := ""
	for range 10_000 {
		page, next, err := list(store.Page{Size: size, Token: token})
		if err != nil {
			f.t.Fatalf("%s: %v", what, err)
		}
		if len(page) > size {
			f.t.Fatalf("%s returned %d items for a page of %d", what, len(page), size)
		}
		if next != "" && len(page) == 0 {
			f.t.Fatalf("%s returned an empty page with a next token", what)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		token = next
	}
	f.t.Fatalf("%s never ended", what)
	return nil
}

// revision returns the store's current revision.
func (f *fixture) revision() store.Revision {
	f.t.Helper()
	_, rev, err := f.s.Snapshot(f.ctx)
	if err != nil {
		f.t.Fatalf("Snapshot: %v", err)
	}
	return rev
}

// verifyChain checks that the whole audit log is an unbroken chain from
// its base (the start of the log unless it was pruned) to its head, and
// returns it.
func (f *fixture) verifyChain() []audit.Event {
	f.t.Helper()
	base, err := f.s.AuditBase(f.ctx)
	if err != nil {
		f.t.Fatalf("AuditBase: %v", err)
	}
	head, err := f.s.AuditHead(f.ctx)
	if err != nil {
		f.t.Fatalf("AuditHead: %v", err)
	}
	evs := f.events()
	last, err := audit.VerifyWith(audit.VerifyConfig{From: base, Head: head}, audit.FromSlice(evs))
	if err != nil {
		f.t.Fatalf("audit chain of %d events from base %s does not verify: %v", len(evs), base, err)
	}
	if last != head {
		f.t.Fatalf("audit chain ends at %s, the head is %s", last, head)
	}
	// A base comes only from a prune, whose audit_pruned event stays above
	// it and names it: a store reporting a base of its own making fails here.
	if !base.IsZero() {
		var named string
		for _, e := range evs {
			if e.Type == audit.TypeAuditPruned {
				named = e.Detail[store.DetailThroughSequence] + ":" + e.Detail[store.DetailThroughHash]
			}
		}
		if named != base.String() {
			f.t.Fatalf("audit base %s, but the last audit_pruned event names %q", base, named)
		}
	}
	return evs
}

// get returns the stored delegation and fails the test on error.
func (f *fixture) get(id delegation.ID) *delegation.Delegation {
	f.t.Helper()
	d, err := f.s.GetDelegation(f.ctx, id)
	if err != nil {
		f.t.Fatalf("GetDelegation(%s): %v", id, err)
	}
	return d
}

// assertSame fails unless got and want encode to the same stored form.
func assertSame(t testing.TB, got, want *delegation.Delegation) {
	t.Helper()
	if got == nil || want == nil {
		t.Fatalf("got %v, want %v", got, want)
	}
	g, err1 := got.MarshalJSON()
	w, err2 := want.MarshalJSON()
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Fatalf("delegation differs:\n got %s\nwant %s", g, w)
	}
}

// assertErr fails unless err wraps want (or is nil when want is). An error
// wrapping a store sentinel must itself read "store: ...".
func assertErr(t testing.TB, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want == nil:
	case !errors.Is(err, want):
		t.Fatalf("error = %v, want %v", err, want)
	case strings.HasPrefix(want.Error(), "store: ") && !strings.HasPrefix(err.Error(), "store: "):
		t.Fatalf("error %q does not start with \"store: \"", err)
	}
}

// ids returns the ids of ds in order.
func ids(ds []*delegation.Delegation) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID.String()
	}
	return out
}

// sortedIDs returns the ids of ds sorted, to compare sets.
func sortedIDs(ds ...*delegation.Delegation) []string {
	out := ids(ds)
	slices.Sort(out)
	return out
}
