package extauthz_test

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/extauthz"
	"github.com/agentid/agentid/pkg/verify/internal/testca"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var rules = []extauthz.Rule{
	{
		Name:  "read-campaigns",
		Match: `request.method == "GET" && request.path.startsWith("/campaigns")`,
		Allow: `agent.startsWith("spiffe://example.org/agent/") && "campaigns:read" in scopes && user.iss == "https://idp.example.com"`,
	},
	{
		// Both identities at once: only the orchestrator, only for alice,
		// only when it holds crm:write.
		Name:  "write-crm",
		Match: `request.path.startsWith("/crm/")`,
		Allow: `agent == "spiffe://example.org/agent/orchestrator" && user.sub == "alice" && "crm:write" in scopes`,
	},
	{
		Name:  "sub-agents-of-the-orchestrator",
		Match: `request.path == "/reports"`,
		Allow: `delegated && delegation.chain.size() >= 2 && delegation.chain[0] == "spiffe://example.org/agent/orchestrator"`,
	},
	{
		Name:  "header-check",
		Match: `request.path == "/needs-header"`,
		Allow: `request.headers["x-tenant"] == "acme"`,
	},
}

func newClient(t *testing.T, cfg verify.Config, reg prometheus.Registerer) authv3.AuthorizationClient {
	t.Helper()
	return newClientWith(t, cfg, reg, rules)
}

func newClientWith(t *testing.T, cfg verify.Config, reg prometheus.Registerer, rules []extauthz.Rule) authv3.AuthorizationClient {
	t.Helper()
	v, err := verify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := extauthz.New(extauthz.Config{Verifier: v, Rules: rules, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	s.Register(gs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

// envoyCheck builds a CheckRequest the way Envoy's ext_authz filter does for
// an HTTP/2 request on an mTLS listener: the source principal is the URI SAN
// of the downstream certificate, header keys are lower case and include the
// pseudo-headers, path carries the query.
func envoyCheck(peer spiffeid.ID, method, path string, headers map[string]string) *authv3.CheckRequest {
	h := map[string]string{
		":authority": "crm.example.org", ":method": method, ":path": path, ":scheme": "https",
		"user-agent": "agent/1.0", "x-forwarded-proto": "https", "x-request-id": "5f0c0f3e-3b8e-4f0a-9d7e-1d1c1f1e1a1b",
	}
	for k, v := range headers {
		h[k] = v
	}
	principal := ""
	if !peer.IsZero() {
		principal = peer.String()
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "10.0.3.7", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51734}}}},
			Principal: principal,
		},
		Destination: &authv3.AttributeContext_Peer{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "10.0.3.9", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8443}}}},
			Principal: "spiffe://example.org/svc/crm",
		},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.Now(),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: "13711718293474950214", Method: method, Headers: h, Path: path,
				Host: "crm.example.org", Scheme: "https", Protocol: "HTTP/2",
			},
		},
		TlsSession: &authv3.AttributeContext_TLSSession{Sni: "crm.example.org"},
	}}
}

