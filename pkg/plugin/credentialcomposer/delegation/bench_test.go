package composer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/claims"
	domain "github.com/agentid/agentid/pkg/delegation"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	credentialcomposerv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/credentialcomposer/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// population makes n live delegations shaped like a busy deployment: 20
// agents, 10,000 users of one issuer, a third roots and the rest children
// (chains of two), three of 30 scopes each, a 100-byte intent. Deterministic.
func population(tb testing.TB, n int) []*delegationv1.Delegation {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	agents := make([]string, 20)
	for i := range agents {
		agents[i] = fmt.Sprintf("spiffe://example.org/agent/agent-%02d", i)
	}
	scopes := make([]string, 30)
	for i := range scopes {
		scopes[i] = fmt.Sprintf("service-%02d:read", i)
	}
	intent := "summarise the open support tickets of my team and draft replies for the ones older than a week"
	out := make([]*delegationv1.Delegation, 0, n)
	var root *delegationv1.Delegation
	for i := range n {
		id, err := domain.NewIDFrom(rngReader{rng})
		if err != nil {
			tb.Fatal(err)
		}
		user := rng.IntN(10000)
		d := &delegationv1.Delegation{
			Id: id.String(), RootId: id.String(),
			Principal: &delegationv1.Principal{
				Issuer:  "https://idp.example.com",
				Subject: fmt.Sprintf("user-%05d", user),
				Email:   fmt.Sprintf("user-%05d@example.com", user),
			},
			Intent:    intent,
			MaxDepth:  3,
			CreatedAt: timestamppb.New(t0.Add(-time.Hour)),
			ExpiresAt: timestamppb.New(t0.Add(time.Duration(1+rng.IntN(24)) * time.Hour)),
			State:     delegationv1.State_STATE_ACTIVE,
			Revision:  uint64(i + 1),
		}
		s := rng.Perm(len(scopes))[:3]
		slices.Sort(s)
		for _, j := range s {
			d.Scopes = append(d.Scopes, scopes[j])
		}
		if i%3 == 0 || root == nil {
			d.AgentId = agents[rng.IntN(len(agents))]
			d.Chain, d.Depth = []string{d.AgentId}, 1
			root = d
		} else {
			d.ParentId, d.RootId, d.Principal = root.Id, root.Id, root.Principal
			d.AgentId = agents[rng.IntN(len(agents))]
			for d.AgentId == root.AgentId {
				d.AgentId = agents[rng.IntN(len(agents))]
			}
			d.Chain, d.Depth = []string{root.AgentId, d.AgentId}, 2
			d.CreatedBy, d.ExpiresAt = root.AgentId, root.ExpiresAt
		}
		out = append(out, d)
	}
	return out
}

type rngReader struct{ r *rand.Rand }

func (r rngReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r.r.Uint32())
	}
	return len(p), nil
}

// wire returns the messages as they arrive on the stream, encoded.
func wire(tb testing.TB, pbs []*delegationv1.Delegation) [][]byte {
	tb.Helper()
	out := make([][]byte, len(pbs))
	for i, pb := range pbs {
		b, err := proto.Marshal(pb)
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// replicaMemory builds a replica the way the watcher does (decode each
// message off the wire, convert it, install the snapshot) and returns the
// heap it holds once the messages are garbage.
func replicaMemory(tb testing.TB, msgs [][]byte) (*replica, uint64) {
	tb.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := newReplica()
	snapshot := make([]*domain.Delegation, 0, len(msgs))
	for _, b := range msgs {
		pb := new(delegationv1.Delegation)
		if err := proto.Unmarshal(b, pb); err != nil {
			tb.Fatal(err)
		}
		d, err := fromProto(pb)
		if err != nil {
			tb.Fatal(err)
		}
		snapshot = append(snapshot, d)
	}
	r.install(snapshot, uint64(len(msgs)), t0)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if r.size() != len(msgs) {
		tb.Fatalf("replica holds %d, want %d", r.size(), len(msgs))
	}
	return r, after.HeapAlloc - before.HeapAlloc
}

// TestReplicaMemory checks the budget: 100,000 live delegations in under
// 100 MiB.
func TestReplicaMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 100,000 delegations")
	}
	pbs := wire(t, population(t, 100000))
	r, heap := replicaMemory(t, pbs)
	runtime.KeepAlive(r)
	t.Logf("replica of %d delegations: %.1f MiB (%d B each)", len(pbs), float64(heap)/(1<<20), heap/uint64(len(pbs)))
	if heap > 100<<20 {
		t.Fatalf("replica holds %.1f MiB, budget 100 MiB", float64(heap)/(1<<20))
	}
}

