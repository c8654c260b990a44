package agentclienttest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/internal/testca"
	composer "github.com/agentid/agentid/pkg/plugin/credentialcomposer/delegation"
	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// DefaultJWTTTL is the lifetime of minted JWT-SVIDs, SPIRE's default.
const DefaultJWTTTL = 5 * time.Minute

// relayPrefix is how SPIRE v1.13.3 wraps a composer error on its way to the
// workload (see pkg/agentclient's classify).
const relayPrefix = "could not fetch JWT-SVID: failed to fetch JWT SVID: rpc error: code = Internal desc = failed to sign JWT-SVID: credentialcomposer(agentid): "

// ServerDownMessage is the message of a fetch while the server is down.
const ServerDownMessage = "could not fetch JWT-SVID: failed to fetch JWT SVID: rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial tcp 127.0.0.1:8081: connect: connection refused\""

// Lookup finds a delegation the way the composer's replica would, e.g. a
// servertest store's GetDelegation. Any error means "unknown".
type Lookup func(ctx context.Context, id delegation.ID) (*delegation.Delegation, error)

// AuthorityConfig configures an Authority. CA is required.
type AuthorityConfig struct {
	// CA issues the X509-SVIDs and is the X.509 bundle (share the one of
	// servertest.Env so the workloads can talk mTLS to agentid-server).
	CA *testca.CA
	// Delegations is the composer's view; nil knows no delegation.
	Delegations Lookup
	// JWTTTL is the lifetime of minted tokens. Default DefaultJWTTTL.
	JWTTTL time.Duration
	// Clock decides whether a delegation has expired. Default time.Now.
	// Token iat/exp always use the real clock: go-spiffe checks them
	// against it.
	Clock func() time.Time
}

// Authority is the fake SPIRE deployment behind one or more fake Workload
// API sockets: one CA, one JWT signing key, one composer.
type Authority struct {
	config AuthorityConfig
	td     spiffeid.TrustDomain
	key    *ecdsa.PrivateKey
	kid    string
	signer jose.Signer
	down   atomic.Bool
}

// NewAuthority returns an Authority with a fresh P-256 JWT key.
func NewAuthority(tb testing.TB, config AuthorityConfig) *Authority {
	tb.Helper()
	if config.CA == nil {
		tb.Fatal("agentclienttest: CA is required")
	}
	if config.JWTTTL == 0 {
		config.JWTTTL = DefaultJWTTTL
	}
	if config.Clock == nil {
		config.Clock = time.Now
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	a := &Authority{config: config, td: config.CA.Bundle().TrustDomain(), key: key, kid: "fake-jwt-key"}
	a.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: a.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// JWTBundle is the bundle that verifies the minted tokens.
func (a *Authority) JWTBundle() *jwtbundle.Bundle {
	return jwtbundle.FromJWTAuthorities(a.td, map[string]crypto.PublicKey{a.kid: a.key.Public()})
}

// SetServerDown makes every JWT-SVID fetch fail as when the SPIRE agent
// cannot reach its server (true), or work again (false).
func (a *Authority) SetServerDown(down bool) { a.down.Store(down) }

// WorkloadAPI is one fake Workload API socket, serving one workload.
type WorkloadAPI struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	// Addr is the socket as a Workload API address ("unix:///…").
	Addr string
	// Path is the socket's file path.
	Path string

	a       *Authority
	id      spiffeid.ID
	x509    *workload.X509SVIDResponse
	fetches atomic.Int64
	srv     *grpc.Server
	stop    sync.Once
}

// Serve starts a Workload API for the workload whose SPIFFE ID is id, on a
// unix socket in a fresh short temp dir, until the test ends.
func (a *Authority) Serve(tb testing.TB, id spiffeid.ID) *WorkloadAPI {
	tb.Helper()
	svid := a.config.CA.SVID(tb, id)
	var chain []byte
	for _, c := range svid.Certificates {
		chain = append(chain, c.Raw...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		tb.Fatal(err)
	}
	// A unix socket path must fit in 108 bytes; t.TempDir() paths may not.
	dir, err := os.MkdirTemp("", "wl")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	w := &WorkloadAPI{
		a: a, id: id, Path: filepath.Join(dir, "agent.sock"),
		x509: &workload.X509SVIDResponse{Svids: []*workload.X509SVID{{
			SpiffeId: id.String(), X509Svid: chain, X509SvidKey: keyDER, Bundle: a.bundleDER(),
		}}},
	}
	w.Addr = "unix://" + w.Path
	l, err := net.Listen("unix", w.Path)
	if err != nil {
		tb.Fatal(err)
	}
	w.srv = grpc.NewServer(grpc.UnaryInterceptor(checkHeaderUnary), grpc.StreamInterceptor(checkHeaderStream))
	workload.RegisterSpiffeWorkloadAPIServer(w.srv, w)
	go w.srv.Serve(l)
	tb.Cleanup(w.Stop)
	return w
}

// Stop stops the server at once; clients see the socket go away.
func (w *WorkloadAPI) Stop() { w.stop.Do(w.srv.Stop) }

// JWTFetches is the number of FetchJWTSVID calls served so far.
func (w *WorkloadAPI) JWTFetches() int64 { return w.fetches.Load() }

func (a *Authority) bundleDER() []byte {
	var out []byte
	for _, c := range a.config.CA.Bundle().X509Authorities() {
		out = append(out, c.Raw...)
	}
	return out
}

func hasHeader(ctx context.Context) bool {
	md, ok := metadata.FromIncomingContext(ctx)
	return ok && len(md["workload.spiffe.io"]) == 1 && md["workload.spiffe.io"][0] == "true"
}

var errNoHeader = status.Error(codes.InvalidArgument, "security header missing from request")

func checkHeaderUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if !hasHeader(ctx) {
		return nil, errNoHeader
	}
	return h(ctx, req)
}

func checkHeaderStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if !hasHeader(ss.Context()) {
		return errNoHeader
	}
	return h(srv, ss)
}

