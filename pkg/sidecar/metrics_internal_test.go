package sidecar

import (
	"testing"
	"time"
)

// BenchmarkMetricsHotPath is what the metrics add to one warm token
// request (a counter) and one proxied request (two clock reads, a
// histogram observation and a counter), without the HTTP around them that
// BenchmarkTokenEndpointWarm and BenchmarkProxyVsDirect measure.
func BenchmarkMetricsHotPath(b *testing.B) {
	m, err := newMetrics(&Sidecar{})
	if err != nil {
		b.Fatal(err)
	}
	rm := m.route("crm")
	b.Run("token", func(b *testing.B) {
		for range b.N {
			m.token(outcomeOK)
		}
	})
	b.Run("proxy", func(b *testing.B) {
		for range b.N {
			rm.observe(200, time.Now())
		}
	})
}
