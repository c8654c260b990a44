package agentclient

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/agentid/agentid/pkg/apiconv"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/internal/serverdial"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ServerConfig configures a ServerClient. All fields are required.
type ServerConfig struct {
	// Address is agentid-server's mTLS listener, host:port (any gRPC target).
	Address string
	// ServerID is agentid-server's SPIFFE ID; a server presenting another one
	// is refused before anything (a user token above all) is sent.
	ServerID spiffeid.ID
	// SVIDs is the agent's X509-SVID: the server authorises the agent by it.
	SVIDs x509svid.Source
	// Bundles verifies the server's X509-SVID.
	Bundles x509bundle.Source
}

// ServerClient calls agentid-server's DelegationService over mTLS as the
// agent. Errors from the server keep their gRPC status (status.Code works on
// them): InvalidArgument, Unauthenticated (user token refused), NotFound,
// PermissionDenied, FailedPrecondition, Unavailable.
type ServerClient struct {
	conn   *grpc.ClientConn
	client delegationv1.DelegationServiceClient
}

// DialServer validates config and returns a client. The connection is made
// on first use.
func DialServer(config ServerConfig) (*ServerClient, error) {
	switch {
	case config.Address == "":
		return nil, fmt.Errorf("agentclient: invalid config: server address is required")
	case config.ServerID.IsZero():
		return nil, fmt.Errorf("agentclient: invalid config: server SPIFFE ID is required")
	case config.SVIDs == nil || config.Bundles == nil:
		return nil, fmt.Errorf("agentclient: invalid config: X509-SVID and bundle sources are required")
	}
	conn, err := serverdial.MTLS(config.Address, config.SVIDs, config.Bundles, markAuthorizer(tlsconfig.AuthorizeID(config.ServerID)))
	if err != nil {
		return nil, fmt.Errorf("agentclient: failed to set up server connection: %w", err)
	}
	return &ServerClient{conn: conn, client: delegationv1.NewDelegationServiceClient(conn)}, nil
}

// Close closes the connection.
func (s *ServerClient) Close() error { return s.conn.Close() }

// CreateRequest asks for a root delegation on a user's behalf.
type CreateRequest struct {
	// UserToken is the user's OIDC ID token. Required; never logged.
	UserToken string
	// Agent is the agent that will act; usually the caller itself.
	Agent spiffeid.ID
	// Scopes are the scopes asked for; the grant may be narrower.
	Scopes []string
	// TTL is the requested lifetime; the grant may be shorter.
	TTL time.Duration
	// Intent is what the user asked for, in their words (audit).
	Intent string
}

// SubDelegationRequest asks to pass part of a delegation the agent holds to
// another agent.
type SubDelegationRequest struct {
	// Parent is a delegation held by the calling agent.
	Parent delegation.ID
	// Agent receives the sub-delegation.
	Agent spiffeid.ID
	// Scopes must be held by Parent and allowed to Agent.
	Scopes []string
	// TTL is capped at the parent's expiry.
	TTL time.Duration
	// Intent is the calling agent's reading of the task it passes on.
	Intent string
}

// Revocation is what RevokeDelegation did.
type Revocation struct {
	// IDs are the delegations this call revoked, the named one first (if it
	// was still active), then its descendants.
	IDs []delegation.ID
	// Delegation is the named delegation after the call.
	Delegation *delegation.Delegation
}

// CreateDelegation records a root delegation for the user whose token is in
// req. The agent may ask for its own (req.Agent == the caller) or, where
// the policy names it as a caller, for another agent.
func (s *ServerClient) CreateDelegation(ctx context.Context, req CreateRequest) (*delegation.Delegation, error) {
	if err := checkGrant(req.Agent, req.Scopes, req.TTL); err != nil {
		return nil, err
	}
	if req.UserToken == "" {
		return nil, fmt.Errorf("%w: user token is required", ErrInvalidRequest)
	}
	var p peer.Peer
	resp, err := s.client.CreateDelegation(ctx, &delegationv1.CreateDelegationRequest{
		UserToken: req.UserToken, AgentId: req.Agent.String(), Scopes: req.Scopes,
		Ttl: durationpb.New(req.TTL), Intent: req.Intent,
	}, grpc.Peer(&p))
	if err != nil {
		return nil, callError("create delegation", err, &p)
	}
	return decodeDelegation(resp.GetDelegation())
}

// CreateSubDelegation passes part of req.Parent to req.Agent. Only the
// parent's agent may call it, so the client must be that agent.
func (s *ServerClient) CreateSubDelegation(ctx context.Context, req SubDelegationRequest) (*delegation.Delegation, error) {
	if req.Parent.IsZero() {
		return nil, fmt.Errorf("%w: parent delegation id is required", ErrInvalidRequest)
	}
	if err := checkGrant(req.Agent, req.Scopes, req.TTL); err != nil {
		return nil, err
	}
	var p peer.Peer
	resp, err := s.client.CreateSubDelegation(ctx, &delegationv1.CreateSubDelegationRequest{
		ParentId: req.Parent.String(), AgentId: req.Agent.String(), Scopes: req.Scopes,
		Ttl: durationpb.New(req.TTL), Intent: req.Intent,
	}, grpc.Peer(&p))
	if err != nil {
		return nil, callError("create sub-delegation", err, &p)
	}
	return decodeDelegation(resp.GetDelegation())
}

