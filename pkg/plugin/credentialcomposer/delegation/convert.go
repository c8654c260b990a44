package composer

import (
	"errors"
	"fmt"
	"time"
	"unique"

	domain "github.com/agentid/agentid/pkg/delegation"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// errNotLive is returned by fromProto for a delegation whose state is
// neither active nor revoked: nothing to keep.
var errNotLive = errors.New("composer: delegation is neither active nor revoked")

// fromProto converts a delegation received on the watch stream into the
// domain type and checks it with the domain's own invariants (Validate), plus
// depth == len(chain). A delegation that fails is never kept: the replica
// treats it as unknown, so a malformed record can only make tokens fail.
//
// The replica keeps only what tokens need: intent, created_by and the revoke
// reason are not copied (they are audit facts, and the intent alone may be
// 2 KiB). Strings that repeat across delegations (SPIFFE IDs, issuers,
// scopes) are interned so that 100,000 delegations of a few agents and users
// stay small.
func fromProto(pb *delegationv1.Delegation) (*domain.Delegation, error) {
	if pb == nil {
		return nil, fmt.Errorf("%w: missing", domain.ErrInvalidDelegation)
	}
	d := new(domain.Delegation)
	var err error
	if d.ID, err = domain.ParseID(pb.GetId()); err != nil {
		return nil, err
	}
	if pb.GetParentId() != "" {
		if d.Parent, err = domain.ParseID(pb.GetParentId()); err != nil {
			return nil, fmt.Errorf("parent_id: %w", err)
		}
	}
	if d.Root, err = domain.ParseID(pb.GetRootId()); err != nil {
		return nil, fmt.Errorf("root_id: %w", err)
	}
	if d.Agent, err = spiffeID(pb.GetAgentId()); err != nil {
		return nil, fmt.Errorf("%w: agent_id: %v", domain.ErrInvalidDelegation, err)
	}
	p := pb.GetPrincipal()
	if d.User, err = domain.NewUser(intern(p.GetIssuer()), intern(p.GetSubject()), intern(p.GetEmail())); err != nil {
		return nil, err
	}
	if len(pb.GetScopes()) > domain.MaxScopes {
		return nil, fmt.Errorf("%w: %d scopes, at most %d", domain.ErrInvalidScope, len(pb.GetScopes()), domain.MaxScopes)
	}
	scopes := make([]string, len(pb.GetScopes()))
	for i, s := range pb.GetScopes() {
		scopes[i] = intern(s)
	}
	if d.Scopes, err = domain.ParseScopes(scopes); err != nil {
		return nil, err
	}
	if n := len(pb.GetChain()); n > domain.MaxDepthLimit || uint32(n) != pb.GetDepth() {
		return nil, fmt.Errorf("%w: chain of %d agents with depth %d", domain.ErrInvalidDelegation, n, pb.GetDepth())
	}
	d.Chain = make([]spiffeid.ID, len(pb.GetChain()))
	for i, s := range pb.GetChain() {
		if d.Chain[i], err = spiffeID(s); err != nil {
			return nil, fmt.Errorf("%w: chain[%d]: %v", domain.ErrInvalidDelegation, i, err)
		}
	}
	if pb.GetMaxDepth() > domain.MaxDepthLimit {
		return nil, fmt.Errorf("%w: max depth %d outside 1..%d", domain.ErrInvalidDelegation, pb.GetMaxDepth(), domain.MaxDepthLimit)
	}
	d.MaxDepth = int(pb.GetMaxDepth())
	if d.CreatedAt, err = timestamp(pb.GetCreatedAt(), "created_at"); err != nil {
		return nil, err
	}
	if d.ExpiresAt, err = timestamp(pb.GetExpiresAt(), "expires_at"); err != nil {
		return nil, err
	}
	switch pb.GetState() {
	case delegationv1.State_STATE_ACTIVE:
		d.State = domain.StateActive
	case delegationv1.State_STATE_REVOKED:
		d.State = domain.StateRevoked
		if d.RevokedAt, err = timestamp(pb.GetRevokedAt(), "revoked_at"); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: %s", errNotLive, pb.GetState())
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// timestamp converts a required protobuf timestamp.
func timestamp(ts *timestamppb.Timestamp, field string) (time.Time, error) {
	if ts == nil {
		return time.Time{}, fmt.Errorf("%w: %s is missing", domain.ErrInvalidDelegation, field)
	}
	if ts.CheckValid() != nil {
		// Not wrapped: protobuf's text of the timestamp is deliberately unstable.
		return time.Time{}, fmt.Errorf("%w: %s is out of range", domain.ErrInvalidDelegation, field)
	}
	return ts.AsTime(), nil
}

func spiffeID(s string) (spiffeid.ID, error) {
	if len(s) > maxSPIFFEIDLength {
		return spiffeid.ID{}, fmt.Errorf("%d bytes, at most %d", len(s), maxSPIFFEIDLength)
	}
	return spiffeid.FromString(intern(s))
}

// maxSPIFFEIDLength is the bound agentid-server enforces on SPIFFE IDs.
const maxSPIFFEIDLength = 2048

// intern returns the canonical copy of s, so that equal strings received in
// many messages share one allocation. Sharing is best effort (the canonical
// map forgets values nobody holds a handle to), which bounds its own memory.
func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}
