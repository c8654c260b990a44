package composer

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	domain "github.com/agentid/agentid/pkg/delegation"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/spire-plugin-sdk/pluginsdk"
	"github.com/spiffe/spire-plugin-sdk/plugintest"
	credentialcomposerv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/credentialcomposer/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// t0 is the fake clock's start: 2026-11-26T12:00:00Z, Unix 1795694400.
var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

const (
	t0Unix       = 1795694400
	orchestrator = "spiffe://example.org/agent/orchestrator"
	analyst      = "spiffe://example.org/agent/market-analysis"
	crm          = "spiffe://example.org/svc/crm"
	// Delegation ids of the fixtures.
	rootID    = "dlg_01jc0000000000000000000000"
	childID   = "dlg_01jd0000000000000000000000"
	otherID   = "dlg_01je0000000000000000000000"
	expiredID = "dlg_01jf0000000000000000000000"
	closeID   = "dlg_01jg0000000000000000000000"
	unknownID = "dlg_01jz0000000000000000000000"
	// waitLimit bounds every wait for the background work.
	waitLimit = 10 * time.Second
)

// fastTuning keeps the background work's waits short in tests.
var fastTuning = tuning{
	minBackoff:    time.Millisecond,
	maxBackoff:    20 * time.Millisecond,
	idleTimeout:   time.Minute,
	sweepInterval: time.Hour,
	sweepGrace:    10 * time.Minute,
	dialTimeout:   5 * time.Second,
	auditTimeout:  5 * time.Second,
	flushTimeout:  5 * time.Second,
	// Metrics tests flush by Close, or shorten this themselves.
	metricsInterval: time.Hour,
	metricsTimeout:  5 * time.Second,
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// pbDelegation returns a well-formed active delegation message: a root held
// by orchestrator when parent is "", else a child of parent held by
// analyst, expiring at t0+10h (+500 ms, to check that exp is truncated).
func pbDelegation(id, parent string) *delegationv1.Delegation {
	d := &delegationv1.Delegation{
		Id:        id,
		RootId:    id,
		AgentId:   orchestrator,
		Principal: &delegationv1.Principal{Issuer: "https://idp.example.com", Subject: "alice", Email: "alice@example.com"},
		Scopes:    []string{"campaigns:read", "compliance:check", "crm:write"},
		Chain:     []string{orchestrator},
		Depth:     1,
		MaxDepth:  2,
		Intent:    "check the spring campaign for GDPR issues",
		CreatedAt: timestamppb.New(t0.Add(-time.Hour)),
		ExpiresAt: timestamppb.New(t0.Add(11 * time.Hour)),
		State:     delegationv1.State_STATE_ACTIVE,
	}
	if parent != "" {
		d.ParentId, d.RootId = parent, parent
		d.AgentId = analyst
		d.Scopes = []string{"campaigns:read", "compliance:check"}
		d.Chain = []string{orchestrator, analyst}
		d.Depth = 2
		d.CreatedBy = orchestrator
		d.ExpiresAt = timestamppb.New(t0.Add(10*time.Hour + 500*time.Millisecond))
	}
	return d
}

// fakeServer stands in for agentid-server on a unix socket: a store of
// delegations with a change log, WatchDelegations as its proto comment
// specifies, and RecordTokenIssuance. Tests mutate it and inject faults.
type fakeServer struct {
	delegationv1.UnimplementedDelegationServiceServer
	auditv1.UnimplementedAuditServiceServer

	path string
	srv  *grpc.Server

	mu       sync.Mutex
	revision uint64
	live     map[string]*delegationv1.Delegation
	changes  []*delegationv1.DelegationChange
	// outOfRange makes every resumed watch fail with OUT_OF_RANGE.
	outOfRange bool
	// holdResumeProgress stops resumed watches from sending the progress
	// that ends their backlog; heartbeat sends it.
	holdResumeProgress bool
	// chunk is the snapshot chunk size.
	chunk int
	// heartbeats counts heartbeat requests; each stream sends one progress
	// per request it has not yet answered.
	heartbeats int
	// injected messages go to every open stream once.
	injected []*delegationv1.WatchDelegationsResponse
	// watches records the since_revision of every WatchDelegations call.
	watches []uint64
	breakCh chan struct{}
	wake    chan struct{}

	records    []*auditv1.TokenIssuance
	auditCalls int
	// auditGate, when set, holds every RecordTokenIssuance until closed.
	auditGate chan struct{}
	// auditErrs are answered, one per call, before succeeding.
	auditErrs []error
	// rejectID makes every batch holding a record of it InvalidArgument.
	rejectID string
}

// startFakeServer serves a fake agentid-server at path (a fresh socket in a
// temporary directory when path is ""), holding ds at revision len(ds).
func startFakeServer(t testing.TB, path string, ds ...*delegationv1.Delegation) *fakeServer {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "agentid.sock")
	}
	s := &fakeServer{
		path:    path,
		live:    map[string]*delegationv1.Delegation{},
		chunk:   2,
		breakCh: make(chan struct{}),
		wake:    make(chan struct{}),
	}
	for _, d := range ds {
		s.revision++
		d.Revision = s.revision
		s.live[d.Id] = d
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s.srv = grpc.NewServer()
	delegationv1.RegisterDelegationServiceServer(s.srv, s)
	auditv1.RegisterAuditServiceServer(s.srv, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.srv.Serve(l)
	}()
	t.Cleanup(func() {
		s.srv.Stop()
		<-done
	})
	return s
}