// RevokeDelegation revokes id and its descendants. The agent may revoke its
// own delegations and those it created.
func (s *ServerClient) RevokeDelegation(ctx context.Context, id delegation.ID, reason string) (Revocation, error) {
	if id.IsZero() {
		return Revocation{}, fmt.Errorf("%w: delegation id is required", ErrInvalidRequest)
	}
	var p peer.Peer
	resp, err := s.client.RevokeDelegation(ctx, &delegationv1.RevokeDelegationRequest{Id: id.String(), Reason: reason}, grpc.Peer(&p))
	if err != nil {
		return Revocation{}, callError("revoke delegation", err, &p)
	}
	var out Revocation
	for _, raw := range resp.GetRevokedIds() {
		rid, err := delegation.ParseID(raw)
		if err != nil {
			return Revocation{}, fmt.Errorf("agentclient: server answered a malformed revoked id: %w", err)
		}
		out.IDs = append(out.IDs, rid)
	}
	if out.Delegation, err = decodeDelegation(resp.GetDelegation()); err != nil {
		return Revocation{}, err
	}
	return out, nil
}

// GetDelegation reads one delegation the agent may see: one it holds, one
// it is in the chain of, or one it created. Any other id is NotFound, as an
// unknown one is, so ids cannot be probed.
func (s *ServerClient) GetDelegation(ctx context.Context, id delegation.ID) (*delegation.Delegation, error) {
	if id.IsZero() {
		return nil, fmt.Errorf("%w: delegation id is required", ErrInvalidRequest)
	}
	var p peer.Peer
	resp, err := s.client.GetDelegation(ctx, &delegationv1.GetDelegationRequest{Id: id.String()}, grpc.Peer(&p))
	if err != nil {
		return nil, callError("get delegation", err, &p)
	}
	return decodeDelegation(resp.GetDelegation())
}

// ListRequest selects a page of the delegations the agent holds.
type ListRequest struct {
	// State, when not StateUnspecified, selects delegations in that state
	// now (StateActive leaves out expired ones).
	State delegation.State
	// PageSize is the most delegations to return, 0 for the server's
	// default (100); at most 1000 are returned.
	PageSize int
	// PageToken is the token a previous page returned; empty for the first.
	PageToken string
}

// ListDelegations returns one page of the delegations the agent holds (the
// server shows a caller that is not an admin only its own) and the token
// of the next page, empty on the last. A page filtered by state may hold
// fewer than PageSize delegations and still not be the last.
func (s *ServerClient) ListDelegations(ctx context.Context, req ListRequest) ([]*delegation.Delegation, string, error) {
	if req.PageSize < 0 || req.PageSize > math.MaxInt32 {
		return nil, "", fmt.Errorf("%w: page size %d out of range", ErrInvalidRequest, req.PageSize)
	}
	state := apiconv.StateToProto(req.State)
	if req.State != delegation.StateUnspecified && state == delegationv1.State_STATE_UNSPECIFIED {
		return nil, "", fmt.Errorf("%w: unknown state %d", ErrInvalidRequest, req.State)
	}
	var p peer.Peer
	resp, err := s.client.ListDelegations(ctx, &delegationv1.ListDelegationsRequest{
		State: state, PageSize: int32(req.PageSize), PageToken: req.PageToken,
	}, grpc.Peer(&p))
	if err != nil {
		return nil, "", callError("list delegations", err, &p)
	}
	out := make([]*delegation.Delegation, 0, len(resp.GetDelegations()))
	for _, pd := range resp.GetDelegations() {
		d, err := decodeDelegation(pd)
		if err != nil {
			return nil, "", err
		}
		out = append(out, d)
	}
	return out, resp.GetNextPageToken(), nil
}

func checkGrant(agent spiffeid.ID, scopes []string, ttl time.Duration) error {
	switch {
	case agent.IsZero():
		return fmt.Errorf("%w: agent SPIFFE ID is required", ErrInvalidRequest)
	case len(scopes) == 0:
		return fmt.Errorf("%w: at least one scope is required", ErrInvalidRequest)
	case ttl <= 0:
		return fmt.Errorf("%w: ttl must be positive", ErrInvalidRequest)
	}
	return nil
}

func decodeDelegation(p *delegationv1.Delegation) (*delegation.Delegation, error) {
	d, err := apiconv.DelegationFromProto(p)
	if err != nil {
		return nil, fmt.Errorf("agentclient: server answered a malformed delegation: %w", err)
	}
	return d, nil
}

// callError wraps the error of a call to agentid-server. grpc-go reports a
// TLS handshake that the server's SPIFFE ID failed as Unavailable, with the
// authorizer's error only as text: without this a caller would take an
// impostor (or a wrong ServerID) for a server that is down. Such an error
// also matches ErrPeerNotAuthorized when the call never reached a server
// (p, filled by grpc.Peer, holds no authenticated peer) and the text is
// ErrPeerNotAuthorized's own (markAuthorizer put it there): a server that
// answers cannot be mistaken for a refused one, whatever its message says.
// status.Code reads the gRPC status either way.
func callError(op string, err error, p *peer.Peer) error {
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable && p.AuthInfo == nil &&
		strings.Contains(st.Message(), ErrPeerNotAuthorized.Error()) {
		return fmt.Errorf("agentclient: %s: %w: %w", op, ErrPeerNotAuthorized, err)
	}
	return fmt.Errorf("agentclient: %s: %w", op, err)
}
