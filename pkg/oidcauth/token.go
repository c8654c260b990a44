package oidcauth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The signature algorithms accepted: those every mainstream OpenID provider
// offers (RS256 is mandatory in OpenID Connect), with no HMAC (a shared
// secret, and the classic key-confusion attack with a public key as secret),
// no "none", no RSA-PSS or larger hashes that nobody asked for.
const (
	algRS256 = "RS256"
	algES256 = "ES256"
	algEdDSA = "EdDSA"
)

// Fixed details for refused tokens. They never include token content.
var (
	errNotCompact      = errors.New("not a compact JWS of three base64url parts")
	errHeaderEncoding  = errors.New("header is not base64url")
	errHeaderJSON      = errors.New("header is not a JSON object")
	errHeaderFields    = errors.New("header alg or kid is not a string")
	errCritical        = errors.New("header has critical extensions")
	errPayloadEncoding = errors.New("payload is not base64url")
	errPayloadJSON     = errors.New("payload is not a JSON object")
	errSignature       = errors.New("signature is empty or not base64url")
	errAlgorithm       = errors.New("algorithm is not RS256, ES256 or EdDSA")
	errNoIssuer        = errors.New("iss is missing or not a string")
	errIssuerNotListed = errors.New("iss is not an allow-listed issuer")
)

// unverified is a token split and decoded but not verified. Only the issuer
// selection may look at it; everything else waits for the signature.
type unverified struct {
	alg     string
	kid     string
	payload []byte
	claims  map[string]json.RawMessage
	iss     string
}

