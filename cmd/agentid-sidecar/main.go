// Command agentid-sidecar gives an agent that does not speak SPIFFE (Python,
// TypeScript, anything with an HTTP client) its agentid identity: a local
// HTTP API for delegated JWT-SVIDs and delegations, and an egress proxy that
// upgrades plain HTTP to mTLS with a bearer JWT-SVID. See README.md.
//
//	agentid-sidecar -config /etc/agentid/sidecar.yaml
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/agentid/agentid/pkg/sidecar"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// run is the program: 2 for bad flags or configuration, 1 when start-up or
// serving fails, 0 after a clean stop.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("agentid-sidecar", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/agentid/sidecar.yaml", "path to the configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	config, err := sidecar.LoadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	config.Log = slog.New(slog.NewJSONHandler(stderr, nil))
	if err := sidecar.Run(ctx, config); err != nil {
		fmt.Fprintln(stderr, "agentid-sidecar:", err)
		return 1
	}
	return 0
}
