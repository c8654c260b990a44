package claims

import (
	"errors"
	"fmt"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Version is the version of the claim schema written into delegation.version.
// A decoder refuses versions it does not know rather than guessing.
const Version = "1"

// Claim names, top level and nested. Policies in meshes (Istio
// request.auth.claims[delegation][chain]) are written against these names.
const (
	Principal          = "principal"
	PrincipalIssuer    = "iss"
	PrincipalSubject   = "sub"
	PrincipalEmail     = "email"
	Scope              = "scope"
	Delegation         = "delegation"
	DelegationVersion  = "version"
	DelegationID       = "id"
	DelegationRoot     = "root"
	DelegationChain    = "chain"
	DelegationExpires  = "expires_at"
	MaxChainLength     = delegation.MaxDepthLimit
	expiresAtLayout    = time.RFC3339
	maxClaimTextLength = 2048
)

// Paths lists every claim path this schema defines, as a mesh policy would
// address it (e.g. ["delegation", "chain"]). Tests of mesh examples check their
// YAML against it.
func Paths() [][]string {
	return [][]string{
		{Principal}, {Principal, PrincipalIssuer}, {Principal, PrincipalSubject}, {Principal, PrincipalEmail},
		{Scope},
		{Delegation}, {Delegation, DelegationVersion}, {Delegation, DelegationID}, {Delegation, DelegationRoot},
		{Delegation, DelegationChain}, {Delegation, DelegationExpires},
	}
}

// Errors callers branch on.
var (
	// ErrNoDelegation means the token carries none of agentid's claims: a plain
	// JWT-SVID. Verifiers refuse it unless configured to accept plain tokens.
	ErrNoDelegation = errors.New("claims: token has no delegation claims")
	// ErrMalformed means agentid's claims are present but not well formed.
	ErrMalformed = errors.New("claims: malformed delegation claims")
	// ErrMarker means the audience holds a malformed marker or more than one.
	ErrMarker = errors.New("claims: bad delegation marker")
)

// Claims are the delegation claims of one token.
type Claims struct {
	// User is the delegating user.
	User delegation.User
	// Scopes is the authority delegated to the token's subject.
	Scopes delegation.ScopeSet
	// ID is the delegation the token was issued under.
	ID delegation.ID
	// Root is the first delegation of the chain; revoking it revokes ID too.
	Root delegation.ID
	// Chain lists the agents from the first to the token's subject.
	Chain []spiffeid.ID
	// ExpiresAt is the delegation's expiry (the token's exp is never later).
	ExpiresAt time.Time
}

// FromDelegation returns the claims a token issued under d carries.
func FromDelegation(d *delegation.Delegation) Claims {
	return Claims{
		User: d.User, Scopes: d.Scopes, ID: d.ID, Root: d.Root,
		Chain: append([]spiffeid.ID(nil), d.Chain...), ExpiresAt: d.ExpiresAt,
	}
}

// Map returns the claims as JSON-shaped values (strings, []any of strings,
// map[string]any), ready for google.protobuf.Struct or encoding/json. The
// expiry is truncated to seconds, as a JWT's exp.
func (c Claims) Map() map[string]any {
	principal := map[string]any{
		PrincipalIssuer:  c.User.Issuer(),
		PrincipalSubject: c.User.Subject(),
	}
	if e := c.User.Email(); e != "" {
		principal[PrincipalEmail] = e
	}
	chain := make([]any, len(c.Chain))
	for i, a := range c.Chain {
		chain[i] = a.String()
	}
	return map[string]any{
		Principal: principal,
		Scope:     c.Scopes.String(),
		Delegation: map[string]any{
			DelegationVersion: Version,
			DelegationID:      c.ID.String(),
			DelegationRoot:    c.Root.String(),
			DelegationChain:   chain,
			DelegationExpires: c.ExpiresAt.UTC().Format(expiresAtLayout),
		},
	}
}

// Decode reads the delegation claims from the claims of a verified token, as
// decoded from JSON (go-spiffe's jwtsvid.SVID.Claims). sub is the token's
// subject: the chain must end with it. A token with none of the three claims
// gives ErrNoDelegation; one with some, or with any of them malformed, gives
// ErrMalformed naming the claim. Claims of other owners are ignored.
func Decode(all map[string]any, sub spiffeid.ID) (Claims, error) {
	rawPrincipal, hasPrincipal := all[Principal]
	rawScope, hasScope := all[Scope]
	rawDelegation, hasDelegation := all[Delegation]
	if !hasPrincipal && !hasScope && !hasDelegation {
		return Claims{}, ErrNoDelegation
	}
	var c Claims
	var err error
	if c.User, err = decodePrincipal(rawPrincipal); err != nil {
		return Claims{}, err
	}
	scope, ok := rawScope.(string)
	if !ok {
		return Claims{}, malformed(Scope, "not a string")
	}
	if c.Scopes, err = delegation.ParseScopeString(scope); err != nil {
		return Claims{}, malformed(Scope, err.Error())
	}
	if c.Scopes.IsEmpty() {
		return Claims{}, malformed(Scope, "empty")
	}
	if err := c.decodeDelegation(rawDelegation); err != nil {
		return Claims{}, err
	}
	if sub.IsZero() || c.Chain[len(c.Chain)-1] != sub {
		return Claims{}, malformed(Delegation+"."+DelegationChain, "does not end with the token's subject")
	}
	return c, nil
}

func malformed(claim, problem string) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformed, claim, problem)
}

