package storetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
)

// waitBound bounds every wait for a notification. It is a failure bound,
// not a sleep: the tests wait for the signal, which normally comes at once.
const waitBound = 10 * time.Second

func testSnapshotAndChanges(t *testing.T, f *fixture) {
	snap, rev, err := f.s.Snapshot(f.ctx)
	if err != nil || len(snap) != 0 || rev != 0 {
		t.Fatalf("empty store: Snapshot = %d, %d, %v", len(snap), rev, err)
	}
	if rev, err := f.s.Revision(f.ctx); err != nil || rev != 0 {
		t.Fatalf("empty store: Revision = %d, %v", rev, err)
	}
	if changes, err := f.s.Changes(f.ctx, 0, 0); err != nil || len(changes) != 0 {
		t.Fatalf("empty store: Changes(0) = %v, %v", changes, err)
	}

	r1, r2 := f.root(Alice, Agent(1)), f.root(Bob, Agent(2))
	c := f.child(r1, Agent(3))
	f.create(r1)
	f.create(r2)
	f.create(c)
	f.revoke(r2.ID, "done")

	snap, rev, err = f.s.Snapshot(f.ctx)
	if err != nil || rev != 4 {
		t.Fatalf("Snapshot = revision %d, %v; want 4", rev, err)
	}
	if rev, err := f.s.Revision(f.ctx); err != nil || rev != 4 {
		t.Fatalf("Revision = %d, %v; want 4", rev, err)
	}
	if g, w := sortedIDs(snap...), sortedIDs(r1, c); !slices.Equal(g, w) {
		t.Fatalf("Snapshot = %v, want %v", g, w)
	}

	changes, err := f.s.Changes(f.ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		kind  store.ChangeKind
		d     *delegation.Delegation
		state delegation.State
	}{
		{store.ChangeCreated, r1, delegation.StateActive},
		// The created change shows r2 as created, though it is revoked now.
		{store.ChangeCreated, r2, delegation.StateActive},
		{store.ChangeCreated, c, delegation.StateActive},
		{store.ChangeRevoked, r2, delegation.StateRevoked},
	}
	if len(changes) != len(want) {
		t.Fatalf("%d changes, want %d", len(changes), len(want))
	}
	for i, w := range want {
		ch := changes[i]
		if ch.Revision != store.Revision(i+1) || ch.Kind != w.kind || ch.Delegation.ID != w.d.ID || ch.Delegation.State != w.state {
			t.Errorf("change %d = rev %d kind %d %s %s; want rev %d kind %d %s %s", i,
				ch.Revision, ch.Kind, ch.Delegation.ID, ch.Delegation.State, i+1, w.kind, w.d.ID, w.state)
		}
	}
	assertSame(t, changes[1].Delegation, r2)
	if d := changes[3].Delegation; d.RevokeReason != "done" || d.RevokedAt.IsZero() {
		t.Errorf("revoked change lacks the revocation: %+v", d)
	}

	tests := []struct {
		name  string
		since store.Revision
		limit int
		want  []store.Revision
		err   error
	}{
		{"limit", 0, 2, []store.Revision{1, 2}, nil},
		{"middle", 2, 1, []store.Revision{3}, nil},
		{"negative limit means the most", 1, -1, []store.Revision{2, 3, 4}, nil},
		{"current revision", 4, 0, nil, nil},
		{"future revision", 5, 0, nil, store.ErrFutureRevision},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changes, err := f.s.Changes(f.ctx, tt.since, tt.limit)
			assertErr(t, err, tt.err)
			var got []store.Revision
			for _, ch := range changes {
				got = append(got, ch.Revision)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Changes(%d, %d) = %v, want %v", tt.since, tt.limit, got, tt.want)
			}
		})
	}
}

func testChangesCompacted(t *testing.T, f *fixture) {
	const n = ChangeLogLimit + 5
	for range n {
		f.create(f.root(Alice, Agent(1)))
	}
	oldest := store.Revision(n - ChangeLogLimit) // the newest revision compacted away
	changes, err := f.s.Changes(f.ctx, oldest, 0)
	if err != nil {
		t.Fatalf("Changes(%d), the start of the retained log: %v (is the factory's ChangeLogLimit %d?)", oldest, err, ChangeLogLimit)
	}
	if len(changes) != ChangeLogLimit || changes[0].Revision != oldest+1 || changes[len(changes)-1].Revision != n {
		t.Fatalf("Changes(%d) = %d changes, want revisions %d..%d", oldest, len(changes), oldest+1, n)
	}
	for _, since := range []store.Revision{0, 1, oldest - 1} {
		_, err := f.s.Changes(f.ctx, since, 0)
		assertErr(t, err, store.ErrCompacted)
	}
	// A snapshot still holds everything, and the watch resumes from it.
	snap, rev, err := f.s.Snapshot(f.ctx)
	if err != nil || len(snap) != n || rev != n {
		t.Fatalf("Snapshot = %d delegations at %d, %v; want %d at %d", len(snap), rev, err, n, n)
	}
	if changes, err := f.s.Changes(f.ctx, rev, 0); err != nil || len(changes) != 0 {
		t.Fatalf("Changes(snapshot revision) = %v, %v", changes, err)
	}
}

