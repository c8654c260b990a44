package apiconv_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/apiconv"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"
)

func TestDelegationRoundTrip(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	user, err := delegation.NewUser("https://idp.example.com", "alice", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	root, err := delegation.NewRoot(delegation.RootParams{
		Agent: spiffeid.RequireFromString("spiffe://example.org/agent/a"), User: user,
		Scopes: delegation.MustParseScopes("x", "y"), MaxDepth: 2, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour),
		CreatedBy: spiffeid.RequireFromString("spiffe://example.org/app/front"),
	})
	if err != nil {
		t.Fatal(err)
	}
	child, err := delegation.NewChild(root, delegation.ChildParams{
		Agent: spiffeid.RequireFromString("spiffe://example.org/agent/b"), Scopes: delegation.MustParseScopes("x"),
		CreatedAt: t0, ExpiresAt: t0.Add(time.Minute), CreatedBy: root.Agent,
	})
	if err != nil {
		t.Fatal(err)
	}
	child.State, child.RevokedAt, child.RevokeReason = delegation.StateRevoked, t0.Add(time.Second), "done"
	for _, d := range []*delegation.Delegation{root, child} {
		p := apiconv.DelegationToProto(d, 7, t0)
		back, err := apiconv.DelegationFromProto(p)
		if err != nil {
			t.Fatal(err)
		}
		if again := apiconv.DelegationToProto(back, 7, t0); !proto.Equal(p, again) {
			t.Fatalf("round trip changed the delegation:\n%v\n%v", p, again)
		}
	}
	// Expired reads as expired, and decodes back to a stored active state.
	p := apiconv.DelegationToProto(root, 0, t0.Add(2*time.Hour))
	if p.State.String() != "STATE_EXPIRED" {
		t.Fatalf("state %s", p.State)
	}
	if back, err := apiconv.DelegationFromProto(p); err != nil || back.State != delegation.StateActive {
		t.Fatalf("expired decode: %v %v", back, err)
	}
	p.Chain, p.Depth = append(p.Chain, "not a spiffe id"), p.Depth+1
	if _, err := apiconv.DelegationFromProto(p); err == nil || !strings.HasPrefix(err.Error(), "apiconv: delegation chain[1]: ") {
		t.Fatalf("bad chain: %v", err)
	}
	if _, err := apiconv.DelegationFromProto(nil); err == nil || err.Error() != "apiconv: delegation: invalid delegation: missing" || !errors.Is(err, delegation.ErrInvalidDelegation) {
		t.Fatalf("nil: %v", err)
	}
}
