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
	// ChangeCreated: a delegation was created (root or sub-delegation).
	ChangeCreated
	// ChangeRevoked: a delegation was revoked, directly or by cascade.
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
	default:
		return fmt.Errorf("%w: filter state %s is never stored", ErrInvalidArgument, f.State)
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
	At     time.Time
	Reason string
	// Event is the audit event recorded in the same transaction. Its Detail
	// is extended by the store with the ids revoked by cascade.
	Event audit.Event
}

// EventFilter selects audit events. Zero fields match everything.
type EventFilter struct {
	DelegationID string
	Type         audit.Type
	AfterSeq     uint64
}

// Agent is the registry record of a declared agent and its SPIRE sync state.
type Agent struct {
	Name       string
	SPIFFEID   string
	EntryID    string
	SyncState  string // "pending", "synced", "error"
	LastSynced time.Time
	LastError  string
	// Spec is the declared agent as the server's config gave it, encoded by
	// the server; the store keeps it opaque.
	Spec []byte
}

// Store keeps delegations, the revision log, the audit log and the agent
// registry. Every method that changes delegations also appends its audit
// event and its changes in the same transaction: either all of it is durable
// when the method returns nil, or none of it is.
type Store interface {
	// CreateDelegation stores a new delegation (root or child) with its audit
	// event. A child's parent must exist and be active in the same transaction
	// (ErrParentInactive otherwise), so a revoke racing a sub-delegation can
	// never leave an active child under a revoked parent.
	CreateDelegation(ctx context.Context, d *delegation.Delegation, ev audit.Event) (Revision, error)
	// GetDelegation returns ErrNotFound for an unknown id.
	GetDelegation(ctx context.Context, id delegation.ID) (*delegation.Delegation, error)
	// ListDelegations returns one page, ordered by id, and the next page's token ("" at the end).
	ListDelegations(ctx context.Context, f Filter, p Page) ([]*delegation.Delegation, string, error)
	// Children returns the direct children of id.
	Children(ctx context.Context, id delegation.ID) ([]*delegation.Delegation, error)
	// RevokeDelegation revokes the delegation and all its active descendants
	// in one transaction and returns the ids it revoked (the root first).
	// ErrNotFound for an unknown id, ErrAlreadyRevoked when it was revoked before.
	RevokeDelegation(ctx context.Context, r Revocation) ([]delegation.ID, Revision, error)

	// Snapshot returns every stored delegation in state active (expired ones
	// included: callers compare with their clock) and the revision it reflects.
	Snapshot(ctx context.Context) ([]*delegation.Delegation, Revision, error)
	// Changes returns up to limit changes after since, oldest first (limit
	// <= 0 or above MaxPageSize means MaxPageSize); an empty slice when since
	// is the current revision. ErrCompacted when since is older than the
	// retained log, ErrFutureRevision when it is newer than the store: in
	// both cases take a Snapshot. A Created change carries the delegation as
	// it was created (active), a Revoked change the revoked record.
	Changes(ctx context.Context, since Revision, limit int) ([]Change, error)
	// Notify returns a channel that receives (coalesced) after each committed
	// change, and a function to stop receiving.
	Notify() (<-chan struct{}, func())

	// AppendEvents appends audit events that record no delegation change
	// (denied, token issued, agent synced), sealing each into the chain.
	AppendEvents(ctx context.Context, evs ...audit.Event) error
	// ListEvents returns one page of events in sequence order.
	ListEvents(ctx context.Context, f EventFilter, p Page) ([]audit.Event, string, error)

	// PutAgent creates or replaces the registry record of an agent by name.
	PutAgent(ctx context.Context, a Agent) error
	// GetAgent returns ErrNotFound for an unknown name.
	GetAgent(ctx context.Context, name string) (Agent, error)
	// ListAgents returns all agent records, ordered by name.
	ListAgents(ctx context.Context) ([]Agent, error)
	// DeleteAgent removes an agent record; deleting an unknown name is not an error.
	DeleteAgent(ctx context.Context, name string) error

	// Close releases the store.
	Close() error
}
