package oidcauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// testNow is the fake time every test starts at.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: testNow} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testKey is a signing key of the test issuer.
type testKey struct {
	kid  string
	alg  string
	priv crypto.Signer
}

var (
	rsaKeysOnce sync.Once
	rsaKeys     []*rsa.PrivateKey
)

// rsaKey returns one of a few RSA keys generated once per test binary, since
// RSA key generation is slow.
func rsaKey(tb testing.TB, i int) *rsa.PrivateKey {
	tb.Helper()
	rsaKeysOnce.Do(func() {
		for range 3 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys = append(rsaKeys, k)
		}
	})
	return rsaKeys[i]
}

func newRSAKey(tb testing.TB, kid string, i int) testKey {
	tb.Helper()
	return testKey{kid: kid, alg: algRS256, priv: rsaKey(tb, i)}
}

func newECKey(tb testing.TB, kid string) testKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return testKey{kid: kid, alg: algES256, priv: k}
}

func newEdKey(tb testing.TB, kid string) testKey {
	tb.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return testKey{kid: kid, alg: algEdDSA, priv: k}
}

// testIssuer is an OpenID provider on a loopback httptest server: discovery
// and JWKS, with keys the test rotates and an outage switch.
type testIssuer struct {
	tb  testing.TB
	srv *httptest.Server
	url string

	mu              sync.Mutex
	keys            []testKey
	status          int    // when not 0, every request gets this status
	discoveryIssuer string // when not "", the issuer the discovery document names
	jwksURI         string // when not "", the jwks_uri the discovery document names
	jwksBody        []byte // when not nil, served as the key set
	block           chan struct{}

	discoveryHits atomic.Int32
	jwksHits      atomic.Int32
}

func newTestIssuer(tb testing.TB, keys ...testKey) *testIssuer {
	tb.Helper()
	return startTestIssuer(tb, false, keys)
}

// newTLSTestIssuer is a testIssuer on https; its config trusts the server's
// certificate.
func newTLSTestIssuer(tb testing.TB, keys ...testKey) *testIssuer {
	tb.Helper()
	return startTestIssuer(tb, true, keys)
}

func startTestIssuer(tb testing.TB, useTLS bool, keys []testKey) *testIssuer {
	tb.Helper()
	ti := &testIssuer{tb: tb, keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		ti.discoveryHits.Add(1)
		if ti.fail(w) {
			return
		}
		ti.mu.Lock()
		iss := ti.discoveryIssuer
		ti.mu.Unlock()
		if iss == "" {
			iss = ti.url
		}
		jwksURI := ti.jwksURI
		if jwksURI == "" {
			jwksURI = ti.url + "/jwks"
		}
		writeJSON(w, map[string]any{
			"issuer":                                iss,
			"jwks_uri":                              jwksURI,
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256", "EdDSA"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		ti.jwksHits.Add(1)
		if ti.fail(w) {
			return
		}
		ti.mu.Lock()
		body := ti.jwksBody
		keys := ti.keys
		ti.mu.Unlock()
		if body != nil {
			w.Write(body)
			return
		}
		var set jose.JSONWebKeySet
		for _, k := range keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: k.alg, Use: "sig"})
		}
		writeJSON(w, set)
	})
	if useTLS {
		ti.srv = httptest.NewTLSServer(mux)
	} else {
		ti.srv = httptest.NewServer(mux)
	}
	tb.Cleanup(ti.srv.Close)
	ti.url = ti.srv.URL
	return ti
}

func (ti *testIssuer) fail(w http.ResponseWriter) bool {
	ti.mu.Lock()
	status, block := ti.status, ti.block
	ti.mu.Unlock()
	if block != nil {
		<-block
	}
	if status != 0 {
		w.WriteHeader(status)
		return true
	}
	return false
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// setKeys replaces the published key set (a rotation).
func (ti *testIssuer) setKeys(keys ...testKey) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.keys = keys
}

