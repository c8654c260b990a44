package agentclient

import "errors"

// Errors callers branch on. Every error this package returns for a failed
// token fetch wraps exactly one of ErrDelegationDenied, ErrUnavailable,
// ErrNoIdentity or ErrInvalidRequest, so a caller (the sidecar, an agent
// deciding whether to retry) can answer with errors.Is.
var (
	// ErrDelegationDenied means SPIRE refused to issue a token under the
	// delegation: agentid's composer reported it unknown, revoked, expired or
	// belonging to another agent. Retrying does not help; the agent needs a
	// new delegation. See DelegatedTokens for how this is told apart from
	// ErrUnavailable, and when it cannot be.
	ErrDelegationDenied = errors.New("agentclient: delegation denied")

	// ErrUnavailable means no token could be had for a reason that may pass:
	// the Workload API socket is unreachable, the SPIRE agent cannot reach
	// the SPIRE server, the composer's replica is not ready or stale, or its
	// audit queue is full. It also covers a composer refusal whose text did
	// not reach the workload in the form this package recognises (see
	// DelegatedTokens): "SPIRE unavailable, or the delegation denied". Retry
	// with backoff.
	ErrUnavailable = errors.New("agentclient: SPIRE unavailable or delegation denied without a recognisable reason")

	// ErrNoIdentity means the Workload API issued no identity for the
	// agent's SPIFFE ID ("no identity issued"): the process is not (or not
	// yet) registered as that agent, or attestation no longer matches.
	ErrNoIdentity = errors.New("agentclient: no identity issued for this workload")

	// ErrInvalidRequest means the request was refused before anything was
	// sent, or by the Workload API as malformed: a missing audience, a zero
	// delegation id, an empty user token.
	ErrInvalidRequest = errors.New("agentclient: invalid request")

	// ErrPeerNotAuthorized means the peer of an mTLS connection presented an
	// X509-SVID that verified but whose SPIFFE ID the authorizer refused:
	// the upstream is not the service the agent meant to call. No request
	// and no token were sent to it.
	ErrPeerNotAuthorized = errors.New("agentclient: peer SPIFFE ID not authorized")

	// ErrInsecureScheme means a request for a plain http:// URL reached the
	// mTLS transport; a bearer token is never sent without TLS.
	ErrInsecureScheme = errors.New("agentclient: refusing a non-https URL")
)
