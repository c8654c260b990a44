package agentclient_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/agentclient/agentclienttest"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/server/servertest"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// fixture is a real agentid-server, a fake SPIRE whose composer reads that
// server's store, and the orchestrator agent on its own Workload API.
type fixture struct {
	env   *servertest.Env
	auth  *agentclienttest.Authority
	wl    *agentclienttest.WorkloadAPI
	agent *agentclient.Agent
	clock *clock
}

// clock is the token cache's clock, starting at the real time (the fake
// mints with the real clock, as go-spiffe checks tokens against it).
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	env := servertest.Start(tb)
	f := &fixture{env: env, clock: &clock{t: time.Now()}}
	f.auth = agentclienttest.NewAuthority(tb, agentclienttest.AuthorityConfig{CA: env.CA, Delegations: env.Store.GetDelegation})
	f.wl = f.auth.Serve(tb, servertest.Orchestrator)
	f.agent = newAgent(tb, f.wl, f.clock.Now)
	return f
}

func newAgent(tb testing.TB, wl *agentclienttest.WorkloadAPI, now func() time.Time) *agentclient.Agent {
	tb.Helper()
	a, err := agentclient.New(servertest.Ctx(tb), agentclient.Config{WorkloadAPIAddr: wl.Addr, Clock: now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close() })
	return a
}

func (f *fixture) server(tb testing.TB) *agentclient.ServerClient {
	tb.Helper()
	s, err := f.agent.DialServer(f.env.MTLSAddr, servertest.ServerID)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// delegate creates alice's delegation to the orchestrator, asked by the
// orchestrator itself.
func (f *fixture) delegate(tb testing.TB) *delegation.Delegation {
	tb.Helper()
	d, err := f.server(tb).CreateDelegation(servertest.Ctx(tb), agentclient.CreateRequest{
		UserToken: f.env.AliceToken(tb), Agent: servertest.Orchestrator,
		Scopes: []string{"campaigns:read", "compliance:check"}, TTL: 30 * time.Minute, Intent: "check the Q3 campaign",
	})
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

const audience = "spiffe://example.org/svc/crm"

var ctxBG = context.Background()

func mustID(tb testing.TB, s string) spiffeid.ID {
	tb.Helper()
	id, err := spiffeid.FromString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// fetcherOf is a bare Workload API client.
func fetcherOf(tb testing.TB, addr string) *workloadapi.Client {
	tb.Helper()
	c, err := workloadapi.New(servertest.Ctx(tb), workloadapi.WithAddr(addr))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func errorsMention(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}