func object(raw any, claim string, keys ...string) (map[string]any, error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, malformed(claim, "not an object")
	}
	for k := range m {
		known := false
		for _, want := range keys {
			known = known || k == want
		}
		if !known {
			return nil, malformed(claim, fmt.Sprintf("unknown member %q", truncate(k)))
		}
	}
	return m, nil
}

// text reads an optional string member, bounded in length.
func text(m map[string]any, claim, key string) (string, error) {
	raw, ok := m[key]
	if !ok {
		return "", nil
	}
	s, ok := raw.(string)
	if !ok {
		return "", malformed(claim+"."+key, "not a string")
	}
	if len(s) > maxClaimTextLength {
		return "", malformed(claim+"."+key, "too long")
	}
	return s, nil
}

func decodePrincipal(raw any) (delegation.User, error) {
	m, err := object(raw, Principal, PrincipalIssuer, PrincipalSubject, PrincipalEmail)
	if err != nil {
		return delegation.User{}, err
	}
	var parts [3]string
	for i, key := range []string{PrincipalIssuer, PrincipalSubject, PrincipalEmail} {
		if parts[i], err = text(m, Principal, key); err != nil {
			return delegation.User{}, err
		}
	}
	u, err := delegation.NewUser(parts[0], parts[1], parts[2])
	if err != nil {
		return delegation.User{}, malformed(Principal, err.Error())
	}
	return u, nil
}

func (c *Claims) decodeDelegation(raw any) error {
	m, err := object(raw, Delegation, DelegationVersion, DelegationID, DelegationRoot, DelegationChain, DelegationExpires)
	if err != nil {
		return err
	}
	version, err := text(m, Delegation, DelegationVersion)
	if err != nil {
		return err
	}
	if version != Version {
		return malformed(Delegation+"."+DelegationVersion, fmt.Sprintf("unsupported version %q", truncate(version)))
	}
	for _, f := range []struct {
		key string
		dst *delegation.ID
	}{{DelegationID, &c.ID}, {DelegationRoot, &c.Root}} {
		s, err := text(m, Delegation, f.key)
		if err != nil {
			return err
		}
		if *f.dst, err = delegation.ParseID(s); err != nil {
			return malformed(Delegation+"."+f.key, err.Error())
		}
	}
	list, ok := m[DelegationChain].([]any)
	if !ok {
		return malformed(Delegation+"."+DelegationChain, "not a list")
	}
	if len(list) == 0 || len(list) > MaxChainLength {
		return malformed(Delegation+"."+DelegationChain, fmt.Sprintf("%d entries, want 1..%d", len(list), MaxChainLength))
	}
	c.Chain = make([]spiffeid.ID, len(list))
	seen := make(map[spiffeid.ID]bool, len(list))
	for i, raw := range list {
		s, ok := raw.(string)
		if !ok || len(s) > maxClaimTextLength {
			return malformed(fmt.Sprintf("%s.%s[%d]", Delegation, DelegationChain, i), "not a string of at most 2048 bytes")
		}
		if c.Chain[i], err = spiffeid.FromString(s); err != nil {
			return malformed(fmt.Sprintf("%s.%s[%d]", Delegation, DelegationChain, i), err.Error())
		}
		if seen[c.Chain[i]] {
			return malformed(fmt.Sprintf("%s.%s[%d]", Delegation, DelegationChain, i), "agent appears twice")
		}
		seen[c.Chain[i]] = true
	}
	// A root delegation (one agent) is its own root, and only a root is.
	if (len(c.Chain) == 1) != (c.ID == c.Root) {
		return malformed(Delegation+"."+DelegationRoot, "must equal id exactly when the chain has one agent")
	}
	exp, err := text(m, Delegation, DelegationExpires)
	if err != nil {
		return err
	}
	if c.ExpiresAt, err = time.Parse(expiresAtLayout, exp); err != nil {
		return malformed(Delegation+"."+DelegationExpires, "not an RFC 3339 time")
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
