//go:build e2e

package authserver_test

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/agentid/agentid/pkg/authserver"
	"github.com/agentid/agentid/test/harness"
)

var minHydraRatio = flag.Float64("min-hydra-ratio", 5, "BenchmarkGrantVsHydra fails when agentid's grants/s is below this multiple of Hydra's")

// BenchmarkGrantVsHydra measures, in one run on one machine, agentid's
// jwt-bearer grant (as BenchmarkJWTBearerGrant/bearer: TLS, bbolt on disk,
// every assertion new) and Ory Hydra v2.3.0's client_credentials grant
// (test/harness: `hydra serve all --dev`, DSN=memory, log level error,
// client_secret_basic with Hydra's default secret hashing, opaque tokens),
// both from 16 concurrent keep-alive clients, and fails below
// -min-hydra-ratio (5) times Hydra's rate. Hydra is the better-placed of the
// two: an in-memory store and plain HTTP on loopback.
//
//	test/tools/build.sh hydra
//	go test -tags e2e -run '^$' -bench GrantVsHydra -benchtime 3000x ./pkg/authserver/
func BenchmarkGrantVsHydra(b *testing.B) {
	hydra := harness.StartHydra(b, harness.HydraOptions{LogLevel: "error"})
	secret := hydra.ClientCredentialsClient(b, "bench-client", "read")
	probe := formRequest(hydra.TokenURL(), url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}.Encode())
	probe.SetBasicAuth("bench-client", secret)
	if resp, err := http.DefaultClient.Do(probe); err != nil || resp.StatusCode != 200 {
		b.Fatalf("hydra client_credentials: %v %v", resp, err)
	}

	var agentid, hy grantStats
	b.Run("agentid", func(b *testing.B) {
		e := newEnv(b)
		srv := httptest.NewUnstartedServer(e.handler)
		srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
		srv.StartTLS()
		b.Cleanup(srv.Close)
		bodies := make([]string, b.N)
		for i := range bodies {
			c := e.assertionClaims(e.child, issuer)
			c["jti"] = fmt.Sprintf("assertion-%d", i)
			bodies[i] = grantForm(e.jwt.mint(b, c), mcpResource).Encode()
		}
		agentid = runGrants(b, srv.Certificate(), nil, b.N, func(i int) *http.Request {
			return formRequest(srv.URL+authserver.TokenPath, bodies[i])
		})
	})
	b.Run("hydra", func(b *testing.B) {
		body := url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}.Encode()
		hy = runGrants(b, nil, nil, b.N, func(int) *http.Request {
			r := formRequest(hydra.TokenURL(), body)
			r.SetBasicAuth("bench-client", secret)
			return r
		})
	})
	if hy.rate == 0 || agentid.rate == 0 {
		return
	}
	ratio := agentid.rate / hy.rate
	b.Logf("agentid %.0f grants/s (p50 %.2f ms, p99 %.2f ms); hydra %.0f grants/s (p50 %.2f ms, p99 %.2f ms); ratio %.1f",
		agentid.rate, agentid.p50, agentid.p99, hy.rate, hy.p50, hy.p99, ratio)
	if ratio < *minHydraRatio {
		b.Errorf("agentid is %.1f× Hydra's rate, want at least %.1f×", ratio, *minHydraRatio)
	}
}
