package httpmw_test

import (
	"crypto/tls"
	"net/http"
	"testing"

	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/httpmw"
	"github.com/agentid/agentid/pkg/verify/internal/testca"
)

// The middleware's cost per request once mTLS is established and the agent's
// token has been seen: BenchmarkMiddleware minus BenchmarkPlainHandler.
//
//	go test ./pkg/verify/httpmw/ -run '^$' -bench . -benchmem

type discard struct{ h http.Header }

func (d discard) Header() http.Header         { return d.h }
func (d discard) WriteHeader(int)             {}
func (d discard) Write(b []byte) (int, error) { return len(b), nil }

var ok = []byte("ok")

func benchRequest(b *testing.B, env *testca.Env) *http.Request {
	b.Helper()
	r, err := http.NewRequest("GET", "https://crm.example.org/campaigns", nil)
	if err != nil {
		b.Fatal(err)
	}
	// The connection state of a completed handshake with the agent.
	r.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: env.CA.X509SVID(b, env.Analyst).Certificates}
	r.Header.Set("Authorization", "Bearer "+env.Good(b))
	return r
}

func BenchmarkPlainHandler(b *testing.B) {
	env := testca.NewEnv(b)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(ok) })
	r := benchRequest(b, env)
	w := discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

func BenchmarkMiddleware(b *testing.B) {
	env := testca.NewEnv(b)
	mw, err := httpmw.New(httpmw.Config{Verifier: env.Verifier(b), Require: []verify.Requirement{verify.RequireScopes("campaigns:read")}})
	if err != nil {
		b.Fatal(err)
	}
	h := mw.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := httpmw.PrincipalFrom(r); !ok {
			b.Fatal("no principal")
		}
		w.Write(ok)
	}))
	r := benchRequest(b, env)
	w := discard{h: http.Header{}}
	h.ServeHTTP(w, r) // the token is now cached, as for an agent's second call
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}
