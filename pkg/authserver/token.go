package authserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/verify"
)

// Log field names (constant keys, as in SPIRE's telemetry names).
const (
	logEndpoint     = "endpoint"
	logReason       = "reason"
	logError        = "error_code"
	logDetail       = "detail"
	logRemote       = "remote"
	logActor        = "actor"
	logDelegationID = "delegation_id"
	logResource     = "resource"
)

// Audit Detail keys of the events the token endpoint records.
const (
	DetailToken     = "token" // "access_token"
	DetailAudience  = "audience"
	DetailScope     = "scope"
	DetailJTI       = "jti"
	DetailExpiresAt = "expires_at"
	DetailBound     = "bound" // "x5t#S256" or "none"
	DetailEndpoint  = "endpoint"
	DetailReason    = "reason"
	DetailError     = "error"
	DetailRemote    = "remote"
)

// anonymous is the audit actor of a refusal before any identity was proven.
const anonymous = "anonymous"

// auditWriteTimeout bounds an audit write that outlives its request.
const auditWriteTimeout = 5 * time.Second

// tokenResponse is RFC 6749 §5.1's success body.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	// IssuedTokenType is RFC 8693 §2.2.1's, for token exchange only.
	IssuedTokenType string `json:"issued_token_type,omitempty"`
}

// grantRequest is what the token endpoint knows about a request as it goes,
// for the audit event of its refusal.
type grantRequest struct {
	remote     string
	actor      string // proven identity: the certificate's, then the assertion's
	delegation string
	agent      string
	user       string
	resource   string // only once known to be registered
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	g := &grantRequest{remote: remoteHost(r)}
	resp, ref := s.grant(r, g)
	if ref != nil {
		s.deny(r.Context(), "token", g, ref)
		writeError(w, ref)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	_ = json.NewEncoder(w).Encode(resp) //nolint:gosec // the token response carries the access token to its client by design (RFC 6749 §5.1), over TLS, no-store
}

// readForm reads a form body strictly: POST, form encoding, bounded size,
// no URL query, no repeated parameter (RFC 6749 §3.2).
func readForm(r *http.Request) (url.Values, *refusal) {
	if r.Method != http.MethodPost {
		return nil, refuseMethod
	}
	if r.URL.RawQuery != "" {
		return nil, refuseQuery
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, refuseContentType
	}
	if r.ContentLength > MaxRequestSize {
		return nil, refuseTooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestSize+1))
	if err != nil {
		return nil, refuseForm.with("reading the body failed")
	}
	if len(body) > MaxRequestSize {
		return nil, refuseTooLarge
	}
	return parseForm(string(body))
}

// parseForm parses an application/x-www-form-urlencoded body. Every
// parameter may appear once.
func parseForm(body string) (url.Values, *refusal) {
	form, err := url.ParseQuery(body)
	if err != nil {
		return nil, refuseForm
	}
	for _, v := range form {
		if len(v) > 1 {
			return nil, refuseDuplicate
		}
	}
	return form, nil
}

// peer returns the SPIFFE ID of the client certificate, verified here
// against the trust domains' X.509 bundles whatever the listener's TLS
// configuration checked, and the certificate's thumbprint (RFC 8705 §3.1);
// the zero ID when the client presented none.
func (s *Server) peer(r *http.Request) (spiffeid.ID, string, *refusal) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return spiffeid.ID{}, "", nil
	}
	if s.config.X509Bundles == nil {
		return spiffeid.ID{}, "", refuseClientCert.with("no X.509 bundle source configured")
	}
	h := sha256.New()
	for _, c := range r.TLS.PeerCertificates {
		h.Write(c.Raw)
	}
	var key [32]byte
	h.Sum(key[:0])
	id, err := s.verifyPeer(r.TLS.PeerCertificates, key)
	if err != nil {
		return spiffeid.ID{}, "", refuseClientCert.with(err.Error())
	}
	if !s.trusted(id.TrustDomain()) {
		return spiffeid.ID{}, "", refuseClientCert.with("trust domain " + id.TrustDomain().Name() + " not accepted")
	}
	return id, thumbprint(r.TLS.PeerCertificates[0]), nil
}

func thumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (s *Server) trusted(td spiffeid.TrustDomain) bool {
	for _, t := range s.config.TrustDomains {
		if t == td {
			return true
		}
	}
	return false
}

func (s *Server) grant(r *http.Request, g *grantRequest) (*tokenResponse, *refusal) {
	form, ref := readForm(r)
	if ref != nil {
		return nil, ref
	}
	// Only tls_client_auth (or no client authentication: the assertion
	// authenticates, RFC 7523 §3.1) is supported; a client that tries
	// another method is told so rather than silently treated as public.
	if r.Header.Get("Authorization") != "" || form.Has("client_secret") || form.Has("client_assertion") || form.Has("client_assertion_type") {
		return nil, refuseClientAuth
	}
	peer, x5t, ref := s.peer(r)
	if ref != nil {
		return nil, ref
	}
	if !peer.IsZero() {
		g.actor = peer.String()
	}
	clientID := form.Get("client_id")
	if clientID != "" && !peer.IsZero() && clientID != peer.String() {
		return nil, refuseClientID
	}
	c := client{peer: peer, x5t: x5t, clientID: clientID}
	switch gt := form.Get("grant_type"); gt {
	case "":
		return nil, refuseNoGrantType
	case GrantTypeJWTBearer:
		return s.jwtBearer(r, g, form, c)
	case GrantTypeTokenExchange:
		return s.exchange(r, g, form, c)
	default:
		return nil, refuseGrantType
	}
}

// client is what the token endpoint knows of the caller before the grant:
// its certificate's SPIFFE ID and thumbprint (zero and "" without one) and
// the client_id it sent.
type client struct {
	peer     spiffeid.ID
	x5t      string
	clientID string
}

// resource reads the registered resource the request names (RFC 8707).
func (s *Server) resource(form url.Values, g *grantRequest) (*Resource, *refusal) {
	resURI := form.Get("resource")
	if resURI == "" {
		return nil, refuseNoResource
	}
	res, ok := s.resources[resURI]
	if !ok {
		return nil, refuseResource
	}
	g.resource = res.URI
	return res, nil
}

// askedScopes reads the optional scope parameter; empty when absent.
func askedScopes(form url.Values) (delegation.ScopeSet, *refusal) {
	raw, ok := form["scope"]
	if !ok {
		return delegation.ScopeSet{}, nil
	}
	asked, err := delegation.ParseScopeString(raw[0])
	if err != nil || asked.IsEmpty() {
		return delegation.ScopeSet{}, refuseScopeSyntax
	}
	return asked, nil
}

// narrow is the scope a token gets: all of allowed when nothing is asked,
// else what is asked, which must lie within allowed.
func narrow(asked, allowed delegation.ScopeSet) (delegation.ScopeSet, *refusal) {
	granted := allowed
	if !asked.IsEmpty() {
		if !asked.SubsetOf(allowed) {
			return delegation.ScopeSet{}, refuseScopeWider.with("not granted: " + asked.Minus(allowed).String())
		}
		granted = asked
	}
	if granted.IsEmpty() {
		return delegation.ScopeSet{}, refuseScopeEmpty
	}
	return granted, nil
}

