package mcpauth_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/agentid/agentid/pkg/server/servertest"
)

// BenchmarkVerify: one Verify of a bound access token with a warm JWKS
// (signature, claims, cnf against the TLS peer).
//
//	go test -run '^$' -bench Verify -benchmem ./pkg/mcpauth/
func BenchmarkVerify(b *testing.B) {
	f := newFixtureTB(b)
	id := f.delegateTB(b)
	at, err := f.orchestrator.AccessTokens(f.issuer, f.orchestrator.OAuthHTTPClient(f.roots))
	if err != nil {
		b.Fatal(err)
	}
	tok, err := at.Token(servertest.Ctx(b), id, f.resource)
	if err != nil {
		b.Fatal(err)
	}
	svid, _ := f.orchestrator.X509SVID()
	req := httptest.NewRequest(http.MethodPost, f.resource, nil)
	req.TLS = &tls.ConnectionState{PeerCertificates: svid.Certificates}
	if _, err := f.verifier.Verify(req.Context(), tok.Value, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.verifier.Verify(req.Context(), tok.Value, req); err != nil {
			b.Fatal(err)
		}
	}
}
