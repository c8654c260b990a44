package extauthz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agentid/agentid/pkg/verify"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// The headers passed upstream on allow. Copies a client sent are removed or
// overwritten, so upstream can trust them (as long as it is reachable only
// through Envoy).
const (
	// HeaderAgent is the calling agent's SPIFFE ID.
	HeaderAgent = "x-agentid-agent"
	// HeaderUser is the delegating user, "issuer#subject".
	HeaderUser = "x-agentid-user"
	// HeaderScope is the delegated scopes, space-separated.
	HeaderScope = "x-agentid-scope"
	// HeaderDelegation is the delegation id.
	HeaderDelegation = "x-agentid-delegation"
	// HeaderChain is the delegation chain, SPIFFE IDs separated by commas.
	HeaderChain = "x-agentid-chain"
)

var identityHeaders = []string{HeaderAgent, HeaderUser, HeaderScope, HeaderDelegation, HeaderChain}

// Config configures a Server. Verifier and Rules are required.
type Config struct {
	// Verifier checks the token against the source principal.
	Verifier *verify.Verifier
	// Rules decide, in order, on verified requests.
	Rules []Rule
	// Registerer, when set, receives the server's metrics
	// (agentid_extauthz_checks_total, agentid_extauthz_check_duration_seconds).
	Registerer prometheus.Registerer
	// OnDecision, when set, is called after every check with the rule that
	// decided ("" when none did) and the refusal (nil on allow), e.g. to
	// log it. The server itself logs nothing.
	OnDecision func(req *authv3.CheckRequest, rule string, err error)
}

// Server is an Envoy ext_authz v3 authorization server.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	config   Config
	rules    []compiledRule
	checks   *prometheus.CounterVec
	duration prometheus.Histogram
}

