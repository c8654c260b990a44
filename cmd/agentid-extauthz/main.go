// Command agentid-extauthz is an Envoy ext_authz v3 server for agent calls:
// it checks the agent's X509-SVID (Envoy's source principal) and its
// delegated JWT-SVID together, applies CEL route rules on both, and passes
// the identities upstream as x-agentid-* headers. See pkg/verify/extauthz.
//
//	agentid-extauthz -config /etc/agentid/extauthz.yaml
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	path := flag.String("config", "/etc/agentid/extauthz.yaml", "path to the configuration file")
	flag.Parse()
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, newLogger(cfg)); err != nil {
		fmt.Fprintln(os.Stderr, "agentid-extauthz:", err)
		os.Exit(1)
	}
}

func newLogger(cfg *config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