func testNotify(t *testing.T, f *fixture) {
	ch, stop := f.s.Notify()
	ch2, stop2 := f.s.Notify()
	defer stop2()
	wait := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case _, ok := <-ch:
			if !ok {
				t.Fatalf("%s: channel closed", what)
			}
		case <-time.After(waitBound):
			t.Fatalf("%s: no notification within %s", what, waitBound)
		}
	}
	root := f.root(Alice, Agent(1))
	f.create(root)
	wait(ch, "create")
	wait(ch2, "create, second subscriber")
	f.revoke(root.ID, "x")
	wait(ch, "revoke")

	// Signals coalesce: many changes, at least one signal, never a block.
	for range 3 {
		f.create(f.root(Alice, Agent(1)))
	}
	wait(ch, "burst")

	stop()
	stop() // stopping twice is harmless
	deadline := time.After(waitBound)
	for closed := false; !closed; {
		select {
		case _, ok := <-ch:
			closed = !ok
		case <-deadline:
			t.Fatal("channel not closed by stop")
		}
	}
	f.create(f.root(Alice, Agent(1))) // must not panic on the stopped channel
	wait(ch2, "after another subscriber stopped")
}

func testAppendAndListEvents(t *testing.T, f *fixture) {
	d1, d2 := f.root(Alice, Agent(1)), f.root(Bob, Agent(2))
	f.create(d1)
	f.create(d2)
	if err := f.s.AppendEvents(f.ctx); err != nil {
		t.Fatalf("AppendEvents(): %v", err)
	}
	extra := []audit.Event{
		{Time: T0.Add(time.Second), Type: audit.TypeTokenIssued, Actor: "spiffe://example.org/spire/server",
			DelegationID: d1.ID.String(), Agent: d1.Agent.String(), Detail: map[string]string{"audience": "spiffe://example.org/svc/crm"}},
		{Time: T0.Add(2 * time.Second), Type: audit.TypeDenied, Actor: "spiffe://example.org/app/frontend",
			Detail: map[string]string{"reason": "no rule allows it\nsecond line"}},
		{Time: T0.Add(3 * time.Second), Type: audit.TypeAgentSynced, Actor: "local", Agent: Agent(1).String()},
	}
	if err := f.s.AppendEvents(f.ctx, extra...); err != nil {
		t.Fatal(err)
	}
	all := f.verifyChain()
	if len(all) != 5 {
		t.Fatalf("%d events, want 5", len(all))
	}
	head, err := f.s.AuditHead(f.ctx)
	if err != nil || head != all[4].Anchor() {
		t.Fatalf("AuditHead = %v, %v; want the last event's anchor %v", head, err, all[4].Anchor())
	}
	for i, want := range extra {
		got := all[2+i]
		if got.Sequence != uint64(3+i) || got.Type != want.Type || got.Actor != want.Actor ||
			got.DelegationID != want.DelegationID || got.Agent != want.Agent || !got.Time.Equal(want.Time) ||
			!mapsEqual(got.Detail, want.Detail) {
			t.Errorf("event %d = %+v, want %+v", 3+i, got, want)
		}
	}

	seqs := func(evs []audit.Event) []uint64 {
		var out []uint64
		for _, e := range evs {
			out = append(out, e.Sequence)
		}
		return out
	}
	tests := []struct {
		name   string
		filter store.EventFilter
		want   []uint64
	}{
		{"everything", store.EventFilter{}, []uint64{1, 2, 3, 4, 5}},
		{"delegation", store.EventFilter{DelegationID: d1.ID.String()}, []uint64{1, 3}},
		{"unknown delegation", store.EventFilter{DelegationID: f.newID().String()}, nil},
		{"prefix of a delegation id", store.EventFilter{DelegationID: d1.ID.String()[:10]}, nil},
		{"type", store.EventFilter{Type: audit.TypeDelegationCreated}, []uint64{1, 2}},
		{"delegation and type", store.EventFilter{DelegationID: d1.ID.String(), Type: audit.TypeTokenIssued}, []uint64{3}},
		{"after", store.EventFilter{AfterSeq: 3}, []uint64{4, 5}},
		{"type after", store.EventFilter{Type: audit.TypeDelegationCreated, AfterSeq: 1}, []uint64{2}},
		{"after the end", store.EventFilter{AfterSeq: 5}, nil},
		{"far after the end", store.EventFilter{AfterSeq: ^uint64(0)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{1, 2, store.MaxPageSize} {
				if got := seqs(f.listEvents(tt.filter, size)); !slices.Equal(got, tt.want) {
					t.Fatalf("page size %d: sequences %v, want %v", size, got, tt.want)
				}
			}
		})
	}
	// Pages chain: each page verifies from the last event of the previous.
	page, next, err := f.s.ListEvents(f.ctx, store.EventFilter{}, store.Page{Size: 3})
	if err != nil || next == "" {
		t.Fatalf("first page: %v, %q", err, next)
	}
	rest, last, err := f.s.ListEvents(f.ctx, store.EventFilter{}, store.Page{Size: 3, Token: next})
	if err != nil || last != "" || len(rest) != 2 {
		t.Fatalf("second page: %d events, %q, %v", len(rest), last, err)
	}
	if _, err := audit.VerifyWith(audit.VerifyConfig{From: page[2].Anchor()}, audit.FromSlice(rest)); err != nil {
		t.Fatalf("second page does not continue the first: %v", err)
	}
	// The token belongs to its filter; AfterSeq only moves the start, so it
	// may change between pages.
	for _, other := range []store.EventFilter{{Type: audit.TypeTokenIssued}, {DelegationID: "dlg_0000000000000000000000000a"}} {
		if evs, n, err := f.s.ListEvents(f.ctx, other, store.Page{Size: 3, Token: next}); !errors.Is(err, store.ErrInvalidArgument) || evs != nil || n != "" {
			t.Fatalf("token used with filter %+v: %d events, %q, %v; want ErrInvalidArgument", other, len(evs), n, err)
		}
	}
	if again, _, err := f.s.ListEvents(f.ctx, store.EventFilter{AfterSeq: 1}, store.Page{Size: 3, Token: next}); err != nil || len(again) != 2 {
		t.Fatalf("token with another AfterSeq: %d events, %v; want the same 2", len(again), err)
	}

	// Events may name a delegation before it is stored (a refused request
	// naming an id); they are found with the ones recorded after.
	later := f.root(Alice, Agent(2))
	denied := audit.Event{Time: T0, Type: audit.TypeDenied, Actor: "local", DelegationID: later.ID.String()}
	if err := f.s.AppendEvents(f.ctx, denied); err != nil {
		t.Fatal(err)
	}
	f.create(later)
	issued := audit.Event{Time: T0, Type: audit.TypeTokenIssued, Actor: "spire", DelegationID: later.ID.String()}
	if err := f.s.AppendEvents(f.ctx, denied, issued); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1, 2, store.MaxPageSize} {
		got := seqs(f.listEvents(store.EventFilter{DelegationID: later.ID.String()}, size))
		if want := []uint64{6, 7, 8, 9}; !slices.Equal(got, want) {
			t.Fatalf("page size %d: events of a delegation named before it was stored: %v, want %v", size, got, want)
		}
	}
	got := seqs(f.listEvents(store.EventFilter{DelegationID: later.ID.String(), Type: audit.TypeDenied, AfterSeq: 6}, 1))
	if want := []uint64{8}; !slices.Equal(got, want) {
		t.Fatalf("denied events of it after 6: %v, want %v", got, want)
	}
	f.verifyChain()
}

