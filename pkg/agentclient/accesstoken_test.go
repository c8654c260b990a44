package agentclient_test

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/oauth2"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/authserver"
	"github.com/agentid/agentid/pkg/authserver/keyring"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/server/servertest"
	"github.com/agentid/agentid/pkg/store"
)

const (
	mcpResource = "https://mcp.example.com/mcp"
)

// oauthFixture is the fixture plus agentid-server's authorization server on
// a real TLS listener that requests client certificates, reading the same
// store and SPIRE's JWT bundle.
type oauthFixture struct {
	*fixture
	as     *httptest.Server
	grants atomic.Int64
}

func newOAuthFixture(t *testing.T) *oauthFixture {
	t.Helper()
	f := &oauthFixture{fixture: newFixture(t)}
	keys, err := keyring.New(keyring.Config{Store: f.env.Store})
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.Refresh(servertest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	f.as = httptest.NewUnstartedServer(nil)
	f.as.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	f.as.StartTLS()
	t.Cleanup(f.as.Close)
	srv, err := authserver.New(authserver.Config{
		Issuer: f.as.URL, Keys: keys, Store: f.env.Store,
		Resources: []authserver.Resource{{URI: mcpResource, Scopes: delegation.MustParseScopes("campaigns:read", "compliance:check")}},
		Bundles:   f.auth.JWTBundle(), X509Bundles: f.env.CA.Bundle(), TrustDomains: []spiffeid.TrustDomain{servertest.TD},
		MaxTokenTTL: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	f.as.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == authserver.TokenPath {
			f.grants.Add(1)
		}
		h.ServeHTTP(w, r)
	})
	return f
}

func (f *oauthFixture) tokens(t *testing.T) *agentclient.AccessTokens {
	t.Helper()
	roots := f.as.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	at, err := f.agent.AccessTokens(f.as.URL, f.agent.OAuthHTTPClient(roots))
	if err != nil {
		t.Fatal(err)
	}
	return at
}

func payloadOf(t *testing.T, token string) map[string]any {
	t.Helper()
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestAccessTokens: the agent's delegated JWT-SVID becomes an access token
// bound to its X509-SVID, cached to half life (one grant for many calls),
// through an oauth2.TokenSource that oauth2.NewClient uses; refusals keep
// the RFC 6749 code in an *oauth2.RetrieveError.
func TestAccessTokens(t *testing.T) {
	f := newOAuthFixture(t)
	d := f.delegate(t)
	at := f.tokens(t)

	tok, err := at.Token(ctxBG, d.ID, mcpResource, "campaigns:read")
	if err != nil {
		t.Fatal(err)
	}
	c := payloadOf(t, tok.Value)
	svid, _ := f.agent.X509SVID()
	if c["client_id"] != servertest.Orchestrator.String() || c["aud"] != mcpResource || c["scope"] != "campaigns:read" ||
		c["cnf"] == nil || tok.Scope != "campaigns:read" || tok.Delegation != d.ID || svid == nil {
		t.Fatalf("token %+v claims %v", tok, c)
	}
	if left := time.Until(tok.ExpiresAt); left < 50*time.Second || left > time.Minute {
		t.Fatalf("expires in %s, want about the resource's minute", left)
	}

	// The cache: the same key within half the life asks nothing more.
	again, err := at.Token(ctxBG, d.ID, mcpResource, "campaigns:read")
	if err != nil || again.Value != tok.Value || f.grants.Load() != 1 {
		t.Fatalf("second call: %v, %d grants", err, f.grants.Load())
	}
	f.clock.t = f.clock.t.Add(31 * time.Second)
	if renewed, err := at.Token(ctxBG, d.ID, mcpResource, "campaigns:read"); err != nil || f.grants.Load() != 2 || renewed.Value == tok.Value {
		t.Fatalf("past half life: %v, %d grants", err, f.grants.Load())
	}
	at.Forget(d.ID, mcpResource, "campaigns:read")
	if _, err := at.Token(ctxBG, d.ID, mcpResource, "campaigns:read"); err != nil || f.grants.Load() != 3 {
		t.Fatalf("after Forget: %v, %d grants", err, f.grants.Load())
	}

	// oauth2's client attaches it.
	var seen string
	rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.Header.Get("Authorization") }))
	defer rs.Close()
	resp, err := oauth2.NewClient(ctxBG, at.TokenSource(ctxBG, d.ID, mcpResource)).Get(rs.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.HasPrefix(seen, "Bearer ") || payloadOf(t, strings.TrimPrefix(seen, "Bearer "))["scope"] != "campaigns:read compliance:check" {
		t.Fatalf("Authorization %q", seen)
	}

	// Refusals: the RFC 6749 code, classified.
	for _, tc := range []struct {
		resource string
		scopes   []string
		code     string
	}{
		{mcpResource, []string{"crm:write"}, authserver.ErrorInvalidScope},
		{"https://unknown.example.com", nil, authserver.ErrorInvalidTarget},
	} {
		_, err := at.Token(ctxBG, d.ID, tc.resource, tc.scopes...)
		var re *oauth2.RetrieveError
		if !errors.Is(err, agentclient.ErrDelegationDenied) || !errors.As(err, &re) || re.ErrorCode != tc.code {
			t.Fatalf("%s %v: %v, want ErrDelegationDenied with %s", tc.resource, tc.scopes, err, tc.code)
		}
	}
	if _, _, err := f.env.Store.RevokeDelegation(ctxBG, store.Revocation{ID: d.ID, Reason: "done",
		Event: audit.Event{Type: audit.TypeRevoked, Actor: "local"}}); err != nil {
		t.Fatal(err)
	}
	_, err = at.Token(ctxBG, d.ID, mcpResource, "compliance:check")
	if !errors.Is(err, agentclient.ErrDelegationDenied) {
		t.Fatalf("after revocation: %v, want ErrDelegationDenied", err)
	}
}

