package grpcmw

import "errors"

// ErrBadAuthorization means the authorization metadata is present but is not
// one "Bearer <token>" value. It is answered like a missing token.
var ErrBadAuthorization = errors.New("grpcmw: authorization metadata is not one bearer token")
