package oidcauth

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// authOK authenticates and fails the test on error.
func authOK(tb testing.TB, a *Authenticator, token string) Identity {
	tb.Helper()
	id, err := a.Authenticate(context.Background(), token)
	if err != nil {
		tb.Fatalf("Authenticate: %v", err)
	}
	return id
}

// authFails authenticates, expects a *TokenError with reason, and returns it.
func authFails(tb testing.TB, a *Authenticator, token string, reason Reason) *TokenError {
	tb.Helper()
	_, err := a.Authenticate(context.Background(), token)
	var te *TokenError
	if !errors.As(err, &te) {
		tb.Fatalf("Authenticate error = %v, want a *TokenError with reason %s", err, reason)
	}
	if te.Reason != reason {
		tb.Fatalf("reason = %s (%v), want %s", te.Reason, err, reason)
	}
	if !errors.Is(err, ErrInvalidToken) {
		tb.Fatalf("errors.Is(%v, ErrInvalidToken) = false", err)
	}
	if got, want := errors.Is(err, ErrIssuerUnavailable), reason == ReasonIssuerUnavailable; got != want {
		tb.Fatalf("errors.Is(%v, ErrIssuerUnavailable) = %v, want %v", err, got, want)
	}
	return te
}

func TestAuthenticateValid(t *testing.T) {
	clock := newFakeClock()
	rsaK, ecK, edK := newRSAKey(t, "rsa-1", 0), newECKey(t, "ec-1"), newEdKey(t, "ed-1")
	ti := newTestIssuer(t, rsaK, ecK, edK)
	a := newAuth(t, ti.config(clock))

	for _, k := range []testKey{rsaK, ecK, edK} {
		t.Run(k.alg, func(t *testing.T) {
			id := authOK(t, a, sign(t, k, ti.claims(clock.Now())))
			if id.User.Issuer() != ti.url || id.User.Subject() != "alice" || id.User.Email() != "alice@example.com" {
				t.Errorf("user = %v email %q", id.User, id.User.Email())
			}
			if !id.EmailVerified {
				t.Error("EmailVerified = false")
			}
			if want := []string{"marketing", "staff"}; !reflect.DeepEqual(id.Groups, want) {
				t.Errorf("groups = %q, want %q", id.Groups, want)
			}
			if want := []string{"chat-frontend"}; !reflect.DeepEqual(id.Audience, want) {
				t.Errorf("audience = %q, want %q", id.Audience, want)
			}
			if want := testNow.Add(-time.Minute); !id.IssuedAt.Equal(want) {
				t.Errorf("issued at = %v, want %v", id.IssuedAt, want)
			}
			if want := testNow.Add(time.Hour); !id.Expiry.Equal(want) {
				t.Errorf("expiry = %v, want %v", id.Expiry, want)
			}
		})
	}
	if got := ti.hits(); got != 2 {
		t.Errorf("issuer requests = %d, want 2 (one discovery, one key set, then cached)", got)
	}
}

func TestAuthenticateClaimVariants(t *testing.T) {
	clock := newFakeClock()
	k := newECKey(t, "ec-1")
	ti := newTestIssuer(t, k)
	cfg := ti.config(clock)
	cfg.Issuers[0].GroupsClaim = "https://example.com/roles"
	a := newAuth(t, cfg)

	tests := []struct {
		name      string
		edit      func(c map[string]any)
		email     string
		verified  bool
		groups    []string
		audiences []string
		nonce     string
	}{
		{
			name:  "nonce kept for the relying party to check",
			edit:  func(c map[string]any) { c["nonce"] = "n-0S6_WzA2Mj" },
			email: "alice@example.com", verified: true, audiences: []string{"chat-frontend"}, nonce: "n-0S6_WzA2Mj",
		},
		{
			name:  "groups as a single string",
			edit:  func(c map[string]any) { c["https://example.com/roles"] = "admins" },
			email: "alice@example.com", verified: true, groups: []string{"admins"}, audiences: []string{"chat-frontend"},
		},
		{
			name:  "default groups claim ignored when another is configured",
			edit:  func(c map[string]any) {},
			email: "alice@example.com", verified: true, groups: nil, audiences: []string{"chat-frontend"},
		},
		{
			name:  "email_verified as the string true (Cognito)",
			edit:  func(c map[string]any) { c["email_verified"] = "true" },
			email: "alice@example.com", verified: true, audiences: []string{"chat-frontend"},
		},
		{
			name:  "unverified email is dropped",
			edit:  func(c map[string]any) { c["email_verified"] = false },
			email: "", verified: false, audiences: []string{"chat-frontend"},
		},
		{
			name:  "email without email_verified is dropped",
			edit:  func(c map[string]any) { delete(c, "email_verified") },
			email: "", verified: false, audiences: []string{"chat-frontend"},
		},
		{
			name:  "audience list with one accepted value",
			edit:  func(c map[string]any) { c["aud"] = []string{"other", "cli"} },
			email: "alice@example.com", verified: true, audiences: []string{"other", "cli"},
		},
		{
			name:  "fractional NumericDate and nbf in the past",
			edit:  func(c map[string]any) { c["exp"] = float64(testNow.Unix()) + 0.5; c["nbf"] = testNow.Unix() },
			email: "alice@example.com", verified: true, audiences: []string{"chat-frontend"},
		},
		{
			name:  "expired within the clock skew",
			edit:  func(c map[string]any) { c["exp"] = testNow.Add(-30 * time.Second).Unix() },
			email: "alice@example.com", verified: true, audiences: []string{"chat-frontend"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ti.claims(clock.Now())
			tt.edit(c)
			id := authOK(t, a, sign(t, k, c))
			if id.User.Email() != tt.email || id.EmailVerified != tt.verified {
				t.Errorf("email = %q verified %v, want %q %v", id.User.Email(), id.EmailVerified, tt.email, tt.verified)
			}
			if !reflect.DeepEqual(id.Groups, tt.groups) {
				t.Errorf("groups = %#v, want %#v", id.Groups, tt.groups)
			}
			if !reflect.DeepEqual(id.Audience, tt.audiences) {
				t.Errorf("audience = %q, want %q", id.Audience, tt.audiences)
			}
			if id.Nonce != tt.nonce {
				t.Errorf("nonce = %q, want %q", id.Nonce, tt.nonce)
			}
		})
	}
}

