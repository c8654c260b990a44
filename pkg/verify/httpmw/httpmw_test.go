package httpmw_test

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/httpmw"
	"github.com/agentid/agentid/pkg/verify/internal/testca"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
)

// server is a real HTTPS server on loopback with ServerTLSConfig and the
// middleware, and one mTLS client per agent.
type server struct {
	env     *testca.Env
	url     string
	clients map[spiffeid.ID]*http.Client
}

func newServer(t *testing.T, env *testca.Env) *server {
	t.Helper()
	mw, err := httpmw.New(httpmw.Config{
		Verifier: env.Verifier(t),
		Require:  []verify.Requirement{verify.RequireAgentPrefix(env.CA.ID(t, "/agent"))},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	whoami := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := httpmw.PrincipalFrom(r)
		if !ok {
			t.Error("no principal in context")
			return
		}
		json.NewEncoder(w).Encode(map[string]any{
			"agent": p.Agent.String(), "user": p.User.String(), "scope": p.Scopes.String(),
			"delegation": p.Delegation.ID.String(), "chain": len(p.Delegation.Chain),
		})
	})
	mux.Handle("/read", mw.Require(verify.RequireScopes("campaigns:read"))(whoami))
	mux.Handle("/write", mw.Require(verify.RequireScopes("crm:write"))(whoami))
	mux.Handle("/orchestrator-only", mw.Require(verify.RequireAgent(env.Orchestrator))(whoami))
	mux.Handle("/bob-only", mw.Require(verify.RequireUser("https://idp.example.com", "bob"))(whoami))

	serverSVID := env.CA.X509SVID(t, env.CA.ID(t, "/svc/crm"))
	srv := &http.Server{
		Handler:           mw.Handler(mux),
		TLSConfig:         verify.ServerTLSConfig(serverSVID, env.CA.X509Bundle, tlsconfig.AuthorizeMemberOf(env.CA.TD)),
		ReadHeaderTimeout: 5 * time.Second,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })

	s := &server{env: env, url: "https://" + ln.Addr().String(), clients: map[spiffeid.ID]*http.Client{}}
	for _, id := range []spiffeid.ID{env.Analyst, env.Orchestrator} {
		tr := &http.Transport{TLSClientConfig: tlsconfig.MTLSClientConfig(env.CA.X509SVID(t, id), env.CA.X509Bundle,
			tlsconfig.AuthorizeID(serverSVID.ID))}
		t.Cleanup(tr.CloseIdleConnections)
		s.clients[id] = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	return s
}

type response struct {
	status    int
	challenge string
	body      httpmw.ErrorBody
	ok        map[string]any
}

func (s *server) do(t *testing.T, peer spiffeid.ID, path string, auth ...string) response {
	t.Helper()
	req, err := http.NewRequest("GET", s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range auth {
		req.Header.Add("Authorization", a)
	}
	res, err := s.clients[peer].Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := response{status: res.StatusCode, challenge: res.Header.Get("WWW-Authenticate")}
	if res.StatusCode == http.StatusOK {
		err = json.Unmarshal(b, &out.ok)
	} else {
		if ct := res.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("content type %q", ct)
		}
		err = json.Unmarshal(b, &out.body)
	}
	if err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return out
}

