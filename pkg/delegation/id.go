package delegation

import (
	"crypto/rand"
	"fmt"
	"io"
)

// IDPrefix starts every delegation id.
const IDPrefix = "dlg_"

// idAlphabet is Crockford's base32 in lower case: no i, l, o or u, so an id
// read aloud or copied by hand is hard to get wrong.
const idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// idChars is the number of base32 characters after the prefix: 26 characters
// carry 130 bits, the 128 random bits left-padded with two zero bits, so the
// first character is always 0-7.
const idChars = 26

// IDLength is the length of a delegation id in bytes.
const IDLength = len(IDPrefix) + idChars

var idDecode = func() [256]int8 {
	var t [256]int8
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(idAlphabet); i++ {
		t[idAlphabet[i]] = int8(i)
	}
	return t
}()

// ID identifies a delegation: "dlg_" followed by 128 random bits in 26
// characters of lower-case Crockford base32. An ID is not a secret: knowing it
// does not let anyone act under the delegation (see the composer's docs).
// The zero ID is "no delegation", e.g. the parent of a root delegation.
type ID struct {
	s string
}

// NewID returns a fresh random ID from crypto/rand.
func NewID() ID {
	id, err := NewIDFrom(rand.Reader)
	if err != nil {
		// crypto/rand.Read never fails on supported platforms (Go 1.24+).
		panic(err)
	}
	return id
}

// NewIDFrom returns an ID made of 16 bytes read from r. Tests pass a
// deterministic reader; production code calls NewID.
func NewIDFrom(r io.Reader) (ID, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return ID{}, fmt.Errorf("delegation: failed to read random bytes: %w", err)
	}
	return idFromBytes(b), nil
}

func idFromBytes(b [16]byte) ID {
	out := make([]byte, IDLength)
	copy(out, IDPrefix)
	// Treat the 16 bytes as a 128-bit big-endian number and emit it 5 bits at
	// a time from the most significant end of a 130-bit field.
	hi := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	lo := uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 |
		uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15])
	for i := idChars - 1; i >= 0; i-- {
		out[len(IDPrefix)+i] = idAlphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return ID{s: string(out)}
}

// ParseID parses the text form of an ID. It accepts only the canonical form
// NewID produces: the prefix, 26 lower-case characters of the alphabet, and a
// first character of 0-7.
func ParseID(s string) (ID, error) {
	switch {
	case s == "":
		return ID{}, fmt.Errorf("%w: empty", ErrInvalidID)
	case len(s) != IDLength:
		return ID{}, fmt.Errorf("%w: length %d, want %d", ErrInvalidID, len(s), IDLength)
	case s[:len(IDPrefix)] != IDPrefix:
		return ID{}, fmt.Errorf("%w: missing %q prefix", ErrInvalidID, IDPrefix)
	}
	for i := len(IDPrefix); i < len(s); i++ {
		v := idDecode[s[i]]
		if v < 0 {
			return ID{}, fmt.Errorf("%w: character %d is not lower-case base32", ErrInvalidID, i)
		}
		if i == len(IDPrefix) && v > 7 {
			return ID{}, fmt.Errorf("%w: value exceeds 128 bits", ErrInvalidID)
		}
	}
	return ID{s: s}, nil
}

// MustParseID is ParseID for constants in tests and examples; it panics on a
// malformed id.
func MustParseID(s string) ID {
	id, err := ParseID(s)
	if err != nil {
		panic(err)
	}
	return id
}

// String returns the text form, or "" for the zero ID.
func (id ID) String() string { return id.s }

// IsZero reports whether id is the zero ID.
func (id ID) IsZero() bool { return id.s == "" }