func TestAuthenticateRefused(t *testing.T) {
	clock := newFakeClock()
	rsaK := newRSAKey(t, "rsa-1", 0)
	ecK := newECKey(t, "ec-1")
	ti := newTestIssuer(t, rsaK, ecK)
	strict := newTestIssuer(t, ecK)
	cfg := ti.config(clock)
	cfg.Issuers = append(cfg.Issuers, IssuerConfig{URL: strict.url, Audiences: []string{"chat-frontend"}, RequireVerifiedEmail: true})
	a := newAuth(t, cfg)
	// Warm both caches so that the table does not depend on its order.
	authOK(t, a, sign(t, ecK, ti.claims(clock.Now())))
	sc := ti.claims(clock.Now())
	sc["iss"] = strict.url
	authOK(t, a, sign(t, ecK, sc))

	valid := func(edit func(c map[string]any)) map[string]any {
		c := ti.claims(clock.Now())
		edit(c)
		return c
	}
	good := sign(t, ecK, valid(func(map[string]any) {}))
	parts := strings.Split(good, ".")
	pubDER, err := x509.MarshalPKIXPublicKey(rsaK.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	otherRSA := newRSAKey(t, "rsa-1", 1) // same kid, another key
	manyGroups := make([]string, MaxGroups+1)
	for i := range manyGroups {
		manyGroups[i] = fmt.Sprintf("g%d", i)
	}
	hdr := func(alg, kid string) map[string]any { return map[string]any{"alg": alg, "kid": kid} }
	none := func([]byte) []byte { return nil }

	tests := []struct {
		name   string
		token  string
		reason Reason
		issuer string // the TokenError's Issuer
	}{
		{"empty", "", ReasonMalformed, ""},
		{"one part", "abc", ReasonMalformed, ""},
		{"two parts", parts[0] + "." + parts[1], ReasonMalformed, ""},
		{"five parts (JWE)", good + ".x.y", ReasonMalformed, ""},
		{"whitespace inside", parts[0] + ". " + parts[1] + "." + parts[2], ReasonMalformed, ""},
		{"JSON serialization", `{"payload":"` + parts[1] + `"}`, ReasonMalformed, ""},
		{"header not base64url", "!!!." + parts[1] + "." + parts[2], ReasonMalformed, ""},
		{"header padded base64", parts[0] + "=." + parts[1] + "." + parts[2], ReasonMalformed, ""},
		{"header not JSON", b64([]byte("nope")) + "." + parts[1] + "." + parts[2], ReasonMalformed, ""},
		{"header JSON array", b64([]byte(`["alg"]`)) + "." + parts[1] + "." + parts[2], ReasonMalformed, ""},
		{"alg not a string", signWith(t, map[string]any{"alg": 1}, valid(func(map[string]any) {}), none), ReasonMalformed, ""},
		{"critical header", signWith(t, map[string]any{"alg": "ES256", "kid": "ec-1", "crit": []string{"exp"}, "exp": 1}, valid(func(map[string]any) {}), signer(t, ecK.priv, "ES256")), ReasonMalformed, ""},
		{"payload not JSON object", signWith(t, hdr("ES256", "ec-1"), "[1,2]", signer(t, ecK.priv, "ES256")), ReasonMalformed, ""},
		{"empty signature", parts[0] + "." + parts[1] + ".", ReasonMalformed, ""},
		{"alg none", signWith(t, hdr("none", "ec-1"), valid(func(map[string]any) {}), none), ReasonBadAlgorithm, ""},
		{"alg missing", signWith(t, map[string]any{"kid": "ec-1"}, valid(func(map[string]any) {}), signer(t, ecK.priv, "ES256")), ReasonBadAlgorithm, ""},
		{"HS256 with the public key PEM as secret", signWith(t, hdr("HS256", "rsa-1"), valid(func(map[string]any) {}), hmacSigner(pubPEM)), ReasonBadAlgorithm, ""},
		{"HS256 with the public key DER as secret", signWith(t, hdr("HS256", "rsa-1"), valid(func(map[string]any) {}), hmacSigner(pubDER)), ReasonBadAlgorithm, ""},
		{"RS384", signWith(t, hdr("RS384", "rsa-1"), valid(func(map[string]any) {}), signer(t, rsaK.priv, "RS384")), ReasonBadAlgorithm, ""},
		{"PS256", signWith(t, hdr("PS256", "rsa-1"), valid(func(map[string]any) {}), signer(t, rsaK.priv, "PS256")), ReasonBadAlgorithm, ""},
		{"ES256 header on the RSA key's kid", signWith(t, hdr("ES256", "rsa-1"), valid(func(map[string]any) {}), signer(t, ecK.priv, "ES256")), ReasonBadAlgorithm, ti.url},
		{"issuer not allow-listed", sign(t, ecK, valid(func(c map[string]any) { c["iss"] = "https://evil.example.com" })), ReasonUnknownIssuer, ""},
		{"issuer with trailing slash", sign(t, ecK, valid(func(c map[string]any) { c["iss"] = ti.url + "/" })), ReasonUnknownIssuer, ""},
		{"issuer missing", sign(t, ecK, valid(func(c map[string]any) { delete(c, "iss") })), ReasonUnknownIssuer, ""},
		{"issuer not a string", sign(t, ecK, valid(func(c map[string]any) { c["iss"] = []string{ti.url} })), ReasonUnknownIssuer, ""},
		{"unknown kid", sign(t, testKey{kid: "ec-2", alg: "ES256", priv: ecK.priv}, valid(func(map[string]any) {})), ReasonUnknownKey, ti.url},
		{"payload tampered", parts[0] + "." + b64([]byte(strings.Replace(string(mustB64(t, parts[1])), "alice", "admin", 1))) + "." + parts[2], ReasonBadSignature, ti.url},
		{"signed by another key with the same kid", sign(t, otherRSA, valid(func(map[string]any) {})), ReasonBadSignature, ti.url},
		{"sub missing", sign(t, ecK, valid(func(c map[string]any) { delete(c, "sub") })), ReasonBadClaims, ti.url},
		{"sub empty", sign(t, ecK, valid(func(c map[string]any) { c["sub"] = "" })), ReasonBadClaims, ti.url},
		{"nonce not a string", sign(t, ecK, valid(func(c map[string]any) { c["nonce"] = 7 })), ReasonBadClaims, ti.url},
		{"sub with a control character", sign(t, ecK, valid(func(c map[string]any) { c["sub"] = "al\nice" })), ReasonBadClaims, ti.url},
		{"sub too long", sign(t, ecK, valid(func(c map[string]any) { c["sub"] = strings.Repeat("a", 256) })), ReasonBadClaims, ti.url},
		{"exp missing", sign(t, ecK, valid(func(c map[string]any) { delete(c, "exp") })), ReasonBadClaims, ti.url},
		{"exp a string", sign(t, ecK, valid(func(c map[string]any) { c["exp"] = "tomorrow" })), ReasonBadClaims, ti.url},
		{"exp negative", sign(t, ecK, valid(func(c map[string]any) { c["exp"] = -1 })), ReasonBadClaims, ti.url},
		{"iat missing", sign(t, ecK, valid(func(c map[string]any) { delete(c, "iat") })), ReasonBadClaims, ti.url},
		{"aud a number", sign(t, ecK, valid(func(c map[string]any) { c["aud"] = 7 })), ReasonBadClaims, ti.url},
		{"groups a number", sign(t, ecK, valid(func(c map[string]any) { c["groups"] = 7 })), ReasonBadClaims, ti.url},
		{"groups with a number", sign(t, ecK, valid(func(c map[string]any) { c["groups"] = []any{"a", 7} })), ReasonBadClaims, ti.url},
		{"too many groups", sign(t, ecK, valid(func(c map[string]any) { c["groups"] = manyGroups })), ReasonBadClaims, ti.url},
		{"group too long", sign(t, ecK, valid(func(c map[string]any) { c["groups"] = []string{strings.Repeat("g", MaxGroupLength+1)} })), ReasonBadClaims, ti.url},
		{"email_verified a number", sign(t, ecK, valid(func(c map[string]any) { c["email_verified"] = 1 })), ReasonBadClaims, ti.url},
		{"expired", sign(t, ecK, valid(func(c map[string]any) { c["exp"] = testNow.Add(-2 * time.Minute).Unix() })), ReasonExpired, ti.url},
		{"expired at exactly now minus skew", sign(t, ecK, valid(func(c map[string]any) { c["exp"] = testNow.Add(-time.Minute).Unix() })), ReasonExpired, ti.url},
		{"nbf in the future", sign(t, ecK, valid(func(c map[string]any) { c["nbf"] = testNow.Add(2 * time.Minute).Unix() })), ReasonNotYetValid, ti.url},
		{"iat in the future", sign(t, ecK, valid(func(c map[string]any) { c["iat"] = testNow.Add(2 * time.Minute).Unix() })), ReasonNotYetValid, ti.url},
		{"wrong audience", sign(t, ecK, valid(func(c map[string]any) { c["aud"] = "other-app" })), ReasonWrongAudience, ti.url},
		{"audience missing", sign(t, ecK, valid(func(c map[string]any) { delete(c, "aud") })), ReasonWrongAudience, ti.url},
		{"audience empty list", sign(t, ecK, valid(func(c map[string]any) { c["aud"] = []string{} })), ReasonWrongAudience, ti.url},
		{"unverified email where required", sign(t, ecK, valid(func(c map[string]any) { c["iss"] = strict.url; c["email_verified"] = false })), ReasonEmailNotVerified, strict.url},
		{"no email where required", sign(t, ecK, valid(func(c map[string]any) { c["iss"] = strict.url; delete(c, "email") })), ReasonEmailNotVerified, strict.url},
		{"too large", strings.Repeat("a", DefaultMaxTokenSize+1), ReasonTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			te := authFails(t, a, tt.token, tt.reason)
			if te.Issuer != tt.issuer {
				t.Errorf("issuer = %q, want %q", te.Issuer, tt.issuer)
			}
			if want := "oidcauth: invalid user token: " + string(tt.reason); !strings.HasPrefix(te.Error(), want) {
				t.Errorf("error = %q, want prefix %q", te.Error(), want)
			}
		})
	}
	// Only the warm-up fetched: the clock did not move, so the unknown kid's
	// refresh was rate limited.
	if got := ti.jwksHits.Load(); got != 1 {
		t.Errorf("key set requests = %d, want 1", got)
	}
}

