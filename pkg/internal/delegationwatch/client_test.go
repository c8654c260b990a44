package delegationwatch_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/internal/delegationwatch"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

const timeout = 10 * time.Second

// server is a DelegationService on a real gRPC listener whose
// WatchDelegations streams what the test queues: a response to send, or an
// error to end the stream with.
type server struct {
	delegationv1.UnimplementedDelegationServiceServer
	requests chan *delegationv1.WatchDelegationsRequest
	queue    chan any
}

func (s *server) WatchDelegations(req *delegationv1.WatchDelegationsRequest, stream grpc.ServerStreamingServer[delegationv1.WatchDelegationsResponse]) error {
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

// replica records every call the Client makes, in order, as one line each.
type replica struct {
	mu     sync.Mutex
	resume uint64
	calls  []string
	notify chan string
	// refuse, when set, is Apply's error.
	refuse error
}

func (r *replica) record(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.calls = append(r.calls, line)
	r.mu.Unlock()
	r.notify <- line
}

func (r *replica) Resume() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resume
}

func (r *replica) Convert(d *delegationv1.Delegation) (string, bool) {
	return d.GetId(), d.GetId() != "drop"
}

func (r *replica) Install(snapshot []string, revision uint64, _ time.Time) {
	r.mu.Lock()
	r.resume = revision
	r.mu.Unlock()
	r.record("install %v at %d", snapshot, revision)
}

func (r *replica) Apply(c *delegationv1.DelegationChange, caughtUp bool, _ time.Time) error {
	r.mu.Lock()
	refuse := r.refuse
	if refuse == nil {
		r.resume = c.GetRevision()
	}
	r.mu.Unlock()
	r.record("apply %s %s at %d caught up %v", c.GetType(), c.GetDelegation().GetId(), c.GetRevision(), caughtUp)
	return refuse
}

func (r *replica) Progress(revision uint64, _ time.Time) {
	r.mu.Lock()
	r.resume = revision
	r.mu.Unlock()
	r.record("progress %d", revision)
}

func (r *replica) Reset() {
	r.mu.Lock()
	r.resume = 0
	r.mu.Unlock()
	r.record("reset")
}

type fixture struct {
	srv     *server
	replica *replica
	ends    chan delegationwatch.End
}

func newFixture(t *testing.T, resume uint64, mod func(*delegationwatch.Config[string])) *fixture {
	t.Helper()
	srv := &server{requests: make(chan *delegationv1.WatchDelegationsRequest, 16), queue: make(chan any)}
	gs := grpc.NewServer()
	delegationv1.RegisterDelegationServiceServer(gs, srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	f := &fixture{srv: srv, replica: &replica{resume: resume, notify: make(chan string, 64)}, ends: make(chan delegationwatch.End, 16)}
	cfg := delegationwatch.Config[string]{
		Client:      delegationv1.NewDelegationServiceClient(conn),
		Replica:     f.replica,
		RevokedOnly: true,
		MinBackoff:  time.Millisecond,
		MaxBackoff:  4 * time.Millisecond,
		Ended:       func(e delegationwatch.End) { f.ends <- e },
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := delegationwatch.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	return f
}

// expectWatch waits for the next WatchDelegations call and checks where it
// resumes from.
func (f *fixture) expectWatch(t *testing.T, since uint64) {
	t.Helper()
	select {
	case req := <-f.srv.requests:
		if req.GetSinceRevision() != since || !req.GetRevokedOnly() {
			t.Fatalf("request %v, want since_revision %d, revoked_only", req, since)
		}
	case <-time.After(timeout):
		t.Fatalf("no WatchDelegations call (want since %d)", since)
	}
}

func (f *fixture) send(t *testing.T, items ...any) {
	t.Helper()
	for _, item := range items {
		select {
		case f.srv.queue <- item:
		case <-time.After(timeout):
			t.Fatal("stream not receiving")
		}
	}
}

// expectCalls waits for the replica's next calls and checks them.
func (f *fixture) expectCalls(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-f.replica.notify:
			if got != w {
				t.Fatalf("replica call %q, want %q", got, w)
			}
		case <-time.After(timeout):
			t.Fatalf("no replica call, want %q", w)
		}
	}
}

func (f *fixture) expectEnd(t *testing.T, wantErr string, since uint64, resync bool) delegationwatch.End {
	t.Helper()
	select {
	case e := <-f.ends:
		if e.Err == nil || e.Err.Error() != wantErr || e.Since != since || e.Resync != resync {
			t.Fatalf("end %+v\nwant error %q, since %d, resync %v", e, wantErr, since, resync)
		}
		return e
	case <-time.After(timeout):
		t.Fatalf("stream did not end (want %q)", wantErr)
	}
	return delegationwatch.End{}
}

