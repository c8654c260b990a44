package claims

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Claim names of the RFC 9068 access tokens agentid-server issues at its
// OAuth token endpoint, beside the registered ones (iss, sub, aud, exp, iat,
// jti). Unlike a JWT-SVID, whose sub must be the agent, an access token has
// the user in sub and the agents in act, as RFC 8693 §4.1 defines them.
const (
	// ClientID is RFC 9068's client_id: the current agent's SPIFFE ID.
	ClientID = "client_id"
	// Act is RFC 8693's actor claim: {"sub": current agent, "act": {"sub":
	// the agent before it, ...}}. The outermost act is the current actor;
	// each nested act is the one that delegated to it, down to the agent the
	// user delegated to.
	Act = "act"
	// Confirmation is RFC 8705's cnf, present when the token is bound to the
	// agent's X509-SVID: {"x5t#S256": base64url(SHA-256(DER))}.
	Confirmation = "cnf"
	// ConfirmationX5tS256 is the member of cnf holding the certificate
	// thumbprint.
	ConfirmationX5tS256 = "x5t#S256"
	// AccessTokenType is the JOSE typ header of the access tokens (RFC 9068
	// §2.1), which keeps them from being mistaken for ID tokens or JWT-SVIDs.
	AccessTokenType = "at+jwt"
)

// The access token reuses the JWT-SVID's "principal" object as is (the
// user's iss, sub and email) and carries a smaller "delegation" object:
// {"version": "1", "id": "dlg_…", "root": "dlg_…"}. The chain is in act; the
// delegation's expiry bounds exp.

// ErrMalformedAccessToken means an access token's claims are not the ones
// agentid-server writes.
var ErrMalformedAccessToken = errors.New("claims: malformed access token claims")

// AccessToken is the claim set of one access token.
type AccessToken struct {
	// Issuer is agentid-server's OAuth issuer URL (iss).
	Issuer string
	// User is the delegating user. sub is SubjectOf(User).
	User delegation.User
	// Audience is the resource the token is for (aud), a URI registered in
	// agentid-server's configuration.
	Audience string
	// Chain lists the agents from the one the user delegated to, to the
	// current one (client_id, act.sub), which is Chain[len-1].
	Chain []spiffeid.ID
	// Scopes is what the token grants: never more than the delegation holds
	// nor than the resource allows.
	Scopes delegation.ScopeSet
	// IssuedAt and ExpiresAt are iat and exp, whole seconds.
	IssuedAt, ExpiresAt time.Time
	// ID is the jti.
	ID string
	// Delegation and Root identify the delegation the token was issued under
	// and the root of its chain (revoking either ends the token at
	// introspection).
	Delegation, Root delegation.ID
	// CertThumbprint is cnf.x5t#S256, the base64url SHA-256 of the DER
	// certificate the token is bound to; "" for an unbound token.
	CertThumbprint string
}

// Agent is the current agent: client_id and act.sub.
func (t *AccessToken) Agent() spiffeid.ID {
	if len(t.Chain) == 0 {
		return spiffeid.ID{}
	}
	return t.Chain[len(t.Chain)-1]
}

// SubjectOf is the sub of an access token issued for u: "<issuer>#<subject>".
// agentid-server accepts users from several OIDC issuers, and two issuers may
// both have an "alice"; an issuer URL never holds '#' (delegation.NewUser
// refuses one, as OpenID Connect Discovery does), so the first '#' splits the
// value back without ambiguity and no two users share a sub. The parts are
// also in the principal claim, for resource servers that match on them.
func SubjectOf(u delegation.User) string { return u.String() }

type actorJSON struct {
	Sub string     `json:"sub"`
	Act *actorJSON `json:"act,omitempty"`
}

type principalJSON struct {
	Iss   string `json:"iss"`
	Sub   string `json:"sub"`
	Email string `json:"email,omitempty"`
}

type accessDelegationJSON struct {
	Version string `json:"version"`
	ID      string `json:"id"`
	Root    string `json:"root"`
}

type confirmationJSON struct {
	X5tS256 string `json:"x5t#S256"`
}

type accessTokenJSON struct {
	Iss        string               `json:"iss"`
	Sub        string               `json:"sub"`
	Aud        audienceJSON         `json:"aud"`
	ClientID   string               `json:"client_id"`
	Act        *actorJSON           `json:"act"`
	Scope      string               `json:"scope"`
	Iat        int64                `json:"iat"`
	Exp        int64                `json:"exp"`
	Jti        string               `json:"jti"`
	Cnf        *confirmationJSON    `json:"cnf,omitempty"`
	Principal  principalJSON        `json:"principal"`
	Delegation accessDelegationJSON `json:"delegation"`
}

// audienceJSON is written as a string; RFC 7519 lets aud be a list of one,
// which decoding accepts from other writers.
type audienceJSON string

func (a *audienceJSON) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = audienceJSON(s)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil || len(list) != 1 {
		return errors.New("aud is neither a string nor a list of one string")
	}
	*a = audienceJSON(list[0])
	return nil
}

