package revocation_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/internal/testca"
	"github.com/agentid/agentid/pkg/verify/revocation"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// server is an in-test DelegationService whose WatchDelegations streams
// whatever the test queues, over mTLS, admitting only the verifier.
type server struct {
	delegationv1.UnimplementedDelegationServiceServer
	requests chan *delegationv1.WatchDelegationsRequest
	queue    chan any // *WatchDelegationsResponse to send, or error to end the stream with
	peers    chan spiffeid.ID
}

func (s *server) WatchDelegations(req *delegationv1.WatchDelegationsRequest, stream grpc.ServerStreamingServer[delegationv1.WatchDelegationsResponse]) error {
	var id spiffeid.ID
	if p, ok := peer.FromContext(stream.Context()); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			id, _ = verify.PeerID(&info.State)
		}
	}
	s.peers <- id
	s.requests <- req
	for {
		select {
		case item := <-s.queue:
			switch v := item.(type) {
			case error:
				return v
			case *delegationv1.WatchDelegationsResponse:
				if err := stream.Send(v); err != nil {
					return err
				}
			}
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

type fixture struct {
	srv      *server
	w        *revocation.Watcher
	now      time.Time
	mu       sync.Mutex
	verifier spiffeid.ID
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func newFixture(t *testing.T, mod func(*revocation.Config)) *fixture {
	t.Helper()
	ca := testca.New(t, "example.org")
	serverID, verifierID := ca.ID(t, "/agentid-server"), ca.ID(t, "/svc/crm")
	srv := &server{
		requests: make(chan *delegationv1.WatchDelegationsRequest, 16),
		queue:    make(chan any),
		peers:    make(chan spiffeid.ID, 16),
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(verify.ServerTLSConfig(ca.X509SVID(t, serverID), ca.X509Bundle,
		tlsconfig.AuthorizeID(verifierID)))))
	delegationv1.RegisterDelegationServiceServer(gs, srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)

	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(
		grpccredentials.MTLSClientCredentials(ca.X509SVID(t, verifierID), ca.X509Bundle, tlsconfig.AuthorizeID(serverID))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	f := &fixture{srv: srv, now: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), verifier: verifierID}
	cfg := revocation.Config{
		Client:     delegationv1.NewDelegationServiceClient(conn),
		Clock:      f.clock,
		MinBackoff: time.Millisecond,
		MaxBackoff: 5 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	if f.w, err = revocation.New(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	})
	return f
}

const timeout = 10 * time.Second

// expectWatch waits for the next WatchDelegations call and checks it.
func (f *fixture) expectWatch(t *testing.T, since uint64) {
	t.Helper()
	select {
	case peer := <-f.srv.peers:
		if peer != f.verifier {
			t.Fatalf("stream peer %v", peer)
		}
	case <-time.After(timeout):
		t.Fatal("no WatchDelegations call")
	}
	req := <-f.srv.requests
	if req.GetSinceRevision() != since || !req.GetRevokedOnly() {
		t.Fatalf("request %v, want since_revision %d, revoked_only", req, since)
	}
}

func (f *fixture) send(t *testing.T, item any) {
	t.Helper()
	select {
	case f.srv.queue <- item:
	case <-time.After(timeout):
		t.Fatal("stream not receiving")
	}
}

func (f *fixture) waitRevision(t *testing.T, rev uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := f.w.WaitForRevision(ctx, rev); err != nil {
		t.Fatalf("revision %d: %v (at %d)", rev, err, f.w.Revision())
	}
}

func revoked(id delegation.ID, exp time.Time) *delegationv1.Delegation {
	return &delegationv1.Delegation{Id: id.String(), State: delegationv1.State_STATE_REVOKED, ExpiresAt: timestamppb.New(exp)}
}

func snapshot(ds ...*delegationv1.Delegation) *delegationv1.WatchDelegationsResponse {
	return &delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_Snapshot{
		Snapshot: &delegationv1.SnapshotChunk{Delegations: ds}}}
}

func snapshotEnd(rev uint64) *delegationv1.WatchDelegationsResponse {
	return &delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_SnapshotEnd{
		SnapshotEnd: &delegationv1.SnapshotEnd{Revision: rev}}}
}

func change(rev uint64, typ delegationv1.ChangeType, d *delegationv1.Delegation) *delegationv1.WatchDelegationsResponse {
	return &delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_Change{
		Change: &delegationv1.DelegationChange{Revision: rev, Type: typ, Delegation: d}}}
}

func progress(rev uint64) *delegationv1.WatchDelegationsResponse {
	return &delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_Progress{
		Progress: &delegationv1.WatchProgress{Revision: rev}}}
}

var (
	idA = delegation.MustParseID("dlg_01ja0000000000000000000000")
	idB = delegation.MustParseID("dlg_01jb0000000000000000000000")
	idC = delegation.MustParseID("dlg_01jc0000000000000000000000")
)

func isRevoked(t *testing.T, w *revocation.Watcher, id delegation.ID) bool {
	t.Helper()
	r, err := w.Revoked(id)
	if err != nil {
		t.Fatalf("Revoked(%s): %v", id, err)
	}
	return r
}

