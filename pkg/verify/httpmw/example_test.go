package httpmw_test

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"testing"

	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/httpmw"
	"github.com/agentid/agentid/pkg/verify/internal/testca"
)

// exampleTB lets the example use the test CA outside a test.
type exampleTB struct{ testing.TB }

func (exampleTB) Helper()                   {}
func (exampleTB) Fatal(args ...any)         { panic(fmt.Sprint(args...)) }
func (exampleTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

func ExampleMiddleware_Handler() {
	env := testca.NewEnv(exampleTB{})
	v, err := verify.New(env.Config())
	if err != nil {
		panic(err)
	}
	mw, err := httpmw.New(httpmw.Config{Verifier: v})
	if err != nil {
		panic(err)
	}

	mux := http.NewServeMux()
	list := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := httpmw.PrincipalFrom(r)
		fmt.Fprintf(w, "%s for %s", p.Agent, p.User.Subject())
	})
	mux.Handle("/campaigns", mw.Require(verify.RequireScopes("campaigns:read"))(list))
	mux.Handle("/crm", mw.Require(verify.RequireScopes("crm:write"))(list))
	handler := mw.Handler(mux)
	// In a service: (&http.Server{Handler: handler, TLSConfig: verify.ServerTLSConfig(...)}).ListenAndServeTLS("", "")

	// What the server sees once the mTLS handshake with the
	// market-analysis agent has verified its X509-SVID.
	svid := env.CA.X509SVID(exampleTB{}, env.Analyst)
	token := env.Good(exampleTB{})
	for _, path := range []string{"/campaigns", "/crm"} {
		r, _ := http.NewRequest("GET", "https://crm.example.org"+path, nil)
		r.TLS = &tls.ConnectionState{PeerCertificates: svid.Certificates}
		r.Header.Set("Authorization", "Bearer "+token)
		w := &recorder{header: http.Header{}}
		handler.ServeHTTP(w, r)
		fmt.Printf("%s: %d %s\n", path, w.status, w.body)
	}
	// Output:
	// /campaigns: 200 spiffe://example.org/agent/market-analysis for alice
	// /crm: 403 {"error":"insufficient_scope","error_description":"verify: insufficient scope: missing crm:write"}
}
