package apiconv_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unique"

	"github.com/agentid/agentid/pkg/apiconv"
	"github.com/agentid/agentid/pkg/delegation"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

const (
	orchestrator = "spiffe://example.org/agent/orchestrator"
	analyst      = "spiffe://example.org/agent/market-analysis"
	rootID       = "dlg_01jc0000000000000000000000"
	childID      = "dlg_01jd0000000000000000000000"
)

// child is a valid sub-delegation from orchestrator to analyst.
func child() *delegationv1.Delegation {
	return &delegationv1.Delegation{
		Id: childID, ParentId: rootID, RootId: rootID, AgentId: analyst,
		Principal: &delegationv1.Principal{Issuer: "https://idp.example.com", Subject: "alice", Email: "alice@example.com"},
		Scopes:    []string{"campaigns:read", "compliance:check"},
		Chain:     []string{orchestrator, analyst}, Depth: 2, MaxDepth: 2,
		Intent: "check the spring campaign", CreatedBy: orchestrator,
		CreatedAt: timestamppb.New(t0.Add(-time.Hour)), ExpiresAt: timestamppb.New(t0.Add(10*time.Hour + 500*time.Millisecond)),
		State: delegationv1.State_STATE_REVOKED, RevokedAt: timestamppb.New(t0), RevokeReason: "done",
	}
}

