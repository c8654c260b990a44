// Package oidctest is an OpenID provider for unit tests: an httptest server
// that serves discovery and a JWKS, signs ID tokens with a real key, rotates
// keys, and forges the classic bad tokens (alg none, HS256 keyed with the
// public key, unknown kid). The end-to-end suite uses a real provider
// (Ory Hydra) instead.
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Issuer is a running test OpenID provider.
type Issuer struct {
	srv *httptest.Server

	mu   sync.Mutex
	key  *ecdsa.PrivateKey
	kid  string
	keys []jose.JSONWebKey // served JWKS
	n    int

	// The authorization code flow (SignIn).
	login  *Claims
	tamper func(*Claims)
	codes  map[string]authCode
}

// New starts an issuer on a loopback port; it stops with the test.
func New(tb testing.TB) *Issuer {
	tb.Helper()
	is := &Issuer{}
	is.Rotate(tb)
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                is.URL(),
			"jwks_uri":                              is.URL() + "/keys",
			"authorization_endpoint":                is.URL() + "/auth",
			"token_endpoint":                        is.URL() + "/token",
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"ES256"},
			"code_challenge_methods_supported":      []string{"S256"},
		})
	})
	mux.HandleFunc("/auth", is.authorize)
	mux.HandleFunc("/token", is.token)
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		is.mu.Lock()
		set := jose.JSONWebKeySet{Keys: append([]jose.JSONWebKey(nil), is.keys...)}
		is.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(set)
	})
	is.srv = httptest.NewServer(mux)
	tb.Cleanup(is.srv.Close)
	return is
}

// URL is the issuer identifier (http on loopback).
func (is *Issuer) URL() string { return is.srv.URL }

// Rotate replaces the signing key; the JWKS serves only the new key.
func (is *Issuer) Rotate(tb testing.TB) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	is.n++
	is.key, is.kid = key, "key-"+strconv.Itoa(is.n)
	is.keys = []jose.JSONWebKey{{Key: key.Public(), KeyID: is.kid, Algorithm: "ES256", Use: "sig"}}
}

// Claims of an ID token. Zero times default to now / now+1h.
type Claims struct {
	Subject       string
	Audience      string
	Email         string
	EmailVerified bool
	Groups        []string
	IssuedAt      time.Time
	Expiry        time.Time
	// Issuer overrides the issuer URL (to forge a wrong issuer).
	Issuer string
	// Nonce is the nonce claim; the authorization code flow sets it from
	// the authorization request.
	Nonce string
}

func (is *Issuer) payload(c Claims) []byte {
	now := time.Now()
	if c.IssuedAt.IsZero() {
		c.IssuedAt = now
	}
	if c.Expiry.IsZero() {
		c.Expiry = now.Add(time.Hour)
	}
	if c.Issuer == "" {
		c.Issuer = is.URL()
	}
	m := map[string]any{
		"iss": c.Issuer, "sub": c.Subject, "aud": c.Audience,
		"iat": c.IssuedAt.Unix(), "exp": c.Expiry.Unix(),
	}
	if c.Email != "" {
		m["email"] = c.Email
		m["email_verified"] = c.EmailVerified
	}
	if c.Groups != nil {
		m["groups"] = c.Groups
	}
	if c.Nonce != "" {
		m["nonce"] = c.Nonce
	}
	b, _ := json.Marshal(m)
	return b
}

// Token signs an ID token with the current key (ES256).
func (is *Issuer) Token(tb testing.TB, c Claims) string {
	tb.Helper()
	is.mu.Lock()
	key, kid := is.key, is.kid
	is.mu.Unlock()
	return sign(tb, key, kid, is.payload(c))
}

// TokenWithUnknownKey signs with a fresh key whose kid the JWKS never served.
func (is *Issuer) TokenWithUnknownKey(tb testing.TB, c Claims) string {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return sign(tb, key, "never-served", is.payload(c))
}

func sign(tb testing.TB, key crypto.Signer, kid string, payload []byte) string {
	tb.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		tb.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// NoneToken is an unsigned token with "alg": "none".
func (is *Issuer) NoneToken(c Claims) string {
	return b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64(is.payload(c)) + "."
}

// HS256WithPublicKey forges the key-confusion attack: HMAC-SHA256 keyed with
// the issuer's public key bytes (DER), under the real kid.
func (is *Issuer) HS256WithPublicKey(tb testing.TB, c Claims) string {
	tb.Helper()
	is.mu.Lock()
	pub, kid := is.key.Public(), is.kid
	is.mu.Unlock()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	signing := b64([]byte(`{"alg":"HS256","typ":"JWT","kid":"`+kid+`"}`)) + "." + b64(is.payload(c))
	mac := hmac.New(sha256.New, der)
	mac.Write([]byte(signing))
	return signing + "." + b64(mac.Sum(nil))
}
