package revocation

import "errors"

// Errors Revoked returns under FailClosed. pkg/verify wraps them in
// verify.ErrRevocationUnknown, so a verifier refuses the token (503 in
// httpmw, Unavailable in grpcmw) rather than guessing.
var (
	// ErrNotReady means no complete snapshot has arrived yet.
	ErrNotReady = errors.New("revocation: no snapshot received yet")
	// ErrStale means nothing has arrived on the watch stream for longer than
	// Config.MaxStaleness: revocations made since may be missing.
	ErrStale = errors.New("revocation: watch stream stale")
)
