package sidecar_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/oidcauth/oidctest"
	"github.com/agentid/agentid/pkg/server/servertest"
	"github.com/agentid/agentid/pkg/sidecar"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
)

func TestIdentityAndHealth(t *testing.T) {
	f := newFixture(t)
	r := f.do(t, "GET", f.api+"/v1/identity", nil)
	var id sidecar.IdentityResponse
	r.decode(t, &id)
	if r.status != 200 || id.SPIFFEID != servertest.Orchestrator.String() || id.ExpiresAt.IsZero() {
		t.Fatalf("identity: %d %s", r.status, r.body)
	}
	if r := f.do(t, "GET", f.api+"/healthz", nil); r.status != 200 || string(r.body) != "{\"status\":\"ok\"}\n" {
		t.Fatalf("healthz: %d %s", r.status, r.body)
	}
}

func TestDelegationLifecycle(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)

	r := f.do(t, "GET", f.api+"/v1/token?audience="+servertest.Verifier.String()+"&delegation="+id, nil)
	var tok sidecar.TokenResponse
	r.decode(t, &tok)
	if r.status != 200 || tok.Delegation != id || tok.Audience != servertest.Verifier.String() {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	svid, err := jwtsvid.ParseAndValidate(tok.Token, f.auth.JWTBundle(), []string{servertest.Verifier.String()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := claims.Decode(svid.Claims, servertest.Orchestrator)
	if err != nil || c.ID.String() != id || c.User.Subject() != "alice" || !svid.Expiry.Equal(tok.ExpiresAt) {
		t.Fatalf("claims %+v, %v", c, err)
	}

	r = f.do(t, "POST", f.api+"/v1/delegations/"+id+"/sub", map[string]any{
		"agent_id": servertest.Analyst.String(), "scopes": []string{"campaigns:read"}, "ttl": "10m", "intent": "summarise",
	})
	var sub struct {
		Delegation struct {
			ID     string   `json:"id"`
			Parent string   `json:"parent"`
			Chain  []string `json:"chain"`
			Scopes []string `json:"scopes"`
		} `json:"delegation"`
	}
	r.decode(t, &sub)
	if r.status != 201 || sub.Delegation.Parent != id || len(sub.Delegation.Chain) != 2 || sub.Delegation.Scopes[0] != "campaigns:read" {
		t.Fatalf("sub: %d %s", r.status, r.body)
	}

	r = f.do(t, "DELETE", f.api+"/v1/delegations/"+id+"?reason=done", nil)
	var rev struct {
		RevokedIDs []string `json:"revoked_ids"`
		Delegation struct {
			State        string `json:"state"`
			RevokeReason string `json:"revoke_reason"`
		} `json:"delegation"`
	}
	r.decode(t, &rev)
	if r.status != 200 || len(rev.RevokedIDs) != 2 || rev.RevokedIDs[0] != id || rev.Delegation.State != "revoked" || rev.Delegation.RevokeReason != "done" {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	// The cached token is dropped with the revocation: SPIRE is asked again and refuses.
	r = f.do(t, "GET", f.api+"/v1/token?audience="+servertest.Verifier.String()+"&delegation="+id, nil)
	if e := r.errorBody(t); r.status != 403 || e.Error != "delegation_denied" ||
		e.Message != "agentclient: fetch token under "+id+": agentclient: delegation denied: composer: delegation is revoked: "+id {
		t.Fatalf("token after revoke: %d %s", r.status, r.body)
	}
}

func TestAPIRefuses(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	unknown := "dlg_01jd0000000000000000000000"
	aud := "audience=" + servertest.Verifier.String()
	// A real, signed user token the server refuses (wrong audience): its
	// signature must appear in no answer and no log line.
	refused := f.env.IDP.Token(t, oidctest.Claims{Subject: "mallory", Audience: "https://elsewhere.example",
		IssuedAt: time.Now(), Expiry: time.Now().Add(time.Hour)})
	signature := refused[strings.LastIndex(refused, ".")+1:]
	create := func(extra string) string {
		return `{"user_token":"x","scopes":["campaigns:read"],"ttl":"5m"` + extra + `}`
	}
	tests := []struct {
		name, method, path string
		body               any
		headers            []string
		status             int
		code, message      string
	}{
		{"token without audience", "GET", "/v1/token?delegation=" + id, nil, nil, 400, "invalid_request",
			"sidecar: exactly one non-empty value needed for: audience"},
		{"token without anything", "GET", "/v1/token", nil, nil, 400, "invalid_request",
			"sidecar: exactly one non-empty value needed for: audience, delegation"},
		{"token with two audiences", "GET", "/v1/token?" + aud + "&audience=b&delegation=" + id, nil, nil, 400, "invalid_request",
			"sidecar: exactly one non-empty value needed for: audience"},
		{"token malformed delegation", "GET", "/v1/token?" + aud + "&delegation=dlg_nope", nil, nil, 400, "invalid_request",
			"sidecar: delegation: delegation: invalid delegation id: length 8, want 30"},
		{"token unknown delegation", "GET", "/v1/token?" + aud + "&delegation=" + unknown, nil, nil, 403, "delegation_denied",
			"agentclient: fetch token under " + unknown + ": agentclient: delegation denied: composer: unknown delegation: " + unknown},
		{"token audience too long", "GET", "/v1/token?audience=" + strings.Repeat("a", 2049) + "&delegation=" + id, nil, nil, 400, "invalid_request",
			"sidecar: audience: must be 1..2048 bytes"},
		// Malformed audiences are the caller's error (400), not SPIRE's
		// (503, which clients retry): a marker audience reached SPIRE,
		// whose composer refused two markers.
		{"token marker audience", "GET", "/v1/token?audience=urn:agentid:delegation:" + unknown + "&delegation=" + id, nil, nil, 400, "invalid_request",
			"sidecar: audience: is a delegation marker (urn:agentid:delegation:…); name the delegation by its id instead"},
		{"token audience with a space", "GET", "/v1/token?audience=crm%20x&delegation=" + id, nil, nil, 400, "invalid_request",
			"sidecar: audience: has a space or control character at byte 3"},
		{"token audience with a control character", "GET", "/v1/token?audience=crm%07&delegation=" + id, nil, nil, 400, "invalid_request",
			"sidecar: audience: has a space or control character at byte 3"},
		{"token audience not UTF-8", "GET", "/v1/token?audience=crm%FF&delegation=" + id, nil, nil, 400, "invalid_request",
			"sidecar: audience: is not valid UTF-8"},
		{"token audience neither name nor URI", "GET", "/v1/token?audience=127.0.0.1:8443&delegation=" + id, nil, nil, 400, "invalid_request",
			"sidecar: audience: has a ':' but is not an absolute URI, like spiffe://example.org/svc/crm or https://crm.example.org"},
		{"create missing fields", "POST", "/v1/delegations", `{}`, nil, 400, "invalid_request",
			"sidecar: missing fields: user_token, scopes, ttl"},
		{"create unknown field", "POST", "/v1/delegations", create(`,"admin":true`), nil, 400, "invalid_request",
			`sidecar: malformed JSON body: unknown field "admin"`},
		{"create trailing data", "POST", "/v1/delegations", create(``) + `{}`, nil, 400, "invalid_request",
			"sidecar: malformed JSON body: data after the object"},
		{"create not JSON", "POST", "/v1/delegations", `user_token=x`, nil, 400, "invalid_request",
			"sidecar: malformed JSON body: invalid character 'u' looking for beginning of value"},
		{"create oversized", "POST", "/v1/delegations", create(`,"intent":"` + strings.Repeat("a", 70<<10) + `"`), nil, 413, "request_too_large",
			"sidecar: body larger than 65536 bytes"},
		{"create bad ttl", "POST", "/v1/delegations", `{"user_token":"x","scopes":["a"],"ttl":"forever"}`, nil, 400, "invalid_request",
			`sidecar: ttl: "forever" is not a positive duration like "30m"`},
		{"create negative ttl", "POST", "/v1/delegations", `{"user_token":"x","scopes":["a"],"ttl":"-5m"}`, nil, 400, "invalid_request",
			`sidecar: ttl: "-5m" is not a positive duration like "30m"`},
		{"create bad agent", "POST", "/v1/delegations", create(`,"agent_id":"https://x"`), nil, 400, "invalid_request",
			"sidecar: agent_id: scheme is missing or invalid"},
		{"create bad user token", "POST", "/v1/delegations", `{"user_token":"` + refused + `","scopes":["campaigns:read"],"ttl":"5m"}`, nil, 401, "unauthenticated", ""},
		{"sub malformed parent", "POST", "/v1/delegations/nope/sub", `{"agent_id":"spiffe://example.org/agent/writer","scopes":["a"],"ttl":"1m"}`, nil, 400, "invalid_request",
			"sidecar: delegation id: delegation: invalid delegation id: length 4, want 30"},
		{"sub missing agent", "POST", "/v1/delegations/" + id + "/sub", `{"scopes":["a"],"ttl":"1m"}`, nil, 400, "invalid_request",
			"sidecar: missing fields: agent_id"},
		{"sub to a disallowed agent", "POST", "/v1/delegations/" + id + "/sub",
			`{"agent_id":"spiffe://example.org/agent/writer","scopes":["campaigns:read"],"ttl":"1m"}`, nil, 403, "permission_denied", ""},
		{"revoke unknown", "DELETE", "/v1/delegations/" + unknown, nil, nil, 404, "not_found", ""},
		{"get unknown", "GET", "/v1/delegations/" + unknown, nil, nil, 404, "not_found", "agentid-server: id: no such delegation"},
		{"get malformed id", "GET", "/v1/delegations/nope", nil, nil, 400, "invalid_request",
			"sidecar: delegation id: delegation: invalid delegation id: length 4, want 30"},
		{"list bad state", "GET", "/v1/delegations?state=alive", nil, nil, 400, "invalid_request",
			"sidecar: state: want active, revoked or expired"},
		{"list bad page size", "GET", "/v1/delegations?page_size=1001", nil, nil, 400, "invalid_request",
			"sidecar: page_size: want 0..1000"},
		{"list repeated parameter", "GET", "/v1/delegations?state=active&state=revoked", nil, nil, 400, "invalid_request",
			"sidecar: state: given more than once"},
		{"list unknown parameter", "GET", "/v1/delegations?agent_id=spiffe://example.org/agent/writer", nil, nil, 400, "invalid_request",
			`sidecar: unknown parameter "agent_id"`},
		{"list bad page token", "GET", "/v1/delegations?page_token=nope", nil, nil, 400, "invalid_request",
			"agentid-server: store: invalid argument: malformed page token"},
		{"wrong content type", "POST", "/v1/delegations", nil, []string{"Content-Type: text/plain"}, 415, "unsupported_media_type",
			"sidecar: Content-Type must be application/json"},
		{"browser origin", "GET", "/v1/token?" + aud + "&delegation=" + id, nil, []string{"Origin: https://evil.example"}, 403, "browser_request_refused",
			"sidecar: requests with an Origin header are refused"},
		{"browser cross-site", "GET", "/v1/identity", nil, []string{"Sec-Fetch-Site: cross-site"}, 403, "browser_request_refused",
			`sidecar: requests with Sec-Fetch-Site "cross-site" are refused: a browser sent it for a web page`},
		{"browser same-site", "GET", "/v1/identity", nil, []string{"Sec-Fetch-Site: same-site"}, 403, "browser_request_refused",
			`sidecar: requests with Sec-Fetch-Site "same-site" are refused: a browser sent it for a web page`},
		{"rebound host", "GET", "/v1/identity", nil, []string{"Host: evil.example:15080"}, 403, "browser_request_refused",
			"sidecar: Host must be a loopback address or localhost"},
		{"unknown path", "GET", "/v1/nothing", nil, nil, 404, "not_found", "sidecar: no such endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fetches := f.wl.JWTFetches()
			r := f.do(t, tt.method, f.api+tt.path, tt.body, tt.headers...)
			e := r.errorBody(t)
			if tt.code == "invalid_request" && f.wl.JWTFetches() != fetches {
				t.Fatal("a refused token request reached the Workload API")
			}
			if r.status != tt.status || e.Error != tt.code || (tt.message != "" && e.Message != tt.message) {
				t.Fatalf("got %d %s\nwant %d %s %s", r.status, r.body, tt.status, tt.code, tt.message)
			}
			if strings.Contains(string(r.body), signature) || strings.Contains(f.logs.String(), signature) {
				t.Fatalf("a user token was echoed: body %s\nlogs %s", r.body, f.logs.String())
			}
		})
	}
}

// The agent reads back its delegations: one by id, and its own page by
// page and by state, with the state as of now.
func TestDelegationReadBack(t *testing.T) {
	f := newFixture(t)
	a, b := f.delegate(t), f.delegate(t)
	type view struct {
		ID     string   `json:"id"`
		Agent  string   `json:"agent"`
		Scopes []string `json:"scopes"`
		State  string   `json:"state"`
		Intent string   `json:"intent"`
	}
	var got struct{ Delegation view }
	r := f.do(t, "GET", f.api+"/v1/delegations/"+a, nil)
	if r.status != 200 {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	r.decode(t, &got)
	if got.Delegation.ID != a || got.Delegation.Agent != servertest.Orchestrator.String() || got.Delegation.State != "active" ||
		strings.Join(got.Delegation.Scopes, " ") != "campaigns:read compliance:check" || got.Delegation.Intent != "check Q3" {
		t.Fatalf("get: %s", r.body)
	}
	list := func(query string) ([]string, string) {
		t.Helper()
		r := f.do(t, "GET", f.api+"/v1/delegations"+query, nil)
		if r.status != 200 {
			t.Fatalf("list %s: %d %s", query, r.status, r.body)
		}
		var out struct {
			Delegations   []view `json:"delegations"`
			NextPageToken string `json:"next_page_token"`
		}
		r.decode(t, &out)
		var ids []string
		for _, d := range out.Delegations {
			ids = append(ids, d.ID+":"+d.State)
		}
		return ids, out.NextPageToken
	}
	first, next := list("?page_size=1")
	second, last := list("?page_size=1&page_token=" + next)
	if !slices.Equal(first, []string{a + ":active"}) || !slices.Equal(second, []string{b + ":active"}) || next == "" || last != "" {
		t.Fatalf("pages %v %v (next %q, last %q)", first, second, next, last)
	}
	if r := f.do(t, "DELETE", f.api+"/v1/delegations/"+a, nil); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	for query, want := range map[string][]string{
		"?state=active":  {b + ":active"},
		"?state=revoked": {a + ":revoked"},
		"?state=expired": nil,
		"":               {a + ":revoked", b + ":active"},
	} {
		if got, _ := list(query); !slices.Equal(got, want) {
			t.Errorf("list %q = %v, want %v", query, got, want)
		}
	}

	// Past b's expiry (30 minutes) by the sidecar's clock, b reads as
	// expired: the API decodes an expired delegation as stored (active).
	f.ahead.Store(int64(31 * time.Minute))
	r = f.do(t, "GET", f.api+"/v1/delegations/"+b, nil)
	r.decode(t, &got)
	if r.status != 200 || got.Delegation.State != "expired" {
		t.Fatalf("get past expiry: %d %s", r.status, r.body)
	}
	if all, _ := list(""); !slices.Equal(all, []string{a + ":revoked", b + ":expired"}) {
		t.Fatalf("list past expiry = %v", all)
	}
}

func TestTokenWhileSPIREIsDown(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	f.auth.SetServerDown(true)
	r := f.do(t, "GET", f.api+"/v1/token?audience=x&delegation="+id, nil)
	if e := r.errorBody(t); r.status != http.StatusServiceUnavailable || e.Error != "spire_unavailable" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

func TestServerNotConfigured(t *testing.T) {
	f := newFixture(t)
	config, err := sidecar.ParseConfig([]byte("listen: 127.0.0.1:0\nworkload_api: " + f.wl.Addr + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sidecar.Start(servertest.Ctx(t), config)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	r := f.do(t, "POST", "http://"+sc.APIAddr().String()+"/v1/delegations", `{}`)
	if e := r.errorBody(t); r.status != http.StatusNotImplemented || e.Error != "not_configured" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if sc.ProxyAddr() != nil {
		t.Fatal("a proxy listens without routes")
	}
}

// A chunked body (no Content-Length) is cut at the limit while it is read.
func TestOversizedChunkedBody(t *testing.T) {
	f := newFixture(t)
	body := io.MultiReader(strings.NewReader(`{"user_token":"`), strings.NewReader(strings.Repeat("a", 70<<10)), strings.NewReader(`"}`))
	req, _ := http.NewRequest("POST", f.api+"/v1/delegations", body)
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if req.ContentLength != 0 || resp.StatusCode != http.StatusRequestEntityTooLarge ||
		string(b) != `{"error":"request_too_large","message":"sidecar: body larger than 65536 bytes"}`+"\n" {
		t.Fatalf("got %d %s (content length %d)", resp.StatusCode, b, req.ContentLength)
	}
}

// TestAccessTokenAPI: GET /v1/access-token gets an RFC 9068 access token
// for a registered resource, not bound to a certificate; bad requests
// are 400, the authorization server's refusals 403 delegation_denied.
func TestAccessTokenAPI(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	q := "/v1/access-token?resource=" + url.QueryEscape(f.resource) + "&delegation=" + id
	r := f.do(t, "GET", f.api+q+"&scope=campaigns:read", nil)
	var tr sidecar.AccessTokenResponse
	r.decode(t, &tr)
	if r.status != 200 || tr.TokenType != "Bearer" || tr.Resource != f.resource || tr.Scope != "campaigns:read" || tr.Delegation != id ||
		time.Until(tr.ExpiresAt) < 4*time.Minute {
		t.Fatalf("%d %+v", r.status, tr)
	}
	parts := strings.Split(tr.AccessToken, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	// Unbound: the agent presents it over connections of its own.
	if len(parts) != 3 || err != nil || strings.Contains(string(payload), `"cnf"`) ||
		!strings.Contains(string(payload), `"client_id":"`+servertest.Orchestrator.String()+`"`) {
		t.Fatalf("token payload %s", payload)
	}
	for _, tc := range []struct {
		name, query string
		status      int
		code        string
	}{
		{"no resource", "/v1/access-token?delegation=" + id, 400, "invalid_request"},
		{"no delegation", "/v1/access-token?resource=" + url.QueryEscape(f.resource), 400, "invalid_request"},
		{"two scopes parameters", q + "&scope=a&scope=b", 400, "invalid_request"},
		{"malformed delegation", "/v1/access-token?resource=x&delegation=nope", 400, "invalid_request"},
		{"malformed scope", q + "&scope=" + url.QueryEscape(`"x"`), 400, "invalid_request"},
		{"scope not delegated", q + "&scope=crm:write", 403, "delegation_denied"},
		{"unregistered resource", "/v1/access-token?resource=" + url.QueryEscape("https://other.example.com") + "&delegation=" + id, 403, "delegation_denied"},
	} {
		r := f.do(t, "GET", f.api+tc.query, nil)
		if b := r.errorBody(t); r.status != tc.status || b.Error != tc.code {
			t.Fatalf("%s: %d %+v, want %d %s", tc.name, r.status, b, tc.status, tc.code)
		}
	}
}
