package storetest

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
)

func testCreateAndGet(t *testing.T, f *fixture) {
	root := f.root(Alice, Agent(1))
	if rev := f.create(root); rev != 1 {
		t.Fatalf("revision of the first create = %d, want 1", rev)
	}
	assertSame(t, f.get(root.ID), root)
	child := f.child(root, Agent(2))
	if rev := f.create(child); rev != 2 {
		t.Fatalf("revision of the second create = %d, want 2", rev)
	}
	assertSame(t, f.get(child.ID), child)

	// What Get returns belongs to the caller.
	got := f.get(root.ID)
	got.State, got.RevokedAt = delegation.StateRevoked, T0
	assertSame(t, f.get(root.ID), root)

	_, err := f.s.GetDelegation(f.ctx, f.newID())
	assertErr(t, err, store.ErrNotFound)
	_, err = f.s.GetDelegation(f.ctx, delegation.ID{})
	assertErr(t, err, store.ErrInvalidArgument)

	evs := f.verifyChain()
	if len(evs) != 2 {
		t.Fatalf("%d audit events, want 2", len(evs))
	}
	for i, want := range []struct {
		typ         audit.Type
		d           *delegation.Delegation
		actor, user string
	}{
		{audit.TypeDelegationCreated, root, "user:" + Alice.String(), Alice.String()},
		{audit.TypeSubDelegated, child, Agent(1).String(), Alice.String()},
	} {
		e := evs[i]
		if e.Sequence != uint64(i+1) || e.Type != want.typ || e.DelegationID != want.d.ID.String() ||
			e.Agent != want.d.Agent.String() || e.User != want.user || e.Actor != want.actor ||
			!e.Time.Equal(want.d.CreatedAt) || e.Detail["scopes"] != want.d.Scopes.String() {
			t.Errorf("event %d = %+v, want type %s for %s", i, e, want.typ, want.d.ID)
		}
	}
}

func testCreateRejects(t *testing.T, f *fixture) {
	existing := f.root(Alice, Agent(1))
	f.create(existing)
	revoked := f.root(Alice, Agent(1))
	f.create(revoked)
	f.revoke(revoked.ID, "gone")
	// short expires before the children built from a longer-lived copy of
	// it are created.
	short := f.root(Bob, Agent(1))
	short.ExpiresAt = T0.Add(30 * time.Second)
	f.create(short)
	longer := short.Clone()
	longer.ExpiresAt = T0.Add(time.Hour)

	duplicate := f.root(Bob, Agent(3))
	duplicate.ID, duplicate.Root = existing.ID, existing.ID
	wrongRoot := f.child(existing, Agent(2))
	wrongRoot.Root = revoked.ID
	notActive := f.root(Alice, Agent(1))
	notActive.State, notActive.RevokedAt = delegation.StateRevoked, T0
	invalid := f.root(Alice, Agent(1))
	invalid.Scopes = delegation.ScopeSet{}
	noActor := f.root(Alice, Agent(1))
	otherID := f.root(Alice, Agent(1))

	tests := []struct {
		name  string
		d     *delegation.Delegation
		edit  func(*audit.Event)
		want  error
		after func(t *testing.T)
	}{
		{name: "duplicate id", d: duplicate, want: store.ErrAlreadyExists, after: func(t *testing.T) {
			assertSame(t, f.get(existing.ID), existing)
		}},
		{name: "revoked parent", d: f.child(revoked, Agent(2)), want: store.ErrParentInactive, after: func(t *testing.T) {
			if kids, err := f.s.Children(f.ctx, revoked.ID); err != nil || len(kids) != 0 {
				t.Fatalf("Children(revoked) = %v, %v; want none", ids(kids), err)
			}
		}},
		{name: "expired parent", d: f.child(longer, Agent(2)), want: store.ErrParentInactive},
		{name: "unknown parent", d: f.child(f.root(Alice, Agent(1)), Agent(2)), want: store.ErrNotFound},
		{name: "root differs from parent's", d: wrongRoot, want: store.ErrInvalidArgument},
		{name: "not active", d: notActive, want: store.ErrInvalidArgument},
		{name: "invalid delegation", d: invalid, want: store.ErrInvalidArgument},
		{name: "nil delegation", d: nil, want: store.ErrInvalidArgument},
		{name: "event without actor", d: noActor, edit: func(e *audit.Event) { e.Actor = "" }, want: store.ErrInvalidArgument},
		{name: "event without type", d: noActor, edit: func(e *audit.Event) { e.Type = audit.TypeUnspecified }, want: store.ErrInvalidArgument},
		{name: "event for another delegation", d: otherID, edit: func(e *audit.Event) { e.DelegationID = existing.ID.String() }, want: store.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.events()
			rev := f.revision()
			var ev audit.Event
			if tt.d != nil {
				ev = createdEvent(tt.d)
			}
			if tt.edit != nil {
				tt.edit(&ev)
			}
			_, err := f.s.CreateDelegation(f.ctx, tt.d, ev)
			assertErr(t, err, tt.want)

			// Nothing half-written: no event, no revision, no record.
			if after := f.events(); len(after) != len(before) || after[len(after)-1].Hash != before[len(before)-1].Hash {
				t.Errorf("audit log changed: %d events, was %d", len(after), len(before))
			}
			if got := f.revision(); got != rev {
				t.Errorf("revision = %d, was %d", got, rev)
			}
			if tt.d != nil && tt.d != duplicate {
				if _, err := f.s.GetDelegation(f.ctx, tt.d.ID); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("GetDelegation(refused %s) = %v, want ErrNotFound", tt.d.ID, err)
				}
			}
			if tt.after != nil {
				tt.after(t)
			}
		})
	}
	f.verifyChain()
}

