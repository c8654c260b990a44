package audit_test

import (
	"errors"
	"testing"

	"github.com/agentid/agentid/pkg/audit"
)

func TestVerifyTampering(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(tb testing.TB, ev []audit.Event) []audit.Event
		wantSeq uint64 // 0 when no error is expected
		wantErr string
	}{
		{"untouched", func(_ testing.TB, ev []audit.Event) []audit.Event { return ev }, 0, ""},
		{"empty log", func(_ testing.TB, ev []audit.Event) []audit.Event { return nil }, 0, ""},
		{"edit a detail value", func(_ testing.TB, ev []audit.Event) []audit.Event {
			ev[4].Detail["scopes"] = "campaigns:write"
			return ev
		}, 5, "audit: chain broken at sequence 5: hash mismatch (event edited)"},
		{"add a detail entry", func(_ testing.TB, ev []audit.Event) []audit.Event {
			ev[4].Detail["extra"] = "x"
			return ev
		}, 5, "audit: chain broken at sequence 5: hash mismatch (event edited)"},
		{"edit time by a nanosecond", func(_ testing.TB, ev []audit.Event) []audit.Event {
			ev[4].Time = ev[4].Time.Add(1)
			return ev
		}, 5, "audit: chain broken at sequence 5: hash mismatch (event edited)"},
		{"edit type", func(_ testing.TB, ev []audit.Event) []audit.Event {
			ev[2].Type = audit.TypeDenied
			return ev
		}, 3, "audit: chain broken at sequence 3: hash mismatch (event edited)"},
		{"edit actor of the last", func(_ testing.TB, ev []audit.Event) []audit.Event {
			ev[9].Actor = "local"
			return ev
		}, 10, "audit: chain broken at sequence 10: hash mismatch (event edited)"},
		{"edit and reseal an event", func(_ testing.TB, ev []audit.Event) []audit.Event {
			ev[4].Detail["scopes"] = "campaigns:write"
			ev[4].Seal(ev[4].Sequence, ev[4].PrevHash)
			return ev
		}, 6, "audit: chain broken at sequence 6: " + audit.ReasonPrevHashMismatch},
		{"delete event 4", func(_ testing.TB, ev []audit.Event) []audit.Event {
			return append(ev[:3], ev[4:]...)
		}, 5, "audit: chain broken at sequence 5: sequence gap (expected 4)"},
		{"delete event 4 and renumber the rest", func(_ testing.TB, ev []audit.Event) []audit.Event {
			ev = append(ev[:3], ev[4:]...)
			for i := 3; i < len(ev); i++ {
				ev[i].Sequence--
			}
			return ev
		}, 4, "audit: chain broken at sequence 4: hash mismatch (event edited)"},
		{"delete event 4, renumber and reseal its successor alone", func(_ testing.TB, ev []audit.Event) []audit.Event {
			ev = append(ev[:3], ev[4:]...)
			ev[3].Seal(4, ev[3].PrevHash)
			return ev
		}, 4, "audit: chain broken at sequence 4: " + audit.ReasonPrevHashMismatch},
		{"insert a forged event with a correct own hash after 3", func(tb testing.TB, ev []audit.Event) []audit.Event {
			forged := newEvent(42)
			forged.Seal(4, ev[2].Hash)
			return append(ev[:3], append([]audit.Event{forged}, ev[3:]...)...)
		}, 4, "audit: chain broken at sequence 4: sequence not increasing (previous 4)"},
		{"insert an unlinked forged event with a correct own hash", func(tb testing.TB, ev []audit.Event) []audit.Event {
			forged := newEvent(42)
			forged.Seal(4, audit.Hash{1})
			return append(ev[:3], append([]audit.Event{forged}, ev[3:]...)...)
		}, 4, "audit: chain broken at sequence 4: " + audit.ReasonPrevHashMismatch},
		{"swap events 3 and 4", func(_ testing.TB, ev []audit.Event) []audit.Event {
			ev[2], ev[3] = ev[3], ev[2]
			return ev
		}, 4, "audit: chain broken at sequence 4: sequence gap (expected 3)"},
		{"swap events 3 and 4 and their sequence numbers", func(_ testing.TB, ev []audit.Event) []audit.Event {
			ev[2], ev[3] = ev[3], ev[2]
			ev[2].Sequence, ev[3].Sequence = 3, 4
			return ev
		}, 3, "audit: chain broken at sequence 3: hash mismatch (event edited)"},
		{"swap events 3 and 4 and reseal both", func(_ testing.TB, ev []audit.Event) []audit.Event {
			ev[2], ev[3] = ev[3], ev[2]
			ev[2].Seal(3, ev[1].Hash)
			ev[3].Seal(4, ev[2].Hash)
			return ev
		}, 5, "audit: chain broken at sequence 5: " + audit.ReasonPrevHashMismatch},
		{"duplicate event 5", func(_ testing.TB, ev []audit.Event) []audit.Event {
			return append(ev[:5], ev[4:]...)
		}, 5, "audit: chain broken at sequence 5: sequence not increasing (previous 5)"},
		{"delete the first event", func(_ testing.TB, ev []audit.Event) []audit.Event {
			return ev[1:]
		}, 2, "audit: chain broken at sequence 2: first event has sequence 2, expected 1"},
		{"first event's prev-hash not zero", func(_ testing.TB, ev []audit.Event) []audit.Event {
			ev[0].Seal(1, audit.Hash{0xff})
			return ev
		}, 1, "audit: chain broken at sequence 1: first event's prev-hash is not zero"},
		{"zero type", func(_ testing.TB, ev []audit.Event) []audit.Event {
			ev[6].Type = audit.TypeUnspecified
			return ev
		}, 7, "audit: chain broken at sequence 7: invalid event: type is unspecified"},
		{"zero hash", func(_ testing.TB, ev []audit.Event) []audit.Event {
			ev[6].Hash = audit.Hash{}
			return ev
		}, 7, "audit: chain broken at sequence 7: hash mismatch (event edited)"},
		{"truncate the tail (undetectable without a known head)", func(_ testing.TB, ev []audit.Event) []audit.Event {
			return ev[:8]
		}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events := tt.tamper(t, cloneEvents(chain(t, 10)))
			err := audit.VerifySlice(events)
			if got := errText(err); got != tt.wantErr {
				t.Fatalf("VerifySlice() = %q, want %q", got, tt.wantErr)
			}
			if err != nil && chainSeq(t, err) != tt.wantSeq {
				t.Fatalf("Sequence = %d, want %d", chainSeq(t, err), tt.wantSeq)
			}
		})
	}
}