// New compiles config's rules and returns the server.
func New(config Config) (*Server, error) {
	if config.Verifier == nil {
		return nil, errors.New("extauthz: verifier is required")
	}
	rules, err := compileRules(config.Rules)
	if err != nil {
		return nil, err
	}
	s := &Server{
		config: config,
		rules:  rules,
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentid_extauthz_checks_total",
			Help: "Check calls by decision (allow, deny) and HTTP status given.",
		}, []string{"decision", "status"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "agentid_extauthz_check_duration_seconds",
			Help:    "Time to decide one Check call.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .1},
		}),
	}
	if config.Registerer != nil {
		for _, c := range []prometheus.Collector{s.checks, s.duration} {
			if err := config.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("extauthz: failed to register metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Register adds the Authorization service to a gRPC server.
func (s *Server) Register(r grpc.ServiceRegistrar) { authv3.RegisterAuthorizationServer(r, s) }

// Check implements the ext_authz v3 Authorization service. The peer is the
// source principal Envoy sets from the downstream mTLS certificate's URI
// SAN; the token is the request's "authorization: Bearer" header.
// Refusals are answered as denials (status and body for the client), never
// as gRPC errors, which Envoy would treat per its failure_mode_allow.
func (s *Server) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := time.Now()
	rule, p, err := s.decide(req)
	var res *authv3.CheckResponse
	if err != nil {
		res = deny(err)
		s.checks.WithLabelValues("deny", fmt.Sprint(res.GetDeniedResponse().GetStatus().GetCode().Number())).Inc()
	} else {
		res = allow(p, headerNames(req.GetAttributes().GetRequest().GetHttp()))
		s.checks.WithLabelValues("allow", "200").Inc()
	}
	s.duration.Observe(time.Since(start).Seconds())
	if s.config.OnDecision != nil {
		s.config.OnDecision(req, rule, err)
	}
	return res, nil
}

func (s *Server) decide(req *authv3.CheckRequest) (rule string, p *verify.Principal, err error) {
	httpReq := req.GetAttributes().GetRequest().GetHttp()
	if httpReq == nil {
		return "", nil, fmt.Errorf("%w: no HTTP request attributes", ErrBadRequest)
	}
	token, err := bearerToken(httpReq)
	if err != nil {
		return "", nil, err
	}
	principal := req.GetAttributes().GetSource().GetPrincipal()
	if principal == "" {
		return "", nil, fmt.Errorf("%w: no source principal (is the listener mTLS?)", verify.ErrNoPeer)
	}
	peer, err := spiffeid.FromString(principal)
	if err != nil {
		return "", nil, fmt.Errorf("%w: source principal is not a SPIFFE ID", verify.ErrNoPeer)
	}
	verified, err := s.config.Verifier.Verify(peer, token)
	if err != nil {
		return "", nil, err
	}
	p = &verified
	request, err := requestVar(httpReq.GetMethod(), httpReq.GetScheme(), httpReq.GetHost(), httpReq.GetPath(), httpReq.GetHeaders())
	if err != nil {
		return "", nil, err
	}
	vars := map[string]any{
		"request":    request,
		"agent":      p.Agent.String(),
		"user":       celUser{Iss: p.User.Issuer(), Sub: p.User.Subject(), Email: p.User.Email()},
		"scopes":     p.Scopes.Strings(),
		"delegation": celDelegation{ID: p.Delegation.ID.String(), Root: p.Delegation.Root.String(), Chain: chainStrings(p), ExpiresAt: p.Delegation.ExpiresAt},
		"delegated":  p.Delegated(),
	}
	for _, r := range s.rules {
		if r.match != nil {
			ok, err := eval(r.match, vars)
			if err != nil {
				return r.name, nil, fmt.Errorf("%w %q: match: %w", ErrDenied, r.name, err)
			}
			if !ok {
				continue
			}
		}
		ok, err := eval(r.allow, vars)
		if err != nil {
			return r.name, nil, fmt.Errorf("%w %q: allow: %w", ErrDenied, r.name, err)
		}
		if !ok {
			return r.name, nil, fmt.Errorf("%w %q", ErrDenied, r.name)
		}
		return r.name, p, nil
	}
	return "", nil, ErrNoRule
}

func chainStrings(p *verify.Principal) []string {
	out := make([]string, len(p.Delegation.Chain))
	for i, id := range p.Delegation.Chain {
		out[i] = id.String()
	}
	return out
}

// headerNames lists the request's header names from both of Envoy's forms
// (headers, and header_map with encode_raw_headers).
func headerNames(r *authv3.AttributeContext_HttpRequest) []string {
	var names []string
	for name := range r.GetHeaders() {
		names = append(names, name)
	}
	for _, h := range r.GetHeaderMap().GetHeaders() {
		names = append(names, h.GetKey())
	}
	return names
}

// bearerToken reads the authorization header from the map Envoy fills (keys
// lower-cased, repeated headers joined with ","), or from header_map when
// Envoy is configured with encode_raw_headers.
func bearerToken(r *authv3.AttributeContext_HttpRequest) (string, error) {
	var values []string
	if v, ok := r.GetHeaders()["authorization"]; ok {
		values = append(values, v)
	}
	for _, h := range r.GetHeaderMap().GetHeaders() {
		if strings.EqualFold(h.GetKey(), "authorization") {
			v := h.GetValue()
			if v == "" {
				v = string(h.GetRawValue())
			}
			values = append(values, v)
		}
	}
	if len(values) > 1 || (len(values) == 1 && strings.Contains(values[0], ",")) {
		return "", fmt.Errorf("%w: more than one authorization header", ErrBadRequest)
	}
	token, err := verify.ParseBearer(values)
	if errors.Is(err, verify.ErrBadAuthorization) {
		return "", fmt.Errorf("%w: authorization header is not a bearer token", ErrBadRequest)
	}
	return token, err
}

func header(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: name, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// allow passes the identities upstream. A header with a value overwrites any
// client copy; one without (a plain token has no user) is removed, since
// Envoy drops a header set to the empty value and would keep the client's.
// Any other x-agentid-* header the client sent (spelled with '-' or '_',
// which CGI-style upstreams merge) is removed too: upstreams may take the
// whole prefix for agentid's.
func allow(p *verify.Principal, requestHeaders []string) *authv3.CheckResponse {
	values := map[string]string{HeaderAgent: p.Agent.String()}
	if p.Delegated() {
		values[HeaderUser] = p.User.String()
		values[HeaderScope] = p.Scopes.String()
		values[HeaderDelegation] = p.Delegation.ID.String()
		values[HeaderChain] = strings.Join(chainStrings(p), ",")
	}
	ok := &authv3.OkHttpResponse{}
	for _, name := range identityHeaders {
		if v, set := values[name]; set {
			ok.Headers = append(ok.Headers, header(name, v))
		} else {
			ok.HeadersToRemove = append(ok.HeadersToRemove, name)
		}
	}
	var foreign []string
	for _, name := range requestHeaders {
		lower := strings.ToLower(name)
		if !strings.HasPrefix(strings.ReplaceAll(lower, "_", "-"), "x-agentid-") || slices.Contains(identityHeaders, lower) {
			continue
		}
		foreign = append(foreign, lower)
	}
	slices.Sort(foreign) // deterministic answers
	ok.HeadersToRemove = append(ok.HeadersToRemove, slices.Compact(foreign)...)
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
	}
}

// deny answers a refusal: 401 with a WWW-Authenticate challenge when the
// caller could not be authenticated, 403 when a rule refused, 503 when
// revocation status is unknown; the body is JSON as in httpmw.
func deny(err error) *authv3.CheckResponse {
	status, code, grpcCode := typev3.StatusCode_Unauthorized, "invalid_token", codes.Unauthenticated
	switch {
	case errors.Is(err, ErrNoRule), errors.Is(err, ErrDenied):
		status, code, grpcCode = typev3.StatusCode_Forbidden, "access_denied", codes.PermissionDenied
	case verify.ClassOf(err) == verify.ClassForbidden:
		status, code, grpcCode = typev3.StatusCode_Forbidden, "access_denied", codes.PermissionDenied
	case verify.ClassOf(err) == verify.ClassUnavailable:
		status, code, grpcCode = typev3.StatusCode_ServiceUnavailable, "temporarily_unavailable", codes.Unavailable
	case errors.Is(err, ErrBadPath):
		status, code, grpcCode = typev3.StatusCode_BadRequest, "invalid_request", codes.InvalidArgument
	case errors.Is(err, verify.ErrNoToken), errors.Is(err, verify.ErrNoPeer), errors.Is(err, ErrBadRequest):
		code = "invalid_request"
	}
	body, _ := json.Marshal(map[string]string{"error": code, "error_description": err.Error()})
	headers := []*corev3.HeaderValueOption{header("content-type", "application/json"), header("cache-control", "no-store")}
	if status == typev3.StatusCode_Unauthorized {
		challenge := `Bearer realm="agentid"`
		if !errors.Is(err, verify.ErrNoToken) {
			challenge += `, error="` + code + `"`
		}
		headers = append(headers, header("www-authenticate", challenge))
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(grpcCode), Message: err.Error()},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: status}, Headers: headers, Body: string(body),
		}},
	}
}
