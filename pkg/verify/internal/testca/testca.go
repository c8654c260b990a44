// Package testca is a small SPIFFE certificate and JWT authority for the
// tests of pkg/verify and its adapters: it issues X509-SVIDs for real mTLS
// handshakes and signs JWT-SVIDs, well formed or deliberately broken, with
// keys that appear in its bundles (or do not, for forgeries).
package testca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// KeyID is the kid of the CA's JWT signing key.
const KeyID = "jwt-key-1"

// CA is a trust domain's X.509 and JWT authority.
type CA struct {
	TD         spiffeid.TrustDomain
	Root       *x509.Certificate
	rootKey    *ecdsa.PrivateKey
	JWTKey     *ecdsa.PrivateKey
	X509Bundle *x509bundle.Bundle
	JWTBundle  *jwtbundle.Bundle
	serial     int64
}

// New returns a CA for trust domain td with a fresh root and JWT key.
func New(t testing.TB, td string) *CA {
	t.Helper()
	trustDomain := spiffeid.RequireTrustDomainFromString(td)
	rootKey := NewKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test root " + td},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{trustDomain.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{TD: trustDomain, Root: root, rootKey: rootKey, JWTKey: NewKey(t), serial: 1}
	ca.X509Bundle = x509bundle.FromX509Authorities(trustDomain, []*x509.Certificate{root})
	ca.JWTBundle = jwtbundle.FromJWTAuthorities(trustDomain, map[string]crypto.PublicKey{KeyID: ca.JWTKey.Public()})
	return ca
}

// NewKey returns a fresh P-256 key.
func NewKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// ID returns the SPIFFE ID with path in the CA's trust domain.
func (ca *CA) ID(t testing.TB, path string) spiffeid.ID {
	t.Helper()
	id, err := spiffeid.FromPath(ca.TD, path)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// X509SVID issues an X509-SVID for id, valid for a day.
func (ca *CA) X509SVID(t testing.TB, id spiffeid.ID) *x509svid.SVID {
	t.Helper()
	key := NewKey(t)
	ca.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{id.URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Root, key.Public(), ca.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{cert}, PrivateKey: key}
}

// TLSCertificate converts an X509-SVID into a tls.Certificate.
func TLSCertificate(svid *x509svid.SVID) tls.Certificate {
	c := tls.Certificate{PrivateKey: svid.PrivateKey, Leaf: svid.Certificates[0]}
	for _, cert := range svid.Certificates {
		c.Certificate = append(c.Certificate, cert.Raw)
	}
	return c
}

// Delegation describes the delegation claims of a test token.
type Delegation struct {
	User      delegation.User
	Scopes    []string
	ID, Root  delegation.ID
	Chain     []spiffeid.ID
	ExpiresAt time.Time
}

// Alice is the test user.
func Alice(t testing.TB) delegation.User {
	t.Helper()
	u, err := delegation.NewUser("https://idp.example.com", "alice", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Claims returns JWT-SVID claims for sub and aud expiring at exp, with the
// delegation claims of d when d is not nil.
func Claims(sub spiffeid.ID, aud string, exp time.Time, d *Delegation) map[string]any {
	m := map[string]any{
		"sub": sub.String(),
		"aud": []any{aud},
		"exp": float64(exp.Unix()),
		"iat": float64(exp.Add(-5 * time.Minute).Unix()),
	}
	if d != nil {
		c := claims.Claims{
			User: d.User, Scopes: delegation.MustParseScopes(d.Scopes...), ID: d.ID, Root: d.Root,
			Chain: d.Chain, ExpiresAt: d.ExpiresAt,
		}
		for k, v := range c.Map() {
			m[k] = v
		}
	}
	return m
}

// Token is an unsigned JWT: a header and claims, each marshalled as given.
type Token struct {
	Header map[string]any
	Claims map[string]any
}

// NewToken returns a token with the header SPIRE writes for kid.
func NewToken(kid string, c map[string]any) Token {
	return Token{Header: map[string]any{"alg": "ES256", "kid": kid, "typ": "JWT"}, Claims: c}
}

// SigningInput is base64url(header) "." base64url(claims).
func (tok Token) SigningInput(t testing.TB) string {
	t.Helper()
	return Segment(t, tok.Header) + "." + Segment(t, tok.Claims)
}

// Segment marshals v and encodes it as a JWS segment.
func Segment(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// SignES256 signs tok with key as a JWS ES256 signature (r || s).
func (tok Token) SignES256(t testing.TB, key *ecdsa.PrivateKey) string {
	t.Helper()
	return SignInputES256(t, tok.SigningInput(t), key)
}

// SignInputES256 signs an already encoded signing input with key.
func SignInputES256(t testing.TB, input string, key *ecdsa.PrivateKey) string {
	t.Helper()
	h := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// SignRS256 signs tok with an RSA key (PKCS #1 v1.5, SHA-256).
func (tok Token) SignRS256(t testing.TB, key *rsa.PrivateKey) string {
	t.Helper()
	input := tok.SigningInput(t)
	h := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// SignHS256 signs tok with HMAC-SHA256 under secret: the classic forgery that
// uses a published public key as the HMAC secret.
func (tok Token) SignHS256(t testing.TB, secret []byte) string {
	t.Helper()
	input := tok.SigningInput(t)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// Unsigned returns tok with an empty signature, as alg "none" has.
func (tok Token) Unsigned(t testing.TB) string {
	t.Helper()
	return tok.SigningInput(t) + "."
}

// Mint signs claims c with the CA's JWT key: a genuine JWT-SVID.
func (ca *CA) Mint(t testing.TB, c map[string]any) string {
	t.Helper()
	return NewToken(KeyID, c).SignES256(t, ca.JWTKey)
}

// PublicKeyPEM returns the PEM of the CA's JWT public key, what an attacker
// would use as an HMAC secret.
func (ca *CA) PublicKeyPEM(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(ca.JWTKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func encodeRaw(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