// setStatus makes every request answer status (0: serve normally).
func (ti *testIssuer) setStatus(status int) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.status = status
}

func (ti *testIssuer) hits() int32 { return ti.discoveryHits.Load() + ti.jwksHits.Load() }

// claims returns valid claims for the issuer at now.
func (ti *testIssuer) claims(now time.Time) map[string]any {
	return map[string]any{
		"iss":            ti.url,
		"sub":            "alice",
		"aud":            "chat-frontend",
		"iat":            now.Add(-time.Minute).Unix(),
		"exp":            now.Add(time.Hour).Unix(),
		"email":          "alice@example.com",
		"email_verified": true,
		"groups":         []string{"marketing", "staff"},
	}
}

// config returns an Authenticator config for the issuer.
func (ti *testIssuer) config(clock *fakeClock) Config {
	return Config{
		Issuers:    []IssuerConfig{{URL: ti.url, Audiences: []string{"chat-frontend", "cli"}}},
		Clock:      clock.Now,
		HTTPClient: ti.srv.Client(),
	}
}

// newAuth builds an Authenticator or fails the test.
func newAuth(tb testing.TB, cfg Config) *Authenticator {
	tb.Helper()
	a, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// sign makes a compact JWS with header fields {alg, kid, typ} of the key.
func sign(tb testing.TB, k testKey, claims any) string {
	tb.Helper()
	return signWith(tb, map[string]any{"alg": k.alg, "kid": k.kid, "typ": "JWT"}, claims, signer(tb, k.priv, k.alg))
}

// signWith makes a compact JWS with any header, payload and signature. claims
// is marshalled unless it is a []byte or a string.
func signWith(tb testing.TB, header map[string]any, claims any, signFn func([]byte) []byte) string {
	tb.Helper()
	hb, err := json.Marshal(header)
	if err != nil {
		tb.Fatal(err)
	}
	var pb []byte
	switch c := claims.(type) {
	case []byte:
		pb = c
	case string:
		pb = []byte(c)
	default:
		if pb, err = json.Marshal(c); err != nil {
			tb.Fatal(err)
		}
	}
	input := b64(hb) + "." + b64(pb)
	return input + "." + b64(signFn([]byte(input)))
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signer signs with priv as alg says, written against crypto/* rather than
// go-jose so the tests do not share the code under test.
func signer(tb testing.TB, priv crypto.Signer, alg string) func([]byte) []byte {
	tb.Helper()
	return func(input []byte) []byte {
		var (
			sig []byte
			err error
		)
		switch alg {
		case "RS256":
			h := sha256.Sum256(input)
			sig, err = rsa.SignPKCS1v15(rand.Reader, priv.(*rsa.PrivateKey), crypto.SHA256, h[:])
		case "RS384":
			h := crypto.SHA384.New()
			h.Write(input)
			sig, err = rsa.SignPKCS1v15(rand.Reader, priv.(*rsa.PrivateKey), crypto.SHA384, h.Sum(nil))
		case "PS256":
			h := sha256.Sum256(input)
			sig, err = rsa.SignPSS(rand.Reader, priv.(*rsa.PrivateKey), crypto.SHA256, h[:], nil)
		case "ES256":
			h := sha256.Sum256(input)
			var r, s *big.Int
			r, s, err = ecdsa.Sign(rand.Reader, priv.(*ecdsa.PrivateKey), h[:])
			if err == nil {
				sig = make([]byte, 64)
				r.FillBytes(sig[:32])
				s.FillBytes(sig[32:])
			}
		case "EdDSA":
			sig = ed25519.Sign(priv.(ed25519.PrivateKey), input)
		default:
			err = fmt.Errorf("test signer: no algorithm %q", alg)
		}
		if err != nil {
			tb.Fatal(err)
		}
		return sig
	}
}

// hmacSigner signs HS256 with secret.
func hmacSigner(secret []byte) func([]byte) []byte {
	return func(input []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(input)
		return m.Sum(nil)
	}
}

func b64dec(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
