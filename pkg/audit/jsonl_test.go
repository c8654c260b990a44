package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/agentid/agentid/pkg/audit"
)

// export returns events as a JSON Lines export.
func export(tb testing.TB, events []audit.Event) string {
	tb.Helper()
	var buf bytes.Buffer
	if err := audit.WriteJSONL(&buf, audit.FromSlice(events)); err != nil {
		tb.Fatal(err)
	}
	return buf.String()
}

// readAll reads an export, returning the events before the first error and that error.
func readAll(text string) ([]audit.Event, error) {
	var out []audit.Event
	for e, err := range audit.ReadJSONL(strings.NewReader(text)) {
		if err != nil {
			return out, err
		}
		out = append(out, *e)
	}
	return out, nil
}

func TestJSONLRoundTrip(t *testing.T) {
	events := chain(t, 10)
	text := export(t, events)
	if n := strings.Count(text, "\n"); n != 10 {
		t.Fatalf("export has %d lines, want 10", n)
	}
	got, err := readAll(text)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, events) {
		t.Fatalf("round trip changed the events:\n%+v\n%+v", got, events)
	}
	if err := audit.Verify(audit.ReadJSONL(strings.NewReader(text))); err != nil {
		t.Fatalf("Verify(export) = %v", err)
	}
	// CRLF line ends and a missing final newline are accepted.
	crlf := strings.TrimSuffix(strings.ReplaceAll(text, "\n", "\r\n"), "\r\n")
	if err := audit.Verify(audit.ReadJSONL(strings.NewReader(crlf))); err != nil {
		t.Fatalf("Verify(CRLF export) = %v", err)
	}
}

func TestEventJSONViaEncodingJSON(t *testing.T) {
	events := chain(t, 2)
	b, err := json.Marshal(events[1]) // a value, not a pointer
	if err != nil {
		t.Fatal(err)
	}
	var back audit.Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, events[1]) {
		t.Fatalf("json round trip = %+v, want %+v", back, events[1])
	}
	bad := events[1]
	bad.Actor = ""
	if _, err := json.Marshal(bad); !errors.Is(err, audit.ErrInvalidEvent) {
		t.Fatalf("Marshal(invalid) = %v, want ErrInvalidEvent", err)
	}
}

func TestReadJSONLMalformed(t *testing.T) {
	events := chain(t, 2)
	good := strings.Split(export(t, events), "\n")
	l1, l2 := good[0], good[1]
	edit := func(old, new string) string {
		if !strings.Contains(l2, old) {
			t.Fatalf("line has no %q", old)
		}
		return strings.Replace(l2, old, new, 1)
	}
	tests := []struct {
		name  string
		line2 string
		want  string
	}{
		{"not JSON", "hello", "audit: line 2: malformed event: invalid character 'h' looking for beginning of value"},
		{"empty line", "", "audit: line 2: malformed event: empty line"},
		{"blank line", "  \t", "audit: line 2: malformed event: empty line"},
		{"array", "[]", `audit: line 2: malformed event: expected "{"`},
		{"truncated object", l2[:40], "audit: line 2: malformed event: unexpected end of JSON"},
		{"two objects", l2 + "{}", "audit: line 2: malformed event: data after the object"},
		{"unknown field", edit(`{"sequence"`, `{"admin":"yes","sequence"`), `audit: line 2: malformed event: unknown field "admin"`},
		{"repeated field", edit(`"actor":`, `"actor":"local","actor":`), `audit: line 2: malformed event: field "actor" repeated`},
		{"repeated detail key", edit(`"detail":{`, `"detail":{"scopes":"all",`), `audit: line 2: malformed event: detail key "scopes" repeated`},
		{"renamed field", edit(`,"hash":`, `,"x_hash":`), `audit: line 2: malformed event: unknown field "x_hash"`},
		{"missing hash", edit(`,"hash":"`+events[1].Hash.String()+`"`, ""), `audit: line 2: malformed event: field "hash" missing`},
		{"missing actor", strings.Replace(l2, `"actor":"spiffe://example.org/agent/a1",`, "", 1), `audit: line 2: malformed event: field "actor" missing`},
		{"sequence as string", edit(`"sequence":2`, `"sequence":"2"`), `audit: line 2: malformed event: field "sequence" is not a number`},
		{"negative sequence", edit(`"sequence":2`, `"sequence":-2`), `audit: line 2: malformed event: field "sequence" is not an unsigned 64-bit integer`},
		{"fractional sequence", edit(`"sequence":2`, `"sequence":2.0`), `audit: line 2: malformed event: field "sequence" is not an unsigned 64-bit integer`},
		{"huge sequence", edit(`"sequence":2`, `"sequence":18446744073709551616`), `audit: line 2: malformed event: field "sequence" is not an unsigned 64-bit integer`},
		{"actor null", edit(`"actor":"spiffe://example.org/agent/a1"`, `"actor":null`), `audit: line 2: malformed event: field "actor" is not a string`},
		{"detail value number", edit(`"detail":{`, `"detail":{"n":1,`), `audit: line 2: malformed event: detail value is not a string`},
		{"detail array", edit(`"detail":{`, `"detail":[],"x":{`), `audit: line 2: malformed event: field "detail" is not an object`},
		{"time with offset", edit(`"time":"2025-01-02T03:04:06.5Z"`, `"time":"2025-01-02T04:04:06.5+01:00"`),
			`audit: line 2: malformed event: field "time" is not a UTC RFC 3339 time without trailing zeros`},
		{"time with trailing zeros", edit(`"time":"2025-01-02T03:04:06.5Z"`, `"time":"2025-01-02T03:04:06.500Z"`),
			`audit: line 2: malformed event: field "time" is not a UTC RFC 3339 time without trailing zeros`},
		{"unknown type", edit(`"type":"sub_delegated"`, `"type":"promoted"`), `audit: line 2: malformed event: unknown type "promoted"`},
		{"unspecified type", edit(`"type":"sub_delegated"`, `"type":"unspecified"`), `audit: line 2: invalid event: type is unspecified`},
		{"upper-case hash", edit(events[1].Hash.String(), strings.ToUpper(events[1].Hash.String())), `audit: line 2: malformed event: field "hash" is not 64 lower-case hex digits`},
		{"prev hash of 65 digits", edit(`"prev_hash":"`, `"prev_hash":"0`), `audit: line 2: malformed event: field "prev_hash" is not 64 lower-case hex digits`},
		{"invalid UTF-8", edit(`alice`, "al\xffce"), "audit: line 2: malformed event: not valid UTF-8"},
		{"control character in actor", edit(`agent/a1"`, `agent/a1\u0007"`), "audit: line 2: invalid event: actor holds a control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(l1 + "\n" + tt.line2 + "\n" + l1 + "\n")
			if errText(err) != tt.want {
				t.Fatalf("ReadJSONL() error = %q, want %q", errText(err), tt.want)
			}
			var le *audit.LineError
			if !errors.As(err, &le) || le.Line != 2 {
				t.Fatalf("error %v is not a *LineError for line 2", err)
			}
			if len(got) != 1 {
				t.Fatalf("read %d events before the error, want 1", len(got))
			}
		})
	}
}

