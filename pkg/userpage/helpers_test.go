package userpage

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/agent"
	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/oidcauth"
	"github.com/agentid/agentid/pkg/oidcauth/oidctest"
	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/boltstore"
	"github.com/agentid/agentid/pkg/store/storetest"
	"github.com/sirupsen/logrus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

const clientID = "agentid-page"

var (
	orchestrator = spiffeid.RequireFromString("spiffe://example.org/agent/orchestrator")
	analyst      = spiffeid.RequireFromString("spiffe://example.org/agent/market-analysis")
	frontend     = spiffeid.RequireFromString("spiffe://example.org/app/chat-frontend")
)

// clock is a settable clock, safe for the server's goroutines.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// env is a page over a real bbolt store, a test OpenID provider that signs
// users in without a login form, on a real TLS listener.
type env struct {
	page   *Page
	srv    *httptest.Server
	store  *boltstore.Store
	faults *storetest.ErrorStore
	idp    *oidctest.Issuer
	clock  *clock
	log    *bytes.Buffer
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	st, err := boltstore.Open(filepath.Join(tb.TempDir(), "agentid.db"), boltstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	e := &env{store: st, faults: storetest.NewErrorStore(st), idp: oidctest.New(tb), clock: &clock{t: time.Now()}, log: &bytes.Buffer{}}
	users, err := oidcauth.New(oidcauth.Config{Issuers: []oidcauth.IssuerConfig{{URL: e.idp.URL(), Audiences: []string{clientID}}}})
	if err != nil {
		tb.Fatal(err)
	}
	for _, a := range []agent.Agent{
		{Name: "orchestrator", SPIFFEID: orchestrator, ScopeCeiling: delegation.MustParseScopes("campaigns:read", "crm:write"), SubAgents: []spiffeid.ID{analyst}},
		{Name: "market-analysis", SPIFFEID: analyst, ScopeCeiling: delegation.MustParseScopes("campaigns:read")},
	} {
		spec, err := agent.Marshal(a)
		if err != nil {
			tb.Fatal(err)
		}
		if err := st.PutAgent(context.Background(), store.Agent{Name: a.Name, SPIFFEID: a.SPIFFEID.String(), SyncState: "synced", Spec: spec}); err != nil {
			tb.Fatal(err)
		}
	}
	e.srv = httptest.NewUnstartedServer(nil)
	e.srv.StartTLS()
	tb.Cleanup(e.srv.Close)
	log := logrus.New()
	log.Out = e.log
	e.page, err = New(Config{
		URL: e.srv.URL, Issuer: e.idp.URL(), ClientID: clientID, ClientSecret: "s3cret",
		Store: e.faults, Users: users, AdminGroups: []string{"agentid-admins"},
		IdleTimeout: 30 * time.Minute, MaxAge: 2 * time.Hour, Clock: e.clock.Now, Log: log,
	})
	if err != nil {
		tb.Fatal(err)
	}
	e.srv.Config.Handler = e.page
	return e
}

// browser is a client with its own cookie jar that does not follow
// redirects by itself unless told to.
type browser struct {
	tb testing.TB
	c  *http.Client
	e  *env
}

func (e *env) browser(tb testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	c := *e.srv.Client() // the transport trusts the test server; the jar is this browser's
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{tb: tb, c: &c, e: e}
}

// signIn runs the whole sign-in as user, following every redirect, and
// returns the browser with its session.
func (e *env) signIn(tb testing.TB, sub string, groups ...string) *browser {
	tb.Helper()
	e.idp.SignIn(oidctest.Claims{Subject: sub, Email: sub + "@example.com", EmailVerified: true, Groups: groups})
	b := e.browser(tb)
	resp := b.follow("/delegations")
	if resp.code != http.StatusOK || resp.url != "/delegations" {
		tb.Fatalf("sign-in of %s ended at %s with %d: %s", sub, resp.url, resp.code, resp.body)
	}
	return b
}

type response struct {
	code int
	url  string // path and query of the last request
	body string
	hdr  http.Header
}

func (b *browser) do(req *http.Request) response {
	b.tb.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, url: req.URL.RequestURI(), body: string(body), hdr: resp.Header}
}