func TestVerifyWithAnchors(t *testing.T) {
	full := chain(t, 10)
	rewritten := cloneEvents(full) // events 6..10 rewritten and resealed: a valid chain
	rewritten[5].Detail["scopes"] = "admin"
	for i := 5; i < 10; i++ {
		rewritten[i].Seal(uint64(i+1), rewritten[i-1].Hash)
	}
	tests := []struct {
		name     string
		config   audit.VerifyConfig
		events   []audit.Event
		wantLast audit.Anchor
		wantErr  string
	}{
		{"whole log", audit.VerifyConfig{}, full, full[9].Anchor(), ""},
		{"tail from an anchor", audit.VerifyConfig{From: full[3].Anchor()}, full[4:], full[9].Anchor(), ""},
		{"empty tail from an anchor", audit.VerifyConfig{From: full[9].Anchor()}, nil, full[9].Anchor(), ""},
		{"tail from the wrong anchor hash", audit.VerifyConfig{From: audit.Anchor{Sequence: 4, Hash: full[2].Hash}},
			full[4:], audit.Anchor{Sequence: 4, Hash: full[2].Hash},
			"audit: chain broken at sequence 5: first event's prev-hash does not match the anchor"},
		{"tail from the wrong anchor sequence", audit.VerifyConfig{From: full[2].Anchor()}, full[4:], full[2].Anchor(),
			"audit: chain broken at sequence 5: first event has sequence 5, expected 4"},
		{"tail without its anchor", audit.VerifyConfig{}, full[4:], audit.Anchor{},
			"audit: chain broken at sequence 5: first event has sequence 5, expected 1"},
		{"known head reached", audit.VerifyConfig{Head: full[9].Anchor()}, full, full[9].Anchor(), ""},
		{"log grew past the known head", audit.VerifyConfig{Head: full[6].Anchor()}, full, full[9].Anchor(), ""},
		{"truncated tail with a known head", audit.VerifyConfig{Head: full[9].Anchor()}, full[:8], full[7].Anchor(),
			"audit: chain broken at sequence 9: chain ends at sequence 8 before the known head 10 (tail truncated)"},
		{"everything truncated with a known head", audit.VerifyConfig{Head: full[9].Anchor()}, nil, audit.Anchor{},
			"audit: chain broken at sequence 1: chain ends at sequence 0 before the known head 10 (tail truncated)"},
		{"rewritten tail passes without a head", audit.VerifyConfig{}, rewritten, rewritten[9].Anchor(), ""},
		{"rewritten tail with a known head", audit.VerifyConfig{Head: full[9].Anchor()}, rewritten, rewritten[8].Anchor(),
			"audit: chain broken at sequence 10: " + audit.ReasonHeadMismatch},
		{"rewritten tail with a known middle event", audit.VerifyConfig{Head: full[6].Anchor()}, rewritten, rewritten[5].Anchor(),
			"audit: chain broken at sequence 7: " + audit.ReasonHeadMismatch},
		{"anchor at the largest sequence", audit.VerifyConfig{From: audit.Anchor{Sequence: ^uint64(0)}}, full[:1],
			audit.Anchor{Sequence: ^uint64(0)},
			"audit: chain broken at sequence 1: sequence not increasing (previous 18446744073709551615)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			last, err := audit.VerifyWith(tt.config, audit.FromSlice(tt.events))
			if got := errText(err); got != tt.wantErr {
				t.Fatalf("VerifyWith() = %q, want %q", got, tt.wantErr)
			}
			if last != tt.wantLast {
				t.Fatalf("last = %v, want %v", last, tt.wantLast)
			}
		})
	}
}

