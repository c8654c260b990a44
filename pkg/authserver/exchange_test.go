package authserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
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
	"github.com/agentid/agentid/pkg/store"
)

type exchangeResponse struct {
	tokenResponse
	IssuedTokenType string `json:"issued_token_type"`
}

// plainSVID is an agent's JWT-SVID without delegation claims, for aud.
func (e *env) plainSVID(tb testing.TB, id spiffeid.ID, aud string) string {
	now := e.clock.Now()
	return e.jwt.mint(tb, map[string]any{"sub": id.String(), "aud": []string{aud}, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()})
}

func exchangeForm(subject, subjectType, resource string, extra ...string) url.Values {
	f := url.Values{"grant_type": {authserver.GrantTypeTokenExchange}, "subject_token": {subject},
		"subject_token_type": {subjectType}, "resource": {resource}}
	for i := 0; i+1 < len(extra); i += 2 {
		f.Add(extra[i], extra[i+1])
	}
	return f
}

func (e *env) exchange(t *testing.T, f url.Values, cert *tls.Certificate) exchangeResponse {
	t.Helper()
	w := e.post(authserver.TokenPath, f.Encode(), cert, nil)
	if w.Code != 200 {
		t.Fatalf("exchange: %d %s", w.Code, w.Body)
	}
	var tr exchangeResponse
	if err := json.Unmarshal(w.Body.Bytes(), &tr); err != nil {
		t.Fatal(err)
	}
	if tr.IssuedTokenType != authserver.TokenTypeAccessToken || tr.TokenType != "Bearer" || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("response %s, headers %v", w.Body, w.Header())
	}
	return tr
}

