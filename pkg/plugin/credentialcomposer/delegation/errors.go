package composer

import "errors"

// Sentinel errors callers branch on. The plugin answers SPIRE with a gRPC
// status whose message is the error's text; errors.Is works on the errors of
// the in-process functions. Every error that concerns one delegation names it
// by id and nothing else: not the other audiences, not the delegation's agent
// or user.
var (
	// ErrNotReady means the replica has not yet received a complete snapshot
	// from agentid-server (just started, server unreachable, or resyncing
	// after OUT_OF_RANGE). Delegated tokens fail closed until it has.
	ErrNotReady = errors.New("composer: delegation replica not ready")
	// ErrStale means nothing has been heard from agentid-server for longer
	// than max_staleness: a revocation could be missing, so delegated tokens
	// fail closed until the watch stream is healthy again.
	ErrStale = errors.New("composer: delegation replica is stale")
	// ErrUnknownDelegation means the replica holds no delegation with the
	// marker's id: never created, expired and forgotten, revoked before this
	// replica's snapshot, or received malformed.
	ErrUnknownDelegation = errors.New("composer: unknown delegation")
	// ErrRevoked means the delegation was revoked (directly or through an
	// ancestor) while this replica watched.
	ErrRevoked = errors.New("composer: delegation is revoked")
	// ErrExpired means the delegation's expiry has passed, or falls within
	// the current second so that no token could end before it.
	ErrExpired = errors.New("composer: delegation is expired")
	// ErrForeignDelegation means the delegation belongs to another agent than
	// the token's sub: an agent may only present its own delegations.
	ErrForeignDelegation = errors.New("composer: delegation belongs to another agent")
	// ErrAuditQueueFull means the queue of issuance records waiting for
	// agentid-server is full. The token is refused rather than issued
	// unaudited.
	ErrAuditQueueFull = errors.New("composer: audit queue full, refusing to issue an unaudited token")
	// ErrInvalidConfig is returned for a plugin_data block that cannot be
	// used; the message names the key.
	ErrInvalidConfig = errors.New("composer: invalid configuration")
)
