package server

import (
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// toProto renders a delegation for the API; the state is computed at now so
// an active delegation past its expiry reads as expired.
func toProto(d *delegation.Delegation, rev store.Revision, now time.Time) *delegationv1.Delegation {
	chain := make([]string, len(d.Chain))
	for i, a := range d.Chain {
		chain[i] = a.String()
	}
	out := &delegationv1.Delegation{
		Id:      d.ID.String(),
		RootId:  d.Root.String(),
		AgentId: d.Agent.String(),
		Principal: &delegationv1.Principal{
			Issuer:  d.User.Issuer(),
			Subject: d.User.Subject(),
			Email:   d.User.Email(),
		},
		Scopes:       d.Scopes.Strings(),
		Chain:        chain,
		Depth:        uint32(d.Depth()),
		MaxDepth:     uint32(d.MaxDepth),
		Intent:       d.Intent.String(),
		CreatedAt:    timestamppb.New(d.CreatedAt),
		ExpiresAt:    timestamppb.New(d.ExpiresAt),
		State:        stateToProto(d.EffectiveState(now)),
		RevokeReason: d.RevokeReason,
		Revision:     uint64(rev),
	}
	if !d.Parent.IsZero() {
		out.ParentId = d.Parent.String()
	}
	if !d.CreatedBy.IsZero() {
		out.CreatedBy = d.CreatedBy.String()
	}
	if !d.RevokedAt.IsZero() {
		out.RevokedAt = timestamppb.New(d.RevokedAt)
	}
	return out
}

func stateToProto(s delegation.State) delegationv1.State {
	switch s {
	case delegation.StateActive:
		return delegationv1.State_STATE_ACTIVE
	case delegation.StateRevoked:
		return delegationv1.State_STATE_REVOKED
	case delegation.StateExpired:
		return delegationv1.State_STATE_EXPIRED
	}
	return delegationv1.State_STATE_UNSPECIFIED
}

func eventToProto(e *audit.Event) *auditv1.Event {
	out := &auditv1.Event{
		Sequence:     e.Sequence,
		Time:         timestamppb.New(e.Time),
		Type:         auditv1.EventType(e.Type),
		Actor:        e.Actor,
		DelegationId: e.DelegationID,
		AgentId:      e.Agent,
		Detail:       e.Detail,
		PrevHash:     e.PrevHash[:],
		Hash:         e.Hash[:],
	}
	if iss, sub, ok := splitUser(e.User); ok {
		out.Principal = &delegationv1.Principal{Issuer: iss, Subject: sub}
	}
	return out
}

// splitUser undoes delegation.User.String ("issuer#subject"). Issuers are
// URLs without fragments, so the first '#' separates.
func splitUser(s string) (iss, sub string, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '#' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}