func testAppendEventsRejects(t *testing.T, f *fixture) {
	good := audit.Event{Time: T0, Type: audit.TypeDenied, Actor: "local"}
	if err := f.s.AppendEvents(f.ctx, good); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		edit func(*audit.Event)
	}{
		{"no type", func(e *audit.Event) { e.Type = audit.TypeUnspecified }},
		{"unknown type", func(e *audit.Event) { e.Type = audit.Type(200) }},
		{"no actor", func(e *audit.Event) { e.Actor = "" }},
		{"control character in actor", func(e *audit.Event) { e.Actor = "lo\x00cal" }},
		{"too much detail", func(e *audit.Event) {
			e.Detail = map[string]string{}
			for i := range audit.MaxDetailEntries + 1 {
				e.Detail[string(rune('a'+i%26))+string(rune('a'+i/26))] = "x"
			}
		}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			e := good
			tt.edit(&e)
			// The valid event before the bad one is not written either.
			err := f.s.AppendEvents(f.ctx, good, e)
			assertErr(t, err, store.ErrInvalidArgument)
			if evs := f.events(); len(evs) != 1 {
				t.Fatalf("%d events after a refused append, want 1", len(evs))
			}
		})
	}
	listBad := []struct {
		name   string
		filter store.EventFilter
		page   store.Page
	}{
		{"negative page size", store.EventFilter{}, store.Page{Size: -5}},
		{"token not issued by the store", store.EventFilter{}, store.Page{Token: "not a token"}},
		{"unknown type", store.EventFilter{Type: audit.Type(200)}, store.Page{}},
	}
	for _, tt := range listBad {
		t.Run(tt.name, func(t *testing.T) {
			evs, next, err := f.s.ListEvents(f.ctx, tt.filter, tt.page)
			assertErr(t, err, store.ErrInvalidArgument)
			if evs != nil || next != "" {
				t.Fatalf("got %d events and token %q with the error", len(evs), next)
			}
		})
	}
	f.verifyChain()
}

