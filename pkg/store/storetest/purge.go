package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
)

// longLived builds (without storing) a root of user to agent that expires
// two days after T0, beyond every purge time of the suite.
func (f *fixture) longLived(agent int) *delegation.Delegation {
	f.t.Helper()
	d := f.root(Bob, Agent(agent))
	d.ExpiresAt = T0.Add(48 * time.Hour)
	return d
}

// fillLog creates n long-lived delegations, pushing older changes out of
// the revision log.
func (f *fixture) fillLog(n int) []*delegation.Delegation {
	f.t.Helper()
	out := make([]*delegation.Delegation, n)
	for i := range out {
		out[i] = f.longLived(9)
		f.create(out[i])
	}
	return out
}

// purge calls PurgeExpired and fails the test unless it deleted want.
func (f *fixture) purge(before time.Time, limit, want int) {
	f.t.Helper()
	n, err := f.s.PurgeExpired(f.ctx, before, limit)
	if err != nil || n != want {
		f.t.Fatalf("PurgeExpired(%s, %d) = %d, %v; want %d", before.Format(time.RFC3339), limit, n, err, want)
	}
}

// assertGone fails unless every d is unknown to GetDelegation and Children
// and absent from listings and the snapshot.
func (f *fixture) assertGone(ds ...*delegation.Delegation) {
	f.t.Helper()
	listed := ids(f.list(store.Filter{}, 7))
	snap, _, err := f.s.Snapshot(f.ctx)
	if err != nil {
		f.t.Fatalf("Snapshot: %v", err)
	}
	snapped := ids(snap)
	for _, d := range ds {
		_, err := f.s.GetDelegation(f.ctx, d.ID)
		assertErr(f.t, err, store.ErrNotFound)
		if slices.Contains(listed, d.ID.String()) || slices.Contains(snapped, d.ID.String()) {
			f.t.Fatalf("purged %s is still listed", d.ID)
		}
		for _, flt := range []store.Filter{
			{UserIssuer: d.User.Issuer(), UserSubject: d.User.Subject()},
			{Agent: d.Agent.String()},
			{State: d.State},
		} {
			if slices.Contains(ids(f.list(flt, 3)), d.ID.String()) {
				f.t.Fatalf("purged %s is still listed by %+v", d.ID, flt)
			}
		}
	}
}

func testPurgeExpired(t *testing.T, f *fixture) {
	// A tree that expired while active, a revoked root, and a long-lived
	// root that must survive every purge.
	a := f.root(Alice, Agent(1))
	a1 := f.child(a, Agent(2))
	a2 := f.child(a1, Agent(3))
	b := f.root(Alice, Agent(4))
	keep := f.longLived(5)
	for _, d := range []*delegation.Delegation{a, a1, a2, b, keep} {
		f.create(d)
	}
	f.revoke(b.ID, "done")
	b = f.get(b.ID)
	expiry := a.ExpiresAt
	after := expiry.Add(time.Nanosecond)

	// While the revision log names them, nothing is purged.
	f.purge(after, 1000, 0)
	fillers := f.fillLog(ChangeLogLimit)
	// Not expired before the expiry itself.
	f.purge(expiry, 1000, 0)
	watchFrom := f.revision()

	// Creation order is a, a1, a2, b: a and a1 have children, so the first
	// two purgeable are a2 and b.
	f.purge(after, 2, 2)
	f.assertGone(a2, b)
	if kids, err := f.s.Children(f.ctx, a1.ID); err != nil || len(kids) != 0 {
		t.Fatalf("Children(%s) after purging its child = %v, %v", a1.ID, ids(kids), err)
	}
	assertSame(t, f.get(a1.ID), a1)
	f.purge(after, 1000, 2) // a1, then a
	f.assertGone(a, a1)
	f.purge(after, 1000, 0)

	// The others are intact, and no revision was added.
	want := append([]string{keep.ID.String()}, ids(fillers)...)
	if got := ids(f.list(store.Filter{}, 7)); !slices.Equal(got, want) {
		t.Fatalf("after purge, List = %v, want %v", got, want)
	}
	assertSame(t, f.get(keep.ID), keep)
	if rev := f.revision(); rev != watchFrom {
		t.Fatalf("purge moved the revision from %d to %d", watchFrom, rev)
	}
	if changes, err := f.s.Changes(f.ctx, watchFrom-ChangeLogLimit, 0); err != nil || len(changes) != ChangeLogLimit {
		t.Fatalf("Changes after purge = %d changes, %v; want %d", len(changes), err, ChangeLogLimit)
	}

	// Their audit events stay, found by id; the chain (checked by Run)
	// still verifies.
	for _, tc := range []struct {
		d     *delegation.Delegation
		types []audit.Type
	}{
		{a, []audit.Type{audit.TypeDelegationCreated}},
		{a2, []audit.Type{audit.TypeSubDelegated}},
		{b, []audit.Type{audit.TypeDelegationCreated, audit.TypeRevoked}},
	} {
		evs := f.listEvents(store.EventFilter{DelegationID: tc.d.ID.String()}, 1)
		var got []audit.Type
		for _, e := range evs {
			got = append(got, e.Type)
		}
		if !slices.Equal(got, tc.types) {
			t.Fatalf("events of purged %s = %v, want %v", tc.d.ID, got, tc.types)
		}
	}
	// A purged id is free again: the store no longer knows it.
	_, _, err := f.s.RevokeDelegation(f.ctx, revocation(a.ID, "gone"))
	assertErr(t, err, store.ErrNotFound)
}

