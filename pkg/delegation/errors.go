package delegation

import "errors"

// Sentinel errors callers branch on. Errors returned by this package wrap one
// of these (errors.Is) and add the offending field.
var (
	// ErrInvalidID is returned for a malformed delegation id.
	ErrInvalidID = errors.New("delegation: invalid delegation id")
	// ErrInvalidScope is returned for a malformed scope or scope set.
	ErrInvalidScope = errors.New("delegation: invalid scope")
	// ErrInvalidUser is returned for a malformed user identity.
	ErrInvalidUser = errors.New("delegation: invalid user")
	// ErrInvalidIntent is returned for an intent that is too long or not text.
	ErrInvalidIntent = errors.New("delegation: invalid intent")
	// ErrInvalidDelegation is returned when the fields of a delegation do not
	// fit together (missing agent, expiry before creation, bad chain...).
	ErrInvalidDelegation = errors.New("delegation: invalid delegation")
	// ErrScopeWidening is returned when a child asks for a scope its parent
	// does not hold.
	ErrScopeWidening = errors.New("delegation: scopes exceed parent's")
	// ErrExpiryExceedsParent is returned when a child would outlive its parent.
	ErrExpiryExceedsParent = errors.New("delegation: expiry exceeds parent's")
	// ErrDepthExceeded is returned when a child would be deeper than allowed.
	ErrDepthExceeded = errors.New("delegation: maximum depth exceeded")
	// ErrAgentInChain is returned when a sub-delegation would give authority
	// back to an agent already in the chain (A → B → A).
	ErrAgentInChain = errors.New("delegation: agent already in the chain")
	// ErrParentInactive is returned when the parent is revoked or expired.
	ErrParentInactive = errors.New("delegation: parent is not active")
)
