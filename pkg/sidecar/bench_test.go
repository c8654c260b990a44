package sidecar_test

import (
	"context"
	"io"
	"net/http"
	"slices"
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
// service doing I/O would.
func BenchmarkProxyVsDirect(b *testing.B) {
	for _, work := range []string{"0", "200µs"} {
		b.Run("work="+work, func(b *testing.B) { benchProxyVsDirect(b, work) })
	}
}

func benchProxyVsDirect(b *testing.B, work string) {
	f := newFixture(b)
	idText := f.delegate(b)
	id := delegation.MustParseID(idText)
	tr, err := f.sc.Agent().Transport(servertest.Verifier, "")
	if err != nil {
		b.Fatal(err)
	}
	direct := &http.Client{Transport: tr}
	viaProxy := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	ctx := agentclient.WithDelegation(context.Background(), id)
	path := "/campaigns?work=" + work
	directReq, _ := http.NewRequestWithContext(ctx, "GET", "https://"+f.crm.addr+path, nil)
	proxyReq, _ := http.NewRequest("GET", f.proxy+path, nil)
	proxyReq.Host = "crm"
	proxyReq.Header.Set(sidecar.DelegationHeader, idText)
	for range 20 { // warm both pools and the token caches
		resp, err := direct.Do(directReq)
		drain(b, resp, err)
		resp, err = viaProxy.Do(proxyReq)
		drain(b, resp, err)
	}
	dl := make([]time.Duration, 0, b.N)
	pl := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		resp, err := direct.Do(directReq)
		drain(b, resp, err)
		mid := time.Now()
		resp, err = viaProxy.Do(proxyReq)
		drain(b, resp, err)
		pl = append(pl, time.Since(mid))
		dl = append(dl, mid.Sub(start))
	}
	b.StopTimer()
	d := percentiles(b, "direct-", dl)
	p := percentiles(b, "proxy-", pl)
	b.ReportMetric(float64(p)/float64(d), "proxy/direct")
}
