//go:build e2e

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/agentid/agentid/test/e2e/stack"
)

// verifyOutside checks a JWT-SVID the way a verifier that knows nothing of
// SPIFFE does: the issuer's OpenID discovery document (served by SPIRE's
// oidc-discovery-provider) names the JWKS, go-jose checks the signature with
// the key of the token's kid, and the registered claims are validated on the
// wall clock. It returns every claim of the payload.
func verifyOutside(t *testing.T, st *stack.Stack, token string) map[string]any {
	t.Helper()
	var disco struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	getJSON(t, st.Discovery.Issuer()+"/.well-known/openid-configuration", &disco)
	if disco.Issuer != st.SPIRE.JWTIssuer() {
		t.Fatalf("discovery issuer %q, want the server's jwt_issuer %q", disco.Issuer, st.SPIRE.JWTIssuer())
	}
	var keys jose.JSONWebKeySet
	getJSON(t, disco.JWKSURI, &keys)

	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256, jose.PS256})
	if err != nil {
		t.Fatalf("parse JWT-SVID: %v", err)
	}
	if len(tok.Headers) != 1 {
		t.Fatalf("JWT-SVID has %d signatures", len(tok.Headers))
	}
	kid := tok.Headers[0].KeyID
	k := keys.Key(kid)
	if len(k) != 1 {
		t.Fatalf("kid %q: %d keys in the JWKS at %s", kid, len(k), disco.JWKSURI)
	}
	var registered jwt.Claims
	all := map[string]any{}
	if err := tok.Claims(k[0].Key, &registered, &all); err != nil {
		t.Fatalf("JWT-SVID signature does not verify with the JWKS key %q: %v", kid, err)
	}
	if err := registered.ValidateWithLeeway(jwt.Expected{Issuer: disco.Issuer, Time: time.Now()}, 0); err != nil {
		t.Fatalf("JWT-SVID claims: %v", err)
	}
	return all
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// checkClaims compares a delegated token's claims with what pkg/claims
// says the composer writes for delegation d, exactly: no claim more, none
// less. exp and iat are checked for their relation only: the entry's
// five-minute JWT-SVID lifetime, never beyond the delegation.
func checkClaims(t *testing.T, got map[string]any, st *stack.Stack, agent spiffeid.ID, aud string, d *delegationv1.Delegation, scope string) {
	t.Helper()
	iat, _ := got["iat"].(float64)
	exp, _ := got["exp"].(float64)
	if exp-iat != 300 || time.Unix(int64(exp), 0).After(d.ExpiresAt.AsTime()) {
		t.Errorf("iat %v exp %v: want a 300 s lifetime ending by the delegation's expiry %s", iat, exp, d.ExpiresAt.AsTime())
	}
	if issued := time.Unix(int64(iat), 0); time.Since(issued) > time.Minute || time.Until(issued) > 5*time.Second {
		t.Errorf("iat %s is not now", issued)
	}
	rest := map[string]any{}
	for k, v := range got {
		if k != "iat" && k != "exp" {
			rest[k] = v
		}
	}
	chain := make([]any, len(d.Chain))
	for i, c := range d.Chain {
		chain[i] = c
	}
	want := map[string]any{
		"sub": agent.String(),
		"aud": []any{aud},
		"iss": st.SPIRE.JWTIssuer(),
		"principal": map[string]any{
			"iss": d.Principal.GetIssuer(), "sub": d.Principal.GetSubject(), "email": d.Principal.GetEmail(),
		},
		"scope": scope,
		"delegation": map[string]any{
			"version":    "1",
			"id":         d.Id,
			"root":       d.RootId,
			"chain":      chain,
			"expires_at": d.ExpiresAt.AsTime().UTC().Format(time.RFC3339),
		},
	}
	if !reflect.DeepEqual(rest, want) {
		t.Fatalf("delegated JWT-SVID claims\n got %s\nwant %s", mustJSON(rest), mustJSON(want))
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// step7: a verifier outside SPIFFE (go-jose and the discovery provider's
// JWKS) accepts market-analysis's delegated token and reads alice and the
// chain from it; one changed byte of the payload breaks the signature.
func (sc *scenario) step7(t *testing.T) {
	st := sc.st
	got := verifyOutside(t, st, sc.subTok)
	p, _ := got["principal"].(map[string]any)
	d, _ := got["delegation"].(map[string]any)
	if p["sub"] != "alice" || !reflect.DeepEqual(d["chain"], []any{stack.Orchestrator.String(), stack.Analyst.String()}) {
		t.Fatalf("outside verifier read principal %v and delegation %v", p, d)
	}
	forged := forgeSubject(t, sc.subTok, "market-analysis", "market-analysiz")
	tok, err := jwt.ParseSigned(forged, []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256, jose.PS256})
	if err != nil {
		t.Fatalf("parse forged token: %v", err)
	}
	var keys jose.JSONWebKeySet
	getJSON(t, st.Discovery.JWKSURL(), &keys)
	k := keys.Key(tok.Headers[0].KeyID)
	var c jwt.Claims
	if len(k) != 1 || tok.Claims(k[0].Key, &c) == nil {
		t.Fatalf("a token with a changed sub verified")
	}
}

// forgeSubject rewrites from to to inside a token's payload and keeps the
// original signature.
func forgeSubject(t *testing.T, token, from, to string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(payload), from, to, 1)
	if changed == string(payload) {
		t.Fatalf("payload has no %q", from)
	}
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(changed)) + "." + parts[2]
}
