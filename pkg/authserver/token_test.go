package authserver_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/authserver"
	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/internal/testca"
)

func parseChain(c *tls.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	for _, der := range c.Certificate {
		x, err := x509.ParseCertificate(der)
		if err != nil {
			panic(err)
		}
		out = append(out, x)
	}
	return out
}

type errorResponse struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestBadTokenRequests: every malformed, unauthorized or widening request
// gets its exact status and RFC 6749/8707 error code, no token is issued,
// the refusal is audited, and neither the answer nor the log holds any part
// of a token the client sent.
func TestBadTokenRequests(t *testing.T) {
	e := newEnv(t)
	analystCert := e.svidCert(t, e.ca, analyst)
	intruderCert := e.svidCert(t, e.ca, intruder)
	otherCA := testca.New(t, spiffeid.RequireTrustDomainFromString("evil.example"))
	foreignCert := e.svidCert(t, otherCA, spiffeid.RequireFromString("spiffe://evil.example/agent/market-analysis"))
	good := e.assertion(t, e.child)

	header, payload, _ := strings.Cut(good, ".")
	payload, _, _ = strings.Cut(payload, ".")
	algNone := b64(`{"alg":"none","typ":"JWT","kid":"spire-jwt-1"}`) + "." + payload + "."
	hsHeader := b64(`{"alg":"HS256","typ":"JWT","kid":"spire-jwt-1"}`)
	pubDER, _ := x509.MarshalPKIXPublicKey(&e.jwt.key.PublicKey)
	mac := hmac.New(sha256.New, pubDER)
	mac.Write([]byte(hsHeader + "." + payload))
	hs256 := hsHeader + "." + payload + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	_ = header

	otherAud := e.jwt.mint(t, e.assertionClaims(e.child, "https://other-as.example.com"))
	expired := e.assertionClaims(e.child, issuer)
	expired["iat"] = e.clock.Now().Add(-20 * time.Minute).Unix()
	expired["exp"] = e.clock.Now().Add(-10 * time.Minute).Unix()
	plain := map[string]any{"sub": analyst.String(), "aud": []string{issuer}, "exp": e.clock.Now().Add(5 * time.Minute).Unix()}
	unknownKey := newAuthority(t, "spire-jwt-1").mint(t, e.assertionClaims(e.child, issuer)) // same kid, other key
	ghost := e.child.Clone()
	ghost.ID = delegation.MustParseID("dlg_0000000000000000000000000z")
	foreign := e.child.Clone() // the analyst's delegation presented under the orchestrator's name
	foreign.Agent = orchestrator
	foreign.Chain = []spiffeid.ID{orchestrator}
	foreign.Root = foreign.ID
	foreignAssertion := e.jwt.mint(t, e.assertionClaims(foreign, issuer))
	huge := e.jwt.mint(t, func() map[string]any {
		c := e.assertionClaims(e.child, issuer)
		c["padding"] = strings.Repeat("x", 9000)
		return c
	}())
	form := func(f url.Values) string { return f.Encode() }
	g := func(extra ...string) string { return form(grantForm(good, mcpResource, extra...)) }

	cases := []struct {
		name   string
		body   string
		cert   *tls.Certificate
		mod    func(*http.Request)
		status int
		code   string
		reason string // the audit event's reason: the refusal is the one meant
	}{
		{"GET", g(), nil, func(r *http.Request) { r.Method = http.MethodGet }, 405, "invalid_request", "method"},
		{"parameters in the URL", g(), nil, func(r *http.Request) { r.URL.RawQuery = "grant_type=x" }, 400, "invalid_request", "query"},
		{"JSON body", `{"grant_type":"` + authserver.GrantTypeJWTBearer + `","assertion":"` + good + `"}`, nil,
			func(r *http.Request) { r.Header.Set("Content-Type", "application/json") }, 400, "invalid_request", "content_type"},
		{"no content type", g(), nil, func(r *http.Request) { r.Header.Del("Content-Type") }, 400, "invalid_request", "content_type"},
		{"oversized body", g("pad", strings.Repeat("a", authserver.MaxRequestSize)), nil, nil, 413, "invalid_request", "too_large"},
		{"oversized body without length", g("pad", strings.Repeat("a", authserver.MaxRequestSize)), nil,
			func(r *http.Request) { r.ContentLength = -1 }, 413, "invalid_request", "too_large"},
		{"malformed form", "grant_type=%zz", nil, nil, 400, "invalid_request", "form"},
		{"duplicate grant_type", g("grant_type", authserver.GrantTypeJWTBearer), nil, nil, 400, "invalid_request", "duplicate_parameter"},
		{"duplicate assertion", g("assertion", good), nil, nil, 400, "invalid_request", "duplicate_parameter"},
		{"two resources", g("resource", crmResource), nil, nil, 400, "invalid_request", "duplicate_parameter"},
		{"no grant_type", form(url.Values{"assertion": {good}, "resource": {mcpResource}}), nil, nil, 400, "invalid_request", "no_grant_type"},
		{"client_credentials", form(url.Values{"grant_type": {"client_credentials"}, "resource": {mcpResource}}), nil, nil, 400, "unsupported_grant_type", "grant_type"},
		{"password grant", form(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"x"}}), nil, nil, 400, "unsupported_grant_type", "grant_type"},
		{"client_secret", g("client_id", analyst.String(), "client_secret", "s3cret"), nil, nil, 401, "invalid_client", "client_auth_method"},
		{"basic authorization", g(), nil, func(r *http.Request) { r.SetBasicAuth(analyst.String(), "s3cret") }, 401, "invalid_client", "client_auth_method"},
		{"client assertion", g("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion", good), nil, nil, 401, "invalid_client", "client_auth_method"},
		{"no resource", form(url.Values{"grant_type": {authserver.GrantTypeJWTBearer}, "assertion": {good}}), nil, nil, 400, "invalid_target", "no_resource"},
		{"unknown resource", form(grantForm(good, "https://evil.example.com/mcp")), nil, nil, 400, "invalid_target", "unknown_resource"},
		{"resource with a trailing slash", form(grantForm(good, mcpResource+"/")), nil, nil, 400, "invalid_target", "unknown_resource"},
		{"no assertion", form(url.Values{"grant_type": {authserver.GrantTypeJWTBearer}, "resource": {mcpResource}}), nil, nil, 400, "invalid_request", "no_assertion"},
		{"oversized assertion", form(grantForm(huge, mcpResource)), nil, nil, 400, "invalid_grant", "assertion_too_large"},
		{"garbage assertion", form(grantForm("not.a.jwt", mcpResource)), nil, nil, 400, "invalid_grant", "assertion"},
		{"alg none", form(grantForm(algNone, mcpResource)), nil, nil, 400, "invalid_grant", "assertion"},
		{"HS256 keyed with the public key", form(grantForm(hs256, mcpResource)), nil, nil, 400, "invalid_grant", "assertion"},
		{"assertion for another audience", form(grantForm(otherAud, mcpResource)), nil, nil, 400, "invalid_grant", "assertion"},
		{"expired assertion", form(grantForm(e.jwt.mint(t, expired), mcpResource)), nil, nil, 400, "invalid_grant", "assertion"},
		{"signed by an unknown key", form(grantForm(unknownKey, mcpResource)), nil, nil, 400, "invalid_grant", "assertion"},
		{"plain JWT-SVID without a delegation", form(grantForm(e.jwt.mint(t, plain), mcpResource)), nil, nil, 400, "invalid_grant", "no_delegation"},
		{"revoked delegation", form(grantForm(e.assertion(t, e.revoked), mcpResource)), nil, nil, 400, "invalid_grant", "delegation_inactive"},
		{"unknown delegation", form(grantForm(e.assertion(t, ghost), mcpResource)), nil, nil, 400, "invalid_grant", "delegation_inactive"},
		{"another agent's delegation", form(grantForm(foreignAssertion, mcpResource)), nil, nil, 400, "invalid_grant", "assertion"},
		{"assertion over another agent's certificate", g(), intruderCert, nil, 400, "invalid_grant", "certificate_mismatch"},
		{"certificate of another trust domain", g(), foreignCert, nil, 401, "invalid_client", "client_certificate"},
		{"client_id not the certificate's", g("client_id", intruder.String()), analystCert, nil, 401, "invalid_client", "client_id"},
		{"client_id not the assertion's subject", g("client_id", intruder.String()), nil, nil, 401, "invalid_client", "client_id"},
		{"scope widening", g("scope", "campaigns:read crm:write"), nil, nil, 400, "invalid_scope", "scope_not_granted"},
		{"scope the resource does not allow", form(grantForm(e.assertion(t, e.crmOnly), mcpResource)), nil, nil, 400, "invalid_scope", "scope_empty"},
		{"malformed scope", g("scope", `campaigns:read "quoted"`), nil, nil, 400, "invalid_scope", "scope_syntax"},
		{"empty scope", g("scope", ""), nil, nil, 400, "invalid_scope", "scope_syntax"},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d cases", len(cases))
	}
	deniedBefore := len(e.events(t, audit.TypeDenied))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := e.post(authserver.TokenPath, tc.body, tc.cert, tc.mod)
			var body errorResponse
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("status %d, body %q: %v", w.Code, w.Body, err)
			}
			if w.Code != tc.status || body.Error != tc.code {
				t.Fatalf("got %d %s (%s), want %d %s", w.Code, body.Error, body.Description, tc.status, tc.code)
			}
			if body.Description == "" || w.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("description %q, cache-control %q", body.Description, w.Header().Get("Cache-Control"))
			}
			denied := e.events(t, audit.TypeDenied)
			if last := denied[len(denied)-1]; last.Detail["reason"] != tc.reason || last.Detail["error"] != tc.code {
				t.Fatalf("audited reason %q error %q, want %q %q", last.Detail["reason"], last.Detail["error"], tc.reason, tc.code)
			}
			for _, part := range strings.Split(good, ".") {
				if strings.Contains(w.Body.String(), part) {
					t.Fatal("the answer echoes part of the assertion")
				}
			}
		})
	}
	if n := len(e.events(t, audit.TypeTokenIssued)); n != 0 {
		t.Fatalf("%d tokens issued by bad requests", n)
	}
	if n := len(e.events(t, audit.TypeDenied)) - deniedBefore; n != len(cases) {
		t.Fatalf("%d denied events for %d refusals", n, len(cases))
	}
	log := e.logText()
	if testing.Verbose() {
		t.Log(log)
	}
	if n := strings.Count(log, "OAuth request refused"); n != len(cases) {
		t.Fatalf("%d refusals logged for %d", n, len(cases))
	}
	for _, tok := range []string{good, otherAud, hs256, unknownKey, foreignAssertion} {
		for _, part := range strings.Split(tok, ".")[1:] {
			if part != "" && strings.Contains(log, part) {
				t.Fatalf("the log holds part of a token: %s", log)
			}
		}
	}
}

