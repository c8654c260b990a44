package testca

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/verify"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Audience is the service the test tokens are issued for.
const Audience = "spiffe://example.org/svc/crm"

// Delegation ids of the test trees.
var (
	RootID        = delegation.MustParseID("dlg_01jc0000000000000000000000")
	ChildID       = delegation.MustParseID("dlg_01jd0000000000000000000000")
	RevokedID     = delegation.MustParseID("dlg_01je0000000000000000000000")
	RevokedRootID = delegation.MustParseID("dlg_01jf0000000000000000000000")
	UnderRevoked  = delegation.MustParseID("dlg_01jg0000000000000000000000")
	UnknownID     = delegation.MustParseID("dlg_01jh0000000000000000000000")
)

// ErrSourceDown is what Revocations answers for UnknownID.
var ErrSourceDown = errors.New("testca: revocation source down")

// Revocations is an in-memory RevocationChecker: RevokedID and
// RevokedRootID are revoked, UnknownID cannot be answered.
type Revocations struct {
	mu      sync.Mutex
	revoked map[delegation.ID]bool
	Calls   int
}

// NewRevocations returns the standard revocation state of the test trees.
func NewRevocations() *Revocations {
	return &Revocations{revoked: map[delegation.ID]bool{RevokedID: true, RevokedRootID: true}}
}

// Revoked implements verify.RevocationChecker.
func (r *Revocations) Revoked(id delegation.ID) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Calls++
	if id == UnknownID {
		return false, ErrSourceDown
	}
	return r.revoked[id], nil
}

// Revoke marks id revoked.
func (r *Revocations) Revoke(id delegation.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.revoked[id] = true
}

// Env is a trust domain with two agents, a foreign trust domain, and a clock.
type Env struct {
	CA, Foreign   *CA
	Orchestrator  spiffeid.ID
	Analyst       spiffeid.ID
	Now           time.Time
	Revocations   *Revocations
	Bundles       *jwtbundle.Set
	DelegationExp time.Time
}

// NewEnv builds the environment. Now is the real time (rounded to seconds),
// so tokens are also valid for code that reads time.Now, like go-spiffe.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	env := &Env{
		CA:          New(t, "example.org"),
		Foreign:     New(t, "evil.example"),
		Now:         time.Now().Truncate(time.Second),
		Revocations: NewRevocations(),
	}
	env.Orchestrator = env.CA.ID(t, "/agent/orchestrator")
	env.Analyst = env.CA.ID(t, "/agent/market-analysis")
	env.DelegationExp = env.Now.Add(time.Hour)
	env.Bundles = jwtbundle.NewSet(env.CA.JWTBundle)
	return env
}

// Config returns a verify.Config accepting example.org tokens for Audience,
// on the environment's clock and revocations.
func (env *Env) Config() verify.Config {
	return verify.Config{
		Bundles:      env.Bundles,
		Audiences:    []string{Audience},
		TrustDomains: []spiffeid.TrustDomain{env.CA.TD},
		Revocation:   env.Revocations,
		Clock:        func() time.Time { return env.Now },
	}
}

