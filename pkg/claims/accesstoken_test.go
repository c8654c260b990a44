package claims_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func accessToken(t testing.TB) claims.AccessToken {
	d := child(t)
	return claims.AccessToken{
		Issuer: "https://agentid.example.com", User: d.User, Audience: "https://mcp.example.com/mcp",
		Chain: d.Chain, Scopes: d.Scopes, IssuedAt: t0, ExpiresAt: t0.Add(5 * time.Minute), ID: "jti-1",
		Delegation: d.ID, Root: d.Root, CertThumbprint: "x5t",
	}
}

const accessTokenJSON = `{"iss":"https://agentid.example.com","sub":"https://idp.example.com#alice","aud":"https://mcp.example.com/mcp",` +
	`"client_id":"spiffe://example.org/agent/market-analysis",` +
	`"act":{"sub":"spiffe://example.org/agent/market-analysis","act":{"sub":"spiffe://example.org/agent/orchestrator"}},` +
	`"scope":"campaigns:read compliance:check","iat":1795694400,"exp":1795694700,"jti":"jti-1","cnf":{"x5t#S256":"x5t"},` +
	`"principal":{"iss":"https://idp.example.com","sub":"alice","email":"alice@example.com"},` +
	`"delegation":{"version":"1","id":"dlg_01jd0000000000000000000000","root":"dlg_01jc0000000000000000000000"}}`

func TestAccessTokenEncoding(t *testing.T) {
	at := accessToken(t)
	b, err := json.Marshal(at)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != accessTokenJSON {
		t.Fatalf("got  %s\nwant %s", b, accessTokenJSON)
	}
	back, err := claims.DecodeAccessToken(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, at) {
		t.Fatalf("round trip\n got %+v\nwant %+v", back, at)
	}
	if back.Agent() != analyst || claims.SubjectOf(at.User) != "https://idp.example.com#alice" {
		t.Fatalf("agent %v", back.Agent())
	}
}

func TestDecodeAccessTokenRefuses(t *testing.T) {
	for name, tc := range map[string]struct{ from, to, want string }{
		"sub not the principal": {`"sub":"https://idp.example.com#alice"`, `"sub":"alice"`, "sub: is not the principal's issuer#subject"},
		"client_id not act.sub": {`"client_id":"spiffe://example.org/agent/market-analysis"`, `"client_id":"spiffe://example.org/agent/orchestrator"`, "client_id: is not act.sub"},
		"agent twice":           {`{"sub":"spiffe://example.org/agent/orchestrator"}`, `{"sub":"spiffe://example.org/agent/market-analysis"}`, "act: an agent is empty or appears twice"},
		"version":               {`"version":"1"`, `"version":"2"`, `delegation.version: unsupported version "2"`},
		"no exp":                {`"exp":1795694700,`, ``, "exp: iat and exp are required"},
		"root of a chain":       {`"root":"dlg_01jc0000000000000000000000"`, `"root":"dlg_01jd0000000000000000000000"`, "delegation.root: must equal id exactly when the chain has one agent"},
		"aud list of two":       {`"aud":"https://mcp.example.com/mcp"`, `"aud":["a","b"]`, "aud is neither a string nor a list of one string"},
		"trailing data":         {`0000000000"}}`, `0000000000"}} {}`, "data after the claims"},
	} {
		t.Run(name, func(t *testing.T) {
			bad := strings.Replace(accessTokenJSON, tc.from, tc.to, 1)
			_, err := claims.DecodeAccessToken([]byte(bad))
			if !errors.Is(err, claims.ErrMalformedAccessToken) || !strings.HasSuffix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want …%s", err, tc.want)
			}
		})
	}
	// A list of one audience is accepted (RFC 7519 allows either form).
	one := strings.Replace(accessTokenJSON, `"aud":"https://mcp.example.com/mcp"`, `"aud":["https://mcp.example.com/mcp"]`, 1)
	if at, err := claims.DecodeAccessToken([]byte(one)); err != nil || at.Audience != "https://mcp.example.com/mcp" {
		t.Fatalf("aud list of one: %v", err)
	}
	at := accessToken(t)
	at.Chain = []spiffeid.ID{}
	if _, err := json.Marshal(at); err == nil {
		t.Fatal("encoded a token without agents")
	}
	at = accessToken(t)
	at.Scopes = delegation.ScopeSet{}
	if _, err := json.Marshal(at); err == nil {
		t.Fatal("encoded a token without scopes")
	}
}

// FuzzDecodeAccessToken: no panic, only ErrMalformedAccessToken, and what is
// accepted encodes back to claims that decode to the same value.
func FuzzDecodeAccessToken(f *testing.F) {
	f.Add(accessTokenJSON)
	f.Add(`{}`)
	f.Add(`{"act":{"act":{"act":{"act":{"act":{"act":{"act":{"act":{"act":{"act":{"act":{}}}}}}}}}}}}`)
	f.Add(strings.Replace(accessTokenJSON, `,"cnf":{"x5t#S256":"x5t"}`, ``, 1))
	f.Fuzz(func(t *testing.T, payload string) {
		at, err := claims.DecodeAccessToken([]byte(payload))
		if err != nil {
			if !errors.Is(err, claims.ErrMalformedAccessToken) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		b, err := json.Marshal(at)
		if err != nil {
			t.Fatalf("accepted claims do not encode: %v", err)
		}
		again, err := claims.DecodeAccessToken(b)
		if err != nil || !reflect.DeepEqual(again, at) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, at, again)
		}
	})
}