func (e *env) grant(t testing.TB, d *delegation.Delegation, resource string, cert *tls.Certificate, extra ...string) tokenResponse {
	t.Helper()
	w := e.post(authserver.TokenPath, grantForm(e.assertion(t, d), resource, extra...).Encode(), cert, nil)
	if w.Code != http.StatusOK {
		t.Fatalf("grant: %d %s", w.Code, w.Body)
	}
	var tr tokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &tr); err != nil {
		t.Fatal(err)
	}
	if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Pragma") != "no-cache" {
		t.Fatalf("cache headers %v", w.Header())
	}
	return tr
}

// verifyToken checks tr's token against the server's JWKS as a stock JOSE
// library would, and returns its header and claims.
func (e *env) verifyToken(t *testing.T, token string) (jose.Header, map[string]any) {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(e.keys.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	h := jws.Signatures[0].Header
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in the JWKS", h.KeyID)
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return h, c
}

func TestGrantWithCertificateIsBound(t *testing.T) {
	e := newEnv(t)
	cert := e.svidCert(t, e.ca, analyst)
	tr := e.grant(t, e.child, mcpResource, cert, "client_id", analyst.String())
	if tr.TokenType != "Bearer" || tr.ExpiresIn != 300 || tr.Scope != "campaigns:read compliance:check" {
		t.Fatalf("response %+v", tr)
	}
	h, c := e.verifyToken(t, tr.AccessToken)
	if h.ExtraHeaders[jose.HeaderType] != "at+jwt" || h.Algorithm != "ES256" {
		t.Fatalf("header %+v", h)
	}
	sum := sha256.Sum256(cert.Certificate[0])
	now := e.clock.Now().Unix()
	want := map[string]any{
		"iss": issuer, "sub": "https://idp.example.com#alice", "aud": mcpResource,
		"client_id": analyst.String(),
		"act":       map[string]any{"sub": analyst.String(), "act": map[string]any{"sub": orchestrator.String()}},
		"scope":     "campaigns:read compliance:check",
		"iat":       float64(now), "exp": float64(now + 300),
		"cnf":        map[string]any{"x5t#S256": base64.RawURLEncoding.EncodeToString(sum[:])},
		"principal":  map[string]any{"iss": "https://idp.example.com", "sub": "alice", "email": "alice@example.com"},
		"delegation": map[string]any{"version": "1", "id": e.child.ID.String(), "root": e.root.ID.String()},
	}
	jti, _ := c["jti"].(string)
	delete(c, "jti")
	if len(jti) != 22 {
		t.Fatalf("jti %q", jti)
	}
	gotJSON, _ := json.Marshal(c)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Fatalf("claims\n got %s\nwant %s", gotJSON, wantJSON)
	}
	evs := e.events(t, audit.TypeTokenIssued)
	if len(evs) != 1 {
		t.Fatalf("%d issuance events", len(evs))
	}
	ev := evs[0]
	if ev.Actor != analyst.String() || ev.DelegationID != e.child.ID.String() || ev.User != "https://idp.example.com#alice" ||
		ev.Detail["jti"] != jti || ev.Detail["audience"] != mcpResource || ev.Detail["bound"] != "x5t#S256" ||
		ev.Detail["scope"] != "campaigns:read compliance:check" || ev.Detail["token"] != "access_token" {
		t.Fatalf("event %+v", ev)
	}
	if _, err := claims.DecodeAccessToken(mustPayload(t, tr.AccessToken)); err != nil {
		t.Fatalf("decoding our own token: %v", err)
	}
}

func mustPayload(t *testing.T, token string) []byte {
	parts := strings.Split(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGrantWithoutCertificateNarrowsAndCaps(t *testing.T) {
	e := newEnv(t)
	// The crm resource allows crm:write and campaigns:read, with a 1-minute
	// TTL; the root delegation holds both and more.
	tr := e.grant(t, e.root, crmResource, nil, "scope", "crm:write")
	if tr.Scope != "crm:write" || tr.ExpiresIn != 60 {
		t.Fatalf("response %+v", tr)
	}
	_, c := e.verifyToken(t, tr.AccessToken)
	if _, bound := c["cnf"]; bound {
		t.Fatal("a token issued without a certificate is bound")
	}
	if act := c["act"].(map[string]any); act["sub"] != orchestrator.String() || act["act"] != nil {
		t.Fatalf("act %v", act)
	}
	// No scope asked: the delegation ∩ the resource.
	if tr := e.grant(t, e.root, crmResource, nil); tr.Scope != "campaigns:read crm:write" {
		t.Fatalf("default scope %q", tr.Scope)
	}
	// exp never outlives the delegation.
	e.clock.Add(time.Hour - 90*time.Second) // the child ends in 90 s
	if tr := e.grant(t, e.child, mcpResource, nil); tr.ExpiresIn != 90 {
		t.Fatalf("expires_in %d near the delegation's end, want 90", tr.ExpiresIn)
	}
}

func TestMetadataAndJWKS(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/.well-known/oauth-authorization-server", authserver.JWKSPath} {
		r, _ := http.NewRequest(http.MethodGet, "https://agentid.example.com"+path, nil)
		w := httptest.NewRecorder()
		e.handler.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("%s: %d", path, w.Code)
		}
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if path == authserver.JWKSPath {
			if w.Header().Get("Cache-Control") != "max-age=1770" || len(m["keys"].([]any)) != 1 {
				t.Fatalf("jwks %v %v", w.Header(), m)
			}
			continue
		}
		want := `{"access_token_signing_alg_values_supported":["ES256"],"grant_types_supported":["urn:ietf:params:oauth:grant-type:jwt-bearer","urn:ietf:params:oauth:grant-type:token-exchange"],"introspection_endpoint":"https://agentid.example.com/introspect","introspection_endpoint_auth_methods_supported":["client_secret_basic","tls_client_auth"],"issuer":"https://agentid.example.com","jwks_uri":"https://agentid.example.com/jwks.json","response_types_supported":[],"tls_client_certificate_bound_access_tokens":true,"token_endpoint":"https://agentid.example.com/token","token_endpoint_auth_methods_supported":["none","tls_client_auth"]}`
		got, _ := json.Marshal(m)
		if string(got) != want {
			t.Fatalf("metadata\n got %s\nwant %s", got, want)
		}
	}
}

type introspection map[string]any

func (e *env) introspect(t *testing.T, token string, mod func(*http.Request)) (int, introspection) {
	t.Helper()
	w := e.post(authserver.IntrospectionPath, url.Values{"token": {token}}.Encode(), nil, func(r *http.Request) {
		r.SetBasicAuth(url.QueryEscape(mcpResource), url.QueryEscape(secret))
		if mod != nil {
			mod(r)
		}
	})
	var m introspection
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("status %d body %q", w.Code, w.Body)
	}
	return w.Code, m
}

// TestIntrospectionSeesRevocationAtOnce: a token is active until its
// delegation, or the root of its chain, is revoked, and inactive from the
// next call on, long before its exp.
func TestIntrospectionSeesRevocationAtOnce(t *testing.T) {
	e := newEnv(t)
	tr := e.grant(t, e.child, mcpResource, nil)
	code, m := e.introspect(t, tr.AccessToken, nil)
	if code != 200 || m["active"] != true || m["sub"] != "https://idp.example.com#alice" || m["client_id"] != analyst.String() ||
		m["scope"] != "campaigns:read compliance:check" || m["token_type"] != "Bearer" || m["aud"] != mcpResource {
		t.Fatalf("%d %v", code, m)
	}
	revokeRoot(t, e)
	if code, m := e.introspect(t, tr.AccessToken, nil); code != 200 || len(m) != 1 || m["active"] != false {
		t.Fatalf("after revoking the root: %d %v", code, m)
	}
}

