package httpmw

import "errors"

// ErrBadAuthorization means the Authorization header is present but is not
// one "Bearer <token>" value. It is answered like a missing token (401).
var ErrBadAuthorization = errors.New("httpmw: authorization header is not one bearer token")
