package composer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/agentid/agentid/pkg/claims"
	domain "github.com/agentid/agentid/pkg/delegation"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	credentialcomposerv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/credentialcomposer/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var (
	// errNoMarker: the token asks for no delegation; SPIRE keeps its
	// defaults (answered as Unimplemented).
	errNoMarker = errors.New("composer: no delegation marker in aud")
	// errBadRequest: the claims SPIRE sent are not what a JWT-SVID has.
	errBadRequest = errors.New("composer: bad request")
)

// Claim names of the JWT-SVID itself that the composer reads or rewrites.
const (
	claimSub = "sub"
	claimAud = "aud"
	claimExp = "exp"
	claimIat = "iat"
)

// ComposeWorkloadJWTSVID turns a JWT-SVID whose aud holds one delegation
// marker into a delegated one: the delegation must be in a fresh replica,
// belong to sub, be active and unexpired. The marker is removed from aud,
// the claims of pkg/claims are added, exp is capped at the delegation's
// expiry, and the issuance is queued for the audit log. Without a marker it
// answers Unimplemented, so SPIRE keeps its defaults and plain tokens never
// depend on agentid-server. Every refusal is an error, which fails the
// token: the plugin fails closed.
//
// Codes: Unimplemented (no marker); InvalidArgument (two markers, a
// malformed marker, the marker as the only audience, a default marker
// beside a custom marker_prefix, claims SPIRE would not send); Unavailable
// (replica not ready or stale); PermissionDenied (unknown, foreign, revoked
// or expired delegation); ResourceExhausted
// (audit queue full); FailedPrecondition (not configured); Internal (the
// plugin's own failure, such as encoding the claims).
func (p *Plugin) ComposeWorkloadJWTSVID(ctx context.Context, req *credentialcomposerv1.ComposeWorkloadJWTSVIDRequest) (*credentialcomposerv1.ComposeWorkloadJWTSVIDResponse, error) {
	// The outcome is counted with one atomic add; the flusher reports the
	// counts to SPIRE in the background.
	st, err := p.getState()
	if err != nil {
		p.counters.refused[reasonNotReady].Add(1)
		return nil, err
	}
	attributes := req.GetAttributes()
	if attributes.GetClaims() == nil {
		p.counters.refused[reasonBadRequest].Add(1)
		return nil, status.Error(codes.InvalidArgument, "composer: request missing attributes")
	}
	if err := p.compose(ctx, st, req.GetSpiffeId(), attributes.Claims); err != nil {
		if !errors.Is(err, errNoMarker) {
			p.counters.refused[reasonOf(err)].Add(1)
		}
		return nil, status.Error(codeOf(err), err.Error())
	}
	p.counters.composed.Add(1)
	return &credentialcomposerv1.ComposeWorkloadJWTSVIDResponse{Attributes: attributes}, nil
}

// compose does the work of ComposeWorkloadJWTSVID on the claims, in place.
// Nothing in it waits on the network: the lookup is a read-locked map
// access (an unknown id waits at most unknownWait for the replica to catch
// up, at most maxUnknownWaiters at once), the audit record a non-blocking
// enqueue.
func (p *Plugin) compose(ctx context.Context, st *state, spiffeID string, c *structpb.Struct) error {
	fields := c.GetFields()
	aud, ok := stringList(fields[claimAud])
	if !ok {
		return fmt.Errorf("%w: aud claim is not a list of strings", errBadRequest)
	}
	rest, id, err := claims.SplitAudience(aud, st.config.markerPrefix)
	if err != nil {
		return fmt.Errorf("composer: %w", err)
	}
	if st.config.markerPrefix != claims.MarkerPrefix {
		// With a custom prefix a default marker is not a marker, but the
		// workload asked for a delegation: issuing the token with the
		// marker left in aud would look delegated to nobody and confuse
		// verifiers, so it is refused, with or without a custom marker.
		for _, a := range rest {
			if strings.HasPrefix(a, claims.MarkerPrefix) {
				return fmt.Errorf("%w: audience has the default marker prefix %s, but marker_prefix is %s",
					errBadRequest, claims.MarkerPrefix, st.config.markerPrefix)
			}
		}
	}
	switch {
	case id.IsZero():
		return errNoMarker
	case len(rest) == 0:
		return fmt.Errorf("%w: the delegation marker is the only audience", errBadRequest)
	case len(rest) > maxAuditAudiences:
		return fmt.Errorf("%w: %d audiences, at most %d", errBadRequest, len(rest), maxAuditAudiences)
	}
	for i, a := range rest {
		if len(a) > maxAuditAudienceLen {
			return fmt.Errorf("%w: audience %d is %d bytes, at most %d", errBadRequest, i, len(a), maxAuditAudienceLen)
		}
	}
	subText := fields[claimSub].GetStringValue()
	if subText == "" || subText != spiffeID {
		return fmt.Errorf("%w: sub claim does not equal the SPIFFE ID", errBadRequest)
	}
	sub, err := spiffeid.FromString(subText)
	if err != nil {
		return fmt.Errorf("%w: sub claim is not a SPIFFE ID", errBadRequest)
	}
	exp, ok := number(fields[claimExp])
	if !ok {
		return fmt.Errorf("%w: exp claim is missing or not a number", errBadRequest)
	}

	d, err := p.lookup(ctx, st, id, sub)
	if err != nil {
		return err
	}
	now := p.now()
	// A JWT's exp is in whole seconds; never past the delegation's expiry.
	exp = math.Min(math.Floor(exp), float64(d.ExpiresAt.Unix()))
	expiresAt := time.Unix(int64(exp), 0)
	if !expiresAt.After(now) {
		return fmt.Errorf("%w: %s", ErrExpired, id)
	}
	issuedAt := now
	if iat, ok := number(fields[claimIat]); ok {
		issuedAt = time.Unix(int64(iat), 0)
	}

	values, err := p.claims.get(d)
	if err != nil {
		return err
	}

	if err := st.rt.audit.enqueue(&auditv1.TokenIssuance{
		DelegationId: id.String(),
		AgentId:      subText,
		Audiences:    rest,
		IssuedAt:     timestamppb.New(issuedAt),
		ExpiresAt:    timestamppb.New(expiresAt),
	}); err != nil {
		return err
	}

	// Nothing fails past this point: the claims change only for a token
	// whose issuance is queued for the audit log.
	for k, v := range values {
		fields[k] = v
	}
	audValues := make([]*structpb.Value, len(rest))
	for i, a := range rest {
		audValues[i] = structpb.NewStringValue(a)
	}
	fields[claimAud] = structpb.NewListValue(&structpb.ListValue{Values: audValues})
	fields[claimExp] = structpb.NewNumberValue(exp)
	return nil
}

