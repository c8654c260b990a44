package spireapi

import (
	"math"
	"testing"
	"time"
)

// A TTL beyond SPIRE's int32 seconds saturates instead of wrapping into a
// negative TTL SPIRE would refuse or misread.
func TestTTLSeconds(t *testing.T) {
	for _, tt := range []struct {
		in   time.Duration
		want int32
	}{
		{0, 0},
		{5 * time.Minute, 300},
		{1500 * time.Millisecond, 1},
		{math.MaxInt32 * time.Second, math.MaxInt32},
		{100 * 365 * 24 * time.Hour, math.MaxInt32},
	} {
		if got := ttlSeconds(tt.in); got != tt.want {
			t.Errorf("ttlSeconds(%s) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
