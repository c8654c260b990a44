package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
)

// RevokeReasonUndeclared is the revoke reason of delegations whose agent is
// no longer declared.
const RevokeReasonUndeclared = "agent no longer declared"

// RevokeUndeclared revokes every active delegation held by an agent that is
// not declared (disabling an agent is removing its declaration;
// the reconciler deletes its SPIRE entry and this ends its authority). The
// cascade takes their sub-delegations. Run calls it at start-up, before the
// first request; it returns how many delegations it revoked directly.
func (s *Server) RevokeUndeclared(ctx context.Context) (int, error) {
	var undeclared []*delegation.Delegation
	page := store.Page{Size: store.MaxPageSize}
	for {
		list, next, err := s.store.ListDelegations(ctx, store.Filter{State: delegation.StateActive}, page)
		if err != nil {
			return 0, err
		}
		for _, d := range list {
			if _, ok := s.agents.ByID(d.Agent); !ok {
				undeclared = append(undeclared, d)
			}
		}
		if next == "" {
			break
		}
		page.Token = next
	}
	revoked := 0
	for _, d := range undeclared {
		now := s.clock()
		_, _, err := s.store.RevokeDelegation(ctx, store.Revocation{
			ID: d.ID, At: now, Reason: RevokeReasonUndeclared,
			Event: audit.Event{Time: now, Type: audit.TypeRevoked, Actor: "agentid-server", DelegationID: d.ID.String(),
				Agent: d.Agent.String(), User: d.User.String(), Detail: map[string]string{"reason": RevokeReasonUndeclared}},
		})
		// Revoked meanwhile by a cascade from an earlier one of the list.
		if errors.Is(err, store.ErrAlreadyRevoked) {
			continue
		}
		if err != nil {
			return revoked, fmt.Errorf("failed to revoke %s: %w", d.ID, err)
		}
		revoked++
	}
	return revoked, nil
}
