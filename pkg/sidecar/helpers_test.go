package sidecar_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/agentclient/agentclienttest"
	"github.com/agentid/agentid/pkg/authserver"
	"github.com/agentid/agentid/pkg/authserver/keyring"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/internal/testca"
	"github.com/agentid/agentid/pkg/server/servertest"
	"github.com/agentid/agentid/pkg/sidecar"
	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/httpmw"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
)

// fixture: a real agentid-server, a fake SPIRE reading its store, the
// orchestrator's sidecar, and upstream services.
type fixture struct {
	env      *servertest.Env
	auth     *agentclienttest.Authority
	wl       *agentclienttest.WorkloadAPI
	sc       *sidecar.Sidecar
	crm      *upstream
	impostor *upstream
	logs     *syncBuffer // the sidecar's log, at debug level
	api      string      // http://127.0.0.1:port
	proxy    string
	metrics  string // http://127.0.0.1:port of metrics_listen
	client   *http.Client
	issuer   *httptest.Server // agentid's authorization server
	resource string           // the one resource registered there
	// ahead moves the sidecar's clock (not the server's) forward.
	ahead atomic.Int64
}

// upstream is an mTLS service presenting id that authenticates agent calls
// with pkg/verify and echoes what it saw.
type upstream struct {
	addr string
	hits atomic.Int64
	// gate holds /events between its first and second event: a test sends
	// once to release it.
	gate chan struct{}
}

// seen is what the upstream answers.
type seen struct {
	Agent   string              `json:"agent"`
	User    string              `json:"user"`
	Scopes  string              `json:"scopes"`
	Chain   []string            `json:"chain"`
	Host    string              `json:"host"`
	Path    string              `json:"path"`
	Agentid map[string][]string `json:"agentid_headers"`
	Other   string              `json:"x_other"`
	XFCC    string              `json:"xfcc"`
	// ProxyAuth is any Proxy-Authorization (or Proxy_Authorization).
	ProxyAuth string `json:"proxy_auth"`
	// Header is every request header; BodyLen the body's length, read to
	// its end before answering.
	Header  http.Header `json:"header"`
	BodyLen int64       `json:"body_len"`
}

func startUpstream(tb testing.TB, env *servertest.Env, auth *agentclienttest.Authority, id spiffeid.ID) *upstream {
	tb.Helper()
	v, err := verify.New(verify.Config{
		Bundles: auth.JWTBundle(), Audiences: []string{servertest.Verifier.String()},
		TrustDomains: []spiffeid.TrustDomain{servertest.TD}, InsecureNoRevocation: true, // revocation is the server's tests'
	})
	if err != nil {
		tb.Fatal(err)
	}
	mw, err := httpmw.New(httpmw.Config{Verifier: v})
	if err != nil {
		tb.Fatal(err)
	}
	u := &upstream{gate: make(chan struct{})}
	h := mw.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		if special(w, r, u) {
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		if d, err := time.ParseDuration(r.URL.Query().Get("work")); err == nil {
			time.Sleep(d) // stands for the upstream's own work (benchmarks)
		}
		p, _ := httpmw.PrincipalFrom(r)
		out := seen{Agent: p.Agent.String(), User: p.User.Subject(), Scopes: p.Scopes.String(), Host: r.Host, Path: r.URL.RequestURI(),
			Agentid: map[string][]string{}, Other: r.Header.Get("X-Other"), Header: r.Header, BodyLen: n}
		for _, c := range p.Delegation.Chain {
			out.Chain = append(out.Chain, c.String())
		}
		// Header names as a CGI/WSGI upstream reads them: '_' and '-' alike.
		for k, v := range r.Header {
			switch n := strings.ToLower(strings.ReplaceAll(k, "_", "-")); {
			case strings.HasPrefix(n, "x-agentid-"):
				out.Agentid[k] = v
			case n == "x-forwarded-client-cert":
				out.XFCC += strings.Join(v, ",")
			case n == "proxy-authorization":
				out.ProxyAuth += strings.Join(v, ",")
			}
		}
		json.NewEncoder(w).Encode(out)
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0),
		TLSConfig: verify.ServerTLSConfig(testca.Source{SVID: env.CA.SVID(tb, id)}, env.CA, tlsconfig.AuthorizeMemberOf(servertest.TD))}
	go srv.ServeTLS(l, "", "")
	tb.Cleanup(func() { srv.Close() })
	u.addr = l.Addr().String()
	return u
}

// special answers the upstream's paths that test how the proxy passes
// answers on, and reports whether r was one of them.
func special(w http.ResponseWriter, r *http.Request, u *upstream) bool {
	switch r.URL.Path {
	case "/events": // two events, the second once the test opens the gate
		w.Header().Set("Content-Type", r.URL.Query().Get("type"))
		io.WriteString(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-u.gate:
		case <-r.Context().Done():
			return true
		}
		io.WriteString(w, "data: 2\n\n")
	case "/hop": // hop-by-hop answer headers, which must not reach the agent
		w.Header().Set("Connection", "X-Up-Hop")
		w.Header().Set("X-Up-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Kept", "1")
		io.WriteString(w, "ok")
	case "/trailer":
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
	case "/truncate": // half a chunked answer, then the connection drops
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	case "/upgrade": // switches to a line echo protocol
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
			return true
		}
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return true
		}
		defer c.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		rw.Flush()
		line, _ := rw.ReadString('\n')
		rw.WriteString("echo " + line)
		rw.Flush()
	default:
		return false
	}
	return true
}

