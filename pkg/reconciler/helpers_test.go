package reconciler_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/reconciler"
	"github.com/agentid/agentid/pkg/spireapi"
	"github.com/agentid/agentid/pkg/spireapi/spireapitest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
)

var (
	td       = spiffeid.RequireTrustDomainFromString("example.org")
	parentID = spiffeid.RequireFromPath(td, "/spire/agent/join_token/node1")
	start    = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

// fakeClock is a Clock the test drives: Now is set by hand, and every After
// call hands its channel to the test through afters.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	afters  chan chan time.Time
	onAfter func() // if set, called at the start of each After
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: start, afters: make(chan chan time.Time, 64)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeClock) After(time.Duration) <-chan time.Time {
	if c.onAfter != nil {
		c.onAfter()
	}
	ch := make(chan time.Time, 1)
	c.afters <- ch
	return ch
}

// env is a reconciler wired to a fake SPIRE server over a real unix socket.
type env struct {
	srv      *spireapitest.Server
	conn     *grpc.ClientConn
	client   *spireapi.Client
	clock    *fakeClock
	registry *prometheus.Registry
	rec      *reconciler.Reconciler

	mu     sync.Mutex
	synced []string // OnSync calls, "name=state"
}

func newEnv(tb testing.TB, configure ...func(*reconciler.Config)) *env {
	tb.Helper()
	e := &env{
		srv:      spireapitest.New(tb, td),
		clock:    newFakeClock(),
		registry: prometheus.NewRegistry(),
	}
	// The test's own connection, with a short reconnection backoff, so the
	// recovery test can wait for it to be ready again.
	bo := backoff.DefaultConfig
	bo.BaseDelay, bo.MaxDelay = 10*time.Millisecond, 50*time.Millisecond
	conn, err := grpc.NewClient("unix://"+e.srv.SocketPath(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: time.Second}))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	e.conn = conn
	e.client = spireapi.New(conn)
	cfg := reconciler.Config{
		Client:     e.client,
		Clock:      e.clock,
		Registerer: e.registry,
		OnSync: func(name string, st reconciler.SyncState) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.synced = append(e.synced, name+"="+st.State.String())
		},
	}
	for _, c := range configure {
		c(&cfg)
	}
	e.rec, err = reconciler.New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return e
}

// waitReady blocks until the test's connection to the fake is up again.
func (e *env) waitReady(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.conn.Connect()
	for s := e.conn.GetState(); s != connectivity.Ready; s = e.conn.GetState() {
		if !e.conn.WaitForStateChange(ctx, s) {
			tb.Fatalf("connection not ready again: %s", s)
		}
	}
}

func (e *env) onSyncCalls() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.synced
	e.synced = nil
	return out
}

func (e *env) setAgents(tb testing.TB, agents ...reconciler.Agent) {
	tb.Helper()
	if err := e.rec.SetAgents(agents); err != nil {
		tb.Fatalf("SetAgents: %v", err)
	}
}

func (e *env) reconcile(tb testing.TB) {
	tb.Helper()
	if err := e.rec.Reconcile(context.Background()); err != nil {
		tb.Fatalf("Reconcile: %v", err)
	}
}

func (e *env) entryID(tb testing.TB, name string) string {
	tb.Helper()
	st, ok := e.rec.State(name)
	if !ok {
		tb.Fatalf("no state for agent %q", name)
	}
	return st.EntryID
}

// agent declares an agent named name with SPIFFE ID /agent/<name> (or
// /agent/unnamed if name is not a path segment) and, unless selectors are
// given, the selector aiagent:name:<name>.
func agent(name string, selectors ...string) reconciler.Agent {
	id, err := spiffeid.FromSegments(td, "agent", name)
	if err != nil {
		id = spiffeid.RequireFromPath(td, "/agent/unnamed")
	}
	a := reconciler.Agent{
		Name:        name,
		SPIFFEID:    id,
		ParentID:    parentID,
		X509SVIDTTL: time.Hour,
		JWTSVIDTTL:  5 * time.Minute,
	}
	if len(selectors) == 0 {
		selectors = []string{"aiagent:name:" + name}
	}
	for _, s := range selectors {
		typ, value, _ := strings.Cut(s, ":")
		a.Selectors = append(a.Selectors, spireapi.Selector{Type: typ, Value: value})
	}
	return a
}

func foreignEntry(id, path string, selectors ...*types.Selector) *types.Entry {
	return &types.Entry{
		Id:        id,
		SpiffeId:  &types.SPIFFEID{TrustDomain: td.Name(), Path: path},
		ParentId:  &types.SPIFFEID{TrustDomain: td.Name(), Path: parentID.Path()},
		Selectors: selectors,
	}
}
