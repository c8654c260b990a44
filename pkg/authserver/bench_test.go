package authserver_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/authserver"
)

// benchClients is the load: 16 concurrent clients.
const benchClients = 16

// BenchmarkJWTBearerGrant measures the token endpoint over a real TLS
// listener on loopback with a bbolt store on disk (every grant reads the
// delegation and its root and durably appends its audit event): 16 clients,
// each on its own keep-alive connection, each request with an assertion
// never seen before (minted before the timer starts, as SPIRE would have).
// It reports grants/s and the latency percentiles of one grant.
//
//	go test -run '^$' -bench JWTBearerGrant -benchtime 20000x ./pkg/authserver/
//
// The floor the issue names: 3,000 grants/s on 2 cores, p99 under 10 ms.
func BenchmarkJWTBearerGrant(b *testing.B) {
	for _, mode := range []string{"bearer", "mtls"} {
		b.Run(mode, func(b *testing.B) {
			e := newEnv(b)
			srv := httptest.NewUnstartedServer(e.handler)
			srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}
			srv.StartTLS()
			b.Cleanup(srv.Close)
			var certs []tls.Certificate
			if mode == "mtls" {
				certs = []tls.Certificate{*e.svidCert(b, e.ca, analyst)}
			}
			bodies := make([]string, b.N)
			for i := range bodies {
				c := e.assertionClaims(e.child, issuer)
				c["jti"] = fmt.Sprintf("assertion-%d", i) // every assertion new: no verifier cache hit
				bodies[i] = grantForm(e.jwt.mint(b, c), mcpResource).Encode()
			}
			runGrants(b, srv.Certificate(), certs, len(bodies), func(i int) *http.Request {
				return formRequest(srv.URL+authserver.TokenPath, bodies[i])
			})
		})
	}
}

func formRequest(url, body string) *http.Request {
	r, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// grantStats is what runGrants measured.
type grantStats struct {
	rate     float64 // grants/s
	p50, p99 float64 // ms
}

// runGrants sends n requests (request(i) builds the i-th) from benchClients
// clients, each on its own keep-alive connection, and reports grants/s and
// latency percentiles. Every answer must be 200.
func runGrants(b *testing.B, serverCert *x509.Certificate, certs []tls.Certificate, n int, request func(int) *http.Request) grantStats {
	b.Helper()
	pool := x509.NewCertPool()
	if serverCert != nil {
		pool.AddCert(serverCert)
	}
	latencies := make([][]time.Duration, benchClients)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < benchClients; w++ {
		client := &http.Client{Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, Certificates: certs},
			MaxIdleConnsPerHost: 1,
		}}
		wg.Add(1)
		go func() {
			defer wg.Done()
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
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failed.Load(); f != nil {
		b.Fatal(f)
	}
	all := slices.Concat(latencies...)
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(float64(len(all)-1)*p)].Microseconds()) / 1000 }
	st := grantStats{rate: float64(n) / elapsed.Seconds(), p50: pct(0.50), p99: pct(0.99)}
	b.ReportMetric(st.rate, "grants/s")
	b.ReportMetric(st.p50, "p50-ms")
	b.ReportMetric(st.p99, "p99-ms")
	b.ReportMetric(0, "ns/op")
	return st
}
