package sidecar_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/server/servertest"
	"github.com/agentid/agentid/pkg/sidecar"
)

// scrape reads /metrics from the metrics listener at base and returns the
// samples of the named series that are not zero, as "name{labels} value"
// lines, sorted. Every outcome's series exists from the start at 0, so the
// non-zero ones are exactly what happened.
func scrape(tb testing.TB, base string, names ...string) []string {
	tb.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		tb.Fatalf("/metrics: %d", resp.StatusCode)
	}
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		for _, n := range names {
			if (strings.HasPrefix(line, n+"{") || strings.HasPrefix(line, n+" ")) && !strings.HasSuffix(line, " 0") {
				out = append(out, line)
			}
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func wantSamples(tb testing.TB, got []string, want ...string) {
	tb.Helper()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		tb.Fatalf("samples:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestMetricsTokenOutcomes(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	aud := "audience=" + servertest.Verifier.String()
	unknown := "dlg_01jd0000000000000000000000"
	for _, tt := range []struct {
		query   string
		headers []string
		down    bool
		status  int
	}{
		{aud + "&delegation=" + id, nil, false, 200},
		{aud + "&delegation=" + id, nil, false, 200}, // cached: counted all the same
		{aud, nil, false, 400},
		{aud + "&delegation=dlg_nope", nil, false, 400},
		{aud + "&delegation=" + unknown, nil, false, 403},
		{"audience=other&delegation=" + id, nil, true, 503},
		// Refused by the guard before reaching the endpoint: counted as a
		// browser refusal, not as a token request.
		{aud + "&delegation=" + id, []string{"Origin: https://evil.example"}, false, 403},
		{aud + "&delegation=" + id, []string{"Host: evil.example"}, false, 403},
	} {
		f.auth.SetServerDown(tt.down)
		r := f.do(t, "GET", f.api+"/v1/token?"+tt.query, nil, tt.headers...)
		f.auth.SetServerDown(false)
		if r.status != tt.status {
			t.Fatalf("%s: got %d %s, want %d", tt.query, r.status, r.body, tt.status)
		}
	}
	wantSamples(t, scrape(t, f.metrics, "agentid_sidecar_token_requests_total", "agentid_sidecar_api_browser_requests_refused_total"),
		`agentid_sidecar_api_browser_requests_refused_total 2`,
		`agentid_sidecar_token_requests_total{outcome="delegation_denied"} 1`,
		`agentid_sidecar_token_requests_total{outcome="invalid_request"} 2`,
		`agentid_sidecar_token_requests_total{outcome="ok"} 2`,
		`agentid_sidecar_token_requests_total{outcome="spire_unavailable"} 1`,
	)
}

func TestMetricsDelegationOutcomes(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	unknown := "dlg_01jd0000000000000000000000"
	for _, tt := range []struct {
		method, path string
		body         any
		headers      []string
		status       int
	}{
		{"POST", "/v1/delegations", `{}`, nil, 400},
		{"POST", "/v1/delegations", nil, []string{"Content-Type: text/plain"}, 415},
		{"POST", "/v1/delegations", `{"user_token":"` + strings.Repeat("a", 70<<10) + `"}`, nil, 413},
		{"POST", "/v1/delegations", `{"user_token":"not-a-jwt","scopes":["campaigns:read"],"ttl":"5m"}`, nil, 401},
		{"POST", "/v1/delegations/" + id + "/sub", map[string]any{"agent_id": servertest.Analyst.String(), "scopes": []string{"campaigns:read"}, "ttl": "10m"}, nil, 201},
		{"POST", "/v1/delegations/" + id + "/sub", `{"agent_id":"spiffe://example.org/agent/writer","scopes":["campaigns:read"],"ttl":"1m"}`, nil, 403},
		{"POST", "/v1/delegations/nope/sub", `{}`, nil, 400},
		{"DELETE", "/v1/delegations/" + unknown, nil, nil, 404},
		{"DELETE", "/v1/delegations/" + id, nil, nil, 200},
		// The parent is revoked now.
		{"POST", "/v1/delegations/" + id + "/sub", map[string]any{"agent_id": servertest.Analyst.String(), "scopes": []string{"campaigns:read"}, "ttl": "10m"}, nil, 409},
	} {
		r := f.do(t, tt.method, f.api+tt.path, tt.body, tt.headers...)
		if r.status != tt.status {
			t.Fatalf("%s %s: got %d %s, want %d", tt.method, tt.path, r.status, r.body, tt.status)
		}
	}
	wantSamples(t, scrape(t, f.metrics, "agentid_sidecar_delegation_requests_total"),
		`agentid_sidecar_delegation_requests_total{operation="create",outcome="invalid_request"} 1`,
		`agentid_sidecar_delegation_requests_total{operation="create",outcome="ok"} 1`,
		`agentid_sidecar_delegation_requests_total{operation="create",outcome="request_too_large"} 1`,
		`agentid_sidecar_delegation_requests_total{operation="create",outcome="unauthenticated"} 1`,
		`agentid_sidecar_delegation_requests_total{operation="create",outcome="unsupported_media_type"} 1`,
		`agentid_sidecar_delegation_requests_total{operation="revoke",outcome="not_found"} 1`,
		`agentid_sidecar_delegation_requests_total{operation="revoke",outcome="ok"} 1`,
		`agentid_sidecar_delegation_requests_total{operation="sub",outcome="failed_precondition"} 1`,
		`agentid_sidecar_delegation_requests_total{operation="sub",outcome="invalid_request"} 1`,
		`agentid_sidecar_delegation_requests_total{operation="sub",outcome="ok"} 1`,
		`agentid_sidecar_delegation_requests_total{operation="sub",outcome="permission_denied"} 1`,
	)
}

// Fail closed, visibly: no server configured, the server unreachable, and
// a server presenting another SPIFFE ID each have their outcome.
func TestMetricsDelegationServerFailures(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct {
		name, server string
		status       int
		want         string
	}{
		{"not configured", "", 501, `agentid_sidecar_delegation_requests_total{operation="create",outcome="not_configured"} 1`},
		{"server down", "server:\n  address: 127.0.0.1:1\n  spiffe_id: " + servertest.ServerID.String() + "\n", 503,
			`agentid_sidecar_delegation_requests_total{operation="create",outcome="server_unavailable"} 1`},
		{"server impostor", "server:\n  address: " + f.env.MTLSAddr + "\n  spiffe_id: spiffe://example.org/not-the-server\n", 502,
			`agentid_sidecar_delegation_requests_total{operation="create",outcome="server_identity_mismatch"} 1`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			config, err := sidecar.ParseConfig([]byte("listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\nrequest_timeout: 5s\nworkload_api: " + f.wl.Addr + "\n" + tt.server))
			if err != nil {
				t.Fatal(err)
			}
			sc, err := sidecar.Start(servertest.Ctx(t), config)
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			r := f.do(t, "POST", "http://"+sc.APIAddr().String()+"/v1/delegations", map[string]any{
				"user_token": f.env.AliceToken(t), "scopes": []string{"campaigns:read"}, "ttl": "5m",
			})
			if r.status != tt.status {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tt.status)
			}
			wantSamples(t, scrape(t, "http://"+sc.MetricsAddr().String(), "agentid_sidecar_delegation_requests_total"), tt.want)
		})
	}
}

