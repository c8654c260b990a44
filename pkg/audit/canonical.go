package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"
	"time"
)

// canonicalMagic starts every canonical encoding. It names the format and
// its version, so that a hash of an audit event can never be mistaken for
// the hash of anything else, and a future encoding can change it.
const canonicalMagic = "agentid-audit-v1\n"

// Canonical returns the bytes an event's Hash is the SHA-256 of: every field
// except Hash, in a fixed order, each string prefixed by its length. doc.go
// specifies the format byte by byte so that tools in other languages can
// re-verify an export; it is part of the log format and never changes
// without a new magic.
//
// Time is encoded as its UTC instant in RFC 3339 with nanoseconds and no
// trailing zeros (Go's time.RFC3339Nano), so the location and monotonic
// reading of the time.Time do not matter. Detail is encoded sorted by key;
// nil and empty Detail encode the same. Canonical does not validate: call
// Validate first (Seal's callers do; Verify does).
func Canonical(e *Event) []byte {
	var tsBuf [len(time.RFC3339Nano) + 8]byte // fits years 0..9999; appends past it otherwise
	ts := e.Time.UTC().AppendFormat(tsBuf[:0], time.RFC3339Nano)
	typ := e.Type.String()
	n := len(canonicalMagic) + 8 + 4*7 + len(ts) + len(typ) + len(e.Actor) +
		len(e.DelegationID) + len(e.Agent) + len(e.User) + len(e.PrevHash)
	for k, v := range e.Detail {
		n += 8 + len(k) + len(v)
	}
	b := make([]byte, 0, n)
	b = append(b, canonicalMagic...)
	b = binary.BigEndian.AppendUint64(b, e.Sequence)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ts))) //nolint:gosec // an RFC 3339 timestamp, some 30 bytes
	b = append(b, ts...)
	b = appendString(b, typ)
	b = appendString(b, e.Actor)
	b = appendString(b, e.DelegationID)
	b = appendString(b, e.Agent)
	b = appendString(b, e.User)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Detail))) //nolint:gosec // at most MaxDetailEntries entries
	for _, k := range slices.Sorted(maps.Keys(e.Detail)) {
		b = appendString(b, k)
		b = appendString(b, e.Detail[k])
	}
	b = append(b, e.PrevHash[:]...)
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s))) //nolint:gosec // every string of an event is bounded by its Max…Length (a stored or read event is validated first; a line is at most MaxLineLength)
	return append(b, s...)
}

// ComputeHash returns the SHA-256 of Canonical(e): what e.Hash must be.
func (e *Event) ComputeHash() Hash { return sha256.Sum256(Canonical(e)) }

// Seal makes e the event with sequence number seq following the event whose
// hash is prev (the zero Hash for the first event, seq 1): it sets Sequence,
// PrevHash and Hash. The store calls it inside the transaction that appends
// e, after Validate, with the sequence and hash of the last event it holds.
//
// Seal also normalises e so that it equals its own JSON round trip: Time
// becomes UTC without a monotonic reading and an empty Detail becomes nil.
// Neither changes the hash.
func (e *Event) Seal(seq uint64, prev Hash) {
	e.Time = e.Time.UTC().Round(0)
	if len(e.Detail) == 0 {
		e.Detail = nil
	}
	e.Sequence = seq
	e.PrevHash = prev
	e.Hash = e.ComputeHash()
}
