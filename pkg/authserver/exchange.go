package authserver

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
)

// RFC 8693 token exchange: the grant type and the token types it reads and
// writes.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange" //nolint:gosec // an RFC 8693 token type URN, not a credential
	// TokenTypeAccessToken is an access token this server issued.
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token" //nolint:gosec // an RFC 8693 token type URN, not a credential
	// TokenTypeJWT is a JWT-SVID whose audience holds the issuer: delegated
	// as a subject token, plain or delegated as an actor token.
	TokenTypeJWT = "urn:ietf:params:oauth:token-type:jwt" //nolint:gosec // an RFC 8693 token type URN, not a credential
)

// The refusals of token exchange. RFC 8693 §2.2.2 answers invalid_request
// for a subject or actor token that is invalid or unacceptable by policy,
// and invalid_target for a target it will not issue for.
var (
	refuseNoSubject       = refuse(http.StatusBadRequest, ErrorInvalidRequest, "no_subject_token", "subject_token and subject_token_type are required")
	refuseSubjectType     = refuse(http.StatusBadRequest, ErrorInvalidRequest, "subject_token_type", "subject_token_type must be an access token or a JWT")
	refuseActorType       = refuse(http.StatusBadRequest, ErrorInvalidRequest, "actor_token_type", "actor_token_type must be a JWT and comes with actor_token")
	refuseRequestedType   = refuse(http.StatusBadRequest, ErrorInvalidRequest, "requested_token_type", "only access tokens are issued")
	refuseAudienceParam   = refuse(http.StatusBadRequest, ErrorInvalidTarget, "audience_parameter", "name the target with resource, not audience")
	refuseTokenSize       = refuse(http.StatusBadRequest, ErrorInvalidRequest, "token_too_large", "a token is too large")
	refuseSubject         = refuse(http.StatusBadRequest, ErrorInvalidRequest, "subject_token", "the subject token is not a valid access token or delegated JWT-SVID of this issuer")
	refuseSubjectHolder   = refuse(http.StatusBadRequest, ErrorInvalidRequest, "subject_holder", "an access token is exchanged only by its agent, over mTLS with the certificate it is bound to")
	refuseSubjectInactive = refuse(http.StatusBadRequest, ErrorInvalidRequest, "delegation_inactive", "the subject token's delegation is not active")
	refuseActor           = refuse(http.StatusBadRequest, ErrorInvalidRequest, "actor_token", "the actor token is not a valid JWT-SVID for this issuer")
	refuseActorCert       = refuse(http.StatusUnauthorized, ErrorInvalidClient, "actor_certificate", "the client certificate is neither the subject's agent nor the actor")
	refuseNoSubDelegation = refuse(http.StatusBadRequest, ErrorInvalidRequest, "sub_delegation_disabled", "this server does not sub-delegate by token exchange")
	refuseActorUnknown    = refuse(http.StatusBadRequest, ErrorInvalidRequest, "actor_not_declared", "the actor is not a declared agent")
	refuseActorNotAllowed = refuse(http.StatusBadRequest, ErrorInvalidRequest, "sub_agent_not_allowed", "the actor is not an allowed sub-agent of the subject's agent")
	refuseActorInChain    = refuse(http.StatusBadRequest, ErrorInvalidRequest, "agent_in_chain", "the actor already acts in the delegation's chain")
	refuseDepth           = refuse(http.StatusBadRequest, ErrorInvalidRequest, "depth_exceeded", "the delegation's chain may not grow longer")
)

// subject is what a verified subject token stands for: an agent acting
// under a delegation, with at most the scopes the token carried.
type subject struct {
	d      *delegation.Delegation
	scopes delegation.ScopeSet
}