func TestMetricsProxyOutcomes(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	unknown := "dlg_01jd0000000000000000000000"
	for _, tt := range []struct {
		method  string
		headers []string
		body    io.Reader
		down    bool
		status  int
	}{
		{"GET", []string{"Host: crm", "X-Agentid-Delegation: " + id}, nil, false, 200},
		// Another host of the route: counted under the route's name.
		{"GET", []string{"Host: crm.example.org", "X-Agentid-Delegation: " + id}, nil, false, 200},
		// No delegation: the upstream refuses, which is its answer (4xx).
		{"GET", []string{"Host: crm"}, nil, false, 401},
		{"GET", []string{"Host: crm", "X-Agentid-Delegation: alice"}, nil, false, 400},
		{"GET", []string{"Host: crm", "X-Agentid-Delegation: " + unknown}, nil, false, 403},
		{"GET", []string{"Host: crm", "X-Agentid-Delegation: " + unknown}, nil, true, 503},
		{"POST", []string{"Host: crm", "X-Agentid-Delegation: " + id}, strings.NewReader(strings.Repeat("a", proxyBodyLimit+1)), false, 413},
		{"POST", []string{"Host: crm", "X-Agentid-Delegation: " + id}, io.MultiReader(strings.NewReader(strings.Repeat("a", proxyBodyLimit+1))), false, 413},
		{"GET", []string{"Host: impostor", "X-Agentid-Delegation: " + id}, nil, false, 502},
		{"GET", []string{"Host: down", "X-Agentid-Delegation: " + id}, nil, false, 502},
		{"GET", []string{"Host: nowhere.example", "X-Agentid-Delegation: " + id}, nil, false, 502},
		{"GET", []string{"Host: crm", "X-Agentid-Delegation: " + id, "Origin: https://evil.example"}, nil, false, 403},
		{"CONNECT", []string{"Host: crm:443"}, nil, false, 405},
	} {
		f.auth.SetServerDown(tt.down)
		req, err := http.NewRequest(tt.method, f.proxy+"/x", tt.body)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range tt.headers {
			k, v, _ := strings.Cut(h, ": ")
			if k == "Host" {
				req.Host = v
				continue
			}
			req.Header.Add(k, v)
		}
		resp, err := f.client.Do(req)
		f.auth.SetServerDown(false)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Fatalf("%s %v: got %d %s, want %d", tt.method, tt.headers, resp.StatusCode, body, tt.status)
		}
	}
	wantSamples(t, scrape(t, f.metrics, "agentid_sidecar_proxy_requests_total", "agentid_sidecar_proxy_upstream_duration_seconds_count"),
		`agentid_sidecar_proxy_requests_total{outcome="2xx",route="crm"} 2`,
		`agentid_sidecar_proxy_requests_total{outcome="4xx",route="crm"} 1`,
		`agentid_sidecar_proxy_requests_total{outcome="invalid_request",route="crm"} 1`,
		`agentid_sidecar_proxy_requests_total{outcome="delegation_denied",route="crm"} 1`,
		`agentid_sidecar_proxy_requests_total{outcome="spire_unavailable",route="crm"} 1`,
		`agentid_sidecar_proxy_requests_total{outcome="request_too_large",route="crm"} 2`,
		`agentid_sidecar_proxy_requests_total{outcome="upstream_identity_mismatch",route="impostor"} 1`,
		`agentid_sidecar_proxy_requests_total{outcome="upstream_error",route="down"} 1`,
		// Refused before routing: no route, never the request's host.
		`agentid_sidecar_proxy_requests_total{outcome="unknown_route",route=""} 1`,
		`agentid_sidecar_proxy_requests_total{outcome="browser_request_refused",route=""} 1`,
		`agentid_sidecar_proxy_requests_total{outcome="connect_unsupported",route=""} 1`,
		// Latency only of what the upstream answered: the three crm answers.
		`agentid_sidecar_proxy_upstream_duration_seconds_count{route="crm"} 3`,
	)
	// Every series of a configured route exists from the start; the
	// request's host never becomes a label.
	all := scrapeAll(t, f.metrics)
	for _, want := range []string{
		`agentid_sidecar_proxy_requests_total{outcome="upstream_identity_mismatch",route="crm"} 0`,
		`agentid_sidecar_proxy_upstream_duration_seconds_count{route="impostor"} 0`,
		`agentid_sidecar_token_requests_total{outcome="no_identity"} 0`,
	} {
		if !strings.Contains(all, want+"\n") {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(all, "nowhere") || strings.Contains(all, "crm.example.org") || strings.Contains(all, "dlg_") {
		t.Fatal("a request's host or delegation became a label")
	}
}

func scrapeAll(tb testing.TB, base string) string {
	tb.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// The SVID gauges follow the sidecar's clock, as /healthz does: past the
// expiry the sidecar still holds the certificate but can use it for
// nothing, so held is 0.
func TestMetricsX509SVID(t *testing.T) {
	f := newFixture(t)
	svid, err := f.sc.Agent().X509SVID()
	if err != nil {
		t.Fatal(err)
	}
	notAfter := svid.Certificates[0].NotAfter
	expiry := fmt.Sprintf("agentid_sidecar_x509_svid_expiry_timestamp_seconds %g", float64(notAfter.Unix()))
	wantSamples(t, scrape(t, f.metrics, "agentid_sidecar_x509_svid_held", "agentid_sidecar_x509_svid_expiry_timestamp_seconds"),
		"agentid_sidecar_x509_svid_held 1", expiry)

	config, err := sidecar.ParseConfig([]byte("listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\nworkload_api: " + f.wl.Addr + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	config.Clock = func() time.Time { return notAfter.Add(time.Second) }
	sc, err := sidecar.Start(servertest.Ctx(t), config)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	base := "http://" + sc.MetricsAddr().String()
	if !strings.Contains(scrapeAll(t, base), "agentid_sidecar_x509_svid_held 0\n") {
		t.Fatal("held is not 0 past the expiry")
	}
	wantSamples(t, scrape(t, base, "agentid_sidecar_x509_svid_held", "agentid_sidecar_x509_svid_expiry_timestamp_seconds"), expiry)
	// The metrics listener's /healthz is the API's.
	r := f.do(t, "GET", base+"/healthz", nil)
	if e := r.errorBody(t); r.status != http.StatusServiceUnavailable || e.Error != "spire_unavailable" {
		t.Fatalf("healthz: %d %s", r.status, r.body)
	}
}

// The metrics listener serves /metrics and /healthz to any Host (Prometheus
// scrapes the pod IP) and nothing of the API.
func TestMetricsListenerServesNoAPI(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	for _, tt := range []struct {
		path    string
		headers []string
		status  int
		code    string
	}{
		{"/metrics", []string{"Host: 10.1.2.3:9090"}, 200, ""},
		{"/healthz", []string{"Host: 10.1.2.3:9090"}, 200, ""},
		{"/v1/token?audience=" + servertest.Verifier.String() + "&delegation=" + id, nil, 404, "not_found"},
		{"/v1/identity", nil, 404, "not_found"},
	} {
		r := f.do(t, "GET", f.metrics+tt.path, nil, tt.headers...)
		if r.status != tt.status {
			t.Fatalf("%s: got %d %s, want %d", tt.path, r.status, r.body, tt.status)
		}
		if tt.code != "" {
			if e := r.errorBody(t); e.Error != tt.code || e.Message != "sidecar: the metrics listener serves /metrics and /healthz only" {
				t.Fatalf("%s: got %s", tt.path, r.body)
			}
		}
	}
	if r := f.do(t, "POST", f.metrics+"/metrics", `{}`); r.status != http.StatusNotFound {
		t.Fatalf("POST /metrics: %d %s", r.status, r.body)
	}
}

func TestMetricsListenOffByDefault(t *testing.T) {
	f := newFixture(t)
	config, err := sidecar.ParseConfig([]byte("listen: 127.0.0.1:0\nworkload_api: " + f.wl.Addr + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if config.MetricsListen != "" {
		t.Fatalf("MetricsListen = %q", config.MetricsListen)
	}
	sc, err := sidecar.Start(servertest.Ctx(t), config)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if sc.MetricsAddr() != nil {
		t.Fatalf("metrics listen on %v", sc.MetricsAddr())
	}
}

func TestParseMetricsListen(t *testing.T) {
	good := map[string]string{
		"0.0.0.0:9090":          "0.0.0.0:9090",
		":9090":                 ":9090",
		"[::]:9090":             "[::]:9090",
		"10.1.2.3:9090":         "10.1.2.3:9090",
		"[::ffff:10.1.2.3]:1":   "10.1.2.3:1",
		"localhost:9090":        "127.0.0.1:9090",
		"127.0.0.1:0":           "127.0.0.1:0",
		"[2001:db8::1]:9090":    "[2001:db8::1]:9090",
		"LocalHost:9090":        "127.0.0.1:9090",
		"[::1]:65535":           "[::1]:65535",
		"192.0.2.1:09090":       "192.0.2.1:09090",
		"[0:0:0:0:0:0:0:1]:909": "[::1]:909",
	}
	for in, want := range good {
		got, err := sidecar.ParseMetricsListen(in)
		if err != nil || got != want {
			t.Errorf("ParseMetricsListen(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	const example = `, like "0.0.0.0:9090" or "127.0.0.1:9090"`
	bad := map[string]string{
		"":                     `"" is not host:port` + example,
		"9090":                 `"9090" is not host:port` + example,
		"prometheus:9090":      `"prometheus:9090": host must be an IP address, "localhost" or empty (all interfaces); names are not resolved`,
		"[fe80::1%eth0]:9090":  `"[fe80::1%eth0]:9090": host must be an IP address, "localhost" or empty (all interfaces); names are not resolved`,
		"10.0.0.1:99999":       `"10.0.0.1:99999": port must be 0..65535`,
		"10.0.0.1:http":        `"10.0.0.1:http": port must be 0..65535`,
		"10.0.0.1:00":          `"10.0.0.1:00": port must be 0..65535`,
		"unix:///run/m.sock":   `"unix:///run/m.sock": a unix socket cannot be scraped; use a TCP host:port` + example,
		"http://10.0.0.1:9090": `"http://10.0.0.1:9090" is not host:port` + example,
	}
	for in, want := range bad {
		_, err := sidecar.ParseMetricsListen(in)
		if err == nil || err.Error() != "sidecar: invalid config: metrics_listen: "+want || !errors.Is(err, sidecar.ErrInvalidConfig) {
			t.Errorf("ParseMetricsListen(%q) err = %v\nwant %s", in, err, want)
		}
	}
}

func TestParseConfigMetricsListen(t *testing.T) {
	c, err := sidecar.ParseConfig([]byte("metrics_listen: localhost:9090\n"))
	if err != nil || c.MetricsListen != "127.0.0.1:9090" {
		t.Fatalf("MetricsListen = %q, %v", c.MetricsListen, err)
	}
	for _, tt := range []struct{ yaml, want string }{
		{"metrics_listen: prom:9090\n",
			`sidecar: invalid config: metrics_listen: "prom:9090": host must be an IP address, "localhost" or empty (all interfaces); names are not resolved`},
		{"metrics_listen: [a]\n", "sidecar: invalid config: line 1: cannot unmarshal !!seq into string"},
		{"listen: localhost:15080\nmetrics_listen: 127.0.0.1:15080\n", "sidecar: invalid config: metrics_listen: same address as listen"},
		{"proxy_listen: 127.0.0.1:15001\nmetrics_listen: 127.0.0.1:15001\nroutes:\n  - name: a\n    upstream: a:1\n    spiffe_id: spiffe://example.org/a\n",
			"sidecar: invalid config: metrics_listen: same address as proxy_listen"},
		{"metrics_listen: 9090\nlisten: :1\n",
			`sidecar: invalid config: listen: listen address is not a unix socket or a loopback address: ":1"; ` +
				`metrics_listen: "9090" is not host:port, like "0.0.0.0:9090" or "127.0.0.1:9090"`},
	} {
		_, err := sidecar.ParseConfig([]byte(tt.yaml))
		if err == nil || err.Error() != tt.want || !errors.Is(err, sidecar.ErrInvalidConfig) {
			t.Errorf("%q: err = %v\nwant %s", tt.yaml, err, tt.want)
		}
	}
	// A Config built in code is checked too.
	listen, err := sidecar.ParseListenAddr("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, err = sidecar.Start(t.Context(), sidecar.Config{Listen: listen, MetricsListen: "prom:9090"})
	want := `sidecar: invalid config: metrics_listen: "prom:9090": host must be an IP address, "localhost" or empty (all interfaces); names are not resolved`
	if err == nil || err.Error() != want || !errors.Is(err, sidecar.ErrInvalidConfig) {
		t.Fatalf("Start: err = %v\nwant %s", err, want)
	}
}
