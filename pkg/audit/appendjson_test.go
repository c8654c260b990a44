package audit

import (
	"encoding/json"
	"testing"
	"time"
)

// referenceJSON is how MarshalJSON encoded events before appendJSON: the
// JSON form by reflection. appendJSON must write the very same bytes, since
// stores and exports written by either are read by one decoder.
func referenceJSON(t testing.TB, e *Event) []byte {
	t.Helper()
	b, err := json.Marshal(eventJSON{
		Sequence: e.Sequence, Time: e.Time.UTC().Format(time.RFC3339Nano), Type: e.Type.String(),
		Actor: e.Actor, DelegationID: e.DelegationID, Agent: e.Agent, User: e.User, Detail: e.Detail,
		PrevHash: e.PrevHash.String(), Hash: e.Hash.String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Strings that encoding/json escapes in each of its ways.
var jsonEscapeCases = []string{
	"", "plain", `quote " and backslash \`, "<script>&amp;</script>", "tab\tnewline\nreturn\rff\fbs\b",
	"nul \x00 unit sep \x1f del \x7f", "line sep \u2028 para sep \u2029", "bad utf-8 \xff\xfe end",
	"truncated \xe2\x82", "non-ascii é ü 漢字 🙂", "\u2027\u202a", "https://idp.example.com#alice",
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	base := Event{
		Sequence: 18446744073709551615, Time: time.Date(2026, 11, 27, 3, 4, 5, 120000000, time.FixedZone("x", 3600)),
		Type: TypeTokenIssued, Actor: "spiffe://example.org/agent/a",
		PrevHash: Hash{1, 2, 3}, Hash: Hash{0xff, 0xee},
	}
	for _, s := range jsonEscapeCases {
		e := base
		e.Actor, e.DelegationID, e.Agent, e.User = s, s, s, s
		e.Detail = map[string]string{s: s, "b": "2", "a": s}
		if s == "" {
			e.Detail = nil
		}
		got := e.appendJSON(nil)
		if want := referenceJSON(t, &e); string(got) != string(want) {
			t.Errorf("%q:\n got %s\nwant %s", s, got, want)
		}
	}
	// Empty optional fields are left out, as omitempty does.
	e := base
	e.Detail = map[string]string{}
	if got, want := e.appendJSON(nil), referenceJSON(t, &e); string(got) != string(want) {
		t.Errorf("empty fields:\n got %s\nwant %s", got, want)
	}
}

// FuzzAppendJSON holds appendJSON to encoding/json's output for any strings
// and times, valid events or not.
func FuzzAppendJSON(f *testing.F) {
	for _, s := range jsonEscapeCases {
		f.Add(uint64(7), int64(1764212645), int64(123), uint8(TypeTokenIssued), s, s, "k", s)
	}
	f.Fuzz(func(t *testing.T, seq uint64, sec, nsec int64, typ uint8, actor, user, key, value string) {
		e := Event{
			Sequence: seq, Time: time.Unix(sec%253402300799, nsec%1e9), Type: Type(typ),
			Actor: actor, DelegationID: value, Agent: actor, User: user,
			Detail: map[string]string{key: value, value: key}, Hash: Hash{byte(seq)},
		}
		if got, want := e.appendJSON(nil), referenceJSON(t, &e); string(got) != string(want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

// BenchmarkMarshalJSON compares MarshalJSON (appendJSON) with the
// reflection encoding it replaced, on a token issuance event.
func BenchmarkMarshalJSON(b *testing.B) {
	e := Event{
		Sequence: 123456, Time: time.Now(), Type: TypeTokenIssued, Actor: "spiffe://example.org/agent/bench",
		DelegationID: "dlg_0123456789abcdefghjkmnpqrs", Agent: "spiffe://example.org/agent/bench",
		User: "https://idp.example.com#alice",
		Detail: map[string]string{"audience": "spiffe://example.org/svc/target-000123456",
			"expires_at": "2026-11-27T03:04:05Z", "recorded_by": "local:uid:1000"},
	}
	b.Run("appendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.MarshalJSON(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reflection", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := e.Validate(); err != nil {
				b.Fatal(err)
			}
			referenceJSON(b, &e)
		}
	})
}