func TestSnapshotThenChanges(t *testing.T) {
	f := newFixture(t, nil)
	if _, err := f.w.Revoked(idA); !errors.Is(err, revocation.ErrNotReady) || err.Error() != "revocation: no snapshot received yet" {
		t.Fatalf("before snapshot: %v", err)
	}
	f.expectWatch(t, 0)
	f.send(t, snapshot(revoked(idA, f.now.Add(time.Hour))))
	// Not applied before snapshot_end.
	if _, err := f.w.Revoked(idA); !errors.Is(err, revocation.ErrNotReady) {
		t.Fatalf("mid-snapshot: %v", err)
	}
	f.send(t, snapshotEnd(10))
	f.waitRevision(t, 10)
	if !isRevoked(t, f.w, idA) || isRevoked(t, f.w, idB) {
		t.Fatal("snapshot not applied")
	}
	f.send(t, change(11, delegationv1.ChangeType_CHANGE_TYPE_CREATED, &delegationv1.Delegation{Id: idB.String(), State: delegationv1.State_STATE_ACTIVE}))
	f.send(t, change(12, delegationv1.ChangeType_CHANGE_TYPE_REVOKED, revoked(idC, f.now.Add(time.Hour))))
	f.waitRevision(t, 12)
	if isRevoked(t, f.w, idB) || !isRevoked(t, f.w, idC) {
		t.Fatal("changes not applied")
	}
}

func TestResumesFromLastRevision(t *testing.T) {
	f := newFixture(t, nil)
	f.expectWatch(t, 0)
	f.send(t, snapshotEnd(10))
	f.send(t, change(11, delegationv1.ChangeType_CHANGE_TYPE_REVOKED, revoked(idA, f.now.Add(time.Hour))))
	f.send(t, progress(15))
	f.waitRevision(t, 15)
	f.send(t, status.Error(codes.Unavailable, "server shutting down"))
	f.expectWatch(t, 15)
	f.send(t, change(16, delegationv1.ChangeType_CHANGE_TYPE_REVOKED, revoked(idB, f.now.Add(time.Hour))))
	f.waitRevision(t, 16)
	if !isRevoked(t, f.w, idA) || !isRevoked(t, f.w, idB) {
		t.Fatal("lost revocations across the reconnection")
	}
}

func TestOutOfRangeResnapshots(t *testing.T) {
	f := newFixture(t, nil)
	f.expectWatch(t, 0)
	f.send(t, snapshot(revoked(idA, f.now.Add(time.Hour))))
	f.send(t, snapshotEnd(10))
	f.waitRevision(t, 10)
	f.send(t, status.Error(codes.Unavailable, "bye"))
	f.expectWatch(t, 10)
	f.send(t, status.Error(codes.OutOfRange, "revision 10 compacted"))
	f.expectWatch(t, 0)
	// What was known stays known while the new snapshot arrives.
	if !isRevoked(t, f.w, idA) {
		t.Fatal("forgot a revocation during resync")
	}
	f.send(t, snapshot(revoked(idB, f.now.Add(time.Hour))))
	f.send(t, snapshotEnd(3)) // a restored store may be at a lower revision
	f.waitRevision(t, 3)
	if f.w.Revision() != 3 || !isRevoked(t, f.w, idA) || !isRevoked(t, f.w, idB) {
		t.Fatalf("after resync: revision %d", f.w.Revision())
	}
}

func TestUnspecifiedChangeResyncs(t *testing.T) {
	f := newFixture(t, nil)
	f.expectWatch(t, 0)
	f.send(t, snapshotEnd(10))
	f.waitRevision(t, 10)
	f.send(t, change(11, delegationv1.ChangeType_CHANGE_TYPE_UNSPECIFIED, revoked(idA, f.now.Add(time.Hour))))
	f.expectWatch(t, 0)
}

func TestFailsClosedWhenStale(t *testing.T) {
	f := newFixture(t, nil)
	f.expectWatch(t, 0)
	f.send(t, snapshot(revoked(idA, f.now.Add(time.Hour))))
	f.send(t, snapshotEnd(10))
	f.waitRevision(t, 10)
	f.advance(revocation.DefaultMaxStaleness)
	if !isRevoked(t, f.w, idA) {
		t.Fatal("at the bound")
	}
	f.advance(time.Second)
	_, err := f.w.Revoked(idB)
	if !errors.Is(err, revocation.ErrStale) || err.Error() != "revocation: watch stream stale: silent for 31s, bound 30s" {
		t.Fatalf("stale: %v", err)
	}
	// Through a Verifier: the token is refused as unknown, not accepted.
	env := testca.NewEnv(t)
	cfg := env.Config()
	cfg.Revocation = f.w
	v, err := verify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(env.Analyst, env.Good(t)); !errors.Is(err, verify.ErrRevocationUnknown) ||
		err.Error() != "verify: revocation status unknown: revocation: watch stream stale: silent for 31s, bound 30s" {
		t.Fatalf("verify: %v", err)
	}
	// A heartbeat makes it fresh again.
	f.send(t, progress(10))
	f.send(t, progress(11))
	f.waitRevision(t, 11)
	if isRevoked(t, f.w, idB) || !isRevoked(t, f.w, idA) {
		t.Fatal("after heartbeat")
	}
}