// stringList reads aud: a list of strings, or one string.
func stringList(v *structpb.Value) ([]string, bool) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return []string{k.StringValue}, true
	case *structpb.Value_ListValue:
		values := k.ListValue.GetValues()
		out := make([]string, len(values))
		for i, e := range values {
			s, ok := e.GetKind().(*structpb.Value_StringValue)
			if !ok {
				return nil, false
			}
			out[i] = s.StringValue
		}
		return out, true
	}
	return nil, false
}

// maxNumericDate bounds exp and iat (2^33 s is in the year 2242), so that
// converting them to int64 seconds is exact.
const maxNumericDate = 1 << 33

// number reads a numeric date claim: positive and at most maxNumericDate.
func number(v *structpb.Value) (float64, bool) {
	n, ok := v.GetKind().(*structpb.Value_NumberValue)
	if !ok || math.IsNaN(n.NumberValue) || n.NumberValue <= 0 || n.NumberValue > maxNumericDate {
		return 0, false
	}
	return n.NumberValue, true
}

// codeOf maps the composer's errors to the status SPIRE receives.
func codeOf(err error) codes.Code {
	switch {
	case errors.Is(err, errNoMarker):
		return codes.Unimplemented
	case errors.Is(err, ErrNotReady), errors.Is(err, ErrStale), errors.Is(err, errAuditStopped):
		return codes.Unavailable
	case errors.Is(err, ErrUnknownDelegation), errors.Is(err, ErrForeignDelegation),
		errors.Is(err, ErrRevoked), errors.Is(err, ErrExpired):
		return codes.PermissionDenied
	case errors.Is(err, ErrAuditQueueFull):
		return codes.ResourceExhausted
	case errors.Is(err, errBadRequest), errors.Is(err, claims.ErrMarker):
		return codes.InvalidArgument
	default:
		// Anything unclassified (claim encoding, say) is the plugin's own
		// failure, not the caller's.
		return codes.Internal
	}
}

// maxUnknownWaiters bounds the lookups of unknown ids waiting at once. Each
// waiter holds one of SPIRE's signing calls for up to unknownWait, and any
// workload can ask for random ids: past the bound an unknown id is refused
// at once, so such a workload cannot tie up SPIRE's handlers.
const maxUnknownWaiters = 32

// lookup asks the replica, and when it does not know id yet, waits for its
// next updates up to tuning.unknownWait: a delegation created a moment ago
// may still be on its way down the watch stream. At most maxUnknownWaiters
// lookups wait at once; the others answer unknown at once. Every other
// answer is final at once.
func (p *Plugin) lookup(ctx context.Context, st *state, id domain.ID, sub spiffeid.ID) (*domain.Delegation, error) {
	d, changed, err := st.rt.replica.lookupOrWait(id, sub, p.now(), st.config.maxStaleness)
	if !errors.Is(err, ErrUnknownDelegation) {
		return d, err
	}
	if p.unknownWaiters.Add(1) > maxUnknownWaiters {
		p.unknownWaiters.Add(-1)
		return nil, err
	}
	defer p.unknownWaiters.Add(-1)
	timer := time.NewTimer(p.tuning.unknownWait)
	defer timer.Stop()
	for {
		if p.hooks.lookupWaiting != nil {
			p.hooks.lookupWaiting()
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil, err
		case <-ctx.Done():
			return nil, err
		}
		d, changed, err = st.rt.replica.lookupOrWait(id, sub, p.now(), st.config.maxStaleness)
		if !errors.Is(err, ErrUnknownDelegation) {
			return d, err
		}
	}
}
