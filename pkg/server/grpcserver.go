package server

import (
	"context"
	"crypto/tls"
	"github.com/agentid/agentid/pkg/server/api"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// MaxRequestSize bounds one request message. The largest legitimate request
// (a user token, 64 scopes and a 2 KiB intent, or a batch of issuance
// records) is far below it.
const MaxRequestSize = 1 << 20

// MaxConnectionAge bounds how long one connection (and the identity
// established by its handshake) is used.
const MaxConnectionAge = 30 * time.Minute

// MaxConcurrentStreams bounds the streams (watches, exports) of one
// connection.
const MaxConcurrentStreams = 64

// LocalServer returns a gRPC server for the unix socket: no TLS, the
// caller's uid from the kernel, admin rights by the socket's file
// permissions.
func (s *Server) LocalServer() *grpc.Server {
	return s.grpcServer(api.LocalCredentials())
}

// MTLSServer returns a gRPC server for workloads: mTLS with the server's own
// X509-SVID, peers from td only. Session tickets are off, so every
// connection's peer certificate is verified in full; the peer's SPIFFE ID is
// then authorised per RPC.
func (s *Server) MTLSServer(svids x509svid.Source, bundles x509bundle.Source, td spiffeid.TrustDomain) *grpc.Server {
	cfg := tlsconfig.MTLSServerConfig(svids, bundles, tlsconfig.AuthorizeMemberOf(td))
	cfg.SessionTicketsDisabled = true
	cfg.MinVersion = tls.VersionTLS12
	return s.grpcServer(credentials.NewTLS(cfg))
}

func (s *Server) grpcServer(creds credentials.TransportCredentials) *grpc.Server {
	g := grpc.NewServer(
		grpc.Creds(creds),
		// Connections are re-established (and the peer re-verified) at least
		// this often; the caller's certificate is also checked per request.
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: MaxConnectionAge, MaxConnectionAgeGrace: 10 * time.Second}),
		grpc.MaxConcurrentStreams(MaxConcurrentStreams),
		grpc.MaxRecvMsgSize(MaxRequestSize),
		grpc.ChainUnaryInterceptor(s.observeUnary, api.IdentifyUnary),
		grpc.ChainStreamInterceptor(s.observeStream, api.IdentifyStream),
	)
	s.Register(g)
	return g
}

func (s *Server) observeUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	observe(s.metrics, info.FullMethod, err, time.Since(start))
	return resp, err
}

func (s *Server) observeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, ss)
	observe(s.metrics, info.FullMethod, err, time.Since(start))
	return err
}

func observe(m *api.Metrics, method string, err error, d time.Duration) {
	code := status.Code(err).String()
	m.Requests.WithLabelValues(method, code).Inc()
	m.Latency.WithLabelValues(method).Observe(d.Seconds())
}
