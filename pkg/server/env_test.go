package server_test

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/internal/testca"
	"github.com/agentid/agentid/pkg/oidcauth"
	"github.com/agentid/agentid/pkg/oidcauth/oidctest"
	"github.com/agentid/agentid/pkg/policy"
	"github.com/agentid/agentid/pkg/server"
	"github.com/agentid/agentid/pkg/server/config"
	"github.com/agentid/agentid/pkg/store/boltstore"
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

var (
	td           = spiffeid.RequireTrustDomainFromString("example.org")
	serverID     = spiffeid.RequireFromString("spiffe://example.org/agentid-server")
	orchestrator = spiffeid.RequireFromString("spiffe://example.org/agent/orchestrator")
	analyst      = spiffeid.RequireFromString("spiffe://example.org/agent/market-analysis")
	writer       = spiffeid.RequireFromString("spiffe://example.org/agent/writer")
	frontend     = spiffeid.RequireFromString("spiffe://example.org/app/chat-frontend")
	verifierID   = spiffeid.RequireFromString("spiffe://example.org/svc/crm")
	stranger     = spiffeid.RequireFromString("spiffe://example.org/app/stranger")
)

const audience = "agentid"

// env is a running agentid-server API on a real unix socket and a real mTLS
// listener, over a bbolt store in a temp dir, with a test OpenID provider.
type env struct {
	srv   *server.Server
	store *boltstore.Store
	idp   *oidctest.Issuer
	ca    *testca.CA
	clock *fakeClock

	localAddr string
	mtlsAddr  string
}

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func agents() []config.AgentSpec {
	return []config.AgentSpec{
		{Name: "orchestrator", SPIFFEID: orchestrator, ScopeCeiling: delegation.MustParseScopes("campaigns:read", "compliance:check", "crm:write"),
			SubAgents: []spiffeid.ID{analyst}},
		{Name: "market-analysis", SPIFFEID: analyst, ScopeCeiling: delegation.MustParseScopes("campaigns:read", "compliance:check"),
			SubAgents: []spiffeid.ID{writer}},
		{Name: "writer", SPIFFEID: writer, ScopeCeiling: delegation.MustParseScopes("campaigns:read")},
	}
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	return newEnvWithLog(tb, io.Discard)
}

func newEnvWithLog(tb testing.TB, logOut io.Writer) *env {
	tb.Helper()
	log := logrus.New()
	log.Out = logOut
	log.Formatter = &logrus.JSONFormatter{}
	e := &env{idp: oidctest.New(tb), ca: testca.New(tb, td), clock: &fakeClock{now: time.Now()}}
	st, err := boltstore.Open(filepath.Join(tb.TempDir(), "agentid.db"), boltstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	e.store = st
	tb.Cleanup(func() { st.Close() })
	users, err := oidcauth.New(oidcauth.Config{
		Issuers: []oidcauth.IssuerConfig{{URL: e.idp.URL(), Audiences: []string{audience}}},
		Clock:   e.clock.Now,
	})
	if err != nil {
		tb.Fatal(err)
	}
	pol, err := policy.Compile([]policy.Rule{
		{Name: "marketing", When: `"marketing" in user.groups`, Scopes: []string{"campaigns:read", "compliance:check", "crm:write"},
			MaxTTL: time.Hour, MaxDepth: 2, Callers: []string{frontend.String(), policy.CallerLocal}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := server.New(server.Config{
		Store: st, Users: users, Policy: pol, Agents: agents(),
		Verifiers: []spiffeid.ID{verifierID},
		Clock:     e.clock.Now, WatchHeartbeat: time.Hour, Log: log,
	})
	if err != nil {
		tb.Fatal(err)
	}
	e.srv = srv

	dir, err := os.MkdirTemp("", "aid")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	e.localAddr = filepath.Join(dir, "agentid.sock")
	ll, err := net.Listen("unix", e.localAddr)
	if err != nil {
		tb.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	e.mtlsAddr = tl.Addr().String()
	local := srv.LocalServer()
	mtls := srv.MTLSServer(testca.Source{SVID: e.ca.SVID(tb, serverID)}, e.ca, td)
	go local.Serve(ll)
	go mtls.Serve(tl)
	tb.Cleanup(func() {
		srv.Close()
		local.Stop()
		mtls.Stop()
	})
	return e
}

type clients struct {
	delegations delegationv1.DelegationServiceClient
	agents      agentv1.AgentServiceClient
	audit       auditv1.AuditServiceClient
}

func newClients(tb testing.TB, conn *grpc.ClientConn) clients {
	tb.Cleanup(func() { conn.Close() })
	return clients{
		delegations: delegationv1.NewDelegationServiceClient(conn),
		agents:      agentv1.NewAgentServiceClient(conn),
		audit:       auditv1.NewAuditServiceClient(conn),
	}
}

// local connects over the unix socket, as the CLI or the composer does.
func (e *env) local(tb testing.TB) clients {
	tb.Helper()
	conn, err := grpc.NewClient("unix://"+e.localAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	return newClients(tb, conn)
}

// as connects over mTLS with an X509-SVID for id.
func (e *env) as(tb testing.TB, id spiffeid.ID) clients {
	tb.Helper()
	creds := grpccredentials.MTLSClientCredentials(testca.Source{SVID: e.ca.SVID(tb, id)}, e.ca, tlsconfig.AuthorizeID(serverID))
	conn, err := grpc.NewClient(e.mtlsAddr, grpc.WithTransportCredentials(creds))
	if err != nil {
		tb.Fatal(err)
	}
	return newClients(tb, conn)
}

func (e *env) aliceToken(tb testing.TB) string {
	return e.idp.Token(tb, oidctest.Claims{Subject: "alice", Audience: audience, Email: "alice@example.com",
		EmailVerified: true, Groups: []string{"marketing"}, IssuedAt: e.clock.now, Expiry: e.clock.now.Add(time.Hour)})
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	return ctx
}
