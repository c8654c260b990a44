package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Type says what an event records. The zero value is not a valid type, so a
// record that lost its type is caught by Verify rather than read as something.
type Type int

const (
	// TypeUnspecified is the zero value; never written.
	TypeUnspecified Type = iota
	// TypeDelegationCreated means a user delegated to an agent.
	TypeDelegationCreated
	// TypeSubDelegated means an agent delegated part of its delegation to another agent.
	TypeSubDelegated
	// TypeRevoked means a delegation (and with it its descendants) was revoked.
	TypeRevoked
	// TypeDenied means a request was refused; the reason is in Detail.
	TypeDenied
	// TypeTokenIssued means SPIRE issued a JWT-SVID under a delegation.
	TypeTokenIssued
	// TypeAgentSynced means a declared agent's SPIRE entry was created, updated or deleted.
	TypeAgentSynced
	// TypeAuditPruned means the events up to an archived anchor were deleted from
	// the store; Detail names the anchor the remaining log starts after.
	TypeAuditPruned
)

// Hash is the SHA-256 of an event's canonical encoding.
type Hash [sha256.Size]byte

// String returns the hash in lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Event is one entry of the append-only audit log. Sequence, PrevHash and
// Hash are set by Seal when the event is appended; the rest by whoever records
// it, and checked by Validate.
//
// No field ever holds a user's token, an SVID or any other credential: the
// log is exported, printed and kept for years, and a token in it would be a
// token leaked. Callers must not put one in Detail either (record a token's
// jti or audience, never the token); Validate cannot tell a token from text.
type Event struct {
	// Sequence numbers events from 1 without gaps.
	Sequence uint64
	// Time is when the recorded thing happened.
	Time time.Time
	// Type says what happened.
	Type Type
	// Actor is who did it: a SPIFFE ID, "user:<iss>#<sub>", or "local" for the
	// admin socket.
	Actor string
	// DelegationID is the delegation concerned, if any.
	DelegationID string
	// Agent is the SPIFFE ID of the agent concerned, if any.
	Agent string
	// User is the delegating user as "<iss>#<sub>", if known.
	User string
	// Detail holds what else matters for this type (scopes, reason, ids of
	// revoked descendants, audiences of an issued token...).
	Detail map[string]string
	// PrevHash is the Hash of the event before (all zero for the first).
	PrevHash Hash
	// Hash is the SHA-256 of this event's canonical encoding, PrevHash included.
	Hash Hash
}