func snapshot(ids ...string) *delegationv1.WatchDelegationsResponse {
	var ds []*delegationv1.Delegation
	for _, id := range ids {
		ds = append(ds, &delegationv1.Delegation{Id: id})
	}
	return &delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_Snapshot{
		Snapshot: &delegationv1.SnapshotChunk{Delegations: ds}}}
}

func snapshotEnd(rev uint64) *delegationv1.WatchDelegationsResponse {
	return &delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_SnapshotEnd{
		SnapshotEnd: &delegationv1.SnapshotEnd{Revision: rev}}}
}

func change(rev uint64, typ delegationv1.ChangeType, id string) *delegationv1.WatchDelegationsResponse {
	return &delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_Change{
		Change: &delegationv1.DelegationChange{Revision: rev, Type: typ, Delegation: &delegationv1.Delegation{Id: id}}}}
}

func progress(rev uint64) *delegationv1.WatchDelegationsResponse {
	return &delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_Progress{
		Progress: &delegationv1.WatchProgress{Revision: rev}}}
}

const (
	created = delegationv1.ChangeType_CHANGE_TYPE_CREATED
	revoked = delegationv1.ChangeType_CHANGE_TYPE_REVOKED
)

// A fresh watch hands the replica its snapshot whole at snapshot_end
// (dropping what Convert refuses); changes after it are caught up.
func TestFreshWatch(t *testing.T) {
	f := newFixture(t, 0, nil)
	f.expectWatch(t, 0)
	f.send(t, snapshot("a", "drop"), progress(3), snapshot("b"), snapshotEnd(5), change(6, revoked, "a"), progress(9))
	f.expectCalls(t, "install [a b] at 5", "apply CHANGE_TYPE_REVOKED a at 6 caught up true", "progress 9")
}

// After a break the Client resumes from the replica's revision; the
// backlog of a resumed watch is not caught up until its first progress.
func TestResumeFromRevision(t *testing.T) {
	f := newFixture(t, 0, nil)
	f.expectWatch(t, 0)
	f.send(t, snapshotEnd(10), progress(12))
	f.expectCalls(t, "install [] at 10", "progress 12")
	f.send(t, status.Error(codes.Unavailable, "server shutting down"))
	e := f.expectEnd(t, "rpc error: code = Unavailable desc = server shutting down", 0, false)
	if e.Attempt != 1 {
		t.Fatalf("attempt %d after a stream that delivered, want 1", e.Attempt)
	}
	f.expectWatch(t, 12)
	f.send(t, change(13, created, "c"), progress(14), change(15, revoked, "c"))
	f.expectCalls(t,
		"apply CHANGE_TYPE_CREATED c at 13 caught up false",
		"progress 14",
		"apply CHANGE_TYPE_REVOKED c at 15 caught up true")
}

// A replica that starts with a revision resumes at once, no snapshot.
func TestResumeAtStart(t *testing.T) {
	f := newFixture(t, 40, nil)
	f.expectWatch(t, 40)
	f.send(t, progress(41))
	f.expectCalls(t, "progress 41")
}

// OUT_OF_RANGE on a resumed watch resets the replica, and the next watch
// is a fresh snapshot, at once: the backoff here would time the test out.
func TestOutOfRangeResyncs(t *testing.T) {
	f := newFixture(t, 10, func(c *delegationwatch.Config[string]) {
		c.MinBackoff, c.MaxBackoff = time.Hour, time.Hour
	})
	f.expectWatch(t, 10)
	f.send(t, status.Error(codes.OutOfRange, "revision 10 compacted"))
	e := f.expectEnd(t, "rpc error: code = OutOfRange desc = revision 10 compacted", 10, true)
	if e.Retry != 0 {
		t.Fatalf("retry in %v, want at once", e.Retry)
	}
	f.expectCalls(t, "reset")
	f.expectWatch(t, 0)
	f.send(t, snapshot("a"), snapshotEnd(3)) // a restored store may be behind
	f.expectCalls(t, "install [a] at 3")
}

// The one rule for change types: any but CREATED and REVOKED (UNSPECIFIED,
// or one a newer server added) resets the replica; it is never applied.
func TestUnknownChangeTypeResyncs(t *testing.T) {
	for _, typ := range []delegationv1.ChangeType{delegationv1.ChangeType_CHANGE_TYPE_UNSPECIFIED, delegationv1.ChangeType(99)} {
		t.Run(typ.String(), func(t *testing.T) {
			f := newFixture(t, 0, nil)
			f.expectWatch(t, 0)
			f.send(t, snapshotEnd(10), change(11, typ, "a"))
			f.expectCalls(t, "install [] at 10")
			want := fmt.Sprintf("delegationwatch: stream broke protocol: change type %s at revision 11", typ)
			e := f.expectEnd(t, want, 0, true)
			if !errors.Is(e.Err, delegationwatch.ErrProtocol) {
				t.Fatalf("%v is not ErrProtocol", e.Err)
			}
			f.expectCalls(t, "reset")
			f.expectWatch(t, 0)
		})
	}
}

