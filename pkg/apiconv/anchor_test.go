package apiconv

import (
	"bytes"
	"testing"

	"github.com/agentid/agentid/pkg/audit"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
)

func TestAnchorRoundTrip(t *testing.T) {
	if p := AnchorToProto(audit.Anchor{}); p != nil {
		t.Fatalf("AnchorToProto(zero) = %v, want nil", p)
	}
	if a, err := AnchorFromProto(nil); err != nil || !a.IsZero() {
		t.Fatalf("AnchorFromProto(nil) = %v, %v; want zero", a, err)
	}
	want := audit.Anchor{Sequence: 1234}
	want.Hash[0], want.Hash[31] = 0xab, 0x12
	got, err := AnchorFromProto(AnchorToProto(want))
	if err != nil || got != want {
		t.Fatalf("round trip = %v, %v; want %v", got, err, want)
	}
}

func TestAnchorFromProtoRejects(t *testing.T) {
	tests := []struct {
		name string
		p    *auditv1.Anchor
		want string
	}{
		{"empty", &auditv1.Anchor{},
			"apiconv: anchor must have a sequence from 1 and a 32-byte hash, got sequence 0 and 0 bytes"},
		{"sequence 0", &auditv1.Anchor{Hash: make([]byte, 32)},
			"apiconv: anchor must have a sequence from 1 and a 32-byte hash, got sequence 0 and 32 bytes"},
		{"short hash", &auditv1.Anchor{Sequence: 3, Hash: make([]byte, 31)},
			"apiconv: anchor must have a sequence from 1 and a 32-byte hash, got sequence 3 and 31 bytes"},
		{"long hash", &auditv1.Anchor{Sequence: 3, Hash: make([]byte, 33)},
			"apiconv: anchor must have a sequence from 1 and a 32-byte hash, got sequence 3 and 33 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := AnchorFromProto(tt.p)
			if err == nil || err.Error() != tt.want || !a.IsZero() {
				t.Fatalf("AnchorFromProto = %v, %v; want %q", a, err, tt.want)
			}
		})
	}
}

// FuzzAnchorFromProto: the anchor of a server's response is untrusted
// input. Whatever it holds, decoding either fails or gives back exactly
// what was sent.
func FuzzAnchorFromProto(f *testing.F) {
	f.Add(uint64(0), []byte{})
	f.Add(uint64(7), make([]byte, 32))
	f.Add(uint64(1<<63), bytes.Repeat([]byte{0xff}, 33))
	f.Fuzz(func(t *testing.T, seq uint64, hash []byte) {
		a, err := AnchorFromProto(&auditv1.Anchor{Sequence: seq, Hash: hash})
		if err != nil {
			if !a.IsZero() {
				t.Fatalf("error %v with a non-zero anchor %v", err, a)
			}
			return
		}
		if a.Sequence != seq || !bytes.Equal(a.Hash[:], hash) {
			t.Fatalf("decoded %v from sequence %d, hash %x", a, seq, hash)
		}
		if p := AnchorToProto(a); p.GetSequence() != seq || !bytes.Equal(p.GetHash(), hash) {
			t.Fatalf("re-encoded %v", p)
		}
	})
}
