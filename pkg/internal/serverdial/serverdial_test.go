package serverdial_test

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/internal/serverdial"
	"github.com/agentid/agentid/pkg/internal/testca"
	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func serve(t *testing.T, l net.Listener, opts ...grpc.ServerOption) {
	t.Helper()
	s := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(s, health.NewServer())
	go s.Serve(l)
	t.Cleanup(s.Stop)
}

func check(t *testing.T, conn *grpc.ClientConn) error {
	t.Helper()
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func TestLocal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "api.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l)
	t.Chdir(dir)
	for _, target := range []string{path, "unix://" + path, "api.sock"} {
		conn, err := serverdial.Local(target)
		if err != nil {
			t.Fatalf("Local(%q): %v", target, err)
		}
		if err := check(t, conn); err != nil {
			t.Errorf("Local(%q): Check: %v", target, err)
		}
	}
	if _, err := serverdial.Local(""); err == nil || err.Error() != "serverdial: local socket path is empty" {
		t.Errorf("Local(\"\") = %v", err)
	}
}

func TestMTLS(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ca := testca.New(t, td)
	serverID := spiffeid.RequireFromPath(td, "/agentid-server")
	clientID := spiffeid.RequireFromPath(td, "/agent/a")
	server := testca.Source{SVID: ca.SVID(t, serverID)}
	client := testca.Source{SVID: ca.SVID(t, clientID)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, grpc.Creds(grpccredentials.MTLSServerCredentials(server, ca, tlsconfig.AuthorizeAny())))

	conn, err := serverdial.MTLSServerID(l.Addr().String(), client, ca, serverID)
	if err != nil {
		t.Fatal(err)
	}
	if err := check(t, conn); err != nil {
		t.Errorf("the expected server: %v", err)
	}

	// A server presenting another SPIFFE ID is refused in the handshake.
	other := spiffeid.RequireFromPath(td, "/impostor")
	conn, err = serverdial.MTLSServerID(l.Addr().String(), client, ca, other)
	if err != nil {
		t.Fatal(err)
	}
	err = check(t, conn)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), `unexpected ID \"spiffe://example.org/agentid-server\"`) {
		t.Errorf("another server ID: %v", err)
	}
}

func TestMTLSArguments(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ca := testca.New(t, td)
	src := testca.Source{SVID: ca.SVID(t, spiffeid.RequireFromPath(td, "/a"))}
	for _, tc := range []struct {
		name string
		dial func() (*grpc.ClientConn, error)
		want string
	}{
		{"no address", func() (*grpc.ClientConn, error) {
			return serverdial.MTLS("", src, ca, tlsconfig.AuthorizeAny())
		}, "serverdial: server address is empty"},
		{"no sources", func() (*grpc.ClientConn, error) {
			return serverdial.MTLS("127.0.0.1:1", nil, ca, tlsconfig.AuthorizeAny())
		}, "serverdial: X509-SVID and bundle sources are required"},
		{"no authorizer", func() (*grpc.ClientConn, error) {
			return serverdial.MTLS("127.0.0.1:1", src, ca, nil)
		}, "serverdial: a server authorizer is required"},
		{"no server ID", func() (*grpc.ClientConn, error) {
			return serverdial.MTLSServerID("127.0.0.1:1", src, ca, spiffeid.ID{})
		}, "serverdial: server SPIFFE ID is required"},
	} {
		if _, err := tc.dial(); err == nil || err.Error() != tc.want {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