func TestDelegationFromProtoWith(t *testing.T) {
	full, err := apiconv.DelegationFromProto(child())
	if err != nil {
		t.Fatal(err)
	}
	if full.Intent.String() != "check the spring campaign" || full.CreatedBy.String() != orchestrator || full.RevokeReason != "done" {
		t.Fatalf("full decode dropped audit facts: %+v", full)
	}

	var interned []string
	lean, err := apiconv.DelegationFromProtoWith(child(), apiconv.DecodeOptions{Lean: true, Intern: func(s string) string {
		interned = append(interned, s)
		return unique.Make(s).Value()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if lean.ID.String() != childID || lean.Parent.String() != rootID || lean.Root.String() != rootID ||
		lean.Agent.String() != analyst || lean.User.String() != "https://idp.example.com#alice" || lean.User.Email() != "alice@example.com" ||
		lean.Scopes.String() != "campaigns:read compliance:check" || len(lean.Chain) != 2 || lean.Chain[0].String() != orchestrator ||
		lean.MaxDepth != 2 || !lean.CreatedAt.Equal(t0.Add(-time.Hour)) || !lean.ExpiresAt.Equal(t0.Add(10*time.Hour+500*time.Millisecond)) ||
		lean.State != delegation.StateRevoked || !lean.RevokedAt.Equal(t0) {
		t.Fatalf("lean decode: %+v", lean)
	}
	if lean.Intent.String() != "" || !lean.CreatedBy.IsZero() || lean.RevokeReason != "" {
		t.Fatalf("lean decode kept audit facts: intent %q created_by %q reason %q", lean.Intent, lean.CreatedBy, lean.RevokeReason)
	}
	want := []string{analyst, "https://idp.example.com", "alice", "alice@example.com", "campaigns:read", "compliance:check", orchestrator, analyst}
	if strings.Join(interned, " ") != strings.Join(want, " ") {
		t.Fatalf("interned %q, want %q", interned, want)
	}
}

func TestDelegationFromProtoRejects(t *testing.T) {
	cases := []struct {
		name     string
		mutate   func(d *delegationv1.Delegation)
		wantErr  string
		sentinel error
	}{
		{"bad id", func(d *delegationv1.Delegation) { d.Id = "dlg_x" },
			"apiconv: delegation id: delegation: invalid delegation id: length 5, want 30", delegation.ErrInvalidID},
		{"bad parent", func(d *delegationv1.Delegation) { d.ParentId = "x" },
			"apiconv: delegation parent_id: delegation: invalid delegation id: length 1, want 30", delegation.ErrInvalidID},
		{"no root", func(d *delegationv1.Delegation) { d.RootId = "" },
			"apiconv: delegation root_id: delegation: invalid delegation id: empty", delegation.ErrInvalidID},
		{"root is not the parent's root", func(d *delegationv1.Delegation) { d.ParentId = "" },
			"apiconv: delegation: invalid delegation: root must equal id exactly when there is no parent", delegation.ErrInvalidDelegation},
		{"bad agent", func(d *delegationv1.Delegation) { d.AgentId = "https://example.org/a" },
			"apiconv: delegation agent_id: delegation: invalid delegation: scheme is missing or invalid", delegation.ErrInvalidDelegation},
		{"long agent", func(d *delegationv1.Delegation) { d.AgentId = "spiffe://example.org/" + strings.Repeat("a", 2048) },
			"apiconv: delegation agent_id: delegation: invalid delegation: 2069 bytes, at most 2048", delegation.ErrInvalidDelegation},
		{"no principal", func(d *delegationv1.Delegation) { d.Principal = nil },
			"apiconv: delegation principal: delegation: invalid user: issuer is empty", delegation.ErrInvalidUser},
		{"http issuer", func(d *delegationv1.Delegation) { d.Principal.Issuer = "http://idp.example.com" },
			"apiconv: delegation principal: delegation: invalid user: issuer must be an absolute https URL", delegation.ErrInvalidUser},
		{"no scopes", func(d *delegationv1.Delegation) { d.Scopes = nil },
			"apiconv: delegation: invalid delegation: scopes are empty", delegation.ErrInvalidDelegation},
		{"too many scopes", func(d *delegationv1.Delegation) { d.Scopes = make([]string, 65) },
			"apiconv: delegation scopes: delegation: invalid scope: 65 scopes, at most 64", delegation.ErrInvalidScope},
		{"bad scope", func(d *delegationv1.Delegation) { d.Scopes = []string{"a\"b"} },
			"apiconv: delegation scopes: delegation: invalid scope: scope 0: character '\"' at byte 1", delegation.ErrInvalidScope},
		{"depth mismatch", func(d *delegationv1.Delegation) { d.Depth = 1 },
			"apiconv: delegation depth: delegation: invalid delegation: 1 does not match a chain of 2", delegation.ErrInvalidDelegation},
		{"chain too long", func(d *delegationv1.Delegation) { d.Chain = make([]string, 17); d.Depth = 17 },
			"apiconv: delegation chain: delegation: invalid delegation: 17 entries, at most 16", delegation.ErrInvalidDelegation},
		{"bad chain entry", func(d *delegationv1.Delegation) { d.Chain[0] = "spiffe://Example.org/a" },
			"apiconv: delegation chain[0]: delegation: invalid delegation: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores", delegation.ErrInvalidDelegation},
		{"chain not ending with agent", func(d *delegationv1.Delegation) { d.Chain[1] = orchestrator },
			"apiconv: delegation: invalid delegation: chain must end with the agent", delegation.ErrInvalidDelegation},
		{"max depth huge", func(d *delegationv1.Delegation) { d.MaxDepth = 1 << 31 },
			"apiconv: delegation max_depth: delegation: invalid delegation: 2147483648 outside 1..16", delegation.ErrInvalidDelegation},
		{"depth over max", func(d *delegationv1.Delegation) { d.MaxDepth = 1 },
			"apiconv: delegation: maximum depth exceeded: depth 2, at most 1", delegation.ErrDepthExceeded},
		{"bad created_by", func(d *delegationv1.Delegation) { d.CreatedBy = "spiffe://" },
			"apiconv: delegation created_by: delegation: invalid delegation: trust domain is missing", delegation.ErrInvalidDelegation},
		{"long intent", func(d *delegationv1.Delegation) { d.Intent = strings.Repeat("x", 2049) },
			"apiconv: delegation intent: delegation: invalid intent: 2049 bytes, at most 2048", delegation.ErrInvalidIntent},
		{"no created_at", func(d *delegationv1.Delegation) { d.CreatedAt = nil },
			"apiconv: delegation created_at: delegation: invalid delegation: is required", delegation.ErrInvalidDelegation},
		{"bad expires_at", func(d *delegationv1.Delegation) { d.ExpiresAt.Nanos = -1 },
			"apiconv: delegation expires_at: delegation: invalid delegation: is out of range", delegation.ErrInvalidDelegation},
		{"expires before created", func(d *delegationv1.Delegation) { d.ExpiresAt = d.CreatedAt },
			"apiconv: delegation: invalid delegation: expires_at must be after created_at", delegation.ErrInvalidDelegation},
		{"revoked without revoked_at", func(d *delegationv1.Delegation) { d.RevokedAt = nil },
			"apiconv: delegation revoked_at: delegation: invalid delegation: is required", delegation.ErrInvalidDelegation},
		{"unspecified state", func(d *delegationv1.Delegation) { d.State = 0 },
			"apiconv: delegation state: delegation: invalid delegation: STATE_UNSPECIFIED", delegation.ErrInvalidDelegation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, opt := range []apiconv.DecodeOptions{{}, {Lean: true, Intern: func(s string) string { return s }}} {
				if opt.Lean && (tc.name == "bad created_by" || tc.name == "long intent") {
					continue // lean decoding does not read these fields
				}
				pb := child()
				tc.mutate(pb)
				d, err := apiconv.DelegationFromProtoWith(pb, opt)
				if err == nil || err.Error() != tc.wantErr || !errors.Is(err, tc.sentinel) {
					t.Fatalf("lean=%v: got %v, %v\nwant %s (%v)", opt.Lean, d, err, tc.wantErr, tc.sentinel)
				}
			}
		})
	}
}
