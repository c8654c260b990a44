package grpcmw

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/agentid/agentid/pkg/verify"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Config configures the interceptors. Verifier is required.
type Config struct {
	// Verifier checks the token against the connection's peer.
	Verifier *verify.Verifier
	// Require is checked, in order, on every verified principal.
	Require []verify.Requirement
	// MethodRequire adds requirements per full method name
	// ("/package.Service/Method"), checked after Require. Methods not listed
	// need only Require.
	MethodRequire map[string][]verify.Requirement
	// OnError, when set, is called with every refused call and the reason,
	// e.g. to log it. The interceptors themselves log nothing.
	OnError func(ctx context.Context, fullMethod string, err error)
	// AllowGoSpiffeCredentials also takes the peer's SPIFFE ID from
	// go-spiffe's grpccredentials. Off by default: those check the client
	// certificate in VerifyPeerCertificate, which crypto/tls skips on
	// resumed sessions, so a client could come back on a session ticket
	// after its bundle or authorization changed. Without it, only
	// connections served with credentials.NewTLS(verify.ServerTLSConfig(...))
	// have a peer; every other call is refused with verify.ErrNoPeer.
	AllowGoSpiffeCredentials bool
}

// Interceptors authenticate agent calls on a gRPC server.
type Interceptors struct {
	config Config
}

// New returns the interceptors for config.
func New(config Config) (*Interceptors, error) {
	if config.Verifier == nil {
		return nil, errors.New("grpcmw: verifier is required")
	}
	methods := make(map[string][]verify.Requirement, len(config.MethodRequire))
	for m, reqs := range config.MethodRequire {
		if !strings.HasPrefix(m, "/") || strings.Count(m, "/") != 2 {
			return nil, fmt.Errorf("grpcmw: method %q is not a full method name (/package.Service/Method)", m)
		}
		methods[m] = append([]verify.Requirement(nil), reqs...)
	}
	config.MethodRequire = methods
	config.Require = append([]verify.Requirement(nil), config.Require...)
	return &Interceptors{config: config}, nil
}

// Unary returns the unary server interceptor.
func (i *Interceptors) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := i.authenticate(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// Stream returns the stream server interceptor. It verifies once, when the
// stream starts: revocation is checked then only, not on every message.
// The stream's context is cancelled at the principal's NotAfter (the
// token's exp plus clock skew, or the delegation's expiry if earlier), so
// a long-lived stream does not outlive the credentials that opened it; a
// handler watching its context ends the stream then. A client renews by
// opening a new stream with a fresh token, which is checked again,
// revocation included.
func (i *Interceptors) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := i.authenticate(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		p, _ := verify.FromContext(ctx)
		ctx, cancel := context.WithDeadline(ctx, p.NotAfter)
		defer cancel()
		return handler(srv, &stream{ServerStream: ss, ctx: ctx})
	}
}

// PrincipalFrom returns the principal the interceptors verified for the call.
func PrincipalFrom(ctx context.Context) (*verify.Principal, bool) {
	return verify.FromContext(ctx)
}

type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stream) Context() context.Context { return s.ctx }

func (i *Interceptors) authenticate(ctx context.Context, method string) (context.Context, error) {
	p, err := i.verify(ctx)
	if err == nil {
		err = p.Check(i.config.Require...)
	}
	if err == nil {
		err = p.Check(i.config.MethodRequire[method]...)
	}
	if err != nil {
		if i.config.OnError != nil {
			i.config.OnError(ctx, method, err)
		}
		return nil, statusOf(err)
	}
	return verify.NewContext(ctx, p), nil
}

func (i *Interceptors) verify(ctx context.Context) (*verify.Principal, error) {
	token, err := bearerToken(ctx)
	if err != nil {
		return nil, err
	}
	id, err := i.peerID(ctx)
	if err != nil {
		return nil, err
	}
	p, err := i.config.Verifier.Verify(id, token)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// peerID reads the peer's SPIFFE ID from credentials.NewTLS (serve with
// verify.ServerTLSConfig) or, with AllowGoSpiffeCredentials, from go-spiffe's
// grpccredentials.
func (i *Interceptors) peerID(ctx context.Context) (spiffeid.ID, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return spiffeid.ID{}, verify.ErrNoPeer
	}
	switch info := p.AuthInfo.(type) {
	case credentials.TLSInfo:
		return verify.PeerID(&info.State)
	case interface{ PeerID() (spiffeid.ID, bool) }:
		if !i.config.AllowGoSpiffeCredentials {
			return spiffeid.ID{}, fmt.Errorf("%w: go-spiffe grpccredentials not allowed (serve with verify.ServerTLSConfig)", verify.ErrNoPeer)
		}
		if id, ok := info.PeerID(); ok {
			return id, nil
		}
	}
	return spiffeid.ID{}, verify.ErrNoPeer
}

func bearerToken(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	token, err := verify.ParseBearer(md.Get("authorization"))
	if errors.Is(err, verify.ErrBadAuthorization) {
		return "", ErrBadAuthorization
	}
	return token, err
}

// statusOf maps a refusal to its gRPC status; the message is the reason,
// which never contains the token.
func statusOf(err error) error {
	code := codes.Unauthenticated
	switch verify.ClassOf(err) {
	case verify.ClassForbidden:
		code = codes.PermissionDenied
	case verify.ClassUnavailable:
		code = codes.Unavailable
	}
	return status.Error(code, err.Error())
}