// jwtBearer is the RFC 7523 grant: a delegated JWT-SVID for an access token
// of its own delegation.
func (s *Server) jwtBearer(r *http.Request, g *grantRequest, form url.Values, c client) (*tokenResponse, *refusal) {
	res, ref := s.resource(form, g)
	if ref != nil {
		return nil, ref
	}
	assertion := form.Get("assertion")
	switch {
	case assertion == "":
		return nil, refuseNoAssertion
	case len(assertion) > MaxAssertionSize:
		return nil, refuseAssertionSize
	}
	asked, ref := askedScopes(form)
	if ref != nil {
		return nil, ref
	}

	p, ref := s.verifyAssertion(c.peer, assertion)
	if ref != nil {
		return nil, ref
	}
	g.actor, g.agent = p.Agent.String(), p.Agent.String()
	if c.clientID != "" && c.clientID != p.Agent.String() {
		return nil, refuseClientID
	}
	if !p.Delegated() {
		return nil, refuseNoDelegation
	}
	g.delegation, g.user = p.Delegation.ID.String(), p.User.String()

	now := s.config.Clock()
	d, ref := s.activeDelegation(r.Context(), p.Delegation.ID, now)
	if ref != nil {
		return nil, ref
	}
	if d.Agent != p.Agent || d.User != p.User {
		return nil, refuseAssertion.with("the assertion's delegation belongs to another agent or user")
	}
	// The root needs no read of its own: the store revokes a delegation's
	// descendants in the transaction that revokes it, and a child never
	// outlives its parent, so an active child has an active root.

	granted, ref := narrow(asked, d.Scopes.Intersect(res.Scopes))
	if ref != nil {
		return nil, ref
	}
	return s.issue(r.Context(), d, res, granted, c.x5t, p.Agent.String(), now)
}

// lifetime is the [iat, exp) of a token for res under d issued at now:
// whole seconds, never past the delegation.
func lifetime(d *delegation.Delegation, res *Resource, now time.Time) (iat, exp time.Time, ok bool) {
	iat = now.Truncate(time.Second)
	exp = iat.Add(res.TokenTTL)
	if dexp := d.ExpiresAt.Truncate(time.Second); dexp.Before(exp) {
		exp = dexp // never outlive the delegation: round its expiry down
	}
	return iat, exp, exp.After(iat)
}

// issue signs an access token for res under d with scope granted, bound to
// the certificate thumbprint x5t when set, and records it (actor is the
// audit event's actor) before returning it.
func (s *Server) issue(ctx context.Context, d *delegation.Delegation, res *Resource, granted delegation.ScopeSet,
	x5t, actor string, now time.Time) (*tokenResponse, *refusal) {
	iat, exp, ok := lifetime(d, res, now)
	if !ok {
		return nil, refuseInactive.with("the delegation expires within a second")
	}
	at := claims.AccessToken{
		Issuer: s.config.Issuer, User: d.User, Audience: res.URI, Chain: d.Chain, Scopes: granted,
		IssuedAt: iat, ExpiresAt: exp, ID: newJTI(), Delegation: d.ID, Root: d.Root, CertThumbprint: x5t,
	}
	payload, err := json.Marshal(at)
	if err != nil {
		return nil, refuseSign.with(err.Error())
	}
	token, _, err := s.config.Keys.Sign(payload)
	if err != nil {
		return nil, refuseSign.with(err.Error())
	}
	bound := "none"
	if x5t != "" {
		bound = claims.ConfirmationX5tS256
	}
	ev := audit.Event{
		Time: now, Type: audit.TypeTokenIssued, Actor: actor,
		DelegationID: d.ID.String(), Agent: d.Agent.String(), User: d.User.String(),
		Detail: map[string]string{
			DetailToken: "access_token", DetailAudience: res.URI, DetailScope: granted.String(),
			DetailJTI: at.ID, DetailExpiresAt: exp.UTC().Format(time.RFC3339), DetailBound: bound,
		},
	}
	// No token leaves without its audit record (fail closed), and a client
	// that gives up cannot cancel the record of a token already signed.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditWriteTimeout)
	defer cancel()
	if err := s.config.Store.AppendEvents(wctx, ev); err != nil {
		return nil, refuseStore.with("recording the issuance failed: " + err.Error())
	}
	return &tokenResponse{AccessToken: token, TokenType: tokenTypeBearer, ExpiresIn: int64(exp.Sub(iat) / time.Second), Scope: granted.String()}, nil
}

