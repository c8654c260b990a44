package agentclient

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// deniedTexts are the messages of agentid's composer for a delegation it
// refuses (pkg/plugin/credentialcomposer/delegation: ErrUnknownDelegation,
// ErrRevoked, ErrExpired, ErrForeignDelegation). SPIRE v1.13.3 carries the
// composer's message, but not its code, to the workload:
//
//	composer      PermissionDenied "composer: delegation is revoked: dlg_…"
//	spire-server  Internal "failed to sign JWT-SVID: credentialcomposer(agentid): composer: delegation is revoked: dlg_…"
//	spire-agent   Unavailable "could not fetch JWT-SVID: failed to fetch JWT SVID: rpc error: code = Internal desc = failed to sign JWT-SVID: …"
//
// (pkg/server/api/svid/v1 mintJWTSVID, pkg/agent/client NewJWTSVID,
// pkg/agent/endpoints/workload fetchJWTSVID). A test of this package checks
// these texts against the composer's sentinels, and e2e_test.go (tag e2e)
// against real SPIRE v1.13.3 with the composer loaded.
var deniedTexts = []string{
	"composer: unknown delegation",
	"composer: delegation is revoked",
	"composer: delegation is expired",
	"composer: delegation belongs to another agent",
}

// maxReason bounds how much of a Workload API message is kept in an error.
const maxReason = 512

// classify turns an error of the Workload API's FetchJWTSVID into one
// wrapping a sentinel of errors.go. The SPIRE agent answers:
//
//   - InvalidArgument "audience must be specified" / "invalid requested
//     SPIFFE ID": ErrInvalidRequest;
//   - PermissionDenied "no identity issued": ErrNoIdentity;
//   - Unavailable "could not fetch JWT-SVID: …" for every failure of the
//     server-side NewJWTSVID, whether the SPIRE server was unreachable or
//     the composer refused: ErrDelegationDenied when the message carries
//     one of the composer's refusal texts, else ErrUnavailable;
//   - anything the client library reports about the socket (Unavailable
//     "connection error", DeadlineExceeded): ErrUnavailable.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	st, ok := status.FromError(err)
	if !ok {
		// go-spiffe's own checks of the response (no SVID, a token it cannot
		// parse): the Workload API misbehaved.
		return fmt.Errorf("%w: %s", ErrUnavailable, truncateReason(err.Error()))
	}
	msg := truncateReason(st.Message())
	switch st.Code() {
	case codes.InvalidArgument:
		return fmt.Errorf("%w: %s", ErrInvalidRequest, msg)
	case codes.PermissionDenied:
		return fmt.Errorf("%w: %s", ErrNoIdentity, msg)
	case codes.Unavailable:
		for _, t := range deniedTexts {
			if strings.Contains(st.Message(), t) {
				return fmt.Errorf("%w: %s", ErrDelegationDenied, composerReason(st.Message()))
			}
		}
		return fmt.Errorf("%w: %s", ErrUnavailable, msg)
	case codes.Canceled, codes.DeadlineExceeded:
		return fmt.Errorf("%w: %s", ErrUnavailable, msg)
	default:
		return fmt.Errorf("%w: %s: %s", ErrUnavailable, st.Code(), msg)
	}
}

// composerReason keeps the composer's part of a relayed message
// ("composer: delegation is revoked: dlg_…"), which is what a caller needs.
func composerReason(msg string) string {
	if i := strings.LastIndex(msg, "composer: "); i >= 0 {
		return truncateReason(msg[i:])
	}
	return truncateReason(msg)
}

func truncateReason(s string) string {
	if len(s) > maxReason {
		return s[:maxReason] + "…"
	}
	return s
}
