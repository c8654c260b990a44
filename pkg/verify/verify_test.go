package verify_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/internal/testca"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
)

func TestVerifyCases(t *testing.T) {
	env := testca.NewEnv(t)
	v := env.Verifier(t)
	for _, tc := range env.Cases(t) {
		t.Run(tc.Name, func(t *testing.T) {
			// Twice: the second call may be served from the cache and must
			// give the same answer.
			for i := 0; i < 2; i++ {
				p, err := v.Verify(tc.Peer, tc.Token)
				if tc.Err == "" {
					if err != nil {
						t.Fatalf("call %d: %v", i, err)
					}
					if p.Agent != tc.Peer || p.User.Subject() != "alice" || p.Delegation.Chain[len(p.Delegation.Chain)-1] != tc.Peer {
						t.Fatalf("call %d: principal %+v", i, p)
					}
					continue
				}
				if err == nil || err.Error() != tc.Err {
					t.Fatalf("call %d: err = %v\nwant %s", i, err, tc.Err)
				}
				if got := verify.ClassOf(err); got != tc.Class {
					t.Fatalf("class %v, want %v", got, tc.Class)
				}
			}
		})
	}
}

func TestVerifyPrincipal(t *testing.T) {
	env := testca.NewEnv(t)
	v := env.Verifier(t)
	p, err := v.Verify(env.Analyst, env.Good(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.Agent != env.Analyst || p.User != testca.Alice(t) || p.Scopes.String() != "campaigns:read compliance:check" ||
		p.Delegation.ID != testca.ChildID || p.Delegation.Root != testca.RootID || !p.Delegated() ||
		len(p.Delegation.Chain) != 2 || p.Delegation.Chain[0] != env.Orchestrator ||
		!p.Delegation.ExpiresAt.Equal(env.DelegationExp) || !p.Expiry.Equal(env.Now.Add(5*time.Minute)) {
		t.Fatalf("principal %+v", p)
	}
	// The chain handed out is a copy: scribbling on it leaves the cache alone.
	p.Delegation.Chain[0] = env.Analyst
	p2, err := v.Verify(env.Analyst, env.Good(t))
	if err != nil || p2.Delegation.Chain[0] != env.Orchestrator {
		t.Fatalf("cached principal changed: %v %v", p2.Delegation.Chain, err)
	}
}

func TestVerifyEmptyTokenAndPeer(t *testing.T) {
	env := testca.NewEnv(t)
	v := env.Verifier(t)
	if _, err := v.Verify(env.Analyst, ""); !errors.Is(err, verify.ErrNoToken) || err.Error() != "verify: no token" {
		t.Fatalf("empty token: %v", err)
	}
	if _, err := v.Verify(spiffeid.ID{}, env.Good(t)); err == nil || err.Error() != "verify: no peer SPIFFE ID" {
		t.Fatalf("no peer: %v", err)
	}
}

func TestPlainTokensNeedOptIn(t *testing.T) {
	env := testca.NewEnv(t)
	plain := env.CA.Mint(t, testca.Claims(env.Analyst, testca.Audience, env.Now.Add(time.Minute), nil))
	if _, err := env.Verifier(t).Verify(env.Analyst, plain); !errors.Is(err, verify.ErrNoDelegation) {
		t.Fatalf("default: %v", err)
	}
	cfg := env.Config()
	cfg.AllowPlainTokens = true
	v, err := verify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(env.Analyst, plain)
	if err != nil || p.Agent != env.Analyst || p.Delegated() || !p.User.IsZero() || !p.Scopes.IsEmpty() {
		t.Fatalf("opted in: %+v %v", p, err)
	}
	if err := p.Check(verify.RequireUser("https://idp.example.com")); err == nil ||
		err.Error() != "verify: user not allowed: token has no delegating user" {
		t.Fatalf("plain token passed RequireUser: %v", err)
	}
	// A malformed delegation is still refused when plain tokens are allowed.
	bad := testca.Claims(env.Analyst, testca.Audience, env.Now.Add(time.Minute), nil)
	bad["scope"] = "campaigns:read"
	if _, err := v.Verify(env.Analyst, env.CA.Mint(t, bad)); !errors.Is(err, verify.ErrMalformedClaims) {
		t.Fatalf("partial claims: %v", err)
	}
}

// Every request re-checks what can change after a token was cached: the
// clock, the peer, revocation and the bundle key.
func TestCachedTokensAreRechecked(t *testing.T) {
	env := testca.NewEnv(t)
	v := env.Verifier(t)
	good := env.Good(t)
	if _, err := v.Verify(env.Analyst, good); err != nil {
		t.Fatal(err)
	}
	if n := verify.CacheLen(v); n != 1 {
		t.Fatalf("cache holds %d tokens, want 1", n)
	}

	if _, err := v.Verify(env.Orchestrator, good); !errors.Is(err, verify.ErrPeerMismatch) {
		t.Fatalf("peer: %v", err)
	}

	env.Revocations.Revoke(testca.ChildID)
	if _, err := v.Verify(env.Analyst, good); err == nil || err.Error() != "verify: delegation revoked: "+testca.ChildID.String() {
		t.Fatalf("revoked after caching: %v", err)
	}
}

func TestCachedTokensExpire(t *testing.T) {
	env := testca.NewEnv(t)
	v := env.Verifier(t)
	good := env.Good(t)
	if _, err := v.Verify(env.Analyst, good); err != nil {
		t.Fatal(err)
	}
	start := env.Now
	env.Now = start.Add(5*time.Minute + verify.DefaultClockSkew - time.Second)
	if _, err := v.Verify(env.Analyst, good); err != nil {
		t.Fatalf("within skew: %v", err)
	}
	env.Now = start.Add(5*time.Minute + verify.DefaultClockSkew)
	want := "verify: token expired: exp " + start.Add(5*time.Minute).UTC().Format(time.RFC3339)
	if _, err := v.Verify(env.Analyst, good); err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
	if n := verify.CacheLen(v); n != 0 {
		t.Fatalf("expired token still cached (%d entries)", n)
	}
}

// A token whose exp lies beyond its delegation's expiry (the composer never
// issues one) stops at the delegation's expiry, without clock skew.
func TestCachedTokensStopAtDelegationExpiry(t *testing.T) {
	env := testca.NewEnv(t)
	v := env.Verifier(t)
	d := env.Delegation(t, testca.ChildID, testca.RootID)
	d.ExpiresAt = env.Now.Add(time.Minute)
	tok := env.CA.Mint(t, testca.Claims(env.Analyst, testca.Audience, env.Now.Add(5*time.Minute), d))
	if _, err := v.Verify(env.Analyst, tok); err != nil {
		t.Fatal(err)
	}
	env.Now = d.ExpiresAt
	want := "verify: token expired: delegation expired at " + d.ExpiresAt.UTC().Format(time.RFC3339)
	if _, err := v.Verify(env.Analyst, tok); err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

func TestCachedTokensNeedTheirKey(t *testing.T) {
	env := testca.NewEnv(t)
	v := env.Verifier(t)
	good := env.Good(t)
	if _, err := v.Verify(env.Analyst, good); err != nil {
		t.Fatal(err)
	}
	// The authority is rotated out of the bundle: the cached token goes too.
	env.Bundles.Add(jwtbundle.FromJWTAuthorities(env.CA.TD, map[string]crypto.PublicKey{"new-key": testca.NewKey(t).Public()}))
	want := `verify: unknown signing key: no JWT authority "` + testca.KeyID + `" in the accepted trust domains`
	if _, err := v.Verify(env.Analyst, good); err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
	// The same key id now names a different key: the signature must be
	// checked again, and fails.
	env.Bundles.Add(jwtbundle.FromJWTAuthorities(env.CA.TD, map[string]crypto.PublicKey{testca.KeyID: testca.NewKey(t).Public()}))
	if _, err := v.Verify(env.Analyst, good); err == nil || err.Error() != "verify: bad signature" {
		t.Fatalf("replaced key: %v", err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	env := testca.NewEnv(t)
	cfg := env.Config()
	cfg.CacheSize = 16
	v, err := verify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		c := env.Claims(t)
		c["jti"] = i
		if _, err := v.Verify(env.Analyst, env.CA.Mint(t, c)); err != nil {
			t.Fatal(err)
		}
		if n := verify.CacheLen(v); n > 16 {
			t.Fatalf("cache holds %d tokens after %d, bound 16", n, i+1)
		}
	}
	cfg.CacheSize = -1
	if v, err = verify.New(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(env.Analyst, env.Good(t)); err != nil || verify.CacheLen(v) != 0 {
		t.Fatalf("disabled cache: len %d, %v", verify.CacheLen(v), err)
	}
}

// Expired entries are what a full cache drops first.
func TestCacheDropsExpiredFirst(t *testing.T) {
	env := testca.NewEnv(t)
	cfg := env.Config()
	cfg.CacheSize = 8
	v, err := verify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mint := func(i int, exp time.Time) string {
		c := testca.Claims(env.Analyst, testca.Audience, exp, env.Delegation(t, testca.ChildID, testca.RootID))
		c["jti"] = i
		delete(c, "iat")
		return env.CA.Mint(t, c)
	}
	for i := 0; i < 8; i++ {
		if _, err := v.Verify(env.Analyst, mint(i, env.Now.Add(time.Duration(i+1)*time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	env.Now = env.Now.Add(4*time.Minute + verify.DefaultClockSkew) // tokens 0..3 have expired
	if _, err := v.Verify(env.Analyst, mint(100, env.Now.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if n := verify.CacheLen(v); n != 5 {
		t.Fatalf("cache holds %d tokens, want the 4 live ones and the new one", n)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	env := testca.NewEnv(t)
	tests := []struct {
		name string
		mod  func(c *verify.Config)
		want string
	}{
		{"empty", func(c *verify.Config) { *c = verify.Config{} },
			"verify: invalid config: bundle source is required; at least one audience is required; at least one trust domain is required; " +
				"a revocation checker is required (InsecureNoRevocation opts out, accepting revoked delegations' tokens until they expire)"},
		{"no revocation checker", func(c *verify.Config) { c.Revocation = nil },
			"verify: invalid config: a revocation checker is required (InsecureNoRevocation opts out, accepting revoked delegations' tokens until they expire)"},
		{"checker and opt-out", func(c *verify.Config) { c.InsecureNoRevocation = true },
			"verify: invalid config: InsecureNoRevocation is set with a revocation checker"},
		{"empty audience", func(c *verify.Config) { c.Audiences = []string{"svc", ""} }, "verify: invalid config: audience 1 is empty"},
		{"zero trust domain", func(c *verify.Config) { c.TrustDomains = []spiffeid.TrustDomain{{}} }, "verify: invalid config: trust domain 0 is empty"},
		{"skew", func(c *verify.Config) { c.ClockSkew = time.Hour }, "verify: invalid config: clock skew 1h0m0s outside 0..5m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := env.Config()
			tt.mod(&c)
			if _, err := verify.New(c); err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant %s", err, tt.want)
			}
		})
	}
}

// With the explicit opt-out, a revoked delegation's token is accepted: the
// window InsecureNoRevocation's name warns of.
func TestInsecureNoRevocation(t *testing.T) {
	env := testca.NewEnv(t)
	cfg := env.Config()
	cfg.Revocation, cfg.InsecureNoRevocation = nil, true
	v, err := verify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok := env.CA.Mint(t, testca.Claims(env.Analyst, testca.Audience, env.Now.Add(5*time.Minute), env.Delegation(t, testca.RevokedID, testca.RootID)))
	if p, err := v.Verify(env.Analyst, tok); err != nil || p.Delegation.ID != testca.RevokedID {
		t.Fatalf("opted out: %+v %v", p, err)
	}
}

func TestRequirements(t *testing.T) {
	env := testca.NewEnv(t)
	p, err := env.Verifier(t).Verify(env.Analyst, env.Good(t))
	if err != nil {
		t.Fatal(err)
	}
	agentPrefix := spiffeid.RequireFromString("spiffe://example.org/agent")
	tests := []struct {
		name string
		req  verify.Requirement
		want string
	}{
		{"scopes held", verify.RequireScopes("campaigns:read", "compliance:check"), ""},
		{"scope missing", verify.RequireScopes("campaigns:read", "crm:write", "crm:delete"), "verify: insufficient scope: missing crm:write crm:delete"},
		{"scope malformed", verify.RequireScopes("a b"), `verify: insufficient scope: malformed required scope "a b"`},
		{"agent listed", verify.RequireAgent(env.Orchestrator, env.Analyst), ""},
		{"agent not listed", verify.RequireAgent(env.Orchestrator), "verify: agent not allowed: " + env.Analyst.String()},
		{"agent under prefix", verify.RequireAgentPrefix(agentPrefix), ""},
		{"agent under trust domain", verify.RequireAgentPrefix(env.CA.TD.ID()), ""},
		{"prefix is a segment boundary", verify.RequireAgentPrefix(spiffeid.RequireFromString("spiffe://example.org/agent/market")),
			"verify: agent not allowed: " + env.Analyst.String() + " is not under spiffe://example.org/agent/market"},
		{"prefix in another trust domain", verify.RequireAgentPrefix(spiffeid.RequireFromString("spiffe://evil.example/agent")),
			"verify: agent not allowed: " + env.Analyst.String() + " is not under spiffe://evil.example/agent"},
		{"user any subject", verify.RequireUser("https://idp.example.com"), ""},
		{"user listed", verify.RequireUser("https://idp.example.com", "bob", "alice"), ""},
		{"user not listed", verify.RequireUser("https://idp.example.com", "bob"), "verify: user not allowed: https://idp.example.com#alice"},
		{"user other issuer", verify.RequireUser("https://other.example.com", "alice"), "verify: user not allowed: https://idp.example.com#alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Check(verify.RequireAgentPrefix(agentPrefix), tt.req)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant %s", err, tt.want)
			}
			if verify.ClassOf(err) != verify.ClassForbidden {
				t.Fatalf("class %v", verify.ClassOf(err))
			}
		})
	}
}

func TestClassOf(t *testing.T) {
	tests := []struct {
		err  error
		want verify.Class
	}{
		{verify.ErrPeerMismatch, verify.ClassUnauthenticated},
		{verify.ErrRevoked, verify.ClassUnauthenticated},
		{errors.New("something else"), verify.ClassUnauthenticated},
		{verify.ErrInsufficientScope, verify.ClassForbidden},
		{verify.ErrAgentNotAllowed, verify.ClassForbidden},
		{verify.ErrUserNotAllowed, verify.ClassForbidden},
		{verify.ErrRevocationUnknown, verify.ClassUnavailable},
	}
	for _, tt := range tests {
		if got := verify.ClassOf(tt.err); got != tt.want {
			t.Errorf("ClassOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// Every token this package accepts, go-spiffe's ParseAndValidate accepts
// too: the JWS layer is never more permissive than the reference.
func TestNeverLaxerThanGoSpiffe(t *testing.T) {
	env := testca.NewEnv(t)
	v := env.Verifier(t)
	goSpiffeRejects := map[string]bool{
		"wrong signer": true, "unknown key id": true, "alg none": true, "HS256 with the public key": true,
		"ES384 header on a P-256 key": true, "not a JWS": true, "expired": true, "wrong audience": true,
		"deeply nested JSON, forged": true, "not yet valid": true, "critical header": true,
		"sub in a foreign trust domain": true,
	}
	for _, tc := range env.Cases(t) {
		_, ourErr := v.Verify(tc.Peer, tc.Token)
		_, theirErr := jwtsvid.ParseAndValidate(tc.Token, env.Bundles, []string{testca.Audience})
		if ourErr == nil && theirErr != nil {
			t.Errorf("%s: accepted here, go-spiffe says %v", tc.Name, theirErr)
		}
		if goSpiffeRejects[tc.Name] != (theirErr != nil) {
			t.Errorf("%s: go-spiffe err = %v", tc.Name, theirErr)
		}
	}
}

func TestOversizedTokenIsNotDecoded(t *testing.T) {
	env := testca.NewEnv(t)
	v := env.Verifier(t)
	// 1 MiB of garbage: refused on length alone, whatever it holds.
	_, err := v.Verify(env.Analyst, strings.Repeat("e", 1<<20))
	if err == nil || err.Error() != "verify: token too large: 1048576 bytes, at most 8192" {
		t.Fatalf("err = %v", err)
	}
	ok := strings.Repeat("e", verify.MaxTokenSize)
	if _, err := v.Verify(env.Analyst, ok); !errors.Is(err, verify.ErrMalformedToken) {
		t.Fatalf("at the bound: %v", err)
	}
}

func TestRSAKeys(t *testing.T) {
	env := testca.NewEnv(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	env.Bundles.Add(jwtbundle.FromJWTAuthorities(env.CA.TD, map[string]crypto.PublicKey{
		"rsa": key.Public(), testca.KeyID: env.CA.JWTKey.Public(),
	}))
	v := env.Verifier(t)
	sign := func(alg string, pss bool) string {
		tok := testca.Token{Header: map[string]any{"alg": alg, "kid": "rsa", "typ": "JWT"}, Claims: env.Claims(t)}
		input := tok.SigningInput(t)
		h := sha256.Sum256([]byte(input))
		var sig []byte
		if pss {
			sig, err = rsa.SignPSS(rand.Reader, key, crypto.SHA256, h[:], nil)
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
		}
		if err != nil {
			t.Fatal(err)
		}
		return input + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	tests := []struct {
		name, token, want string
	}{
		{"RS256", sign("RS256", false), ""},
		{"PS256", sign("PS256", true), ""},
		{"PS256 header on a PKCS #1 v1.5 signature", sign("PS256", false), "verify: bad signature"},
		{"ES256 header on an RSA key", sign("ES256", false), "verify: bad signature: algorithm does not match the key"},
		{"RS256 header on an EC key", testca.Token{Header: map[string]any{"alg": "RS256", "kid": testca.KeyID}, Claims: env.Claims(t)}.SignES256(t, env.CA.JWTKey),
			"verify: bad signature: algorithm does not match the key"},
	}
	for _, tt := range tests {
		_, err := v.Verify(env.Analyst, tt.token)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || err.Error() != tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
		if tt.want == "" {
			if _, err := jwtsvid.ParseAndValidate(tt.token, env.Bundles, []string{testca.Audience}); err != nil {
				t.Errorf("%s: go-spiffe refuses: %v", tt.name, err)
			}
		}
	}
}