func TestForgedAndBrokenTokens(t *testing.T) {
	env := testca.NewEnv(t)
	s := newServer(t, env)
	for _, tc := range env.Cases(t) {
		t.Run(tc.Name, func(t *testing.T) {
			res := s.do(t, tc.Peer, "/read", "Bearer "+tc.Token)
			if tc.Err == "" {
				if res.status != http.StatusOK || res.ok["agent"] != tc.Peer.String() || res.ok["user"] != "https://idp.example.com#alice" {
					t.Fatalf("status %d, body %v %+v", res.status, res.ok, res.body)
				}
				return
			}
			wantStatus, wantCode := http.StatusUnauthorized, "invalid_token"
			if tc.Class == verify.ClassUnavailable {
				wantStatus, wantCode = http.StatusServiceUnavailable, "temporarily_unavailable"
			}
			if res.status != wantStatus || res.body.Error != wantCode || res.body.Description != tc.Err {
				t.Fatalf("got %d %+v\nwant %d %s %s", res.status, res.body, wantStatus, wantCode, tc.Err)
			}
			if wantStatus == http.StatusUnauthorized && !strings.HasPrefix(res.challenge, `Bearer realm="agentid", error="invalid_token", error_description="verify: `) {
				t.Fatalf("challenge %q", res.challenge)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	env := testca.NewEnv(t)
	s := newServer(t, env)
	good := "Bearer " + env.Good(t)
	tests := []struct {
		name      string
		path      string
		auth      []string
		status    int
		code      string
		desc      string
		challenge string
	}{
		{"no token", "/read", nil, 401, "invalid_request", "verify: no token", `Bearer realm="agentid"`},
		{"basic auth", "/read", []string{"Basic YWxpY2U6c2VjcmV0"}, 401, "invalid_request",
			"httpmw: authorization header is not one bearer token",
			`Bearer realm="agentid", error="invalid_request", error_description="httpmw: authorization header is not one bearer token"`},
		{"two tokens", "/read", []string{good, good}, 401, "invalid_request", "httpmw: authorization header is not one bearer token", ""},
		{"empty bearer", "/read", []string{"Bearer "}, 401, "invalid_request", "httpmw: authorization header is not one bearer token", ""},
		{"lower-case scheme", "/read", []string{strings.Replace(good, "Bearer", "bearer", 1)}, 200, "", "", ""},
		{"scope missing", "/write", []string{good}, 403, "insufficient_scope", "verify: insufficient scope: missing crm:write",
			`Bearer realm="agentid", error="insufficient_scope", error_description="verify: insufficient scope: missing crm:write"`},
		{"agent not allowed", "/orchestrator-only", []string{good}, 403, "access_denied",
			"verify: agent not allowed: " + env.Analyst.String(), ""},
		{"user not allowed", "/bob-only", []string{good}, 403, "access_denied",
			"verify: user not allowed: https://idp.example.com#alice", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := s.do(t, env.Analyst, tt.path, tt.auth...)
			if res.status != tt.status {
				t.Fatalf("status %d %+v, want %d", res.status, res.body, tt.status)
			}
			if tt.status == 200 {
				return
			}
			if res.body.Error != tt.code || res.body.Description != tt.desc {
				t.Fatalf("body %+v, want %s %s", res.body, tt.code, tt.desc)
			}
			if tt.challenge != "" && res.challenge != tt.challenge {
				t.Fatalf("challenge %q\nwant %q", res.challenge, tt.challenge)
			}
			if tt.status == 403 && tt.code == "access_denied" && res.challenge != "" {
				t.Fatalf("challenge on access_denied: %q", res.challenge)
			}
		})
	}
}

// A client without an X509-SVID, or with one from another trust domain's
// CA that claims the analyst's SPIFFE ID, never reaches the middleware.
func TestClientCertificateRequired(t *testing.T) {
	env := testca.NewEnv(t)
	s := newServer(t, env)
	impostor := testca.New(t, "example.org") // same trust domain name, other CA
	for name, cc := range map[string]*tls.Config{
		"no certificate": tlsconfig.TLSClientConfig(env.CA.X509Bundle, tlsconfig.AuthorizeAny()),
		"foreign CA":     tlsconfig.MTLSClientConfig(impostor.X509SVID(t, env.Analyst), env.CA.X509Bundle, tlsconfig.AuthorizeAny()),
	} {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cc}}
		req, _ := http.NewRequest("GET", s.url+"/read", nil)
		req.Header.Set("Authorization", "Bearer "+env.Good(t))
		if res, err := c.Do(req); err == nil {
			res.Body.Close()
			t.Fatalf("%s: status %d", name, res.StatusCode)
		}
	}
	// The genuine analyst gets through on the same server.
	if res := s.do(t, env.Analyst, "/read", "Bearer "+env.Good(t)); res.status != http.StatusOK {
		t.Fatalf("genuine client: %d", res.status)
	}
}

// Without a TLS connection state (a plain HTTP listener by mistake) the
// middleware refuses: there is no peer to bind the token to.
func TestPlainHTTPIsRefused(t *testing.T) {
	env := testca.NewEnv(t)
	mw, err := httpmw.New(httpmw.Config{Verifier: env.Verifier(t)})
	if err != nil {
		t.Fatal(err)
	}
	h := mw.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("reached the handler") }))
	rec := &recorder{header: http.Header{}}
	req, _ := http.NewRequest("GET", "http://svc/read", nil)
	req.Header.Set("Authorization", "Bearer "+env.Good(t))
	h.ServeHTTP(rec, req)
	var body httpmw.ErrorBody
	if err := json.Unmarshal(rec.body, &body); err != nil || rec.status != 401 || body.Description != "verify: no peer SPIFFE ID" {
		t.Fatalf("status %d body %s", rec.status, rec.body)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := httpmw.New(httpmw.Config{}); err == nil || err.Error() != "httpmw: verifier is required" {
		t.Fatalf("err = %v", err)
	}
	env := testca.NewEnv(t)
	if _, err := httpmw.New(httpmw.Config{Verifier: env.Verifier(t), Realm: `a"b`}); err == nil ||
		err.Error() != "httpmw: realm must not contain quotes or backslashes" {
		t.Fatalf("err = %v", err)
	}
}

type recorder struct {
	header http.Header
	status int
	body   []byte
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(s int)   { r.status = s }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	r.body = append(r.body, b...)
	return len(b), nil
}