func (s *fakeServer) broadcastLocked() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// changed returns a channel closed at the server's next state change.
func (s *fakeServer) changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wake
}

// create stores d as a new delegation and streams the change.
func (s *fakeServer) create(d *delegationv1.Delegation) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revision++
	d.Revision = s.revision
	s.live[d.Id] = d
	s.changes = append(s.changes, &delegationv1.DelegationChange{
		Revision: s.revision, Type: delegationv1.ChangeType_CHANGE_TYPE_CREATED, Delegation: d,
	})
	s.broadcastLocked()
	return s.revision
}

// revoke revokes a live delegation and streams the change.
func (s *fakeServer) revoke(id string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := proto.Clone(s.live[id]).(*delegationv1.Delegation)
	delete(s.live, id)
	s.revision++
	d.State, d.RevokedAt, d.RevokeReason, d.Revision = delegationv1.State_STATE_REVOKED, timestamppb.New(t0), "test", s.revision
	s.changes = append(s.changes, &delegationv1.DelegationChange{
		Revision: s.revision, Type: delegationv1.ChangeType_CHANGE_TYPE_REVOKED, Delegation: d,
	})
	s.broadcastLocked()
	return s.revision
}

// restore replaces the store as a restore from backup would: no changes are
// streamed, and resumed watches get OUT_OF_RANGE.
func (s *fakeServer) restore(revision uint64, ds ...*delegationv1.Delegation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live = map[string]*delegationv1.Delegation{}
	for _, d := range ds {
		s.live[d.Id] = d
	}
	s.revision, s.changes, s.outOfRange = revision, nil, true
	s.broadcastLocked()
}

// heartbeat makes every open stream send one progress message.
func (s *fakeServer) heartbeat() {
	s.mu.Lock()
	s.heartbeats++
	s.broadcastLocked()
	s.mu.Unlock()
}

// inject makes every open stream send msg.
func (s *fakeServer) inject(msg *delegationv1.WatchDelegationsResponse) {
	s.mu.Lock()
	s.injected = append(s.injected, msg)
	s.broadcastLocked()
	s.mu.Unlock()
}

// breakStreams ends every open stream with UNAVAILABLE.
func (s *fakeServer) breakStreams() {
	s.mu.Lock()
	close(s.breakCh)
	s.breakCh = make(chan struct{})
	s.mu.Unlock()
}

func (s *fakeServer) watchLog() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.watches)
}

func (s *fakeServer) recorded() []*auditv1.TokenIssuance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.records)
}

