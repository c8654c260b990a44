// Package pagetoken makes and parses the page tokens of store listings
// (store.Page), one format for every backend, so that a token means the
// same thing whichever store issued it.
//
// Page tokens are opaque to callers but come back from them, so they are
// parsed strictly: a kind byte, the number of the last item returned (a
// delegation's seq, an event's sequence), and a tag of the filter the page
// was listed with, in unpadded URL-safe base64. A token used with another
// filter is refused rather than starting that listing at a position that
// means nothing in it (AIP-158).
package pagetoken

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/agentid/agentid/pkg/store"
)

// encoding is strict so that each token has exactly one text form.
var encoding = base64.RawURLEncoding.Strict()

// Kinds of listing.
const (
	Delegations byte = 'd' // followed by a delegation's 8-byte seq
	Events      byte = 'e' // followed by an event's 8-byte sequence
	// length: kind, 8-byte number, 4-byte filter tag.
	length = 1 + 8 + 4
)

// Tag condenses the filter fields of a listing, each length-prefixed so
// that no two filters run together the same way.
func Tag(fields ...string) [4]byte {
	h := sha256.New()
	for _, f := range fields {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(f))) //nolint:gosec // page token fields are ids and cursors of a few dozen bytes
		h.Write(n[:])
		h.Write([]byte(f))
	}
	var tag [4]byte
	copy(tag[:], h.Sum(nil))
	return tag
}

// DelegationsTag is the tag of a ListDelegations filter.
func DelegationsTag(f store.Filter) [4]byte {
	return Tag(f.UserIssuer, f.UserSubject, f.Agent, strconv.Itoa(int(f.State)))
}

// EventsTag is the tag of a ListEvents filter. AfterSeq is not part of it:
// it only moves the start, and a token already starts past it.
func EventsTag(f store.EventFilter) [4]byte {
	return Tag(f.DelegationID, strconv.Itoa(int(f.Type)))
}

// Make returns the token of the page after the item numbered last, listed
// with the filter whose tag is tag.
func Make(kind byte, last uint64, tag [4]byte) string {
	b := make([]byte, 0, length)
	b = append(b, kind)
	b = binary.BigEndian.AppendUint64(b, last)
	b = append(b, tag[:]...)
	return encoding.EncodeToString(b)
}

// Parse returns the number after which the page starts; 0 for the first
// page. The token must have been made for the same kind of listing and the
// same filter; errors wrap store.ErrInvalidArgument.
func Parse(kind byte, token string, tag [4]byte) (uint64, error) {
	if token == "" {
		return 0, nil
	}
	b, err := encoding.DecodeString(token)
	// The decoder skips '\r' and '\n' even when strict: re-encoding keeps
	// each token to its one text form.
	if err != nil || len(b) != length || b[0] != kind || encoding.EncodeToString(b) != token {
		return 0, fmt.Errorf("%w: malformed page token", store.ErrInvalidArgument)
	}
	n := binary.BigEndian.Uint64(b[1:9])
	if n == 0 {
		return 0, fmt.Errorf("%w: malformed page token", store.ErrInvalidArgument)
	}
	if [4]byte(b[9:]) != tag {
		return 0, fmt.Errorf("%w: page token was made for another filter", store.ErrInvalidArgument)
	}
	return n, nil
}
