package grpcmw_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/grpcmw"
	"github.com/agentid/agentid/pkg/verify/internal/testca"
	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// whoami is the protected service: the grpc health service, answering with
// the verified principal in the response header.
type whoami struct {
	healthpb.UnimplementedHealthServer
}

func principalHeader(ctx context.Context) metadata.MD {
	p, ok := grpcmw.PrincipalFrom(ctx)
	if !ok {
		return metadata.Pairs("agent", "none")
	}
	return metadata.Pairs("agent", p.Agent.String(), "user", p.User.String(), "scope", p.Scopes.String())
}

func (whoami) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if err := grpc.SetHeader(ctx, principalHeader(ctx)); err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (whoami) Watch(_ *healthpb.HealthCheckRequest, s grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	md := principalHeader(s.Context())
	if d, ok := s.Context().Deadline(); ok {
		md.Set("deadline", d.UTC().Format(time.RFC3339Nano))
	}
	if err := s.SetHeader(md); err != nil {
		return err
	}
	return s.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING})
}

type server struct {
	clients map[spiffeid.ID]healthpb.HealthClient
}

func newServer(t *testing.T, env *testca.Env, serverCreds func(testing.TB, *testca.CA) credentials.TransportCredentials, mods ...func(*grpcmw.Config)) *server {
	t.Helper()
	cfg := grpcmw.Config{
		Verifier: env.Verifier(t),
		Require:  []verify.Requirement{verify.RequireAgentPrefix(env.CA.ID(t, "/agent"))},
		MethodRequire: map[string][]verify.Requirement{
			"/grpc.health.v1.Health/Watch": {verify.RequireScopes("crm:write")},
		},
	}
	for _, mod := range mods {
		mod(&cfg)
	}
	ic, err := grpcmw.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(serverCreds(t, env.CA)), grpc.UnaryInterceptor(ic.Unary()), grpc.StreamInterceptor(ic.Stream()))
	healthpb.RegisterHealthServer(srv, whoami{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)

	s := &server{clients: map[spiffeid.ID]healthpb.HealthClient{}}
	for _, id := range []spiffeid.ID{env.Analyst, env.Orchestrator} {
		conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(
			grpccredentials.MTLSClientCredentials(env.CA.X509SVID(t, id), env.CA.X509Bundle, tlsconfig.AuthorizeID(env.CA.ID(t, "/svc/crm")))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		s.clients[id] = healthpb.NewHealthClient(conn)
	}
	return s
}

func verifyCreds(t testing.TB, ca *testca.CA) credentials.TransportCredentials {
	svid := ca.X509SVID(t, ca.ID(t, "/svc/crm"))
	return credentials.NewTLS(verify.ServerTLSConfig(svid, ca.X509Bundle, tlsconfig.AuthorizeMemberOf(ca.TD)))
}

func goSpiffeCreds(t testing.TB, ca *testca.CA) credentials.TransportCredentials {
	svid := ca.X509SVID(t, ca.ID(t, "/svc/crm"))
	return grpccredentials.MTLSServerCredentials(svid, ca.X509Bundle, tlsconfig.AuthorizeMemberOf(ca.TD))
}

func call(t *testing.T, c healthpb.HealthClient, auth ...string) (metadata.MD, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, a := range auth {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", a)
	}
	var header metadata.MD
	_, err := c.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&header))
	return header, err
}