func testPurgeKeepsLoggedRevocations(t *testing.T, f *fixture) {
	d := f.root(Alice, Agent(1))
	f.create(d)
	f.fillLog(ChangeLogLimit)
	after := d.ExpiresAt.Add(time.Minute)
	// Revoked after it expired: the log still names it.
	f.revoke(d.ID, "late")
	f.purge(after, 10, 0)
	if got := f.get(d.ID); got.State != delegation.StateRevoked {
		t.Fatalf("kept delegation is %s", got.State)
	}
	since := f.revision() - 1
	f.fillLog(ChangeLogLimit - 1)
	f.purge(after, 10, 0) // the revocation is the oldest change retained
	if changes, err := f.s.Changes(f.ctx, since, 1); err != nil || len(changes) != 1 || changes[0].Delegation.ID != d.ID {
		t.Fatalf("Changes(%d) = %v, %v; want the revocation of %s", since, changes, err, d.ID)
	}
	f.fillLog(1)
	f.purge(after, 10, 1)
	f.assertGone(d)
}

// testPurgeGuardsChildren stores a child that outlives its expired parent,
// which no valid sub-delegation does: the parent must stay.
func testPurgeGuardsChildren(t *testing.T, f *fixture) {
	p := f.root(Alice, Agent(1))
	c := f.child(p, Agent(2))
	c2 := f.child(p, Agent(3))
	// Forge the longer life after building, as a damaged or hand-made
	// store might hold it.
	c.ExpiresAt = T0.Add(48 * time.Hour)
	for _, d := range []*delegation.Delegation{p, c, c2} {
		f.create(d)
	}
	f.fillLog(ChangeLogLimit)
	f.purge(p.ExpiresAt.Add(time.Minute), 10, 1) // c2 only
	f.assertGone(c2)
	assertSame(t, f.get(p.ID), p)
	if kids, err := f.s.Children(f.ctx, p.ID); err != nil || !slices.Equal(ids(kids), []string{c.ID.String()}) {
		t.Fatalf("Children(%s) = %v, %v; want [%s]", p.ID, ids(kids), err, c.ID)
	}
}

func testPurgeRejects(t *testing.T, f *fixture) {
	f.create(f.root(Alice, Agent(1)))
	for _, tc := range []struct {
		name   string
		before time.Time
		limit  int
	}{
		{"zero time", time.Time{}, 10},
		{"zero limit", T0, 0},
		{"negative limit", T0, -1},
	} {
		n, err := f.s.PurgeExpired(f.ctx, tc.before, tc.limit)
		if n != 0 || !errors.Is(err, store.ErrInvalidArgument) {
			t.Errorf("%s: PurgeExpired = %d, %v; want ErrInvalidArgument", tc.name, n, err)
		}
	}
}
