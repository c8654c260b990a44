// Package servertest runs a real agentid-server API for tests of its
// clients: a bbolt store in a temp dir, a test OpenID provider, a test CA for
// mTLS, the local unix socket and an mTLS listener on loopback. The fixture
// declares three agents (Orchestrator → market-analysis → Writer) and one
// policy rule ("marketing" group, front end or local callers, depth 2).
package servertest

import (
	"context"
	"google.golang.org/protobuf/types/known/durationpb"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/agent"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/internal/testca"
	"github.com/agentid/agentid/pkg/oidcauth"
	"github.com/agentid/agentid/pkg/oidcauth/oidctest"
	"github.com/agentid/agentid/pkg/policy"
	"github.com/agentid/agentid/pkg/server"
	"github.com/agentid/agentid/pkg/store/boltstore"
	"github.com/agentid/agentid/pkg/store/storetest"
	agentv1 "github.com/agentid/agentid/proto/agentid/agent/v1"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/sirupsen/logrus"
	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// The fixture's trust domain and identities: the server, three declared
// agents (Orchestrator may sub-delegate to Analyst, Analyst to Writer), the
// front end the policy rule names as a caller, a verifier allowed to watch
// revocations, an mTLS admin, an audit reader, and a workload with no role.
var (
	TD           = spiffeid.RequireTrustDomainFromString("example.org")
	ServerID     = spiffeid.RequireFromString("spiffe://example.org/agentid-server")
	Orchestrator = spiffeid.RequireFromString("spiffe://example.org/agent/orchestrator")
	Analyst      = spiffeid.RequireFromString("spiffe://example.org/agent/market-analysis")
	Writer       = spiffeid.RequireFromString("spiffe://example.org/agent/writer")
	Frontend     = spiffeid.RequireFromString("spiffe://example.org/app/chat-frontend")
	Verifier     = spiffeid.RequireFromString("spiffe://example.org/svc/crm")
	Stranger     = spiffeid.RequireFromString("spiffe://example.org/app/stranger")
	Admin        = spiffeid.RequireFromString("spiffe://example.org/ops/admin")
	AuditReader  = spiffeid.RequireFromString("spiffe://example.org/ops/auditor")
	// UserPage is in access.user_clients: with a user's fresh token it may
	// revoke any of her delegations.
	UserPage = spiffeid.RequireFromString("spiffe://example.org/app/user-page")
)

// Audience is the audience the fixture's server accepts in user tokens.
const Audience = "agentid"

// Env is a running agentid-server API on a real unix socket and a real mTLS
// listener, over a bbolt store in a temp dir, with a test OpenID provider.
type Env struct {
	Server *server.Server
	// Store is the fixture's store; the server reaches it through Faults.
	Store *boltstore.Store
	// Faults fails the server's store calls on demand (SetNextError), for
	// tests of the store-failure paths.
	Faults *storetest.ErrorStore
	IDP    *oidctest.Issuer
	CA     *testca.CA
	Clock  *Clock

	LocalAddr string
	MTLSAddr  string
}

// Clock is the fixture's settable clock, safe to read from server
// goroutines while a test sets it.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// Add moves the clock forward by d.
func (c *Clock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Agents are the declared agents of the fixture.
func Agents() []agent.Agent {
	return []agent.Agent{
		{Name: "orchestrator", SPIFFEID: Orchestrator, ScopeCeiling: delegation.MustParseScopes("campaigns:read", "compliance:check", "crm:write"),
			SubAgents: []spiffeid.ID{Analyst}},
		{Name: "market-analysis", SPIFFEID: Analyst, ScopeCeiling: delegation.MustParseScopes("campaigns:read", "compliance:check"),
			SubAgents: []spiffeid.ID{Writer}},
		{Name: "writer", SPIFFEID: Writer, ScopeCeiling: delegation.MustParseScopes("campaigns:read")},
	}
}

// Options change the fixture.
type Options struct {
	// Log receives the server's log (JSON, trace level); nil discards it.
	Log io.Writer
	// WatchHeartbeat is the server's heartbeat on quiet watch streams;
	// zero means an hour (tests that do not look at heartbeats).
	WatchHeartbeat time.Duration
}

// Start runs the fixture until the test ends.
func Start(tb testing.TB) *Env {
	tb.Helper()
	return StartWith(tb, Options{})
}

// StartWithLog is Start with the server's log written to logOut.
func StartWithLog(tb testing.TB, logOut io.Writer) *Env {
	tb.Helper()
	return StartWith(tb, Options{Log: logOut})
}

// StartWith runs the fixture with opts until the test ends.
func StartWith(tb testing.TB, opts Options) *Env {
	tb.Helper()
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.WatchHeartbeat == 0 {
		opts.WatchHeartbeat = time.Hour
	}
	log := logrus.New()
	log.Out = opts.Log
	// Trace level, so a test that looks for token leaks sees every line.
	log.Level = logrus.TraceLevel
	log.Formatter = &logrus.JSONFormatter{}
	e := &Env{IDP: oidctest.New(tb), CA: testca.New(tb, TD), Clock: &Clock{t: time.Now()}}
	st, err := boltstore.Open(filepath.Join(tb.TempDir(), "agentid.db"), boltstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	e.Store = st
	e.Faults = storetest.NewErrorStore(st)
	tb.Cleanup(func() { st.Close() })
	users, err := oidcauth.New(oidcauth.Config{
		Issuers: []oidcauth.IssuerConfig{{URL: e.IDP.URL(), Audiences: []string{Audience}}},
		Clock:   e.Clock.Now,
	})
	if err != nil {
		tb.Fatal(err)
	}
	pol, err := policy.Compile([]policy.Rule{
		{Name: "marketing", When: `"marketing" in user.groups`, Scopes: []string{"campaigns:read", "compliance:check", "crm:write"},
			MaxTTL: time.Hour, MaxDepth: 2, Callers: []string{Frontend.String(), policy.CallerLocal}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := server.New(server.Config{
		Store: e.Faults, Users: users, Policy: pol, Agents: Agents(),
		Verifiers: []spiffeid.ID{Verifier}, Admins: []spiffeid.ID{Admin}, AuditReaders: []spiffeid.ID{AuditReader},
		UserClients: []spiffeid.ID{UserPage},
		Clock:       e.Clock.Now, WatchHeartbeat: opts.WatchHeartbeat, Log: log,
	})
	if err != nil {
		tb.Fatal(err)
	}
	e.Server = srv
	if err := srv.DeclareAgents(context.Background()); err != nil {
		tb.Fatal(err)
	}

	dir, err := os.MkdirTemp("", "aid")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	e.LocalAddr = filepath.Join(dir, "agentid.sock")
	ll, err := net.Listen("unix", e.LocalAddr)
	if err != nil {
		tb.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	e.MTLSAddr = tl.Addr().String()
	local := srv.LocalServer()
	mtls := srv.MTLSServer(testca.Source{SVID: e.CA.SVID(tb, ServerID)}, e.CA, TD)
	go local.Serve(ll)
	go mtls.Serve(tl)
	tb.Cleanup(func() {
		srv.Close()
		local.Stop()
		mtls.Stop()
	})
	return e
}

// Clients are the three API clients on one connection.
type Clients struct {
	Delegations delegationv1.DelegationServiceClient
	Agents      agentv1.AgentServiceClient
	Audit       auditv1.AuditServiceClient
}

func newClients(tb testing.TB, conn *grpc.ClientConn) Clients {
	tb.Cleanup(func() { conn.Close() })
	return Clients{
		Delegations: delegationv1.NewDelegationServiceClient(conn),
		Agents:      agentv1.NewAgentServiceClient(conn),
		Audit:       auditv1.NewAuditServiceClient(conn),
	}
}

// Local connects over the unix socket, as the CLI or the composer does.
func (e *Env) Local(tb testing.TB) Clients {
	tb.Helper()
	conn, err := grpc.NewClient("unix://"+e.LocalAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	return newClients(tb, conn)
}

// As connects over mTLS with an X509-SVID for id.
func (e *Env) As(tb testing.TB, id spiffeid.ID) Clients {
	tb.Helper()
	creds := grpccredentials.MTLSClientCredentials(testca.Source{SVID: e.CA.SVID(tb, id)}, e.CA, tlsconfig.AuthorizeID(ServerID))
	conn, err := grpc.NewClient(e.MTLSAddr, grpc.WithTransportCredentials(creds))
	if err != nil {
		tb.Fatal(err)
	}
	return newClients(tb, conn)
}

// AliceToken is a fresh ID token of alice (group marketing) at the fixture's clock.
func (e *Env) AliceToken(tb testing.TB) string {
	return e.IDP.Token(tb, oidctest.Claims{Subject: "alice", Audience: Audience, Email: "alice@example.com",
		EmailVerified: true, Groups: []string{"marketing"}, IssuedAt: e.Clock.Now(), Expiry: e.Clock.Now().Add(time.Hour)})
}

// Ctx is a context that ends with the test (or after 10 s).
func Ctx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// Create asks c for a delegation of token's user to agent, failing the test
// on an error.
func Create(tb testing.TB, c Clients, token string, agent string, ttl time.Duration, scopes ...string) *delegationv1.Delegation {
	tb.Helper()
	resp, err := c.Delegations.CreateDelegation(Ctx(tb), &delegationv1.CreateDelegationRequest{
		UserToken: token, AgentId: agent, Scopes: scopes, Ttl: durationpb.New(ttl), Intent: "check the spring campaign",
	})
	if err != nil {
		tb.Fatalf("CreateDelegation: %v", err)
	}
	return resp.Delegation
}

// Sub asks c (the parent's agent) for a sub-delegation to agent, failing the
// test on an error.
func Sub(tb testing.TB, c Clients, parent, agent string, ttl time.Duration, scopes ...string) *delegationv1.Delegation {
	tb.Helper()
	resp, err := c.Delegations.CreateSubDelegation(Ctx(tb), &delegationv1.CreateSubDelegationRequest{
		ParentId: parent, AgentId: agent, Scopes: scopes, Ttl: durationpb.New(ttl), Intent: "analyse the segment",
	})
	if err != nil {
		tb.Fatalf("CreateSubDelegation: %v", err)
	}
	return resp.Delegation
}
