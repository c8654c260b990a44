package mcpauth_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/agentclient/agentclienttest"
	"github.com/agentid/agentid/pkg/authserver"
	"github.com/agentid/agentid/pkg/authserver/keyring"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/mcpauth"
	"github.com/agentid/agentid/pkg/server/servertest"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
)

// clock is the MCP server's verifier clock, moved by the test.
type clock struct {
	mu sync.Mutex
	d  time.Duration
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.d) }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.d += d
}

// fixture: a real agentid-server (servertest), a fake SPIRE whose composer
// reads its store, agentid's authorization server and a go-sdk MCP server on
// real TLS listeners that request client certificates, and two agents.
type fixture struct {
	env          *servertest.Env
	roots        *x509.CertPool
	issuer       string
	resource     string
	other        string // another registered resource
	metadataURL  string
	verifier     *mcpauth.Verifier
	clock        *clock
	orchestrator *agentclient.Agent
	analyst      *agentclient.Agent
}

func newFixture(t *testing.T) *fixture { return newFixtureTB(t) }

func newFixtureTB(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{env: servertest.Start(t), clock: &clock{}}
	spire := agentclienttest.NewAuthority(t, agentclienttest.AuthorityConfig{CA: f.env.CA, Delegations: f.env.Store.GetDelegation})
	for id, a := range map[spiffeid.ID]**agentclient.Agent{servertest.Orchestrator: &f.orchestrator, servertest.Analyst: &f.analyst} {
		agent, err := agentclient.New(servertest.Ctx(t), agentclient.Config{WorkloadAPIAddr: spire.Serve(t, id).Addr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { agent.Close() })
		*a = agent
	}

	as := httptest.NewUnstartedServer(nil)
	as.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	as.StartTLS()
	t.Cleanup(as.Close)
	mcpSrv := httptest.NewUnstartedServer(nil)
	mcpSrv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	mcpSrv.StartTLS()
	t.Cleanup(mcpSrv.Close)
	f.roots = as.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	f.issuer, f.resource, f.other = as.URL, mcpSrv.URL+"/mcp", "https://crm.example.com/api"
	f.metadataURL = mcpSrv.URL + mcpauth.MetadataPath(f.resource)

	keys, err := keyring.New(keyring.Config{Store: f.env.Store})
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.Refresh(servertest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	srv, err := authserver.New(authserver.Config{
		Issuer: f.issuer, Keys: keys, Store: f.env.Store,
		Resources: []authserver.Resource{
			{URI: f.resource, Scopes: delegation.MustParseScopes("campaigns:read", "campaigns:write", "compliance:check")},
			{URI: f.other, Scopes: delegation.MustParseScopes("campaigns:read")},
		},
		Bundles: spire.JWTBundle(), X509Bundles: f.env.CA.Bundle(), TrustDomains: []spiffeid.TrustDomain{servertest.TD},
		MaxTokenTTL: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	as.Config.Handler = srv.Handler()

	v, err := mcpauth.NewVerifier(mcpauth.VerifierConfig{Issuer: f.issuer, Resource: f.resource,
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.roots}}}, Clock: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.verifier = v
	server := mcp.NewServer(&mcp.Implementation{Name: "crm", Version: "v1"}, nil)
	type none struct{}
	whoami := func(_ context.Context, req *mcp.CallToolRequest, _ none) (*mcp.CallToolResult, none, error) {
		c, ok := mcpauth.CallerFrom(req.Extra.TokenInfo)
		if !ok {
			return nil, none{}, errors.New("no caller")
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: c.String() + " with " + c.Scopes.String()}}}, none{}, nil
	}
	mcp.AddTool(server, &mcp.Tool{Name: "whoami", Description: "who calls"}, whoami)
	mcp.AddTool(server, &mcp.Tool{Name: "update_campaign", Description: "needs campaigns:write"}, whoami)
	protected, err := mcpauth.Protect(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil), mcpauth.ProtectConfig{
		Verifier: v, ResourceMetadataURL: f.metadataURL,
		ToolScopes: map[string][]string{"whoami": {"campaigns:read"}, "update_campaign": {"campaigns:write"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(mcpauth.MetadataPath(f.resource), mcpauth.MetadataHandler(f.resource, f.issuer, []string{"campaigns:read", "campaigns:write"}))
	mux.Handle("/mcp", protected)
	mcpSrv.Config.Handler = mux
	return f
}

// delegate: alice delegates campaigns:read and compliance:check (not
// campaigns:write) to the orchestrator.
func (f *fixture) delegate(t *testing.T) delegation.ID { return f.delegateTB(t) }

func (f *fixture) delegateTB(t testing.TB) delegation.ID {
	t.Helper()
	resp, err := f.env.Local(t).Delegations.CreateDelegation(servertest.Ctx(t), &delegationv1.CreateDelegationRequest{
		UserToken: f.env.AliceToken(t), AgentId: servertest.Orchestrator.String(),
		Scopes: []string{"campaigns:read", "compliance:check"}, Ttl: durationpb.New(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return delegation.MustParseID(resp.Delegation.Id)
}

func (f *fixture) connect(t *testing.T, a *agentclient.Agent, id delegation.ID) (*mcp.ClientSession, *agentclient.AccessTokens) {
	t.Helper()
	at, err := a.AccessTokens(f.issuer, a.OAuthHTTPClient(f.roots))
	if err != nil {
		t.Fatal(err)
	}
	oh, err := mcpauth.NewOAuthHandler(mcpauth.ClientConfig{Tokens: at, Issuer: f.issuer, Delegation: id, Resource: f.resource,
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.roots}}}})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "v1"}, nil).Connect(servertest.Ctx(t),
		&mcp.StreamableClientTransport{Endpoint: f.resource, OAuthHandler: oh, HTTPClient: a.OAuthHTTPClient(f.roots)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs, at
}

func text(t *testing.T, r *mcp.CallToolResult) string {
	t.Helper()
	if r.IsError || len(r.Content) != 1 {
		t.Fatalf("tool result %+v", r)
	}
	return r.Content[0].(*mcp.TextContent).Text
}

// post sends an MCP initialize with token over a client presenting cert.
func (f *fixture) post(t *testing.T, token string, cert *agentclient.Agent) (int, string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.roots}}}
	if cert != nil {
		client = cert.OAuthHTTPClient(f.roots)
	}
	req, _ := http.NewRequest(http.MethodPost, f.resource, strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

// TestMCP: a go-sdk client of the orchestrator calls a tool of a go-sdk
// server for alice and is told who it is; a tool needing an undelegated
// scope is 403 insufficient_scope, surfaced as InsufficientScopeError; no
// token is 401 with the metadata URL; a token for another resource, and
// the orchestrator's bound token replayed over the analyst's certificate,
// are refused; after the revocation the token is honoured until it expires
// (local verification), then no new one is issued.
func TestMCP(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	cs, at := f.connect(t, f.orchestrator, id)

	r, err := cs.CallTool(servertest.Ctx(t), &mcp.CallToolParams{Name: "whoami"})
	if err != nil {
		t.Fatal(err)
	}
	want := servertest.Orchestrator.String() + " acting for "
	if got := text(t, r); !strings.HasPrefix(got, want) || !strings.HasSuffix(got, " with campaigns:read compliance:check") {
		t.Fatalf("whoami = %q, want %q…", got, want)
	}

	_, err = cs.CallTool(servertest.Ctx(t), &mcp.CallToolParams{Name: "update_campaign"})
	var scopeErr *mcpauth.InsufficientScopeError
	if !errors.As(err, &scopeErr) || fmt.Sprint(scopeErr.Missing) != "[campaigns:write]" || scopeErr.Resource != f.resource {
		t.Fatalf("update_campaign: %v, want InsufficientScopeError for campaigns:write", err)
	}

	if code, h := f.post(t, "", nil); code != http.StatusUnauthorized || !strings.Contains(h, `resource_metadata="`+f.metadataURL+`"`) {
		t.Fatalf("no token: %d %q", code, h)
	}
	other, err := at.Token(servertest.Ctx(t), id, f.other)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := f.post(t, other.Value, f.orchestrator); code != http.StatusUnauthorized {
		t.Fatalf("token for another resource: %d, want 401", code)
	}
	own, err := at.Token(servertest.Ctx(t), id, f.resource)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := f.post(t, own.Value, f.orchestrator); code != http.StatusOK {
		t.Fatalf("own token over own certificate: %d, want 200", code)
	}
	for name, cert := range map[string]*agentclient.Agent{"the analyst's certificate": f.analyst, "no certificate": nil} {
		if code, _ := f.post(t, own.Value, cert); code != http.StatusUnauthorized {
			t.Fatalf("bound token over %s: %d, want 401", name, code)
		}
	}

	if _, err := f.env.Local(t).Delegations.RevokeDelegation(servertest.Ctx(t), &delegationv1.RevokeDelegationRequest{Id: id.String(), Reason: "done"}); err != nil {
		t.Fatal(err)
	}
	if r, err := cs.CallTool(servertest.Ctx(t), &mcp.CallToolParams{Name: "whoami"}); err != nil || r.IsError {
		t.Fatalf("within the TTL after the revocation: %v %+v (local verification honours the token)", err, r)
	}
	f.clock.Add(2 * time.Minute) // past the token's exp
	_, err = cs.CallTool(servertest.Ctx(t), &mcp.CallToolParams{Name: "whoami"})
	if !errors.Is(err, agentclient.ErrDelegationDenied) {
		t.Fatalf("after expiry: %v, want ErrDelegationDenied (no new token for a revoked delegation)", err)
	}
}

// TestVerifierRefuses: bad configuration.
func TestVerifierRefuses(t *testing.T) {
	for _, c := range []mcpauth.VerifierConfig{{}, {Issuer: "https://a.example.com"}, {Issuer: "a.example.com", Resource: "https://r"}} {
		if _, err := mcpauth.NewVerifier(c); err == nil || !strings.HasPrefix(err.Error(), "mcpauth: invalid config: ") {
			t.Fatalf("%+v: %v", c, err)
		}
	}
	if _, err := mcpauth.Protect(http.NotFoundHandler(), mcpauth.ProtectConfig{}); err == nil {
		t.Fatal("Protect without a verifier")
	}
}
