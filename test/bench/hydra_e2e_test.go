//go:build e2e

package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/authserver"
	"github.com/agentid/agentid/pkg/authserver/keyring"
	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store/boltstore"
	"github.com/agentid/agentid/test/harness"
)

var minHydraRatio = flag.Float64("min-hydra-ratio", 5, "BenchmarkGrantVsHydra fails when agentid's grants/s is below this multiple of Hydra's")

// grantClients is the authorization server issue's load: 16 concurrent
// clients, as pkg/authserver's BenchmarkJWTBearerGrant.
const grantClients = 16

// BenchmarkGrantVsHydra measures, in one run on one machine, agentid's
// jwt-bearer grant (as pkg/authserver's BenchmarkJWTBearerGrant/bearer:
// TLS on loopback, bbolt on disk with a durable audit append per grant,
// every assertion new) and Ory Hydra v2.3.0's client_credentials grant
// (test/harness: `hydra serve all --dev`, DSN=memory, log level error,
// client_secret_basic with Hydra's default secret hashing, opaque tokens),
// both from 16 concurrent keep-alive clients, and fails below
// -min-hydra-ratio (5) times Hydra's rate. Hydra is the better-placed of the
// two: an in-memory store and plain HTTP on loopback.
//
// It lives in the test module (not pkg/authserver) because it starts Hydra
// through test/harness, whose dependencies the main module does not carry.
//
//	make tools-hydra
//	go -C test test -tags e2e -run '^$' -bench GrantVsHydra -benchtime 3000x ./bench/
func BenchmarkGrantVsHydra(b *testing.B) {
	hydra := harness.StartHydra(b, harness.HydraOptions{LogLevel: "error"})
	secret := hydra.ClientCredentialsClient(b, "bench-client", "read")
	hydraBody := url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}.Encode()
	hydraRequest := func(int) *http.Request {
		r := formRequest(hydra.TokenURL(), hydraBody)
		r.SetBasicAuth("bench-client", secret)
		return r
	}
	if resp, err := http.DefaultClient.Do(hydraRequest(0)); err != nil {
		b.Fatalf("hydra client_credentials: %v", err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusOK {
		b.Fatalf("hydra client_credentials: status %d", resp.StatusCode)
	}

	var agentid, hy grantStats
	b.Run("agentid", func(b *testing.B) {
		g := newGrantServer(b)
		srv := httptest.NewUnstartedServer(g.handler)
		srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}
		srv.StartTLS()
		b.Cleanup(srv.Close)
		bodies := make([]string, b.N)
		for i := range bodies {
			bodies[i] = g.grantBody(b, fmt.Sprintf("assertion-%d", i)) // every assertion new: no verifier cache hit
		}
		agentid = runGrants(b, srv.Certificate(), b.N, func(i int) *http.Request {
			return formRequest(srv.URL+authserver.TokenPath, bodies[i])
		})
	})
	b.Run("hydra", func(b *testing.B) {
		hy = runGrants(b, nil, b.N, hydraRequest)
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

const (
	grantIssuer   = "https://agentid.example.com"
	grantResource = "https://mcp.example.com/mcp"
)

// grantServer is agentid's authorization server on a bbolt store holding
// one delegation, from alice to the analyst agent, and the trust domain's
// JWT authority that signs the analyst's delegated JWT-SVIDs (the
// assertions), as SPIRE's would.
type grantServer struct {
	handler http.Handler
	signer  jose.Signer
	child   *delegation.Delegation
}

func newGrantServer(tb testing.TB) *grantServer {
	tb.Helper()
	ctx := context.Background()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	analyst := spiffeid.RequireFromString("spiffe://example.org/agent/market-analysis")
	st, err := boltstore.Open(filepath.Join(tb.TempDir(), "agentid.db"), boltstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	keys, err := keyring.New(keyring.Config{Store: st})
	if err != nil {
		tb.Fatal(err)
	}
	if err := keys.Refresh(ctx); err != nil {
		tb.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "spire-jwt-1"))
	if err != nil {
		tb.Fatal(err)
	}
	bundle := jwtbundle.New(td)
	if err := bundle.AddJWTAuthority("spire-jwt-1", &key.PublicKey); err != nil {
		tb.Fatal(err)
	}

	user, err := delegation.NewUser("https://idp.example.com", "alice", "alice@example.com")
	if err != nil {
		tb.Fatal(err)
	}
	scopes := delegation.MustParseScopes("campaigns:read", "compliance:check")
	d, err := delegation.NewRoot(delegation.RootParams{Agent: analyst, User: user, MaxDepth: 1, Scopes: scopes,
		CreatedAt: time.Now(), ExpiresAt: time.Now().Add(2 * time.Hour)})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := st.CreateDelegation(ctx, d, audit.Event{Type: audit.TypeDelegationCreated, Actor: "local"}); err != nil {
		tb.Fatal(err)
	}
	server, err := authserver.New(authserver.Config{
		Issuer:    grantIssuer,
		Resources: []authserver.Resource{{URI: grantResource, Scopes: scopes}},
		Keys:      keys, Store: st, Bundles: bundle, TrustDomains: []spiffeid.TrustDomain{td},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return &grantServer{handler: server.Handler(), signer: signer, child: d}
}

// grantBody is a jwt-bearer token request whose assertion is the analyst's
// delegated JWT-SVID for the authorization server, with jti set.
func (g *grantServer) grantBody(tb testing.TB, jti string) string {
	tb.Helper()
	c := claims.FromDelegation(g.child).Map()
	now := time.Now()
	c["sub"] = g.child.Agent.String()
	c["aud"] = []string{grantIssuer}
	c["iat"] = now.Unix()
	c["exp"] = now.Add(5 * time.Minute).Unix()
	c["jti"] = jti
	payload, err := json.Marshal(c)
	if err != nil {
		tb.Fatal(err)
	}
	jws, err := g.signer.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	assertion, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return url.Values{"grant_type": {authserver.GrantTypeJWTBearer}, "assertion": {assertion}, "resource": {grantResource}}.Encode()
}

func formRequest(u, body string) *http.Request {
	r, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		panic(err) // a constant method and a URL the benchmark built
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// grantStats is what runGrants measured.
type grantStats struct {
	rate     float64 // grants/s
	p50, p99 float64 // ms
}

// runGrants sends n requests (request(i) builds the i-th) from grantClients
// clients, each on its own keep-alive connection, and reports grants/s and
// latency percentiles. Every answer must be 200.
func runGrants(b *testing.B, serverCert *x509.Certificate, n int, request func(int) *http.Request) grantStats {
	b.Helper()
	pool := x509.NewCertPool()
	if serverCert != nil {
		pool.AddCert(serverCert)
	}
	latencies := make([][]time.Duration, grantClients)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range grantClients {
		client := &http.Client{Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 1,
		}}
		wg.Go(func() {
			defer client.CloseIdleConnections()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				req := request(i)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.Store(err.Error())
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				latencies[w] = append(latencies[w], time.Since(t0))
				if resp.StatusCode != http.StatusOK {
					failed.Store(fmt.Sprintf("status %d: %s", resp.StatusCode, body))
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failed.Load(); f != nil {
		b.Fatal(f)
	}
	all := slices.Concat(latencies...)
	slices.Sort(all)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	st := grantStats{rate: float64(n) / elapsed.Seconds(), p50: ms(percentile(all, 50)), p99: ms(percentile(all, 99))}
	b.ReportMetric(st.rate, "grants/s")
	b.ReportMetric(st.p50, "p50-ms")
	b.ReportMetric(st.p99, "p99-ms")
	b.ReportMetric(0, "ns/op")
	return st
}
