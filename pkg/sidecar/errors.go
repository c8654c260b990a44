package sidecar

import "errors"

// Errors callers branch on.
var (
	// ErrInvalidConfig is wrapped by every configuration error; the message
	// names the key (and, for a key the file should not have, its line).
	ErrInvalidConfig = errors.New("sidecar: invalid config")

	// ErrNotLoopback means a listen address is neither a unix socket nor a
	// loopback address. The sidecar's API hands out the agent's credentials
	// to whoever can reach it, so it never listens anywhere else.
	ErrNotLoopback = errors.New("sidecar: listen address is not a unix socket or a loopback address")
)
