package sidecar_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/server/servertest"
	"github.com/agentid/agentid/pkg/sidecar"
)

// percentiles reports p50 and p99 of latencies, in µs.
func percentiles(b *testing.B, name string, lat []time.Duration) time.Duration {
	b.Helper()
	slices.Sort(lat)
	p50 := lat[len(lat)/2]
	b.ReportMetric(float64(p50.Nanoseconds())/1e3, name+"p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, name+"p99-µs")
	return p50
}

func drain(b *testing.B, resp *http.Response, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

// BenchmarkTokenEndpointWarm is GET /v1/token over loopback HTTP with a
// warm cache, as a Python agent calls it before each request.
func BenchmarkTokenEndpointWarm(b *testing.B) {
	f := newFixture(b)
	id := f.delegate(b)
	url := f.api + "/v1/token?audience=" + servertest.Verifier.String() + "&delegation=" + id
	client := &http.Client{}
	resp, err := client.Get(url)
	drain(b, resp, err)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		resp, err := client.Get(url)
		drain(b, resp, err)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	percentiles(b, "", lat)
}

// BenchmarkProxyVsDirect sends, in each iteration, the same delegated GET
// once from a Go mTLS client straight to the upstream (agentclient's
// Transport, pooled) and once as plain HTTP through the egress proxy, and
// reports both medians and their ratio. The upstream verifies the token
// (pkg/verify) either way. work=0 is an upstream that answers at once, so
// the ratio shows the proxy's fixed cost against the cheapest possible
// call; work=200µs has the upstream wait 200µs (time.Sleep) first, as a
// service doing I/O would. listen=unix has the proxy on a unix socket (as
// the README recommends outside a pod) instead of loopback TCP.
func BenchmarkProxyVsDirect(b *testing.B) {
	for _, work := range []string{"0", "200µs"} {
		b.Run("work="+work, func(b *testing.B) {
			f := newFixture(b)
			benchVsDirect(b, f, "proxy", work, &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}, f.proxy)
		})
	}
	b.Run("listen=unix/work=0", func(b *testing.B) {
		dir, err := os.MkdirTemp("", "sc") // short: a socket path is at most 107 bytes
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		sock := filepath.Join(dir, "proxy.sock")
		f := newFixtureProxyOn(b, "unix://"+sock)
		var d net.Dialer
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "unix", sock) }}}
		benchVsDirect(b, f, "proxy", "0", client, "http://sidecar")
	})
}

// BenchmarkRelayVsDirect is a reference measurement, not a test of the
// sidecar: the same Go mTLS client talks to the same upstream once
// directly and once through a bare TCP relay on loopback (accept, dial the
// upstream, copy bytes both ways, no parsing), interleaved as in
// BenchmarkProxyVsDirect. relay/direct is the least any extra loopback hop
// can cost on this machine, so it bounds what proxy/direct can reach.
func BenchmarkRelayVsDirect(b *testing.B) {
	f := newFixture(b)
	relay := startRelay(b, f.crm.addr)
	id := delegation.MustParseID(f.delegate(b))
	tr, err := f.sc.Agent().Transport(servertest.Verifier, "")
	if err != nil {
		b.Fatal(err)
	}
	ctx := agentclient.WithDelegation(context.Background(), id)
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+relay+"/campaigns?work=0", nil)
	// The relayed client is a second agentclient Transport, so it has its
	// own pool of connections, all through the relay; the upstream's
	// SPIFFE ID is still checked end to end.
	interleave(b, f, "relay", "0", &http.Client{Transport: tr}, req)
}

// startRelay listens on loopback and pipes every connection to upstream.
func startRelay(tb testing.TB, upstream string) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	tb.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(u, c)
			go pipe(c, u)
		}
	}()
	return l.Addr().String()
}