// MarshalJSON encodes the claims, numbers as JSON numbers (an access token
// does not go through SPIRE, so none of its float problem). It refuses a
// claim set Validate refuses.
func (t AccessToken) MarshalJSON() ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	var act *actorJSON
	for _, a := range t.Chain { // first agent innermost, current agent outermost
		act = &actorJSON{Sub: a.String(), Act: act}
	}
	w := accessTokenJSON{
		Iss: t.Issuer, Sub: SubjectOf(t.User), Aud: audienceJSON(t.Audience),
		ClientID: t.Agent().String(), Act: act, Scope: t.Scopes.String(),
		Iat: t.IssuedAt.Unix(), Exp: t.ExpiresAt.Unix(), Jti: t.ID,
		Principal:  principalJSON{Iss: t.User.Issuer(), Sub: t.User.Subject(), Email: t.User.Email()},
		Delegation: accessDelegationJSON{Version: Version, ID: t.Delegation.String(), Root: t.Root.String()},
	}
	if t.CertThumbprint != "" {
		w.Cnf = &confirmationJSON{X5tS256: t.CertThumbprint}
	}
	return json.Marshal(w)
}

// Validate checks the invariants of a claim set: every field set, the chain
// of 1..MaxChainLength distinct agents, a root delegation (one agent) exactly
// when Root == Delegation, exp after iat.
func (t *AccessToken) Validate() error {
	bad := func(claim, problem string) error {
		return fmt.Errorf("%w: %s: %s", ErrMalformedAccessToken, claim, problem)
	}
	switch {
	case t.Issuer == "":
		return bad("iss", "empty")
	case t.User.IsZero():
		return bad("sub", "no user")
	case t.Audience == "" || len(t.Audience) > maxClaimTextLength:
		return bad("aud", "empty or longer than 2048 bytes")
	case len(t.Chain) == 0 || len(t.Chain) > MaxChainLength:
		return bad("act", fmt.Sprintf("%d agents, want 1..%d", len(t.Chain), MaxChainLength))
	case t.Scopes.IsEmpty():
		return bad("scope", "empty")
	case !t.ExpiresAt.After(t.IssuedAt) || t.IssuedAt.IsZero():
		return bad("exp", "not after iat")
	case t.ID == "" || len(t.ID) > 128:
		return bad("jti", "empty or longer than 128 bytes")
	case t.Delegation.IsZero() || t.Root.IsZero():
		return bad("delegation", "no id or root")
	case (len(t.Chain) == 1) != (t.Delegation == t.Root):
		return bad("delegation.root", "must equal id exactly when the chain has one agent")
	}
	seen := make(map[spiffeid.ID]bool, len(t.Chain))
	for _, a := range t.Chain {
		if a.IsZero() || seen[a] {
			return bad("act", "an agent is empty or appears twice")
		}
		seen[a] = true
	}
	return nil
}

// DecodeAccessToken reads the claims of an access token agentid-server
// issued, from the verified JWS payload. It checks the shape, not the
// signature, the audience or the time: callers (pkg/mcpauth's verifier) do.
// sub must equal SubjectOf(principal) and client_id the outermost act.sub.
func DecodeAccessToken(payload []byte) (AccessToken, error) {
	var w accessTokenJSON
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&w); err != nil {
		return AccessToken{}, fmt.Errorf("%w: %w", ErrMalformedAccessToken, err)
	}
	if dec.More() {
		return AccessToken{}, fmt.Errorf("%w: data after the claims", ErrMalformedAccessToken)
	}
	bad := func(claim, problem string) error {
		return fmt.Errorf("%w: %s: %s", ErrMalformedAccessToken, claim, problem)
	}
	t := AccessToken{Issuer: w.Iss, Audience: string(w.Aud), ID: w.Jti}
	var err error
	if t.User, err = delegation.NewUser(w.Principal.Iss, w.Principal.Sub, w.Principal.Email); err != nil {
		return AccessToken{}, bad(Principal, err.Error())
	}
	if w.Sub != SubjectOf(t.User) {
		return AccessToken{}, bad("sub", "is not the principal's issuer#subject")
	}
	if w.Delegation.Version != Version {
		return AccessToken{}, bad(Delegation+"."+DelegationVersion, fmt.Sprintf("unsupported version %q", truncate(w.Delegation.Version)))
	}
	if t.Delegation, err = delegation.ParseID(w.Delegation.ID); err != nil {
		return AccessToken{}, bad(Delegation+"."+DelegationID, err.Error())
	}
	if t.Root, err = delegation.ParseID(w.Delegation.Root); err != nil {
		return AccessToken{}, bad(Delegation+"."+DelegationRoot, err.Error())
	}
	var chain []spiffeid.ID
	for a, n := w.Act, 0; a != nil; a, n = a.Act, n+1 {
		if n == MaxChainLength {
			return AccessToken{}, bad(Act, "nested too deep")
		}
		id, err := spiffeid.FromString(a.Sub)
		if err != nil {
			return AccessToken{}, bad(Act+".sub", err.Error())
		}
		chain = append(chain, id)
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 { // outermost first → first agent first
		chain[i], chain[j] = chain[j], chain[i]
	}
	t.Chain = chain
	if len(chain) > 0 && w.ClientID != chain[len(chain)-1].String() {
		return AccessToken{}, bad(ClientID, "is not act.sub")
	}
	if t.Scopes, err = delegation.ParseScopeString(w.Scope); err != nil {
		return AccessToken{}, bad(Scope, err.Error())
	}
	if w.Iat <= 0 || w.Exp <= 0 {
		return AccessToken{}, bad("exp", "iat and exp are required")
	}
	t.IssuedAt, t.ExpiresAt = time.Unix(w.Iat, 0).UTC(), time.Unix(w.Exp, 0).UTC()
	if w.Cnf != nil {
		if w.Cnf.X5tS256 == "" {
			return AccessToken{}, bad(Confirmation, "has no x5t#S256")
		}
		t.CertThumbprint = w.Cnf.X5tS256
	}
	if err := t.Validate(); err != nil {
		return AccessToken{}, err
	}
	return t, nil
}
