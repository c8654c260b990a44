package composer

import (
	"errors"
	"strings"
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

func TestFromProtoRejects(t *testing.T) {
	cases := []struct {
		name     string
		mutate   func(d *delegationv1.Delegation)
		wantErr  string
		sentinel error
	}{
		{"nil", nil, "delegation: invalid delegation: missing", domain.ErrInvalidDelegation},
		{"bad id", func(d *delegationv1.Delegation) { d.Id = "dlg_x" },
			"delegation: invalid delegation id: length 5, want 30", domain.ErrInvalidID},
		{"bad parent", func(d *delegationv1.Delegation) { d.ParentId = "x" },
			"parent_id: delegation: invalid delegation id: length 1, want 30", domain.ErrInvalidID},
		{"no root", func(d *delegationv1.Delegation) { d.RootId = "" },
			"root_id: delegation: invalid delegation id: empty", domain.ErrInvalidID},
		{"root differs from parent's root is not checked, but root == id is", func(d *delegationv1.Delegation) { d.RootId = childID },
			"delegation: invalid delegation: root must equal id exactly when there is no parent", domain.ErrInvalidDelegation},
		{"bad agent", func(d *delegationv1.Delegation) { d.AgentId = "https://example.org/a" },
			"delegation: invalid delegation: agent_id: scheme is missing or invalid", domain.ErrInvalidDelegation},
		{"long agent", func(d *delegationv1.Delegation) { d.AgentId = "spiffe://example.org/" + strings.Repeat("a", 2048) },
			"delegation: invalid delegation: agent_id: 2069 bytes, at most 2048", domain.ErrInvalidDelegation},
		{"no principal", func(d *delegationv1.Delegation) { d.Principal = nil },
			"delegation: invalid user: issuer is empty", domain.ErrInvalidUser},
		{"http issuer", func(d *delegationv1.Delegation) { d.Principal.Issuer = "http://idp.example.com" },
			"delegation: invalid user: issuer must be an absolute https URL", domain.ErrInvalidUser},
		{"no scopes", func(d *delegationv1.Delegation) { d.Scopes = nil },
			"delegation: invalid delegation: scopes are empty", domain.ErrInvalidDelegation},
		{"too many scopes", func(d *delegationv1.Delegation) { d.Scopes = make([]string, 65) },
			"delegation: invalid scope: 65 scopes, at most 64", domain.ErrInvalidScope},
		{"bad scope", func(d *delegationv1.Delegation) { d.Scopes = []string{"a\"b"} },
			"delegation: invalid scope: scope 0: character '\"' at byte 1", domain.ErrInvalidScope},
		{"depth mismatch", func(d *delegationv1.Delegation) { d.Depth = 1 },
			"delegation: invalid delegation: chain of 2 agents with depth 1", domain.ErrInvalidDelegation},
		{"chain too long", func(d *delegationv1.Delegation) { d.Chain = make([]string, 17); d.Depth = 17 },
			"delegation: invalid delegation: chain of 17 agents with depth 17", domain.ErrInvalidDelegation},
		{"bad chain entry", func(d *delegationv1.Delegation) { d.Chain[0] = "spiffe://Example.org/a" },
			"delegation: invalid delegation: chain[0]: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores", domain.ErrInvalidDelegation},
		{"chain not ending with agent", func(d *delegationv1.Delegation) { d.Chain[1] = orchestrator },
			"delegation: invalid delegation: chain must end with the agent", domain.ErrInvalidDelegation},
		{"max depth huge", func(d *delegationv1.Delegation) { d.MaxDepth = 1 << 31 },
			"delegation: invalid delegation: max depth 2147483648 outside 1..16", domain.ErrInvalidDelegation},
		{"depth over max", func(d *delegationv1.Delegation) { d.MaxDepth = 1 },
			"delegation: maximum depth exceeded: depth 2, at most 1", domain.ErrDepthExceeded},
		{"no created_at", func(d *delegationv1.Delegation) { d.CreatedAt = nil },
			"delegation: invalid delegation: created_at is missing", domain.ErrInvalidDelegation},
		{"bad expires_at", func(d *delegationv1.Delegation) { d.ExpiresAt.Nanos = -1 },
			"delegation: invalid delegation: expires_at is out of range", domain.ErrInvalidDelegation},
		{"expires before created", func(d *delegationv1.Delegation) { d.ExpiresAt = d.CreatedAt },
			"delegation: invalid delegation: expires_at must be after created_at", domain.ErrInvalidDelegation},
		{"revoked without revoked_at", func(d *delegationv1.Delegation) { d.State = delegationv1.State_STATE_REVOKED },
			"delegation: invalid delegation: revoked_at is missing", domain.ErrInvalidDelegation},
		{"expired state", func(d *delegationv1.Delegation) { d.State = delegationv1.State_STATE_EXPIRED },
			"composer: delegation is neither active nor revoked: STATE_EXPIRED", errNotLive},
		{"unspecified state", func(d *delegationv1.Delegation) { d.State = 0 },
			"composer: delegation is neither active nor revoked: STATE_UNSPECIFIED", errNotLive},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var pb *delegationv1.Delegation
			if tc.mutate != nil {
				pb = pbDelegation(childID, rootID)
				tc.mutate(pb)
			}
			_, err := fromProto(pb)
			if err == nil || err.Error() != tc.wantErr || !errors.Is(err, tc.sentinel) {
				t.Fatalf("err = %v\nwant %s (%v)", err, tc.wantErr, tc.sentinel)
			}
		})
	}
}