// Verifier returns a verifier for env.Config.
func (env *Env) Verifier(t testing.TB) *verify.Verifier {
	t.Helper()
	v, err := verify.New(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Delegation returns delegation claims of the analyst, sub-delegated by the
// orchestrator, under delegation id with root root.
func (env *Env) Delegation(t testing.TB, id, root delegation.ID) *Delegation {
	t.Helper()
	return &Delegation{
		User: Alice(t), Scopes: []string{"campaigns:read", "compliance:check"},
		ID: id, Root: root, Chain: []spiffeid.ID{env.Orchestrator, env.Analyst}, ExpiresAt: env.DelegationExp,
	}
}

// Claims returns the claims of a good token of the analyst.
func (env *Env) Claims(t testing.TB) map[string]any {
	t.Helper()
	return Claims(env.Analyst, Audience, env.Now.Add(5*time.Minute), env.Delegation(t, ChildID, RootID))
}

// Good returns a genuine, valid delegated token of the analyst.
func (env *Env) Good(t testing.TB) string {
	t.Helper()
	return env.CA.Mint(t, env.Claims(t))
}

// Case is one token presented by one peer and what must come of it.
type Case struct {
	Name  string
	Token string
	// Peer is the SPIFFE ID of the presenting workload's X509-SVID.
	Peer spiffeid.ID
	// Err is the exact error text; "" means the token is accepted.
	Err   string
	Class verify.Class
}

// Cases returns the table of good, forged and broken tokens every adapter
// runs through its real stack.
func (env *Env) Cases(t testing.TB) []Case {
	t.Helper()
	ca := env.CA
	good := env.Claims(t)
	with := func(mod func(c map[string]any)) map[string]any {
		c := Claims(env.Analyst, Audience, env.Now.Add(5*time.Minute), env.Delegation(t, ChildID, RootID))
		mod(c)
		return c
	}
	deep := strings.Repeat("[", 2500) + strings.Repeat("]", 2500)
	deepClaims := `{"sub":"` + env.Analyst.String() + `","aud":"` + Audience + `","exp":` +
		itoa(env.Now.Add(5*time.Minute).Unix()) + `,"principal":{"iss":"https://idp.example.com","sub":"alice"},"scope":"a",` +
		`"delegation":{"version":"1","id":"` + ChildID.String() + `","root":"` + RootID.String() + `","chain":` + deep +
		`,"expires_at":"2099-01-01T00:00:00Z"}}`
	deepInput := Segment(t, NewToken(KeyID, nil).Header) + "." + encodeRaw(deepClaims)
	exp := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	huge := ca.Mint(t, with(func(c map[string]any) { c["pad"] = strings.Repeat("x", 9000) }))

	return []Case{
		{Name: "good", Token: ca.Mint(t, good), Peer: env.Analyst},
		{Name: "good root delegation of the orchestrator", Peer: env.Orchestrator, Token: ca.Mint(t,
			Claims(env.Orchestrator, Audience, env.Now.Add(5*time.Minute), &Delegation{
				User: Alice(t), Scopes: []string{"campaigns:read"}, ID: RootID, Root: RootID,
				Chain: []spiffeid.ID{env.Orchestrator}, ExpiresAt: env.DelegationExp,
			}))},
		{Name: "wrong signer", Token: NewToken(KeyID, good).SignES256(t, env.Foreign.JWTKey), Peer: env.Analyst,
			Err: "verify: bad signature"},
		{Name: "unknown key id", Token: NewToken("rotated-away", good).SignES256(t, ca.JWTKey), Peer: env.Analyst,
			Err: `verify: unknown signing key: no JWT authority "rotated-away" in the accepted trust domains`},
		{Name: "alg none", Token: Token{Header: map[string]any{"alg": "none", "kid": KeyID}, Claims: good}.Unsigned(t),
			Peer: env.Analyst, Err: `verify: unsupported signing algorithm: "none"`},
		{Name: "HS256 with the public key", Peer: env.Analyst,
			Token: Token{Header: map[string]any{"alg": "HS256", "kid": KeyID, "typ": "JWT"}, Claims: good}.SignHS256(t, ca.PublicKeyPEM(t)),
			Err:   `verify: unsupported signing algorithm: "HS256"`},
		{Name: "ES384 header on a P-256 key", Peer: env.Analyst,
			Token: Token{Header: map[string]any{"alg": "ES384", "kid": KeyID}, Claims: good}.SignES256(t, ca.JWTKey),
			Err:   "verify: bad signature: algorithm does not match the key"},
		{Name: "critical header", Peer: env.Analyst,
			Token: Token{Header: map[string]any{"alg": "ES256", "kid": KeyID, "crit": []string{"b64"}, "b64": false}, Claims: good}.SignES256(t, ca.JWTKey),
			Err:   `verify: malformed token: header "crit" is not supported`},
		{Name: "not a JWS", Token: "not-a-token", Peer: env.Analyst, Err: "verify: malformed token: not a JWS compact serialization"},
		{Name: "expired", Peer: env.Analyst,
			Token: ca.Mint(t, with(func(c map[string]any) { c["exp"] = float64(env.Now.Add(-2 * time.Minute).Unix()) })),
			Err:   "verify: token expired: exp " + exp(env.Now.Add(-2*time.Minute))},
		{Name: "delegation expired", Peer: env.Analyst, Token: ca.Mint(t, with(func(c map[string]any) {
			c["delegation"].(map[string]any)["expires_at"] = exp(env.Now.Add(-time.Second))
		})), Err: "verify: token expired: delegation expired at " + exp(env.Now.Add(-time.Second))},
		{Name: "not yet valid", Peer: env.Analyst,
			Token: ca.Mint(t, with(func(c map[string]any) { c["nbf"] = float64(env.Now.Add(2 * time.Minute).Unix()) })),
			Err:   "verify: token not yet valid: nbf " + exp(env.Now.Add(2*time.Minute))},
		{Name: "wrong audience", Peer: env.Analyst,
			Token: ca.Mint(t, with(func(c map[string]any) { c["aud"] = []any{"spiffe://example.org/svc/billing"} })),
			Err:   `verify: audience not accepted: token audiences ["spiffe://example.org/svc/billing"]`},
		{Name: "sub is not the peer", Token: ca.Mint(t, good), Peer: env.Orchestrator,
			Err: "verify: token subject is not the peer: sub " + env.Analyst.String() + ", peer " + env.Orchestrator.String()},
		{Name: "sub in a foreign trust domain", Peer: env.Analyst,
			Token: ca.Mint(t, with(func(c map[string]any) { c["sub"] = "spiffe://evil.example/agent/market-analysis" })),
			Err:   "verify: trust domain not accepted: sub spiffe://evil.example/agent/market-analysis signed by a key of example.org"},
		{Name: "chain does not end with sub", Peer: env.Analyst, Token: ca.Mint(t, with(func(c map[string]any) {
			c["delegation"].(map[string]any)["chain"] = []any{env.Analyst.String(), env.Orchestrator.String()}
		})), Err: "verify: claims: malformed delegation claims: delegation.chain: does not end with the token's subject"},
		{Name: "no delegation claims", Peer: env.Analyst,
			Token: ca.Mint(t, Claims(env.Analyst, Audience, env.Now.Add(5*time.Minute), nil)),
			Err:   "verify: claims: token has no delegation claims"},
		{Name: "scope claim missing", Peer: env.Analyst, Token: ca.Mint(t, with(func(c map[string]any) { delete(c, "scope") })),
			Err: "verify: claims: malformed delegation claims: scope: not a string"},
		{Name: "principal malformed", Peer: env.Analyst,
			Token: ca.Mint(t, with(func(c map[string]any) {
				c["principal"] = map[string]any{"iss": "http://idp.example.com", "sub": "alice"}
			})),
			Err: "verify: claims: malformed delegation claims: principal: delegation: invalid user: issuer must be an absolute https URL"},
		{Name: "revoked", Peer: env.Analyst, Token: ca.Mint(t,
			Claims(env.Analyst, Audience, env.Now.Add(5*time.Minute), env.Delegation(t, RevokedID, RootID))),
			Err: "verify: delegation revoked: " + RevokedID.String()},
		{Name: "root revoked", Peer: env.Analyst, Token: ca.Mint(t,
			Claims(env.Analyst, Audience, env.Now.Add(5*time.Minute), env.Delegation(t, UnderRevoked, RevokedRootID))),
			Err: "verify: delegation revoked: root " + RevokedRootID.String() + " of " + UnderRevoked.String()},
		{Name: "revocation status unknown", Peer: env.Analyst, Token: ca.Mint(t,
			Claims(env.Analyst, Audience, env.Now.Add(5*time.Minute), env.Delegation(t, UnknownID, RootID))),
			Err: "verify: revocation status unknown: testca: revocation source down", Class: verify.ClassUnavailable},
		{Name: "oversized", Peer: env.Analyst, Token: huge,
			Err: "verify: token too large: " + itoa(int64(len(huge))) + " bytes, at most 8192"},
		{Name: "deeply nested JSON, forged", Peer: env.Analyst, Token: deepInput + ".AAAA",
			Err: "verify: bad signature: 3 bytes, want 64"},
		{Name: "deeply nested JSON, signed", Peer: env.Analyst, Token: SignInputES256(t, deepInput, ca.JWTKey),
			Err: "verify: malformed token: payload JSON nested deeper than 32 levels"},
	}
}
