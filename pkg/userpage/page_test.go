package userpage

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/oidcauth/oidctest"
	"github.com/agentid/agentid/pkg/store"
)

func TestSignInShowsOwnTrees(t *testing.T) {
	e := newEnv(t)
	root, child := e.delegate(t, "alice")
	bobRoot, _ := e.delegate(t, "bob")

	alice := e.signIn(t, "alice")
	r := alice.get("/delegations")
	contains(t, r, "alice@example.com", root.ID.String(), child.ID.String(), "orchestrator", "market-analysis",
		"plan the spring campaign", "campaigns:read crm:write", "sub-delegation", "1 delegation tree.")
	lacks(t, r, bobRoot.ID.String(), ">admin<")
	// The child is drawn inside its root's tree.
	if i, j := strings.Index(r.body, root.ID.String()), strings.Index(r.body, child.ID.String()); i < 0 || j < i ||
		!strings.Contains(r.body[i:j], `<ul class="children">`) {
		t.Errorf("sub-delegation not nested under its root")
	}
	// A delegation made after the first listing shows at once.
	later, _ := e.delegate(t, "alice")
	contains(t, alice.get("/delegations"), later.ID.String(), "2 delegation trees.")
	if !strings.Contains(e.log.String(), "User signed in to the page") {
		t.Errorf("sign-in not logged")
	}
	if strings.Contains(e.log.String(), "s3cret") {
		t.Errorf("client secret in the log")
	}
}

func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	for _, path := range []string{"/", "/delegations", "/signed-out", "/static/style.css", "/nope", "/callback"} {
		r := b.get(path)
		for k, want := range map[string]string{
			"Content-Security-Policy": contentSecurityPolicy, "X-Frame-Options": "DENY",
			"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
		} {
			if got := r.hdr.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", path, k, got, want)
			}
		}
	}
	if !strings.Contains(contentSecurityPolicy, "frame-ancestors 'none'") || strings.Contains(contentSecurityPolicy, "script-src") {
		t.Errorf("CSP %q must forbid framing and allow no script", contentSecurityPolicy)
	}
}

func TestNoSessionRedirectsToSignIn(t *testing.T) {
	e := newEnv(t)
	root, _ := e.delegate(t, "alice")
	b := e.browser(t)
	for _, path := range []string{"/", "/delegations?state=active", "/delegations/" + root.ID.String(), "/delegations/" + root.ID.String() + "/revoke", "/agents"} {
		r := b.get(path)
		if want := "/login?next=" + url.QueryEscape(path); r.code != http.StatusSeeOther || r.hdr.Get("Location") != want {
			t.Errorf("GET %s: %d to %q, want 303 to %q", path, r.code, r.hdr.Get("Location"), want)
		}
	}
	// After signing in the browser comes back to where it was going.
	e.idp.SignIn(oidctest.Claims{Subject: "alice"})
	r := b.follow("/delegations/" + root.ID.String())
	if r.code != http.StatusOK || r.url != "/delegations/"+root.ID.String() {
		t.Errorf("after sign-in: %d at %s", r.code, r.url)
	}
}

func TestLoginCookieAndRedirect(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	r := b.get("/login?next=//evil.example/x")
	if r.code != http.StatusFound {
		t.Fatalf("login: %d", r.code)
	}
	loc, _ := url.Parse(r.hdr.Get("Location"))
	q := loc.Query()
	if !strings.HasPrefix(r.hdr.Get("Location"), e.idp.URL()+"/auth?") || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || q.Get("state") == "" || q.Get("nonce") == "" || q.Get("client_id") != clientID ||
		q.Get("redirect_uri") != e.srv.URL+"/callback" || q.Get("scope") != "openid profile email" {
		t.Errorf("authorization request %s", r.hdr.Get("Location"))
	}
	c := r.hdr.Get("Set-Cookie")
	for _, attr := range []string{loginCookie + "=", "Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(c, attr) {
			t.Errorf("login cookie %q lacks %s", c, attr)
		}
	}
	// The open redirect in next is dropped: the sign-in lands on /.
	e.idp.SignIn(oidctest.Claims{Subject: "alice"})
	r = b.follow(r.hdr.Get("Location"))
	if r.url != "/delegations" {
		t.Errorf("next=//evil.example led to %s", r.url)
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	e := newEnv(t)
	e.idp.SignIn(oidctest.Claims{Subject: "alice"})
	b := e.browser(t)
	r := b.get("/login")
	r = b.get(r.hdr.Get("Location")) // the IdP
	r = b.get(r.hdr.Get("Location")) // the callback
	if r.code != http.StatusSeeOther {
		t.Fatalf("callback: %d %s", r.code, r.body)
	}
	var session string
	for _, c := range r.hdr.Values("Set-Cookie") {
		if strings.HasPrefix(c, sessionCookie+"=") {
			session = c
		}
	}
	for _, attr := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(session, attr) {
			t.Errorf("session cookie %q lacks %s", session, attr)
		}
	}
	if strings.Contains(session, "Domain=") || strings.Contains(session, "Max-Age") || strings.Contains(session, "Expires") {
		t.Errorf("session cookie %q must be a host-only browser-session cookie", session)
	}
}

