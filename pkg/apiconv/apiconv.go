// Package apiconv converts between agentid's domain types and their gRPC
// messages, in one place, so the server, the CLI, the composer plugin and
// verifiers read and write the API the same way. Decoding validates: a
// message that does not make a valid domain value is an error naming the
// field.
package apiconv

import (
	"fmt"
	"strings"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// DelegationToProto renders d; its state is computed at now, so an active
// delegation past its expiry reads as expired. rev is the revision of its
// last change, 0 when unknown.
func DelegationToProto(d *delegation.Delegation, rev uint64, now time.Time) *delegationv1.Delegation {
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
		Depth:        uint32(d.Depth()),  //nolint:gosec // depth <= delegation.MaxDepthLimit (validated by NewRoot/NewChild)
		MaxDepth:     uint32(d.MaxDepth), //nolint:gosec // max depth <= delegation.MaxDepthLimit (validated)
		Intent:       d.Intent.String(),
		CreatedAt:    timestamppb.New(d.CreatedAt),
		ExpiresAt:    timestamppb.New(d.ExpiresAt),
		State:        StateToProto(d.EffectiveState(now)),
		RevokeReason: d.RevokeReason,
		Revision:     rev,
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

// StateToProto maps a domain state to the API enum.
func StateToProto(s delegation.State) delegationv1.State {
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

// DelegationFromProto decodes and validates a delegation from the API. An
// EXPIRED state is stored as active (expiry is derived from the clock).
func DelegationFromProto(p *delegationv1.Delegation) (*delegation.Delegation, error) {
	return DelegationFromProtoWith(p, DecodeOptions{})
}

// DecodeOptions tune DelegationFromProtoWith for a caller that keeps many
// decoded delegations in memory, such as the composer's replica.
type DecodeOptions struct {
	// Lean leaves out intent, created_by and revoke_reason: audit facts that
	// no token needs (the intent alone may be 2 KiB).
	Lean bool
	// Intern, when set, returns the copy of a string to keep. Strings that
	// repeat across delegations (SPIFFE IDs, issuers, subjects, e-mail
	// addresses, scopes) go through it, so that a caller passing
	// unique.Make(s).Value() keeps one copy of each.
	Intern func(string) string
}

// maxSPIFFEIDLength is the bound agentid-server puts on SPIFFE IDs (the
// longest the SPIFFE specification allows); a longer one is refused before
// it is parsed or kept.
const maxSPIFFEIDLength = 2048

// DelegationFromProtoWith is DelegationFromProto with options. Errors name
// the field and wrap the delegation package's sentinels where one applies.
func DelegationFromProtoWith(p *delegationv1.Delegation, opt DecodeOptions) (*delegation.Delegation, error) {
	if p == nil {
		return nil, fmt.Errorf("apiconv: %w: missing", delegation.ErrInvalidDelegation)
	}
	intern := opt.Intern
	if intern == nil {
		intern = func(s string) string { return s }
	}
	fail := func(field string, err error) (*delegation.Delegation, error) {
		return nil, fmt.Errorf("apiconv: delegation %s: %w", field, err)
	}
	spiffeID := func(s string) (spiffeid.ID, error) {
		if len(s) > maxSPIFFEIDLength {
			return spiffeid.ID{}, fmt.Errorf("%w: %d bytes, at most %d", delegation.ErrInvalidDelegation, len(s), maxSPIFFEIDLength)
		}
		id, err := spiffeid.FromString(intern(s))
		if err != nil {
			return spiffeid.ID{}, fmt.Errorf("%w: %w", delegation.ErrInvalidDelegation, err)
		}
		return id, nil
	}
	var d delegation.Delegation
	var err error
	if d.ID, err = delegation.ParseID(p.GetId()); err != nil {
		return fail("id", err)
	}
	if d.Root, err = delegation.ParseID(p.GetRootId()); err != nil {
		return fail("root_id", err)
	}
	if p.GetParentId() != "" {
		if d.Parent, err = delegation.ParseID(p.GetParentId()); err != nil {
			return fail("parent_id", err)
		}
	}
	if d.Agent, err = spiffeID(p.GetAgentId()); err != nil {
		return fail("agent_id", err)
	}
	pr := p.GetPrincipal()
	if d.User, err = delegation.NewUser(intern(pr.GetIssuer()), intern(pr.GetSubject()), intern(pr.GetEmail())); err != nil {
		return fail("principal", err)
	}
	if n := len(p.GetScopes()); n > delegation.MaxScopes {
		return fail("scopes", fmt.Errorf("%w: %d scopes, at most %d", delegation.ErrInvalidScope, n, delegation.MaxScopes))
	}
	scopes := p.GetScopes()
	if opt.Intern != nil {
		scopes = make([]string, len(scopes))
		for i, s := range p.GetScopes() {
			scopes[i] = intern(s)
		}
	}
	if d.Scopes, err = delegation.ParseScopes(scopes); err != nil {
		return fail("scopes", err)
	}
	if n := len(p.GetChain()); n > delegation.MaxDepthLimit {
		return fail("chain", fmt.Errorf("%w: %d entries, at most %d", delegation.ErrInvalidDelegation, n, delegation.MaxDepthLimit))
	}
	if n := len(p.GetChain()); uint32(n) != p.GetDepth() { //nolint:gosec // n <= delegation.MaxDepthLimit, checked just above
		return fail("depth", fmt.Errorf("%w: %d does not match a chain of %d", delegation.ErrInvalidDelegation, p.GetDepth(), n))
	}
	d.Chain = make([]spiffeid.ID, len(p.GetChain()))
	for i, s := range p.GetChain() {
		if d.Chain[i], err = spiffeID(s); err != nil {
			return fail(fmt.Sprintf("chain[%d]", i), err)
		}
	}
	if p.GetMaxDepth() > delegation.MaxDepthLimit {
		return fail("max_depth", fmt.Errorf("%w: %d outside 1..%d", delegation.ErrInvalidDelegation, p.GetMaxDepth(), delegation.MaxDepthLimit))
	}
	d.MaxDepth = int(p.GetMaxDepth())
	if !opt.Lean {
		if d.Intent, err = delegation.ParseIntent(p.GetIntent()); err != nil {
			return fail("intent", err)
		}
		if p.GetCreatedBy() != "" {
			if d.CreatedBy, err = spiffeID(p.GetCreatedBy()); err != nil {
				return fail("created_by", err)
			}
		}
	}
	if d.CreatedAt, err = timestamp(p.GetCreatedAt()); err != nil {
		return fail("created_at", err)
	}
	if d.ExpiresAt, err = timestamp(p.GetExpiresAt()); err != nil {
		return fail("expires_at", err)
	}
	switch p.GetState() {
	case delegationv1.State_STATE_ACTIVE, delegationv1.State_STATE_EXPIRED:
		d.State = delegation.StateActive
	case delegationv1.State_STATE_REVOKED:
		d.State = delegation.StateRevoked
		if d.RevokedAt, err = timestamp(p.GetRevokedAt()); err != nil {
			return fail("revoked_at", err)
		}
		if !opt.Lean {
			d.RevokeReason = p.GetRevokeReason()
		}
	default:
		return fail("state", fmt.Errorf("%w: %s", delegation.ErrInvalidDelegation, p.GetState()))
	}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("apiconv: %w", err)
	}
	return &d, nil
}

// timestamp converts a required protobuf timestamp.
func timestamp(ts *timestamppb.Timestamp) (time.Time, error) {
	switch {
	case ts == nil:
		return time.Time{}, fmt.Errorf("%w: is required", delegation.ErrInvalidDelegation)
	case ts.CheckValid() != nil:
		// Not wrapped: protobuf's text of the error is deliberately unstable.
		return time.Time{}, fmt.Errorf("%w: is out of range", delegation.ErrInvalidDelegation)
	}
	return ts.AsTime(), nil
}

// EventToProto renders an audit event.
func EventToProto(e *audit.Event) *auditv1.Event {
	out := &auditv1.Event{
		Sequence:     e.Sequence,
		Time:         timestamppb.New(e.Time),
		Type:         auditv1.EventType(e.Type), //nolint:gosec // audit.Type is a small enum (ValidateEvent refuses unknown types)
		Actor:        e.Actor,
		DelegationId: e.DelegationID,
		AgentId:      e.Agent,
		Detail:       e.Detail,
		PrevHash:     e.PrevHash[:],
		Hash:         e.Hash[:],
	}
	// User is "issuer#subject"; issuers are URLs without fragments, so the
	// first '#' separates.
	if iss, sub, ok := strings.Cut(e.User, "#"); ok {
		out.Principal = &delegationv1.Principal{Issuer: iss, Subject: sub}
	}
	return out
}

// EventFromProto decodes an audit event; the hashes are copied, not
// recomputed, so audit.Verify can check them.
func EventFromProto(p *auditv1.Event) (audit.Event, error) {
	e := audit.Event{
		Sequence: p.GetSequence(), Time: p.GetTime().AsTime(), Type: audit.Type(p.GetType()),
		Actor: p.GetActor(), DelegationID: p.GetDelegationId(), Agent: p.GetAgentId(), Detail: p.GetDetail(),
	}
	if pr := p.GetPrincipal(); pr != nil {
		e.User = pr.GetIssuer() + "#" + pr.GetSubject()
	}
	if len(p.GetPrevHash()) != len(e.PrevHash) || len(p.GetHash()) != len(e.Hash) {
		return audit.Event{}, fmt.Errorf("apiconv: event %d: hashes must be %d bytes", p.GetSequence(), len(e.Hash))
	}
	copy(e.PrevHash[:], p.GetPrevHash())
	copy(e.Hash[:], p.GetHash())
	return e, nil
}

// AnchorToProto renders a point of the chain; nil for the zero Anchor (the
// start of a log never pruned), which leaves the field unset.
func AnchorToProto(a audit.Anchor) *auditv1.Anchor {
	if a.IsZero() {
		return nil
	}
	return &auditv1.Anchor{Sequence: a.Sequence, Hash: a.Hash[:]}
}

// AnchorFromProto decodes a point of the chain: an unset one is the zero
// Anchor; a set one needs a sequence from 1 and a 32-byte hash.
func AnchorFromProto(p *auditv1.Anchor) (audit.Anchor, error) {
	var a audit.Anchor
	if p == nil {
		return a, nil
	}
	if p.GetSequence() == 0 || len(p.GetHash()) != len(a.Hash) {
		return a, fmt.Errorf("apiconv: anchor must have a sequence from 1 and a %d-byte hash, got sequence %d and %d bytes",
			len(a.Hash), p.GetSequence(), len(p.GetHash()))
	}
	a.Sequence = p.GetSequence()
	copy(a.Hash[:], p.GetHash())
	return a, nil
}
