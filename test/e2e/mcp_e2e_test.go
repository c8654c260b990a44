//go:build e2e

package e2e_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/authserver"
	"github.com/agentid/agentid/pkg/authserver/keyring"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/mcpauth"
	"github.com/agentid/agentid/pkg/server/servertest"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/agentid/agentid/test/harness"
)

// TestE2EMCP: on real SPIRE v1.13.3 with agentid's composer, two agents
// attested by the SPIRE agent, agentid's authorization server (reading
// SPIRE's JWT and X.509 bundles over the Workload API) and a go-sdk v1.8.0
// MCP server and client over TLS on loopback: the orchestrator calls a tool
// for alice and the tool sees "orchestrator acting for alice"; a tool
// needing an undelegated scope is 403 insufficient_scope; the analyst
// replaying the orchestrator's bound token over its own certificate is
// refused; after alice revokes, introspection says inactive at once, local
// verification honours the token until its exp, and no new token is
// issued.
//
//	go test -tags e2e -run E2EMCP ./e2e/   (in test/)
func TestE2EMCP(t *testing.T) {
	env := servertest.Start(t)
	composer := harness.BuildProgram(t, "./cmd/agentid-composer")
	srv := harness.StartSPIREServer(t, harness.ServerOptions{CredentialComposer: &harness.ExternalPlugin{
		Name: "agentid", Cmd: composer, Data: fmt.Sprintf("agentid_socket_path = %q", env.LocalAddr),
	}})
	node := harness.StartSPIREAgent(t, srv, harness.AgentOptions{})
	for _, id := range []spiffeid.ID{servertest.Orchestrator, servertest.Analyst} {
		srv.CreateEntry(t, harness.Entry{SPIFFEID: id, ParentID: node.ID(), Selectors: []string{fmt.Sprintf("unix:uid:%d", os.Getuid())}})
		node.WaitForX509SVID(t, id, 30*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	agents := map[spiffeid.ID]*agentclient.Agent{}
	for _, id := range []spiffeid.ID{servertest.Orchestrator, servertest.Analyst} {
		a, err := agentclient.New(ctx, agentclient.Config{WorkloadAPIAddr: node.WorkloadAddr(), ID: id})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		agents[id] = a
	}
	orchestrator, analyst := agents[servertest.Orchestrator], agents[servertest.Analyst]
	jwtBundles, err := workloadapi.NewJWTSource(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(node.WorkloadAddr())))
	if err != nil {
		t.Fatal(err)
	}
	defer jwtBundles.Close()

	// agentid's authorization server and the MCP server, each on a TLS
	// listener that requests client certificates.
	as := httptest.NewUnstartedServer(nil)
	as.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	as.StartTLS()
	defer as.Close()
	mcpSrv := httptest.NewUnstartedServer(nil)
	mcpSrv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	mcpSrv.StartTLS()
	defer mcpSrv.Close()
	roots := as.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	issuer, resource := as.URL, mcpSrv.URL+"/mcp"
	metadataURL := mcpSrv.URL + mcpauth.MetadataPath(resource)
	const introspectionSecret = "the-mcp-servers-introspection-secret"

	keys, err := keyring.New(keyring.Config{Store: env.Store})
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	authz, err := authserver.New(authserver.Config{
		Issuer: issuer, Keys: keys, Store: env.Store,
		Resources: []authserver.Resource{{URI: resource, Scopes: delegation.MustParseScopes("campaigns:read", "campaigns:write", "compliance:check"),
			TokenTTL: time.Minute, IntrospectionSecret: introspectionSecret}},
		Bundles: jwtBundles, X509Bundles: orchestrator.Bundles(), TrustDomains: []spiffeid.TrustDomain{servertest.TD},
	})
	if err != nil {
		t.Fatal(err)
	}
	as.Config.Handler = authz.Handler()

	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 10 * time.Second}
	verifier, err := mcpauth.NewVerifier(mcpauth.VerifierConfig{Issuer: issuer, Resource: resource, HTTPClient: plain})
	if err != nil {
		t.Fatal(err)
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "crm", Version: "v1"}, nil)
	type none struct{}
	whoami := func(_ context.Context, req *mcp.CallToolRequest, _ none) (*mcp.CallToolResult, none, error) {
		c, ok := mcpauth.CallerFrom(req.Extra.TokenInfo)
		if !ok {
			return nil, none{}, errors.New("no caller")
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: c.String()}}}, none{}, nil
	}
	mcp.AddTool(server, &mcp.Tool{Name: "whoami", Description: "who calls"}, whoami)
	mcp.AddTool(server, &mcp.Tool{Name: "update_campaign", Description: "needs campaigns:write"}, whoami)
	protected, err := mcpauth.Protect(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil), mcpauth.ProtectConfig{
		Verifier: verifier, ResourceMetadataURL: metadataURL,
		ToolScopes: map[string][]string{"whoami": {"campaigns:read"}, "update_campaign": {"campaigns:write"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(mcpauth.MetadataPath(resource), mcpauth.MetadataHandler(resource, issuer, []string{"campaigns:read", "campaigns:write"}))
	mux.Handle("/mcp", protected)
	mcpSrv.Config.Handler = mux

	// Alice delegates campaigns:read and compliance:check to the orchestrator.
	resp, err := env.Local(t).Delegations.CreateDelegation(ctx, &delegationv1.CreateDelegationRequest{
		UserToken: env.AliceToken(t), AgentId: servertest.Orchestrator.String(),
		Scopes: []string{"campaigns:read", "compliance:check"}, Ttl: durationpb.New(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	id := delegation.MustParseID(resp.Delegation.Id)

	at, err := orchestrator.AccessTokens(issuer, orchestrator.OAuthHTTPClient(roots))
	if err != nil {
		t.Fatal(err)
	}
	// The composer's replica learns of the delegation through its watch.
	var tok agentclient.AccessToken
	for {
		if tok, err = at.Token(ctx, id, resource); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no access token: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	oh, err := mcpauth.NewOAuthHandler(mcpauth.ClientConfig{Tokens: at, Issuer: issuer, Delegation: id, Resource: resource, HTTPClient: plain})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "orchestrator", Version: "v1"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: resource, OAuthHandler: oh, HTTPClient: orchestrator.OAuthHTTPClient(roots)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()

	r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil || r.IsError || len(r.Content) != 1 {
		t.Fatalf("whoami: %v %+v", err, r)
	}
	got := r.Content[0].(*mcp.TextContent).Text
	if want := servertest.Orchestrator.String() + " acting for "; !strings.HasPrefix(got, want) || !strings.Contains(got, "#alice") {
		t.Fatalf("whoami = %q, want %q for alice", got, want)
	}
	t.Logf("the tool saw: %s", got)

	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "update_campaign"})
	var scopeErr *mcpauth.InsufficientScopeError
	if !errors.As(err, &scopeErr) || fmt.Sprint(scopeErr.Missing) != "[campaigns:write]" {
		t.Fatalf("update_campaign: %v, want InsufficientScopeError for campaigns:write", err)
	}
	t.Logf("undelegated scope: %v", err)

	// The orchestrator's token is bound to its X509-SVID: the analyst,
	// holding it, is refused over its own certificate.
	post := func(client *http.Client, token string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, resource, strings.NewReader(
			`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	if code := post(analyst.OAuthHTTPClient(roots), tok.Value); code != http.StatusUnauthorized {
		t.Fatalf("replayed over the analyst's certificate: %d, want 401", code)
	}
	if code := post(orchestrator.OAuthHTTPClient(roots), tok.Value); code != http.StatusOK {
		t.Fatalf("over the orchestrator's own certificate: %d, want 200", code)
	}

	introspect := func() bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, issuer+authserver.IntrospectionPath, strings.NewReader(url.Values{"token": {tok.Value}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(resource), introspectionSecret)
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `"active":true`)
	}
	if !introspect() {
		t.Fatal("introspection: inactive before the revocation")
	}
	revoked := time.Now()
	if _, err := env.Local(t).Delegations.RevokeDelegation(ctx, &delegationv1.RevokeDelegationRequest{Id: id.String(), Reason: "e2e"}); err != nil {
		t.Fatal(err)
	}
	if introspect() {
		t.Fatal("introspection: active after the revocation")
	}
	t.Logf("introspection inactive %s after the revocation", time.Since(revoked).Round(time.Millisecond))
	// Local verification: the token stands until its exp (at most the
	// resource's minute); the next one is refused.
	if time.Now().Before(tok.ExpiresAt) {
		if code := post(orchestrator.OAuthHTTPClient(roots), tok.Value); code != http.StatusOK {
			t.Fatalf("within the TTL after the revocation: %d, want 200 (local verification)", code)
		}
	}
	at.Forget(id, resource)
	if _, err := at.Token(ctx, id, resource); !errors.Is(err, agentclient.ErrDelegationDenied) {
		t.Fatalf("new token after the revocation: %v, want ErrDelegationDenied", err)
	}
	t.Logf("with local verification only, calls succeed until the token's exp, %s after the revocation at most",
		time.Until(tok.ExpiresAt).Round(time.Second))
}