func testCreateConcurrent(t *testing.T, f *fixture) {
	const writers, each = 16, 8
	parent := f.root(Alice, Agent(0))
	f.create(parent)
	type result struct {
		d   *delegation.Delegation
		rev store.Revision
		err error
	}
	// Build the delegations up front: the fixture's id source is not
	// safe for concurrent use.
	work := make([][]*delegation.Delegation, writers)
	for w := range work {
		for i := range each {
			if i%2 == 0 {
				work[w] = append(work[w], f.child(parent, Agent(1+w)))
			} else {
				work[w] = append(work[w], f.root(Bob, Agent(1+w)))
			}
		}
	}
	results := make(chan result, writers*each)
	var wg sync.WaitGroup
	for _, ds := range work {
		wg.Go(func() {
			for _, d := range ds {
				rev, err := f.s.CreateDelegation(f.ctx, d, createdEvent(d))
				results <- result{d, rev, err}
			}
		})
	}
	wg.Wait()
	close(results)
	var revs []store.Revision
	for r := range results {
		if r.err != nil {
			t.Fatalf("CreateDelegation(%s): %v", r.d.ID, r.err)
		}
		revs = append(revs, r.rev)
		assertSame(t, f.get(r.d.ID), r.d)
	}
	slices.Sort(revs)
	for i, rev := range revs {
		if rev != store.Revision(i+2) {
			t.Fatalf("revisions %v are not 2..%d without gaps or repeats", revs, writers*each+1)
		}
	}
	if evs := f.verifyChain(); len(evs) != writers*each+1 {
		t.Fatalf("%d audit events, want %d", len(evs), writers*each+1)
	}
	if kids, err := f.s.Children(f.ctx, parent.ID); err != nil || len(kids) != writers*each/2 {
		t.Fatalf("Children = %d, %v; want %d", len(kids), err, writers*each/2)
	}
}

// listData stores a varied set of delegations for the listing tests and
// returns them as stored.
func (f *fixture) listData() []*delegation.Delegation {
	f.t.Helper()
	var all []*delegation.Delegation
	add := func(d *delegation.Delegation) *delegation.Delegation {
		f.create(d)
		all = append(all, d)
		return d
	}
	a1 := add(f.root(Alice, Agent(1)))
	add(f.root(Alice, Agent(1)))
	add(f.root(Alice, Agent(1)))
	add(f.root(Alice, Agent(2)))
	a2 := add(f.root(Alice, Agent(2)))
	add(f.root(Bob, Agent(1)))
	b1 := add(f.root(Bob, Agent(1)))
	add(f.root(Mallory, Agent(1)))
	add(f.child(a1, Agent(3)))
	for _, id := range []delegation.ID{a2.ID, b1.ID} {
		f.revoke(id, "test")
	}
	for i, d := range all {
		all[i] = f.get(d.ID)
	}
	return all
}

