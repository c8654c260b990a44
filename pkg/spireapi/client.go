package spireapi

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	bundlev1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/bundle/v1"
	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	svidv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/svid/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
)

// maxReconnectDelay caps gRPC's reconnection backoff (120 s by default). The
// admin socket is local, so trying again every few seconds costs nothing, and
// it keeps the first pass after a SPIRE server restart from failing for
// minutes.
const maxReconnectDelay = 5 * time.Second

// Client speaks to the SPIRE Server API: registration entries (entry.v1),
// X509-SVID minting (svid.v1) and bundles (bundle.v1). It is safe for
// concurrent use. Its calls fail fast when the server is unreachable rather
// than waiting for it, so that a reconciliation pass reports the outage; the
// connection is re-established in the background.
type Client struct {
	conn   *grpc.ClientConn // nil when the caller owns the connection
	entry  entryv1.EntryClient
	svid   svidv1.SVIDClient
	bundle bundlev1.BundleClient
}

var _ EntryClient = (*Client)(nil)

// Dial connects to the SPIRE server's admin API on the unix socket at
// socketPath (the server's socket_path) and waits until the connection is
// ready or ctx is done, so a wrong path or a stopped server is reported at
// start-up rather than on the first call.
//
// The admin socket has no transport security: SPIRE authorises its callers as
// "local" through the socket's filesystem permissions, and so does this
// client. Callers own the returned Client and must Close it.
func Dial(ctx context.Context, socketPath string) (*Client, error) {
	if socketPath == "" {
		return nil, errors.New("spireapi: socket path is empty")
	}
	target := "unix:" + socketPath
	if filepath.IsAbs(socketPath) {
		target = "unix://" + socketPath
	}
	bo := backoff.DefaultConfig
	bo.MaxDelay = maxReconnectDelay
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: maxReconnectDelay}),
	)
	if err != nil {
		return nil, fmt.Errorf("spireapi: failed to dial API socket %q: %w", socketPath, err)
	}
	conn.Connect()
	for {
		state := conn.GetState()
		if state == connectivity.Ready {
			break
		}
		if !conn.WaitForStateChange(ctx, state) {
			conn.Close()
			return nil, fmt.Errorf("spireapi: failed to dial API socket %q (connection %s): %w", socketPath, state, ctx.Err())
		}
	}
	c := New(conn)
	c.conn = conn
	return c, nil
}

// New returns a Client over a connection the caller made and keeps owning
// (another transport, mTLS to a remote server, or a test listener). Close on
// such a Client does not close conn.
func New(conn grpc.ClientConnInterface) *Client {
	return &Client{
		entry:  entryv1.NewEntryClient(conn),
		svid:   svidv1.NewSVIDClient(conn),
		bundle: bundlev1.NewBundleClient(conn),
	}
}

// Close releases the connection made by Dial. It is a no-op for a Client
// made with New.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}
