package store

import (
	"context"
	"fmt"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
)

// Revision numbers the changes to delegations, from 1, without gaps. A watch
// client remembers the last revision it applied and resumes after it.
type Revision uint64

// ChangeKind says what a Change did.
type ChangeKind int

const (
	// ChangeUnspecified is the zero value; never stored.
	ChangeUnspecified ChangeKind = iota
	// ChangeCreated means a delegation was created (root or sub-delegation).
	ChangeCreated
	// ChangeRevoked means a delegation was revoked, directly or by cascade.
	ChangeRevoked
)

// Change is one entry of the revision log that feeds WatchDelegations.
type Change struct {
	Revision   Revision
	Kind       ChangeKind
	Delegation *delegation.Delegation // state after the change
}

// Filter selects delegations in List. Zero fields match everything; set
// fields must all match.
type Filter struct {
	UserIssuer, UserSubject string           // both or neither
	Agent                   string           // SPIFFE ID
	State                   delegation.State // StateActive / StateRevoked (stored states only)
}

// Validate reports a filter no delegation could match because it is
// malformed: an issuer without a subject (or the reverse), or a state that is
// never stored (StateExpired: list active ones and compare expiries). The
// error wraps ErrInvalidArgument.
func (f Filter) Validate() error {
	if (f.UserIssuer == "") != (f.UserSubject == "") {
		return fmt.Errorf("%w: filter needs both user issuer and subject, or neither", ErrInvalidArgument)
	}
	switch f.State {
	case delegation.StateUnspecified, delegation.StateActive, delegation.StateRevoked:
		return nil
	case delegation.StateExpired:
		return fmt.Errorf("%w: filter state expired is never stored", ErrInvalidArgument)
	default:
		return fmt.Errorf("%w: filter state %d is unknown", ErrInvalidArgument, int(f.State))
	}
}

// Page asks for one page of a listing. Token is opaque: "" for the first page,
// then the NextToken of the previous page.
type Page struct {
	Size  int // 0: DefaultPageSize; capped at MaxPageSize
	Token string
}

// Paging bounds.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Limit returns the number of items the page holds: DefaultPageSize for 0,
// at most MaxPageSize. A negative size is an error wrapping ErrInvalidArgument.
func (p Page) Limit() (int, error) {
	switch {
	case p.Size < 0:
		return 0, fmt.Errorf("%w: page size %d is negative", ErrInvalidArgument, p.Size)
	case p.Size == 0:
		return DefaultPageSize, nil
	case p.Size > MaxPageSize:
		return MaxPageSize, nil
	}
	return p.Size, nil
}

// Revocation describes a revoke-with-cascade.
type Revocation struct {
	ID     delegation.ID
	At     time.Time // zero: the store's clock
	Reason string    // at most delegation.MaxReasonLength bytes
	// Event is the audit event recorded in the same transaction for ID. The
	// store records one event per revoked delegation: Event itself for ID,
	// with Detail[DetailCascadeCount] set to the number of descendants
	// revoked with it, and for each descendant a copy of Event naming the
	// descendant (DelegationID, Agent, User) with Detail[DetailCascadeOf] set
	// to ID. (Detail is bounded by audit.MaxDetailSize, so a list of
	// thousands of ids cannot go into one event.)
	Event audit.Event
}

// Detail keys the store adds to revocation events.
const (
	// DetailCascadeCount is set on the event of the revoked delegation: how
	// many of its descendants were revoked with it, in decimal.
	DetailCascadeCount = "cascade_count"
	// DetailCascadeOf is set on the event of each descendant revoked by
	// cascade: the id of the delegation whose revocation caused it.
	DetailCascadeOf = "cascade_of"
)

// Detail keys the store sets on the TypeAuditPruned event of PruneEvents.
const (
	// DetailThroughSequence is the sequence of the last event pruned, in
	// decimal: the remaining log starts after it.
	DetailThroughSequence = "through_sequence"
	// DetailThroughHash is that event's hash in lower-case hex.
	DetailThroughHash = "through_hash"
)

