package agentclient_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/internal/testca"
	"github.com/agentid/agentid/pkg/server/servertest"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// service is an mTLS HTTPS server presenting id that echoes the caller's
// SPIFFE ID and Authorization header.
type service struct {
	URL  string
	hits atomic.Int64
}

func startService(tb testing.TB, f *fixture, id spiffeid.ID) *service {
	tb.Helper()
	s := &service{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{
		ErrorLog:  log.New(io.Discard, "", 0),
		TLSConfig: tlsconfig.MTLSServerConfig(testca.Source{SVID: f.env.CA.SVID(tb, id)}, f.env.CA, tlsconfig.AuthorizeAny()),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.hits.Add(1)
			peer, _ := x509svid.IDFromCert(r.TLS.PeerCertificates[0])
			io.WriteString(w, peer.String()+"|"+r.Header.Get("Authorization"))
		}),
	}
	go srv.ServeTLS(l, "", "")
	tb.Cleanup(func() { srv.Close() })
	s.URL = "https://" + l.Addr().String()
	return s
}

func get(t *testing.T, ctx context.Context, client *http.Client, url string) (string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer spoofed")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestTransportAttachesDelegatedToken(t *testing.T) {
	f := newFixture(t)
	d := f.delegate(t)
	svc := startService(t, f, servertest.Verifier)
	tr, err := f.agent.Transport(servertest.Verifier, "")
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: tr}
	ctx := agentclient.WithDelegation(servertest.Ctx(t), d.ID)
	body, err := get(t, ctx, client, svc.URL+"/x")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.agent.Tokens().Token(ctx, d.ID, servertest.Verifier.String())
	if err != nil {
		t.Fatal(err)
	}
	if want := servertest.Orchestrator.String() + "|Bearer " + tok.Value; body != want {
		t.Fatalf("service saw %q\nwant %q", body, want)
	}
	// Without a delegation: mTLS only; the caller's own header is left alone.
	body, err = get(t, servertest.Ctx(t), client, svc.URL+"/x")
	if err != nil || body != servertest.Orchestrator.String()+"|Bearer spoofed" {
		t.Fatalf("plain call: %q, %v", body, err)
	}
}

func TestTransportRefuses(t *testing.T) {
	f := newFixture(t)
	d := f.delegate(t)
	impostor := startService(t, f, servertest.Stranger)
	good := startService(t, f, servertest.Verifier)
	tr, err := f.agent.Transport(servertest.Verifier, "")
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: tr}
	unknown := delegation.MustParseID("dlg_01jd0000000000000000000000")
	tests := []struct {
		name string
		url  string
		id   delegation.ID
		want error
		text string
	}{
		{"wrong server SPIFFE ID", impostor.URL, d.ID, agentclient.ErrPeerNotAuthorized,
			`agentclient: peer SPIFFE ID not authorized: spiffe://example.org/app/stranger: unexpected ID "spiffe://example.org/app/stranger"`},
		{"plain http", strings.Replace(good.URL, "https", "http", 1), d.ID, agentclient.ErrInsecureScheme,
			"agentclient: refusing a non-https URL"},
		{"unknown delegation", good.URL, unknown, agentclient.ErrDelegationDenied,
			"agentclient: delegation denied: composer: unknown delegation: " + unknown.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := get(t, agentclient.WithDelegation(servertest.Ctx(t), tt.id), client, tt.url)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("err = %v\nwant %v containing %s", err, tt.want, tt.text)
			}
		})
	}
	if impostor.hits.Load() != 0 || good.hits.Load() != 0 {
		t.Fatalf("refused requests reached a server: impostor %d, good %d", impostor.hits.Load(), good.hits.Load())
	}
}