func TestReadJSONLLineLength(t *testing.T) {
	events := chain(t, 2)
	lines := strings.Split(export(t, events), "\n")
	// JSON allows trailing spaces, so padding gives a valid line of any length.
	pad := func(line string, n int) string { return line + strings.Repeat(" ", n-len(line)) }

	atLimit := lines[0] + "\n" + pad(lines[1], audit.MaxLineLength) + "\r\n"
	if err := audit.Verify(audit.ReadJSONL(strings.NewReader(atLimit))); err != nil {
		t.Fatalf("line of exactly MaxLineLength: %v", err)
	}
	for _, text := range []string{
		lines[0] + "\n" + pad(lines[1], audit.MaxLineLength+1) + "\n",
		lines[0] + "\n" + pad(lines[1], audit.MaxLineLength+1),
		lines[0] + "\n" + pad(lines[1], 4*audit.MaxLineLength) + "\n" + lines[1] + "\n",
	} {
		_, err := readAll(text)
		want := "audit: line 2: line too long: more than 262144 bytes"
		if errText(err) != want || !errors.Is(err, audit.ErrLineTooLong) {
			t.Fatalf("ReadJSONL(oversize) = %v, want %s", err, want)
		}
	}
}

// TestLargestEventFitsLine checks the claim that any valid event encodes to
// at most MaxLineLength bytes, with the characters JSON escapes the most.
func TestLargestEventFitsLine(t *testing.T) {
	worst := strings.Repeat("<", audit.MaxIdentityLength)
	e := audit.Event{Time: t0, Type: audit.TypeAgentSynced, Actor: worst, DelegationID: worst, Agent: worst, User: worst,
		Detail: map[string]string{}}
	for i := 0; i < 4; i++ {
		e.Detail[strings.Repeat(string(rune('a'+i)), audit.MaxDetailKeyLength)] = strings.Repeat("\x01", audit.MaxDetailValueLength-audit.MaxDetailKeyLength)
	}
	e.Seal(1<<63, audit.Hash{})
	text := export(t, []audit.Event{e})
	if n := len(text) - 1; n > audit.MaxLineLength {
		t.Fatalf("largest event encodes to %d bytes, more than MaxLineLength %d", n, audit.MaxLineLength)
	}
	got, err := readAll(text)
	if err != nil || len(got) != 1 || got[0].Hash != e.Hash {
		t.Fatalf("largest event did not read back: %v", err)
	}
}

func TestReadJSONLReaderError(t *testing.T) {
	boom := errors.New("boom")
	_, err := readAll("") // sanity: empty export is no events, no error
	if err != nil {
		t.Fatalf("empty export: %v", err)
	}
	for e, err := range audit.ReadJSONL(iotest.ErrReader(boom)) {
		if e != nil || !errors.Is(err, boom) || err.Error() != "audit: line 1: reading export: boom" {
			t.Fatalf("ReadJSONL(failing reader) = %v, %v", e, err)
		}
	}
}

func TestWriteJSONLErrors(t *testing.T) {
	events := chain(t, 3)
	events[1].Actor = ""
	var buf bytes.Buffer
	err := audit.WriteJSONL(&buf, audit.FromSlice(events))
	if want := "audit: invalid event: actor is empty (event at sequence 2)"; errText(err) != want {
		t.Fatalf("WriteJSONL() = %q, want %q", errText(err), want)
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Fatalf("wrote %d lines before the error, want 1", n)
	}
	err = audit.WriteJSONL(errWriter{}, audit.FromSlice(chain(t, 1)))
	if want := "audit: writing export: disk full"; errText(err) != want {
		t.Fatalf("WriteJSONL(failing writer) = %q, want %q", errText(err), want)
	}
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }
