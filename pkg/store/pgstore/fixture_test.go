package pgstore

import (
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store/storetest"
)

// newRoot builds a root delegation of storetest.Alice to agent with a
// fresh id.
func newRoot(t testing.TB, agent spiffeid.ID) *delegation.Delegation {
	t.Helper()
	d, err := delegation.NewRoot(delegation.RootParams{
		Agent: agent, User: storetest.Alice, Scopes: delegation.MustParseScopes("crm:read"),
		MaxDepth: delegation.MaxDepthLimit, CreatedAt: storetest.T0, ExpiresAt: storetest.T0.Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newChild(t testing.TB, parent *delegation.Delegation, agent spiffeid.ID) *delegation.Delegation {
	t.Helper()
	d, err := delegation.NewChild(parent, delegation.ChildParams{
		Agent: agent, Scopes: parent.Scopes, CreatedAt: storetest.T0, ExpiresAt: parent.ExpiresAt,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func createdEvent(d *delegation.Delegation) audit.Event {
	typ := audit.TypeDelegationCreated
	if !d.IsRoot() {
		typ = audit.TypeSubDelegated
	}
	return audit.Event{Time: d.CreatedAt, Type: typ, Actor: "local"}
}
