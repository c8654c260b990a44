package agentclient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	composer "github.com/agentid/agentid/pkg/plugin/credentialcomposer/delegation"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// relay wraps a composer message the way SPIRE v1.13.3 hands it to the
// workload (server svid/v1, agent client, agent workload handler).
func relay(msg string) error {
	return status.Error(codes.Unavailable, "could not fetch JWT-SVID: failed to fetch JWT SVID: rpc error: code = Internal desc = failed to sign JWT-SVID: credentialcomposer(agentid): "+msg)
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		in   error
		want error
		text string
	}{
		{"revoked", relay("composer: delegation is revoked: dlg_x"), ErrDelegationDenied,
			"agentclient: delegation denied: composer: delegation is revoked: dlg_x"},
		{"unknown", relay("composer: unknown delegation: dlg_x"), ErrDelegationDenied,
			"agentclient: delegation denied: composer: unknown delegation: dlg_x"},
		{"expired", relay("composer: delegation is expired: dlg_x"), ErrDelegationDenied,
			"agentclient: delegation denied: composer: delegation is expired: dlg_x"},
		{"foreign", relay("composer: delegation belongs to another agent: dlg_x"), ErrDelegationDenied,
			"agentclient: delegation denied: composer: delegation belongs to another agent: dlg_x"},
		{"replica stale", relay("composer: delegation replica is stale"), ErrUnavailable,
			"agentclient: SPIRE unavailable or delegation denied without a recognisable reason: could not fetch JWT-SVID: failed to fetch JWT SVID: rpc error: code = Internal desc = failed to sign JWT-SVID: credentialcomposer(agentid): composer: delegation replica is stale"},
		{"server unreachable", status.Error(codes.Unavailable, "could not fetch JWT-SVID: connection refused"), ErrUnavailable,
			"agentclient: SPIRE unavailable or delegation denied without a recognisable reason: could not fetch JWT-SVID: connection refused"},
		{"no identity", status.Error(codes.PermissionDenied, "no identity issued"), ErrNoIdentity,
			"agentclient: no identity issued for this workload: no identity issued"},
		{"bad audience", status.Error(codes.InvalidArgument, "audience must be specified"), ErrInvalidRequest,
			"agentclient: invalid request: audience must be specified"},
		{"deadline", context.DeadlineExceeded, ErrUnavailable,
			"agentclient: SPIRE unavailable or delegation denied without a recognisable reason: context deadline exceeded"},
		{"odd code", status.Error(codes.Internal, "boom"), ErrUnavailable,
			"agentclient: SPIRE unavailable or delegation denied without a recognisable reason: Internal: boom"},
		{"not a status", errors.New("there were no SVIDs in the response"), ErrUnavailable,
			"agentclient: SPIRE unavailable or delegation denied without a recognisable reason: there were no SVIDs in the response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.in)
			if !errors.Is(got, tt.want) || got.Error() != tt.text {
				t.Fatalf("classify = %v\nwant %s", got, tt.text)
			}
		})
	}
}

// TestDeniedTextsMatchComposer is the contract with the composer: the texts
// recognised here are its sentinels' messages, and its transient errors are
// not among them.
func TestDeniedTextsMatchComposer(t *testing.T) {
	for _, e := range []error{composer.ErrUnknownDelegation, composer.ErrRevoked, composer.ErrExpired, composer.ErrForeignDelegation} {
		got := classify(relay(fmt.Sprintf("%v: dlg_x", e)))
		if !errors.Is(got, ErrDelegationDenied) {
			t.Errorf("composer error %q is not recognised as a denial: %v", e, got)
		}
	}
	for _, e := range []error{composer.ErrNotReady, composer.ErrStale, composer.ErrAuditQueueFull} {
		if got := classify(relay(e.Error())); !errors.Is(got, ErrUnavailable) {
			t.Errorf("transient composer error %q classified as %v", e, got)
		}
	}
}

// FuzzClassify feeds arbitrary Workload API statuses: the result always
// wraps exactly one sentinel and never grows beyond the bound.
func FuzzClassify(f *testing.F) {
	f.Add(uint32(codes.Unavailable), "could not fetch JWT-SVID: failed to sign JWT-SVID: credentialcomposer(agentid): composer: delegation is revoked: dlg_x")
	f.Add(uint32(codes.PermissionDenied), "no identity issued")
	f.Add(uint32(codes.InvalidArgument), "audience must be specified")
	f.Add(uint32(codes.Unavailable), strings.Repeat("composer: ", 200))
	f.Fuzz(func(t *testing.T, code uint32, msg string) {
		c := codes.Code(code % 20)
		if c == codes.OK {
			return // status.Error(OK) is nil: nothing to classify
		}
		got := classify(status.Error(c, msg))
		n := 0
		for _, s := range []error{ErrDelegationDenied, ErrUnavailable, ErrNoIdentity, ErrInvalidRequest} {
			if errors.Is(got, s) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("classify(%d, %q) = %v wraps %d sentinels", code, msg, got, n)
		}
		if len(got.Error()) > 2*maxReason+200 {
			t.Fatalf("error of %d bytes", len(got.Error()))
		}
	})
}