// signInSteps runs the sign-in up to the IdP's redirect back, and returns
// the callback URL, so a test can change it before the page sees it.
func signInSteps(t *testing.T, e *env, b *browser) *url.URL {
	t.Helper()
	r := b.get("/login")
	r = b.get(r.hdr.Get("Location"))
	u, err := url.Parse(r.hdr.Get("Location"))
	if err != nil || u.Path != "/callback" {
		t.Fatalf("IdP answered %d %q", r.code, r.hdr.Get("Location"))
	}
	return u
}

func TestCallbackRefusals(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(*env)
		change func(t *testing.T, e *env, b *browser, cb *url.URL) *browser
		reason string
	}{
		{name: "state changed", reason: "state_mismatch", change: func(t *testing.T, e *env, b *browser, cb *url.URL) *browser {
			q := cb.Query()
			q.Set("state", "forged")
			cb.RawQuery = q.Encode()
			return b
		}},
		{name: "another browser", reason: "no_login_cookie", change: func(t *testing.T, e *env, b *browser, cb *url.URL) *browser {
			return e.browser(t) // the victim's browser, fed the attacker's callback
		}},
		{name: "login too old", reason: "unknown_or_stale_login", change: func(t *testing.T, e *env, b *browser, cb *url.URL) *browser {
			e.clock.Add(LoginTimeout + time.Second)
			return b
		}},
		{name: "code swapped", reason: "code_exchange", change: func(t *testing.T, e *env, b *browser, cb *url.URL) *browser {
			q := cb.Query()
			q.Set("code", "not-a-code")
			cb.RawQuery = q.Encode()
			return b
		}},
		{name: "no code", reason: "no_code", change: func(t *testing.T, e *env, b *browser, cb *url.URL) *browser {
			q := cb.Query()
			q.Del("code")
			cb.RawQuery = q.Encode()
			return b
		}},
		{name: "idp error", reason: "idp_error", change: func(t *testing.T, e *env, b *browser, cb *url.URL) *browser {
			q := cb.Query()
			q.Del("code")
			q.Set("error", "access_denied")
			cb.RawQuery = q.Encode()
			return b
		}},
		{name: "nonce replaced", reason: "nonce_mismatch", setup: func(e *env) {
			e.idp.Tamper(func(c *oidctest.Claims) { c.Nonce = "attacker" })
		}},
		{name: "nonce missing", reason: "nonce_mismatch", setup: func(e *env) {
			e.idp.Tamper(func(c *oidctest.Claims) { c.Nonce = "" })
		}},
		{name: "token for another client", reason: "id_token_wrong_audience", setup: func(e *env) {
			e.idp.Tamper(func(c *oidctest.Claims) { c.Audience = "other-client" })
		}},
		{name: "expired token", reason: "id_token_expired", setup: func(e *env) {
			e.idp.Tamper(func(c *oidctest.Claims) {
				c.IssuedAt, c.Expiry = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.idp.SignIn(oidctest.Claims{Subject: "alice"})
			if tt.setup != nil {
				tt.setup(e)
			}
			b := e.browser(t)
			cb := signInSteps(t, e, b)
			if tt.change != nil {
				b = tt.change(t, e, b, cb)
			}
			r := b.get(cb.String())
			if r.code != http.StatusBadRequest {
				t.Fatalf("callback: %d, want 400", r.code)
			}
			contains(t, r, "The sign-in could not be completed.")
			for _, c := range r.hdr.Values("Set-Cookie") {
				if strings.HasPrefix(c, sessionCookie+"=") {
					t.Errorf("refused callback set a session: %s", c)
				}
			}
			if !strings.Contains(e.log.String(), `reason=`+tt.reason) {
				t.Errorf("log lacks reason=%s:\n%s", tt.reason, e.log.String())
			}
			if r := b.get("/delegations"); r.code != http.StatusSeeOther {
				t.Errorf("signed in after a refused callback: %d", r.code)
			}
		})
	}
}

func TestCallbackIsSingleUse(t *testing.T) {
	e := newEnv(t)
	e.idp.SignIn(oidctest.Claims{Subject: "alice"})
	b := e.browser(t)
	cb := signInSteps(t, e, b)
	jar := b.c.Jar.Cookies(cb)
	if r := b.get(cb.String()); r.code != http.StatusSeeOther {
		t.Fatalf("first callback: %d", r.code)
	}
	// Replayed with the same login cookie: that sign-in is used up.
	replay := e.browser(t)
	replay.c.Jar.SetCookies(cb, jar)
	if r := replay.get(cb.String()); r.code != http.StatusBadRequest || !strings.Contains(e.log.String(), "reason=unknown_or_stale_login") {
		t.Errorf("replayed callback: %d", r.code)
	}
}

func TestSessionTimeouts(t *testing.T) {
	e := newEnv(t)
	b := e.signIn(t, "alice")
	e.clock.Add(29 * time.Minute)
	if r := b.get("/delegations"); r.code != http.StatusOK {
		t.Fatalf("after 29 min idle: %d", r.code)
	}
	e.clock.Add(30 * time.Minute)
	if r := b.get("/delegations"); r.code != http.StatusSeeOther {
		t.Errorf("after 30 min idle: %d, want 303 to sign in", r.code)
	}

	// Used every 20 minutes, it still ends two hours after sign-in.
	b = e.signIn(t, "alice")
	for range 5 {
		e.clock.Add(20 * time.Minute)
		if r := b.get("/delegations"); r.code != http.StatusOK {
			t.Fatalf("active session ended early: %d", r.code)
		}
	}
	e.clock.Add(20 * time.Minute)
	if r := b.get("/delegations"); r.code != http.StatusSeeOther {
		t.Errorf("after max age: %d, want 303", r.code)
	}
}

func TestRevokeCascade(t *testing.T) {
	e := newEnv(t)
	root, child := e.delegate(t, "alice")
	alice := e.signIn(t, "alice")

	r := alice.get("/delegations/" + root.ID.String() + "/revoke")
	contains(t, r, "This revokes 2 delegations:", child.ID.String(), `name="csrf"`, "Revoke 2 delegations")
	csrf := csrfRE.FindStringSubmatch(r.body)[1]

	r = alice.post("/delegations/"+root.ID.String()+"/revoke", url.Values{"csrf": {csrf}, "reason": {"done with it"}})
	if r.code != http.StatusSeeOther || r.hdr.Get("Location") != "/delegations/"+root.ID.String() {
		t.Fatalf("revoke: %d %q %s", r.code, r.hdr.Get("Location"), r.body)
	}
	for _, id := range []delegation.ID{root.ID, child.ID} {
		if s := e.state(t, id); s != delegation.StateRevoked {
			t.Errorf("%s is %s after revoke", id, s)
		}
	}
	evs, _, err := e.store.ListEvents(context.Background(), store.EventFilter{DelegationID: root.ID.String(), Type: audit.TypeRevoked}, store.Page{})
	if err != nil || len(evs) != 1 {
		t.Fatalf("revoke events: %v %v", evs, err)
	}
	if ev := evs[0]; ev.Actor != "user:"+user(t, e, "alice").String() || ev.Detail["reason"] != "done with it" ||
		ev.Detail["via"] != "user_page" || ev.Detail[store.DetailCascadeCount] != "1" {
		t.Errorf("revoke event %+v", ev)
	}

	r = alice.get("/delegations/" + root.ID.String())
	contains(t, r, `<span class="badge revoked">revoked</span>`, "Revoked with "+root.ID.String(), "hash chain is intact")
	lacks(t, r, "Revoke…")

	// Again: nothing left to revoke.
	r = alice.post("/delegations/"+root.ID.String()+"/revoke", url.Values{"csrf": {csrf}})
	if r.code != http.StatusConflict {
		t.Errorf("second revoke: %d, want 409", r.code)
	}
}

func TestRevokeSubDelegationOnly(t *testing.T) {
	e := newEnv(t)
	root, child := e.delegate(t, "alice")
	alice := e.signIn(t, "alice")
	r := alice.post("/delegations/"+child.ID.String()+"/revoke", url.Values{"csrf": {alice.csrf()}})
	if r.code != http.StatusSeeOther {
		t.Fatalf("revoke child: %d", r.code)
	}
	if e.state(t, root.ID) != delegation.StateActive || e.state(t, child.ID) != delegation.StateRevoked {
		t.Errorf("root %s, child %s", e.state(t, root.ID), e.state(t, child.ID))
	}
}

func TestRefusedPostsChangeNothing(t *testing.T) {
	e := newEnv(t)
	root, _ := e.delegate(t, "alice")
	alice := e.signIn(t, "alice")
	bob := e.signIn(t, "bob")
	good := alice.csrf()
	path := "/delegations/" + root.ID.String() + "/revoke"
	stale := e.signIn(t, "alice")
	staleCSRF := stale.csrf()
	stale.post("/logout", url.Values{"csrf": {staleCSRF}})

	tests := []struct {
		name string
		send func() response
		code int
		text string
	}{
		{"no csrf token", func() response { return alice.post(path, url.Values{}) }, 403, "not one this page gave you"},
		{"wrong csrf token", func() response { return alice.post(path, url.Values{"csrf": {"x" + good}}) }, 403, "not one this page gave you"},
		{"another session's token", func() response { return alice.post(path, url.Values{"csrf": {bob.csrf()}}) }, 403, "not one this page gave you"},
		{"cross-site origin", func() response {
			req, _ := http.NewRequest(http.MethodPost, alice.abs(path), strings.NewReader(url.Values{"csrf": {good}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", "https://evil.example")
			return alice.do(req)
		}, 403, "sent from another site"},
		{"no session", func() response { return e.browser(t).post(path, url.Values{"csrf": {good}}) }, 403, "Your session has ended"},
		{"signed-out session", func() response { return stale.post(path, url.Values{"csrf": {staleCSRF}}) }, 403, "Your session has ended"},
		{"another user's delegation", func() response { return bob.post(path, url.Values{"csrf": {bob.csrf()}}) }, 404, "no such delegation"},
		{"tampered id", func() response {
			return alice.post("/delegations/"+root.ID.String()[:len(root.ID.String())-1]+"A/revoke", url.Values{"csrf": {good}})
		}, 404, "no such delegation"},
		{"oversized form", func() response {
			return alice.post(path, url.Values{"csrf": {good}, "pad": {strings.Repeat("x", maxFormSize)}})
		}, 400, "could not be read"},
		{"reason with control characters", func() response {
			return alice.post(path, url.Values{"csrf": {good}, "reason": {"a\x00b"}})
		}, 400, "reason: must be printable text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head := e.head(t)
			r := tt.send()
			if r.code != tt.code {
				t.Errorf("%d, want %d: %s", r.code, tt.code, r.body)
			}
			contains(t, r, tt.text)
			if e.state(t, root.ID) != delegation.StateActive {
				t.Fatalf("delegation changed")
			}
			if h := e.head(t); h != head {
				t.Errorf("audit log grew from %d to %d", head.Sequence, h.Sequence)
			}
		})
	}
}

func TestOtherUsersDelegationIsNotFound(t *testing.T) {
	e := newEnv(t)
	root, child := e.delegate(t, "alice")
	bob := e.signIn(t, "bob")
	for _, path := range []string{
		"/delegations/" + root.ID.String(), "/delegations/" + child.ID.String(), "/delegations/" + root.ID.String() + "/revoke",
		"/delegations/dlg_00000000000000000000000000", "/delegations/not-an-id", "/delegations/%2e%2e",
	} {
		r := bob.get(path)
		if r.code != http.StatusNotFound {
			t.Errorf("bob GET %s: %d, want 404", path, r.code)
		}
		lacks(t, r, root.ID.String(), "alice", "orchestrator")
	}
	r := bob.get("/delegations")
	lacks(t, r, root.ID.String())
	contains(t, r, "No delegations.")
}

func TestAdminSeesEveryone(t *testing.T) {
	e := newEnv(t)
	aliceRoot, _ := e.delegate(t, "alice")
	bobRoot, _ := e.delegate(t, "bob")
	admin := e.signIn(t, "carol", "agentid-admins")
	r := admin.get("/delegations")
	contains(t, r, aliceRoot.ID.String(), bobRoot.ID.String(), ">admin<", "2 delegation trees of every user.",
		user(t, e, "alice").String(), user(t, e, "bob").String())
	r = admin.post("/delegations/"+bobRoot.ID.String()+"/revoke", url.Values{"csrf": {admin.csrf()}})
	if r.code != http.StatusSeeOther || e.state(t, bobRoot.ID) != delegation.StateRevoked {
		t.Errorf("admin revoke: %d", r.code)
	}
	// A group the page does not name makes nobody an admin.
	other := e.signIn(t, "dave", "marketing")
	lacks(t, other.get("/delegations"), aliceRoot.ID.String())
}

func TestAdminByUserList(t *testing.T) {
	e := newEnv(t)
	e.page.admins = set([]string{user(t, e, "erin").String()})
	root, _ := e.delegate(t, "alice")
	contains(t, e.signIn(t, "erin").get("/delegations"), root.ID.String())
}

func TestListingFilters(t *testing.T) {
	e := newEnv(t)
	r1, c1 := e.delegate(t, "alice")
	r2, _ := e.delegate(t, "alice")
	alice := e.signIn(t, "alice")
	if r := alice.post("/delegations/"+r2.ID.String()+"/revoke", url.Values{"csrf": {alice.csrf()}}); r.code != http.StatusSeeOther {
		t.Fatal(r.code)
	}
	r := alice.get("/delegations?state=revoked")
	contains(t, r, r2.ID.String(), "1 delegation tree.")
	lacks(t, r, r1.ID.String())
	r = alice.get("/delegations?state=active&agent=" + url.QueryEscape(analyst.String()))
	contains(t, r, r1.ID.String(), c1.ID.String())
	lacks(t, r, r2.ID.String())
	e.clock.Add(61 * time.Minute)
	alice = e.signIn(t, "alice")
	r = alice.get("/delegations?state=expired")
	contains(t, r, r1.ID.String(), `<span class="badge expired">expired</span>`)
	lacks(t, r, r2.ID.String())

	for q, want := range map[string]string{
		"state=pending": "state: must be active, revoked or expired", "state=Active": "state: must be",
		"agent=orchestrator": "agent: not a SPIFFE ID", "page=0": "page: must be a positive number", "page=x": "page: must be",
	} {
		r := alice.get("/delegations?" + q)
		if r.code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, r.code)
		}
		contains(t, r, want)
	}
}

func TestListingPages(t *testing.T) {
	e := newEnv(t)
	var first *delegation.Delegation
	for i := range TreesPerPage + 3 {
		d, _ := e.delegate(t, "alice")
		if i == 0 {
			first = d
		}
	}
	alice := e.signIn(t, "alice")
	r := alice.get("/delegations")
	contains(t, r, "Page 1 of 2", `href="/delegations?page=2"`)
	lacks(t, r, first.ID.String()) // oldest last
	r = alice.get("/delegations?page=2")
	contains(t, r, "Page 2 of 2", first.ID.String(), `href="/delegations?page=1"`)
	if got := strings.Count(r.body, `class="node state-active"`); got != 3*2 {
		t.Errorf("page 2 shows %d nodes, want 6", got)
	}
	// A page past the end shows the last.
	contains(t, alice.get("/delegations?page=9"), "Page 2 of 2")
}

func TestStory(t *testing.T) {
	e := newEnv(t)
	root, child := e.delegate(t, "alice")
	alice := e.signIn(t, "alice")
	r := alice.get("/delegations/" + root.ID.String())
	contains(t, r, "Delegated to orchestrator", "Sub-delegated to market-analysis", "Token issued to orchestrator",
		"audience: spiffe://example.org/svc/crm", "Tokens issued under it: 1", child.ID.String(),
		"hash chain is intact through event 3", "Revoke…")
	if i, j := strings.Index(r.body, "Delegated to"), strings.Index(r.body, "Token issued"); i < 0 || j < i {
		t.Errorf("story not in order")
	}
	r = alice.get("/delegations/" + child.ID.String())
	contains(t, r, "Under: <a href=\"/delegations/"+root.ID.String()+"\">orchestrator</a>", "Sub-delegated to market-analysis", "Tokens issued under it: 0")
	lacks(t, r, "Token issued to")
}

func TestAgentsPage(t *testing.T) {
	e := newEnv(t)
	r := e.signIn(t, "alice").get("/agents")
	contains(t, r, "orchestrator", analyst.String(), "campaigns:read crm:write", "synced", "nobody")
}

func TestSignOut(t *testing.T) {
	e := newEnv(t)
	alice := e.signIn(t, "alice")
	if r := alice.post("/logout", url.Values{}); r.code != http.StatusForbidden {
		t.Errorf("logout without csrf: %d", r.code)
	}
	if r := alice.get("/delegations"); r.code != http.StatusOK {
		t.Fatalf("signed out by a forged logout: %d", r.code)
	}
	r := alice.post("/logout", url.Values{"csrf": {alice.csrf()}})
	if r.code != http.StatusSeeOther || r.hdr.Get("Location") != "/signed-out" || !strings.Contains(r.hdr.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("logout: %d %q %q", r.code, r.hdr.Get("Location"), r.hdr.Get("Set-Cookie"))
	}
	if r := alice.get("/delegations"); r.code != http.StatusSeeOther {
		t.Errorf("after sign-out: %d, want 303", r.code)
	}
}

func TestStoreFailure(t *testing.T) {
	e := newEnv(t)
	root, _ := e.delegate(t, "alice")
	alice := e.signIn(t, "alice")
	csrf := alice.csrf()
	for _, path := range []string{"/delegations", "/delegations/" + root.ID.String(), "/agents"} {
		e.faults.SetNextError(errors.New("disk on fire"))
		r := alice.get(path)
		if r.code != http.StatusServiceUnavailable {
			t.Errorf("%s: %d, want 503", path, r.code)
		}
		lacks(t, r, "disk on fire")
	}
	head := e.head(t)
	e.faults.AppendNextError(nil, errors.New("disk on fire")) // the read works, the revoke fails
	r := alice.post("/delegations/"+root.ID.String()+"/revoke", url.Values{"csrf": {csrf}})
	if r.code != http.StatusServiceUnavailable || e.state(t, root.ID) != delegation.StateActive || e.head(t) != head {
		t.Errorf("failed revoke: %d, state %s", r.code, e.state(t, root.ID))
	}
	if !strings.Contains(e.log.String(), "disk on fire") {
		t.Errorf("store error not logged")
	}
}

func TestIdPDown(t *testing.T) {
	e := newEnv(t)
	e.page.cfg.Issuer = "http://127.0.0.1:1"
	r := e.browser(t).get("/login")
	if r.code != http.StatusServiceUnavailable {
		t.Errorf("login with the IdP down: %d", r.code)
	}
	contains(t, r, "cannot be reached")
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/delegations?state=active": "/delegations?state=active", "": "/", "//evil.example": "/", "/\\evil.example": "/",
		"https://evil.example/": "/", "delegations": "/", "/a\r\nSet-Cookie: x": "/", "/%2F%2Fevil": "/%2F%2Fevil",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	e := newEnv(t)
	base := e.page.cfg
	for _, tt := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.URL = "" }, "URL is required"},
		{func(c *Config) { c.URL = "http://page.example" }, `URL "http://page.example" must be an https URL without a path`},
		{func(c *Config) { c.URL = "https://page.example/ui" }, "must be an https URL without a path"},
		{func(c *Config) { c.Issuer = "" }, "issuer is required"},
		{func(c *Config) { c.ClientID = "" }, "client ID is required"},
		{func(c *Config) { c.Store = nil }, "store and user authenticator are required"},
		{func(c *Config) { c.IdleTimeout, c.MaxAge = 2*time.Hour, time.Hour }, "idle timeout 2h0m0s is longer than max age 1h0m0s"},
		{func(c *Config) { c.MaxSessions = -1 }, "must not be negative"},
	} {
		c := base
		tt.change(&c)
		_, err := New(c)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "userpage: ") {
			t.Errorf("got %v, want %q", err, tt.want)
		}
	}
}

func TestSessionsBounded(t *testing.T) {
	now := time.Now()
	s := newSessions(time.Minute, time.Hour, 2)
	for range 2 {
		if _, ok := s.startLogin(&login{started: now}, now); !ok {
			t.Fatal("login refused below the bound")
		}
	}
	if _, ok := s.startLogin(&login{started: now}, now); ok {
		t.Error("third login accepted over the bound")
	}
	later := now.Add(LoginTimeout + time.Second)
	if _, ok := s.startLogin(&login{started: later}, later); !ok {
		t.Error("expired logins not swept")
	}
	for range 2 {
		if _, ok := s.create(&session{signedIn: now, lastSeen: now}); !ok {
			t.Fatal("session refused below the bound")
		}
	}
	if _, ok := s.create(&session{signedIn: now, lastSeen: now}); ok {
		t.Error("third session accepted over the bound")
	}
	later = now.Add(2 * time.Minute)
	if _, ok := s.create(&session{signedIn: later, lastSeen: later}); !ok {
		t.Error("idle sessions not swept")
	}
}