func mustB64(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := b64dec(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestErrorNeverContainsToken puts a sentinel into every part of the token
// that a careless error message could echo and checks no error text has it.
func TestErrorNeverContainsToken(t *testing.T) {
	const sentinel = "SENTINEL7q"
	clock := newFakeClock()
	k := newECKey(t, "ec-1")
	ti := newTestIssuer(t, k)
	a := newAuth(t, ti.config(clock))
	authOK(t, a, sign(t, k, ti.claims(clock.Now())))

	valid := func(edit func(c map[string]any)) map[string]any {
		c := ti.claims(clock.Now())
		edit(c)
		return c
	}
	es := signer(t, k.priv, "ES256")
	tokens := map[Reason]string{
		ReasonMalformed:     signWith(t, map[string]any{"alg": "ES256", "kid": sentinel}, `{"iss":"`+sentinel, es),
		ReasonBadAlgorithm:  signWith(t, map[string]any{"alg": sentinel, "kid": sentinel}, valid(func(map[string]any) {}), es),
		ReasonUnknownIssuer: sign(t, k, valid(func(c map[string]any) { c["iss"] = "https://" + sentinel + ".example.com" })),
		ReasonUnknownKey:    sign(t, testKey{kid: sentinel, alg: "ES256", priv: k.priv}, valid(func(map[string]any) {})),
		ReasonBadSignature:  signWith(t, map[string]any{"alg": "ES256", "kid": "ec-1"}, valid(func(c map[string]any) { c["sub"] = sentinel }), func([]byte) []byte { return []byte(sentinel) }),
		ReasonBadClaims:     sign(t, k, valid(func(c map[string]any) { c["sub"] = sentinel + "\x01" + sentinel })),
		ReasonExpired:       sign(t, k, valid(func(c map[string]any) { c["sub"] = sentinel; c["exp"] = testNow.Add(-time.Hour).Unix() })),
		ReasonWrongAudience: sign(t, k, valid(func(c map[string]any) { c["aud"] = sentinel })),
		ReasonTooLarge:      strings.Repeat(sentinel, DefaultMaxTokenSize/len(sentinel)+1),
		ReasonNotYetValid:   sign(t, k, valid(func(c map[string]any) { c["sub"] = sentinel; c["nbf"] = testNow.Add(time.Hour).Unix() })),
	}
	for reason, token := range tokens {
		t.Run(string(reason), func(t *testing.T) {
			te := authFails(t, a, token, reason)
			for _, s := range []string{te.Error(), fmt.Sprintf("%v", te), fmt.Sprintf("%+v", error(te)), fmt.Sprint(te.Err)} {
				if strings.Contains(s, sentinel) || (len(token) > 0 && strings.Contains(s, token)) {
					t.Errorf("error text %q contains token content", s)
				}
			}
		})
	}
}

func TestUnlistedIssuerNeverFetched(t *testing.T) {
	clock := newFakeClock()
	k := newECKey(t, "ec-1")
	listed, unlisted := newTestIssuer(t, k), newTestIssuer(t, k)
	a := newAuth(t, listed.config(clock))
	authFails(t, a, sign(t, k, unlisted.claims(clock.Now())), ReasonUnknownIssuer)
	if got := unlisted.hits() + listed.hits(); got != 0 {
		t.Errorf("issuer requests = %d, want 0", got)
	}
}

func TestKeyRotation(t *testing.T) {
	clock := newFakeClock()
	old, next := newRSAKey(t, "2026-02", 0), newRSAKey(t, "2026-03", 1)
	ti := newTestIssuer(t, old)
	a := newAuth(t, ti.config(clock))
	authOK(t, a, sign(t, old, ti.claims(clock.Now())))

	// The issuer rotates: the old key is gone, the new one signs.
	ti.setKeys(next)
	newToken := sign(t, next, ti.claims(clock.Now()))
	// Within MinRefreshInterval of the last fetch the unknown kid is refused
	// without a request.
	authFails(t, a, newToken, ReasonUnknownKey)
	if got := ti.jwksHits.Load(); got != 1 {
		t.Fatalf("key set requests = %d, want 1 (refresh rate limited)", got)
	}
	clock.Add(DefaultMinRefreshInterval)
	id := authOK(t, a, newToken)
	if id.User.Subject() != "alice" {
		t.Errorf("subject = %q", id.User.Subject())
	}
	if got := ti.jwksHits.Load(); got != 2 {
		t.Errorf("key set requests = %d, want 2", got)
	}
	// The refresh dropped the old key: its tokens no longer verify.
	authFails(t, a, sign(t, old, ti.claims(clock.Now())), ReasonUnknownKey)
	if got := ti.discoveryHits.Load(); got != 1 {
		t.Errorf("discovery requests = %d, want 1 (jwks_uri is cached)", got)
	}
}

func TestUnknownKidSprayIsRateLimited(t *testing.T) {
	clock := newFakeClock()
	k := newEdKey(t, "ed-1")
	ti := newTestIssuer(t, k)
	a := newAuth(t, ti.config(clock))
	authOK(t, a, sign(t, k, ti.claims(clock.Now())))

	for round := range 3 {
		clock.Add(DefaultMinRefreshInterval)
		for i := range 50 {
			forged := testKey{kid: fmt.Sprintf("random-%d-%d", round, i), alg: "EdDSA", priv: k.priv}
			authFails(t, a, sign(t, forged, ti.claims(clock.Now())), ReasonUnknownKey)
		}
		if got, want := ti.jwksHits.Load(), int32(round+2); got != want {
			t.Fatalf("round %d: key set requests = %d, want %d (one per interval)", round, got, want)
		}
	}
	// Known keys keep working throughout.
	authOK(t, a, sign(t, k, ti.claims(clock.Now())))
}

func TestIssuerUnavailable(t *testing.T) {
	clock := newFakeClock()
	k := newECKey(t, "ec-1")
	ti := newTestIssuer(t, k)
	ti.setStatus(http.StatusServiceUnavailable)
	a := newAuth(t, ti.config(clock)) // starts although the IdP is down
	token := sign(t, k, ti.claims(clock.Now()))

	te := authFails(t, a, token, ReasonIssuerUnavailable)
	if te.Issuer != ti.url {
		t.Errorf("issuer = %q, want %q", te.Issuer, ti.url)
	}
	wantErr := "oidcauth: invalid user token: issuer_unavailable: issuer " + ti.url +
		": discovery: GET " + ti.url + "/.well-known/openid-configuration: status 503"
	if te.Error() != wantErr {
		t.Errorf("error = %q, want %q", te.Error(), wantErr)
	}
	// Retries are rate limited too: no request until the interval passed.
	authFails(t, a, token, ReasonIssuerUnavailable)
	if got := ti.hits(); got != 1 {
		t.Fatalf("issuer requests = %d, want 1", got)
	}
	// The IdP comes back.
	ti.setStatus(0)
	clock.Add(DefaultMinRefreshInterval)
	authOK(t, a, token)

	// Once keys are cached, an outage does not affect known keys, and an
	// unknown kid during the outage is "unavailable", not "unknown".
	ti.setStatus(http.StatusInternalServerError)
	clock.Add(DefaultMinRefreshInterval)
	authOK(t, a, token)
	forged := sign(t, newECKey(t, "ec-2"), ti.claims(clock.Now()))
	authFails(t, a, forged, ReasonIssuerUnavailable)
	authFails(t, a, forged, ReasonIssuerUnavailable) // rate limited, still the last error
}

func TestIssuerUnreachable(t *testing.T) {
	clock := newFakeClock()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	a := newAuth(t, Config{Issuers: []IssuerConfig{{URL: url, Audiences: []string{"a"}}}, Clock: clock.Now})
	k := newECKey(t, "ec-1")
	token := sign(t, k, map[string]any{"iss": url, "sub": "alice", "aud": "a", "iat": testNow.Unix(), "exp": testNow.Add(time.Hour).Unix()})
	authFails(t, a, token, ReasonIssuerUnavailable)
	if err := a.Prefetch(context.Background()); !errors.Is(err, ErrIssuerUnavailable) {
		t.Errorf("Prefetch = %v, want ErrIssuerUnavailable", err)
	}
}

func TestIssuerMisconfigured(t *testing.T) {
	k := newECKey(t, "ec-1")
	tests := []struct {
		name    string
		setup   func(ti *testIssuer)
		wantErr string // suffix of the error after the issuer
	}{
		{
			name:    "discovery names another issuer",
			setup:   func(ti *testIssuer) { ti.discoveryIssuer = "https://other.example.com" },
			wantErr: `discovery: document names issuer "https://other.example.com", want "` + "%s" + `"`,
		},
		{
			name: "key set without usable keys",
			setup: func(ti *testIssuer) {
				ti.jwksBody = []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"ec-1"},{"kty":"EC","crv":"P-384","kid":"x"}]}`)
			},
			wantErr: "key set: %s/jwks has no usable RS256, ES256 or EdDSA signing key",
		},
		{
			name:    "key set not JSON",
			setup:   func(ti *testIssuer) { ti.jwksBody = []byte(`<html>`) },
			wantErr: "key set: GET %s/jwks: response is not the expected JSON: invalid character '<' looking for beginning of value",
		},
		{
			name:    "key set larger than the bound",
			setup:   func(ti *testIssuer) { ti.jwksBody = []byte(`{"keys":[],"pad":"` + strings.Repeat("x", 2048) + `"}`) },
			wantErr: "key set: GET %s/jwks: response exceeds 1024 bytes",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			ti := newTestIssuer(t, k)
			tt.setup(ti)
			cfg := ti.config(clock)
			cfg.MaxResponseSize = 1024
			a := newAuth(t, cfg)
			te := authFails(t, a, sign(t, k, ti.claims(clock.Now())), ReasonIssuerUnavailable)
			if want := fmt.Sprintf(tt.wantErr, ti.url); te.Err.Error() != want {
				t.Errorf("detail = %q, want %q", te.Err, want)
			}
		})
	}
}

func TestTLSIssuer(t *testing.T) {
	k := newRSAKey(t, "rsa-1", 0)
	t.Run("https issuer verifies", func(t *testing.T) {
		clock := newFakeClock()
		ti := newTLSTestIssuer(t, k)
		a := newAuth(t, ti.config(clock))
		if id := authOK(t, a, sign(t, k, ti.claims(clock.Now()))); id.User.Issuer() != ti.url {
			t.Errorf("issuer = %q, want %q", id.User.Issuer(), ti.url)
		}
	})
	t.Run("plain http jwks_uri from an https issuer refused", func(t *testing.T) {
		clock := newFakeClock()
		plain := newTestIssuer(t, k)
		ti := newTLSTestIssuer(t, k)
		ti.jwksURI = plain.url + "/jwks"
		a := newAuth(t, ti.config(clock))
		te := authFails(t, a, sign(t, k, ti.claims(clock.Now())), ReasonIssuerUnavailable)
		if want := `discovery: jwks_uri: "` + plain.url + `/jwks" is not https`; te.Err.Error() != want {
			t.Errorf("detail = %q, want %q", te.Err, want)
		}
		if got := plain.hits(); got != 0 {
			t.Errorf("the http host got %d requests", got)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		clock := newFakeClock()
		ti := newTLSTestIssuer(t, k)
		ti.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake failure is expected
		cfg := ti.config(clock)
		cfg.HTTPClient = nil // the default client does not trust the test CA
		a := newAuth(t, cfg)
		authFails(t, a, sign(t, k, ti.claims(clock.Now())), ReasonIssuerUnavailable)
	})
}

func TestRedirects(t *testing.T) {
	k := newECKey(t, "ec-1")
	t.Run("to another host refused", func(t *testing.T) {
		clock := newFakeClock()
		elsewhere := newTestIssuer(t, k)
		ti := newTestIssuer(t, k)
		ti.srv.Config.Handler = http.RedirectHandler(elsewhere.url+"/.well-known/openid-configuration", http.StatusFound)
		a := newAuth(t, ti.config(clock))
		te := authFails(t, a, sign(t, k, ti.claims(clock.Now())), ReasonIssuerUnavailable)
		if !errors.Is(te, errRedirect) {
			t.Errorf("detail = %v, want errRedirect", te.Err)
		}
		if got := elsewhere.hits(); got != 0 {
			t.Errorf("the other host got %d requests", got)
		}
	})
	t.Run("on the same host followed", func(t *testing.T) {
		clock := newFakeClock()
		ti := newTestIssuer(t, k)
		mux := ti.srv.Config.Handler
		ti.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/keys" {
				http.Redirect(w, r, "/jwks", http.StatusMovedPermanently)
				return
			}
			mux.ServeHTTP(w, r)
		})
		cfg := ti.config(clock)
		cfg.Issuers[0].JWKSURL = ti.url + "/keys"
		a := newAuth(t, cfg)
		authOK(t, a, sign(t, k, ti.claims(clock.Now())))
		if got := ti.discoveryHits.Load(); got != 0 {
			t.Errorf("discovery requests = %d, want 0 with a configured JWKSURL", got)
		}
	})
	t.Run("client's own policy still applies", func(t *testing.T) {
		clock := newFakeClock()
		ti := newTestIssuer(t, k)
		mux := ti.srv.Config.Handler
		ti.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/keys" {
				http.Redirect(w, r, "/jwks", http.StatusMovedPermanently)
				return
			}
			mux.ServeHTTP(w, r)
		})
		errMine := errors.New("no redirects at all")
		cfg := ti.config(clock)
		cfg.Issuers[0].JWKSURL = ti.url + "/keys"
		cfg.HTTPClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return errMine }}
		a := newAuth(t, cfg)
		te := authFails(t, a, sign(t, k, ti.claims(clock.Now())), ReasonIssuerUnavailable)
		if !errors.Is(te, errMine) {
			t.Errorf("detail = %v, want the client's own error", te.Err)
		}
	})
}

func TestOversizeTokenRefusedBeforeParsing(t *testing.T) {
	clock := newFakeClock()
	k := newECKey(t, "ec-1")
	ti := newTestIssuer(t, k)
	cfg := ti.config(clock)
	cfg.MaxTokenSize = 512
	a := newAuth(t, cfg)

	c := ti.claims(clock.Now())
	c["pad"] = strings.Repeat("p", 512)
	big := sign(t, k, c) // a valid token, only too long
	te := authFails(t, a, big, ReasonTooLarge)
	if want := "oidcauth: invalid user token: too_large: token exceeds 512 bytes"; te.Error() != want {
		t.Errorf("error = %q, want %q", te.Error(), want)
	}
	// Not even a malformed token is parsed when too long.
	authFails(t, a, strings.Repeat(".", 513), ReasonTooLarge)
	authFails(t, a, strings.Repeat(".", 512), ReasonMalformed)
	if got := ti.hits(); got != 0 {
		t.Errorf("issuer requests = %d, want 0", got)
	}
}

func TestWaitHonoursContext(t *testing.T) {
	clock := newFakeClock()
	k := newECKey(t, "ec-1")
	ti := newTestIssuer(t, k)
	release := make(chan struct{})
	ti.block = release
	a := newAuth(t, ti.config(clock))
	token := sign(t, k, ti.claims(clock.Now()))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := a.Authenticate(ctx, token)
	if ReasonOf(err) != ReasonIssuerUnavailable || !errors.Is(err, context.Canceled) {
		t.Fatalf("Authenticate = %v, want issuer_unavailable wrapping context.Canceled", err)
	}
	// The shared fetch goes on for the next request.
	ti.mu.Lock()
	ti.block = nil
	ti.mu.Unlock()
	close(release)
	authOK(t, a, token)
}

func TestStaleKeysRefreshedInBackground(t *testing.T) {
	clock := newFakeClock()
	k := newECKey(t, "ec-1")
	ti := newTestIssuer(t, k)
	a := newAuth(t, ti.config(clock))
	authOK(t, a, sign(t, k, ti.claims(clock.Now())))

	// An hour later the cached keys are stale and the IdP is down: the
	// request succeeds with the cached keys and starts a refresh.
	ti.setStatus(http.StatusServiceUnavailable)
	clock.Add(DefaultKeysMaxAge)
	authOK(t, a, sign(t, k, ti.claims(clock.Now())))
	ik := a.issuers[ti.url]
	waitRefresh(t, ik)
	if err := ik.lastError(); err == nil {
		t.Fatal("background refresh succeeded against a failing IdP")
	}
	authOK(t, a, sign(t, k, ti.claims(clock.Now())))

	// Back up: the next refresh replaces the keys.
	ti.setStatus(0)
	ti.setKeys(newECKey(t, "ec-2"))
	clock.Add(DefaultMinRefreshInterval)
	authOK(t, a, sign(t, k, ti.claims(clock.Now())))
	waitRefresh(t, ik)
	authFails(t, a, sign(t, k, ti.claims(clock.Now())), ReasonUnknownKey)
}

// waitRefresh waits for the issuer's refresh in flight, if any.
func waitRefresh(tb testing.TB, k *issuerKeys) {
	tb.Helper()
	k.mu.Lock()
	r := k.inflight
	k.mu.Unlock()
	if r == nil {
		return
	}
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		tb.Fatal("refresh did not finish")
	}
}

func TestPrefetch(t *testing.T) {
	clock := newFakeClock()
	k := newECKey(t, "ec-1")
	ti := newTestIssuer(t, k)
	a := newAuth(t, ti.config(clock))
	if err := a.Prefetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := ti.hits(); got != 2 {
		t.Fatalf("issuer requests = %d, want 2", got)
	}
	if err := a.Prefetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	authOK(t, a, sign(t, k, ti.claims(clock.Now())))
	if got := ti.hits(); got != 2 {
		t.Errorf("issuer requests = %d, want 2 (cached)", got)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	ok := IssuerConfig{URL: "https://idp.example.com", Audiences: []string{"app"}}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no issuers", Config{}, "at least one issuer is required"},
		{"http issuer", Config{Issuers: []IssuerConfig{{URL: "http://idp.example.com", Audiences: []string{"a"}}}}, `issuer 0: url: "http://idp.example.com" is not https (http only for loopback hosts)`},
		{"relative issuer", Config{Issuers: []IssuerConfig{{URL: "idp.example.com", Audiences: []string{"a"}}}}, `issuer 0: url: "idp.example.com" is not an absolute URL`},
		{"issuer with query", Config{Issuers: []IssuerConfig{{URL: "https://idp.example.com/?x=1", Audiences: []string{"a"}}}}, `issuer 0: url "https://idp.example.com/?x=1" has a query, fragment or user info`},
		{"no audiences", Config{Issuers: []IssuerConfig{{URL: "https://idp.example.com"}}}, `issuer 0: issuer "https://idp.example.com" has no audiences`},
		{"empty audience", Config{Issuers: []IssuerConfig{{URL: "https://idp.example.com", Audiences: []string{""}}}}, `issuer 0: issuer "https://idp.example.com" has an empty audience`},
		{"duplicate issuer", Config{Issuers: []IssuerConfig{ok, ok}}, `issuer 1: duplicate issuer "https://idp.example.com"`},
		{"http jwks url", Config{Issuers: []IssuerConfig{{URL: "https://idp.example.com", Audiences: []string{"a"}, JWKSURL: "http://keys.example.com"}}}, `issuer 0: jwks url: "http://keys.example.com" is not https (http only for loopback hosts)`},
		{"negative skew", Config{Issuers: []IssuerConfig{ok}, ClockSkew: -1}, "clock skew is negative"},
		{"large skew", Config{Issuers: []IssuerConfig{ok}, ClockSkew: time.Hour}, "clock skew 1h0m0s exceeds 5m0s"},
		{"negative token size", Config{Issuers: []IssuerConfig{ok}, MaxTokenSize: -1}, "max token size is negative"},
		{"negative response size", Config{Issuers: []IssuerConfig{ok}, MaxResponseSize: -1}, "max response size is negative"},
		{"max age below interval", Config{Issuers: []IssuerConfig{ok}, MinRefreshInterval: time.Minute, KeysMaxAge: time.Second}, "keys max age 1s is below the minimum refresh interval 1m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New = %v, want ErrInvalidConfig", err)
			}
			if want := "oidcauth: invalid config: " + tt.wantErr; err.Error() != want {
				t.Errorf("error = %q\n          want %q", err, want)
			}
		})
	}
}

func TestNewDoesNotModifyClient(t *testing.T) {
	client := &http.Client{Timeout: time.Second}
	ok := IssuerConfig{URL: "https://idp.example.com", Audiences: []string{"app"}}
	if _, err := New(Config{Issuers: []IssuerConfig{ok}, HTTPClient: client}); err != nil {
		t.Fatal(err)
	}
	if client.CheckRedirect != nil {
		t.Error("New set CheckRedirect on the caller's client")
	}
}

func TestReasonOf(t *testing.T) {
	if got := ReasonOf(fmt.Errorf("wrapped: %w", &TokenError{Reason: ReasonExpired})); got != ReasonExpired {
		t.Errorf("ReasonOf = %q", got)
	}
	if got := ReasonOf(errors.New("other")); got != "" {
		t.Errorf("ReasonOf = %q, want empty", got)
	}
}
