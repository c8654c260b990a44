package delegation

import (
	"fmt"
	"slices"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// MaxDepthLimit bounds any chain: no rule may allow more agents between a
// user and the last agent than this.
const MaxDepthLimit = 16

// MaxReasonLength bounds a revocation reason in bytes.
const MaxReasonLength = 1024

// State is the stored state of a delegation. The zero value, StateUnspecified,
// is never active: a record that lost its state grants nothing.
type State int

const (
	// StateUnspecified is the zero value; it is not active.
	StateUnspecified State = iota
	// StateActive means the delegation grants its scopes until it expires.
	StateActive
	// StateRevoked marks a delegation revoked by someone allowed to, or through a revoked ancestor.
	StateRevoked
	// StateExpired is never stored; EffectiveState reports it for an active
	// delegation whose expiry has passed.
	StateExpired
)

// String returns the lower-case name of the state.
func (s State) String() string {
	switch s {
	case StateActive:
		return "active"
	case StateRevoked:
		return "revoked"
	case StateExpired:
		return "expired"
	default:
		return "unspecified"
	}
}

// ParseState parses the lower-case name String returns.
func ParseState(s string) (State, error) {
	switch s {
	case "active":
		return StateActive, nil
	case "revoked":
		return StateRevoked, nil
	case "expired":
		return StateExpired, nil
	}
	return StateUnspecified, fmt.Errorf("%w: unknown state %q", ErrInvalidDelegation, s)
}

// Delegation lets Agent act for User with Scopes until ExpiresAt. Build one
// with NewRoot or NewChild, which enforce the invariants; a record read back
// from storage is checked with Validate.
type Delegation struct {
	// ID names the delegation.
	ID ID
	// Parent is the delegation this one was made under; zero for a root.
	Parent ID
	// Root is the first delegation of the chain; equal to ID for a root.
	// Revoking the root revokes the whole tree.
	Root ID
	// Agent is the SPIFFE ID of the agent that may act.
	Agent spiffeid.ID
	// User is the person the agent acts for, the same along the whole chain.
	User User
	// Scopes is the authority granted; never empty, never wider than the parent's.
	Scopes ScopeSet
	// Chain lists the agents from the root's agent to Agent (Chain[len-1] == Agent).
	Chain []spiffeid.ID
	// MaxDepth is the longest chain the root's policy rule allows, inherited
	// by every descendant.
	MaxDepth int
	// Intent is the user's stated purpose, recorded for audit.
	Intent Intent
	// CreatedBy is the SPIFFE ID of the caller that made the delegation; zero
	// when it was made by an admin on the local socket.
	CreatedBy spiffeid.ID
	// CreatedAt is when the delegation was made.
	CreatedAt time.Time
	// ExpiresAt is when it stops granting anything; never after the parent's.
	ExpiresAt time.Time
	// State is the stored state: active or revoked.
	State State
	// RevokedAt is when it was revoked; zero while active.
	RevokedAt time.Time
	// RevokeReason is the reason given when it, or its ancestor, was revoked.
	RevokeReason string
}

// Depth is the number of agents in the chain: 1 for a root delegation.
func (d *Delegation) Depth() int { return len(d.Chain) }

// IsRoot reports whether d was made from the user's own token.
func (d *Delegation) IsRoot() bool { return d.Parent.IsZero() }

// EffectiveState is the state at time now: StateExpired for an active
// delegation whose expiry has passed.
func (d *Delegation) EffectiveState(now time.Time) State {
	if d.State == StateActive && !now.Before(d.ExpiresAt) {
		return StateExpired
	}
	return d.State
}

// ActiveAt reports whether d grants anything at time now.
func (d *Delegation) ActiveAt(now time.Time) bool {
	return d.EffectiveState(now) == StateActive
}

// Clone returns a deep copy, so a caller may change it without touching a
// cached original.
func (d *Delegation) Clone() *Delegation {
	c := *d
	c.Chain = slices.Clone(d.Chain)
	return &c
}

// RootParams are the inputs of a root delegation.
type RootParams struct {
	ID        ID // zero: a fresh random ID
	Agent     spiffeid.ID
	User      User
	Scopes    ScopeSet
	MaxDepth  int
	Intent    Intent
	CreatedBy spiffeid.ID
	CreatedAt time.Time
	ExpiresAt time.Time
}

// NewRoot makes a delegation straight from a user to an agent.
func NewRoot(p RootParams) (*Delegation, error) {
	id := p.ID
	if id.IsZero() {
		id = NewID()
	}
	d := &Delegation{
		ID:        id,
		Root:      id,
		Agent:     p.Agent,
		User:      p.User,
		Scopes:    p.Scopes,
		Chain:     []spiffeid.ID{p.Agent},
		MaxDepth:  p.MaxDepth,
		Intent:    p.Intent,
		CreatedBy: p.CreatedBy,
		CreatedAt: p.CreatedAt,
		ExpiresAt: p.ExpiresAt,
		State:     StateActive,
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// ChildParams are the inputs of a sub-delegation.
type ChildParams struct {
	ID        ID // zero: a fresh random ID
	Agent     spiffeid.ID
	Scopes    ScopeSet
	Intent    Intent
	CreatedBy spiffeid.ID
	CreatedAt time.Time
	ExpiresAt time.Time
}

// NewChild makes a sub-delegation of parent to another agent, for the same
// user. It enforces that authority only narrows: the parent is active at
// CreatedAt, the child's scopes are a subset of the parent's, it expires no
// later than the parent, its chain is the parent's plus the new agent and no
// longer than the root's MaxDepth, and the agent is not already in the chain.
// Who may sub-delegate to whom (the parent agent's declared sub-agents) is
// policy, checked by the server before calling NewChild.
func NewChild(parent *Delegation, p ChildParams) (*Delegation, error) {
	if !parent.ActiveAt(p.CreatedAt) {
		return nil, fmt.Errorf("%w: parent %s is %s", ErrParentInactive, parent.ID, parent.EffectiveState(p.CreatedAt))
	}
	if extra := p.Scopes.Minus(parent.Scopes); !extra.IsEmpty() {
		return nil, fmt.Errorf("%w: %s not held by parent %s", ErrScopeWidening, extra, parent.ID)
	}
	if p.ExpiresAt.After(parent.ExpiresAt) {
		return nil, fmt.Errorf("%w: %s is after parent's %s", ErrExpiryExceedsParent,
			p.ExpiresAt.UTC().Format(time.RFC3339), parent.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if parent.Depth()+1 > parent.MaxDepth {
		return nil, fmt.Errorf("%w: depth %d, at most %d", ErrDepthExceeded, parent.Depth()+1, parent.MaxDepth)
	}
	if slices.Contains(parent.Chain, p.Agent) {
		return nil, fmt.Errorf("%w: %s", ErrAgentInChain, p.Agent)
	}
	id := p.ID
	if id.IsZero() {
		id = NewID()
	}
	d := &Delegation{
		ID:        id,
		Parent:    parent.ID,
		Root:      parent.Root,
		Agent:     p.Agent,
		User:      parent.User,
		Scopes:    p.Scopes,
		Chain:     append(slices.Clone(parent.Chain), p.Agent),
		MaxDepth:  parent.MaxDepth,
		Intent:    p.Intent,
		CreatedBy: p.CreatedBy,
		CreatedAt: p.CreatedAt,
		ExpiresAt: p.ExpiresAt,
		State:     StateActive,
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// Validate checks that the fields of d fit together. NewRoot and NewChild
// call it; a store calls it on every record it reads back.
func (d *Delegation) Validate() error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidDelegation}, args...)...)
	}
	switch {
	case d.ID.IsZero():
		return fail("id is empty")
	case d.Root.IsZero():
		return fail("root is empty")
	case d.Parent.IsZero() != (d.Root == d.ID):
		return fail("root must equal id exactly when there is no parent")
	case d.Agent.IsZero():
		return fail("agent is empty")
	case d.User.IsZero():
		return fail("user is empty")
	case d.Scopes.IsEmpty():
		return fail("scopes are empty")
	case len(d.Chain) == 0 || d.Chain[len(d.Chain)-1] != d.Agent:
		return fail("chain must end with the agent")
	case d.Parent.IsZero() != (len(d.Chain) == 1):
		return fail("a root has a chain of one agent, a child more")
	case d.MaxDepth < 1 || d.MaxDepth > MaxDepthLimit:
		return fail("max depth %d outside 1..%d", d.MaxDepth, MaxDepthLimit)
	case len(d.Chain) > d.MaxDepth:
		return fmt.Errorf("%w: depth %d, at most %d", ErrDepthExceeded, len(d.Chain), d.MaxDepth)
	case d.CreatedAt.IsZero():
		return fail("created_at is empty")
	case !d.ExpiresAt.After(d.CreatedAt):
		return fail("expires_at must be after created_at")
	case d.State != StateActive && d.State != StateRevoked:
		return fail("stored state must be active or revoked, got %s", d.State)
	case d.State == StateRevoked && d.RevokedAt.IsZero():
		return fail("revoked without revoked_at")
	case len(d.RevokeReason) > MaxReasonLength:
		return fail("revoke reason is %d bytes, at most %d", len(d.RevokeReason), MaxReasonLength)
	}
	for i, a := range d.Chain {
		if a.IsZero() {
			return fail("chain[%d] is empty", i)
		}
	}
	return nil
}
