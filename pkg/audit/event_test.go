package audit_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/audit"
)

func TestTypeNames(t *testing.T) {
	tests := []struct {
		typ  audit.Type
		name string
	}{
		{audit.TypeUnspecified, "unspecified"},
		{audit.TypeDelegationCreated, "delegation_created"},
		{audit.TypeSubDelegated, "sub_delegated"},
		{audit.TypeRevoked, "revoked"},
		{audit.TypeDenied, "denied"},
		{audit.TypeTokenIssued, "token_issued"},
		{audit.TypeAgentSynced, "agent_synced"},
		{audit.TypeAuditPruned, "audit_pruned"},
	}
	for _, tt := range tests {
		if got := tt.typ.String(); got != tt.name {
			t.Errorf("Type(%d).String() = %q, want %q", int(tt.typ), got, tt.name)
		}
		parsed, err := audit.ParseType(tt.name)
		if err != nil || parsed != tt.typ {
			t.Errorf("ParseType(%q) = %v, %v; want %v", tt.name, parsed, err, tt.typ)
		}
		if want := tt.typ != audit.TypeUnspecified; tt.typ.Valid() != want {
			t.Errorf("%v.Valid() = %v, want %v", tt.typ, !want, want)
		}
	}
	if got := audit.Type(99).String(); got != "type(99)" {
		t.Errorf("Type(99).String() = %q", got)
	}
	for _, s := range []string{"", "Revoked", "type(99)", "revoked "} {
		_, err := audit.ParseType(s)
		if want := "audit: unknown event type " + strconv.Quote(s); errText(err) != want || !errors.Is(err, audit.ErrUnknownType) {
			t.Errorf("ParseType(%q) = %v, want %s", s, err, want)
		}
	}
}

func TestValidate(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	bigDetail := func(n, valueLen int) map[string]string {
		d := make(map[string]string, n)
		for i := range n {
			d["k"+strconv.Itoa(i)] = long(valueLen)
		}
		return d
	}
	tests := []struct {
		name   string
		modify func(e *audit.Event)
		want   string
	}{
		{"valid", func(e *audit.Event) {}, ""},
		{"only the required fields", func(e *audit.Event) {
			*e = audit.Event{Time: t0, Type: audit.TypeDenied, Actor: "local"}
		}, ""},
		{"unspecified type", func(e *audit.Event) { e.Type = audit.TypeUnspecified }, "audit: invalid event: type is unspecified"},
		{"unknown type", func(e *audit.Event) { e.Type = 8 }, "audit: invalid event: type 8 is unknown"},
		{"negative type", func(e *audit.Event) { e.Type = -1 }, "audit: invalid event: type -1 is unknown"},
		{"zero time", func(e *audit.Event) { e.Time = time.Time{} }, "audit: invalid event: time is zero"},
		{"time after year 9999", func(e *audit.Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
			"audit: invalid event: time 10000-01-01 is outside years 1..9999"},
		{"empty actor", func(e *audit.Event) { e.Actor = "" }, "audit: invalid event: actor is empty"},
		{"actor at the bound", func(e *audit.Event) { e.Actor = long(audit.MaxIdentityLength) }, ""},
		{"actor too long", func(e *audit.Event) { e.Actor = long(audit.MaxIdentityLength + 1) },
			"audit: invalid event: actor is 2049 bytes, at most 2048"},
		{"agent not UTF-8", func(e *audit.Event) { e.Agent = "spiffe://x/\xff" }, "audit: invalid event: agent is not valid UTF-8"},
		{"user with a newline", func(e *audit.Event) { e.User = "a\nb" }, "audit: invalid event: user holds a control character"},
		{"delegation id with a C1 control", func(e *audit.Event) { e.DelegationID = "dlg_\u0085" },
			"audit: invalid event: delegation_id holds a control character"},
		{"detail at the entry bound", func(e *audit.Event) { e.Detail = bigDetail(audit.MaxDetailEntries, 1) }, ""},
		{"too many detail entries", func(e *audit.Event) { e.Detail = bigDetail(audit.MaxDetailEntries+1, 1) },
			"audit: invalid event: detail has 33 entries, at most 32"},
		{"empty detail key", func(e *audit.Event) { e.Detail[""] = "x" }, "audit: invalid event: detail key is empty"},
		{"detail key too long", func(e *audit.Event) { e.Detail = map[string]string{long(65): "x"} },
			"audit: invalid event: detail key is 65 bytes, at most 64"},
		{"detail key with a tab", func(e *audit.Event) { e.Detail = map[string]string{"a\tb": "x"} },
			"audit: invalid event: detail key holds a control character"},
		{"detail value at the bound", func(e *audit.Event) { e.Detail = map[string]string{"k": long(audit.MaxDetailValueLength)} }, ""},
		{"detail value too long", func(e *audit.Event) { e.Detail = map[string]string{"k": long(audit.MaxDetailValueLength + 1)} },
			"audit: invalid event: detail[k] is 4097 bytes, at most 4096"},
		{"detail value not UTF-8", func(e *audit.Event) { e.Detail = map[string]string{"k": "\xc3"} },
			"audit: invalid event: detail[k] is not valid UTF-8"},
		{"detail value with control characters", func(e *audit.Event) { e.Detail = map[string]string{"k": "a\nb\x00"} }, ""},
		{"detail too large in total", func(e *audit.Event) { e.Detail = bigDetail(5, audit.MaxDetailValueLength) },
			"audit: invalid event: detail is 20490 bytes, at most 16384"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEvent(1)
			tt.modify(&e)
			err := e.Validate()
			if got := errText(err); got != tt.want {
				t.Fatalf("Validate() = %q, want %q", got, tt.want)
			}
			if err != nil && !errors.Is(err, audit.ErrInvalidEvent) {
				t.Fatalf("%v does not match ErrInvalidEvent", err)
			}
		})
	}
}

