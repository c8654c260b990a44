package verify

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// This file decodes the JSON payload of a token whose signature has already
// verified. It produces what encoding/json produces for an `any`
// (map[string]any, []any, string, float64, bool, nil) and is held to it by a
// differential fuzz test, but it is stricter, in the ways a security decoder
// should be, and cheaper, because it is on every cold Verify:
//
//   - duplicate member names are an error (encoding/json keeps the last one,
//     other verifiers may keep the first);
//   - invalid UTF-8 and unpaired surrogate escapes are errors (encoding/json
//     silently substitutes U+FFFD);
//   - nesting deeper than maxJSONDepth is an error;
//   - the member names JWT-SVIDs use are not allocated for.

// maxJSONDepth bounds nesting. agentid's claims nest three levels deep.
const maxJSONDepth = 32

var (
	errJSON      = errors.New("invalid JSON")
	errJSONDepth = fmt.Errorf("JSON nested deeper than %d levels", maxJSONDepth)
)

type jsonDecoder struct {
	b     []byte
	i     int
	depth int
}

// decodeJSONObject decodes b, which must hold exactly one JSON object.
func decodeJSONObject(b []byte) (map[string]any, error) {
	d := jsonDecoder{b: b}
	d.space()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return nil, errJSON
	}
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	d.space()
	if d.i != len(d.b) {
		return nil, errJSON
	}
	return v.(map[string]any), nil
}

func (d *jsonDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jsonDecoder) value() (any, error) {
	d.space()
	if d.i >= len(d.b) {
		return nil, errJSON
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		return d.string()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	default:
		return nil, errJSON
	}
}

func (d *jsonDecoder) literal(lit string) error {
	if len(d.b)-d.i < len(lit) || string(d.b[d.i:d.i+len(lit)]) != lit {
		return errJSON
	}
	d.i += len(lit)
	return nil
}

func (d *jsonDecoder) enter() error {
	d.depth++
	if d.depth > maxJSONDepth {
		return errJSONDepth
	}
	d.i++ // the opening bracket
	return nil
}

func (d *jsonDecoder) object() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	m := make(map[string]any, 4)
	d.space()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		d.depth--
		return m, nil
	}
	for {
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return nil, errJSON
		}
		k, err := d.string()
		if err != nil {
			return nil, err
		}
		key := k.(string)
		if _, dup := m[key]; dup {
			return nil, errJSON
		}
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return nil, errJSON
		}
		d.i++
		if m[key], err = d.value(); err != nil {
			return nil, err
		}
		d.space()
		if d.i >= len(d.b) {
			return nil, errJSON
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			d.depth--
			return m, nil
		default:
			return nil, errJSON
		}
	}
}

func (d *jsonDecoder) array() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	a := make([]any, 0, 2)
	d.space()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		d.depth--
		return a, nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		d.space()
		if d.i >= len(d.b) {
			return nil, errJSON
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			d.depth--
			return a, nil
		default:
			return nil, errJSON
		}
	}
}

// string decodes the string starting at the opening quote.
func (d *jsonDecoder) string() (any, error) {
	d.i++
	start := d.i
	ascii := true
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			if !ascii && !utf8.Valid(s) {
				return nil, errJSON
			}
			return intern(s), nil
		case c == '\\':
			return d.escapedString(start)
		case c < 0x20:
			return nil, errJSON
		case c >= 0x80:
			ascii = false
		}
		d.i++
	}
	return nil, errJSON
}

// intern returns the member names and values every JWT-SVID carries without
// allocating; the compiler does not allocate for the conversion in a switch.
func intern(s []byte) string {
	switch string(s) {
	case "sub":
		return "sub"
	case "aud":
		return "aud"
	case "exp":
		return "exp"
	case "iat":
		return "iat"
	case "nbf":
		return "nbf"
	case "iss":
		return "iss"
	case "email":
		return "email"
	case "principal":
		return "principal"
	case "scope":
		return "scope"
	case "delegation":
		return "delegation"
	case "version":
		return "version"
	case "id":
		return "id"
	case "root":
		return "root"
	case "chain":
		return "chain"
	case "expires_at":
		return "expires_at"
	case "1":
		return "1"
	case "alg":
		return "alg"
	case "kid":
		return "kid"
	case "typ":
		return "typ"
	case "JWT":
		return "JWT"
	case "ES256":
		return "ES256"
	}
	return string(s)
}

// escapedString continues a string from start once an escape is seen.
func (d *jsonDecoder) escapedString(start int) (any, error) {
	out := append([]byte(nil), d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if !utf8.Valid(out) {
				return nil, errJSON
			}
			return string(out), nil
		case c < 0x20:
			return nil, errJSON
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			return nil, errJSON
		}
		d.i += 2
		switch e := d.b[d.i-1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return nil, errJSON
			}
			if utf16.IsSurrogate(r) {
				if d.i+1 >= len(d.b) || d.b[d.i] != '\\' || d.b[d.i+1] != 'u' {
					return nil, errJSON
				}
				d.i += 2
				r2, ok := d.hex4()
				if !ok {
					return nil, errJSON
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return nil, errJSON
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, errJSON
		}
	}
	return nil, errJSON
}

func (d *jsonDecoder) hex4() (rune, bool) {
	if len(d.b)-d.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	d.i += 4
	return r, true
}

// number checks the JSON number grammar, then converts with strconv as
// encoding/json does (out of float64 range is an error).
func (d *jsonDecoder) number() (any, error) {
	start := d.i
	if d.b[d.i] == '-' {
		d.i++
	}
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	switch {
	case d.i < len(d.b) && d.b[d.i] == '0':
		d.i++
	case digits() == 0:
		return nil, errJSON
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return nil, errJSON
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return nil, errJSON
		}
	}
	f, err := strconv.ParseFloat(string(d.b[start:d.i]), 64)
	if err != nil {
		return nil, errJSON
	}
	return f, nil
}
