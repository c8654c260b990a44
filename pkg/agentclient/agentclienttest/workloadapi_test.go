package agentclienttest

import (
	"errors"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/internal/testca"
	composer "github.com/agentid/agentid/pkg/plugin/credentialcomposer/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// The fake's refusals are the real composer's: same sentinels, same text,
// so pkg/agentclient's classification is tested against what SPIRE relays.
func TestFakeComposerErrorsAreTheComposers(t *testing.T) {
	now := time.Now()
	agent := spiffeid.RequireFromString("spiffe://example.org/agent/a")
	other := spiffeid.RequireFromString("spiffe://example.org/agent/b")
	mk := func(s string, state delegation.State, exp time.Time) *delegation.Delegation {
		return &delegation.Delegation{ID: delegation.MustParseID(s), Agent: agent, State: state, ExpiresAt: exp}
	}
	active := mk("dlg_01jd0000000000000000000001", delegation.StateActive, now.Add(time.Hour))
	revoked := mk("dlg_01jd0000000000000000000002", delegation.StateRevoked, now.Add(time.Hour))
	expired := mk("dlg_01jd0000000000000000000003", delegation.StateActive, now.Add(-time.Hour))
	unknown := delegation.MustParseID("dlg_01jd0000000000000000000004")
	a := NewAuthority(t, AuthorityConfig{CA: testca.New(t, spiffeid.RequireTrustDomainFromString("example.org")), Delegations: Map(active, revoked, expired)})
	tests := []struct {
		name string
		sub  spiffeid.ID
		id   delegation.ID
		want error
	}{
		{"unknown", agent, unknown, composer.ErrUnknownDelegation},
		{"foreign", other, active.ID, composer.ErrForeignDelegation},
		{"revoked", agent, revoked.ID, composer.ErrRevoked},
		{"expired", agent, expired.ID, composer.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.mint(t.Context(), tt.sub, []string{"aud", claims.Marker(tt.id)})
			if !errors.Is(err, tt.want) || err.Error() != tt.want.Error()+": "+tt.id.String() {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}
