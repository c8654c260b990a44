package verify

import (
	"errors"

	"github.com/agentid/agentid/pkg/claims"
)

// Errors returned by Verify and the Require… checks. Each error returned
// wraps exactly one of them (errors.Is) and adds detail; none ever contains
// the token. Transports map them through ClassOf.
var (
	// ErrNoToken means the request carried no bearer token.
	ErrNoToken = errors.New("verify: no token")
	// ErrBadAuthorization means the authorization header or metadata is
	// present but is not one "Bearer <token>" value (ParseBearer).
	ErrBadAuthorization = errors.New("verify: authorization is not one bearer token")
	// ErrNoPeer means the connection has no verified X509-SVID to bind the
	// token to (plain TLS, no client certificate, or no SPIFFE ID in it).
	ErrNoPeer = errors.New("verify: no peer SPIFFE ID")
	// ErrTokenTooLarge means the token is longer than MaxTokenSize. It is
	// refused before any decoding.
	ErrTokenTooLarge = errors.New("verify: token too large")
	// ErrMalformedToken means the token is not a well-formed JWS compact
	// serialization of a JWT-SVID (segments, base64, JSON, required claims).
	ErrMalformedToken = errors.New("verify: malformed token")
	// ErrUnsupportedAlgorithm means the header names an algorithm outside
	// the asymmetric ones JWT-SVIDs use ("none" and HMAC included).
	ErrUnsupportedAlgorithm = errors.New("verify: unsupported signing algorithm")
	// ErrUnknownKey means no accepted trust domain's JWT bundle holds the
	// token's key id.
	ErrUnknownKey = errors.New("verify: unknown signing key")
	// ErrBadSignature means the signature does not verify under the key the
	// token names.
	ErrBadSignature = errors.New("verify: bad signature")
	// ErrTrustDomain means the token's subject is not in the trust domain of
	// the key that signed it, or not in an accepted trust domain.
	ErrTrustDomain = errors.New("verify: trust domain not accepted")
	// ErrExpired means the token, or the delegation it was issued under, has
	// expired.
	ErrExpired = errors.New("verify: token expired")
	// ErrNotYetValid means the token's nbf or iat lies in the future, beyond
	// the clock skew.
	ErrNotYetValid = errors.New("verify: token not yet valid")
	// ErrAudience means none of the token's audiences is accepted.
	ErrAudience = errors.New("verify: audience not accepted")
	// ErrPeerMismatch means the token's sub is not the mTLS peer's SPIFFE ID:
	// the token was stolen or is being relayed by another workload.
	ErrPeerMismatch = errors.New("verify: token subject is not the peer")
	// ErrNoDelegation means the token is a plain JWT-SVID without
	// delegation claims and the Verifier does not accept those. It is
	// claims.ErrNoDelegation, so either name matches.
	ErrNoDelegation = claims.ErrNoDelegation
	// ErrMalformedClaims means the delegation claims are present but not
	// well formed, the chain not ending with sub included. It is
	// claims.ErrMalformed, so either name matches.
	ErrMalformedClaims = claims.ErrMalformed
	// ErrRevoked means the token's delegation, or the root of its chain, has
	// been revoked.
	ErrRevoked = errors.New("verify: delegation revoked")
	// ErrRevocationUnknown means the revocation checker could not answer
	// (e.g. its watch stream has been down longer than its bound). The
	// token is refused: revocation fails closed.
	ErrRevocationUnknown = errors.New("verify: revocation status unknown")

	// ErrInsufficientScope means the principal lacks a required scope.
	ErrInsufficientScope = errors.New("verify: insufficient scope")
	// ErrAgentNotAllowed means the calling agent is not one a requirement
	// allows.
	ErrAgentNotAllowed = errors.New("verify: agent not allowed")
	// ErrUserNotAllowed means the delegating user is not one a requirement
	// allows, or the token has no user at all.
	ErrUserNotAllowed = errors.New("verify: user not allowed")
)

// Class is the kind of answer a transport gives for an error: HTTP 401, 403
// or 503; gRPC Unauthenticated, PermissionDenied or Unavailable.
type Class int

const (
	// ClassUnauthenticated means the caller's identity could not be established
	// (no token, bad token, token not the peer's, revoked). The zero value,
	// and the class of any error this package does not know.
	ClassUnauthenticated Class = iota
	// ClassForbidden means the identity is established but a requirement failed.
	ClassForbidden
	// ClassUnavailable means the verifier cannot decide now (revocation status
	// unknown); the caller may retry.
	ClassUnavailable
)

// ClassOf returns the class of err. Unknown errors are ClassUnauthenticated:
// an adapter never lets a request through on an error it does not recognise.
func ClassOf(err error) Class {
	switch {
	case errors.Is(err, ErrInsufficientScope), errors.Is(err, ErrAgentNotAllowed), errors.Is(err, ErrUserNotAllowed):
		return ClassForbidden
	case errors.Is(err, ErrRevocationUnknown):
		return ClassUnavailable
	default:
		return ClassUnauthenticated
	}
}