func check(t *testing.T, c authv3.AuthorizationClient, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.Check(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

type denial struct {
	status      int
	grpc        codes.Code
	code, desc  string
	challenge   string
	contentType string
}

func denied(t *testing.T, res *authv3.CheckResponse) denial {
	t.Helper()
	d := res.GetDeniedResponse()
	if d == nil {
		t.Fatalf("not denied: %v", res)
	}
	var body struct {
		Error string `json:"error"`
		Desc  string `json:"error_description"`
	}
	if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil {
		t.Fatalf("body %q: %v", d.GetBody(), err)
	}
	out := denial{status: int(d.GetStatus().GetCode()), grpc: codes.Code(res.GetStatus().GetCode()), code: body.Error, desc: body.Desc}
	for _, h := range d.GetHeaders() {
		switch h.GetHeader().GetKey() {
		case "www-authenticate":
			out.challenge = h.GetHeader().GetValue()
		case "content-type":
			out.contentType = h.GetHeader().GetValue()
		}
	}
	if res.GetStatus().GetMessage() != body.Desc || out.contentType != "application/json" {
		t.Fatalf("status message %q, content type %q", res.GetStatus().GetMessage(), out.contentType)
	}
	return out
}

// allowed returns the upstream headers of an allow, checking that every
// identity header is either overwritten or removed.
func allowed(t *testing.T, res *authv3.CheckResponse) map[string]string {
	t.Helper()
	ok := res.GetOkResponse()
	if codes.Code(res.GetStatus().GetCode()) != codes.OK || ok == nil {
		t.Fatalf("not allowed: %v", res)
	}
	set := map[string]string{}
	for _, h := range ok.GetHeaders() {
		if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Fatalf("header %s appended, not overwritten", h.GetHeader().GetKey())
		}
		set[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	removed := map[string]bool{}
	for _, name := range ok.GetHeadersToRemove() {
		removed[name] = true
	}
	for _, name := range []string{extauthz.HeaderAgent, extauthz.HeaderUser, extauthz.HeaderScope, extauthz.HeaderDelegation, extauthz.HeaderChain} {
		_, isSet := set[name]
		if isSet == removed[name] {
			t.Fatalf("%s: set %v, removed %v", name, isSet, removed[name])
		}
	}
	return set
}

func TestForgedAndBrokenTokens(t *testing.T) {
	env := testca.NewEnv(t)
	c := newClient(t, env.Config(), nil)
	for _, tc := range env.Cases(t) {
		t.Run(tc.Name, func(t *testing.T) {
			res := check(t, c, envoyCheck(tc.Peer, "GET", "/campaigns?page=2", map[string]string{"authorization": "Bearer " + tc.Token}))
			if tc.Err == "" {
				h := allowed(t, res)
				if h[extauthz.HeaderAgent] != tc.Peer.String() || h[extauthz.HeaderUser] != "https://idp.example.com#alice" {
					t.Fatalf("headers %v", h)
				}
				return
			}
			want := denial{status: 401, grpc: codes.Unauthenticated, code: "invalid_token", desc: tc.Err}
			if tc.Class == verify.ClassUnavailable {
				want = denial{status: 503, grpc: codes.Unavailable, code: "temporarily_unavailable", desc: tc.Err}
			}
			got := denied(t, res)
			if got.status != want.status || got.grpc != want.grpc || got.code != want.code || got.desc != want.desc {
				t.Fatalf("got %+v\nwant %+v", got, want)
			}
			if want.status == 401 && got.challenge != `Bearer realm="agentid", error="invalid_token"` {
				t.Fatalf("challenge %q", got.challenge)
			}
		})
	}
}

func TestRules(t *testing.T) {
	env := testca.NewEnv(t)
	c := newClient(t, env.Config(), nil)
	analystTok := env.Good(t)
	orch := func(scopes ...string) string {
		return env.CA.Mint(t, testca.Claims(env.Orchestrator, testca.Audience, env.Now.Add(5*time.Minute), &testca.Delegation{
			User: testca.Alice(t), Scopes: scopes, ID: testca.RootID, Root: testca.RootID,
			Chain: []spiffeid.ID{env.Orchestrator}, ExpiresAt: env.DelegationExp,
		}))
	}
	tests := []struct {
		name         string
		peer         spiffeid.ID
		method, path string
		token        string
		extra        map[string]string
		status       int
		desc         string
	}{
		{"analyst reads campaigns", env.Analyst, "GET", "/campaigns/42", analystTok, nil, 200, ""},
		{"analyst may not POST", env.Analyst, "POST", "/campaigns/42", analystTok, nil, 403, "extauthz: no rule matches the request"},
		{"analyst may not write the CRM", env.Analyst, "PUT", "/crm/contacts/7", analystTok, nil, 403, `extauthz: denied by rule "write-crm"`},
		{"orchestrator without crm:write", env.Orchestrator, "PUT", "/crm/contacts/7", orch("campaigns:read"), nil, 403, `extauthz: denied by rule "write-crm"`},
		{"orchestrator with crm:write", env.Orchestrator, "PUT", "/crm/contacts/7", orch("crm:write"), nil, 200, ""},
		{"sub-agent of the orchestrator", env.Analyst, "GET", "/reports", analystTok, nil, 200, ""},
		{"root agent is no sub-agent", env.Orchestrator, "GET", "/reports", orch("crm:write"), nil, 403, `extauthz: denied by rule "sub-agents-of-the-orchestrator"`},
		{"header present", env.Analyst, "GET", "/needs-header", analystTok, map[string]string{"x-tenant": "acme"}, 200, ""},
		{"header missing fails closed", env.Analyst, "GET", "/needs-header", analystTok, nil, 403,
			`extauthz: denied by rule "header-check": allow: no such key: x-tenant`},
		{"no token", env.Analyst, "GET", "/campaigns", "", nil, 401, "verify: no token"},
		{"no source principal", spiffeid.ID{}, "GET", "/campaigns", analystTok, nil, 401,
			"verify: no peer SPIFFE ID: no source principal (is the listener mTLS?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{
				// A client trying to pass identities of its own.
				extauthz.HeaderUser: "https://idp.example.com#admin", extauthz.HeaderScope: "everything",
			}
			if tt.token != "" {
				h["authorization"] = "Bearer " + tt.token
			}
			for k, v := range tt.extra {
				h[k] = v
			}
			res := check(t, c, envoyCheck(tt.peer, tt.method, tt.path, h))
			if tt.status == 200 {
				set := allowed(t, res)
				if set[extauthz.HeaderUser] != "https://idp.example.com#alice" || set[extauthz.HeaderAgent] != tt.peer.String() {
					t.Fatalf("headers %v", set)
				}
				return
			}
			if d := denied(t, res); d.status != tt.status || d.desc != tt.desc {
				t.Fatalf("got %d %q, want %d %q", d.status, d.desc, tt.status, tt.desc)
			}
		})
	}
}

func TestUpstreamHeaders(t *testing.T) {
	env := testca.NewEnv(t)
	c := newClient(t, env.Config(), nil)
	set := allowed(t, check(t, c, envoyCheck(env.Analyst, "GET", "/campaigns", map[string]string{"authorization": "Bearer " + env.Good(t)})))
	want := map[string]string{
		extauthz.HeaderAgent:      env.Analyst.String(),
		extauthz.HeaderUser:       "https://idp.example.com#alice",
		extauthz.HeaderScope:      "campaigns:read compliance:check",
		extauthz.HeaderDelegation: testca.ChildID.String(),
		extauthz.HeaderChain:      env.Orchestrator.String() + "," + env.Analyst.String(),
	}
	for k, v := range want {
		if set[k] != v {
			t.Errorf("%s = %q, want %q", k, set[k], v)
		}
	}
}

// A plain token (accepted by configuration) sets the agent header and
// removes the client's copies of the others.
func TestPlainTokenHeaders(t *testing.T) {
	env := testca.NewEnv(t)
	cfg := env.Config()
	cfg.AllowPlainTokens = true
	v, err := verify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := extauthz.New(extauthz.Config{Verifier: v, Rules: []extauthz.Rule{{Name: "agents", Allow: `!delegated && agent.endsWith("/market-analysis")`}}})
	if err != nil {
		t.Fatal(err)
	}
	tok := env.CA.Mint(t, testca.Claims(env.Analyst, testca.Audience, env.Now.Add(time.Minute), nil))
	res, err := s.Check(context.Background(), envoyCheck(env.Analyst, "GET", "/", map[string]string{"authorization": "Bearer " + tok, extauthz.HeaderUser: "forged"}))
	if err != nil {
		t.Fatal(err)
	}
	set := allowed(t, res)
	if len(set) != 1 || set[extauthz.HeaderAgent] != env.Analyst.String() {
		t.Fatalf("headers %v", set)
	}
	if got := res.GetOkResponse().GetHeadersToRemove(); strings.Join(got, " ") != "x-agentid-user x-agentid-scope x-agentid-delegation x-agentid-chain" {
		t.Fatalf("removed %v", got)
	}
}

// Other x-agentid-* headers the client sent, with '-' or '_', are removed
// too: an upstream may trust the whole prefix.
func TestForeignAgentidHeadersRemoved(t *testing.T) {
	env := testca.NewEnv(t)
	c := newClient(t, env.Config(), nil)
	res := check(t, c, envoyCheck(env.Analyst, "GET", "/campaigns", map[string]string{
		"authorization": "Bearer " + env.Good(t), "x-agentid-admin": "yes", "x_agentid_role": "root", "x-other": "kept",
	}))
	allowed(t, res)
	if got := res.GetOkResponse().GetHeadersToRemove(); strings.Join(got, " ") != "x-agentid-admin x_agentid_role" {
		t.Fatalf("removed %v, want the two foreign x-agentid headers", got)
	}
}

// With encode_raw_headers, Envoy sends header_map instead of headers.
func TestRawHeaderMap(t *testing.T) {
	env := testca.NewEnv(t)
	c := newClient(t, env.Config(), nil)
	req := envoyCheck(env.Analyst, "GET", "/campaigns", nil)
	http := req.GetAttributes().GetRequest().GetHttp()
	http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":path", RawValue: []byte("/campaigns")},
		{Key: "authorization", RawValue: []byte("Bearer " + env.Good(t))},
	}}
	http.Headers = nil
	allowed(t, check(t, c, req))

	http.HeaderMap.Headers = append(http.HeaderMap.Headers, &corev3.HeaderValue{Key: "Authorization", RawValue: []byte("Bearer x")})
	if d := denied(t, check(t, c, req)); d.status != 401 || d.desc != "extauthz: malformed check request: more than one authorization header" {
		t.Fatalf("got %+v", d)
	}
}