func matches(flt store.Filter, d *delegation.Delegation) bool {
	return (flt.UserIssuer == "" || d.User.Issuer() == flt.UserIssuer && d.User.Subject() == flt.UserSubject) &&
		(flt.Agent == "" || d.Agent.String() == flt.Agent) &&
		(flt.State == delegation.StateUnspecified || d.State == flt.State)
}

func testListFilters(t *testing.T, f *fixture) {
	all := f.listData()
	user := func(u delegation.User) store.Filter {
		return store.Filter{UserIssuer: u.Issuer(), UserSubject: u.Subject()}
	}
	with := func(flt store.Filter, edit func(*store.Filter)) store.Filter {
		edit(&flt)
		return flt
	}
	tests := []struct {
		name   string
		filter store.Filter
		count  int // the expected number, as a check on the model
	}{
		{"everything", store.Filter{}, 9},
		{"user alice", user(Alice), 6},
		{"user bob", user(Bob), 2},
		{"same subject at another issuer", user(Mallory), 1},
		{"agent 1", store.Filter{Agent: Agent(1).String()}, 6},
		{"agent 3 (a child)", store.Filter{Agent: Agent(3).String()}, 1},
		{"unknown agent", store.Filter{Agent: Agent(99).String()}, 0},
		{"active", store.Filter{State: delegation.StateActive}, 7},
		{"revoked", store.Filter{State: delegation.StateRevoked}, 2},
		{"alice and agent 1", with(user(Alice), func(f *store.Filter) { f.Agent = Agent(1).String() }), 3},
		{"alice and revoked", with(user(Alice), func(f *store.Filter) { f.State = delegation.StateRevoked }), 1},
		{"agent 1 and active", store.Filter{Agent: Agent(1).String(), State: delegation.StateActive}, 5},
		{"bob and agent 2", with(user(Bob), func(f *store.Filter) { f.Agent = Agent(2).String() }), 0},
		{"everything at once", with(user(Bob), func(f *store.Filter) {
			f.Agent, f.State = Agent(1).String(), delegation.StateRevoked
		}), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []*delegation.Delegation
			for _, d := range all {
				if matches(tt.filter, d) {
					want = append(want, d)
				}
			}
			if len(want) != tt.count {
				t.Fatalf("model selects %d, want %d: the test data changed", len(want), tt.count)
			}
			for _, size := range []int{2, store.MaxPageSize} {
				got := f.list(tt.filter, size)
				if g, w := ids(got), ids(want); !slices.Equal(g, w) {
					t.Fatalf("page size %d: got %v, want %v", size, g, w)
				}
				for _, d := range got {
					assertSame(t, d, f.get(d.ID))
				}
			}
		})
	}
}

func testListPaging(t *testing.T, f *fixture) {
	var all []*delegation.Delegation
	for range 20 {
		d := f.root(Alice, Agent(1))
		f.create(d)
		all = append(all, d)
	}
	want := ids(all) // in creation order

	page, next, err := f.s.ListDelegations(f.ctx, store.Filter{}, store.Page{})
	if err != nil || next != "" || !slices.Equal(ids(page), want) {
		t.Fatalf("default page: %v, %q, %v; want all 20 and no next token", ids(page), next, err)
	}
	page, next, err = f.s.ListDelegations(f.ctx, store.Filter{}, store.Page{Size: store.MaxPageSize * 5})
	if err != nil || next != "" || len(page) != 20 {
		t.Fatalf("oversized page: %d, %q, %v; want all 20", len(page), next, err)
	}
	// A page that ends exactly at the last item has no next token.
	first, next, err := f.s.ListDelegations(f.ctx, store.Filter{}, store.Page{Size: 10})
	if err != nil || next == "" || !slices.Equal(ids(first), want[:10]) {
		t.Fatalf("first page: %v, %q, %v", ids(first), next, err)
	}
	second, last, err := f.s.ListDelegations(f.ctx, store.Filter{}, store.Page{Size: 10, Token: next})
	if err != nil || last != "" || !slices.Equal(ids(second), want[10:]) {
		t.Fatalf("second page: %v, %q, %v; want the last 10 and no next token", ids(second), last, err)
	}

	// A token belongs to the filter it was listed with: with another one
	// it would start at a position that means nothing there.
	for _, other := range []store.Filter{{Agent: Agent(1).String()}, {State: delegation.StateActive}, {UserIssuer: Alice.Issuer(), UserSubject: Alice.Subject()}} {
		if page, next2, err := f.s.ListDelegations(f.ctx, other, store.Page{Size: 10, Token: next}); !errors.Is(err, store.ErrInvalidArgument) || page != nil || next2 != "" {
			t.Fatalf("token used with filter %+v: %d delegations, %q, %v; want ErrInvalidArgument", other, len(page), next2, err)
		}
	}

	// A token stays valid while delegations are added: the next page
	// starts after the last one returned and ends with the new ones.
	for range 5 {
		d := f.root(Bob, Agent(2))
		f.create(d)
		all = append(all, d)
	}
	want = ids(all)
	var rest []string
	for token := next; ; {
		page, next, err := f.s.ListDelegations(f.ctx, store.Filter{}, store.Page{Size: 4, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, ids(page)...)
		if next == "" {
			break
		}
		token = next
	}
	cut := slices.Index(want, first[9].ID.String())
	if !slices.Equal(rest, want[cut+1:]) {
		t.Fatalf("pages after the first = %v, want %v", rest, want[cut+1:])
	}
}

func testListRejects(t *testing.T, f *fixture) {
	f.create(f.root(Alice, Agent(1)))
	tests := []struct {
		name   string
		filter store.Filter
		page   store.Page
	}{
		{"issuer without subject", store.Filter{UserIssuer: Alice.Issuer()}, store.Page{}},
		{"subject without issuer", store.Filter{UserSubject: Alice.Subject()}, store.Page{}},
		{"expired is never stored", store.Filter{State: delegation.StateExpired}, store.Page{}},
		{"unknown state", store.Filter{State: delegation.State(42)}, store.Page{}},
		{"agent is not a SPIFFE ID", store.Filter{Agent: "agent-1"}, store.Page{}},
		{"negative page size", store.Filter{}, store.Page{Size: -1}},
		{"token not issued by the store", store.Filter{}, store.Page{Token: "not a token"}},
		{"token of another shape", store.Filter{}, store.Page{Token: "AAAA"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, next, err := f.s.ListDelegations(f.ctx, tt.filter, tt.page)
			assertErr(t, err, store.ErrInvalidArgument)
			if page != nil || next != "" {
				t.Fatalf("got %d delegations and token %q with the error", len(page), next)
			}
		})
	}
}

func testChildren(t *testing.T, f *fixture) {
	root := f.root(Alice, Agent(0))
	f.create(root)
	var kids []*delegation.Delegation
	for i := range 3 {
		c := f.child(root, Agent(1+i))
		f.create(c)
		kids = append(kids, c)
	}
	grandchild := f.child(kids[0], Agent(9))
	f.create(grandchild)
	other := f.root(Alice, Agent(0))
	f.create(other)

	tests := []struct {
		name string
		id   delegation.ID
		want []string
	}{
		{"root", root.ID, ids(kids)},
		{"child", kids[0].ID, ids([]*delegation.Delegation{grandchild})},
		{"leaf", grandchild.ID, nil},
		{"root without children", other.ID, nil},
		{"unknown id", f.newID(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.s.Children(f.ctx, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if g := ids(got); !slices.Equal(g, tt.want) {
				t.Fatalf("Children = %v, want %v", g, tt.want)
			}
			for _, d := range got {
				assertSame(t, d, f.get(d.ID))
			}
		})
	}
	_, err := f.s.Children(f.ctx, delegation.ID{})
	assertErr(t, err, store.ErrInvalidArgument)
}

func testRevokeCascade(t *testing.T, f *fixture) {
	// root ─┬─ c1 ─┬─ g1 ── h1
	//       │      └─ g2
	//       └─ c2 ── g3
	root := f.root(Alice, Agent(0))
	c1, c2 := f.child(root, Agent(1)), f.child(root, Agent(2))
	g1, g2, g3 := f.child(c1, Agent(3)), f.child(c1, Agent(4)), f.child(c2, Agent(3))
	h1 := f.child(g1, Agent(5))
	for _, d := range []*delegation.Delegation{root, c1, c2, g1, g2, g3, h1} {
		f.create(d)
	}
	revBefore := f.revision()
	evsBefore := f.events()

	r := revocation(c1.ID, "user asked")
	got, rev, err := f.s.RevokeDelegation(f.ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0] != c1.ID {
		t.Fatalf("revoked %v, want c1 first and its 3 descendants", got)
	}
	if g, w := sortIDs(got), sortedIDs(c1, g1, g2, h1); !slices.Equal(g, w) {
		t.Fatalf("revoked %v, want %v", g, w)
	}
	if rev != revBefore+4 {
		t.Fatalf("revision = %d, want %d (one change per revoked delegation)", rev, revBefore+4)
	}
	for _, d := range []*delegation.Delegation{c1, g1, g2, h1} {
		s := f.get(d.ID)
		if s.State != delegation.StateRevoked || !s.RevokedAt.Equal(r.At) || s.RevokeReason != r.Reason {
			t.Errorf("%s: state %s at %s reason %q; want revoked at %s with %q", d.ID, s.State, s.RevokedAt, s.RevokeReason, r.At, r.Reason)
		}
	}
	for _, d := range []*delegation.Delegation{root, c2, g3} {
		if s := f.get(d.ID); s.State != delegation.StateActive {
			t.Errorf("%s outside the revoked subtree is %s", d.ID, s.State)
		}
	}

	// One event per revoked delegation, in the order returned.
	evs := f.verifyChain()
	added := evs[len(evsBefore):]
	if len(added) != 4 {
		t.Fatalf("%d events recorded, want 4", len(added))
	}
	for i, e := range added {
		d := f.get(got[i])
		wantDetail := map[string]string{"reason": r.Reason, store.DetailCascadeOf: c1.ID.String()}
		if i == 0 {
			wantDetail = map[string]string{"reason": r.Reason, store.DetailCascadeCount: "3"}
		}
		if e.Type != audit.TypeRevoked || e.DelegationID != d.ID.String() || e.Agent != d.Agent.String() ||
			e.User != d.User.String() || e.Actor != "local" || !e.Time.Equal(r.At) || !mapsEqual(e.Detail, wantDetail) {
			t.Errorf("event %d = %+v; want a revocation of %s with detail %v", i, e, d.ID, wantDetail)
		}
	}

	changes, err := f.s.Changes(f.ctx, revBefore, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 4 {
		t.Fatalf("%d changes, want 4", len(changes))
	}
	for i, ch := range changes {
		if ch.Revision != revBefore+store.Revision(i+1) || ch.Kind != store.ChangeRevoked || ch.Delegation.ID != got[i] ||
			ch.Delegation.State != delegation.StateRevoked {
			t.Errorf("change %d = rev %d kind %d %s %s", i, ch.Revision, ch.Kind, ch.Delegation.ID, ch.Delegation.State)
		}
	}

	// Revoking the root now revokes only what is still active; the subtree
	// revoked first keeps its first revocation.
	r2 := revocation(root.ID, "admin")
	r2.At = r.At.Add(time.Minute)
	got, _, err = f.s.RevokeDelegation(f.ctx, r2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != root.ID {
		t.Fatalf("revoked %v, want root first, then c2 and g3", got)
	}
	if g, w := sortIDs(got), sortedIDs(root, c2, g3); !slices.Equal(g, w) {
		t.Fatalf("revoked %v, want %v", g, w)
	}
	if s := f.get(h1.ID); !s.RevokedAt.Equal(r.At) || s.RevokeReason != r.Reason {
		t.Errorf("h1 revoked again: at %s for %q", s.RevokedAt, s.RevokeReason)
	}
	if snap, _, err := f.s.Snapshot(f.ctx); err != nil || len(snap) != 0 {
		t.Fatalf("Snapshot after revoking everything = %v, %v", ids(snap), err)
	}
	f.verifyChain()
}

func sortIDs(in []delegation.ID) []string {
	out := make([]string, len(in))
	for i, id := range in {
		out[i] = id.String()
	}
	slices.Sort(out)
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func testRevokeRejects(t *testing.T, f *fixture) {
	active := f.root(Alice, Agent(1))
	f.create(active)
	revoked := f.root(Alice, Agent(1))
	f.create(revoked)
	f.revoke(revoked.ID, "first")

	tests := []struct {
		name string
		r    store.Revocation
		want error
	}{
		{"unknown id", revocation(f.newID(), "x"), store.ErrNotFound},
		{"already revoked", revocation(revoked.ID, "again"), store.ErrAlreadyRevoked},
		{"empty id", revocation(delegation.ID{}, "x"), store.ErrInvalidArgument},
		{"reason too long", revocation(active.ID, strings.Repeat("x", delegation.MaxReasonLength+1)), store.ErrInvalidArgument},
		{"event without actor", func() store.Revocation {
			r := revocation(active.ID, "x")
			r.Event.Actor = ""
			return r
		}(), store.ErrInvalidArgument},
		{"event for another delegation", func() store.Revocation {
			r := revocation(active.ID, "x")
			r.Event.DelegationID = revoked.ID.String()
			return r
		}(), store.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.events()
			rev := f.revision()
			got, gotRev, err := f.s.RevokeDelegation(f.ctx, tt.r)
			assertErr(t, err, tt.want)
			if got != nil || gotRev != 0 {
				t.Errorf("got %v, revision %d with the error", got, gotRev)
			}
			if after := f.events(); len(after) != len(before) {
				t.Errorf("audit log changed: %d events, was %d", len(after), len(before))
			}
			if r := f.revision(); r != rev {
				t.Errorf("revision = %d, was %d", r, rev)
			}
			if s := f.get(active.ID); s.State != delegation.StateActive {
				t.Errorf("refused revocation left %s %s", active.ID, s.State)
			}
			if s := f.get(revoked.ID); s.RevokeReason != "first" {
				t.Errorf("refused revocation changed the reason to %q", s.RevokeReason)
			}
		})
	}
}

func testRevokeRacingSubDelegation(t *testing.T, f *fixture) {
	const rounds, creators = 4, 8
	for round := range rounds {
		parent := f.root(Alice, Agent(0))
		f.create(parent)
		kids := make([]*delegation.Delegation, creators)
		for i := range kids {
			kids[i] = f.child(parent, Agent(1+i))
		}
		errs := make([]error, creators)
		var (
			revoked []delegation.ID
			revErr  error
			wg      sync.WaitGroup
			start   = make(chan struct{})
		)
		for i, kid := range kids {
			wg.Go(func() {
				<-start
				_, errs[i] = f.s.CreateDelegation(f.ctx, kid, createdEvent(kid))
			})
		}
		wg.Go(func() {
			<-start
			revoked, _, revErr = f.s.RevokeDelegation(f.ctx, revocation(parent.ID, "race "+strconv.Itoa(round)))
		})
		close(start)
		wg.Wait()
		if revErr != nil {
			t.Fatal(revErr)
		}
		// Every child either was created before the revocation and revoked
		// with it, or was refused with ErrParentInactive: none is left
		// active under the revoked parent.
		want := []delegation.ID{parent.ID}
		for i, kid := range kids {
			switch {
			case errs[i] == nil:
				want = append(want, kid.ID)
				if s := f.get(kid.ID); s.State != delegation.StateRevoked {
					t.Fatalf("round %d: child %s created before the revocation is %s", round, kid.ID, s.State)
				}
			case errors.Is(errs[i], store.ErrParentInactive):
				if _, err := f.s.GetDelegation(f.ctx, kid.ID); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("round %d: refused child %s: GetDelegation = %v", round, kid.ID, err)
				}
			default:
				t.Fatalf("round %d: CreateDelegation(child): %v", round, errs[i])
			}
		}
		if g, w := sortIDs(revoked), sortIDs(want); !slices.Equal(g, w) {
			t.Fatalf("round %d: revoked %v, want %v", round, g, w)
		}
		if snap, _, err := f.s.Snapshot(f.ctx); err != nil || len(snap) != 0 {
			t.Fatalf("round %d: active after the race: %v, %v", round, ids(snap), err)
		}
	}
	f.verifyChain()
}
