// Package serverdial is the one way agentid's programs connect to
// agentid-server: the CLI, agentclient, the composer plugin and
// agentid-extauthz all dial through it, so the transport security of every
// client is decided here and nowhere else.
//
// agentid-server has two gRPC listeners (see pkg/server):
//
//   - the local unix socket, authorised by its file permissions: Local dials
//     it without TLS, which is safe only because the socket never leaves the
//     host;
//   - the mTLS listener, authorised by the peer's SPIFFE ID: MTLS dials it
//     with the caller's X509-SVID and refuses a server that does not present
//     the expected SPIFFE ID before anything (a user token above all) is sent.
//
// Neither function does I/O: gRPC connects on the first call.
package serverdial

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Local dials agentid-server's local socket at path ("/run/agentid/api.sock",
// a relative path, or "unix:///run/agentid/api.sock"). The connection is
// plaintext: the socket's mode and owner are its access control.
func Local(path string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	path = strings.TrimPrefix(path, "unix://")
	if path == "" {
		return nil, errors.New("serverdial: local socket path is empty")
	}
	// "unix:relative" and "unix:///absolute" are the two forms gRPC's
	// resolver accepts; "unix://relative" would take the first element as an
	// authority.
	target := "unix:" + path
	if filepath.IsAbs(path) {
		target = "unix://" + path
	}
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("serverdial: failed to create client for %s: %w", path, err)
	}
	return conn, nil
}

// MTLS dials agentid-server's mTLS listener at address (host:port, or any
// gRPC target) as the holder of svids, verifying the server's X509-SVID
// against bundles and admitting it only if authorize accepts its SPIFFE ID.
// Most callers pass tlsconfig.AuthorizeID(serverID); agentclient wraps it to
// tell a refused server from an unreachable one.
func MTLS(address string, svids x509svid.Source, bundles x509bundle.Source, authorize tlsconfig.Authorizer, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	switch {
	case address == "":
		return nil, errors.New("serverdial: server address is empty")
	case svids == nil || bundles == nil:
		return nil, errors.New("serverdial: X509-SVID and bundle sources are required")
	case authorize == nil:
		return nil, errors.New("serverdial: a server authorizer is required")
	}
	creds := grpccredentials.MTLSClientCredentials(svids, bundles, authorize)
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts...)
	conn, err := grpc.NewClient(address, opts...)
	if err != nil {
		return nil, fmt.Errorf("serverdial: failed to create client for %s: %w", address, err)
	}
	return conn, nil
}

// MTLSServerID is MTLS admitting exactly the server SPIFFE ID id.
func MTLSServerID(address string, svids x509svid.Source, bundles x509bundle.Source, id spiffeid.ID, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	if id.IsZero() {
		return nil, errors.New("serverdial: server SPIFFE ID is required")
	}
	return MTLS(address, svids, bundles, tlsconfig.AuthorizeID(id), opts...)
}