// EventFilter selects audit events. Zero fields match everything; set
// fields must all match.
type EventFilter struct {
	DelegationID string     // events whose DelegationID is exactly this
	Type         audit.Type // a valid type, or TypeUnspecified for all
	AfterSeq     uint64     // events with a Sequence above this
}

// Agent is the registry record of a declared agent and its SPIRE sync state.
// agentid-server writes it (pkg/server: the declaration at start-up, the
// reconciler's state changes) and AgentService reads it, so every server on
// one store answers alike.
type Agent struct {
	Name       string
	SPIFFEID   string
	EntryID    string
	SyncState  string // "pending", "synced", "error"
	LastSynced time.Time
	LastError  string
	// Spec is the declared agent as the server's config gave it, encoded by
	// the server (agent.Marshal); the store keeps it opaque.
	Spec []byte
}

// Store keeps delegations, the revision log, the audit log and the agent
// registry. Every method that changes delegations also appends its audit
// event and its changes in the same transaction: either all of it is durable
// when the method returns nil, or none of it is. A refused call (an error
// wrapping a sentinel of errors.go) writes nothing. All methods are safe for
// concurrent use; after Close they return ErrClosed.
//
// The store seals every audit event it appends (Sequence, PrevHash, Hash)
// and fills a zero event Time from its clock; the event must otherwise pass
// audit.Event.Validate (ErrInvalidArgument).
type Store interface {
	// CreateDelegation stores a new delegation (root or child) with its audit
	// event. d must validate and be active (ErrInvalidArgument);
	// ErrAlreadyExists for a stored id. A child's parent must exist
	// (ErrNotFound) and be active at d.CreatedAt in the same transaction
	// (ErrParentInactive otherwise), so a revoke racing a sub-delegation can
	// never leave an active child under a revoked parent; d.Root must be the
	// parent's root. The event's DelegationID, Agent and User are filled from
	// d when empty and must match d when set. Returns the revision of the
	// change.
	CreateDelegation(ctx context.Context, d *delegation.Delegation, ev audit.Event) (Revision, error)
	// GetDelegation returns ErrNotFound for an unknown id.
	GetDelegation(ctx context.Context, id delegation.ID) (*delegation.Delegation, error)
	// ListDelegations returns one page, in creation order (oldest first), and
	// the next page's token ("" at the end). A token stays valid while
	// delegations are added: the next page starts after the last one returned.
	ListDelegations(ctx context.Context, f Filter, p Page) ([]*delegation.Delegation, string, error)
	// Children returns the direct children of id, in creation order; none
	// for an unknown id.
	Children(ctx context.Context, id delegation.ID) ([]*delegation.Delegation, error)
	// RevokeDelegation revokes the delegation and all its active descendants
	// in one transaction and returns the ids it revoked (the root first) and
	// the revision of the last change (one change per revoked delegation).
	// ErrNotFound for an unknown id, ErrAlreadyRevoked when it was revoked
	// before. See Revocation for the audit events it records.
	RevokeDelegation(ctx context.Context, r Revocation) ([]delegation.ID, Revision, error)
	// PurgeExpired deletes, in one transaction, up to limit delegations
	// (active or revoked) whose ExpiresAt is before before, with every index
	// entry, and returns how many it deleted. It keeps a delegation that a
	// retained change still names (Changes must return every change in the
	// log) and one with a stored child (a child never outlives its parent,
	// but the store does not trust that): those are purged by a later call,
	// once the log has moved past them and their children are gone. Call it
	// again while it returns limit; 0 means nothing can be purged now. The audit events of a purged delegation stay, and
	// ListEvents still finds them by its id; nothing is appended to the audit
	// log and no revision is added (expiry is not a change watchers are sent).
	// A purged id is unknown afterwards (ErrNotFound). limit must be
	// positive and before not zero (ErrInvalidArgument).
	PurgeExpired(ctx context.Context, before time.Time, limit int) (int, error)

	// Snapshot returns every stored delegation in state active (expired ones
	// included: callers compare with their clock) and the revision it reflects.
	Snapshot(ctx context.Context) ([]*delegation.Delegation, Revision, error)
	// Revision returns the revision of the last change, without reading any
	// delegation: where a watcher that needs no snapshot of active
	// delegations (a verifier's deny list) starts.
	Revision(ctx context.Context) (Revision, error)
	// Changes returns up to limit changes after since, oldest first (limit
	// <= 0 or above MaxPageSize means MaxPageSize); an empty slice when since
	// is the current revision. ErrCompacted when since is older than the
	// retained log, ErrFutureRevision when it is newer than the store: in
	// both cases take a Snapshot. A Created change carries the delegation as
	// it was created (active), a Revoked change the revoked record.
	Changes(ctx context.Context, since Revision, limit int) ([]Change, error)
	// Notify returns a channel that receives (coalesced: a buffer of one)
	// after each committed change to delegations, and a function that stops
	// and closes it. Close closes every such channel.
	Notify() (<-chan struct{}, func())

	// AppendEvents appends audit events that record no delegation change
	// (denied, token issued, agent synced), sealing each into the chain, all
	// or none: one invalid event (ErrInvalidArgument) and none is written.
	// TypeAuditPruned is refused (ErrInvalidArgument): only PruneEvents
	// records a prune, with the base it moves.
	AppendEvents(ctx context.Context, evs ...audit.Event) error
	// ListEvents returns one page of events in sequence order and the next
	// page's token ("" at the end). The events are sealed: a page verifies
	// as a chain from the last event of the page before (audit.VerifyWith).
	ListEvents(ctx context.Context, f EventFilter, p Page) ([]audit.Event, string, error)
	// AuditHead returns the sequence and hash of the last event appended (the
	// zero Anchor for an empty log). An export that records it lets a later
	// `agentid audit verify -head` detect a truncated tail, and ExportEvents
	// stops at it.
	AuditHead(ctx context.Context) (audit.Anchor, error)
	// PruneEvents deletes the audit events up to and including through, with
	// their index entries, and returns how many events the log lost
	// (through.Sequence minus the previous AuditBase's). The caller proves it
	// holds that part of the chain (a verified archive ending at through): the
	// stored event at through.Sequence must have exactly through.Hash, else
	// ErrAnchorMismatch, which is also returned when the log was already
	// pruned through that sequence or past it. A zero sequence, or one beyond
	// the head, wraps ErrInvalidArgument. Nothing is written when it refuses.
	//
	// ev is the TypeAuditPruned event that records the prune (its Actor, and
	// a Time, zero for the store's clock); the store sets
	// Detail[DetailThroughSequence] and Detail[DetailThroughHash] and appends
	// it in the same transaction that moves the base to through, so the
	// remaining log, which starts after through, holds the record of its own
	// pruning. Events and index entries at or below the base are invisible to
	// every reader from that commit on, however far their deletion got.
	PruneEvents(ctx context.Context, through audit.Anchor, ev audit.Event) (int, error)
	// AuditBase returns the anchor the stored log starts after: the through
	// anchor of the last PruneEvents, the zero Anchor when the log was never
	// pruned. The remaining events verify with audit.VerifyConfig{From: base}.
	AuditBase(ctx context.Context) (audit.Anchor, error)

	// PutAgent creates or replaces the registry record of an agent by name.
	PutAgent(ctx context.Context, a Agent) error
	// GetAgent returns ErrNotFound for an unknown name.
	GetAgent(ctx context.Context, name string) (Agent, error)
	// ListAgents returns all agent records, ordered by name.
	ListAgents(ctx context.Context) ([]Agent, error)
	// DeleteAgent removes an agent record; deleting an unknown name is not an error.
	DeleteAgent(ctx context.Context, name string) error

	// Close waits for the write in progress and releases the store; calling
	// it again is a no-op.
	Close() error
}