// verifyAssertion checks the assertion with pkg/verify: signature by the
// trust domain's JWT authority, audience = the issuer, time, delegation
// claims well formed. With a client certificate its sub must be the
// certificate's SPIFFE ID. Without one the assertion is a bearer credential
// on its own (RFC 7523 §3): pkg/verify binds a token to a peer, so it is
// given the assertion's own sub, read before verification and trusted only
// because Verify then checks the signature over it.
func (s *Server) verifyAssertion(peer spiffeid.ID, assertion string) (verify.Principal, *refusal) {
	bindTo := peer
	if bindTo.IsZero() {
		sub, err := unverifiedSubject(assertion)
		if err != nil {
			return verify.Principal{}, refuseAssertion.with("malformed: " + err.Error())
		}
		bindTo = sub
	}
	p, err := s.assertions.Verify(bindTo, assertion)
	switch {
	case err == nil:
		return p, nil
	case errors.Is(err, verify.ErrPeerMismatch):
		return verify.Principal{}, refuseCertMismatch.with(err.Error())
	case errors.Is(err, verify.ErrNoDelegation):
		return verify.Principal{}, refuseNoDelegation
	}
	return verify.Principal{}, refuseAssertion.with(err.Error())
}

// unverifiedSubject reads sub from a JWS payload without checking anything.
func unverifiedSubject(token string) (spiffeid.ID, error) {
	parts := strings.SplitN(token, ".", 4)
	if len(parts) != 3 {
		return spiffeid.ID{}, errors.New("not three segments")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return spiffeid.ID{}, errors.New("payload is not base64url")
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return spiffeid.ID{}, errors.New("payload is not a JSON object")
	}
	id, err := spiffeid.FromString(c.Sub)
	if err != nil {
		return spiffeid.ID{}, errors.New("sub is not a SPIFFE ID")
	}
	return id, nil
}

// activeDelegation reads a delegation and requires it active at now.
func (s *Server) activeDelegation(ctx context.Context, id delegation.ID, now time.Time) (*delegation.Delegation, *refusal) {
	d, err := s.config.Store.GetDelegation(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, refuseInactive.with("delegation " + id.String() + " not found")
	case err != nil:
		return nil, refuseStore.with(err.Error())
	case !d.ActiveAt(now):
		return nil, refuseInactive.with("delegation " + id.String() + " is " + d.EffectiveState(now).String())
	}
	return d, nil
}

func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func remoteHost(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

// deny logs a refusal, and records it as a denied audit event, rate limited
// per caller (package denylimit): the endpoint is open to anyone who reaches
// the listener, and every refusal would otherwise add a permanent event.
func (s *Server) deny(ctx context.Context, endpoint string, g *grantRequest, ref *refusal) {
	actor := g.actor
	if actor == "" {
		actor = anonymous
	}
	s.config.Log.WithFields(logrus.Fields{
		logEndpoint: endpoint, logReason: ref.reason, logError: ref.code, logDetail: ref.detail,
		logRemote: g.remote, logActor: actor, logDelegationID: g.delegation, logResource: g.resource,
	}).Info("OAuth request refused")
	now := s.config.Clock()
	key := actor
	if actor == anonymous {
		key = "remote:" + g.remote
	}
	ok, suppressed := s.denials.Allow(key, now)
	if !ok {
		return
	}
	ev := audit.Event{
		Time: now, Type: audit.TypeDenied, Actor: actor, DelegationID: g.delegation, Agent: g.agent, User: g.user,
		Detail: map[string]string{DetailEndpoint: endpoint, DetailReason: ref.reason, DetailError: ref.code, DetailRemote: truncate(g.remote, 64)},
	}
	if g.resource != "" {
		ev.Detail[DetailAudience] = g.resource
	}
	if suppressed > 0 {
		ev.Detail["suppressed"] = strconv.Itoa(suppressed)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditWriteTimeout)
	defer cancel()
	if err := s.config.Store.AppendEvents(wctx, ev); err != nil {
		s.config.Log.WithError(err).Error("Failed to record denied audit event")
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
