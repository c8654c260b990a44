package storetest

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
)

// prunedEvent is the event the server records with a prune.
func prunedEvent() audit.Event {
	return audit.Event{Time: T0.Add(time.Hour), Type: audit.TypeAuditPruned, Actor: "local"}
}

// issued returns n token-issued events naming d.
func issued(d *delegation.Delegation, n int) []audit.Event {
	out := make([]audit.Event, n)
	for i := range out {
		out[i] = audit.Event{Time: T0.Add(time.Duration(i) * time.Second), Type: audit.TypeTokenIssued,
			Actor: d.Agent.String(), DelegationID: d.ID.String(), Agent: d.Agent.String()}
	}
	return out
}

// auditLog fills the log with a mix of events: d1 and d2 created (1, 2),
// three issuances under d1 (3-5), a denial naming an unknown id (6), two
// issuances under d2 (7, 8), d1 revoked (9).
func (f *fixture) auditLog() (d1, d2 *delegation.Delegation, unknown string) {
	f.t.Helper()
	d1, d2 = f.root(Alice, Agent(1)), f.root(Bob, Agent(2))
	f.create(d1)
	f.create(d2)
	unknown = f.newID().String()
	evs := append(issued(d1, 3), audit.Event{Time: T0, Type: audit.TypeDenied, Actor: "local", DelegationID: unknown})
	evs = append(evs, issued(d2, 2)...)
	if err := f.s.AppendEvents(f.ctx, evs...); err != nil {
		f.t.Fatal(err)
	}
	f.revoke(d1.ID, "done")
	return d1, d2, unknown
}

// prune calls PruneEvents and fails the test unless it pruned want.
func (f *fixture) prune(through audit.Anchor, want int) {
	f.t.Helper()
	n, err := f.s.PruneEvents(f.ctx, through, prunedEvent())
	if err != nil || n != want {
		f.t.Fatalf("PruneEvents(%s) = %d, %v; want %d", through, n, err, want)
	}
}

// base returns AuditBase and fails the test on error.
func (f *fixture) base() audit.Anchor {
	f.t.Helper()
	b, err := f.s.AuditBase(f.ctx)
	if err != nil {
		f.t.Fatalf("AuditBase: %v", err)
	}
	return b
}

func seqs(evs []audit.Event) []uint64 {
	var out []uint64
	for _, e := range evs {
		out = append(out, e.Sequence)
	}
	return out
}

func testPruneEvents(t *testing.T, f *fixture) {
	if b := f.base(); !b.IsZero() {
		t.Fatalf("AuditBase of a new store = %s, want zero", b)
	}
	d1, d2, unknown := f.auditLog()
	all := f.verifyChain()
	if len(all) != 9 {
		t.Fatalf("%d events, want 9", len(all))
	}
	through := all[5].Anchor() // the denial naming an unknown id
	f.prune(through, 6)
	if b := f.base(); b != through {
		t.Fatalf("AuditBase = %s, want %s", b, through)
	}

	// The remaining log: 7..9 and the prune's own event, 10, chained from
	// the base.
	rest := f.verifyChain()
	if got, want := seqs(rest), []uint64{7, 8, 9, 10}; !slices.Equal(got, want) {
		t.Fatalf("remaining sequences %v, want %v", got, want)
	}
	for i, e := range rest[:3] {
		if e.Hash != all[6+i].Hash {
			t.Fatalf("event %d changed by the prune", e.Sequence)
		}
	}
	rec := rest[3]
	wantDetail := map[string]string{store.DetailThroughSequence: "6", store.DetailThroughHash: through.Hash.String()}
	if rec.Type != audit.TypeAuditPruned || rec.Actor != "local" || !rec.Time.Equal(prunedEvent().Time) ||
		!mapsEqual(rec.Detail, wantDetail) || rec.PrevHash != all[8].Hash {
		t.Fatalf("prune event = %+v, want type audit_pruned by local with detail %v, after event 9", rec, wantDetail)
	}
	if head, err := f.s.AuditHead(f.ctx); err != nil || head != rec.Anchor() {
		t.Fatalf("AuditHead = %s, %v; want the prune event %s", head, err, rec.Anchor())
	}
	// A chain verified from the start no longer verifies: the base is
	// where it starts.
	if err := audit.VerifySlice(rest); err == nil {
		t.Fatal("the pruned log verifies from sequence 1")
	}

	// Every listing starts after the base, whatever it asks for.
	tests := []struct {
		name   string
		filter store.EventFilter
		want   []uint64
	}{
		{"everything", store.EventFilter{}, []uint64{7, 8, 9, 10}},
		{"after a pruned sequence", store.EventFilter{AfterSeq: 3}, []uint64{7, 8, 9, 10}},
		{"after the base", store.EventFilter{AfterSeq: 6}, []uint64{7, 8, 9, 10}},
		{"after a remaining event", store.EventFilter{AfterSeq: 8}, []uint64{9, 10}},
		{"pruned delegation events", store.EventFilter{DelegationID: d1.ID.String()}, []uint64{9}},
		{"remaining delegation events", store.EventFilter{DelegationID: d2.ID.String()}, []uint64{7, 8}},
		{"unknown id, pruned", store.EventFilter{DelegationID: unknown}, nil},
		{"type, all pruned", store.EventFilter{Type: audit.TypeDelegationCreated}, nil},
		{"type, some pruned", store.EventFilter{Type: audit.TypeTokenIssued}, []uint64{7, 8}},
		{"type audit_pruned", store.EventFilter{Type: audit.TypeAuditPruned}, []uint64{10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{1, 3, store.MaxPageSize} {
				if got := seqs(f.listEvents(tt.filter, size)); !slices.Equal(got, tt.want) {
					t.Fatalf("page size %d: sequences %v, want %v", size, got, tt.want)
				}
			}
		})
	}

	// A second prune, through the record of the first, chains on.
	f.prune(rec.Anchor(), 4)
	final := f.verifyChain()
	if got, want := seqs(final), []uint64{11}; !slices.Equal(got, want) {
		t.Fatalf("after the second prune: %v, want %v", got, want)
	}
	if final[0].Detail[store.DetailThroughSequence] != "10" || final[0].PrevHash != rec.Hash {
		t.Fatalf("second prune event = %+v", final[0])
	}
	// The log goes on after a prune.
	if err := f.s.AppendEvents(f.ctx, issued(d2, 1)...); err != nil {
		t.Fatal(err)
	}
	if got, want := seqs(f.verifyChain()), []uint64{11, 12}; !slices.Equal(got, want) {
		t.Fatalf("after an append: %v, want %v", got, want)
	}
}

