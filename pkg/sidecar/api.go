package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error codes of the JSON error body, one per way a request can fail.
const (
	codeInvalidRequest     = "invalid_request"
	codeTooLarge           = "request_too_large"
	codeUnsupportedMedia   = "unsupported_media_type"
	codeBrowserRefused     = "browser_request_refused"
	codeNotFound           = "not_found"
	codeNotConfigured      = "not_configured"
	codeDelegationDenied   = "delegation_denied"
	codeSPIREUnavailable   = "spire_unavailable"
	codeNoIdentity         = "no_identity"
	codeUnauthenticated    = "unauthenticated"
	codePermissionDenied   = "permission_denied"
	codeFailedPrecondition = "failed_precondition"
	codeServerUnavailable  = "server_unavailable"
	codeServerIdentity     = "server_identity_mismatch"
	codeServerError        = "server_error"
	codeUnknownRoute       = "unknown_route"
	codeUpstreamIdentity   = "upstream_identity_mismatch"
	codeUpstreamError      = "upstream_error"
	codeConnectUnsupported = "connect_unsupported"
)

// ErrorBody is the JSON body of every error answer of the API and the proxy.
type ErrorBody struct {
	// Error is a stable code callers branch on, e.g. "delegation_denied".
	Error string `json:"error"`
	// Message is for people; it never contains a token.
	Message string `json:"message"`
}

// IdentityResponse answers GET /v1/identity.
type IdentityResponse struct {
	SPIFFEID  string    `json:"spiffe_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// TokenResponse answers GET /v1/token.
type TokenResponse struct {
	Token      string    `json:"token"`
	Audience   string    `json:"audience"`
	Delegation string    `json:"delegation"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// CreateDelegationRequest is the body of POST /v1/delegations.
type CreateDelegationRequest struct {
	// UserToken is the user's OIDC ID token. Required.
	UserToken string `json:"user_token"`
	// AgentID is the agent to delegate to; empty means the sidecar's agent.
	AgentID string `json:"agent_id,omitempty"`
	// Scopes asked for. Required.
	Scopes []string `json:"scopes"`
	// TTL is a Go duration ("30m"). Required.
	TTL string `json:"ttl"`
	// Intent is the user's request in their words.
	Intent string `json:"intent,omitempty"`
}

// SubDelegationRequest is the body of POST /v1/delegations/{id}/sub.
type SubDelegationRequest struct {
	// AgentID receives the sub-delegation. Required.
	AgentID string `json:"agent_id"`
	// Scopes to pass on. Required.
	Scopes []string `json:"scopes"`
	// TTL is a Go duration. Required.
	TTL string `json:"ttl"`
	// Intent is the agent's reading of the task it passes on.
	Intent string `json:"intent,omitempty"`
}

// DelegationResponse answers the two POSTs.
type DelegationResponse struct {
	Delegation *delegation.Delegation `json:"delegation"`
}

// ListResponse answers GET /v1/delegations: one page.
type ListResponse struct {
	Delegations []*delegation.Delegation `json:"delegations"`
	// NextPageToken fetches the next page (?page_token=); empty on the last.
	NextPageToken string `json:"next_page_token"`
}

// RevokeResponse answers DELETE /v1/delegations/{id}.
type RevokeResponse struct {
	RevokedIDs []delegation.ID        `json:"revoked_ids"`
	Delegation *delegation.Delegation `json:"delegation"`
}

func (s *Sidecar) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /v1/identity", s.identity)
	mux.HandleFunc("GET /v1/token", func(w http.ResponseWriter, r *http.Request) { s.metrics.token(s.token(w, r)) })
	mux.HandleFunc("GET /v1/access-token", func(w http.ResponseWriter, r *http.Request) { s.metrics.token(s.accessToken(w, r)) })
	mux.HandleFunc("POST /v1/delegations", s.counted("create", s.createDelegation))
	mux.HandleFunc("POST /v1/delegations/{id}/sub", s.counted("sub", s.subDelegation))
	mux.HandleFunc("DELETE /v1/delegations/{id}", s.counted("revoke", s.revokeDelegation))
	mux.HandleFunc("GET /v1/delegations/{id}", s.counted("get", s.getDelegation))
	mux.HandleFunc("GET /v1/delegations", s.counted("list", s.listDelegations))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, codeNotFound, "sidecar: no such endpoint")
	})
	return s.guard(mux)
}

