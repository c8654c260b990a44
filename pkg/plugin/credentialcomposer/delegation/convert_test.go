package composer

import (
	"errors"
	"testing"
	"time"

	domain "github.com/agentid/agentid/pkg/delegation"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestFromProto(t *testing.T) {
	d, err := fromProto(pbDelegation(childID, rootID))
	if err != nil {
		t.Fatal(err)
	}
	if d.ID.String() != childID || d.Parent.String() != rootID || d.Root.String() != rootID ||
		d.Agent.String() != analyst || d.User.String() != "https://idp.example.com#alice" || d.User.Email() != "alice@example.com" ||
		d.Scopes.String() != "campaigns:read compliance:check" || len(d.Chain) != 2 || d.Chain[0].String() != orchestrator ||
		d.MaxDepth != 2 || !d.CreatedAt.Equal(t0.Add(-time.Hour)) || !d.ExpiresAt.Equal(t0.Add(10*time.Hour+500*time.Millisecond)) ||
		d.State != domain.StateActive || d.Intent.String() != "" || !d.CreatedBy.IsZero() {
		t.Fatalf("converted %+v", d)
	}

	revoked := pbDelegation(rootID, "")
	revoked.State, revoked.RevokedAt = delegationv1.State_STATE_REVOKED, timestamppb.New(t0)
	if d, err := fromProto(revoked); err != nil || d.State != domain.StateRevoked || !d.RevokedAt.Equal(t0) {
		t.Fatalf("revoked: %+v, %v", d, err)
	}
}

// TestFromProtoRejects covers what fromProto adds to apiconv's decoder
// (whose own table is in pkg/apiconv): only active and revoked delegations
// are kept. One malformed case shows apiconv's error passing through.
func TestFromProtoRejects(t *testing.T) {
	cases := []struct {
		name     string
		mutate   func(d *delegationv1.Delegation)
		wantErr  string
		sentinel error
	}{
		{"nil", nil, "apiconv: delegation: invalid delegation: missing", domain.ErrInvalidDelegation},
		{"expired state", func(d *delegationv1.Delegation) { d.State = delegationv1.State_STATE_EXPIRED },
			"composer: delegation is neither active nor revoked: STATE_EXPIRED", errNotLive},
		{"unspecified state", func(d *delegationv1.Delegation) { d.State = 0 },
			"composer: delegation is neither active nor revoked: STATE_UNSPECIFIED", errNotLive},
		{"malformed", func(d *delegationv1.Delegation) { d.Chain[1] = orchestrator },
			"apiconv: delegation: invalid delegation: chain must end with the agent", domain.ErrInvalidDelegation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var pb *delegationv1.Delegation
			if tc.mutate != nil {
				pb = pbDelegation(childID, rootID)
				tc.mutate(pb)
			}
			_, err := fromProto(pb)
			if err == nil || err.Error() != tc.wantErr || (tc.sentinel != nil && !errors.Is(err, tc.sentinel)) {
				t.Fatalf("err = %v\nwant %s (%v)", err, tc.wantErr, tc.sentinel)
			}
		})
	}
}
