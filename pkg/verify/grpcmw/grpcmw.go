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

// Stream returns the stream server interceptor.
func (i *Interceptors) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := i.authenticate(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
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
	id, err := peerID(ctx)
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
// verify.ServerTLSConfig) or from go-spiffe's grpccredentials.
func peerID(ctx context.Context) (spiffeid.ID, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return spiffeid.ID{}, verify.ErrNoPeer
	}
	switch info := p.AuthInfo.(type) {
	case credentials.TLSInfo:
		return verify.PeerID(&info.State)
	case interface{ PeerID() (spiffeid.ID, bool) }:
		if id, ok := info.PeerID(); ok {
			return id, nil
		}
	}
	return spiffeid.ID{}, verify.ErrNoPeer
}

func bearerToken(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get("authorization")
	switch len(values) {
	case 0:
		return "", verify.ErrNoToken
	case 1:
	default:
		return "", ErrBadAuthorization
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return "", ErrBadAuthorization
	}
	return token, nil
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
