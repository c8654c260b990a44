package delegation_test

import (
	"context"
	"github.com/agentid/agentid/pkg/server/servertest"
	"testing"
	"time"

	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type watchStream = grpc.ServerStreamingClient[delegationv1.WatchDelegationsResponse]

func watch(tb testing.TB, c clients, since uint64, revokedOnly bool) watchStream {
	tb.Helper()
	s, err := c.Delegations.WatchDelegations(ctxT(tb), &delegationv1.WatchDelegationsRequest{SinceRevision: since, RevokedOnly: revokedOnly})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func recv(tb testing.TB, s watchStream) *delegationv1.WatchDelegationsResponse {
	tb.Helper()
	m, err := s.Recv()
	if err != nil {
		tb.Fatalf("watch: %v", err)
	}
	return m
}

func wantChange(tb testing.TB, s watchStream, rev uint64, typ delegationv1.ChangeType, id string) {
	tb.Helper()
	ch := recv(tb, s).GetChange()
	if ch == nil || ch.Revision != rev || ch.Type != typ || ch.Delegation.Id != id || ch.Delegation.Revision != rev {
		tb.Fatalf("got change %v, want revision %d %s of %s", ch, rev, typ, id)
	}
}

func TestWatchDelegations(t *testing.T) {
	e := newEnv(t)
	front, orch, loc := e.As(t, frontend), e.As(t, orchestrator), e.Local(t)

	live := watch(t, loc, 0, false)
	if end := recv(t, live).GetSnapshotEnd(); end == nil || end.Revision != 0 {
		t.Fatalf("empty store: want snapshot_end 0, got %v", end)
	}
	root := create(t, front, e.AliceToken(t), orchestrator.String(), time.Hour, "campaigns:read")
	wantChange(t, live, 1, delegationv1.ChangeType_CHANGE_TYPE_CREATED, root.Id)
	child := sub(t, orch, root.Id, analyst.String(), time.Hour, "campaigns:read")
	wantChange(t, live, 2, delegationv1.ChangeType_CHANGE_TYPE_CREATED, child.Id)
	if _, err := loc.Delegations.RevokeDelegation(ctxT(t), &delegationv1.RevokeDelegationRequest{Id: root.Id, Reason: "done"}); err != nil {
		t.Fatal(err)
	}
	wantChange(t, live, 3, delegationv1.ChangeType_CHANGE_TYPE_REVOKED, root.Id)
	wantChange(t, live, 4, delegationv1.ChangeType_CHANGE_TYPE_REVOKED, child.Id)

	// Resuming after revision 2 replays 3 and 4, then says it caught up.
	resumed := watch(t, loc, 2, false)
	wantChange(t, resumed, 3, delegationv1.ChangeType_CHANGE_TYPE_REVOKED, root.Id)
	wantChange(t, resumed, 4, delegationv1.ChangeType_CHANGE_TYPE_REVOKED, child.Id)
	if p := recv(t, resumed).GetProgress(); p == nil || p.Revision != 4 {
		t.Fatalf("want progress 4, got %v", p)
	}

	// A fresh snapshot holds the live delegations only.
	other := create(t, front, e.AliceToken(t), orchestrator.String(), time.Hour, "campaigns:read")
	snap := watch(t, loc, 0, false)
	chunk := recv(t, snap).GetSnapshot()
	if chunk == nil || len(chunk.Delegations) != 1 || chunk.Delegations[0].Id != other.Id {
		t.Fatalf("snapshot: %v", chunk)
	}
	if end := recv(t, snap).GetSnapshotEnd(); end == nil || end.Revision != 5 {
		t.Fatalf("want snapshot_end 5, got %v", end)
	}

	// A verifier gets the deny list only: the revoked, not yet expired ones.
	deny := watch(t, e.As(t, verifierID), 0, true)
	chunk = recv(t, deny).GetSnapshot()
	if chunk == nil || len(chunk.Delegations) != 2 {
		t.Fatalf("revoked-only snapshot: %v", chunk)
	}
	for _, d := range chunk.Delegations {
		if d.State != delegationv1.State_STATE_REVOKED || d.Id == "" || d.ExpiresAt == nil || d.RevokedAt == nil {
			t.Fatalf("revoked-only snapshot entry %v", d)
		}
		// The deny list carries no personal data.
		if d.Principal != nil || d.Scopes != nil || d.Chain != nil || d.Intent != "" {
			t.Fatalf("revoked-only snapshot leaks grant details: %v", d)
		}
	}
	if end := recv(t, deny).GetSnapshotEnd(); end == nil || end.Revision != 5 {
		t.Fatalf("want snapshot_end 5, got %v", end)
	}
	if _, err := loc.Delegations.RevokeDelegation(ctxT(t), &delegationv1.RevokeDelegationRequest{Id: other.Id}); err != nil {
		t.Fatal(err)
	}
	wantChange(t, deny, 6, delegationv1.ChangeType_CHANGE_TYPE_REVOKED, other.Id)

	// A revision the server has not reached means another store: resync.
	future := watch(t, loc, 99, false)
	if _, err := future.Recv(); status.Code(err) != codes.OutOfRange ||
		status.Convert(err).Message() != "revision 99 is not in the server's log: watch again from 0" {
		t.Fatalf("future revision: %v", err)
	}
}

// TestWatchEndsOnClose checks that Close ends streams with UNAVAILABLE, so a
// graceful stop does not hang on them.
func TestWatchEndsOnClose(t *testing.T) {
	e := newEnv(t)
	s := watch(t, e.Local(t), 0, false)
	recv(t, s)
	e.Server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := s.Recv(); done <- err }()
	select {
	case err := <-done:
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("want UNAVAILABLE, got %v", err)
		}
	case <-ctx.Done():
		t.Fatal("stream did not end")
	}
}

// TestWatchHeartbeat: a quiet stream gets a progress message one heartbeat
// after the last thing sent, carrying the current revision.
func TestWatchHeartbeat(t *testing.T) {
	e := servertest.StartWith(t, servertest.Options{WatchHeartbeat: 100 * time.Millisecond})
	create(t, e.As(t, frontend), e.AliceToken(t), orchestrator.String(), time.Hour, "campaigns:read")
	s := watch(t, e.Local(t), 0, false)
	recv(t, s) // snapshot chunk
	if end := recv(t, s).GetSnapshotEnd(); end == nil || end.Revision != 1 {
		t.Fatalf("want snapshot_end 1, got %v", end)
	}
	start := time.Now()
	for i := range 2 {
		p := recv(t, s).GetProgress()
		if p == nil || p.Revision != 1 || p.Time == nil {
			t.Fatalf("heartbeat %d: want progress at revision 1, got %v", i, p)
		}
	}
	if took := time.Since(start); took < 150*time.Millisecond || took > 5*time.Second {
		t.Fatalf("two heartbeats took %s, want about 200ms", took)
	}
}