// TestAccessTokensRefuses: bad configuration and requests are refused
// before anything is sent, and an issuer whose metadata names another
// issuer gets no assertion.
func TestAccessTokensRefuses(t *testing.T) {
	f := newFixture(t)
	for _, issuer := range []string{"", "http://agentid.example.com", "ftp://x", "https://"} {
		if _, err := f.agent.AccessTokens(issuer, nil); err == nil || !strings.Contains(err.Error(), "must be an https URL") {
			t.Fatalf("issuer %q: %v", issuer, err)
		}
	}
	if _, err := agentclient.NewAccessTokens(agentclient.AccessTokensConfig{Issuer: "https://a.example.com"}); err == nil {
		t.Fatal("no delegated tokens accepted")
	}

	var asked atomic.Int64
	liar := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == authserver.TokenPath {
			asked.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"issuer":"https://evil.example.com","token_endpoint":"https://evil.example.com/token"}`))
	}))
	defer liar.Close()
	at, err := f.agent.AccessTokens(liar.URL, liar.Client())
	if err != nil {
		t.Fatal(err)
	}
	d := delegation.NewID()
	if _, err := at.Token(ctxBG, d, mcpResource); !errors.Is(err, agentclient.ErrInvalidRequest) || !strings.Contains(err.Error(), "want issuer") {
		t.Fatalf("lying metadata: %v", err)
	}
	if f.wl.JWTFetches() != 0 || asked.Load() != 0 {
		t.Fatalf("%d assertions fetched, %d token requests sent", f.wl.JWTFetches(), asked.Load())
	}
	for _, tc := range []struct {
		id       delegation.ID
		resource string
		scopes   []string
	}{
		{delegation.ID{}, mcpResource, nil},
		{d, "", nil},
		{d, mcpResource, []string{`bad"scope`}},
	} {
		if _, err := at.Token(ctxBG, tc.id, tc.resource, tc.scopes...); !errors.Is(err, agentclient.ErrInvalidRequest) {
			t.Fatalf("%+v: %v, want ErrInvalidRequest", tc, err)
		}
	}
}