func TestForgedAndBrokenTokens(t *testing.T) {
	for _, creds := range []struct {
		name string
		fn   func(testing.TB, *testca.CA) credentials.TransportCredentials
	}{{"ServerTLSConfig", verifyCreds}, {"go-spiffe grpccredentials", goSpiffeCreds}} {
		t.Run(creds.name, func(t *testing.T) {
			env := testca.NewEnv(t)
			s := newServer(t, env, creds.fn, func(c *grpcmw.Config) { c.AllowGoSpiffeCredentials = true })
			for _, tc := range env.Cases(t) {
				t.Run(tc.Name, func(t *testing.T) {
					header, err := call(t, s.clients[tc.Peer], "Bearer "+tc.Token)
					if tc.Err == "" {
						if err != nil || header.Get("agent")[0] != tc.Peer.String() || header.Get("user")[0] != "https://idp.example.com#alice" {
							t.Fatalf("header %v, err %v", header, err)
						}
						return
					}
					want := codes.Unauthenticated
					if tc.Class == verify.ClassUnavailable {
						want = codes.Unavailable
					}
					if st := status.Convert(err); st.Code() != want || st.Message() != tc.Err {
						t.Fatalf("got %v %q\nwant %v %q", st.Code(), st.Message(), want, tc.Err)
					}
				})
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	env := testca.NewEnv(t)
	s := newServer(t, env, verifyCreds)
	good := "Bearer " + env.Good(t)
	tests := []struct {
		name string
		auth []string
		code codes.Code
		msg  string
	}{
		{"no token", nil, codes.Unauthenticated, "verify: no token"},
		{"two tokens", []string{good, good}, codes.Unauthenticated, "grpcmw: authorization metadata is not one bearer token"},
		{"basic", []string{"Basic YTpi"}, codes.Unauthenticated, "grpcmw: authorization metadata is not one bearer token"},
		{"good", []string{good}, codes.OK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := call(t, s.clients[env.Analyst], tt.auth...)
			if st := status.Convert(err); st.Code() != tt.code || st.Message() != tt.msg {
				t.Fatalf("got %v %q, want %v %q", st.Code(), st.Message(), tt.code, tt.msg)
			}
		})
	}
}

func TestStreamInterceptor(t *testing.T) {
	env := testca.NewEnv(t)
	s := newServer(t, env, verifyCreds)
	watch := func(token string) (metadata.MD, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		stream, err := s.clients[env.Analyst].Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return nil, err
		}
		if _, err := stream.Recv(); err != nil {
			return nil, err
		}
		h, err := stream.Header()
		if err != nil {
			return nil, err
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			return nil, err
		}
		return h, nil
	}
	// The analyst's delegation lacks crm:write, which Watch requires.
	if _, err := watch(env.Good(t)); status.Code(err) != codes.PermissionDenied ||
		status.Convert(err).Message() != "verify: insufficient scope: missing crm:write" {
		t.Fatalf("err = %v", err)
	}
	d := env.Delegation(t, testca.ChildID, testca.RootID)
	d.Scopes = append(d.Scopes, "crm:write")
	tok := env.CA.Mint(t, testca.Claims(env.Analyst, testca.Audience, env.Now.Add(5*time.Minute), d))
	h, err := watch(tok)
	if err != nil || h.Get("scope")[0] != "campaigns:read compliance:check crm:write" {
		t.Fatalf("header %v err %v", h, err)
	}
}

// go-spiffe's grpccredentials check the client only on full handshakes:
// their peer is refused unless the server opts in.
func TestGoSpiffeCredentialsNeedOptIn(t *testing.T) {
	env := testca.NewEnv(t)
	good := "Bearer " + env.Good(t)
	_, err := call(t, newServer(t, env, goSpiffeCreds).clients[env.Analyst], good)
	if st := status.Convert(err); st.Code() != codes.Unauthenticated ||
		st.Message() != "verify: no peer SPIFFE ID: go-spiffe grpccredentials not allowed (serve with verify.ServerTLSConfig)" {
		t.Fatalf("without opt-in: %v %q", st.Code(), st.Message())
	}
	optIn := newServer(t, env, goSpiffeCreds, func(c *grpcmw.Config) { c.AllowGoSpiffeCredentials = true })
	if _, err := call(t, optIn.clients[env.Analyst], good); err != nil {
		t.Fatalf("with opt-in: %v", err)
	}
}

// A stream's context ends when the token stops being acceptable: the
// token's exp plus skew, or the delegation's expiry if earlier.
func TestStreamBoundedByExpiry(t *testing.T) {
	env := testca.NewEnv(t)
	s := newServer(t, env, verifyCreds)
	tests := []struct {
		name          string
		exp, delegExp time.Time
		want          time.Time
	}{
		{"delegation first", env.Now.Add(5 * time.Minute), env.Now.Add(2 * time.Minute), env.Now.Add(2 * time.Minute)},
		{"token first", env.Now.Add(2 * time.Minute), env.Now.Add(time.Hour), env.Now.Add(2*time.Minute + verify.DefaultClockSkew)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := env.Delegation(t, testca.ChildID, testca.RootID)
			d.Scopes = append(d.Scopes, "crm:write")
			d.ExpiresAt = tt.delegExp
			tok := env.CA.Mint(t, testca.Claims(env.Analyst, testca.Audience, tt.exp, d))
			// The client's own deadline is later than the token's, so the
			// one the handler sees is the interceptor's.
			ctx, cancel := context.WithTimeout(context.Background(), 24*time.Hour)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
			stream, err := s.clients[env.Analyst].Watch(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatal(err)
			}
			h, err := stream.Header()
			if err != nil {
				t.Fatal(err)
			}
			if got := h.Get("deadline"); len(got) != 1 || got[0] != tt.want.UTC().Format(time.RFC3339Nano) {
				t.Fatalf("deadline %q, want %s", got, tt.want.UTC().Format(time.RFC3339Nano))
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	env := testca.NewEnv(t)
	tests := []struct {
		config grpcmw.Config
		want   string
	}{
		{grpcmw.Config{}, "grpcmw: verifier is required"},
		{grpcmw.Config{Verifier: env.Verifier(t), MethodRequire: map[string][]verify.Requirement{"Check": nil}},
			`grpcmw: method "Check" is not a full method name (/package.Service/Method)`},
	}
	for _, tt := range tests {
		if _, err := grpcmw.New(tt.config); err == nil || err.Error() != tt.want {
			t.Errorf("err = %v, want %s", err, tt.want)
		}
	}
}
