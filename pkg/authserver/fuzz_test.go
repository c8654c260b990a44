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
