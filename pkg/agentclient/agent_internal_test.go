package agentclient

import (
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// A pinned identity the Workload API stops offering yields no SVID (the
// source then fails GetX509SVID) rather than another identity.
func TestPickSVID(t *testing.T) {
	a := spiffeid.RequireFromString("spiffe://example.org/agent/a")
	b := spiffeid.RequireFromString("spiffe://example.org/agent/b")
	sa, sb := &x509svid.SVID{ID: a}, &x509svid.SVID{ID: b}
	tests := []struct {
		name  string
		want  spiffeid.ID
		svids []*x509svid.SVID
		pick  *x509svid.SVID
	}{
		{"unpinned takes the first", spiffeid.ID{}, []*x509svid.SVID{sb, sa}, sb},
		{"pinned found second", a, []*x509svid.SVID{sb, sa}, sa},
		{"pinned gone", a, []*x509svid.SVID{sb}, nil},
		{"pinned, nothing offered", a, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pickSVID(tt.want)(tt.svids); got != tt.pick {
				t.Fatalf("picked %v, want %v", got, tt.pick)
			}
		})
	}
}
