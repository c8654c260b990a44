// Command service is the example service agents call: it answers
// GET /whoami with the agent, user, scopes and chain it verified. See
// README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/agentid/agentid/examples/service/whoami"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func main() {
	var config whoami.Config
	var serverID string
	flag.StringVar(&config.WorkloadAPIAddr, "workload-api", os.Getenv("SPIFFE_ENDPOINT_SOCKET"), "Workload API address (env SPIFFE_ENDPOINT_SOCKET)")
	flag.StringVar(&config.Listen, "listen", envOr("SERVICE_LISTEN", "127.0.0.1:8443"), "mTLS listen address (env SERVICE_LISTEN)")
	flag.StringVar(&config.Audience, "audience", os.Getenv("SERVICE_AUDIENCE"), "accepted token audience; default the service's SPIFFE ID (env SERVICE_AUDIENCE)")
	flag.StringVar(&config.ServerAddr, "server-addr", os.Getenv("AGENTID_SERVER_ADDR"), "agentid-server mTLS address for the revocation watch, required (env AGENTID_SERVER_ADDR)")
	flag.StringVar(&serverID, "server-id", os.Getenv("AGENTID_SERVER_ID"), "agentid-server's SPIFFE ID (env AGENTID_SERVER_ID)")
	flag.BoolVar(&config.InsecureNoRevocation, "insecure-no-revocation", false, "DANGEROUS: run without -server-addr; tokens of revoked delegations are accepted until they expire")
	flag.Parse()
	if config.ServerAddr == "" && !config.InsecureNoRevocation {
		fmt.Fprintln(os.Stderr, "service: -server-addr is required (revocation checking); -insecure-no-revocation runs without it")
		os.Exit(2)
	}
	if config.ServerAddr != "" {
		id, err := spiffeid.FromString(serverID)
		if err != nil {
			fmt.Fprintln(os.Stderr, "service: -server-id:", err)
			os.Exit(2)
		}
		config.ServerID = id
	}
	config.Log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := whoami.Run(ctx, config); err != nil {
		fmt.Fprintln(os.Stderr, "service:", err)
		os.Exit(1)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