// startAuthServer serves agentid's authorization server over TLS that
// requests client certificates, on env's store and auth's JWT bundle, with
// one resource.
func startAuthServer(tb testing.TB, env *servertest.Env, auth *agentclienttest.Authority) (*httptest.Server, string) {
	tb.Helper()
	const resource = "https://mcp.example.com/mcp"
	keys, err := keyring.New(keyring.Config{Store: env.Store})
	if err != nil {
		tb.Fatal(err)
	}
	if err := keys.Refresh(servertest.Ctx(tb)); err != nil {
		tb.Fatal(err)
	}
	as := httptest.NewUnstartedServer(nil)
	as.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	as.StartTLS()
	tb.Cleanup(as.Close)
	srv, err := authserver.New(authserver.Config{
		Issuer: as.URL, Keys: keys, Store: env.Store,
		Resources: []authserver.Resource{{URI: resource, Scopes: delegation.MustParseScopes("campaigns:read", "compliance:check")}},
		Bundles:   auth.JWTBundle(), X509Bundles: env.CA.Bundle(), TrustDomains: []spiffeid.TrustDomain{servertest.TD},
	})
	if err != nil {
		tb.Fatal(err)
	}
	as.Config.Handler = srv.Handler()
	return as, resource
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	return newFixtureProxyOn(tb, "127.0.0.1:0")
}

// newFixtureProxyOn is newFixture with the egress proxy on proxyListen (as
// the config file spells it), e.g. a unix socket.
func newFixtureProxyOn(tb testing.TB, proxyListen string) *fixture {
	tb.Helper()
	env := servertest.Start(tb)
	f := &fixture{env: env, client: &http.Client{Timeout: 10 * time.Second}}
	f.auth = agentclienttest.NewAuthority(tb, agentclienttest.AuthorityConfig{CA: env.CA, Delegations: env.Store.GetDelegation})
	f.wl = f.auth.Serve(tb, servertest.Orchestrator)
	f.crm = startUpstream(tb, env, f.auth, servertest.Verifier)
	f.impostor = startUpstream(tb, env, f.auth, servertest.Stranger)
	f.issuer, f.resource = startAuthServer(tb, env, f.auth)
	caFile := filepath.Join(tb.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.issuer.Certificate().Raw}), 0o600); err != nil {
		tb.Fatal(err)
	}
	config, err := sidecar.ParseConfig([]byte(fmt.Sprintf(`
oauth:
  issuer: %s
  ca_file: %s`, f.issuer.URL, caFile) + fmt.Sprintf(`
listen: 127.0.0.1:0
proxy_listen: %s
metrics_listen: 127.0.0.1:0
proxy_max_body_bytes: 4096
workload_api: %s
server:
  address: %s
  spiffe_id: %s
routes:
  - name: crm
    hosts: [crm.example.org, "crm.internal:8080"]
    upstream: %s
    spiffe_id: %s
  - name: impostor
    upstream: %s
    spiffe_id: %s
  - name: down
    upstream: 127.0.0.1:1
    spiffe_id: %s
`, proxyListen, f.wl.Addr, env.MTLSAddr, servertest.ServerID, f.crm.addr, servertest.Verifier, f.impostor.addr, servertest.Verifier, servertest.Verifier)))
	if err != nil {
		tb.Fatal(err)
	}
	f.logs = &syncBuffer{}
	config.Log = slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	config.Clock = func() time.Time { return time.Now().Add(time.Duration(f.ahead.Load())) }
	f.sc, err = sidecar.Start(servertest.Ctx(tb), config)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.sc.Close() })
	f.api = "http://" + f.sc.APIAddr().String()
	f.proxy = "http://" + f.sc.ProxyAddr().String()
	f.metrics = "http://" + f.sc.MetricsAddr().String()
	return f
}

// response is a decoded answer.
type response struct {
	status int
	body   []byte
}

func (r response) errorBody(tb testing.TB) sidecar.ErrorBody {
	tb.Helper()
	var e sidecar.ErrorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		tb.Fatalf("error body %q: %v", r.body, err)
	}
	return e
}

func (r response) decode(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		tb.Fatalf("body %q: %v", r.body, err)
	}
}

// do sends a request; body, when not nil, is JSON-encoded unless it is a
// string, and headers are "Key: value" pairs.
func (f *fixture) do(tb testing.TB, method, url string, body any, headers ...string) response {
	tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Add(k, v)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return response{status: resp.StatusCode, body: b}
}

// delegate creates alice's delegation to the orchestrator through the API.
// proxyGet sends a GET for path through the egress proxy to the crm route
// under delegation id, and fails the test if no answer comes.
func (f *fixture) proxyGet(tb testing.TB, path, id string) *http.Response {
	tb.Helper()
	req, err := http.NewRequest("GET", f.proxy+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Host = "crm"
	req.Header.Set("X-Agentid-Delegation", id)
	resp, err := f.client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	return resp
}

func (f *fixture) delegate(tb testing.TB) string {
	tb.Helper()
	r := f.do(tb, "POST", f.api+"/v1/delegations", map[string]any{
		"user_token": f.env.AliceToken(tb), "scopes": []string{"campaigns:read", "compliance:check"}, "ttl": "30m", "intent": "check Q3",
	})
	if r.status != http.StatusCreated {
		tb.Fatalf("create: %d %s", r.status, r.body)
	}
	var out struct {
		Delegation struct {
			ID string `json:"id"`
		} `json:"delegation"`
	}
	r.decode(tb, &out)
	return out.Delegation.ID
}

// syncBuffer is a log sink safe for the sidecar's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