func testPruneRejects(t *testing.T, f *fixture) {
	f.auditLog()
	all := f.verifyChain()
	head := all[len(all)-1].Anchor()
	wrong := all[3].Anchor()
	wrong.Hash[0] ^= 1
	badType := prunedEvent()
	badType.Type = audit.TypeDenied
	noActor := prunedEvent()
	noActor.Actor = ""
	tests := []struct {
		name    string
		through audit.Anchor
		ev      audit.Event
		want    error
		text    string
	}{
		{"sequence 0", audit.Anchor{}, prunedEvent(), store.ErrInvalidArgument,
			"store: invalid argument: prune through sequence 0: no event has it"},
		{"beyond the head", audit.Anchor{Sequence: head.Sequence + 1, Hash: head.Hash}, prunedEvent(), store.ErrInvalidArgument,
			"store: invalid argument: sequence 10 is beyond the last event 9"},
		{"wrong hash", wrong, prunedEvent(), store.ErrAnchorMismatch,
			"store: anchor does not match the audit log: event 4 has hash " + all[3].Hash.String() + ", not " + wrong.Hash.String()},
		{"another event's hash", audit.Anchor{Sequence: 4, Hash: all[4].Hash}, prunedEvent(), store.ErrAnchorMismatch,
			"store: anchor does not match the audit log: event 4 has hash " + all[3].Hash.String() + ", not " + all[4].Hash.String()},
		{"not a prune event", all[3].Anchor(), badType, store.ErrInvalidArgument,
			"store: invalid argument: prune event has type denied, want audit_pruned"},
		{"invalid event", all[3].Anchor(), noActor, store.ErrInvalidArgument,
			"store: invalid argument: audit: invalid event: actor is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := f.s.PruneEvents(f.ctx, tt.through, tt.ev)
			assertErr(t, err, tt.want)
			if err.Error() != tt.text || n != 0 {
				t.Fatalf("PruneEvents = %d, %q; want 0, %q", n, err, tt.text)
			}
			// Nothing was written.
			if got := f.verifyChain(); len(got) != len(all) {
				t.Fatalf("%d events after a refused prune, want %d", len(got), len(all))
			}
			if b := f.base(); !b.IsZero() {
				t.Fatalf("AuditBase after a refused prune = %s", b)
			}
		})
	}

	// Only PruneEvents records a prune.
	assertErr(t, f.s.AppendEvents(f.ctx, prunedEvent()), store.ErrInvalidArgument)

	f.prune(all[4].Anchor(), 5)
	base := f.base()
	for _, through := range []audit.Anchor{all[4].Anchor(), all[2].Anchor()} {
		n, err := f.s.PruneEvents(f.ctx, through, prunedEvent())
		assertErr(t, err, store.ErrAnchorMismatch)
		if want := "store: anchor does not match the audit log: the log was already pruned through " + base.String(); err.Error() != want || n != 0 {
			t.Fatalf("PruneEvents(%s) again = %d, %q; want 0, %q", through, n, err, want)
		}
	}
	if got := seqs(f.verifyChain()); !slices.Equal(got, []uint64{6, 7, 8, 9, 10}) {
		t.Fatalf("after refused prunes: %v", got)
	}
}

// testPruneThenPurge purges a delegation whose events straddle the base:
// the events after it are still found by the delegation's id.
func testPruneThenPurge(t *testing.T, f *fixture) {
	d := f.root(Alice, Agent(1)) // expires T0+1h
	f.create(d)
	if err := f.s.AppendEvents(f.ctx, issued(d, 4)...); err != nil {
		t.Fatal(err)
	}
	all := f.verifyChain()
	f.prune(all[2].Anchor(), 3) // created, and two issuances
	f.fillLog(ChangeLogLimit)   // d's creation leaves the revision log
	f.purge(T0.Add(2*time.Hour), 10, 1)
	f.assertGone(d)
	if got, want := seqs(f.listEvents(store.EventFilter{DelegationID: d.ID.String()}, 1)), []uint64{4, 5}; !slices.Equal(got, want) {
		t.Fatalf("events of the purged delegation: %v, want %v", got, want)
	}
	if got := f.base(); got != all[2].Anchor() {
		t.Fatalf("AuditBase = %s, want %s", got, all[2].Anchor())
	}
}

// testPruneThroughHead prunes every event: the log is then its prune
// record alone.
func testPruneThroughHead(t *testing.T, f *fixture) {
	f.auditLog()
	head, err := f.s.AuditHead(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.prune(head, 9)
	rest := f.verifyChain()
	if len(rest) != 1 || rest[0].Sequence != 10 || rest[0].Detail[store.DetailThroughSequence] != strconv.FormatUint(head.Sequence, 10) {
		t.Fatalf("log after pruning through the head: %+v", rest)
	}
}