func testAuditChain(t *testing.T, f *fixture) {
	want := 0 // events the successful calls recorded
	root := f.root(Alice, Agent(0))
	f.create(root)
	want++
	kids := []*delegation.Delegation{f.child(root, Agent(1)), f.child(root, Agent(2))}
	for _, k := range kids {
		f.create(k)
		want++
	}
	if _, err := f.s.CreateDelegation(f.ctx, kids[0], createdEvent(kids[0])); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := f.s.AppendEvents(f.ctx, audit.Event{Time: T0, Type: audit.TypeTokenIssued, Actor: "spire", DelegationID: kids[0].ID.String()}); err != nil {
		t.Fatal(err)
	}
	want++
	if err := f.s.AppendEvents(f.ctx, audit.Event{Time: T0, Type: audit.TypeDenied}); !errors.Is(err, store.ErrInvalidArgument) {
		t.Fatalf("invalid event: %v", err)
	}
	grandchild := f.child(kids[0], Agent(3))
	f.create(grandchild)
	want++
	want += len(f.revoke(kids[0].ID, "first"))
	late := f.child(kids[0], Agent(4))
	if _, err := f.s.CreateDelegation(f.ctx, late, createdEvent(late)); !errors.Is(err, store.ErrParentInactive) {
		t.Fatalf("child of revoked: %v", err)
	}
	if _, _, err := f.s.RevokeDelegation(f.ctx, revocation(kids[0].ID, "again")); !errors.Is(err, store.ErrAlreadyRevoked) {
		t.Fatalf("revoke twice: %v", err)
	}
	f.create(f.root(Bob, Agent(5)))
	want++
	want += len(f.revoke(root.ID, "last"))

	evs := f.verifyChain()
	if len(evs) != want {
		t.Fatalf("%d events, want %d", len(evs), want)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].PrevHash != evs[i-1].Hash {
			t.Fatalf("event %d does not link to event %d", evs[i].Sequence, evs[i-1].Sequence)
		}
	}
	// An edit anywhere is detected: the suite's check is not vacuous.
	evs[2].Actor = "someone else"
	var chainErr *audit.ChainError
	if err := audit.VerifySlice(evs); !errors.As(err, &chainErr) || chainErr.Sequence != 3 {
		t.Fatalf("edited chain: %v, want a chain error at sequence 3", err)
	}
}

