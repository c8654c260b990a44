package boltstore

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
)

// Buckets; doc.go describes their keys and values.
var (
	bucketMeta               = []byte("meta")
	bucketDelegations        = []byte("delegations")
	bucketIDs                = []byte("ids")
	bucketByUser             = []byte("idx_user")
	bucketByAgent            = []byte("idx_agent")
	bucketByState            = []byte("idx_state")
	bucketChildren           = []byte("idx_children")
	bucketChanges            = []byte("changes")
	bucketEvents             = []byte("events")
	bucketEventsByDelegation = []byte("idx_event_delegation")
	bucketEventsByType       = []byte("idx_event_type")
	bucketAgents             = []byte("agents")
	// bucketSigningKeys holds one record, keySigningKeys: the OAuth signing
	// key set (signingkeys.go). Created on Open, so older files gain it.
	bucketSigningKeys = []byte("signing_keys")

	allBuckets = [][]byte{
		bucketMeta, bucketDelegations, bucketIDs, bucketByUser, bucketByAgent, bucketByState,
		bucketChildren, bucketChanges, bucketEvents, bucketEventsByDelegation,
		bucketEventsByType, bucketAgents, bucketSigningKeys,
	}
)

// Keys of the meta bucket.
var (
	keySchema    = []byte("schema")     // uint64: SchemaVersion
	keyRevision  = []byte("revision")   // uint64: the last revision written
	keyCompacted = []byte("compacted")  // uint64: the last revision deleted from changes
	keyAuditSeq  = []byte("audit_seq")  // uint64: the Sequence of the last event
	keyAuditHash = []byte("audit_hash") // [32]byte: the Hash of the last event
	// The base: the last event pruned (PruneEvents). Absent in a store never
	// pruned, which reads as the zero Anchor, so older files need no
	// migration.
	keyAuditBaseSeq  = []byte("audit_base_seq")  // uint64: its Sequence
	keyAuditBaseHash = []byte("audit_base_hash") // [32]byte: its Hash
	// The base whose events and index entries are all deleted; behind the
	// base while a prune's deletion is unfinished. Absent: 0.
	keyAuditSwept = []byte("audit_swept") // uint64
)

// appendFill is the FillPercent of buckets whose keys only grow, overall or
// within each prefix (revisions, sequences): a split page is left full
// instead of half empty, since nothing will be inserted before its last key.
const appendFill = 0.95

// hashLen is the length of the hashed prefix of the user and agent indexes:
// 128 bits, so two users or agents never share a prefix in practice; List
// compares the decoded record anyway.
const hashLen = 16

// Stored states in idx_state.
const (
	stateActive  byte = 'a'
	stateRevoked byte = 'r'
)

// Change kinds in the changes bucket.
const (
	changeCreated byte = 'c'
	changeRevoked byte = 'r'
)

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// readU64 reads a uint64 value; a missing key is 0.
func readU64(v []byte) (uint64, error) {
	switch len(v) {
	case 0:
		return 0, nil
	case 8:
		return binary.BigEndian.Uint64(v), nil
	}
	return 0, fmt.Errorf("store: corrupt counter of %d bytes", len(v))
}

func userPrefix(issuer, subject string) []byte {
	// Neither part may hold a control character, so NUL separates them
	// unambiguously.
	h := sha256.Sum256([]byte(issuer + "\x00" + subject))
	return h[:hashLen]
}

func agentPrefix(agent string) []byte {
	h := sha256.Sum256([]byte(agent))
	return h[:hashLen]
}

// Prefixes of idx_event_delegation. The events of a stored delegation are
// indexed under its seq, so the event of a new delegation goes to the end of
// the index; an event naming a delegation id the store does not hold (a
// refused request, a typo) is indexed under the id itself.
const (
	eventsOfSeq byte = 's' // followed by the delegation's seq
	eventsOfID  byte = 'i' // followed by the id text and a NUL
)

// eventDelegationPrefix is the prefix under which an event naming id is
// indexed now. The NUL ends an id: none holds one (audit.Validate refuses
// control characters), so no id's entries are a prefix of another's.
func eventDelegationPrefix(tx *bolt.Tx, id string) []byte {
	if seq := tx.Bucket(bucketIDs).Get([]byte(id)); seq != nil {
		return join([]byte{eventsOfSeq}, seq)
	}
	return join([]byte{eventsOfID}, []byte(id), []byte{0})
}

// eventDelegationPrefixes are the prefixes under which events naming id
// may be indexed: its seq for events recorded once it was stored, its text
// for any recorded before.
func eventDelegationPrefixes(tx *bolt.Tx, id string) [][]byte {
	byText := join([]byte{eventsOfID}, []byte(id), []byte{0})
	if seq := tx.Bucket(bucketIDs).Get([]byte(id)); seq != nil {
		return [][]byte{join([]byte{eventsOfSeq}, seq), byText}
	}
	return [][]byte{byText}
}

func stateByte(s delegation.State) byte {
	if s == delegation.StateRevoked {
		return stateRevoked
	}
	return stateActive
}

// join concatenates key parts into a fresh slice.
func join(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// eventTypeKey is the one-byte prefix of idx_event_type.
func eventTypeKey(t audit.Type) ([]byte, error) {
	if t < 1 || t > 255 {
		return nil, fmt.Errorf("%w: event type %d out of range", store.ErrInvalidArgument, t)
	}
	return []byte{byte(t)}, nil
}
