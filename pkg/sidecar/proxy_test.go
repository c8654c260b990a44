package sidecar_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/server/servertest"
	"github.com/agentid/agentid/pkg/sidecar"
)

func TestProxyUpgradesToMTLSWithDelegatedToken(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	// The agent tries to smuggle identities: its own Authorization and
	// agentid headers must not reach the upstream.
	r := f.do(t, "GET", f.proxy+"/campaigns?q=1", nil,
		"Host: crm", "X-Agentid-Delegation: "+id, "Authorization: Bearer forged", "X-Agentid-User: mallory",
		"x-agentid-principal: admin", "X-Forwarded-Client-Cert: URI=spiffe://example.org/agent/admin", "X-Other: kept",
		// CGI/WSGI/Rack upstreams read '_' as '-'.
		"X_Agentid_User: mallory", "X_Forwarded_Client_Cert: URI=spiffe://example.org/agent/admin",
		"Proxy_Authorization: Basic forged", "Proxy-Authorization: Basic forged")
	var got seen
	r.decode(t, &got)
	if r.status != 200 {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if got.Agent != servertest.Orchestrator.String() || got.User != "alice" || got.Scopes != "campaigns:read compliance:check" ||
		len(got.Chain) != 1 || got.Path != "/campaigns?q=1" || got.Other != "kept" || got.Host != f.crm.addr {
		t.Fatalf("upstream saw %+v", got)
	}
	if len(got.Agentid) != 0 || got.XFCC != "" || got.ProxyAuth != "" {
		t.Fatalf("agentid headers reached the upstream: %v, xfcc %q, proxy auth %q", got.Agentid, got.XFCC, got.ProxyAuth)
	}
}

func TestProxyAsHTTPProxy(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	pu, _ := url.Parse(f.proxy)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", "http://crm.example.org/x", nil)
	req.Header.Set("X-Agentid-Delegation", id)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"user":"alice"`) {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
}

func TestProxyRefuses(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	revoked := f.delegate(t)
	if r := f.do(t, "DELETE", f.api+"/v1/delegations/"+revoked, nil); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	unknown := "dlg_01jd0000000000000000000000"
	tests := []struct {
		name          string
		method        string
		headers       []string
		down          bool
		status        int
		code, message string
	}{
		{"unknown route", "GET", []string{"Host: nowhere", "X-Agentid-Delegation: " + id}, false, 502, "unknown_route",
			`sidecar: no route for host "nowhere"`},
		{"unknown delegation", "GET", []string{"Host: crm", "X-Agentid-Delegation: " + unknown}, false, 403, "delegation_denied",
			"agentclient: fetch token under " + unknown + ": agentclient: delegation denied: composer: unknown delegation: " + unknown},
		{"revoked delegation", "GET", []string{"Host: crm", "X-Agentid-Delegation: " + revoked}, false, 403, "delegation_denied",
			"agentclient: fetch token under " + revoked + ": agentclient: delegation denied: composer: delegation is revoked: " + revoked},
		{"malformed delegation", "GET", []string{"Host: crm", "X-Agentid-Delegation: alice"}, false, 400, "invalid_request",
			"sidecar: X-Agentid-Delegation: delegation: invalid delegation id: length 5, want 30"},
		{"two delegations", "GET", []string{"Host: crm", "X-Agentid-Delegation: " + id, "X-Agentid-Delegation: " + id}, false, 400, "invalid_request",
			"sidecar: more than one X-Agentid-Delegation header"},
		{"SPIRE down", "GET", []string{"Host: crm", "X-Agentid-Delegation: " + unknown}, true, 503, "spire_unavailable", ""},
		{"upstream with the wrong SPIFFE ID", "GET", []string{"Host: impostor", "X-Agentid-Delegation: " + id}, false, 502, "upstream_identity_mismatch",
			`sidecar: upstream of route "impostor" did not present spiffe://example.org/svc/crm`},
		{"browser origin", "GET", []string{"Host: crm", "X-Agentid-Delegation: " + id, "Origin: https://evil.example"}, false, 403, "browser_request_refused",
			"sidecar: requests with an Origin header are refused"},
		{"upstream down", "GET", []string{"Host: down", "X-Agentid-Delegation: " + id}, false, 502, "upstream_error", ""},
		// Fetch metadata: a browser's request for a page, without Origin.
		{"browser cross-site", "GET", []string{"Host: crm", "X-Agentid-Delegation: " + id, "Sec-Fetch-Site: cross-site"}, false, 403, "browser_request_refused",
			`sidecar: requests with Sec-Fetch-Site "cross-site" are refused: a browser sent it for a web page`},
		{"browser same-site", "GET", []string{"Host: crm", "X-Agentid-Delegation: " + id, "Sec-Fetch-Site: same-site"}, false, 403, "browser_request_refused",
			`sidecar: requests with Sec-Fetch-Site "same-site" are refused: a browser sent it for a web page`},
		{"browser same-origin", "POST", []string{"Host: crm", "X-Agentid-Delegation: " + id, "Sec-Fetch-Site: Same-Origin"}, false, 403, "browser_request_refused",
			`sidecar: requests with Sec-Fetch-Site "Same-Origin" are refused: a browser sent it for a web page`},
		{"browser unknown fetch site", "GET", []string{"Host: crm", "X-Agentid-Delegation: " + id, "Sec-Fetch-Site: none", "Sec-Fetch-Site: x"}, false, 403, "browser_request_refused",
			`sidecar: requests with Sec-Fetch-Site "x" are refused: a browser sent it for a web page`},
		// Routes match host and port: crm is crm:80, never crm:any.
		{"route on another port", "GET", []string{"Host: crm:9000", "X-Agentid-Delegation: " + id}, false, 502, "unknown_route",
			`sidecar: no route for host "crm:9000"`},
		{"route host without its port", "GET", []string{"Host: crm.internal", "X-Agentid-Delegation: " + id}, false, 502, "unknown_route",
			`sidecar: no route for host "crm.internal"`},
		{"route port zero", "GET", []string{"Host: crm:0", "X-Agentid-Delegation: " + id}, false, 502, "unknown_route",
			`sidecar: no route for host "crm:0"`},
		{"route port out of range", "GET", []string{"Host: crm:65616", "X-Agentid-Delegation: " + id}, false, 502, "unknown_route",
			`sidecar: no route for host "crm:65616"`},
		{"route port that is not a number", "GET", []string{"Host: crm:http", "X-Agentid-Delegation: " + id}, false, 502, "unknown_route",
			`sidecar: no route for host "crm:http"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.auth.SetServerDown(tt.down)
			defer f.auth.SetServerDown(false)
			before := f.crm.hits.Load()
			r := f.do(t, tt.method, f.proxy+"/x", nil, tt.headers...)
			e := r.errorBody(t)
			if r.status != tt.status || e.Error != tt.code || (tt.message != "" && e.Message != tt.message) {
				t.Fatalf("got %d %s\nwant %d %s %s", r.status, r.body, tt.status, tt.code, tt.message)
			}
			if f.crm.hits.Load() != before || f.impostor.hits.Load() != 0 {
				t.Fatal("a refused request reached an upstream")
			}
		})
	}
}

// TestProxyRoutesHostAndPort: the spellings of a route's host and port
// that reach it, and the fetch metadata of a request no page made.
func TestProxyRoutesHostAndPort(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	for _, hdrs := range [][]string{
		{"Host: crm"}, {"Host: crm:80"}, {"Host: CRM"}, {"Host: crm:080"}, {"Host: crm.example.org:80"},
		{"Host: crm.internal:8080"}, {"Host: Crm.Internal:8080"},
		{"Host: crm", "Sec-Fetch-Site: none"}, {"Host: crm", "Sec-Fetch-Site: None"},
	} {
		t.Run(strings.Join(hdrs, ", "), func(t *testing.T) {
			r := f.do(t, "GET", f.proxy+"/x", nil, append(hdrs, "X-Agentid-Delegation: "+id)...)
			var got seen
			if r.decode(t, &got); r.status != 200 || got.User != "alice" {
				t.Fatalf("got %d %s", r.status, r.body)
			}
		})
	}
	// Absolute-form, as HTTP_PROXY clients send it: the port is the URL's.
	pu, _ := url.Parse(f.proxy)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}, Timeout: 10 * time.Second}
	for u, want := range map[string]int{"http://crm/x": 200, "http://crm.internal:8080/x": 200, "http://crm:8080/x": 502, "http://crm.internal/x": 502} {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("X-Agentid-Delegation", id)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: got %d %s, want %d", u, resp.StatusCode, body, want)
		}
	}
}

func TestProxyWithoutDelegationSendsNoToken(t *testing.T) {
	f := newFixture(t)
	// The upstream requires a delegated token: the agent acting for itself
	// is refused by the upstream, not by the proxy, and the agent's forged
	// Authorization never arrives.
	r := f.do(t, "GET", f.proxy+"/x", nil, "Host: crm", "Authorization: Bearer forged")
	if r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), `"error_description":"verify: no token"`) {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

func TestProxyRefusesConnect(t *testing.T) {
	f := newFixture(t)
	r := f.do(t, "CONNECT", f.proxy, nil, "Host: crm:443")
	if e := r.errorBody(t); r.status != http.StatusMethodNotAllowed || e.Error != "connect_unsupported" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

// proxyBodyLimit is proxy_max_body_bytes in the fixture.
const proxyBodyLimit = 4096

func TestProxyBodyLimit(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	tests := []struct {
		name    string
		size    int
		chunked bool // no Content-Length: the limit hits while streaming
		upgrade bool // asks for a protocol switch: its request body is bounded too
		status  int
	}{
		{"at the limit", proxyBodyLimit, false, false, 200},
		{"at the limit, chunked", proxyBodyLimit, true, false, 200},
		{"over the limit", proxyBodyLimit + 1, false, false, 413},
		{"upgrade request with a body over the limit", proxyBodyLimit + 1, false, true, 413},
		// Last: its upstream handler may still start after the 413, and
		// would count as a hit for a later case.
		{"over the limit, chunked", proxyBodyLimit + 1, true, false, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(strings.Repeat("a", tt.size))
			if tt.chunked {
				body = io.MultiReader(body) // hides the length from the client
			}
			req, _ := http.NewRequest("POST", f.proxy+"/upload", body)
			req.Host = "crm"
			req.Header.Set("X-Agentid-Delegation", id)
			if tt.upgrade {
				req.Header.Set("Connection", "Upgrade")
				req.Header.Set("Upgrade", "echo")
			}
			before := f.crm.hits.Load()
			resp, err := f.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			r := response{status: resp.StatusCode, body: raw}
			if r.status != tt.status {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tt.status)
			}
			if tt.status == 200 {
				var got seen
				r.decode(t, &got)
				if got.BodyLen != int64(tt.size) {
					t.Fatalf("upstream read %d bytes, want %d", got.BodyLen, tt.size)
				}
				return
			}
			if e := r.errorBody(t); e.Error != "request_too_large" || e.Message != "sidecar: body larger than 4096 bytes" {
				t.Fatalf("got %+v", e)
			}
			// A declared length over the limit is refused before dialling.
			if !tt.chunked && f.crm.hits.Load() != before {
				t.Fatal("an over-long body reached the upstream")
			}
		})
	}
}

func TestProxyDropsHopByHopAndForwardingHeaders(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	r := f.do(t, "GET", f.proxy+"/x?a=1;b=2&c=3", nil, "Host: crm", "X-Agentid-Delegation: "+id,
		"Connection: X-Hop, keep-alive", "X-Hop: secret", "Keep-Alive: timeout=5", "Proxy-Connection: keep-alive",
		"Upgrade: h2c", "Te: trailers, deflate",
		"Forwarded: for=192.0.2.1", "X-Forwarded-For: 192.0.2.1", "X-Forwarded-Host: evil.example", "X-Forwarded-Proto: https",
		// What proxies in front of a service assert about the client,
		// in both spellings: the agent must not be able to write them.
		"X-Forwarded-User: admin", "X-Forwarded-Email: admin@example.com", "X-Forwarded-Port: 443", "X-Forwarded-Prefix: /admin",
		"X_Forwarded_For: 10.9.9.9", "X_Forwarded_Host: evil.example", "X_Forwarded_Proto: https", "X_Forwarded_User: admin",
		"X-Real-Ip: 10.9.9.9", "X_Real_IP: 10.9.9.9", "X-Auth-Request-User: admin", "X_Auth_Request_Email: admin@example.com",
		"X-Remote-User: admin",
		"X-Other: kept")
	if r.status != 200 {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	var got seen
	r.decode(t, &got)
	for k, v := range got.Header {
		n := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
		for _, bad := range []string{"connection", "x-hop", "keep-alive", "proxy-connection", "upgrade",
			"forwarded", "x-forwarded-", "x-real-ip", "x-auth-request-", "x-remote-user"} {
			if strings.HasPrefix(n, bad) {
				t.Errorf("upstream saw %s: %q", k, v)
			}
		}
	}
	// Te survives as "trailers" only; a query with ';' is re-encoded
	// without the pair that does not parse, as httputil.ReverseProxy did.
	if te := got.Header["Te"]; len(te) != 1 || te[0] != "trailers" || got.Other != "kept" || got.Path != "/x?c=3" {
		t.Fatalf("upstream saw Te %q, X-Other %q, path %q", te, got.Other, got.Path)
	}
}

// TestProxyStripsEveryFamily sends every header of every stripped family,
// each spelling, through the proxy: the upstream must see exactly the kept
// headers, with the values the agent sent, the Accept-Encoding of the
// proxy's transport, and the sidecar's own Authorization.
func TestProxyStripsEveryFamily(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	for family, names := range sidecar.StrippedByFamily {
		t.Run(family, func(t *testing.T) {
			headers := []string{"Host: crm", "X-Agentid-Delegation: " + id}
			for _, n := range names {
				if n != "X-Agentid-Delegation" { // the proxy reads that one
					headers = append(headers, n+": forged")
				}
			}
			want := map[string]string{}
			for i, n := range sidecar.KeptHeaders {
				v := fmt.Sprintf("kept-%d", i)
				headers = append(headers, n+": "+v)
				want[http.CanonicalHeaderKey(n)] = v
			}
			r := f.do(t, "GET", f.proxy+"/x", nil, headers...)
			if r.status != 200 {
				t.Fatalf("got %d %s", r.status, r.body)
			}
			var got seen
			r.decode(t, &got)
			for k, v := range got.Header {
				switch {
				case k == "Authorization":
					if len(v) != 1 || !strings.HasPrefix(v[0], "Bearer ey") {
						t.Errorf("upstream saw Authorization %q, want the delegated token only", v)
					}
				case k == "Accept-Encoding":
				case want[k] == "":
					t.Errorf("upstream saw %s: %q", k, v)
				case len(v) != 1 || v[0] != want[k]:
					t.Errorf("upstream saw %s: %q, want %q", k, v, want[k])
				}
			}
			for k := range want {
				if _, ok := got.Header[k]; !ok {
					t.Errorf("upstream did not see %s", k)
				}
			}
		})
	}
}

func TestProxyDropsUpstreamHopByHopHeaders(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	resp := f.proxyGet(t, "/hop", id)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Kept") != "1" || resp.Header.Get("X-Up-Hop") != "" ||
		resp.Header.Get("Keep-Alive") != "" || resp.Header.Get("Connection") != "" {
		t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
	}
}

func TestProxyStreamsEachEvent(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	// text/event-stream, and any answer without a length, reach the agent
	// event by event: the upstream sends the second event only after the
	// agent has read the first.
	for _, ct := range []string{"text/event-stream", "Text/Event-Stream; charset=utf-8", "application/x-ndjson"} {
		t.Run(ct, func(t *testing.T) {
			resp := f.proxyGet(t, "/events?type="+url.QueryEscape(ct), id)
			defer resp.Body.Close()
			first := make([]byte, len("data: 1\n\n"))
			if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "data: 1\n\n" {
				t.Fatalf("first event %q: %v", first, err)
			}
			f.crm.gate <- struct{}{}
			rest, err := io.ReadAll(resp.Body)
			if err != nil || string(rest) != "data: 2\n\n" || resp.Header.Get("Content-Type") != ct {
				t.Fatalf("rest %q (%v), Content-Type %q", rest, err, resp.Header.Get("Content-Type"))
			}
		})
	}
}

func TestProxyPassesTrailers(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	resp := f.proxyGet(t, "/trailer", id)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "body" || resp.Trailer.Get("X-Sum") != "42" {
		t.Fatalf("body %q (%v), trailer %v", body, err, resp.Trailer)
	}
}

func TestProxyAbortsTruncatedAnswer(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	// The upstream drops the connection mid-answer: the agent must see a
	// truncated body, never a complete one.
	resp := f.proxyGet(t, "/truncate", id)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) || string(body) != "partial" {
		t.Fatalf("body %q, error %v; want io.ErrUnexpectedEOF", body, err)
	}
}

func TestProxyUpgrade(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	// A protocol switch (WebSocket) goes through with the delegated token:
	// the upstream's verify middleware admits nothing else.
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(f.proxy, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /upgrade HTTP/1.1\r\nHost: crm\r\nX-Agentid-Delegation: %s\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n", id)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "echo" {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("got %d %v %s", resp.StatusCode, resp.Header, body)
	}
	io.WriteString(c, "ping\n")
	if line, err := br.ReadString('\n'); err != nil || line != "echo ping\n" {
		t.Fatalf("got %q: %v", line, err)
	}
}
