package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/agentid/agentid/pkg/internal/serverdial"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
)

// dial connects to agentid-server: over mTLS with this process's X509-SVID
// when -server is set, else over the local socket. The returned function
// closes everything dial opened.
func (c *command) dial(ctx context.Context) (*grpc.ClientConn, func(), error) {
	if c.g.server == "" {
		conn, err := serverdial.Local(c.g.socket)
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
	conn, err := serverdial.MTLSServerID(c.g.server, src, src, serverID)
	if err != nil {
		src.Close()
		return nil, nil, fmt.Errorf("failed to connect to %s: %w", c.g.server, err)
	}
	return conn, func() { conn.Close(); src.Close() }, nil
}