// TestCanonicalVector pins the canonical encoding to the worked example in
// doc.go: a change here breaks every existing log.
func TestCanonicalVector(t *testing.T) {
	e := audit.Event{
		Time:         time.Date(2025, 1, 2, 4, 4, 5, 120000000, time.FixedZone("CET", 3600)),
		Type:         audit.TypeDelegationCreated,
		Actor:        "user:https://idp.example.com#alice",
		DelegationID: "dlg_01jd3x0000000000000000000a",
		Agent:        "spiffe://example.org/agent/planner",
		User:         "https://idp.example.com#alice",
		Detail:       map[string]string{"scopes": "campaigns:read", "intent": "plan Q3 campaign"},
	}
	e.Seal(1, audit.Hash{})
	wantHex := "6167656e7469642d61756469742d76310a" + // magic
		"0000000000000001" + // sequence
		"00000017" + hex2("2025-01-02T03:04:05.12Z") +
		"00000012" + hex2("delegation_created") +
		"00000022" + hex2("user:https://idp.example.com#alice") +
		"0000001e" + hex2("dlg_01jd3x0000000000000000000a") +
		"00000022" + hex2("spiffe://example.org/agent/planner") +
		"0000001d" + hex2("https://idp.example.com#alice") +
		"00000002" +
		"00000006" + hex2("intent") + "00000010" + hex2("plan Q3 campaign") +
		"00000006" + hex2("scopes") + "0000000e" + hex2("campaigns:read") +
		"0000000000000000000000000000000000000000000000000000000000000000" // prev hash
	canonical := audit.Canonical(&e)
	if got := hex.EncodeToString(canonical); got != wantHex {
		t.Fatalf("Canonical() =\n%s\nwant\n%s", got, wantHex)
	}
	if len(canonical) != 311 {
		t.Fatalf("len(Canonical()) = %d, doc.go says 311", len(canonical))
	}
	const wantHash = "de4c39ce9f73f66ea8f9b923245ce8e363f267c3a3a887fd300499b103de7626"
	if e.Hash.String() != wantHash || e.Hash != sha256.Sum256(canonical) || e.ComputeHash() != e.Hash {
		t.Fatalf("Hash = %s, want %s", e.Hash, wantHash)
	}
	line, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	const wantLine = `{"sequence":1,"time":"2025-01-02T03:04:05.12Z","type":"delegation_created","actor":"user:https://idp.example.com#alice","delegation_id":"dlg_01jd3x0000000000000000000a","agent":"spiffe://example.org/agent/planner","user":"https://idp.example.com#alice","detail":{"intent":"plan Q3 campaign","scopes":"campaigns:read"},"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","hash":"de4c39ce9f73f66ea8f9b923245ce8e363f267c3a3a887fd300499b103de7626"}`
	if string(line) != wantLine {
		t.Fatalf("MarshalJSON() =\n%s\nwant (as in doc.go)\n%s", line, wantLine)
	}
}

func hex2(s string) string { return hex.EncodeToString([]byte(s)) }

func TestCanonicalIgnoresRepresentation(t *testing.T) {
	a := newEvent(3)
	b := newEvent(3)
	b.Time = a.Time.In(time.FixedZone("X", -7*3600))
	b.Detail = maps.Clone(a.Detail)
	if string(audit.Canonical(&a)) != string(audit.Canonical(&b)) {
		t.Fatal("location changed the canonical encoding")
	}
	empty, nilDetail := newEvent(3), newEvent(3)
	empty.Detail, nilDetail.Detail = map[string]string{}, nil
	if string(audit.Canonical(&empty)) != string(audit.Canonical(&nilDetail)) {
		t.Fatal("empty and nil Detail encode differently")
	}
	// Length prefixes keep field boundaries: moving a byte between fields
	// changes the encoding.
	c, d := newEvent(3), newEvent(3)
	c.Agent, c.User = "ab", "c"
	d.Agent, d.User = "a", "bc"
	if string(audit.Canonical(&c)) == string(audit.Canonical(&d)) {
		t.Fatal("fields are not delimited")
	}
}

func TestParseAnchor(t *testing.T) {
	h := sha256.Sum256([]byte("x"))
	hx := hex.EncodeToString(h[:])
	tests := []struct {
		in      string
		want    audit.Anchor
		wantErr string
	}{
		{"42:" + hx, audit.Anchor{Sequence: 42, Hash: h}, ""},
		{"0:" + strings.Repeat("0", 64), audit.Anchor{}, ""},
		{hx, audit.Anchor{}, "audit: invalid anchor: want <sequence>:<hash>"},
		{"042:" + hx, audit.Anchor{}, `audit: invalid anchor: sequence "042" is not a decimal number`},
		{"-1:" + hx, audit.Anchor{}, `audit: invalid anchor: sequence "-1" is not a decimal number`},
		{"1:" + strings.ToUpper(hx), audit.Anchor{}, "audit: invalid anchor: audit: invalid hash: not lower-case hex"},
		{"1:" + hx[:63], audit.Anchor{}, "audit: invalid anchor: audit: invalid hash: 63 characters, want 64"},
	}
	for _, tt := range tests {
		got, err := audit.ParseAnchor(tt.in)
		if errText(err) != tt.wantErr || got != tt.want {
			t.Errorf("ParseAnchor(%q) = %v, %q; want %v, %q", tt.in, got, errText(err), tt.want, tt.wantErr)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
}
