package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unsafe"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// This file verifies the JWS compact serialization of a JWT-SVID. It accepts
// a subset of what go-spiffe's jwtsvid.ParseAndValidate accepts (the same
// algorithms, kid required, typ JWT or JOSE, sub a SPIFFE ID, exp required)
// with two differences that are the reason it exists:
//
//   - the signature is checked before the payload is decoded, so a forged
//     token costs one header decode and one signature check, never a JSON
//     parse of attacker-chosen claims;
//   - the payload is decoded once, with the injected clock, instead of twice
//     against time.Now.
//
// A differential test and a fuzz target (FuzzVerifySigned, which signs the
// fuzzed header and claims with the test key) hold it to go-spiffe: every
// token it accepts in those, ParseAndValidate accepts too.

// maxHeaderSegment bounds the encoded JOSE header. SPIRE's is about 100
// bytes ({"alg","kid","typ"}).
const maxHeaderSegment = 1024

// algorithm is a JWS signature algorithm JWT-SVIDs may use (JWT-SVID §3: the
// RSA, RSA-PSS and ECDSA families; never "none" or HMAC).
type algorithm struct {
	hash  crypto.Hash
	curve elliptic.Curve // ECDSA only
	size  int            // ECDSA: bytes of r and of s
	pss   bool           // RSA only
}

var algorithms = map[string]algorithm{
	"ES256": {hash: crypto.SHA256, curve: elliptic.P256(), size: 32},
	"ES384": {hash: crypto.SHA384, curve: elliptic.P384(), size: 48},
	"ES512": {hash: crypto.SHA512, curve: elliptic.P521(), size: 66},
	"RS256": {hash: crypto.SHA256},
	"RS384": {hash: crypto.SHA384},
	"RS512": {hash: crypto.SHA512},
	"PS256": {hash: crypto.SHA256, pss: true},
	"PS384": {hash: crypto.SHA384, pss: true},
	"PS512": {hash: crypto.SHA512, pss: true},
}

// jws is a token split into its parts; nothing of the payload is decoded.
type jws struct {
	alg       algorithm
	kid       string
	input     string // header "." payload: what the signature covers
	payload   string // base64url
	signature string // base64url
}

func malformedf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformedToken}, args...)...)
}

// splitJWS checks the compact form and decodes the header only.
func splitJWS(token string) (jws, error) {
	dot1 := strings.IndexByte(token, '.')
	if dot1 < 0 {
		return jws{}, malformedf("not a JWS compact serialization")
	}
	rest := token[dot1+1:]
	dot2 := strings.IndexByte(rest, '.')
	if dot2 < 0 || strings.IndexByte(rest[dot2+1:], '.') >= 0 {
		return jws{}, malformedf("not a JWS compact serialization")
	}
	t := jws{input: token[:dot1+1+dot2], payload: rest[:dot2], signature: rest[dot2+1:]}
	header := token[:dot1]
	if len(header) > maxHeaderSegment {
		return jws{}, malformedf("header longer than %d bytes", maxHeaderSegment)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(header)
	if err != nil {
		return jws{}, malformedf("header is not base64url")
	}
	// The same strict decoder as the payload's: member names match
	// case-sensitively ("ALG" is not "alg") and may not repeat.
	fields, err := decodeJSONObject(raw)
	if err != nil {
		return jws{}, malformedf("header is not a JSON object")
	}
	if _, ok := fields["crit"]; ok {
		// No extension is understood, so none may be critical.
		return jws{}, malformedf("header \"crit\" is not supported")
	}
	if _, ok := fields["b64"]; ok {
		// An unencoded payload (RFC 7797) would change what is signed.
		return jws{}, malformedf("header \"b64\" is not supported")
	}
	// Other members (e.g. x5t) are ignored: keys never come from the token.
	var h struct{ Alg, Kid, Typ *string }
	for _, f := range []struct {
		name string
		dst  **string
	}{{"alg", &h.Alg}, {"kid", &h.Kid}, {"typ", &h.Typ}} {
		value, ok := fields[f.name]
		if !ok {
			continue
		}
		s, ok := value.(string)
		if !ok {
			return jws{}, malformedf("header %q is not a string", f.name)
		}
		*f.dst = &s
	}
	if h.Alg == nil {
		return jws{}, fmt.Errorf("%w: no alg", ErrUnsupportedAlgorithm)
	}
	var ok bool
	if t.alg, ok = algorithms[*h.Alg]; !ok {
		return jws{}, fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, truncate(*h.Alg))
	}
	if h.Kid == nil || *h.Kid == "" {
		return jws{}, malformedf("header has no kid")
	}
	t.kid = *h.Kid
	if h.Typ != nil && *h.Typ != "JWT" && *h.Typ != "JOSE" {
		return jws{}, malformedf("header typ %q is neither JWT nor JOSE", truncate(*h.Typ))
	}
	return t, nil
}

