package audit

import (
	"fmt"
	"unicode/utf8"
)

// Bounds on an event. They keep one event, and so one line of an export,
// small (any valid event encodes to less than MaxLineLength bytes of JSON), and
// they are checked again by Verify, so they are part of the log format.
const (
	// MaxIdentityLength bounds Actor, DelegationID, Agent and User in bytes:
	// the longest SPIFFE ID the SPIFFE spec allows.
	MaxIdentityLength = 2048
	// MaxDetailEntries bounds the number of Detail entries.
	MaxDetailEntries = 32
	// MaxDetailKeyLength bounds a Detail key in bytes.
	MaxDetailKeyLength = 64
	// MaxDetailValueLength bounds a Detail value in bytes.
	MaxDetailValueLength = 4096
	// MaxDetailSize bounds the sum of the lengths of all Detail keys and values.
	MaxDetailSize = 16384
)

// Validate checks that e may be recorded: a valid Type, a non-zero Time
// within years 1..9999 (what RFC 3339 can write), a non-empty Actor, and
// every string valid UTF-8 within its bound. Actor, DelegationID, Agent,
// User and Detail keys must not hold control characters; Detail values may
// (a reason can span lines). Errors wrap ErrInvalidEvent and name the field.
//
// Validate does not look at Sequence, PrevHash or Hash: the store calls it
// before Seal sets them. It cannot tell a token from other text either;
// keeping tokens out of Detail is the caller's duty (see Event).
func (e *Event) Validate() error {
	switch {
	case e.Type == TypeUnspecified:
		return invalid("type is unspecified")
	case !e.Type.Valid():
		return invalid("type %d is unknown", int(e.Type))
	case e.Time.IsZero():
		return invalid("time is zero")
	case e.Time.Year() < 1 || e.Time.Year() > 9999:
		return invalid("time %s is outside years 1..9999", e.Time.UTC().Format("2006-01-02"))
	case e.Actor == "":
		return invalid("actor is empty")
	}
	for _, f := range [...]struct{ name, value string }{
		{"actor", e.Actor}, {"delegation_id", e.DelegationID}, {"agent", e.Agent}, {"user", e.User},
	} {
		if err := checkString(f.name, f.value, MaxIdentityLength, false); err != nil {
			return err
		}
	}
	if len(e.Detail) > MaxDetailEntries {
		return invalid("detail has %d entries, at most %d", len(e.Detail), MaxDetailEntries)
	}
	size := 0
	for k, v := range e.Detail {
		if k == "" {
			return invalid("detail key is empty")
		}
		if err := checkString("detail key", k, MaxDetailKeyLength, false); err != nil {
			return err
		}
		if err := checkValue(k, v); err != nil {
			return err
		}
		size += len(k) + len(v)
	}
	if size > MaxDetailSize {
		return invalid("detail is %d bytes, at most %d", size, MaxDetailSize)
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidEvent}, args...)...)
}

// checkValue checks the detail value v of key k. The field name
// "detail[k]" is built only for an error: building it for every entry cost
// each audited event an allocation.
func checkValue(k, v string) error {
	if len(v) <= MaxDetailValueLength && utf8.ValidString(v) {
		return nil
	}
	return checkString("detail["+k+"]", v, MaxDetailValueLength, true)
}

func checkString(field, s string, max int, controlOK bool) error {
	switch {
	case len(s) > max:
		return invalid("%s is %d bytes, at most %d", field, len(s), max)
	case !utf8.ValidString(s):
		return invalid("%s is not valid UTF-8", field)
	}
	if !controlOK {
		for _, r := range s {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
				return invalid("%s holds a control character", field)
			}
		}
	}
	return nil
}