// exchange is the RFC 8693 grant. The subject token is the current agent's
// authority: its delegated JWT-SVID (audience the issuer), or an access
// token this server issued to it, which only that agent may exchange, over
// mTLS (and with the certificate the token is bound to, if it is). Without
// an actor the result is a narrower token of the same delegation, for the
// resource asked. With an actor (actor_token = another agent's JWT-SVID for
// this issuer, or that agent's own client certificate while it presents
// the subject's JWT-SVID) it is a sub-delegation: the same checks as
// CreateSubDelegation (a declared sub-agent of the subject's agent, within
// its scope ceiling, the chain's max depth, no agent twice), recorded in
// the store with its audit event, living only as long as the token, which
// names the actor in client_id and act with the chain nested inside. Scopes
// only narrow: asked ⊆ the subject token's ∩ the resource's (∩ the actor's
// ceiling). Every delegation read is the store's at this request, so a
// revoked root refuses every further exchange below it.
func (s *Server) exchange(r *http.Request, g *grantRequest, form url.Values, c client) (*tokenResponse, *refusal) {
	if form.Has("audience") {
		return nil, refuseAudienceParam
	}
	if rt := form.Get("requested_token_type"); rt != "" && rt != TokenTypeAccessToken {
		return nil, refuseRequestedType
	}
	res, ref := s.resource(form, g)
	if ref != nil {
		return nil, ref
	}
	subjectToken, subjectType := form.Get("subject_token"), form.Get("subject_token_type")
	if subjectToken == "" || subjectType == "" {
		return nil, refuseNoSubject
	}
	actorToken, actorType := form.Get("actor_token"), form.Get("actor_token_type")
	if (actorToken == "") != (actorType == "") || (actorType != "" && actorType != TokenTypeJWT) {
		return nil, refuseActorType
	}
	if len(subjectToken) > MaxAssertionSize || len(actorToken) > MaxAssertionSize {
		return nil, refuseTokenSize
	}
	asked, ref := askedScopes(form)
	if ref != nil {
		return nil, ref
	}

	now := s.config.Clock()
	var sub subject
	switch subjectType {
	case TokenTypeAccessToken:
		sub, ref = s.accessTokenSubject(r.Context(), c, subjectToken, now)
	case TokenTypeJWT:
		sub, ref = s.jwtSubject(r.Context(), subjectToken, now)
	default:
		return nil, refuseSubjectType
	}
	if sub.d != nil {
		g.delegation, g.user, g.agent = sub.d.ID.String(), sub.d.User.String(), sub.d.Agent.String()
		if g.actor == "" {
			g.actor = sub.d.Agent.String()
		}
	}
	if ref != nil {
		return nil, ref
	}
	holder := sub.d.Agent

	// Who acts next: the actor token's agent, else a certificate other than
	// the holder's. A certificate must be one of the two.
	actor := holder
	if actorToken != "" {
		a, err := jwtsvid.ParseAndValidate(actorToken, s.config.Bundles, []string{s.config.Issuer})
		if err != nil || !s.trusted(a.ID.TrustDomain()) {
			detail := "trust domain not accepted"
			if err != nil {
				detail = err.Error()
			}
			return nil, refuseActor.with(detail)
		}
		actor = a.ID
	} else if !c.peer.IsZero() {
		actor = c.peer
	}
	if !c.peer.IsZero() && c.peer != holder && c.peer != actor {
		return nil, refuseActorCert
	}
	if c.clientID != "" && c.clientID != actor.String() && c.clientID != c.peer.String() {
		return nil, refuseClientID
	}
	// The token is bound to the certificate of the agent it is for, when
	// that agent presented one.
	x5t := ""
	if c.peer == actor {
		x5t = c.x5t
	}

	if actor == holder {
		granted, ref := narrow(asked, sub.scopes.Intersect(res.Scopes))
		if ref != nil {
			return nil, ref
		}
		resp, ref := s.issue(r.Context(), sub.d, res, granted, x5t, g.actor, now)
		if resp != nil {
			resp.IssuedTokenType = TokenTypeAccessToken
		}
		return resp, ref
	}

	g.agent = actor.String()
	child, granted, ref := s.subDelegate(r.Context(), sub, actor, res, asked, g.actor, now)
	if ref != nil {
		return nil, ref
	}
	g.delegation = child.ID.String()
	resp, ref := s.issue(r.Context(), child, res, granted, x5t, g.actor, now)
	if resp != nil {
		resp.IssuedTokenType = TokenTypeAccessToken
	}
	return resp, ref
}

// accessTokenSubject verifies an access token of this server presented for
// exchange and reads its delegation, active now and still the token's.
func (s *Server) accessTokenSubject(ctx context.Context, c client, token string, now time.Time) (subject, *refusal) {
	at, _, ok := s.parseOwnToken(token)
	if !ok || at.Issuer != s.config.Issuer {
		return subject{}, refuseSubject.with("not an access token of this issuer")
	}
	if !now.Before(at.ExpiresAt) {
		return subject{}, refuseSubject.with("expired")
	}
	// An access token is a bearer credential for its resource, not for
	// this server: a resource that received it must not trade it for
	// tokens elsewhere. Only its agent, proven by certificate, may.
	if c.peer != at.Agent() {
		return subject{}, refuseSubjectHolder.with("presented by " + c.peer.String())
	}
	if at.CertThumbprint != "" && subtle.ConstantTimeCompare([]byte(at.CertThumbprint), []byte(c.x5t)) != 1 {
		return subject{}, refuseSubjectHolder.with("the client certificate is not the one the token is bound to")
	}
	d, ref := s.activeSubjectDelegation(ctx, at.Delegation, now)
	if ref != nil {
		return subject{}, ref
	}
	if d.Agent != at.Agent() || d.User != at.User || d.Root != at.Root {
		return subject{d: d}, refuseSubject.with("the token does not match its delegation")
	}
	return subject{d: d, scopes: at.Scopes.Intersect(d.Scopes)}, nil
}