func TestFailOpen(t *testing.T) {
	f := newFixture(t, func(c *revocation.Config) { c.OnStale = revocation.FailOpen })
	if isRevoked(t, f.w, idA) {
		t.Fatal("revoked before snapshot")
	}
	f.expectWatch(t, 0)
	f.send(t, snapshot(revoked(idA, f.now.Add(time.Hour))))
	f.send(t, snapshotEnd(10))
	f.waitRevision(t, 10)
	f.advance(time.Hour - time.Minute)
	if !isRevoked(t, f.w, idA) || isRevoked(t, f.w, idB) {
		t.Fatal("fail-open answers from what it knows")
	}
}

// Revoked ids are forgotten once their delegation has expired, plus the
// retention.
func TestExpiredIdsArePruned(t *testing.T) {
	f := newFixture(t, nil)
	f.expectWatch(t, 0)
	f.send(t, snapshot(revoked(idA, f.now.Add(time.Minute)), revoked(idB, f.now.Add(time.Hour))))
	f.send(t, snapshotEnd(10))
	f.waitRevision(t, 10)
	f.advance(time.Minute + revocation.DefaultRetention)
	f.send(t, progress(11))
	f.waitRevision(t, 11)
	if !isRevoked(t, f.w, idA) {
		t.Fatal("pruned at the edge of retention")
	}
	f.advance(time.Minute)
	f.send(t, progress(12))
	f.waitRevision(t, 12)
	if isRevoked(t, f.w, idA) || !isRevoked(t, f.w, idB) {
		t.Fatal("expired id kept or live id dropped")
	}
}

func TestNewValidates(t *testing.T) {
	client := delegationv1.NewDelegationServiceClient(nil)
	tests := []struct {
		config revocation.Config
		want   string
	}{
		{revocation.Config{}, "revocation: client is required"},
		{revocation.Config{Client: client, MaxStaleness: -1}, "revocation: durations must not be negative"},
		{revocation.Config{Client: client, OnStale: 7}, "revocation: unknown stale policy 7"},
		{revocation.Config{Client: client, MinBackoff: time.Second, MaxBackoff: time.Millisecond}, "revocation: max backoff is less than min backoff"},
	}
	for _, tt := range tests {
		if _, err := revocation.New(tt.config); err == nil || err.Error() != tt.want {
			t.Errorf("err = %v, want %s", err, tt.want)
		}
	}
}

// A revoked delegation sent without expires_at is kept, not pruned as if it
// had expired in 1970.
func TestRevokedWithoutExpiryIsKept(t *testing.T) {
	f := newFixture(t, nil)
	f.expectWatch(t, 0)
	f.send(t, snapshot(&delegationv1.Delegation{Id: idA.String(), State: delegationv1.State_STATE_REVOKED}))
	f.send(t, snapshotEnd(10))
	f.waitRevision(t, 10)
	f.send(t, change(11, delegationv1.ChangeType_CHANGE_TYPE_REVOKED,
		&delegationv1.Delegation{Id: idB.String(), State: delegationv1.State_STATE_REVOKED, ExpiresAt: timestamppb.New(time.Unix(0, 0))}))
	f.waitRevision(t, 11)
	f.advance(24 * time.Hour)
	f.send(t, progress(12))
	f.waitRevision(t, 12)
	if !isRevoked(t, f.w, idA) || !isRevoked(t, f.w, idB) {
		t.Fatal("revoked id without expires_at was pruned")
	}
}

// The backlog of a resumed watch does not prove the watcher current: only
// the stream's first progress (everything up to now sent) does.
func TestResumedBacklogIsNotContact(t *testing.T) {
	f := newFixture(t, nil)
	f.expectWatch(t, 0)
	f.send(t, snapshotEnd(10))
	f.waitRevision(t, 10)
	f.send(t, status.Error(codes.Unavailable, "bye"))
	f.expectWatch(t, 10)
	f.advance(revocation.DefaultMaxStaleness + time.Second)
	f.send(t, change(11, delegationv1.ChangeType_CHANGE_TYPE_REVOKED, revoked(idA, f.now.Add(time.Hour))))
	f.waitRevision(t, 11)
	if _, err := f.w.Revoked(idA); !errors.Is(err, revocation.ErrStale) || err.Error() != "revocation: watch stream stale: silent for 31s, bound 30s" {
		t.Fatalf("after a backlog change: %v", err)
	}
	f.send(t, progress(12))
	f.waitRevision(t, 12)
	if !isRevoked(t, f.w, idA) {
		t.Fatal("backlog revocation lost")
	}
}

// A stream silent for MaxStaleness is abandoned and redialed, resuming.
func TestSilentStreamRedialed(t *testing.T) {
	f := newFixture(t, func(c *revocation.Config) { c.MaxStaleness = 200 * time.Millisecond })
	f.expectWatch(t, 0)
	f.send(t, snapshotEnd(10))
	f.waitRevision(t, 10)
	f.expectWatch(t, 10)
}
