package delegation_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var (
	t0           = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	orchestrator = spiffeid.RequireFromString("spiffe://example.org/agent/orchestrator")
	analyst      = spiffeid.RequireFromString("spiffe://example.org/agent/market-analysis")
	writer       = spiffeid.RequireFromString("spiffe://example.org/agent/writer")
	frontend     = spiffeid.RequireFromString("spiffe://example.org/app/chat-frontend")
)

func alice(t testing.TB) delegation.User {
	t.Helper()
	u, err := delegation.NewUser("https://idp.example.com", "alice", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func newRoot(t testing.TB, maxDepth int) *delegation.Delegation {
	t.Helper()
	d, err := delegation.NewRoot(delegation.RootParams{
		Agent:     orchestrator,
		User:      alice(t),
		Scopes:    delegation.MustParseScopes("campaigns:read", "compliance:check", "crm:write"),
		MaxDepth:  maxDepth,
		CreatedBy: frontend,
		CreatedAt: t0,
		ExpiresAt: t0.Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestNewRootFields(t *testing.T) {
	d := newRoot(t, 3)
	if d.Root != d.ID || !d.IsRoot() || d.Depth() != 1 || d.Chain[0] != orchestrator || d.State != delegation.StateActive {
		t.Fatalf("unexpected root: %+v", d)
	}
	if got := d.Scopes.String(); got != "campaigns:read compliance:check crm:write" {
		t.Fatalf("scopes = %q", got)
	}
}

func TestNewRootRejects(t *testing.T) {
	good := delegation.RootParams{
		Agent: orchestrator, User: alice(t), Scopes: delegation.MustParseScopes("a"),
		MaxDepth: 2, CreatedAt: t0, ExpiresAt: t0.Add(time.Minute),
	}
	tests := []struct {
		name   string
		mutate func(*delegation.RootParams)
		want   string
	}{
		{"no agent", func(p *delegation.RootParams) { p.Agent = spiffeid.ID{} }, "delegation: invalid delegation: agent is empty"},
		{"no user", func(p *delegation.RootParams) { p.User = delegation.User{} }, "delegation: invalid delegation: user is empty"},
		{"no scopes", func(p *delegation.RootParams) { p.Scopes = delegation.ScopeSet{} }, "delegation: invalid delegation: scopes are empty"},
		{"depth zero", func(p *delegation.RootParams) { p.MaxDepth = 0 }, "delegation: invalid delegation: max depth 0 outside 1..16"},
		{"depth huge", func(p *delegation.RootParams) { p.MaxDepth = 17 }, "delegation: invalid delegation: max depth 17 outside 1..16"},
		{"expiry not after creation", func(p *delegation.RootParams) { p.ExpiresAt = t0 }, "delegation: invalid delegation: expires_at must be after created_at"},
		{"no creation time", func(p *delegation.RootParams) { p.CreatedAt = time.Time{} }, "delegation: invalid delegation: created_at is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := good
			tt.mutate(&p)
			_, err := delegation.NewRoot(p)
			if err == nil || err.Error() != tt.want || !errors.Is(err, delegation.ErrInvalidDelegation) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestNewChildInvariants(t *testing.T) {
	root := newRoot(t, 2)
	child := func(mutate func(*delegation.ChildParams)) delegation.ChildParams {
		p := delegation.ChildParams{
			Agent: analyst, Scopes: delegation.MustParseScopes("campaigns:read"),
			CreatedBy: orchestrator, CreatedAt: t0.Add(time.Minute), ExpiresAt: t0.Add(30 * time.Minute),
		}
		if mutate != nil {
			mutate(&p)
		}
		return p
	}

	d, err := delegation.NewChild(root, child(nil))
	if err != nil {
		t.Fatal(err)
	}
	if d.Parent != root.ID || d.Root != root.ID || d.User != root.User || d.Depth() != 2 || d.MaxDepth != 2 {
		t.Fatalf("unexpected child: %+v", d)
	}
	if len(d.Chain) != 2 || d.Chain[0] != orchestrator || d.Chain[1] != analyst {
		t.Fatalf("chain = %v, want [orchestrator analyst]", d.Chain)
	}

	revoked := root.Clone()
	revoked.State, revoked.RevokedAt = delegation.StateRevoked, t0

	tests := []struct {
		name    string
		parent  *delegation.Delegation
		params  delegation.ChildParams
		wantErr error
		wantMsg string
	}{
		{"wider scopes", root, child(func(p *delegation.ChildParams) {
			p.Scopes = delegation.MustParseScopes("campaigns:read", "payroll:write")
		}), delegation.ErrScopeWidening, "delegation: scopes exceed parent's: payroll:write not held by parent " + root.ID.String()},
		{"outlives parent", root, child(func(p *delegation.ChildParams) { p.ExpiresAt = t0.Add(2 * time.Hour) }),
			delegation.ErrExpiryExceedsParent, "delegation: expiry exceeds parent's: 2026-11-26T14:00:00Z is after parent's 2026-11-26T13:00:00Z"},
		{"parent revoked", revoked, child(nil), delegation.ErrParentInactive, "delegation: parent is not active: parent " + root.ID.String() + " is revoked"},
		{"parent expired", root, child(func(p *delegation.ChildParams) { p.CreatedAt = t0.Add(time.Hour) }),
			delegation.ErrParentInactive, "delegation: parent is not active: parent " + root.ID.String() + " is expired"},
		{"depth", d, child(func(p *delegation.ChildParams) { p.Agent = writer }), delegation.ErrDepthExceeded, "delegation: maximum depth exceeded: depth 3, at most 2"},
		{"cycle", root, child(func(p *delegation.ChildParams) { p.Agent = orchestrator }), delegation.ErrAgentInChain,
			"delegation: agent already in the chain: spiffe://example.org/agent/orchestrator"},
		{"empty scopes", root, child(func(p *delegation.ChildParams) { p.Scopes = delegation.ScopeSet{} }), delegation.ErrInvalidDelegation,
			"delegation: invalid delegation: scopes are empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := delegation.NewChild(tt.parent, tt.params)
			if !errors.Is(err, tt.wantErr) || err.Error() != tt.wantMsg {
				t.Fatalf("err = %v, want %q", err, tt.wantMsg)
			}
		})
	}
}

func TestEffectiveState(t *testing.T) {
	d := newRoot(t, 1)
	if got := d.EffectiveState(t0.Add(time.Hour - time.Nanosecond)); got != delegation.StateActive {
		t.Fatalf("before expiry: %s", got)
	}
	if got := d.EffectiveState(t0.Add(time.Hour)); got != delegation.StateExpired {
		t.Fatalf("at expiry: %s", got)
	}
	var zero delegation.Delegation
	if zero.ActiveAt(t0) {
		t.Fatal("zero delegation must not be active")
	}
}

func TestJSONRoundTrip(t *testing.T) {
	root := newRoot(t, 2)
	d, err := delegation.NewChild(root, delegation.ChildParams{
		Agent: analyst, Scopes: delegation.MustParseScopes("campaigns:read"), Intent: mustIntent(t, "check spring\ncampaign"),
		CreatedBy: orchestrator, CreatedAt: t0, ExpiresAt: t0.Add(time.Minute),
	})
	if err != nil {
		t.Fatal(err)
	}
	d.State, d.RevokedAt, d.RevokeReason = delegation.StateRevoked, t0.Add(time.Second), "done"
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var back delegation.Delegation
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(&back)
	if !bytes.Equal(b, b2) {
		t.Fatalf("round trip changed the record:\n%s\n%s", b, b2)
	}
	if back.Intent.String() != "check spring\ncampaign" || back.RevokeReason != "done" || !back.RevokedAt.Equal(d.RevokedAt) {
		t.Fatalf("round trip lost fields: %+v", back)
	}
}

func TestJSONRejectsCorruptRecords(t *testing.T) {
	b, _ := json.Marshal(newRoot(t, 2))
	tests := []struct{ name, from, to, want string }{
		{"bad id", `"id":"dlg_`, `"id":"dlx_`, `delegation: invalid delegation id: missing "dlg_" prefix`},
		{"bad scope", `"campaigns:read"`, `"campaigns read"`, "delegation: invalid scope: scope 0: whitespace at byte 9"},
		{"bad state", `"state":"active"`, `"state":"paused"`, `delegation: invalid delegation: unknown state "paused"`},
		{"chain mismatch", `"chain":["spiffe://example.org/agent/orchestrator"]`, `"chain":["spiffe://example.org/agent/writer"]`,
			"delegation: invalid delegation: chain must end with the agent"},
		{"user", `"sub":"alice"`, `"sub":""`, "delegation: invalid user: subject is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := string(b)
			if !strings.Contains(s, tt.from) {
				t.Fatalf("fixture lacks %s: %s", tt.from, s)
			}
			var d delegation.Delegation
			err := json.Unmarshal([]byte(strings.Replace(s, tt.from, tt.to, 1)), &d)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func mustIntent(t testing.TB, s string) delegation.Intent {
	t.Helper()
	i, err := delegation.ParseIntent(s)
	if err != nil {
		t.Fatal(err)
	}
	return i
}
