package audit_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/agentid/agentid/pkg/audit"
)

// FuzzReadJSONL feeds arbitrary exports to ReadJSONL and Verify. Neither may
// panic; every event ReadJSONL accepts must be valid and survive a JSON round
// trip unchanged (so the hash a verifier computes is the hash of what was
// read); and an export that verifies must verify again after being
// rewritten by WriteJSONL.
func FuzzReadJSONL(f *testing.F) {
	events := chain(f, 3)
	var buf bytes.Buffer
	if err := audit.WriteJSONL(&buf, audit.FromSlice(events)); err != nil {
		f.Fatal(err)
	}
	good := buf.String()
	lines := strings.SplitAfter(good, "\n")
	for _, seed := range []string{
		good,
		lines[0],
		lines[0] + lines[2],            // deleted event
		lines[1] + lines[0] + lines[2], // reordered
		strings.Replace(good, "campaigns:read", "campaigns:write", 1), // edited
		strings.ReplaceAll(good, "\n", "\r\n"),
		"", "\n", "{}", "{}\n{}", `{"sequence":1}`, "null", "[1]",
		`{"sequence":1,"time":"2025-01-02T03:04:05Z","type":"denied","actor":"local","prev_hash":"` +
			strings.Repeat("0", 64) + `","hash":"` + strings.Repeat("0", 64) + `"}`,
		`{"sequence":18446744073709551615,"detail":{"a":"b","a":"c"}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var read []audit.Event
		for e, err := range audit.ReadJSONL(bytes.NewReader(data)) {
			if err != nil {
				break
			}
			if err := e.Validate(); err != nil {
				t.Fatalf("ReadJSONL yielded an invalid event: %v", err)
			}
			b, err := e.MarshalJSON()
			if err != nil {
				t.Fatalf("re-encoding a read event: %v", err)
			}
			var back audit.Event
			if err := back.UnmarshalJSON(b); err != nil {
				t.Fatalf("decoding a re-encoded event: %v\n%s", err, b)
			}
			if !reflect.DeepEqual(&back, e) || !bytes.Equal(audit.Canonical(&back), audit.Canonical(e)) {
				t.Fatalf("round trip changed the event:\n%+v\n%+v", back, *e)
			}
			read = append(read, *e)
		}
		if audit.Verify(audit.ReadJSONL(bytes.NewReader(data))) != nil {
			return
		}
		var out bytes.Buffer
		if err := audit.WriteJSONL(&out, audit.FromSlice(read)); err != nil {
			t.Fatalf("rewriting a verified export: %v", err)
		}
		if err := audit.Verify(audit.ReadJSONL(&out)); err != nil {
			t.Fatalf("rewritten export no longer verifies: %v", err)
		}
	})
}