func revokeRoot(t *testing.T, e *env) {
	t.Helper()
	if _, _, err := e.store.RevokeDelegation(t.Context(), storeRevocation(e.root.ID)); err != nil {
		t.Fatal(err)
	}
}

func TestIntrospectionInactive(t *testing.T) {
	e := newEnv(t)
	tr := e.grant(t, e.child, mcpResource, nil)
	crm := e.grant(t, e.root, crmResource, nil)
	forged := e.jwt.mint(t, map[string]any{"iss": issuer, "sub": "x"}) // signed by SPIRE's key, not ours
	for name, tok := range map[string]string{
		"garbage": "abc", "another resource's token": crm.AccessToken, "a JWT-SVID": forged,
		"tampered": tamperSignature(tr.AccessToken),
	} {
		if code, m := e.introspect(t, tok, nil); code != 200 || len(m) != 1 || m["active"] != false {
			t.Fatalf("%s: %d %v", name, code, m)
		}
	}
	e.clock.Add(5 * time.Minute)
	if _, m := e.introspect(t, tr.AccessToken, nil); m["active"] != false {
		t.Fatalf("expired: %v", m)
	}
}

// tamperSignature changes the first character of the JWS signature. Its six
// bits all belong to the signature's first byte, so the token always changes;
// rewriting the last characters does not (base64url's final character carries
// padding bits, and 1 signature in 256 already ends in the replaced byte).
func tamperSignature(token string) string {
	i := strings.LastIndexByte(token, '.') + 1
	c := byte('A')
	if token[i] == 'A' {
		c = 'B'
	}
	return token[:i] + string(c) + token[i+1:]
}

func TestIntrospectionNeedsAuthentication(t *testing.T) {
	e := newEnv(t)
	tr := e.grant(t, e.child, mcpResource, nil)
	for name, mod := range map[string]func(*http.Request){
		"no credentials":   func(r *http.Request) { r.Header.Del("Authorization") },
		"wrong secret":     func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(mcpResource), "guess") },
		"no secret for it": func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(crmResource), "") },
	} {
		code, m := e.introspect(t, tr.AccessToken, mod)
		if code != 401 || m["error"] != "invalid_client" {
			t.Fatalf("%s: %d %v", name, code, m)
		}
	}
	// An agent's X509-SVID authenticates too (SPIFFE-aware resource servers).
	w := e.post(authserver.IntrospectionPath, url.Values{"token": {tr.AccessToken}}.Encode(), e.svidCert(t, e.ca, intruder), nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"active":true`) {
		t.Fatalf("over mTLS: %d %s", w.Code, w.Body)
	}
}
