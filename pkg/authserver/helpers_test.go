package authserver_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/sirupsen/logrus"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentid/agentid/pkg/agent"
	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/authserver"
	"github.com/agentid/agentid/pkg/authserver/keyring"
	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/internal/testca"
	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/boltstore"
)

const (
	issuer      = "https://agentid.example.com"
	mcpResource = "https://mcp.example.com/mcp"
	crmResource = "https://crm.example.com"
	secret      = "introspection-secret-of-the-mcp-server"
)

var (
	td           = spiffeid.RequireTrustDomainFromString("example.org")
	orchestrator = spiffeid.RequireFromString("spiffe://example.org/agent/orchestrator")
	analyst      = spiffeid.RequireFromString("spiffe://example.org/agent/market-analysis")
	intruder     = spiffeid.RequireFromString("spiffe://example.org/agent/intruder")
	reporter     = spiffeid.RequireFromString("spiffe://example.org/agent/reporter")
	auditor      = spiffeid.RequireFromString("spiffe://example.org/agent/auditor")
)

// declaredAgents: the orchestrator may sub-delegate to the analyst, the
// analyst to the reporter (and, to reach the chain check, back to the
// orchestrator), the reporter to the auditor; the intruder to nobody.
func declaredAgents(tb testing.TB) *agent.Set {
	tb.Helper()
	all := delegation.MustParseScopes("campaigns:read", "compliance:check", "crm:write")
	decl := func(name string, id spiffeid.ID, ceiling delegation.ScopeSet, subs ...spiffeid.ID) agent.Agent {
		return agent.Agent{Name: name, SPIFFEID: id, ScopeCeiling: ceiling, SubAgents: subs}
	}
	set, err := agent.NewSet([]agent.Agent{
		decl("orchestrator", orchestrator, all, analyst),
		decl("market-analysis", analyst, all, reporter, orchestrator),
		decl("reporter", reporter, delegation.MustParseScopes("campaigns:read"), auditor),
		decl("auditor", auditor, all),
		decl("intruder", intruder, all),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return set
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// jwtAuthority is the trust domain's JWT authority, as SPIRE's would be.
type jwtAuthority struct {
	kid string
	key *ecdsa.PrivateKey
}

func newAuthority(tb testing.TB, kid string) *jwtAuthority {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return &jwtAuthority{kid: kid, key: key}
}

func (a *jwtAuthority) mint(tb testing.TB, c map[string]any) string {
	tb.Helper()
	payload, err := json.Marshal(c)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: a.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", a.kid))
	if err != nil {
		tb.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

type env struct {
	clock   *fakeClock
	store   *boltstore.Store
	keys    *keyring.Keyring
	server  *authserver.Server
	handler http.Handler
	jwt     *jwtAuthority
	ca      *testca.CA
	log     *bytes.Buffer
	logMu   *sync.Mutex

	root, child, revoked, crmOnly *delegation.Delegation
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func alice(tb testing.TB) delegation.User {
	u, err := delegation.NewUser("https://idp.example.com", "alice", "alice@example.com")
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

func newEnv(tb testing.TB) *env { return newEnvWith(tb, func(*authserver.Config) {}) }

// newEnvWith is newEnv with the server's config changed by mut.
func newEnvWith(tb testing.TB, mut func(*authserver.Config)) *env {
	tb.Helper()
	e := &env{clock: &fakeClock{now: time.Now().Truncate(time.Second)}, log: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	st, err := boltstore.Open(filepath.Join(tb.TempDir(), "agentid.db"), boltstore.Options{Clock: e.clock.Now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	e.store = st
	e.keys, err = keyring.New(keyring.Config{Store: st, Clock: e.clock.Now})
	if err != nil {
		tb.Fatal(err)
	}
	if err := e.keys.Refresh(context.Background()); err != nil {
		tb.Fatal(err)
	}
	e.jwt = newAuthority(tb, "spire-jwt-1")
	e.ca = testca.New(tb, td)
	bundle := jwtbundle.New(td)
	if err := bundle.AddJWTAuthority(e.jwt.kid, &e.jwt.key.PublicKey); err != nil {
		tb.Fatal(err)
	}

	now := e.clock.Now()
	e.root = e.create(tb, delegation.RootParams{Agent: orchestrator, User: alice(tb), MaxDepth: 3,
		Scopes: delegation.MustParseScopes("campaigns:read", "compliance:check", "crm:write"), ExpiresAt: now.Add(2 * time.Hour)})
	e.child = e.createChild(tb, e.root, delegation.ChildParams{Agent: analyst,
		Scopes: delegation.MustParseScopes("campaigns:read", "compliance:check"), ExpiresAt: now.Add(time.Hour)})
	e.revoked = e.create(tb, delegation.RootParams{Agent: analyst, User: alice(tb), MaxDepth: 1,
		Scopes: delegation.MustParseScopes("campaigns:read"), ExpiresAt: now.Add(time.Hour)})
	if _, _, err := st.RevokeDelegation(context.Background(), store.Revocation{ID: e.revoked.ID, Reason: "test",
		Event: audit.Event{Type: audit.TypeRevoked, Actor: "local"}}); err != nil {
		tb.Fatal(err)
	}
	e.revoked, _ = st.GetDelegation(context.Background(), e.revoked.ID)
	e.crmOnly = e.create(tb, delegation.RootParams{Agent: analyst, User: alice(tb), MaxDepth: 1,
		Scopes: delegation.MustParseScopes("crm:write"), ExpiresAt: now.Add(time.Hour)})

	log := logrus.New()
	log.Out = lockedWriter{e.logMu, e.log}
	log.Formatter = &logrus.JSONFormatter{}
	config := authserver.Config{
		Issuer: issuer,
		Resources: []authserver.Resource{
			{URI: mcpResource, Scopes: delegation.MustParseScopes("campaigns:read", "compliance:check"), IntrospectionSecret: secret},
			{URI: crmResource, Scopes: delegation.MustParseScopes("crm:write", "campaigns:read"), TokenTTL: time.Minute},
		},
		Keys: e.keys, Store: st, Bundles: bundle, X509Bundles: e.ca.Bundle(), TrustDomains: []spiffeid.TrustDomain{td},
		Agents: declaredAgents(tb), Clock: e.clock.Now, Log: log,
	}
	mut(&config)
	e.server, err = authserver.New(config)
	if err != nil {
		tb.Fatal(err)
	}
	e.handler = e.server.Handler()
	return e
}

func (e *env) create(tb testing.TB, p delegation.RootParams) *delegation.Delegation {
	tb.Helper()
	p.CreatedAt = e.clock.Now()
	d, err := delegation.NewRoot(p)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := e.store.CreateDelegation(context.Background(), d, audit.Event{Type: audit.TypeDelegationCreated, Actor: "local"}); err != nil {
		tb.Fatal(err)
	}
	return d
}

func (e *env) createChild(tb testing.TB, parent *delegation.Delegation, p delegation.ChildParams) *delegation.Delegation {
	tb.Helper()
	p.CreatedAt = e.clock.Now()
	d, err := delegation.NewChild(parent, p)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := e.store.CreateDelegation(context.Background(), d, audit.Event{Type: audit.TypeSubDelegated, Actor: parent.Agent.String()}); err != nil {
		tb.Fatal(err)
	}
	return d
}

// assertionClaims are the claims of the delegated JWT-SVID the composer
// would sign for d, for audience aud.
func (e *env) assertionClaims(d *delegation.Delegation, aud string) map[string]any {
	c := claims.FromDelegation(d).Map()
	now := e.clock.Now()
	c["sub"] = d.Agent.String()
	c["aud"] = []string{aud}
	c["iat"] = now.Unix()
	c["exp"] = now.Add(5 * time.Minute).Unix()
	return c
}

func (e *env) assertion(tb testing.TB, d *delegation.Delegation) string {
	return e.jwt.mint(tb, e.assertionClaims(d, issuer))
}

func grantForm(assertion, resource string, extra ...string) url.Values {
	f := url.Values{"grant_type": {authserver.GrantTypeJWTBearer}, "assertion": {assertion}, "resource": {resource}}
	for i := 0; i+1 < len(extra); i += 2 {
		f.Add(extra[i], extra[i+1])
	}
	return f
}

// post sends a form to path, over a TLS connection with cert's certificates
// when cert is set.
func (e *env) post(path, body string, cert *tls.Certificate, mod func(*http.Request)) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "https://agentid.example.com"+path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = "192.0.2.1:4711"
	if cert != nil {
		r.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: parseChain(cert)}
	}
	if mod != nil {
		mod(r)
	}
	w := httptest.NewRecorder()
	e.handler.ServeHTTP(w, r)
	return w
}

func (e *env) svidCert(tb testing.TB, ca *testca.CA, id spiffeid.ID) *tls.Certificate {
	tb.Helper()
	s := ca.SVID(tb, id)
	c := &tls.Certificate{PrivateKey: s.PrivateKey, Leaf: s.Certificates[0]}
	for _, x := range s.Certificates {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

func (e *env) logText() string {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	return e.log.String()
}

func (e *env) events(tb testing.TB, typ audit.Type) []audit.Event {
	tb.Helper()
	evs, _, err := e.store.ListEvents(context.Background(), store.EventFilter{Type: typ}, store.Page{Size: store.MaxPageSize})
	if err != nil {
		tb.Fatal(err)
	}
	return evs
}

func storeRevocation(id delegation.ID) store.Revocation {
	return store.Revocation{ID: id, Reason: "user revoked", Event: audit.Event{Type: audit.TypeRevoked, Actor: "local"}}
}