func TestMetrics(t *testing.T) {
	env := testca.NewEnv(t)
	reg := prometheus.NewRegistry()
	c := newClient(t, env.Config(), reg)
	good := map[string]string{"authorization": "Bearer " + env.Good(t)}
	check(t, c, envoyCheck(env.Analyst, "GET", "/campaigns", good))
	check(t, c, envoyCheck(env.Analyst, "GET", "/campaigns", good))
	check(t, c, envoyCheck(env.Analyst, "DELETE", "/campaigns", good))
	check(t, c, envoyCheck(env.Analyst, "GET", "/campaigns", nil))
	want := `
# HELP agentid_extauthz_checks_total Check calls by decision (allow, deny) and HTTP status given.
# TYPE agentid_extauthz_checks_total counter
agentid_extauthz_checks_total{decision="allow",status="200"} 2
agentid_extauthz_checks_total{decision="deny",status="401"} 1
agentid_extauthz_checks_total{decision="deny",status="403"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "agentid_extauthz_checks_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "agentid_extauthz_check_duration_seconds"); n != 1 {
		t.Fatalf("duration histogram: %d series", n)
	}
}

func TestNewRejectsBadRules(t *testing.T) {
	env := testca.NewEnv(t)
	v := env.Verifier(t)
	tests := []struct {
		rules []extauthz.Rule
		want  string
	}{
		{nil, "extauthz: at least one rule is required (requests no rule matches are denied)"},
		{[]extauthz.Rule{{Allow: "true"}}, "extauthz: rule 0: name must be 1..128 bytes"},
		{[]extauthz.Rule{{Name: "a", Allow: "true"}, {Name: "a", Allow: "true"}}, `extauthz: rule 1: duplicate name "a"`},
		{[]extauthz.Rule{{Name: "a"}}, `extauthz: rule "a": allow is required`},
		{[]extauthz.Rule{{Name: "a", Allow: `user.subject == "alice"`}}, "extauthz: rule \"a\": allow: ERROR: allow:1:5: undefined field 'subject'\n | user.subject == \"alice\"\n | ....^"},
		{[]extauthz.Rule{{Name: "a", Match: `agent == "x"`, Allow: "true"}}, "extauthz: rule \"a\": match: ERROR: match:1:1: undeclared reference to 'agent' (in container '')\n | agent == \"x\"\n | ^"},
		{[]extauthz.Rule{{Name: "a", Allow: `scopes`}}, "extauthz: rule \"a\": allow has type list(string), want bool"},
	}
	for _, tt := range tests {
		if _, err := extauthz.New(extauthz.Config{Verifier: v, Rules: tt.rules}); err == nil || err.Error() != tt.want {
			t.Errorf("err = %v\nwant %s", err, tt.want)
		}
	}
	if _, err := extauthz.New(extauthz.Config{Rules: rules}); err == nil || err.Error() != "extauthz: verifier is required" {
		t.Errorf("no verifier: %v", err)
	}
}