// FetchX509SVID implements the Workload API.
func (w *WorkloadAPI) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	if err := stream.Send(w.x509); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

// FetchX509Bundles implements the Workload API.
func (w *WorkloadAPI) FetchX509Bundles(_ *workload.X509BundlesRequest, stream grpc.ServerStreamingServer[workload.X509BundlesResponse]) error {
	if err := stream.Send(&workload.X509BundlesResponse{Bundles: map[string][]byte{w.a.td.IDString(): w.a.bundleDER()}}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

// FetchJWTBundles implements the Workload API.
func (w *WorkloadAPI) FetchJWTBundles(_ *workload.JWTBundlesRequest, stream grpc.ServerStreamingServer[workload.JWTBundlesResponse]) error {
	jwks, err := w.a.JWTBundle().Marshal()
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	if err := stream.Send(&workload.JWTBundlesResponse{Bundles: map[string][]byte{w.a.td.IDString(): jwks}}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

// FetchJWTSVID implements the Workload API, with the composer's rules.
func (w *WorkloadAPI) FetchJWTSVID(ctx context.Context, req *workload.JWTSVIDRequest) (*workload.JWTSVIDResponse, error) {
	w.fetches.Add(1)
	if len(req.Audience) == 0 {
		return nil, status.Error(codes.InvalidArgument, "audience must be specified")
	}
	if req.SpiffeId != "" {
		if _, err := spiffeid.FromString(req.SpiffeId); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "invalid requested SPIFFE ID: %v", err)
		}
		if req.SpiffeId != w.id.String() {
			return nil, status.Error(codes.PermissionDenied, "no identity issued")
		}
	}
	if w.a.down.Load() {
		return nil, status.Error(codes.Unavailable, ServerDownMessage)
	}
	token, err := w.a.mint(ctx, w.id, req.Audience)
	if err != nil {
		return nil, status.Error(codes.Unavailable, relayPrefix+err.Error())
	}
	return &workload.JWTSVIDResponse{Svids: []*workload.JWTSVID{{SpiffeId: w.id.String(), Svid: token}}}, nil
}

// mint composes and signs a token; its errors carry the composer's texts.
func (a *Authority) mint(ctx context.Context, sub spiffeid.ID, aud []string) (string, error) {
	rest, id, err := claims.SplitAudience(aud, claims.MarkerPrefix)
	if err != nil {
		return "", fmt.Errorf("composer: %w", err)
	}
	now := time.Now()
	exp := now.Add(a.config.JWTTTL)
	body := map[string]any{"sub": sub.String(), "iat": now.Unix()}
	if !id.IsZero() {
		if len(rest) == 0 {
			// The composer's bad-request sentinel is unexported; this is
			// its text.
			return "", errors.New("composer: bad request: the delegation marker is the only audience")
		}
		d, err := a.lookup(ctx, id, sub)
		if err != nil {
			return "", err
		}
		for k, v := range claims.FromDelegation(d).Map() {
			body[k] = v
		}
		if d.ExpiresAt.Before(exp) {
			exp = d.ExpiresAt
		}
	}
	body["aud"] = rest
	body["exp"] = exp.Unix()
	payload, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	jws, err := a.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func (a *Authority) lookup(ctx context.Context, id delegation.ID, sub spiffeid.ID) (*delegation.Delegation, error) {
	var d *delegation.Delegation
	if a.config.Delegations != nil {
		d, _ = a.config.Delegations(ctx, id)
	}
	switch {
	case d == nil:
		return nil, fmt.Errorf("%w: %s", composer.ErrUnknownDelegation, id)
	case d.Agent != sub:
		return nil, fmt.Errorf("%w: %s", composer.ErrForeignDelegation, id)
	case d.State == delegation.StateRevoked:
		return nil, fmt.Errorf("%w: %s", composer.ErrRevoked, id)
	case !d.ActiveAt(a.config.Clock()):
		return nil, fmt.Errorf("%w: %s", composer.ErrExpired, id)
	}
	return d, nil
}

// Map is a Lookup over a fixed set of delegations, for tests without a
// server.
func Map(ds ...*delegation.Delegation) Lookup {
	m := make(map[delegation.ID]*delegation.Delegation, len(ds))
	for _, d := range ds {
		m[d.ID] = d
	}
	return func(_ context.Context, id delegation.ID) (*delegation.Delegation, error) {
		if d, ok := m[id]; ok {
			return d, nil
		}
		return nil, errors.New("not found")
	}
}