// counted serves a delegation endpoint, which returns the outcome it
// answered with, and counts it under op.
func (s *Sidecar) counted(op string, h func(http.ResponseWriter, *http.Request) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.metrics.delegation(op, h(w, r)) }
}

// guard refuses what a browser could send: the API is reachable from the
// agent's network namespace, and a web page the agent (or a tool of it)
// opens must not be able to use it. A request a browser made for a page
// (browserRequest), or for a Host that is not a loopback name (DNS
// rebinding), is refused.
func (s *Sidecar) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if msg := browserRequest(r.Header); msg != "" {
			s.metrics.apiRefused.Inc()
			writeError(w, http.StatusForbidden, codeBrowserRefused, msg)
			return
		}
		if s.config.Listen.network == "tcp" && !loopbackHost(r.Host) {
			s.metrics.apiRefused.Inc()
			writeError(w, http.StatusForbidden, codeBrowserRefused, "sidecar: Host must be a loopback address or localhost")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.IsLoopback()
}

func (s *Sidecar) healthz(w http.ResponseWriter, _ *http.Request) {
	svid, err := s.agent.X509SVID()
	if err != nil || s.config.Clock().After(svid.Certificates[0].NotAfter) {
		writeError(w, http.StatusServiceUnavailable, codeSPIREUnavailable, "sidecar: no valid X509-SVID")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Sidecar) identity(w http.ResponseWriter, _ *http.Request) {
	svid, err := s.agent.X509SVID()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, codeSPIREUnavailable, "sidecar: no X509-SVID")
		return
	}
	writeJSON(w, http.StatusOK, IdentityResponse{SPIFFEID: svid.ID.String(), ExpiresAt: svid.Certificates[0].NotAfter.UTC()})
}

// token answers GET /v1/token and returns the outcome for the metrics.
func (s *Sidecar) token(w http.ResponseWriter, r *http.Request) string {
	q := r.URL.Query()
	var missing []string
	for _, k := range []string{"audience", "delegation"} {
		if len(q[k]) != 1 || q[k][0] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return writeError(w, http.StatusBadRequest, codeInvalidRequest, "sidecar: exactly one non-empty value needed for: "+strings.Join(missing, ", "))
	}
	id, err := delegation.ParseID(q.Get("delegation"))
	if err != nil {
		return writeError(w, http.StatusBadRequest, codeInvalidRequest, "sidecar: delegation: "+err.Error())
	}
	if err := agentclient.CheckAudience(q.Get("audience")); err != nil {
		// The caller's error (400), not SPIRE's (503, retried forever).
		return writeError(w, http.StatusBadRequest, codeInvalidRequest, "sidecar: "+audienceReason(err))
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.config.RequestTimeout)
	defer cancel()
	tok, err := s.agent.Tokens().Token(ctx, id, q.Get("audience"))
	if err != nil {
		return s.tokenError(w, err)
	}
	writeJSON(w, http.StatusOK, TokenResponse{Token: tok.Value, Audience: tok.Audience, Delegation: id.String(), ExpiresAt: tok.ExpiresAt.UTC()})
	return outcomeOK
}