// jwtSubject verifies a delegated JWT-SVID presented as the subject token:
// as the jwt-bearer assertion, bound to its own sub (whoever presents it:
// the holder, or the actor it was handed to).
func (s *Server) jwtSubject(ctx context.Context, token string, now time.Time) (subject, *refusal) {
	p, ref := s.verifyAssertion(spiffeid.ID{}, token)
	if ref != nil {
		return subject{}, refuseSubject.with(ref.reason + ": " + ref.detail)
	}
	if !p.Delegated() {
		return subject{}, refuseSubject.with("a plain JWT-SVID carries no delegation")
	}
	d, ref := s.activeSubjectDelegation(ctx, p.Delegation.ID, now)
	if ref != nil {
		return subject{}, ref
	}
	if d.Agent != p.Agent || d.User != p.User {
		return subject{d: d}, refuseSubject.with("the delegation belongs to another agent or user")
	}
	return subject{d: d, scopes: d.Scopes}, nil
}

func (s *Server) activeSubjectDelegation(ctx context.Context, id delegation.ID, now time.Time) (*delegation.Delegation, *refusal) {
	d, ref := s.activeDelegation(ctx, id, now)
	if ref != nil && ref.reason != refuseStore.reason {
		return nil, refuseSubjectInactive.with(ref.detail) // RFC 8693: the subject token is unacceptable
	}
	return d, ref
}

// subDelegate records the sub-delegation of sub's delegation to actor, for
// as long as the token for res will live, with the scopes it will carry.
func (s *Server) subDelegate(ctx context.Context, sub subject, actor spiffeid.ID, res *Resource,
	asked delegation.ScopeSet, by string, now time.Time) (*delegation.Delegation, delegation.ScopeSet, *refusal) {
	if s.config.Agents == nil {
		return nil, delegation.ScopeSet{}, refuseNoSubDelegation
	}
	to, ok := s.config.Agents.ByID(actor)
	if !ok {
		return nil, delegation.ScopeSet{}, refuseActorUnknown.with(actor.String())
	}
	if from, ok := s.config.Agents.ByID(sub.d.Agent); !ok || !from.MaySubDelegateTo(actor) {
		return nil, delegation.ScopeSet{}, refuseActorNotAllowed.with(actor.String())
	}
	granted, ref := narrow(asked, sub.scopes.Intersect(res.Scopes).Intersect(to.ScopeCeiling))
	if ref != nil {
		return nil, delegation.ScopeSet{}, ref
	}
	_, exp, ok := lifetime(sub.d, res, now)
	if !ok {
		return nil, delegation.ScopeSet{}, refuseSubjectInactive.with("the delegation expires within a second")
	}
	createdBy, _ := spiffeid.FromString(by)
	child, err := delegation.NewChild(sub.d, delegation.ChildParams{
		Agent: actor, Scopes: granted, CreatedBy: createdBy, CreatedAt: now, ExpiresAt: exp,
	})
	switch {
	case errors.Is(err, delegation.ErrAgentInChain):
		return nil, delegation.ScopeSet{}, refuseActorInChain.with(err.Error())
	case errors.Is(err, delegation.ErrDepthExceeded):
		return nil, delegation.ScopeSet{}, refuseDepth.with(err.Error())
	case errors.Is(err, delegation.ErrParentInactive):
		return nil, delegation.ScopeSet{}, refuseSubjectInactive.with(err.Error())
	case err != nil: // scopes and expiry are narrowed above; anything else is a broken chain
		return nil, delegation.ScopeSet{}, refuseSubject.with(err.Error())
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditWriteTimeout)
	defer cancel()
	_, err = s.config.Store.CreateDelegation(wctx, child, audit.Event{
		Time: now, Type: audit.TypeSubDelegated, Actor: by,
		DelegationID: child.ID.String(), Agent: actor.String(), User: child.User.String(),
		Detail: map[string]string{
			"parent_id": sub.d.ID.String(), "scopes": granted.String(),
			"expires_at": exp.UTC().Format(time.RFC3339), DetailEndpoint: "token_exchange",
		},
	})
	switch {
	case errors.Is(err, store.ErrParentInactive):
		return nil, delegation.ScopeSet{}, refuseSubjectInactive.with("revoked while exchanging")
	case err != nil:
		return nil, delegation.ScopeSet{}, refuseStore.with(err.Error())
	}
	return child, granted, nil
}
