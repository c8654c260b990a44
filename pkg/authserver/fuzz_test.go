package authserver_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/agentid/agentid/pkg/authserver"
)

// FuzzTokenRequest sends arbitrary form bodies, and well-formed forms around
// arbitrary assertions, to the token endpoint. Only a valid assertion for an
// active delegation may get a token; anything else must get an RFC 6749
// error (4xx, a JSON body with an error code), never a 5xx or a panic.
func FuzzTokenRequest(f *testing.F) {
	e := newEnv(f)
	good := e.assertion(f, e.child)
	f.Add(grantForm(good, mcpResource).Encode(), good)
	f.Add("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c&resource=x", "a.b.c")
	f.Add("a=1&a=2;b", "eyJhbGciOiJub25lIn0.e30.")
	f.Add("%", strings.Repeat(".", 40))
	f.Fuzz(func(t *testing.T, body, assertion string) {
		for _, b := range []string{body, grantForm(assertion, mcpResource).Encode()} {
			w := e.post(authserver.TokenPath, b, nil, nil)
			if w.Code == 200 {
				// Only the one valid assertion may get a token.
				if f, _ := url.ParseQuery(b); f.Get("assertion") != good {
					t.Fatalf("token issued for %q", b)
				}
				continue
			}
			var body struct{ Error string }
			if w.Code >= 500 || w.Code < 400 || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Error == "" {
				t.Fatalf("status %d body %q", w.Code, w.Body)
			}
		}
	})
}

// FuzzTokenExchange sends token exchange requests with arbitrary subject and
// actor tokens, token types and scopes, over the orchestrator's certificate.
// Only the one valid subject token (with no actor, or the one valid actor
// token) may get a token; anything else gets an RFC 6749 error, never a 5xx
// or a panic, and no answer echoes a token.
func FuzzTokenExchange(f *testing.F) {
	e := newEnv(f)
	cert := e.svidCert(f, e.ca, orchestrator)
	good := e.assertion(f, e.root)
	goodActor := e.plainSVID(f, analyst, issuer)
	bound := e.grant(f, e.root, crmResource, cert).AccessToken
	f.Add(good, authserver.TokenTypeJWT, "", "", "campaigns:read")
	f.Add(good, authserver.TokenTypeJWT, goodActor, authserver.TokenTypeJWT, "")
	f.Add(bound, authserver.TokenTypeAccessToken, "", "", "crm:write")
	f.Add("a.b.c", authserver.TokenTypeAccessToken, "x.y.z", authserver.TokenTypeJWT, "")
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.e30.", "urn:ietf:params:oauth:token-type:id_token", "", "", "a b")
	f.Fuzz(func(t *testing.T, subject, subjectType, actor, actorType, scope string) {
		form := exchangeForm(subject, subjectType, mcpResource)
		if actor != "" || actorType != "" {
			form.Set("actor_token", actor)
			form.Set("actor_token_type", actorType)
		}
		if scope != "" {
			form.Set("scope", scope)
		}
		w := e.post(authserver.TokenPath, form.Encode(), cert, nil)
		if w.Code == 200 {
			if (subject != good && subject != bound) || (actor != "" && actor != goodActor) {
				t.Fatalf("token issued for subject %q actor %q", subject, actor)
			}
			return
		}
		var body struct{ Error string }
		if w.Code >= 500 || w.Code < 400 || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Error == "" {
			t.Fatalf("status %d body %q", w.Code, w.Body)
		}
		for _, tok := range []string{subject, actor} {
			if len(tok) > 16 && strings.Contains(w.Body.String(), tok) {
				t.Fatal("the answer echoes a token")
			}
		}
	})
}