// BenchmarkReplicaMemory reports the heap a replica of 100,000 live
// delegations holds (MiB/replica) and the time to build it.
func BenchmarkReplicaMemory(b *testing.B) {
	pbs := wire(b, population(b, 100000))
	b.ResetTimer()
	var heap uint64
	for range b.N {
		var r *replica
		r, heap = replicaMemory(b, pbs)
		runtime.KeepAlive(r)
	}
	b.ReportMetric(float64(heap)/(1<<20), "MiB/replica")
	b.ReportMetric(float64(heap)/float64(len(pbs)), "B/delegation")
}

// benchState is a configured state over a ready replica of 100,000
// delegations plus the fixtures. Its audit queue has no sender: the
// benchmark takes each record off the queue itself.
func benchState(b *testing.B) (*Plugin, *state) {
	b.Helper()
	c, _, err := buildConfig(`agentid_socket_path = "/nonexistent"`)
	if err != nil {
		b.Fatal(err)
	}
	pbs := append(population(b, 100000), fixtures()...)
	r := newReplica()
	r.install(convertAll(b, pbs...), uint64(len(pbs)), t0)
	a := &auditor{queue: make(chan *auditv1.TokenIssuance, 1)}
	p := New(Options{Clock: func() time.Time { return t0 }})
	return p, &state{config: c, rt: &backend{replica: r, audit: a}}
}

// BenchmarkLookupAndClaims is the composer's own work per token: the
// replica lookup and the claims built through pkg/claims.
func BenchmarkLookupAndClaims(b *testing.B) {
	_, st := benchState(b)
	id, sub := mustID(childID), spiffeid.RequireFromString(analyst)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		d, err := st.rt.replica.lookup(id, sub, t0, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if m := claims.FromDelegation(d).Map(); len(m) != 3 {
			b.Fatal(m)
		}
	}
}

// BenchmarkCompose is ComposeWorkloadJWTSVID's work in process: claims in
// and out of protobuf Struct form, lookup, claims, audit enqueue.
func BenchmarkCompose(b *testing.B) {
	p, st := benchState(b)
	req := jwtRequest(b, analyst, crm, marker(childID))
	aud := req.Attributes.Claims.Fields["aud"]
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req.Attributes.Claims.Fields["aud"] = aud
		if err := p.compose(context.Background(), st, analyst, req.Attributes.Claims); err != nil {
			b.Fatal(err)
		}
		<-st.rt.audit.queue
	}
}

// BenchmarkComposeGRPC is the whole ComposeWorkloadJWTSVID over the
// plugin's gRPC service on a unix socket (the transport go-plugin gives
// SPIRE), against a real background watcher and audit sender talking to
// the fake agentid-server. It reports the p50 and p99 latency.
func BenchmarkComposeGRPC(b *testing.B) {
	srv := startFakeServer(b, "", fixtures()...)
	p := New(Options{Clock: func() time.Time { return t0 }})
	p.tuning = fastTuning
	if _, err := p.Configure(context.Background(), &configv1.ConfigureRequest{
		HclConfiguration: fmt.Sprintf("agentid_socket_path = %q", srv.path),
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	r := p.state.Load().rt.replica
	waitFor(b, "replica ready", r.changes, func() bool { _, ok := r.resumePoint(); return ok })

	sock := filepath.Join(b.TempDir(), "plugin.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	credentialcomposerv1.CredentialComposerPluginServer(p).RegisterServer(gs)
	go func() { _ = gs.Serve(l) }()
	b.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	client := credentialcomposerv1.NewCredentialComposerClient(conn)

	ctx := context.Background()
	req := jwtRequest(b, analyst, crm, marker(childID))
	if _, err := client.ComposeWorkloadJWTSVID(ctx, req); err != nil { // warm up the connection
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := client.ComposeWorkloadJWTSVID(ctx, req); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}