func testAgents(t *testing.T, f *fixture) {
	a := store.Agent{
		Name: "gdpr", SPIFFEID: "spiffe://example.org/agent/gdpr", EntryID: "agentid-gdpr",
		SyncState: "synced", LastSynced: T0, Spec: []byte(`{"scopes":["compliance:check"]}`),
	}
	b := store.Agent{Name: "analyst", SPIFFEID: "spiffe://example.org/agent/analyst", SyncState: "pending"}
	for _, x := range []store.Agent{a, b} {
		if err := f.s.PutAgent(f.ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	equal := func(x, y store.Agent) bool {
		return x.Name == y.Name && x.SPIFFEID == y.SPIFFEID && x.EntryID == y.EntryID && x.SyncState == y.SyncState &&
			x.LastSynced.Equal(y.LastSynced) && x.LastError == y.LastError && bytes.Equal(x.Spec, y.Spec)
	}
	got, err := f.s.GetAgent(f.ctx, a.Name)
	if err != nil || !equal(got, a) {
		t.Fatalf("GetAgent = %+v, %v; want %+v", got, err, a)
	}
	// Put replaces.
	a.SyncState, a.LastError = "error", "entry rejected"
	if err := f.s.PutAgent(f.ctx, a); err != nil {
		t.Fatal(err)
	}
	list, err := f.s.ListAgents(f.ctx)
	if err != nil || len(list) != 2 || !equal(list[0], b) || !equal(list[1], a) {
		t.Fatalf("ListAgents = %+v, %v; want analyst then gdpr", list, err)
	}
	if err := f.s.DeleteAgent(f.ctx, b.Name); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeleteAgent(f.ctx, "never-declared"); err != nil {
		t.Fatalf("DeleteAgent(unknown) = %v, want nil", err)
	}
	_, err = f.s.GetAgent(f.ctx, b.Name)
	assertErr(t, err, store.ErrNotFound)
	if list, err := f.s.ListAgents(f.ctx); err != nil || len(list) != 1 {
		t.Fatalf("ListAgents after delete = %+v, %v", list, err)
	}
	assertErr(t, f.s.PutAgent(f.ctx, store.Agent{}), store.ErrInvalidArgument)
	_, err = f.s.GetAgent(f.ctx, "")
	assertErr(t, err, store.ErrInvalidArgument)
	assertErr(t, f.s.DeleteAgent(f.ctx, ""), store.ErrInvalidArgument)
}

// everyMethod calls each method of s once and returns the errors by name.
func everyMethod(ctx context.Context, f *fixture, existing *delegation.Delegation) map[string]error {
	d := f.root(Alice, Agent(1))
	errs := map[string]error{}
	_, errs["CreateDelegation"] = f.s.CreateDelegation(ctx, d, createdEvent(d))
	_, errs["GetDelegation"] = f.s.GetDelegation(ctx, existing.ID)
	_, _, errs["ListDelegations"] = f.s.ListDelegations(ctx, store.Filter{}, store.Page{})
	_, errs["Children"] = f.s.Children(ctx, existing.ID)
	_, _, errs["RevokeDelegation"] = f.s.RevokeDelegation(ctx, revocation(existing.ID, "x"))
	_, errs["PurgeExpired"] = f.s.PurgeExpired(ctx, T0.Add(time.Hour), 10)
	_, _, errs["Snapshot"] = f.s.Snapshot(ctx)
	_, errs["Revision"] = f.s.Revision(ctx)
	_, errs["Changes"] = f.s.Changes(ctx, 0, 0)
	errs["AppendEvents"] = f.s.AppendEvents(ctx, audit.Event{Time: T0, Type: audit.TypeDenied, Actor: "local"})
	_, _, errs["ListEvents"] = f.s.ListEvents(ctx, store.EventFilter{}, store.Page{})
	_, errs["AuditHead"] = f.s.AuditHead(ctx)
	_, errs["PruneEvents"] = f.s.PruneEvents(ctx, audit.Anchor{Sequence: 1}, prunedEvent())
	_, errs["AuditBase"] = f.s.AuditBase(ctx)
	errs["PutAgent"] = f.s.PutAgent(ctx, store.Agent{Name: "a"})
	_, errs["GetAgent"] = f.s.GetAgent(ctx, "a")
	_, errs["ListAgents"] = f.s.ListAgents(ctx)
	errs["DeleteAgent"] = f.s.DeleteAgent(ctx, "a")
	return errs
}

func testCanceledContext(t *testing.T, f *fixture) {
	existing := f.root(Alice, Agent(1))
	f.create(existing)
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	for name, err := range everyMethod(ctx, f, existing) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context = %v, want context.Canceled", name, err)
		}
	}
	if evs := f.events(); len(evs) != 1 {
		t.Fatalf("%d events after canceled calls, want 1", len(evs))
	}
	if s := f.get(existing.ID); s.State != delegation.StateActive {
		t.Fatalf("canceled revoke left the delegation %s", s.State)
	}
}

func testClosed(t *testing.T, f *fixture) {
	existing := f.root(Alice, Agent(1))
	f.create(existing)
	ch, _ := f.s.Notify()
	f.closed = true
	if err := f.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := f.s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for name, err := range everyMethod(f.ctx, f, existing) {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	select {
	case _, ok := <-ch:
		if ok {
			if _, ok := <-ch; ok {
				t.Fatal("Notify channel still open after Close")
			}
		}
	case <-time.After(waitBound):
		t.Fatal("Notify channel not closed by Close")
	}
	after, stop := f.s.Notify()
	defer stop()
	if _, ok := <-after; ok {
		t.Fatal("Notify after Close returned an open channel")
	}
}