// Messages out of the contract's order end the stream as ErrProtocol and
// reset the replica; nothing of them is applied.
func TestProtocolViolations(t *testing.T) {
	tests := []struct {
		name string
		msgs []any
		want string
	}{
		{"change before snapshot_end", []any{change(1, created, "a")}, "change before snapshot_end"},
		{"revision not increasing", []any{snapshotEnd(5), change(5, created, "a")}, "change revision 5 after revision 5"},
		{"revision below progress", []any{snapshotEnd(5), progress(8), change(7, created, "a")}, "change revision 7 after revision 8"},
		{"snapshot after snapshot_end", []any{snapshotEnd(5), snapshot("a")}, "snapshot outside a fresh watch's snapshot"},
		{"second snapshot_end", []any{snapshotEnd(5), snapshotEnd(6)}, "snapshot_end outside a fresh watch"},
		{"empty message", []any{&delegationv1.WatchDelegationsResponse{}}, "message of unknown kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 0, nil)
			f.expectWatch(t, 0)
			f.send(t, tt.msgs...)
			f.expectEnd(t, "delegationwatch: stream broke protocol: "+tt.want, 0, true)
			f.replica.mu.Lock()
			calls := strings.Join(f.replica.calls, "; ")
			f.replica.mu.Unlock()
			if strings.Contains(calls, "apply") {
				t.Fatalf("applied a change of a broken stream: %s", calls)
			}
		})
	}
}

// A change the replica refuses is a protocol violation too: reset, and the
// error says why.
func TestReplicaRefusal(t *testing.T) {
	f := newFixture(t, 0, nil)
	f.replica.refuse = errors.New("reactivates revoked delegation a")
	f.expectWatch(t, 0)
	f.send(t, snapshotEnd(5), change(6, created, "a"))
	f.expectCalls(t, "install [] at 5", "apply CHANGE_TYPE_CREATED a at 6 caught up true")
	f.expectEnd(t, "delegationwatch: stream broke protocol: reactivates revoked delegation a", 0, true)
	f.expectCalls(t, "reset")
}

// A stream that delivers nothing, not even a heartbeat, for the idle
// timeout is abandoned and redialed, resuming where it was.
func TestIdleStreamRedialed(t *testing.T) {
	f := newFixture(t, 0, func(c *delegationwatch.Config[string]) { c.IdleTimeout = 200 * time.Millisecond })
	f.expectWatch(t, 0)
	f.send(t, snapshotEnd(7))
	f.expectCalls(t, "install [] at 7")
	e := f.expectEnd(t, "delegationwatch: stream silent for 200ms", 0, false)
	if !errors.Is(e.Err, delegationwatch.ErrIdle) {
		t.Fatalf("%v is not ErrIdle", e.Err)
	}
	f.expectWatch(t, 7)
}

// Streams failing without delivering anything count up and back off,
// doubling to the bound.
func TestBackoff(t *testing.T) {
	f := newFixture(t, 3, func(c *delegationwatch.Config[string]) {
		c.MinBackoff, c.MaxBackoff = 10*time.Millisecond, 40*time.Millisecond
	})
	bounds := []time.Duration{10, 20, 40, 40}
	for i, b := range bounds {
		f.expectWatch(t, 3)
		f.send(t, status.Error(codes.Unavailable, "down"))
		e := f.expectEnd(t, "rpc error: code = Unavailable desc = down", 3, false)
		lo, hi := b*time.Millisecond*4/5, b*time.Millisecond*6/5
		if e.Attempt != i+1 || e.Retry < lo || e.Retry > hi {
			t.Fatalf("end %d: attempt %d, retry %v; want attempt %d, retry in [%v, %v]", i, e.Attempt, e.Retry, i+1, lo, hi)
		}
	}
}

func TestNewValidates(t *testing.T) {
	client := delegationv1.NewDelegationServiceClient(nil)
	r := &replica{}
	tests := []struct {
		config delegationwatch.Config[string]
		want   string
	}{
		{delegationwatch.Config[string]{Replica: r}, "delegationwatch: client is required"},
		{delegationwatch.Config[string]{Client: client}, "delegationwatch: replica is required"},
		{delegationwatch.Config[string]{Client: client, Replica: r, IdleTimeout: -1}, "delegationwatch: durations must not be negative"},
		{delegationwatch.Config[string]{Client: client, Replica: r, MinBackoff: time.Second, MaxBackoff: time.Millisecond},
			"delegationwatch: max backoff is less than min backoff"},
	}
	for _, tt := range tests {
		if _, err := delegationwatch.New(tt.config); err == nil || err.Error() != tt.want {
			t.Errorf("err = %v, want %s", err, tt.want)
		}
	}
}
