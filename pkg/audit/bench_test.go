package audit_test

import (
	"bytes"
	"testing"

	"github.com/agentid/agentid/pkg/audit"
)

// BenchmarkSeal measures sealing a typical event (four identity fields, two
// detail entries): the cost the store adds to each audited transaction.
func BenchmarkSeal(b *testing.B) {
	e := newEvent(1)
	var prev audit.Hash
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e.Seal(uint64(i+1), prev)
		prev = e.Hash
	}
}

// BenchmarkVerifyJSONL measures verifying an export, reading included, per event.
func BenchmarkVerifyJSONL(b *testing.B) {
	var buf bytes.Buffer
	if err := audit.WriteJSONL(&buf, audit.FromSlice(chain(b, 1000))); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := audit.Verify(audit.ReadJSONL(bytes.NewReader(data))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/event")
}
