package composer

import (
	"errors"
	"fmt"
	"unique"

	"github.com/agentid/agentid/pkg/apiconv"
	domain "github.com/agentid/agentid/pkg/delegation"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
)

// errNotLive is returned by fromProto for a delegation whose state is
// neither active nor revoked: nothing to keep.
var errNotLive = errors.New("composer: delegation is neither active nor revoked")

// fromProto converts a delegation received on the watch stream with
// apiconv's decoder, which checks it with the domain's own invariants. A
// delegation that fails is never kept: the replica treats it as unknown, so
// a malformed record can only make tokens fail.
//
// Only active and revoked delegations are kept (an expired one can issue
// nothing, and the server sends its state at the time of the change). The
// replica keeps only what tokens need (apiconv's Lean: no intent,
// created_by or revoke reason), and strings that repeat across delegations
// are interned, so that 100,000 delegations of a few agents and users stay
// small.
func fromProto(pb *delegationv1.Delegation) (*domain.Delegation, error) {
	if pb != nil {
		if st := pb.GetState(); st != delegationv1.State_STATE_ACTIVE && st != delegationv1.State_STATE_REVOKED {
			return nil, fmt.Errorf("%w: %s", errNotLive, st)
		}
	}
	return apiconv.DelegationFromProtoWith(pb, apiconv.DecodeOptions{Lean: true, Intern: intern})
}

// intern returns the canonical copy of s, so that equal strings received in
// many messages share one allocation. Sharing is best effort (the canonical
// map forgets values nobody holds a handle to), which bounds its own memory.
func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}
