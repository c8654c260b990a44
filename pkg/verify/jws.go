package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// This file verifies the JWS compact serialization of a JWT-SVID with
// go-jose, as go-spiffe's jwtsvid.ParseAndValidate does, and accepts a
// subset of what ParseAndValidate accepts (the same algorithms, kid
// required, typ JWT or JOSE, sub a SPIFFE ID, exp required). Around go-jose
// it adds:
//
//   - the header's size bounded (maxHeaderSegment) before go-jose decodes
//     it, and checked after: a kid, no crit and no b64 (RFC 7797 would change
//     what is signed); go-jose has already refused repeated member names and
//     algorithms outside the list;
//   - the algorithm checked against the key's type and curve, for an error
//     that says so (go-jose refuses the mismatch too, as a failed signature);
//   - the payload decoded once, after the signature verified, with limits on
//     nesting and repeated members (json.go), and the time checked on the
//     injected clock. go-spiffe decodes it twice against time.Now.
//
// A differential test and fuzz targets (FuzzVerify, FuzzVerifySigned) hold
// it to go-spiffe: every token accepted here, ParseAndValidate accepts too.

// maxHeaderSegment bounds the encoded JOSE header. SPIRE's is about 100
// bytes ({"alg","kid","typ"}).
const maxHeaderSegment = 1024

// algorithms are the JWS algorithms JWT-SVIDs may use (JWT-SVID §3: the
// RSA, RSA-PSS and ECDSA families; never "none" or HMAC), each with the
// curve its key must be on (nil: an RSA key).
var algorithms = map[jose.SignatureAlgorithm]elliptic.Curve{
	jose.ES256: elliptic.P256(), jose.ES384: elliptic.P384(), jose.ES512: elliptic.P521(),
	jose.RS256: nil, jose.RS384: nil, jose.RS512: nil,
	jose.PS256: nil, jose.PS384: nil, jose.PS512: nil,
}

// allowedAlgorithms is the keys of algorithms, for go-jose.
var allowedAlgorithms = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
}

// jws is a parsed token; its payload has not been decoded.
type jws struct {
	alg    jose.SignatureAlgorithm
	kid    string
	parsed *jose.JSONWebSignature
}

func malformedf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformedToken}, args...)...)
}

// parseJWS has go-jose parse token (the allowed algorithms only; its JSON
// decoder refuses repeated member names and matches them case-sensitively)
// and checks the header it found.
func parseJWS(token string) (jws, error) {
	header, _, ok := strings.Cut(token, ".")
	if !ok || strings.Count(token, ".") != 2 {
		return jws{}, malformedf("not a JWS compact serialization")
	}
	if len(header) > maxHeaderSegment {
		return jws{}, malformedf("header longer than %d bytes", maxHeaderSegment)
	}
	parsed, err := jose.ParseSignedCompact(token, allowedAlgorithms)
	if err != nil {
		return jws{}, parseError(header, err)
	}
	h := parsed.Signatures[0].Protected
	for _, name := range []jose.HeaderKey{"crit", "b64"} {
		// No extension is understood, so none may be critical; an
		// unencoded payload (RFC 7797, b64) would change what is signed.
		if _, ok := h.ExtraHeaders[name]; ok {
			return jws{}, malformedf("header %q is not supported", name)
		}
	}
	// Other members (e.g. x5t, jwk) are ignored: keys never come from the
	// token.
	if h.KeyID == "" {
		return jws{}, malformedf("header has no kid")
	}
	if typ, ok := h.ExtraHeaders[jose.HeaderType]; ok {
		if s, _ := typ.(string); s != "JWT" && s != "JOSE" {
			return jws{}, malformedf("header typ %q is neither JWT nor JOSE", truncate(fmt.Sprint(typ)))
		}
	}
	return jws{alg: jose.SignatureAlgorithm(h.Algorithm), kid: h.KeyID, parsed: parsed}, nil
}

// parseError says why go-jose refused a token whose encoded header is
// header. go-jose's own text may quote the token: it is not passed on.
func parseError(header string, err error) error {
	raw, b64err := base64.RawURLEncoding.Strict().DecodeString(header)
	if b64err != nil {
		return malformedf("header is not base64url")
	}
	var fields map[string]any
	if err := josejson.Unmarshal(raw, &fields); err != nil || fields == nil {
		return malformedf("header is not a JSON object")
	}
	switch alg, ok := fields["alg"]; {
	case !ok:
		return fmt.Errorf("%w: no alg", ErrUnsupportedAlgorithm)
	case !isAllowed(alg):
		return fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, truncate(fmt.Sprint(alg)))
	}
	if _, ok := errors.AsType[base64.CorruptInputError](err); ok {
		return malformedf("payload or signature is not base64url")
	}
	return malformedf("header does not parse as JOSE") // e.g. kid not a string, a malformed jwk
}

func isAllowed(alg any) bool {
	s, ok := alg.(string)
	_, allowed := algorithms[jose.SignatureAlgorithm(s)]
	return ok && allowed
}

// verify checks the signature of t under key and returns the payload.
func (t jws) verify(key crypto.PublicKey) ([]byte, error) {
	curve := algorithms[t.alg]
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if curve == nil || k.Curve != curve {
			return nil, fmt.Errorf("%w: algorithm does not match the key", ErrBadSignature)
		}
		size := 2 * ((curve.Params().BitSize + 7) / 8)
		if n := len(t.parsed.Signatures[0].Signature); n != size {
			return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadSignature, n, size)
		}
	case *rsa.PublicKey:
		if curve != nil {
			return nil, fmt.Errorf("%w: algorithm does not match the key", ErrBadSignature)
		}
	default:
		return nil, fmt.Errorf("%w: unsupported key type %T", ErrBadSignature, key)
	}
	payload, err := t.parsed.Verify(key)
	if err != nil {
		return nil, ErrBadSignature
	}
	return payload, nil
}

// registered holds the standard claims of a verified payload.
type registered struct {
	sub      spiffeid.ID
	aud      []string
	exp      time.Time
	nbf, iat time.Time // zero when absent
}

// decodePayload decodes the payload of a token whose signature verified,
// returning all its claims and the registered ones checked and typed.
func decodePayload(payload []byte) (map[string]any, registered, error) {
	all, err := decodeJSONObject(payload)
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