// AccessTokenResponse answers GET /v1/access-token.
type AccessTokenResponse struct {
	// AccessToken is the RFC 9068 JWT, for "Authorization: Bearer".
	AccessToken string `json:"access_token"`
	// TokenType is "Bearer".
	TokenType string `json:"token_type"`
	// Resource is the resource it is for (aud).
	Resource string `json:"resource"`
	// Scope is the granted scope, space-separated.
	Scope      string    `json:"scope"`
	Delegation string    `json:"delegation"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// accessToken answers GET /v1/access-token?delegation=…&resource=…[&scope=…]:
// an access token from agentid-server's authorization server for an OAuth
// resource (an MCP server). It is not bound to a certificate: the agent
// presents it over its own connections, which cannot carry the sidecar's
// X509-SVID. The agent never holds a user token or a JWT-SVID for this.
func (s *Sidecar) accessToken(w http.ResponseWriter, r *http.Request) string {
	if s.access == nil {
		return writeError(w, http.StatusNotImplemented, codeNotConfigured, "sidecar: no oauth issuer configured")
	}
	q := r.URL.Query()
	var missing []string
	for _, k := range []string{"resource", "delegation"} {
		if len(q[k]) != 1 || q[k][0] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return writeError(w, http.StatusBadRequest, codeInvalidRequest, "sidecar: exactly one non-empty value needed for: "+strings.Join(missing, ", "))
	}
	if len(q["scope"]) > 1 {
		return writeError(w, http.StatusBadRequest, codeInvalidRequest, "sidecar: scope: at most one value (space-separated scopes)")
	}
	id, err := delegation.ParseID(q.Get("delegation"))
	if err != nil {
		return writeError(w, http.StatusBadRequest, codeInvalidRequest, "sidecar: delegation: "+err.Error())
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.config.RequestTimeout)
	defer cancel()
	tok, err := s.access.Token(ctx, id, q.Get("resource"), strings.Fields(q.Get("scope"))...)
	if err != nil {
		return s.tokenError(w, err)
	}
	writeJSON(w, http.StatusOK, AccessTokenResponse{AccessToken: tok.Value, TokenType: "Bearer", Resource: tok.Resource,
		Scope: tok.Scope, Delegation: id.String(), ExpiresAt: tok.ExpiresAt.UTC()})
	return outcomeOK
}

// audienceReason is agentclient.CheckAudience's error as "audience: <reason>".
func audienceReason(err error) string {
	return strings.TrimPrefix(err.Error(), agentclient.ErrInvalidRequest.Error()+": ")
}

// tokenError answers a failed token fetch (403 denied, 503 SPIRE) and
// returns the code.
func (s *Sidecar) tokenError(w http.ResponseWriter, err error) string {
	status, code, ok := tokenFailure(err)
	if !ok {
		status, code = http.StatusServiceUnavailable, codeSPIREUnavailable
	}
	if code == codeSPIREUnavailable {
		s.log.Warn("Token fetch failed", "error", err.Error())
	}
	return writeError(w, status, code, err.Error())
}

// tokenFailure maps agentclient's token errors to the sidecar's answer, for
// the token API and the proxy alike; ok is false for any other error.
func tokenFailure(err error) (status int, code string, ok bool) {
	switch {
	case errors.Is(err, agentclient.ErrInvalidRequest):
		return http.StatusBadRequest, codeInvalidRequest, true
	case errors.Is(err, agentclient.ErrDelegationDenied):
		return http.StatusForbidden, codeDelegationDenied, true
	case errors.Is(err, agentclient.ErrNoIdentity):
		return http.StatusServiceUnavailable, codeNoIdentity, true
	case errors.Is(err, agentclient.ErrUnavailable):
		return http.StatusServiceUnavailable, codeSPIREUnavailable, true
	}
	return 0, "", false
}

// createDelegation answers POST /v1/delegations; like the other delegation
// endpoints it returns the outcome for the metrics: ok or the error code.
func (s *Sidecar) createDelegation(w http.ResponseWriter, r *http.Request) string {
	if code := s.serverConfigured(w); code != "" {
		return code
	}
	var req CreateDelegationRequest
	if code := s.decode(w, r, &req); code != "" {
		return code
	}
	if code := requireFields(w, field{"user_token", req.UserToken != ""}, field{"scopes", len(req.Scopes) > 0}, field{"ttl", req.TTL != ""}); code != "" {
		return code
	}
	agent := s.agent.ID()
	if req.AgentID != "" {
		var err error
		if agent, err = spiffeid.FromString(req.AgentID); err != nil {
			return writeError(w, http.StatusBadRequest, codeInvalidRequest, "sidecar: agent_id: "+err.Error())
		}
	}
	ttl, code := parseTTL(w, req.TTL)
	if code != "" {
		return code
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.config.RequestTimeout)
	defer cancel()
	d, err := s.server.CreateDelegation(ctx, agentclient.CreateRequest{
		UserToken: req.UserToken, Agent: agent, Scopes: req.Scopes, TTL: ttl, Intent: req.Intent,
	})
	if err != nil {
		return s.serverError(w, err)
	}
	s.log.Info("Delegation created", "delegation_id", d.ID.String(), "agent_id", d.Agent.String())
	writeJSON(w, http.StatusCreated, DelegationResponse{Delegation: d})
	return outcomeOK
}

func (s *Sidecar) subDelegation(w http.ResponseWriter, r *http.Request) string {
	if code := s.serverConfigured(w); code != "" {
		return code
	}
	parent, code := pathID(w, r)
	if code != "" {
		return code
	}
	var req SubDelegationRequest
	if code := s.decode(w, r, &req); code != "" {
		return code
	}
	if code := requireFields(w, field{"agent_id", req.AgentID != ""}, field{"scopes", len(req.Scopes) > 0}, field{"ttl", req.TTL != ""}); code != "" {
		return code
	}
	agent, err := spiffeid.FromString(req.AgentID)
	if err != nil {
		return writeError(w, http.StatusBadRequest, codeInvalidRequest, "sidecar: agent_id: "+err.Error())
	}
	ttl, code := parseTTL(w, req.TTL)
	if code != "" {
		return code
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.config.RequestTimeout)
	defer cancel()
	d, err := s.server.CreateSubDelegation(ctx, agentclient.SubDelegationRequest{
		Parent: parent, Agent: agent, Scopes: req.Scopes, TTL: ttl, Intent: req.Intent,
	})
	if err != nil {
		return s.serverError(w, err)
	}
	s.log.Info("Sub-delegation created", "delegation_id", d.ID.String(), "parent_id", parent.String(), "agent_id", d.Agent.String())
	writeJSON(w, http.StatusCreated, DelegationResponse{Delegation: d})
	return outcomeOK
}

func (s *Sidecar) revokeDelegation(w http.ResponseWriter, r *http.Request) string {
	if code := s.serverConfigured(w); code != "" {
		return code
	}
	id, code := pathID(w, r)
	if code != "" {
		return code
	}
	reason := r.URL.Query().Get("reason")
	ctx, cancel := context.WithTimeout(r.Context(), s.config.RequestTimeout)
	defer cancel()
	rev, err := s.server.RevokeDelegation(ctx, id, reason)
	if err != nil {
		return s.serverError(w, err)
	}
	for _, rid := range rev.IDs {
		s.agent.Tokens().Forget(rid)
	}
	s.agent.Tokens().Forget(id)
	s.log.Info("Delegation revoked", "delegation_id", id.String(), "revoked_count", len(rev.IDs))
	if rev.IDs == nil {
		rev.IDs = []delegation.ID{}
	}
	writeJSON(w, http.StatusOK, RevokeResponse{RevokedIDs: rev.IDs, Delegation: rev.Delegation})
	return outcomeOK
}

// getDelegation answers GET /v1/delegations/{id}: a delegation the agent
// holds, made or is in the chain of; any other id is 404, as an unknown one.
func (s *Sidecar) getDelegation(w http.ResponseWriter, r *http.Request) string {
	if code := s.serverConfigured(w); code != "" {
		return code
	}
	id, code := pathID(w, r)
	if code != "" {
		return code
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.config.RequestTimeout)
	defer cancel()
	d, err := s.server.GetDelegation(ctx, id)
	if err != nil {
		return s.serverError(w, err)
	}
	writeJSON(w, http.StatusOK, DelegationResponse{Delegation: s.effective(d)})
	return outcomeOK
}

// maxPageSize is the largest page GET /v1/delegations asks for: the most
// agentid-server returns.
const maxPageSize = 1000

// listDelegations answers GET /v1/delegations: a page of the delegations
// the agent holds, optionally in one state (?state=active|revoked|expired),
// ?page_size= (0..maxPageSize) and ?page_token= from the previous page.
func (s *Sidecar) listDelegations(w http.ResponseWriter, r *http.Request) string {
	if code := s.serverConfigured(w); code != "" {
		return code
	}
	q := r.URL.Query()
	for k, v := range q {
		if len(v) != 1 {
			return writeError(w, http.StatusBadRequest, codeInvalidRequest, "sidecar: "+truncate(k)+": given more than once")
		}
		if k != "state" && k != "page_size" && k != "page_token" {
			return writeError(w, http.StatusBadRequest, codeInvalidRequest, fmt.Sprintf("sidecar: unknown parameter %q", truncate(k)))
		}
	}
	state := delegation.StateUnspecified
	if v := q.Get("state"); v != "" {
		var err error
		if state, err = delegation.ParseState(v); err != nil {
			return writeError(w, http.StatusBadRequest, codeInvalidRequest, "sidecar: state: want active, revoked or expired")
		}
	}
	size := 0
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxPageSize {
			return writeError(w, http.StatusBadRequest, codeInvalidRequest, fmt.Sprintf("sidecar: page_size: want 0..%d", maxPageSize))
		}
		size = n
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.config.RequestTimeout)
	defer cancel()
	list, next, err := s.server.ListDelegations(ctx, agentclient.ListRequest{State: state, PageSize: size, PageToken: q.Get("page_token")})
	if err != nil {
		return s.serverError(w, err)
	}
	out := ListResponse{Delegations: make([]*delegation.Delegation, len(list)), NextPageToken: next}
	for i, d := range list {
		out.Delegations[i] = s.effective(d)
	}
	writeJSON(w, http.StatusOK, out)
	return outcomeOK
}

// effective is d with its state as of now: the server decodes an expired
// delegation as stored (active), and an agent reading "active" past
// expires_at would be misled.
func (s *Sidecar) effective(d *delegation.Delegation) *delegation.Delegation {
	c := *d
	c.State = d.EffectiveState(s.config.Clock())
	return &c
}

// serverConfigured answers 501 without a server, returning the code, or
// returns "".
func (s *Sidecar) serverConfigured(w http.ResponseWriter) string {
	if s.server == nil {
		return writeError(w, http.StatusNotImplemented, codeNotConfigured, "sidecar: no agentid-server configured (server.address)")
	}
	return ""
}

// serverError maps an agentid-server answer to HTTP and returns the code.
func (s *Sidecar) serverError(w http.ResponseWriter, err error) string {
	if errors.Is(err, agentclient.ErrInvalidRequest) {
		return writeError(w, http.StatusBadRequest, codeInvalidRequest, err.Error())
	}
	// The server's own status, not FromError's: that one's message is the
	// whole wrapped text ("agentclient: ...: rpc error: code = ... desc = ..."),
	// and the agent needs the server's words.
	st, _ := status.FromError(err)
	var grpcErr interface{ GRPCStatus() *status.Status }
	if errors.As(err, &grpcErr) {
		st = grpcErr.GRPCStatus()
	}
	if errors.Is(err, agentclient.ErrPeerNotAuthorized) {
		s.log.Error("agentid-server presented an unexpected SPIFFE ID", "error", err.Error())
		return writeError(w, http.StatusBadGateway, codeServerIdentity, "sidecar: agentid-server presented an unexpected SPIFFE ID")
	}
	msg := "agentid-server: " + st.Message()
	switch st.Code() {
	case codes.InvalidArgument:
		return writeError(w, http.StatusBadRequest, codeInvalidRequest, msg)
	case codes.Unauthenticated:
		return writeError(w, http.StatusUnauthorized, codeUnauthenticated, msg)
	case codes.PermissionDenied:
		return writeError(w, http.StatusForbidden, codePermissionDenied, msg)
	case codes.NotFound:
		return writeError(w, http.StatusNotFound, codeNotFound, msg)
	case codes.FailedPrecondition:
		return writeError(w, http.StatusConflict, codeFailedPrecondition, msg)
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		s.log.Warn("agentid-server unavailable", "error", err.Error())
		return writeError(w, http.StatusServiceUnavailable, codeServerUnavailable, msg)
	default:
		s.log.Error("agentid-server call failed", "error", err.Error())
		return writeError(w, http.StatusBadGateway, codeServerError, msg)
	}
}

// pathID parses the {id} of the path; on failure it answers 400 and
// returns the code.
func pathID(w http.ResponseWriter, r *http.Request) (delegation.ID, string) {
	id, err := delegation.ParseID(r.PathValue("id"))
	if err != nil {
		return delegation.ID{}, writeError(w, http.StatusBadRequest, codeInvalidRequest, "sidecar: delegation id: "+err.Error())
	}
	return id, ""
}

func parseTTL(w http.ResponseWriter, s string) (time.Duration, string) {
	ttl, err := time.ParseDuration(s)
	if err != nil || ttl <= 0 {
		return 0, writeError(w, http.StatusBadRequest, codeInvalidRequest, fmt.Sprintf("sidecar: ttl: %q is not a positive duration like \"30m\"", truncate(s)))
	}
	return ttl, ""
}

// decode reads one JSON object of at most MaxBodyBytes, refusing unknown
// fields and trailing data. On failure it answers and returns the code;
// "" means v is filled.
func (s *Sidecar) decode(w http.ResponseWriter, r *http.Request, v any) string {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" && !strings.HasPrefix(ct, "application/json;") {
		return writeError(w, http.StatusUnsupportedMediaType, codeUnsupportedMedia, "sidecar: Content-Type must be application/json")
	}
	if r.ContentLength > s.config.MaxBodyBytes {
		return writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("sidecar: body larger than %d bytes", s.config.MaxBodyBytes))
	}
	if err := decodeBody(http.MaxBytesReader(w, r.Body, s.config.MaxBodyBytes), v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("sidecar: body larger than %d bytes", s.config.MaxBodyBytes))
		}
		return writeError(w, http.StatusBadRequest, codeInvalidRequest, err.Error())
	}
	return ""
}

// decodeBody decodes exactly one JSON value into v, strictly.
func decodeBody(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return fmt.Errorf("sidecar: malformed JSON body: %s", truncate(strings.TrimPrefix(err.Error(), "json: ")))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return errors.New("sidecar: malformed JSON body: data after the object")
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 128 {
		return s[:128] + "…"
	}
	return s
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the status is sent; an error here means the agent has gone
}

// writeError answers the error and returns errCode, the outcome the
// metrics count.
func writeError(w http.ResponseWriter, code int, errCode, msg string) string {
	writeJSON(w, code, ErrorBody{Error: errCode, Message: msg})
	return errCode
}

// field is a required request field and whether the request has it.
type field struct {
	name    string
	present bool
}

// requireFields answers 400 naming every missing field and returns the
// code, or returns "" when all were present.
func requireFields(w http.ResponseWriter, fields ...field) string {
	var missing []string
	for _, f := range fields {
		if !f.present {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return writeError(w, http.StatusBadRequest, codeInvalidRequest, "sidecar: missing fields: "+strings.Join(missing, ", "))
	}
	return ""
}
