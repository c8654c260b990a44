package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// eventJSON is the JSON form of an event, one line of an export:
//
//	{"sequence":1,"time":"2025-01-02T03:04:05.123Z","type":"delegation_created",
//	 "actor":"user:https://idp.example.com#alice","delegation_id":"dlg_...",
//	 "agent":"spiffe://example.org/agent/a","user":"https://idp.example.com#alice",
//	 "detail":{"scopes":"a b"},"prev_hash":"000...0","hash":"5e8b..."}
type eventJSON struct {
	Sequence     uint64            `json:"sequence"`
	Time         string            `json:"time"`
	Type         string            `json:"type"`
	Actor        string            `json:"actor"`
	DelegationID string            `json:"delegation_id,omitempty"`
	Agent        string            `json:"agent,omitempty"`
	User         string            `json:"user,omitempty"`
	Detail       map[string]string `json:"detail,omitempty"`
	PrevHash     string            `json:"prev_hash"`
	Hash         string            `json:"hash"`
}

// MarshalJSON encodes e as one JSON object with snake_case fields, the time
// in canonical form (UTC, RFC 3339 with nanoseconds, no trailing zeros), the
// type by name and the hashes in lower-case hex. Empty optional fields are
// left out. It refuses an event that fails Validate, since it could not be
// read back. It has a value receiver so that Event and *Event encode alike.
func (e Event) MarshalJSON() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e.appendJSON(make([]byte, 0, e.jsonLength())), nil
}

// UnmarshalJSON decodes the form MarshalJSON writes, strictly, because an
// export is untrusted input: the text must be valid UTF-8; unknown, repeated
// or mistyped fields are refused (a repeated key could show one value to a
// reader and another to a verifier); sequence, time, type, actor, prev_hash
// and hash are required; the time must be in canonical form, so that it
// is byte for byte the string the hash covers; the event must pass
// Validate. Errors wrap ErrMalformedEvent or ErrInvalidEvent. Detail
// decodes to nil when empty. It does not check the hash: that is Verify's job.
func (e *Event) UnmarshalJSON(b []byte) error {
	if !utf8.Valid(b) {
		return malformed("not valid UTF-8")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var out Event
	if err := expectDelim(d, '{'); err != nil {
		return err
	}
	seen := make(map[string]bool, 10)
	for d.More() {
		key, err := stringToken(d, "field name")
		if err != nil {
			return err
		}
		if seen[key] {
			return malformed("field %q repeated", key)
		}
		seen[key] = true
		if err := out.decodeField(d, key); err != nil {
			return err
		}
	}
	if err := expectDelim(d, '}'); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return malformed("data after the object")
	}
	for _, key := range [...]string{"sequence", "time", "type", "actor", "prev_hash", "hash"} {
		if !seen[key] {
			return malformed("field %q missing", key)
		}
	}
	if err := out.Validate(); err != nil {
		return err
	}
	*e = out
	return nil
}

func (e *Event) decodeField(d *json.Decoder, key string) error {
	if key == "sequence" {
		tok, err := d.Token()
		if err != nil {
			return malformed("%v", err)
		}
		n, ok := tok.(json.Number)
		if !ok {
			return malformed("field %q is not a number", key)
		}
		seq, err := strconv.ParseUint(string(n), 10, 64)
		if err != nil {
			return malformed("field %q is not an unsigned 64-bit integer", key)
		}
		e.Sequence = seq
		return nil
	}
	if key == "detail" {
		return e.decodeDetail(d)
	}
	s, err := stringToken(d, "field "+strconv.Quote(key))
	if err != nil {
		return err
	}
	switch key {
	case "time":
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || t.UTC().Format(time.RFC3339Nano) != s {
			return malformed("field %q is not a UTC RFC 3339 time without trailing zeros", key)
		}
		e.Time = t.UTC()
	case "type":
		t, err := ParseType(s)
		if err != nil {
			return malformed("unknown type %q", s)
		}
		e.Type = t
	case "actor":
		e.Actor = s
	case "delegation_id":
		e.DelegationID = s
	case "agent":
		e.Agent = s
	case "user":
		e.User = s
	case "prev_hash", "hash":
		h, err := ParseHash(s)
		if err != nil {
			return malformed("field %q is not 64 lower-case hex digits", key)
		}
		if key == "hash" {
			e.Hash = h
		} else {
			e.PrevHash = h
		}
	default:
		return malformed("unknown field %q", key)
	}
	return nil
}

func (e *Event) decodeDetail(d *json.Decoder) error {
	if err := expectDelim(d, '{'); err != nil {
		return malformed("field \"detail\" is not an object")
	}
	detail := make(map[string]string)
	for d.More() {
		if len(detail) == MaxDetailEntries {
			return invalid("detail has more than %d entries", MaxDetailEntries)
		}
		k, err := stringToken(d, "detail key")
		if err != nil {
			return err
		}
		if _, dup := detail[k]; dup {
			return malformed("detail key %q repeated", k)
		}
		v, err := stringToken(d, "detail value")
		if err != nil {
			return err
		}
		detail[k] = v
	}
	if err := expectDelim(d, '}'); err != nil {
		return err
	}
	if len(detail) > 0 {
		e.Detail = detail
	}
	return nil
}

func expectDelim(d *json.Decoder, want json.Delim) error {
	tok, err := d.Token()
	if err != nil {
		return malformed("%v", jsonErr(err))
	}
	if got, ok := tok.(json.Delim); !ok || got != want {
		return malformed("expected %q", string(want))
	}
	return nil
}

func stringToken(d *json.Decoder, what string) (string, error) {
	tok, err := d.Token()
	if err != nil {
		return "", malformed("%v", jsonErr(err))
	}
	s, ok := tok.(string)
	if !ok {
		return "", malformed("%s is not a string", what)
	}
	return s, nil
}

// jsonErr turns the decoder's errors into text without Go type names.
func jsonErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unexpected end of JSON")
	}
	return err
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformedEvent}, args...)...)
}
