package verify

import (
	"fmt"
	"strings"
)

// ParseBearer returns the token of the one "Bearer <token>" value among the
// values of a request's authorization header (HTTP) or metadata (gRPC), so
// every transport reads credentials the same way. No value is ErrNoToken;
// more than one value, another scheme, an empty token or one with blanks
// in it is ErrBadAuthorization. The scheme is case-insensitive (RFC 9110).
// The error never contains the token.
func ParseBearer(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", ErrNoToken
	case 1:
	default:
		return "", fmt.Errorf("%w: %d values", ErrBadAuthorization, len(values))
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return "", fmt.Errorf("%w: not a bearer token", ErrBadAuthorization)
	}
	return token, nil
}