func (s *fakeServer) WatchDelegations(req *delegationv1.WatchDelegationsRequest, stream delegationv1.DelegationService_WatchDelegationsServer) error {
	since := req.GetSinceRevision()
	s.mu.Lock()
	s.watches = append(s.watches, since)
	s.broadcastLocked()
	if since != 0 && (s.outOfRange || since > s.revision) {
		s.mu.Unlock()
		return status.Error(codes.OutOfRange, "revision not in the retained log")
	}
	var msgs []*delegationv1.WatchDelegationsResponse
	cursor := since
	if since == 0 {
		ids := make([]string, 0, len(s.live))
		for id := range s.live {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for len(ids) > 0 {
			n := min(len(ids), s.chunk)
			chunk := &delegationv1.SnapshotChunk{}
			for _, id := range ids[:n] {
				chunk.Delegations = append(chunk.Delegations, s.live[id])
			}
			msgs = append(msgs, &delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_Snapshot{Snapshot: chunk}})
			ids = ids[n:]
		}
		msgs = append(msgs, &delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_SnapshotEnd{
			SnapshotEnd: &delegationv1.SnapshotEnd{Revision: s.revision}}})
		cursor = s.revision
	}
	heartbeats, injected, brk := s.heartbeats, len(s.injected), s.breakCh
	resumed := since != 0 && !s.holdResumeProgress
	s.mu.Unlock()

	for {
		for _, m := range msgs {
			if err := stream.Send(m); err != nil {
				return err
			}
		}
		s.mu.Lock()
		msgs = nil
		for _, c := range s.changes {
			if c.Revision > cursor {
				msgs = append(msgs, &delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_Change{Change: c}})
				cursor = c.Revision
			}
		}
		if resumed || s.heartbeats > heartbeats {
			msgs = append(msgs, &delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_Progress{
				Progress: &delegationv1.WatchProgress{Revision: cursor, Time: timestamppb.New(t0)}}})
			resumed, heartbeats = false, s.heartbeats
		}
		msgs = append(msgs, s.injected[injected:]...)
		injected = len(s.injected)
		wake := s.wake
		s.mu.Unlock()
		if len(msgs) > 0 {
			continue
		}
		select {
		case <-wake:
		case <-brk:
			return status.Error(codes.Unavailable, "server going away")
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

func (s *fakeServer) RecordTokenIssuance(ctx context.Context, req *auditv1.RecordTokenIssuanceRequest) (*auditv1.RecordTokenIssuanceResponse, error) {
	s.mu.Lock()
	s.auditCalls++
	gate := s.auditGate
	var err error
	if len(s.auditErrs) > 0 {
		err, s.auditErrs = s.auditErrs[0], s.auditErrs[1:]
	}
	for _, r := range req.GetIssuances() {
		if s.rejectID != "" && r.GetDelegationId() == s.rejectID {
			err = status.Error(codes.InvalidArgument, "malformed record")
		}
	}
	s.broadcastLocked()
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.records = append(s.records, req.GetIssuances()...)
	s.broadcastLocked()
	s.mu.Unlock()
	return &auditv1.RecordTokenIssuanceResponse{RecordedCount: uint32(len(req.GetIssuances()))}, nil
}

// waitFor waits until cond holds, re-checking whenever changed fires. It
// never sleeps: the background work signals every step it takes.
func waitFor(t testing.TB, what string, changed func() <-chan struct{}, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		ch := changed()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// harness is a plugin served over real gRPC by plugintest, with a fake
// clock and, unless noServer, a fake agentid-server.
type harness struct {
	plugin *Plugin
	client *credentialcomposerv1.CredentialComposerPluginClient
	config *configv1.ConfigServiceClient
	clock  *fakeClock
	srv    *fakeServer
	socket string
	logs   *syncBuffer
	// ended receives the error of every watch stream that ends.
	ended chan error
}

// newHarness serves a new plugin. srv may be nil (nothing listens on the
// socket). The plugin is configured with hcl (agentid_socket_path is
// prepended) unless hcl is "-".
func newHarness(t *testing.T, srv *fakeServer, hcl string) *harness {
	t.Helper()
	return newHarnessWith(t, srv, hcl, nil)
}

// newHarnessWith is newHarness offering the plugin the host services
// hostServices; prepare, when set, runs before the plugin is served (to
// change its tuning).
func newHarnessWith(t *testing.T, srv *fakeServer, hcl string, prepare func(p *Plugin), hostServices ...pluginsdk.ServiceServer) *harness {
	t.Helper()
	h := &harness{clock: newFakeClock(), srv: srv, logs: new(syncBuffer), ended: make(chan error, 1000)}
	h.socket = filepath.Join(t.TempDir(), "agentid.sock")
	if srv != nil {
		h.socket = srv.path
	}
	h.plugin = New(Options{Clock: h.clock.Now})
	h.plugin.tuning = fastTuning
	h.plugin.hooks.watchEnded = func(err error) {
		select {
		case h.ended <- err:
		default:
		}
	}
	if prepare != nil {
		prepare(h.plugin)
	}
	h.client = new(credentialcomposerv1.CredentialComposerPluginClient)
	h.config = new(configv1.ConfigServiceClient)
	plugintest.ServeInBackground(t, plugintest.Config{
		PluginServer:       credentialcomposerv1.CredentialComposerPluginServer(h.plugin),
		PluginClient:       h.client,
		ServiceServers:     []pluginsdk.ServiceServer{configv1.ConfigServiceServer(h.plugin)},
		ServiceClients:     []pluginsdk.ServiceClient{h.config},
		HostServiceServers: hostServices,
		Logger:             hclog.New(&hclog.LoggerOptions{Output: h.logs, Level: hclog.Debug}),
	})
	if hcl != "-" {
		h.configure(t, hcl)
	}
	return h
}

// nextEnd returns the error of the next watch stream to end.
func (h *harness) nextEnd(t testing.TB) error {
	t.Helper()
	select {
	case err := <-h.ended:
		return err
	case <-time.After(waitLimit):
		t.Fatal("timed out waiting for a watch stream to end")
		return nil
	}
}

func (h *harness) configure(t testing.TB, hcl string) {
	t.Helper()
	_, err := h.config.Configure(context.Background(), &configv1.ConfigureRequest{
		HclConfiguration: fmt.Sprintf("agentid_socket_path = %q\n%s", h.socket, hcl),
	})
	if err != nil {
		t.Fatal(err)
	}
}

// rt returns the plugin's current backend.
func (h *harness) rt(t testing.TB) *backend {
	t.Helper()
	st := h.plugin.state.Load()
	if st == nil {
		t.Fatal("plugin not configured")
	}
	return st.rt
}

// waitReplica waits until cond holds for the replica.
func (h *harness) waitReplica(t testing.TB, what string, cond func(r *replica) bool) {
	t.Helper()
	r := h.rt(t).replica
	waitFor(t, what, r.changes, func() bool { return cond(r) })
}

func (h *harness) waitReady(t testing.TB) {
	t.Helper()
	h.waitReplica(t, "replica ready", func(r *replica) bool { _, ok := r.resumePoint(); return ok })
}

// waitRevision waits until the replica has applied revision.
func (h *harness) waitRevision(t testing.TB, revision uint64) {
	t.Helper()
	h.waitReplica(t, fmt.Sprintf("revision %d", revision), func(r *replica) bool {
		rev, ok := r.resumePoint()
		return ok && rev >= revision
	})
}

// jwtRequest is what SPIRE sends for a JWT-SVID of sub with aud, exp t0+5m.
func jwtRequest(t testing.TB, sub string, aud ...string) *credentialcomposerv1.ComposeWorkloadJWTSVIDRequest {
	t.Helper()
	auds := make([]any, len(aud))
	for i, a := range aud {
		auds[i] = a
	}
	claims, err := structpb.NewStruct(map[string]any{
		"sub": sub, "aud": auds, "exp": float64(t0Unix + 300), "iat": float64(t0Unix),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &credentialcomposerv1.ComposeWorkloadJWTSVIDRequest{
		SpiffeId:   sub,
		Attributes: &credentialcomposerv1.JWTSVIDAttributes{Claims: claims},
	}
}

func marker(id string) string { return DefaultMarkerPrefix + id }

// checkStatus fails unless err has code and message exactly.
func checkStatus(t testing.TB, err error, code codes.Code, msg string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || st.Message() != msg {
		t.Fatalf("got %v %q\nwant %v %q", st.Code(), st.Message(), code, msg)
	}
}

// mustID parses a fixture id.
func mustID(s string) domain.ID { return domain.MustParseID(s) }

// containsLog fails unless the plugin's log holds all parts on one line.
func containsLog(t testing.TB, logs *syncBuffer, parts ...string) {
	t.Helper()
	for _, line := range strings.Split(logs.String(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return
		}
	}
	t.Fatalf("no log line with %q in:\n%s", parts, logs.String())
}
