// Package audit is agentid's tamper-evident audit log: an append-only chain
// of events in which each event holds the hash of the one before, so that an
// edited, deleted, inserted or reordered event breaks the chain at a sequence
// number anyone can find, offline, from an export.
//
// # Recording
//
// Whoever records something builds an Event, the store validates it and
// seals it inside the same transaction as the change it records, with the
// sequence number and hash of the last event it holds:
//
//	e := audit.Event{Time: now, Type: audit.TypeRevoked, Actor: "local",
//		DelegationID: id, Detail: map[string]string{"reason": "left the team"}}
//	if err := e.Validate(); err != nil { ... }
//	e.Seal(last.Sequence+1, last.Hash) // sets Sequence, PrevHash, Hash
//
// No event holds a token or any other credential (see Event).
//
// # Verifying
//
// Verify walks a chain from sequence 1 and returns the first break as a
// *ChainError:
//
//	err := audit.Verify(audit.ReadJSONL(file))
//	// audit: chain broken at sequence 7: hash mismatch (event edited)
//
// For each event it checks that the event is valid, that its hash is the
// hash of its content (else it was edited), that its sequence number is the
// next one (else events were deleted or reordered), and that its PrevHash is
// the hash of the event before (else one was deleted, inserted or reordered
// before it). A Verifier does the same one event at a time; its VerifyConfig
// can start from an Anchor (the sequence and hash of the event before, to
// verify one page of a listing or the tail of a log) and can require a known
// Head.
//
// What a hash chain cannot show on its own: events cut off the end. A log
// truncated after sequence 8 is a valid chain of 8 events. Keep the anchor of
// the head somewhere else (Verifier.Last after a verification, printed as
// "<sequence>:<hash>" by Anchor.String) and pass it as VerifyConfig.Head
// later: verification then fails at the first missing sequence. For the same
// reason, someone able to rewrite the whole log from some event on can make
// a valid chain; a Head kept outside the log detects that too, as a hash
// that differs at Head's sequence.
//
// # Export
//
// An export is JSON Lines: one event per line, as MarshalJSON writes it, in
// sequence order (WriteJSONL, ReadJSONL):
//
//	{"sequence":1,"time":"2025-01-02T03:04:05.12Z","type":"delegation_created","actor":"user:https://idp.example.com#alice","delegation_id":"dlg_01jd3x0000000000000000000a","agent":"spiffe://example.org/agent/planner","user":"https://idp.example.com#alice","detail":{"intent":"plan Q3 campaign","scopes":"campaigns:read"},"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","hash":"de4c39ce9f73f66ea8f9b923245ce8e363f267c3a3a887fd300499b103de7626"}
//
// Fields: sequence (integer), time (string, see below), type (one of
// delegation_created, sub_delegated, revoked, denied, token_issued,
// agent_synced, audit_pruned), actor, and optional delegation_id, agent, user (strings,
// absent when empty), detail (object of string values, absent when empty),
// prev_hash and hash (64 lower-case hex digits). ReadJSONL refuses a line
// longer than MaxLineLength, unknown or repeated fields, and any time not
// written exactly as below, naming the line.
//
// # Canonical encoding
//
// An event's hash is SHA-256 over its canonical encoding (Canonical), which
// a tool in any language can rebuild from an export line. With u32(n) and
// u64(n) the big-endian 4- and 8-byte encodings of n, and str(s) =
// u32(byte length of s) followed by the UTF-8 bytes of s, the encoding is the
// concatenation of:
//
//  1. the 17 bytes "agentid-audit-v1\n" (0x0a at the end);
//  2. u64(sequence);
//  3. str(time): the instant in UTC formatted as RFC 3339 with "T" and "Z",
//     seconds, and a fraction of up to 9 digits with trailing zeros removed
//     (no fraction at all when it is zero), e.g. "2025-01-02T03:04:05.12Z"
//     (Go's time.RFC3339Nano). The time field of an export line is this
//     string verbatim;
//  4. str(type name), e.g. str("delegation_created");
//  5. str(actor), str(delegation_id), str(agent), str(user), with str("")
//     (four zero bytes) for an absent field;
//  6. u32(number of detail entries), then for each entry in increasing
//     byte-wise order of the keys' UTF-8: str(key), str(value);
//  7. the 32 raw bytes of prev_hash (all zero for sequence 1).
//
// The hash field is not part of it. For the line above the encoding is 311
// bytes and its SHA-256 is the hash shown; testdata/reverify.py is an
// independent re-verifier written from this description alone.
package audit