func certThumbprint(c *tls.Certificate) string {
	sum := sha256.Sum256(c.Certificate[0])
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func actChain(c map[string]any) []string {
	var out []string
	for a, _ := c["act"].(map[string]any); a != nil; a, _ = a["act"].(map[string]any) {
		out = append(out, a["sub"].(string))
	}
	return out
}

// TestExchange: an agent narrows its own token to another resource and
// scope; an access token narrows from its own scope, not its delegation's;
// sub-delegation to a declared sub-agent, named by its JWT-SVID or by its
// certificate, records the child delegation and nests act; revoking the root
// refuses every further exchange and deactivates the exchanged tokens.
func TestExchange(t *testing.T) {
	e := newEnv(t)
	orchCert := e.svidCert(t, e.ca, orchestrator)
	analystCert := e.svidCert(t, e.ca, analyst)
	reporterCert := e.svidCert(t, e.ca, reporter)

	t.Run("narrow a delegated JWT-SVID", func(t *testing.T) {
		tr := e.exchange(t, exchangeForm(e.assertion(t, e.root), authserver.TokenTypeJWT, mcpResource, "scope", "campaigns:read"), orchCert)
		_, c := e.verifyToken(t, tr.AccessToken)
		if c["client_id"] != orchestrator.String() || c["aud"] != mcpResource || c["scope"] != "campaigns:read" || tr.Scope != "campaigns:read" ||
			c["sub"] != "https://idp.example.com#alice" || c["cnf"].(map[string]any)["x5t#S256"] != certThumbprint(orchCert) ||
			c["delegation"].(map[string]any)["id"] != e.root.ID.String() {
			t.Fatalf("claims %v", c)
		}
		if got := actChain(c); len(got) != 1 || got[0] != orchestrator.String() {
			t.Fatalf("act %v", got)
		}
	})

	t.Run("an access token narrows from its own scope", func(t *testing.T) {
		crm := e.grant(t, e.root, crmResource, orchCert)
		if crm.Scope != "campaigns:read crm:write" {
			t.Fatalf("crm token scope %q", crm.Scope)
		}
		// The root holds compliance:check and mcp allows it; the token does not.
		tr := e.exchange(t, exchangeForm(crm.AccessToken, authserver.TokenTypeAccessToken, mcpResource), orchCert)
		if tr.Scope != "campaigns:read" {
			t.Fatalf("scope %q, want campaigns:read", tr.Scope)
		}
	})

	var viaActorToken, viaCert string
	t.Run("sub-delegate to the agent of the actor token", func(t *testing.T) {
		before := len(e.events(t, audit.TypeSubDelegated))
		tr := e.exchange(t, exchangeForm(e.assertion(t, e.child), authserver.TokenTypeJWT, mcpResource,
			"actor_token", e.plainSVID(t, reporter, issuer), "actor_token_type", authserver.TokenTypeJWT), analystCert)
		viaActorToken = tr.AccessToken
		_, c := e.verifyToken(t, tr.AccessToken)
		want := []string{reporter.String(), analyst.String(), orchestrator.String()}
		if got := actChain(c); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("act %v, want %v", got, want)
		}
		// The analyst presented it: the reporter's certificate is unknown.
		if c["client_id"] != reporter.String() || c["cnf"] != nil || c["scope"] != "campaigns:read" {
			t.Fatalf("claims %v", c)
		}
		dlg := c["delegation"].(map[string]any)
		id := delegation.MustParseID(dlg["id"].(string))
		d, err := e.store.GetDelegation(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Parent != e.child.ID || d.Root != e.root.ID || dlg["root"] != e.root.ID.String() || d.Agent != reporter ||
			d.Scopes.String() != "campaigns:read" || d.ExpiresAt.Unix() != int64(c["exp"].(float64)) {
			t.Fatalf("child delegation %+v", d)
		}
		evs := e.events(t, audit.TypeSubDelegated)
		if len(evs) != before+1 || evs[len(evs)-1].Actor != analyst.String() || evs[len(evs)-1].Detail["parent_id"] != e.child.ID.String() ||
			evs[len(evs)-1].Detail["endpoint"] != "token_exchange" {
			t.Fatalf("sub_delegated events %+v", evs[before:])
		}
	})

	t.Run("sub-delegate to the agent of the certificate", func(t *testing.T) {
		tr := e.exchange(t, exchangeForm(e.assertion(t, e.child), authserver.TokenTypeJWT, mcpResource), reporterCert)
		viaCert = tr.AccessToken
		_, c := e.verifyToken(t, tr.AccessToken)
		if c["client_id"] != reporter.String() || c["cnf"].(map[string]any)["x5t#S256"] != certThumbprint(reporterCert) {
			t.Fatalf("claims %v", c)
		}
	})

	t.Run("the chain may not grow past max_depth", func(t *testing.T) {
		w := e.post(authserver.TokenPath, exchangeForm(viaCert, authserver.TokenTypeAccessToken, mcpResource,
			"actor_token", e.plainSVID(t, auditor, issuer), "actor_token_type", authserver.TokenTypeJWT).Encode(), reporterCert, nil)
		if w.Code != 400 || !strings.Contains(w.Body.String(), `"invalid_request"`) {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		if last := e.events(t, audit.TypeDenied); last[len(last)-1].Detail["reason"] != "depth_exceeded" {
			t.Fatalf("reason %q", last[len(last)-1].Detail["reason"])
		}
	})

	for _, tok := range []string{viaActorToken, viaCert} {
		if code, in := e.introspect(t, tok, nil); code != 200 || in["active"] != true {
			t.Fatalf("before the revocation: %d %v", code, in)
		}
	}
	revokeRoot(t, e)
	for _, tok := range []string{viaActorToken, viaCert} {
		if code, in := e.introspect(t, tok, nil); code != 200 || in["active"] != false {
			t.Fatalf("after the revocation: %d %v", code, in)
		}
	}
	for name, f := range map[string]url.Values{
		"the sub-agent's access token": exchangeForm(viaCert, authserver.TokenTypeAccessToken, mcpResource),
		"the child's JWT-SVID":         exchangeForm(e.assertion(t, e.child), authserver.TokenTypeJWT, mcpResource),
	} {
		w := e.post(authserver.TokenPath, f.Encode(), reporterCert, nil)
		var body errorResponse
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("answer %q: %v", w.Body.String(), err)
		}
		if w.Code != 400 || body.Error != authserver.ErrorInvalidRequest {
			t.Fatalf("%s after the root's revocation: %d %s", name, w.Code, w.Body)
		}
		if last := e.events(t, audit.TypeDenied); last[len(last)-1].Detail["reason"] != "delegation_inactive" {
			t.Fatalf("%s: reason %q", name, last[len(last)-1].Detail["reason"])
		}
	}
}

// TestBadExchangeRequests: every refused exchange gets its exact status and
// RFC 8693 / 6749 / 8707 error code, nothing is stored or issued, the refusal
// is audited with its reason, and no part of a presented token reaches the
// answer or the log.
func TestBadExchangeRequests(t *testing.T) {
	e := newEnv(t)
	orchCert := e.svidCert(t, e.ca, orchestrator)
	orchCert2 := e.svidCert(t, e.ca, orchestrator) // the same SPIFFE ID, another key
	analystCert := e.svidCert(t, e.ca, analyst)
	intruderCert := e.svidCert(t, e.ca, intruder)

	rootSVID := e.assertion(t, e.root)
	childSVID := e.assertion(t, e.child)
	orchToken := e.grant(t, e.root, crmResource, orchCert).AccessToken // bound to orchCert
	unbound := e.grant(t, e.root, crmResource, nil).AccessToken
	issuedBefore := len(e.events(t, audit.TypeTokenIssued))

	// Access tokens signed with the server's own key but out of bounds, and
	// one signed with another key under the same kid.
	own := func(mut func(*claims.AccessToken)) string {
		now := e.clock.Now()
		at := claims.AccessToken{Issuer: issuer, User: alice(t), Audience: crmResource, Chain: []spiffeid.ID{orchestrator},
			Scopes: delegation.MustParseScopes("campaigns:read"), IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Minute),
			ID: "jti-1", Delegation: e.root.ID, Root: e.root.ID}
		mut(&at)
		payload, err := json.Marshal(at)
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := e.keys.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	expired := own(func(at *claims.AccessToken) {
		at.IssuedAt, at.ExpiresAt = e.clock.Now().Add(-10*time.Minute), e.clock.Now().Add(-5*time.Minute)
	})
	otherIssuer := own(func(at *claims.AccessToken) { at.Issuer = "https://other-as.example.com" })
	wrongRoot := own(func(at *claims.AccessToken) { at.Root, at.Delegation = e.child.ID, e.child.ID })
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged := func() string {
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: otherKey},
			(&jose.SignerOptions{}).WithType(claims.AccessTokenType).WithHeader("kid", e.keys.SigningKeyID()))
		jws, _ := s.Sign(mustPayload(t, orchToken))
		tok, _ := jws.CompactSerialize()
		return tok
	}()
	huge := strings.Repeat("a", authserver.MaxAssertionSize+1)
	actor := func(tok string) []string {
		return []string{"actor_token", tok, "actor_token_type", authserver.TokenTypeJWT}
	}
	x := func(subject, typ, resource string, extra ...string) string {
		return exchangeForm(subject, typ, resource, extra...).Encode()
	}
	const at, jwt = authserver.TokenTypeAccessToken, authserver.TokenTypeJWT
	stranger := spiffeid.RequireFromString("spiffe://example.org/agent/stranger")

	cases := []struct {
		name   string
		body   string
		cert   *tls.Certificate
		status int
		code   string
		reason string
	}{
		{"no subject_token", url.Values{"grant_type": {authserver.GrantTypeTokenExchange}, "subject_token_type": {jwt}, "resource": {mcpResource}}.Encode(), orchCert, 400, "invalid_request", "no_subject_token"},
		{"no subject_token_type", url.Values{"grant_type": {authserver.GrantTypeTokenExchange}, "subject_token": {rootSVID}, "resource": {mcpResource}}.Encode(), orchCert, 400, "invalid_request", "no_subject_token"},
		{"SAML subject", x(rootSVID, "urn:ietf:params:oauth:token-type:saml2", mcpResource), orchCert, 400, "invalid_request", "subject_token_type"},
		{"actor_token without its type", x(rootSVID, jwt, mcpResource, "actor_token", e.plainSVID(t, analyst, issuer)), orchCert, 400, "invalid_request", "actor_token_type"},
		{"actor_token_type without a token", x(rootSVID, jwt, mcpResource, "actor_token_type", jwt), orchCert, 400, "invalid_request", "actor_token_type"},
		{"access token as actor_token_type", x(rootSVID, jwt, mcpResource, "actor_token", orchToken, "actor_token_type", at), orchCert, 400, "invalid_request", "actor_token_type"},
		{"refresh token requested", x(rootSVID, jwt, mcpResource, "requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token"), orchCert, 400, "invalid_request", "requested_token_type"},
		{"audience instead of resource", x(rootSVID, jwt, mcpResource, "audience", "mcp"), orchCert, 400, "invalid_target", "audience_parameter"},
		{"no resource", url.Values{"grant_type": {authserver.GrantTypeTokenExchange}, "subject_token": {rootSVID}, "subject_token_type": {jwt}}.Encode(), orchCert, 400, "invalid_target", "no_resource"},
		{"unknown resource", x(rootSVID, jwt, "https://evil.example.com/mcp"), orchCert, 400, "invalid_target", "unknown_resource"},
		{"duplicate subject_token", x(rootSVID, jwt, mcpResource, "subject_token", childSVID), orchCert, 400, "invalid_request", "duplicate_parameter"},
		{"oversized subject token", x(huge, jwt, mcpResource), orchCert, 400, "invalid_request", "token_too_large"},
		{"plain JWT-SVID as subject", x(e.plainSVID(t, orchestrator, issuer), jwt, mcpResource), orchCert, 400, "invalid_request", "subject_token"},
		{"subject JWT-SVID for another audience", x(e.jwt.mint(t, e.assertionClaims(e.root, "https://other-as.example.com")), jwt, mcpResource), orchCert, 400, "invalid_request", "subject_token"},
		{"access token sent as a JWT-SVID", x(orchToken, jwt, mcpResource), orchCert, 400, "invalid_request", "subject_token"},
		{"JWT-SVID sent as an access token", x(rootSVID, at, mcpResource), orchCert, 400, "invalid_request", "subject_token"},
		{"forged access token", x(forged, at, mcpResource), orchCert, 400, "invalid_request", "subject_token"},
		{"expired access token", x(expired, at, mcpResource), orchCert, 400, "invalid_request", "subject_token"},
		{"access token of another issuer", x(otherIssuer, at, mcpResource), orchCert, 400, "invalid_request", "subject_token"},
		{"access token not matching its delegation", x(wrongRoot, at, mcpResource), orchCert, 400, "invalid_request", "subject_token"},
		{"access token without a certificate", x(orchToken, at, mcpResource), nil, 400, "invalid_request", "subject_holder"},
		{"unbound access token without a certificate", x(unbound, at, mcpResource), nil, 400, "invalid_request", "subject_holder"},
		{"unbound access token over another agent's certificate", x(unbound, at, mcpResource), analystCert, 400, "invalid_request", "subject_holder"},
		{"access token over another agent's certificate", x(orchToken, at, mcpResource), analystCert, 400, "invalid_request", "subject_holder"},
		{"bound access token over another certificate of its agent", x(orchToken, at, mcpResource), orchCert2, 400, "invalid_request", "subject_holder"},
		{"revoked delegation", x(e.assertion(t, e.revoked), jwt, mcpResource), analystCert, 400, "invalid_request", "delegation_inactive"},
		{"scope beyond the access token's", x(orchToken, at, crmResource, "scope", "compliance:check"), orchCert, 400, "invalid_scope", "scope_not_granted"},
		{"scope beyond the actor's ceiling", x(childSVID, jwt, mcpResource, append(actor(e.plainSVID(t, reporter, issuer)), "scope", "compliance:check")...), analystCert, 400, "invalid_scope", "scope_not_granted"},
		{"actor not a sub-agent", x(rootSVID, jwt, mcpResource, actor(e.plainSVID(t, intruder, issuer))...), orchCert, 400, "invalid_request", "sub_agent_not_allowed"},
		{"stolen JWT-SVID over another agent's certificate", x(childSVID, jwt, mcpResource), intruderCert, 400, "invalid_request", "sub_agent_not_allowed"},
		{"undeclared actor", x(rootSVID, jwt, mcpResource, actor(e.plainSVID(t, stranger, issuer))...), orchCert, 400, "invalid_request", "actor_not_declared"},
		{"actor already in the chain", x(childSVID, jwt, mcpResource, actor(e.plainSVID(t, orchestrator, issuer))...), analystCert, 400, "invalid_request", "agent_in_chain"},
		{"actor token for another audience", x(rootSVID, jwt, mcpResource, actor(e.plainSVID(t, analyst, "https://other-as.example.com"))...), orchCert, 400, "invalid_request", "actor_token"},
		{"actor token signed by an unknown key", x(rootSVID, jwt, mcpResource, actor(newAuthority(t, "spire-jwt-1").mint(t, map[string]any{
			"sub": analyst.String(), "aud": []string{issuer}, "exp": e.clock.Now().Add(time.Minute).Unix()}))...), orchCert, 400, "invalid_request", "actor_token"},
		{"certificate neither subject nor actor", x(childSVID, jwt, mcpResource, actor(e.plainSVID(t, reporter, issuer))...), intruderCert, 401, "invalid_client", "actor_certificate"},
		{"client_id of a third agent", x(rootSVID, jwt, mcpResource, "client_id", intruder.String()), orchCert, 401, "invalid_client", "client_id"},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d cases", len(cases))
	}
	countDelegations := func() int {
		ds, _, err := e.store.ListDelegations(context.Background(), store.Filter{}, store.Page{Size: store.MaxPageSize})
		if err != nil {
			t.Fatal(err)
		}
		return len(ds)
	}
	delegationsBefore := countDelegations()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := e.post(authserver.TokenPath, tc.body, tc.cert, nil)
			var body errorResponse
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("status %d, body %q: %v", w.Code, w.Body, err)
			}
			if w.Code != tc.status || body.Error != tc.code || body.Description == "" {
				t.Fatalf("got %d %s (%s), want %d %s", w.Code, body.Error, body.Description, tc.status, tc.code)
			}
			denied := e.events(t, audit.TypeDenied)
			if last := denied[len(denied)-1]; last.Detail["reason"] != tc.reason || last.Detail["error"] != tc.code {
				t.Fatalf("audited reason %q error %q, want %q %q", last.Detail["reason"], last.Detail["error"], tc.reason, tc.code)
			}
		})
	}
	if n := len(e.events(t, audit.TypeTokenIssued)) - issuedBefore; n != 0 {
		t.Fatalf("%d tokens issued by bad exchanges", n)
	}
	if n := countDelegations() - delegationsBefore; n != 0 {
		t.Fatalf("%d delegations stored by bad exchanges", n)
	}
	log := e.logText()
	for _, tok := range []string{rootSVID, childSVID, orchToken, unbound, forged, expired} {
		for _, part := range strings.Split(tok, ".")[1:] {
			if part != "" && strings.Contains(log, part) {
				t.Fatalf("the log holds part of a token")
			}
		}
	}
}

// TestExchangeWithoutAgents: a server given no declared agents narrows but
// never sub-delegates.
func TestExchangeWithoutAgents(t *testing.T) {
	e := newEnvWith(t, func(c *authserver.Config) { c.Agents = nil })
	orchCert := e.svidCert(t, e.ca, orchestrator)
	e.exchange(t, exchangeForm(e.assertion(t, e.root), authserver.TokenTypeJWT, mcpResource), orchCert)
	w := e.post(authserver.TokenPath, exchangeForm(e.assertion(t, e.root), authserver.TokenTypeJWT, mcpResource,
		"actor_token", e.plainSVID(t, analyst, issuer), "actor_token_type", authserver.TokenTypeJWT).Encode(), orchCert, nil)
	if w.Code != 400 || !strings.Contains(w.Body.String(), `"invalid_request"`) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if last := e.events(t, audit.TypeDenied); last[len(last)-1].Detail["reason"] != "sub_delegation_disabled" {
		t.Fatalf("reason %q", last[len(last)-1].Detail["reason"])
	}
}