func TestNewTransportValidates(t *testing.T) {
	f := newFixture(t)
	src := f.agent.SVIDs()
	tests := []struct {
		name   string
		config agentclient.TransportConfig
		want   string
	}{
		{"no svids", agentclient.TransportConfig{Bundles: f.agent.Bundles(), Authorizer: tlsconfig.AuthorizeAny()},
			"agentclient: invalid config: X509-SVID source is required"},
		{"no bundles", agentclient.TransportConfig{SVIDs: src, Authorizer: tlsconfig.AuthorizeAny()},
			"agentclient: invalid config: bundle source is required"},
		{"no authorizer", agentclient.TransportConfig{SVIDs: src, Bundles: f.agent.Bundles()},
			"agentclient: invalid config: authorizer is required (which server SPIFFE ID is expected?)"},
		{"tokens without audience", agentclient.TransportConfig{SVIDs: src, Bundles: f.agent.Bundles(), Authorizer: tlsconfig.AuthorizeAny(), Tokens: f.agent.Tokens()},
			"agentclient: invalid config: audience: must be 1..2048 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := agentclient.NewTransport(tt.config); err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestPerRPCCredentials(t *testing.T) {
	f := newFixture(t)
	d := f.delegate(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var seen atomic.Value
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsconfig.MTLSServerConfig(testca.Source{SVID: f.env.CA.SVID(t, servertest.Verifier)}, f.env.CA, tlsconfig.AuthorizeAny()))),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			seen.Store(strings.Join(md["authorization"], ","))
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(l)
	t.Cleanup(srv.Stop)

	creds, err := agentclient.NewPerRPCCredentials(f.agent.Tokens(), servertest.Verifier.String(), tlsconfig.AuthorizeID(servertest.Verifier))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(l.Addr().String(),
		grpc.WithTransportCredentials(credentials.NewTLS(agentclient.ClientTLSConfig(f.agent.SVIDs(), f.agent.Bundles(), tlsconfig.AuthorizeID(servertest.Verifier)))),
		grpc.WithPerRPCCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	ctx := agentclient.WithDelegation(servertest.Ctx(t), d.ID)
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	tok, _ := f.agent.Tokens().Token(ctx, d.ID, servertest.Verifier.String())
	if got := seen.Load(); got != "Bearer "+tok.Value {
		t.Fatalf("server saw authorization %q", got)
	}
	if _, err := client.Check(servertest.Ctx(t), &healthpb.HealthCheckRequest{}); err != nil || seen.Load() != "" {
		t.Fatalf("call without delegation: err %v, authorization %q", err, seen.Load())
	}
	_, err = client.Check(agentclient.WithDelegation(servertest.Ctx(t), delegation.MustParseID("dlg_01jd0000000000000000000000")), &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "composer: unknown delegation") {
		t.Fatalf("unknown delegation: %v", err)
	}
}

// A token is never sent to a server other than the expected one, even when
// the transport credentials would accept it.
func TestPerRPCCredentialsCheckServer(t *testing.T) {
	f := newFixture(t)
	d := f.delegate(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsconfig.MTLSServerConfig(testca.Source{SVID: f.env.CA.SVID(t, servertest.Analyst)}, f.env.CA, tlsconfig.AuthorizeAny()))),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			calls.Add(1)
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(l)
	t.Cleanup(srv.Stop)

	creds, err := agentclient.NewPerRPCCredentials(f.agent.Tokens(), servertest.Verifier.String(), tlsconfig.AuthorizeID(servertest.Verifier))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(l.Addr().String(),
		grpc.WithTransportCredentials(credentials.NewTLS(agentclient.ClientTLSConfig(f.agent.SVIDs(), f.agent.Bundles(), tlsconfig.AuthorizeAny()))),
		grpc.WithPerRPCCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = healthpb.NewHealthClient(conn).Check(agentclient.WithDelegation(servertest.Ctx(t), d.ID), &healthpb.HealthCheckRequest{})
	want := "agentclient: peer SPIFFE ID not authorized: unexpected ID \"" + servertest.Analyst.String() + "\""
	if status.Code(err) != codes.Unauthenticated || status.Convert(err).Message() != want {
		t.Fatalf("err = %v, want Unauthenticated %s", err, want)
	}
	if calls.Load() != 0 || f.wl.JWTFetches() != 0 {
		t.Fatalf("server saw %d calls, %d tokens fetched", calls.Load(), f.wl.JWTFetches())
	}
}

func TestNewPerRPCCredentialsValidates(t *testing.T) {
	f := newFixture(t)
	_, err := agentclient.NewPerRPCCredentials(f.agent.Tokens(), "aud", nil)
	if err == nil || err.Error() != "agentclient: invalid config: server authorizer is required" {
		t.Fatalf("err = %v", err)
	}
}
