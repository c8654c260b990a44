package store

import "errors"

// Sentinel errors of every Store. Backends wrap them (errors.Is) with the
// offending id or value; callers branch on them, e.g. the server maps
// ErrNotFound to codes.NotFound and ErrCompacted to "send a snapshot".
var (
	// ErrNotFound is returned for an unknown delegation id or agent name.
	ErrNotFound = errors.New("store: not found")
	// ErrAlreadyExists is returned by CreateDelegation for an id that is
	// already stored. Nothing is written: no delegation, no audit event, no
	// revision.
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrAlreadyRevoked is returned by RevokeDelegation for a delegation that
	// was revoked before, directly or by cascade.
	ErrAlreadyRevoked = errors.New("store: already revoked")
	// ErrParentInactive is returned by CreateDelegation when the parent of a
	// sub-delegation is revoked, or expired at the child's CreatedAt, at the
	// moment of the write. It is how a revoke racing a sub-delegation ends:
	// the child is refused, never left active under a revoked parent.
	ErrParentInactive = errors.New("store: parent delegation is not active")
	// ErrCompacted is returned by Changes when the revision asked for is older
	// than the retained revision log: the caller must take a Snapshot and
	// resume from the revision it returns.
	ErrCompacted = errors.New("store: revision compacted")
	// ErrFutureRevision is returned by Changes for a revision the store has
	// not reached: the caller's state comes from another store (restored
	// from a backup, or replaced) and must be rebuilt from a Snapshot.
	ErrFutureRevision = errors.New("store: revision is ahead of the store")
	// ErrAnchorMismatch is returned by PruneEvents when the anchor it is
	// given is not a point of the stored log: the event at that sequence has
	// another hash (the caller's archive is not this log's), or the log was
	// already pruned through that sequence or past it. Nothing is written.
	ErrAnchorMismatch = errors.New("store: anchor does not match the audit log")
	// ErrInvalidArgument is returned for a malformed argument: a filter with
	// an issuer but no subject, a negative page size, a page token the store
	// did not issue, a delegation that does not validate, an empty agent name.
	// Nothing is written.
	ErrInvalidArgument = errors.New("store: invalid argument")
	// ErrNewerSchema is returned by a backend's Open when the data was
	// written by a newer version of agentid. The store refuses to touch it
	// rather than misread it; run the newer version or restore a backup.
	ErrNewerSchema = errors.New("store: data has a newer schema version")
	// ErrUnavailable is returned by a backend that cannot reach its database
	// (a PostgreSQL server that is down, restarting or unreachable). Nothing
	// is known to be written; the caller may retry later. The server answers
	// it with codes.Unavailable.
	ErrUnavailable = errors.New("store: backend unavailable")
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("store: closed")
)