func (b *browser) abs(path string) string {
	if strings.HasPrefix(path, "http") {
		return path
	}
	return b.e.srv.URL + path
}

// get asks once, without following a redirect.
func (b *browser) get(path string) response {
	req, _ := http.NewRequest(http.MethodGet, b.abs(path), nil)
	return b.do(req)
}

// follow asks and follows redirects, across the IdP too.
func (b *browser) follow(path string) response {
	b.tb.Helper()
	next := b.abs(path)
	for range 10 {
		req, _ := http.NewRequest(http.MethodGet, next, nil)
		r := b.do(req)
		if r.code/100 != 3 {
			return r
		}
		loc, err := url.Parse(r.hdr.Get("Location"))
		if err != nil {
			b.tb.Fatal(err)
		}
		next = req.URL.ResolveReference(loc).String()
	}
	b.tb.Fatal("too many redirects")
	return response{}
}

// post sends a form with the Origin a browser sends for the page's own forms.
func (b *browser) post(path string, form url.Values) response {
	req, _ := http.NewRequest(http.MethodPost, b.abs(path), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.e.srv.URL)
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the session's CSRF token from a page.
func (b *browser) csrf() string {
	b.tb.Helper()
	r := b.get("/delegations")
	m := csrfRE.FindStringSubmatch(r.body)
	if m == nil {
		b.tb.Fatalf("no CSRF token in %s", r.body)
	}
	return m[1]
}

func user(tb testing.TB, e *env, sub string) delegation.User {
	u, err := delegation.NewUser(e.idp.URL(), sub, "")
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// delegate stores a root delegation of sub to the orchestrator and a
// sub-delegation of it to the analyst, with their audit events, as the
// API does.
func (e *env) delegate(tb testing.TB, sub string) (root, child *delegation.Delegation) {
	tb.Helper()
	now := e.clock.Now()
	intent, _ := delegation.ParseIntent("plan the spring campaign")
	root, err := delegation.NewRoot(delegation.RootParams{Agent: orchestrator, User: user(tb, e, sub),
		Scopes: delegation.MustParseScopes("campaigns:read", "crm:write"), MaxDepth: 2, Intent: intent,
		CreatedBy: frontend, CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if _, err := e.store.CreateDelegation(ctx, root, audit.Event{Time: now, Type: audit.TypeDelegationCreated, Actor: frontend.String(),
		Detail: map[string]string{"scopes": root.Scopes.String()}}); err != nil {
		tb.Fatal(err)
	}
	child, err = delegation.NewChild(root, delegation.ChildParams{Agent: analyst, Scopes: delegation.MustParseScopes("campaigns:read"),
		CreatedBy: orchestrator, CreatedAt: now, ExpiresAt: now.Add(30 * time.Minute)})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := e.store.CreateDelegation(ctx, child, audit.Event{Time: now, Type: audit.TypeSubDelegated, Actor: orchestrator.String()}); err != nil {
		tb.Fatal(err)
	}
	if err := e.store.AppendEvents(ctx, audit.Event{Time: now, Type: audit.TypeTokenIssued, Actor: "spiffe://example.org/spire/server",
		DelegationID: root.ID.String(), Agent: orchestrator.String(), Detail: map[string]string{"audience": "spiffe://example.org/svc/crm"}}); err != nil {
		tb.Fatal(err)
	}
	return root, child
}

func (e *env) state(tb testing.TB, id delegation.ID) delegation.State {
	tb.Helper()
	d, err := e.store.GetDelegation(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return d.State
}

func (e *env) head(tb testing.TB) audit.Anchor {
	tb.Helper()
	h, err := e.store.AuditHead(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func contains(tb testing.TB, r response, want ...string) {
	tb.Helper()
	for _, w := range want {
		if !strings.Contains(r.body, w) {
			tb.Errorf("%s: body lacks %q:\n%s", r.url, w, r.body)
		}
	}
}

func lacks(tb testing.TB, r response, unwanted ...string) {
	tb.Helper()
	for _, w := range unwanted {
		if strings.Contains(r.body, w) {
			tb.Errorf("%s: body holds %q", r.url, w)
		}
	}
}

func identity(tb testing.TB, e *env, sub string) oidcauth.Identity {
	return oidcauth.Identity{User: user(tb, e, sub)}
}
