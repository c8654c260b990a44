package audit

import (
	"encoding/hex"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendJSON appends the JSON form of e (see eventJSON) to b, byte for byte
// what encoding/json writes for it: fields in eventJSON's order, empty
// optional fields left out, detail keys sorted, strings escaped as
// encoding/json escapes them (HTML-safe, U+2028 and U+2029 escaped, invalid
// UTF-8 replaced). The store encodes every event it appends, one per token
// issued, and this is several times cheaper than reflection; a
// differential test and a fuzz target hold it to encoding/json.
func (e *Event) appendJSON(b []byte) []byte {
	b = append(b, `{"sequence":`...)
	b = strconv.AppendUint(b, e.Sequence, 10)
	b = append(b, `,"time":"`...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano) // only digits, '-', ':', '.', 'T', 'Z'
	b = append(b, `","type":`...)
	b = appendJSONString(b, e.Type.String())
	b = append(b, `,"actor":`...)
	b = appendJSONString(b, e.Actor)
	for _, f := range [...]struct{ name, value string }{
		{`,"delegation_id":`, e.DelegationID}, {`,"agent":`, e.Agent}, {`,"user":`, e.User},
	} {
		if f.value != "" {
			b = append(b, f.name...)
			b = appendJSONString(b, f.value)
		}
	}
	if len(e.Detail) > 0 {
		b = append(b, `,"detail":{`...)
		var buf [8]string // on appendJSON's stack: most events have a few entries
		for i, k := range sortedKeys(buf[:0], e.Detail) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, e.Detail[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"prev_hash":"`...)
	b = hex.AppendEncode(b, e.PrevHash[:])
	b = append(b, `","hash":"`...)
	b = hex.AppendEncode(b, e.Hash[:])
	return append(b, `"}`...)
}

// sortedKeys returns m's keys in order, in keys' backing array when it has
// room. Events hold a few detail entries (at most MaxDetailEntries once
// valid); a caller's stack array keeps the store's hot path free of
// allocations for them (an array declared here would escape with the
// returned slice).
func sortedKeys(keys []string, m map[string]string) []string {
	if len(m) > cap(keys) {
		keys = make([]string, 0, len(m))
	}
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// jsonLength is a generous estimate of e's JSON length, to allocate once:
// the fixed part (names, sequence, time, type, two hex hashes) is under 400
// bytes.
func (e *Event) jsonLength() int {
	n := 400 + len(e.Actor) + len(e.DelegationID) + len(e.Agent) + len(e.User)
	for k, v := range e.Detail {
		n += 8 + len(k) + len(v) + len(v)/8
	}
	return n
}

// jsonSafe marks the ASCII bytes encoding/json writes as they are.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string the way encoding/json does
// with HTML escaping on (its default).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				// Other control characters and <, >, &.
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