// benchVsDirect measures the delegated GET through the proxy at proxyURL
// (Host: crm) with client against the direct call.
func benchVsDirect(b *testing.B, f *fixture, name, work string, client *http.Client, proxyURL string) (direct, proxied time.Duration) {
	idText := f.delegate(b)
	req, _ := http.NewRequest("GET", proxyURL+"/campaigns?work="+work, nil)
	req.Host = "crm"
	req.Header.Set(sidecar.DelegationHeader, idText)
	return interleave(b, f, name, work, client, req)
}

// interleave sends, in each iteration, the delegated GET straight to the
// upstream and then req with client, so both see the same machine load,
// and reports both medians and name/direct.
func interleave(b *testing.B, f *fixture, name, work string, client *http.Client, req *http.Request) (direct, other time.Duration) {
	id, ok := agentclient.DelegationFrom(req.Context())
	if !ok {
		if id, ok = parseHeaderID(req); !ok {
			b.Fatal("request names no delegation")
		}
	}
	tr, err := f.sc.Agent().Transport(servertest.Verifier, "")
	if err != nil {
		b.Fatal(err)
	}
	directClient := &http.Client{Transport: tr}
	ctx := agentclient.WithDelegation(context.Background(), id)
	directReq, _ := http.NewRequestWithContext(ctx, "GET", "https://"+f.crm.addr+"/campaigns?work="+work, nil)
	for range 20 { // warm both pools and the token caches
		resp, err := directClient.Do(directReq)
		drain(b, resp, err)
		resp, err = client.Do(req)
		drain(b, resp, err)
	}
	dl := make([]time.Duration, 0, b.N)
	ol := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		resp, err := directClient.Do(directReq)
		drain(b, resp, err)
		mid := time.Now()
		resp, err = client.Do(req)
		drain(b, resp, err)
		ol = append(ol, time.Since(mid))
		dl = append(dl, mid.Sub(start))
	}
	b.StopTimer()
	d := percentiles(b, "direct-", dl)
	o := percentiles(b, name+"-", ol)
	b.ReportMetric(float64(o)/float64(d), name+"/direct")
	b.ReportMetric(float64((o-d).Nanoseconds())/1e3, name+"-added-µs")
	return d, o
}

// BenchmarkEgressFloor checks the egress proxy's floors in one run: the
// p50 it adds to a delegated GET over a direct Go mTLS call must be at
// most 40 µs to an upstream that does no work, and the proxied p50 at most
// 1.05× the direct one to an upstream taking 1 ms. The bare TCP relay is
// measured beside them as the floor of any extra hop on this machine.
//
//	go test -run '^$' -bench EgressFloor -benchtime 5000x ./pkg/sidecar/
func BenchmarkEgressFloor(b *testing.B) {
	var added0 time.Duration
	var ratio1ms float64
	b.Run("proxy/work=0", func(b *testing.B) {
		f := newFixture(b)
		d, o := benchVsDirect(b, f, "proxy", "0", &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}, f.proxy)
		added0 = o - d
	})
	b.Run("proxy/work=1ms", func(b *testing.B) {
		f := newFixture(b)
		d, o := benchVsDirect(b, f, "proxy", "1ms", &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}, f.proxy)
		ratio1ms = float64(o) / float64(d)
	})
	b.Run("relay/work=0", BenchmarkRelayVsDirect)
	b.Logf("proxy adds %s at p50 to a zero-work upstream (floor 40µs); %.3f× to a 1 ms upstream (floor 1.05×)", added0, ratio1ms)
	if added0 > 40*time.Microsecond {
		b.Errorf("proxy adds %s at p50 over a direct mTLS call, want at most 40µs", added0)
	}
	if ratio1ms > 1.05 {
		b.Errorf("proxy/direct p50 to a 1 ms upstream is %.3f×, want at most 1.05×", ratio1ms)
	}
}

func parseHeaderID(req *http.Request) (delegation.ID, bool) {
	id, err := delegation.ParseID(req.Header.Get(sidecar.DelegationHeader))
	return id, err == nil
}