// TestVerifierPages verifies a log page by page, each page from the last
// anchor of the one before, as a client of ListEvents would.
func TestVerifierPages(t *testing.T) {
	full := chain(t, 10)
	var from audit.Anchor
	for start := 0; start < len(full); start += 3 {
		page := full[start:min(start+3, len(full))]
		last, err := audit.VerifyWith(audit.VerifyConfig{From: from}, audit.FromSlice(page))
		if err != nil {
			t.Fatalf("page at %d: %v", start, err)
		}
		from = last
	}
	if from != full[9].Anchor() {
		t.Fatalf("last page ended at %v, want %v", from, full[9].Anchor())
	}
}

func TestVerifierSticky(t *testing.T) {
	full := chain(t, 3)
	v := audit.NewVerifier(audit.VerifyConfig{})
	if err := v.Add(&full[0]); err != nil {
		t.Fatal(err)
	}
	first := v.Add(&full[2])
	want := "audit: chain broken at sequence 3: sequence gap (expected 2)"
	if errText(first) != want {
		t.Fatalf("Add() = %v, want %s", first, want)
	}
	if err := v.Add(&full[1]); !errors.Is(err, first) {
		t.Fatalf("Add after a failure = %v, want the first error again", err)
	}
	if err := v.Close(); !errors.Is(err, first) {
		t.Fatalf("Close() = %v, want the first error again", err)
	}
	if v.Count() != 1 || v.Last() != full[0].Anchor() {
		t.Fatalf("Count, Last = %d, %v; want 1, %v", v.Count(), v.Last(), full[0].Anchor())
	}
}

func TestVerifyInvalidEventUnwraps(t *testing.T) {
	events := chain(t, 2)
	events[1].Actor = ""
	err := audit.VerifySlice(events)
	if want := "audit: chain broken at sequence 2: invalid event: actor is empty"; errText(err) != want {
		t.Fatalf("VerifySlice() = %v, want %s", err, want)
	}
	if !errors.Is(err, audit.ErrInvalidEvent) || !errors.Is(err, audit.ErrChainBroken) {
		t.Fatalf("%v should match ErrInvalidEvent and ErrChainBroken", err)
	}
}

func TestVerifyPassesIteratorError(t *testing.T) {
	events := chain(t, 2)
	boom := errors.New("boom")
	seq := func(yield func(*audit.Event, error) bool) {
		if yield(&events[0], nil) {
			yield(nil, boom)
		}
	}
	if err := audit.Verify(seq); !errors.Is(err, boom) {
		t.Fatalf("Verify() = %v, want the iterator's error", err)
	}
}
