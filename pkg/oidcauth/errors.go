package oidcauth

import (
	"errors"
	"fmt"
)

// Sentinel errors callers branch on.
var (
	// ErrInvalidToken is the one fixed message a caller who sent a user token
	// gets back, whatever was wrong with it. Every error Authenticate returns
	// wraps it (errors.Is), so a server that checks only this sentinel fails
	// closed. Answer with ErrInvalidToken.Error(), never with the error itself:
	// the reason is for the log and the audit trail, not for the caller.
	ErrInvalidToken = errors.New("oidcauth: invalid user token")

	// ErrIssuerUnavailable is additionally wrapped when the token could not be
	// checked because the issuer's discovery document or key set could not be
	// fetched (Reason ReasonIssuerUnavailable). The token may well be valid, so
	// a server answers "unavailable, retry" (gRPC Unavailable) instead of
	// Unauthenticated. Its text is fixed and safe to return to the caller.
	ErrIssuerUnavailable = errors.New("oidcauth: identity provider unavailable")

	// ErrInvalidConfig is returned by New for a configuration it refuses.
	ErrInvalidConfig = errors.New("oidcauth: invalid config")
)

// Reason says why a token was refused, in a form that is safe to log and to
// record in a "denied" audit event: a fixed set of short strings, never any
// part of the token.
type Reason string

// The reasons Authenticate reports, listed in about the order of its checks.
const (
	// ReasonTooLarge: the token is longer than Config.MaxTokenSize; it was
	// refused before any parsing.
	ReasonTooLarge Reason = "too_large"
	// ReasonMalformed: not a compact JWS with a JSON object header and payload,
	// or it uses a critical header extension.
	ReasonMalformed Reason = "malformed"
	// ReasonBadAlgorithm: the "alg" header is not RS256, ES256 or EdDSA
	// ("none" and HMAC included), or does not fit the key its "kid" names.
	ReasonBadAlgorithm Reason = "bad_algorithm"
	// ReasonUnknownIssuer: the unverified "iss" is missing or not on the
	// allow-list. Nothing was fetched for it.
	ReasonUnknownIssuer Reason = "unknown_issuer"
	// ReasonIssuerUnavailable: the issuer's discovery document or key set
	// could not be fetched; see ErrIssuerUnavailable.
	ReasonIssuerUnavailable Reason = "issuer_unavailable"
	// ReasonUnknownKey: no key of the issuer has the token's "kid", even after
	// a key set refresh (or the refresh was rate limited).
	ReasonUnknownKey Reason = "unknown_key"
	// ReasonBadSignature: the signature does not verify.
	ReasonBadSignature Reason = "bad_signature"
	// ReasonBadClaims: a required claim (sub, exp, iat) is missing or a claim
	// has the wrong type or an out-of-bounds value.
	ReasonBadClaims Reason = "bad_claims"
	// ReasonExpired: "exp" is in the past (beyond the allowed clock skew).
	ReasonExpired Reason = "expired"
	// ReasonNotYetValid: "nbf" or "iat" is in the future (beyond the skew).
	ReasonNotYetValid Reason = "not_yet_valid"
	// ReasonWrongAudience: no "aud" value is one the issuer accepts.
	ReasonWrongAudience Reason = "wrong_audience"
	// ReasonEmailNotVerified: the issuer requires a verified email and the
	// token has none.
	ReasonEmailNotVerified Reason = "email_not_verified"
)

// TokenError is the error Authenticate returns. It carries the reason for the
// log and the audit event; its text never contains the token or any part of
// it (not the unverified issuer, not the kid, not a claim value), so it is safe
// to log, but it is still not for the caller: answer ErrInvalidToken.Error()
// (or ErrIssuerUnavailable.Error()).
type TokenError struct {
	// Reason is why the token was refused.
	Reason Reason
	// Issuer is the allow-listed issuer URL the token was checked against, or
	// "" when no issuer was selected (too large, malformed, unknown issuer).
	// It comes from the configuration, never from the token.
	Issuer string
	// Err is the detail: a fixed message of this package, or the fetch error
	// for ReasonIssuerUnavailable. Never a parser error that could echo input.
	Err error
}

// Error returns "oidcauth: invalid user token: <reason>[: issuer <url>]: <detail>".
func (e *TokenError) Error() string {
	s := ErrInvalidToken.Error() + ": " + string(e.Reason)
	if e.Issuer != "" {
		s += ": issuer " + e.Issuer
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap makes errors.Is find ErrInvalidToken, ErrIssuerUnavailable for an
// unavailable issuer, and the detail.
func (e *TokenError) Unwrap() []error {
	errs := []error{ErrInvalidToken}
	if e.Reason == ReasonIssuerUnavailable {
		errs = append(errs, ErrIssuerUnavailable)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// ReasonOf returns the reason of a *TokenError in err's chain, or "" when
// there is none.
func ReasonOf(err error) Reason {
	var te *TokenError
	if errors.As(err, &te) {
		return te.Reason
	}
	return ""
}

func tokenErr(reason Reason, issuer string, format string, args ...any) *TokenError {
	return &TokenError{Reason: reason, Issuer: issuer, Err: fmt.Errorf(format, args...)}
}
