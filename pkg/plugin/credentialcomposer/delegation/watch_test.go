package composer

import (
	"context"
	"slices"
	"testing"
	"time"

	domain "github.com/agentid/agentid/pkg/delegation"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// compose asks for a token of sub under id and returns the error.
func (h *harness) compose(t testing.TB, sub, id string) error {
	t.Helper()
	_, err := h.client.ComposeWorkloadJWTSVID(context.Background(), jwtRequest(t, sub, crm, marker(id)))
	return err
}

func (h *harness) waitWatches(t testing.TB, want ...uint64) {
	t.Helper()
	waitFor(t, "watch calls", h.srv.changed, func() bool { return len(h.srv.watchLog()) >= len(want) })
	if got := h.srv.watchLog(); !slices.Equal(got, want) {
		t.Fatalf("since_revision of the watches = %v, want %v", got, want)
	}
}

// TestWatchResumesAfterBreak breaks the stream and checks that the plugin
// resumes from the last revision it applied (no second snapshot) and keeps
// following changes.
func TestWatchResumesAfterBreak(t *testing.T) {
	srv := startFakeServer(t, "", pbDelegation(rootID, ""), pbDelegation(childID, rootID))
	h := newHarness(t, srv, "")
	h.waitRevision(t, 2)
	h.waitRevision(t, srv.create(pbDelegation(otherID, "")))
	if err := h.compose(t, orchestrator, otherID); err != nil {
		t.Fatal(err)
	}

	srv.breakStreams()
	checkStatus(t, h.nextEnd(t), codes.Unavailable, "server going away")
	h.waitRevision(t, srv.revoke(childID))
	h.waitWatches(t, 0, 3)
	checkStatus(t, h.compose(t, analyst, childID), codes.PermissionDenied, "composer: delegation is revoked: "+childID)
	if err := h.compose(t, orchestrator, otherID); err != nil {
		t.Fatal(err)
	}
	containsLog(t, h.logs, "Delegation watch stream ended; reconnecting", "since_revision=0", "server going away")
}

// TestResumedBacklogIsNotFresh: after an outage longer than max_staleness,
// a resumed watch replays the backlog. Until the progress that ends it, the
// replica must stay stale even though changes arrive: a revocation may still
// be further down the backlog. Once the progress arrives, the revocation is
// in force.
func TestResumedBacklogIsNotFresh(t *testing.T) {
	srv := startFakeServer(t, "", pbDelegation(rootID, ""), pbDelegation(childID, rootID))
	h := newHarness(t, srv, "")
	h.waitRevision(t, 2)

	srv.mu.Lock()
	srv.holdResumeProgress = true
	srv.mu.Unlock()
	srv.breakStreams()
	checkStatus(t, h.nextEnd(t), codes.Unavailable, "server going away")
	h.clock.Add(time.Minute) // the outage outlasts max_staleness (30s)
	srv.create(pbDelegation(otherID, ""))
	h.waitRevision(t, srv.revoke(childID))
	h.waitWatches(t, 0, 2)

	stale := "composer: delegation replica is stale: last heard from agentid-server 1m0s ago, bound 30s"
	checkStatus(t, h.compose(t, orchestrator, otherID), codes.Unavailable, stale)
	checkStatus(t, h.compose(t, analyst, childID), codes.Unavailable, stale)

	srv.heartbeat() // the progress that ends the backlog
	now := h.clock.Now()
	h.waitReplica(t, "progress", func(r *replica) bool {
		r.mu.RLock()
		defer r.mu.RUnlock()
		return r.lastHeard.Equal(now)
	})
	checkStatus(t, h.compose(t, analyst, childID), codes.PermissionDenied, "composer: delegation is revoked: "+childID)
	if err := h.compose(t, orchestrator, otherID); err != nil {
		t.Fatal(err)
	}
}

// TestWatchResyncsOnUnsafeChanges: a change the replica cannot apply
// without possibly keeping authority it should lose is a protocol error,
// answered by a fresh snapshot: a change whose id does not parse (it may
// have been a revocation), and a "created" change for an id the replica
// holds as revoked.
func TestWatchResyncsOnUnsafeChanges(t *testing.T) {
	changeOf := func(revision uint64, typ delegationv1.ChangeType, d *delegationv1.Delegation) *delegationv1.WatchDelegationsResponse {
		return &delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_Change{Change: &delegationv1.DelegationChange{
			Revision: revision, Type: typ, Delegation: d,
		}}}
	}
	t.Run("id does not parse", func(t *testing.T) {
		srv := startFakeServer(t, "", pbDelegation(rootID, ""), pbDelegation(childID, rootID))
		h := newHarness(t, srv, "")
		h.waitRevision(t, 2)
		srv.inject(changeOf(3, delegationv1.ChangeType_CHANGE_TYPE_REVOKED, &delegationv1.Delegation{Id: "nope"}))
		wantErr := "delegationwatch: stream broke protocol: change at revision 3 names no valid delegation id"
		if err := h.nextEnd(t); err == nil || err.Error() != wantErr {
			t.Fatalf("stream ended with %v\nwant %s", err, wantErr)
		}
		h.waitWatches(t, 0, 0)
		h.waitRevision(t, 2)
		if err := h.compose(t, analyst, childID); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("created change for a revoked id", func(t *testing.T) {
		srv := startFakeServer(t, "", pbDelegation(rootID, ""), pbDelegation(childID, rootID))
		h := newHarness(t, srv, "")
		h.waitRevision(t, 2)
		h.waitRevision(t, srv.revoke(childID))
		srv.inject(changeOf(4, delegationv1.ChangeType_CHANGE_TYPE_CREATED, pbDelegation(childID, rootID)))
		wantErr := "delegationwatch: stream broke protocol: change at revision 4 reactivates revoked delegation " + childID
		if err := h.nextEnd(t); err == nil || err.Error() != wantErr {
			t.Fatalf("stream ended with %v\nwant %s\n%s", err, wantErr, h.logs.String())
		}
		h.waitWatches(t, 0, 0)
		h.waitRevision(t, 3)
		// The fresh snapshot holds live delegations only: the revoked one
		// is unknown now, and never active.
		checkStatus(t, h.compose(t, analyst, childID), codes.PermissionDenied, "composer: unknown delegation: "+childID)
	})
}

// TestWatchOutOfRangeResyncs restores the server's store from a "backup"
// (the plugin's revision is no longer in its log): the resumed watch gets
// OUT_OF_RANGE, the plugin discards its replica and takes a fresh snapshot.
func TestWatchOutOfRangeResyncs(t *testing.T) {
	srv := startFakeServer(t, "", pbDelegation(rootID, ""), pbDelegation(childID, rootID))
	h := newHarness(t, srv, "")
	h.waitRevision(t, 2)

	other := pbDelegation(otherID, "")
	other.Revision = 7
	srv.restore(7, other)
	srv.breakStreams()
	checkStatus(t, h.nextEnd(t), codes.Unavailable, "server going away")
	checkStatus(t, h.nextEnd(t), codes.OutOfRange, "revision not in the retained log")
	h.waitRevision(t, 7)
	h.waitWatches(t, 0, 2, 0)

	checkStatus(t, h.compose(t, analyst, childID), codes.PermissionDenied, "composer: unknown delegation: "+childID)
	if err := h.compose(t, orchestrator, otherID); err != nil {
		t.Fatal(err)
	}
	if n := h.rt(t).replica.size(); n != 1 {
		t.Fatalf("replica holds %d delegations after resync, want 1", n)
	}
	containsLog(t, h.logs, "Discarding the delegation replica to resync from a fresh snapshot", "OutOfRange")
}

// TestWatchProtocolViolations injects messages that break the stream's
// contract: each discards the replica and resyncs from a fresh snapshot.
func TestWatchProtocolViolations(t *testing.T) {
	change := func(revision uint64, typ delegationv1.ChangeType) *delegationv1.WatchDelegationsResponse {
		return &delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_Change{Change: &delegationv1.DelegationChange{
			Revision: revision, Type: typ, Delegation: pbDelegation(otherID, ""),
		}}}
	}
	cases := []struct {
		name    string
		msg     *delegationv1.WatchDelegationsResponse
		wantErr string
	}{
		{"revision not increasing", change(2, delegationv1.ChangeType_CHANGE_TYPE_CREATED),
			"delegationwatch: stream broke protocol: change revision 2 after revision 2"},
		{"unspecified change type", change(3, delegationv1.ChangeType_CHANGE_TYPE_UNSPECIFIED),
			"delegationwatch: stream broke protocol: change type CHANGE_TYPE_UNSPECIFIED at revision 3"},
		{"snapshot after snapshot_end", &delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_Snapshot{
			Snapshot: &delegationv1.SnapshotChunk{}}},
			"delegationwatch: stream broke protocol: snapshot outside a fresh watch's snapshot"},
		{"second snapshot_end", &delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_SnapshotEnd{
			SnapshotEnd: &delegationv1.SnapshotEnd{Revision: 9}}},
			"delegationwatch: stream broke protocol: snapshot_end outside a fresh watch"},
		{"empty message", &delegationv1.WatchDelegationsResponse{},
			"delegationwatch: stream broke protocol: message of unknown kind"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFakeServer(t, "", pbDelegation(rootID, ""), pbDelegation(childID, rootID))
			h := newHarness(t, srv, "")
			h.waitRevision(t, 2)
			srv.inject(tc.msg)
			if err := h.nextEnd(t); err == nil || err.Error() != tc.wantErr {
				t.Fatalf("stream ended with %v\nwant %s", err, tc.wantErr)
			}
			h.waitWatches(t, 0, 0)
			h.waitRevision(t, 2)
			if err := h.compose(t, analyst, childID); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestWatchMalformedDelegations checks the decision for malformed input:
// a malformed delegation is logged and never kept (its tokens fail), the
// rest of the replica keeps serving, and a malformed "revoked" change
// removes what it names. (A change whose id does not parse is a protocol
// error: TestWatchResyncsOnUnsafeChanges.)
func TestWatchMalformedDelegations(t *testing.T) {
	badScopes := pbDelegation(otherID, "")
	badScopes.Scopes = []string{"crm write"}
	srv := startFakeServer(t, "", pbDelegation(rootID, ""), pbDelegation(childID, rootID), badScopes)
	h := newHarness(t, srv, "")
	h.waitRevision(t, 3)
	checkStatus(t, h.compose(t, orchestrator, otherID), codes.PermissionDenied, "composer: unknown delegation: "+otherID)
	containsLog(t, h.logs, "[WARN]", "Dropping malformed delegation", "delegation_id="+otherID, "whitespace at byte 3")

	changeOf := func(revision uint64, typ delegationv1.ChangeType, d *delegationv1.Delegation) *delegationv1.WatchDelegationsResponse {
		return &delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_Change{Change: &delegationv1.DelegationChange{
			Revision: revision, Type: typ, Delegation: d,
		}}}
	}
	// A created delegation whose chain does not end with its agent.
	badChain := pbDelegation(closeID, "")
	badChain.Chain = []string{analyst}
	srv.inject(changeOf(4, delegationv1.ChangeType_CHANGE_TYPE_CREATED, badChain))
	// A revocation of the root without revoked_at: malformed, so the root
	// is dropped rather than left active.
	revokedRoot := pbDelegation(rootID, "")
	revokedRoot.State = delegationv1.State_STATE_REVOKED
	srv.inject(changeOf(5, delegationv1.ChangeType_CHANGE_TYPE_REVOKED, revokedRoot))
	// A "revoked" change carrying an active delegation.
	srv.inject(changeOf(6, delegationv1.ChangeType_CHANGE_TYPE_REVOKED, pbDelegation(childID, rootID)))
	h.waitRevision(t, 6)

	checkStatus(t, h.compose(t, orchestrator, closeID), codes.PermissionDenied, "composer: unknown delegation: "+closeID)
	checkStatus(t, h.compose(t, orchestrator, rootID), codes.PermissionDenied, "composer: unknown delegation: "+rootID)
	checkStatus(t, h.compose(t, analyst, childID), codes.PermissionDenied, "composer: unknown delegation: "+childID)
	containsLog(t, h.logs, "Dropping malformed delegation", "delegation_id="+closeID, "chain must end with the agent")
	containsLog(t, h.logs, "Dropping malformed delegation", "delegation_id="+rootID, "revoked_at: delegation: invalid delegation: is required")
	containsLog(t, h.logs, "Dropping delegation: revoked change carries an unrevoked delegation", "delegation_id="+childID)
	if got := h.srv.watchLog(); len(got) != 1 {
		t.Fatalf("malformed delegations caused a resync: watches %v", got)
	}
}

// TestWatchIdleTimeout checks that a stream that delivers nothing, not even
// heartbeats, is abandoned and resumed.
func TestWatchIdleTimeout(t *testing.T) {
	srv := startFakeServer(t, "", pbDelegation(rootID, ""), pbDelegation(childID, rootID))
	h := newHarness(t, srv, "-")
	h.plugin.tuning.idleTimeout = 100 * time.Millisecond
	h.configure(t, "")
	if err := h.nextEnd(t); err == nil || err.Error() != "delegationwatch: stream silent for 100ms" {
		t.Fatalf("stream ended with %v", err)
	}
	// On a loaded machine a first stream may go silent before its snapshot
	// completes; then it starts over from 0. Once ready, it resumes from 2.
	waitFor(t, "a resumed watch", srv.changed, func() bool { return slices.Contains(srv.watchLog(), 2) })
	got := srv.watchLog()
	for _, since := range got[:slices.Index(got, 2)] {
		if since != 0 {
			t.Fatalf("since_revision of the watches = %v", got)
		}
	}
}

// TestStalenessFollowsHeartbeats checks that the staleness bound counts from
// the last message, and that a heartbeat makes a stale replica fresh.
func TestStalenessFollowsHeartbeats(t *testing.T) {
	srv := startFakeServer(t, "", pbDelegation(rootID, ""), pbDelegation(childID, rootID))
	h := newHarness(t, srv, `max_staleness = "20s"`)
	h.waitRevision(t, 2)

	h.clock.Add(20 * time.Second)
	if err := h.compose(t, analyst, childID); err != nil {
		t.Fatalf("at the bound: %v", err)
	}
	h.clock.Add(time.Millisecond)
	checkStatus(t, h.compose(t, analyst, childID), codes.Unavailable,
		"composer: delegation replica is stale: last heard from agentid-server 20.001s ago, bound 20s")

	srv.heartbeat()
	now := h.clock.Now()
	h.waitReplica(t, "heartbeat", func(r *replica) bool {
		r.mu.RLock()
		defer r.mu.RUnlock()
		return r.lastHeard.Equal(now)
	})
	if err := h.compose(t, analyst, childID); err != nil {
		t.Fatalf("after a heartbeat: %v", err)
	}
}

// TestReconfigure checks that Configure keeps the replica when only
// marker_prefix or max_staleness change, and starts over on a new socket.
func TestReconfigure(t *testing.T) {
	srv := startFakeServer(t, "", pbDelegation(rootID, ""), pbDelegation(childID, rootID))
	h := newHarness(t, srv, "")
	h.waitRevision(t, 2)
	first := h.rt(t)

	h.clock.Add(time.Minute)
	checkStatus(t, h.compose(t, analyst, childID), codes.Unavailable,
		"composer: delegation replica is stale: last heard from agentid-server 1m0s ago, bound 30s")
	h.configure(t, `max_staleness = "2m"`)
	if h.rt(t) != first {
		t.Fatal("a new max_staleness restarted the replica")
	}
	if err := h.compose(t, analyst, childID); err != nil {
		t.Fatal(err)
	}
	h.configure(t, "max_staleness = \"2m\"\nmarker_prefix = \"urn:example:dlg:\"")
	if h.rt(t) != first {
		t.Fatal("a new marker_prefix restarted the replica")
	}
	_, err := h.client.ComposeWorkloadJWTSVID(context.Background(), jwtRequest(t, analyst, crm, "urn:example:dlg:"+childID))
	if err != nil {
		t.Fatalf("with the new marker_prefix: %v", err)
	}

	other := startFakeServer(t, "", pbDelegation(otherID, ""))
	h.socket = other.path
	h.srv = other
	h.configure(t, "")
	if h.rt(t) == first {
		t.Fatal("a new socket kept the old replica")
	}
	h.waitRevision(t, 1)
	if err := h.compose(t, orchestrator, otherID); err != nil {
		t.Fatal(err)
	}
	checkStatus(t, h.compose(t, analyst, childID), codes.PermissionDenied, "composer: unknown delegation: "+childID)
	// Configure stopped the first backend before returning.
	select {
	case <-first.audit.done:
	default:
		t.Fatal("the first backend's audit sender still runs")
	}
	if err := first.conn.Close(); err == nil {
		t.Fatal("the first backend's connection was still open")
	}
}

func TestSweep(t *testing.T) {
	r := newReplica()
	mk := func(id string, expires time.Duration) *delegationv1.Delegation {
		d := pbDelegation(id, "")
		d.CreatedAt, d.ExpiresAt = timestamppb.New(t0.Add(-3*time.Hour)), timestamppb.New(t0.Add(expires))
		return d
	}
	var snapshot = convertAll(t, mk(rootID, time.Hour), mk(otherID, -time.Hour), mk(expiredID, -5*time.Minute))
	r.install(snapshot, 3, t0)
	if n := r.sweep(t0, 10*time.Minute); n != 1 {
		t.Fatalf("sweep removed %d, want 1", n)
	}
	if _, err := r.lookup(mustID(expiredID), snapshot[2].Agent, t0, time.Minute); err == nil || err.Error() != "composer: delegation is expired: "+expiredID {
		t.Fatalf("within the grace: %v", err)
	}
	if _, err := r.lookup(mustID(otherID), snapshot[1].Agent, t0, time.Minute); err == nil || err.Error() != "composer: unknown delegation: "+otherID {
		t.Fatalf("after the grace: %v", err)
	}
	if n := r.sweep(t0.Add(2*time.Hour), 0); n != 2 || r.size() != 0 {
		t.Fatalf("second sweep removed %d, left %d", n, r.size())
	}
}

func convertAll(t testing.TB, pbs ...*delegationv1.Delegation) []*domain.Delegation {
	t.Helper()
	out := make([]*domain.Delegation, len(pbs))
	for i, pb := range pbs {
		d, err := fromProto(pb)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = d
	}
	return out
}

// TestUnknownWaitsForTheStream: a delegation created a moment before the
// agent fetches its token may still be on its way down the watch stream; the
// lookup waits for it (bounded), and an id that never comes is refused when
// the bound passes.
func TestUnknownWaitsForTheStream(t *testing.T) {
	srv := startFakeServer(t, "", pbDelegation(rootID, ""))
	h := newHarness(t, srv, "")
	waiting := make(chan struct{}, 100)
	h.plugin.hooks.lookupWaiting = func() { waiting <- struct{}{} }
	h.plugin.tuning.unknownWait = 5 * time.Second
	h.waitRevision(t, 1)

	done := make(chan error, 1)
	go func() { done <- h.compose(t, orchestrator, otherID) }()
	select { // create only once the lookup waits
	case <-waiting:
	case <-time.After(waitLimit):
		t.Fatal("lookup of an unknown id did not wait")
	}
	srv.create(pbDelegation(otherID, ""))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("lookup did not find the delegation that arrived while it waited: %v", err)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("lookup did not return after the delegation arrived")
	}

	h.plugin.tuning.unknownWait = 100 * time.Millisecond
	start := time.Now()
	checkStatus(t, h.compose(t, orchestrator, "dlg_00000000000000000000000000"), codes.PermissionDenied,
		"composer: unknown delegation: dlg_00000000000000000000000000")
	if waited := time.Since(start); waited < 100*time.Millisecond || waited > 2*time.Second {
		t.Fatalf("unknown id waited %s, want about the 100ms bound", waited)
	}
}

// TestUnknownWaitersAreBounded fills the waiting slots: a further lookup of
// an unknown id must be refused at once, without waiting.
func TestUnknownWaitersAreBounded(t *testing.T) {
	srv := startFakeServer(t, "", pbDelegation(rootID, ""))
	h := newHarness(t, srv, "")
	h.plugin.hooks.lookupWaiting = func() { t.Error("a lookup waited beyond the bound") }
	h.plugin.tuning.unknownWait = time.Hour
	h.waitRevision(t, 1)

	h.plugin.unknownWaiters.Store(maxUnknownWaiters)
	checkStatus(t, h.compose(t, orchestrator, otherID), codes.PermissionDenied, "composer: unknown delegation: "+otherID)
	if n := h.plugin.unknownWaiters.Load(); n != maxUnknownWaiters {
		t.Errorf("waiters = %d after a refused lookup, want %d", n, maxUnknownWaiters)
	}
}