// verifySignature checks the signature of t under key.
func (t jws) verifySignature(key crypto.PublicKey) error {
	var buf [2 * 66]byte // an ES512 signature, the largest ECDSA one
	var sig []byte
	if n := base64.RawURLEncoding.DecodedLen(len(t.signature)); n <= len(buf) {
		m, err := base64.RawURLEncoding.Strict().Decode(buf[:], []byte(t.signature))
		if err != nil {
			return malformedf("signature is not base64url")
		}
		sig = buf[:m]
	} else {
		var err error
		if sig, err = base64.RawURLEncoding.Strict().DecodeString(t.signature); err != nil {
			return malformedf("signature is not base64url")
		}
	}
	var d [sha512.Size]byte
	digest := digest(d[:0], t.alg.hash, t.input)
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if t.alg.curve == nil || k.Curve != t.alg.curve {
			return fmt.Errorf("%w: algorithm does not match the key", ErrBadSignature)
		}
		if len(sig) != 2*t.alg.size {
			return fmt.Errorf("%w: %d bytes, want %d", ErrBadSignature, len(sig), 2*t.alg.size)
		}
		var der [2*66 + 9]byte
		if !ecdsa.VerifyASN1(k, digest, asn1Signature(der[:0], sig[:t.alg.size], sig[t.alg.size:])) {
			return ErrBadSignature
		}
		return nil
	case *rsa.PublicKey:
		if t.alg.curve != nil {
			return fmt.Errorf("%w: algorithm does not match the key", ErrBadSignature)
		}
		var err error
		if t.alg.pss {
			err = rsa.VerifyPSS(k, t.alg.hash, digest, sig, nil)
		} else {
			err = rsa.VerifyPKCS1v15(k, t.alg.hash, digest, sig)
		}
		if err != nil {
			return ErrBadSignature
		}
		return nil
	default:
		return fmt.Errorf("%w: unsupported key type %T", ErrBadSignature, key)
	}
}

// asn1Signature appends to dst the DER form crypto/ecdsa verifies,
// SEQUENCE { INTEGER r, INTEGER s }, of a JWS signature's fixed-size halves.
// (ecdsa.Verify would do the same through two big.Ints and an allocation.)
// r and s are at most 66 bytes, so every length fits in one byte.
func asn1Signature(dst, r, s []byte) []byte {
	r, s = minimalInt(r), minimalInt(s)
	intLen := func(b []byte) int {
		if len(b) > 0 && b[0]&0x80 != 0 {
			return len(b) + 1
		}
		return len(b)
	}
	lr, ls := intLen(r), intLen(s)
	dst = append(dst, 0x30) // SEQUENCE
	if body := 2 + lr + 2 + ls; body >= 0x80 {
		dst = append(dst, 0x81, byte(body))
	} else {
		dst = append(dst, byte(body))
	}
	for _, n := range [][]byte{r, s} {
		dst = append(dst, 0x02, byte(intLen(n))) // INTEGER
		if intLen(n) > len(n) {
			dst = append(dst, 0)
		}
		dst = append(dst, n...)
	}
	return dst
}

// minimalInt strips leading zero bytes, keeping one byte for zero (which
// ECDSA verification then rejects).
func minimalInt(b []byte) []byte {
	for len(b) > 1 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

func digest(dst []byte, h crypto.Hash, input string) []byte {
	switch h {
	case crypto.SHA256:
		d := sha256.Sum256(bytesOf(input))
		return append(dst, d[:]...)
	case crypto.SHA384:
		d := sha512.Sum384(bytesOf(input))
		return append(dst, d[:]...)
	default:
		d := sha512.Sum512(bytesOf(input))
		return append(dst, d[:]...)
	}
}

// bytesOf views s as bytes without copying, for hash functions, which only
// read their input. It saves copying the token (up to MaxTokenSize) twice
// per request.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// registered holds the standard claims of a verified payload.
type registered struct {
	sub      spiffeid.ID
	aud      []string
	exp      time.Time
	nbf, iat time.Time // zero when absent
}

// decodePayload decodes the payload of a token whose signature verified,
// returning all its claims and the registered ones checked and typed.
func (t jws) decodePayload() (map[string]any, registered, error) {
	var buf [MaxTokenSize]byte
	n, err := base64.RawURLEncoding.Strict().Decode(buf[:], []byte(t.payload))
	if err != nil {
		return nil, registered{}, malformedf("payload is not base64url")
	}
	all, err := decodeJSONObject(buf[:n])
	switch {
	case errors.Is(err, errJSONDepth):
		return nil, registered{}, malformedf("payload %v", err)
	case err != nil:
		return nil, registered{}, malformedf("payload is not a JSON object")
	}
	var reg registered
	sub, ok := all["sub"].(string)
	if !ok || sub == "" {
		return nil, registered{}, malformedf("sub is missing or not a string")
	}
	if reg.sub, err = spiffeid.FromString(sub); err != nil {
		return nil, registered{}, malformedf("sub is not a SPIFFE ID: %v", err)
	}
	switch aud := all["aud"].(type) {
	case string:
		reg.aud = []string{aud}
	case []any:
		reg.aud = make([]string, len(aud))
		for i, a := range aud {
			if reg.aud[i], ok = a.(string); !ok {
				return nil, registered{}, malformedf("aud[%d] is not a string", i)
			}
		}
	case nil:
	default:
		return nil, registered{}, malformedf("aud is neither a string nor a list")
	}
	if _, ok := all["exp"]; !ok {
		return nil, registered{}, malformedf("exp is missing")
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"exp", &reg.exp}, {"nbf", &reg.nbf}, {"iat", &reg.iat}} {
		raw, ok := all[f.name]
		if !ok {
			continue
		}
		// Seconds since the epoch; fractions truncated, as go-jose does.
		// Past the year 2514 is not a date SPIRE writes.
		secs, ok := raw.(float64)
		if !ok || secs < 1 || secs > math.MaxInt32*4 {
			return nil, registered{}, malformedf("%s is not a valid NumericDate", f.name)
		}
		*f.dst = time.Unix(int64(secs), 0)
	}
	return all, reg, nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