// parseUnverified splits a compact JWS and decodes its header and payload,
// without trusting either. It is strict where go-jose is lenient (no
// whitespace, no JSON serialization), so both parsers see the same token.
func parseUnverified(raw string) (*unverified, Reason, error) {
	for i := 0; i < len(raw); i++ {
		if !isTokenByte(raw[i]) {
			return nil, ReasonMalformed, errNotCompact
		}
	}
	header, rest, ok1 := strings.Cut(raw, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || header == "" || payload == "" || strings.Contains(sig, ".") {
		return nil, ReasonMalformed, errNotCompact
	}

	hb, err := base64.RawURLEncoding.DecodeString(header)
	if err != nil {
		return nil, ReasonMalformed, errHeaderEncoding
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(hb, &h); err != nil || h == nil {
		return nil, ReasonMalformed, errHeaderJSON
	}
	t := &unverified{}
	if !optionalString(h, "alg", &t.alg) || !optionalString(h, "kid", &t.kid) {
		return nil, ReasonMalformed, errHeaderFields
	}
	if _, ok := h["crit"]; ok {
		return nil, ReasonMalformed, errCritical
	}
	// The algorithm is checked before the signature is even looked at, so
	// "none" with an empty signature reads as what it is.
	switch t.alg {
	case algRS256, algES256, algEdDSA:
	default:
		return nil, ReasonBadAlgorithm, errAlgorithm
	}
	if sig == "" {
		return nil, ReasonMalformed, errSignature
	}
	if _, err := base64.RawURLEncoding.DecodeString(sig); err != nil {
		return nil, ReasonMalformed, errSignature
	}

	t.payload, err = base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil, ReasonMalformed, errPayloadEncoding
	}
	if err := json.Unmarshal(t.payload, &t.claims); err != nil || t.claims == nil {
		return nil, ReasonMalformed, errPayloadJSON
	}
	if !optionalString(t.claims, "iss", &t.iss) || t.iss == "" {
		return nil, ReasonUnknownIssuer, errNoIssuer
	}
	return t, "", nil
}

func isTokenByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

// optionalString decodes m[key] into *dst when present; it reports false when
// the value is present but not a JSON string.
func optionalString(m map[string]json.RawMessage, key string, dst *string) bool {
	v, ok := m[key]
	if !ok {
		return true
	}
	return json.Unmarshal(v, dst) == nil && isJSONString(v)
}

func isJSONString(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && v[0] == '"'
}

// verifiedClaims are the claims Authenticate uses, decoded from a payload
// whose signature verified.
type verifiedClaims struct {
	iss, sub      string
	aud           []string
	exp, iat      time.Time
	nbf           time.Time // zero when absent
	email         string
	emailVerified bool
	groups        []string
	nonce         string // "" when absent
}

var (
	errSubject       = errors.New("sub is missing or not a string")
	errAudienceType  = errors.New("aud is not a string or a list of strings")
	errTooManyAud    = errors.New("aud has too many values")
	errExpiry        = errors.New("exp is missing or not a valid NumericDate")
	errIssuedAt      = errors.New("iat is missing or not a valid NumericDate")
	errNotBefore     = errors.New("nbf is not a valid NumericDate")
	errEmailType     = errors.New("email is not a string")
	errVerifiedType  = errors.New("email_verified is not a boolean")
	errGroupsType    = errors.New("groups claim is not a string or a list of strings")
	errTooManyGroups = errors.New("groups claim has too many values")
	errGroupValue    = errors.New("a group is empty, too long or not printable text")
	errNonceType     = errors.New("nonce is not a string")
)

func decodeClaims(m map[string]json.RawMessage, groupsClaim string) (*verifiedClaims, error) {
	c := &verifiedClaims{}
	if !optionalString(m, "iss", &c.iss) {
		return nil, errNoIssuer
	}
	if !optionalString(m, "sub", &c.sub) || c.sub == "" {
		return nil, errSubject
	}
	aud, ok := stringOrList(m["aud"], MaxAudiences)
	if !ok {
		if aud == nil {
			return nil, errAudienceType
		}
		return nil, errTooManyAud
	}
	c.aud = aud
	var err error
	if c.exp, err = numericDate(m, "exp", true); err != nil {
		return nil, errExpiry
	}
	if c.iat, err = numericDate(m, "iat", true); err != nil {
		return nil, errIssuedAt
	}
	if c.nbf, err = numericDate(m, "nbf", false); err != nil {
		return nil, errNotBefore
	}
	if !optionalString(m, "email", &c.email) {
		return nil, errEmailType
	}
	if !optionalString(m, "nonce", &c.nonce) {
		return nil, errNonceType
	}
	if v, ok := m["email_verified"]; ok {
		b, ok := parseBool(v)
		if !ok {
			return nil, errVerifiedType
		}
		c.emailVerified = b
	}
	if v, ok := m[groupsClaim]; ok {
		groups, ok := stringOrList(v, MaxGroups)
		if !ok {
			if groups == nil {
				return nil, errGroupsType
			}
			return nil, errTooManyGroups
		}
		for _, g := range groups {
			if !validGroup(g) {
				return nil, errGroupValue
			}
		}
		if len(groups) > 0 {
			c.groups = groups
		}
	}
	return c, nil
}

// stringOrList decodes a JSON string or list of strings (as "aud" and most
// groups claims are). Absent or null gives an empty list. On failure it
// returns (nil, false) for a wrong type and (non-nil, false) for too many.
func stringOrList(v json.RawMessage, limit int) ([]string, bool) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || bytes.Equal(v, []byte("null")) {
		return []string{}, true
	}
	if v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil, false
		}
		return []string{s}, true
	}
	if v[0] != '[' {
		return nil, false
	}
	var list []string
	if json.Unmarshal(v, &list) != nil {
		return nil, false
	}
	if len(list) > limit {
		return []string{}, false
	}
	return list, true
}

// numericDate decodes an RFC 7519 NumericDate: seconds since the epoch, an
// integer or a decimal fraction, between 1970 and 9999.
func numericDate(m map[string]json.RawMessage, key string, required bool) (time.Time, error) {
	v, ok := m[key]
	if !ok {
		if required {
			return time.Time{}, errExpiry
		}
		return time.Time{}, nil
	}
	v = bytes.TrimSpace(v)
	if len(v) == 0 || !(v[0] == '-' || '0' <= v[0] && v[0] <= '9') {
		return time.Time{}, errExpiry
	}
	f, err := strconv.ParseFloat(string(v), 64)
	const maxSeconds = 253402300799 // 9999-12-31T23:59:59Z
	if err != nil || math.IsNaN(f) || f < 0 || f > maxSeconds {
		return time.Time{}, errExpiry
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// parseBool accepts a JSON boolean, and the strings "true" and "false" that
// some providers (AWS Cognito) send for email_verified.
func parseBool(v json.RawMessage) (bool, bool) {
	switch string(bytes.TrimSpace(v)) {
	case "true", `"true"`:
		return true, true
	case "false", `"false"`:
		return false, true
	}
	return false, false
}

func validGroup(g string) bool {
	if g == "" || len(g) > MaxGroupLength || !utf8.ValidString(g) {
		return false
	}
	for _, r := range g {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
