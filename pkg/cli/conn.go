package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// dial connects to agentid-server: over mTLS with this process's X509-SVID
// when -server is set, else over the local socket. The returned function
// closes everything dial opened.
func (c *command) dial(ctx context.Context) (*grpc.ClientConn, func(), error) {
	if c.g.server == "" {
		target := "unix:" + c.g.socket
		if filepath.IsAbs(c.g.socket) {
			target = "unix://" + c.g.socket
		}
		conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, nil, fmt.Errorf("failed to connect to %s: %w", c.g.socket, err)
		}
		return conn, func() { conn.Close() }, nil
	}
	serverID, err := spiffeid.FromString(c.g.serverID)
	if err != nil {
		return nil, nil, usagef("-server-id: %v", err)
	}
	var opts []workloadapi.X509SourceOption
	if c.g.workloadAPI != "" {
		addr := c.g.workloadAPI
		if !strings.Contains(addr, "://") {
			addr = "unix://" + addr
		}
		opts = append(opts, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
	}
	src, err := workloadapi.NewX509Source(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to get an X509-SVID from the Workload API: %w", err)
	}
	conn, err := grpc.NewClient(c.g.server, grpc.WithTransportCredentials(
		grpccredentials.MTLSClientCredentials(src, src, tlsconfig.AuthorizeID(serverID))))
	if err != nil {
		src.Close()
		return nil, nil, fmt.Errorf("failed to connect to %s: %w", c.g.server, err)
	}
	return conn, func() { conn.Close(); src.Close() }, nil
}
