package composer

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// holdAudit makes the fake's RecordTokenIssuance wait until the returned
// function is called.
func holdAudit(t testing.TB, srv *fakeServer) (release func()) {
	t.Helper()
	gate := make(chan struct{})
	srv.mu.Lock()
	srv.auditGate = gate
	srv.mu.Unlock()
	done := false
	release = func() {
		if !done {
			done = true
			close(gate)
		}
	}
	t.Cleanup(release)
	return release
}

func (s *fakeServer) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auditCalls
}

func recordIDs(srv *fakeServer) []string {
	var ids []string
	for _, r := range srv.recorded() {
		ids = append(ids, r.GetDelegationId())
	}
	return ids
}

// TestAuditBatchesAndRetries holds the first call while three more tokens
// are issued, fails it once, and checks that every record arrives once, in
// order, the queued ones in one batch.
func TestAuditBatchesAndRetries(t *testing.T) {
	srv := startFakeServer(t, "", fixtures()...)
	h := newHarness(t, srv, "")
	h.waitReady(t)
	release := holdAudit(t, srv)
	srv.auditErrs = []error{status.Error(codes.Unavailable, "store busy")}

	if err := h.compose(t, orchestrator, rootID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first call", srv.changed, func() bool { return srv.calls() == 1 })
	for range 3 {
		if err := h.compose(t, analyst, childID); err != nil {
			t.Fatal(err)
		}
	}
	release()
	waitFor(t, "four records", srv.changed, func() bool { return len(srv.recorded()) == 4 })
	if got := recordIDs(srv); got[0] != rootID || got[1] != childID || got[3] != childID {
		t.Fatalf("records %v", got)
	}
	if n := srv.calls(); n != 3 {
		t.Fatalf("%d calls, want 3 (failed, retried, one batch of three)", n)
	}
	containsLog(t, h.logs, "Failed to report token issuances; retrying", "records=1", "attempt=1", "store busy")
}

// TestAuditInvalidRecordIsIsolated checks that a record agentid-server
// refuses is split out of its batch and logged, and the others recorded.
func TestAuditInvalidRecordIsIsolated(t *testing.T) {
	srv := startFakeServer(t, "", fixtures()...)
	h := newHarness(t, srv, "")
	h.waitReady(t)
	release := holdAudit(t, srv)
	srv.rejectID = rootID

	if err := h.compose(t, analyst, childID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first call", srv.changed, func() bool { return srv.calls() == 1 })
	for _, c := range [][2]string{{analyst, childID}, {orchestrator, rootID}, {analyst, childID}} {
		if err := h.compose(t, c[0], c[1]); err != nil {
			t.Fatal(err)
		}
	}
	release()
	waitFor(t, "three records", srv.changed, func() bool { return len(srv.recorded()) == 3 })
	// Calls: the first record; the batch of three (refused); its halves
	// [child] and [root, child] (refused); then [root] (refused) and [child].
	waitFor(t, "six calls", srv.changed, func() bool { return srv.calls() == 6 })
	for _, id := range recordIDs(srv) {
		if id != childID {
			t.Fatalf("records %v", recordIDs(srv))
		}
	}
	containsLog(t, h.logs, "[ERROR]", "agentid-server refused a token issuance record; it is recorded only here",
		"delegation_id="+rootID, "agent_id="+orchestrator, "malformed record")
}

// TestAuditFlushOnClose checks that Close sends what is queued, and that a
// closed plugin issues nothing.
func TestAuditFlushOnClose(t *testing.T) {
	srv := startFakeServer(t, "", fixtures()...)
	h := newHarness(t, srv, "")
	h.waitReady(t)
	for range 5 {
		if err := h.compose(t, analyst, childID); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.plugin.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.recorded()); n != 5 {
		t.Fatalf("%d records after Close, want 5", n)
	}
	checkStatus(t, h.compose(t, analyst, childID), codes.FailedPrecondition, "composer: not configured")
}

// TestAuditLostOnClose checks that records that cannot be sent within the
// flush timeout are counted in the log.
func TestAuditLostOnClose(t *testing.T) {
	srv := startFakeServer(t, "", fixtures()...)
	h := newHarness(t, srv, "-")
	h.plugin.tuning.flushTimeout = 100 * time.Millisecond
	h.configure(t, "")
	h.waitReady(t)
	holdAudit(t, srv)
	for range 2 {
		if err := h.compose(t, analyst, childID); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.plugin.Close(); err != nil {
		t.Fatal(err)
	}
	containsLog(t, h.logs, "[ERROR]", "Token issuances were not reported to agentid-server", "records=2")
}

// TestAuditStoppedRefuses checks enqueue after stop.
func TestAuditStoppedRefuses(t *testing.T) {
	a := newAuditor(nil, 1, nil, fastTuning, nil)
	a.stop()
	if err := a.enqueue(nil); !errors.Is(err, errAuditStopped) {
		t.Fatalf("enqueue after stop: %v", err)
	}
	a.stop() // idempotent
}
