package extauthz

import "errors"

// Errors a denial wraps besides pkg/verify's.
var (
	// ErrNoRule means no rule's match selected the request: denied (403).
	ErrNoRule = errors.New("extauthz: no rule matches the request")
	// ErrDenied means the matching rule's allow expression was false, or
	// could not be evaluated (denied all the same): 403.
	ErrDenied = errors.New("extauthz: denied by rule")
	// ErrBadRequest means the CheckRequest lacks what Envoy always sends
	// (HTTP attributes), or its authorization header is not one bearer
	// token: 401.
	ErrBadRequest = errors.New("extauthz: malformed check request")
	// ErrBadPath means the request path has no one normal spelling
	// (NormalizePath says which paths): 400, before any rule runs.
	ErrBadPath = errors.New("extauthz: request path cannot be normalised")
)
