package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Caller is who sent a request: a workload authenticated by its X509-SVID on
// the mTLS listener, or a local process on the unix socket, where the file
// permissions of the socket are the authentication and the peer's uid is
// recorded for audit.
type Caller struct {
	// ID is the mTLS peer's SPIFFE ID; zero for a local caller.
	ID spiffeid.ID
	// Local is true on the unix socket.
	Local bool
	// UID is the local peer's uid, -1 when unknown.
	UID int
}

// String is the caller as an audit actor: the SPIFFE ID, or "local:uid:<n>".
func (c Caller) String() string {
	if c.Local {
		return "local:uid:" + strconv.Itoa(c.UID)
	}
	return c.ID.String()
}

type callerKey struct{}

// CallerFrom returns the caller the interceptors identified. Every request
// reaching a handler has one: a request whose caller cannot be identified is
// refused before (IdentifyUnary, IdentifyStream). It panics on a context
// without a caller, which only a handler called around the interceptors
// could see.
func CallerFrom(ctx context.Context) Caller {
	return ctx.Value(callerKey{}).(Caller)
}

// WithCaller returns ctx carrying c, as the interceptors do; tests of a
// service that call its handlers directly use it.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// IdentifyUnary puts the caller in the request's context, or refuses the
// request with UNAUTHENTICATED.
func IdentifyUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	c, err := callerOfConn(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "caller not identified")
	}
	return handler(context.WithValue(ctx, callerKey{}, c), req)
}

// IdentifyStream is IdentifyUnary for streaming RPCs.
func IdentifyStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	c, err := callerOfConn(ss.Context())
	if err != nil {
		return status.Error(codes.Unauthenticated, "caller not identified")
	}
	return handler(srv, &identifiedStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), callerKey{}, c)})
}

type identifiedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identifiedStream) Context() context.Context { return s.ctx }

// callerOfConn derives the caller from the connection the request came on.
// It never trusts anything the request itself says.
func callerOfConn(ctx context.Context) (Caller, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Caller{}, errors.New("no peer in context")
	}
	if info, ok := p.AuthInfo.(localAuthInfo); ok {
		return Caller{Local: true, UID: info.uid}, nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return Caller{}, errors.New("peer has no certificate")
	}
	// The chain was verified against the trust bundle during the handshake
	// (session tickets are off, so on every connection).
	leaf := info.State.PeerCertificates[0]
	// HTTP/2 connections live long; an SVID that expired since the
	// handshake no longer identifies anyone.
	if time.Now().After(leaf.NotAfter) {
		return Caller{}, errors.New("peer certificate expired")
	}
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return Caller{}, fmt.Errorf("peer certificate has no SPIFFE ID: %w", err)
	}
	return Caller{ID: id}, nil
}

// LocalCredentials are the transport credentials of the unix socket: no
// encryption (the kernel carries the bytes), and the peer's uid read with
// SO_PEERCRED during the "handshake". The caller is then Local.
func LocalCredentials() credentials.TransportCredentials { return localCreds{} }

type localCreds struct{}

type localAuthInfo struct {
	credentials.CommonAuthInfo
	uid int
}

func (localAuthInfo) AuthType() string { return "agentid-local" }

func (localCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	info := localAuthInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}, uid: -1}
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return nil, nil, fmt.Errorf("local credentials on a %T connection", conn)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return nil, nil, err
	}
	if credErr == nil {
		info.uid = int(cred.Uid)
	}
	return conn, info, nil
}

func (localCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("local credentials are server-side only")
}

func (localCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "agentid-local"}
}

func (c localCreds) Clone() credentials.TransportCredentials { return c }

func (localCreds) OverrideServerName(string) error { return nil }
