package audit

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseHash parses 64 lower-case hex digits, the only form String produces.
// Upper case is refused so that a hash has exactly one spelling.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return Hash{}, fmt.Errorf("%w: %d characters, want %d", ErrInvalidHash, len(s), 2*len(h))
	}
	for i := range h {
		hi, ok1 := fromHex(s[2*i])
		lo, ok2 := fromHex(s[2*i+1])
		if !ok1 || !ok2 {
			return Hash{}, fmt.Errorf("%w: not lower-case hex", ErrInvalidHash)
		}
		h[i] = hi<<4 | lo
	}
	return h, nil
}

func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// IsZero reports whether h is all zero bytes, the PrevHash of the first event.
func (h Hash) IsZero() bool { return h == Hash{} }

// Anchor is a point in the chain: an event's sequence number and hash. It is
// all a verifier needs to check a continuation of the log (Verifier's From)
// or that a log still reaches an event it saw before (Verifier's Head), so an
// operator can keep anchors outside the store (a ticket, a printout, another
// system's log) and later prove the log was neither rewritten nor truncated
// up to them. The zero Anchor is the start of the log: the event before the
// first, with sequence 0 and a zero hash.
type Anchor struct {
	// Sequence is the event's sequence number.
	Sequence uint64
	// Hash is the event's hash.
	Hash Hash
}

// Anchor returns the event's position in the chain.
func (e *Event) Anchor() Anchor { return Anchor{Sequence: e.Sequence, Hash: e.Hash} }

// IsZero reports whether a is the start of the log.
func (a Anchor) IsZero() bool { return a == Anchor{} }

// String returns "<sequence>:<hash>", e.g. "42:9f86d0...". ParseAnchor reads it back.
func (a Anchor) String() string { return strconv.FormatUint(a.Sequence, 10) + ":" + a.Hash.String() }

// ParseAnchor parses the form String returns, as typed on a command line.
func ParseAnchor(s string) (Anchor, error) {
	seqText, hashText, ok := strings.Cut(s, ":")
	if !ok {
		return Anchor{}, fmt.Errorf("%w: want <sequence>:<hash>", ErrInvalidAnchor)
	}
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil || seqText != strconv.FormatUint(seq, 10) {
		return Anchor{}, fmt.Errorf("%w: sequence %q is not a decimal number", ErrInvalidAnchor, seqText)
	}
	h, err := ParseHash(hashText)
	if err != nil {
		return Anchor{}, fmt.Errorf("%w: %w", ErrInvalidAnchor, err)
	}
	return Anchor{Sequence: seq, Hash: h}, nil
}
