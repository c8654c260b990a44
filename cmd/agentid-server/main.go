// Command agentid-server is the delegation authority beside spire-server:
// user OIDC tokens in, bounded, revocable, audited delegations out.
//
//	agentid-server -config /etc/agentid/server.yaml
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/agentid/agentid/pkg/server"
	"github.com/agentid/agentid/pkg/server/config"
	"github.com/sirupsen/logrus"
)

func main() {
	path := flag.String("config", "/etc/agentid/server.yaml", "path to the configuration file")
	flag.Parse()
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, cfg, newLogger(cfg)); err != nil {
		fmt.Fprintln(os.Stderr, "agentid-server:", err)
		os.Exit(1)
	}
}

func newLogger(cfg *config.Config) *logrus.Logger {
	log := logrus.New()
	log.Out = os.Stderr
	if cfg.LogFormat == "json" {
		log.Formatter = &logrus.JSONFormatter{}
	}
	level, _ := logrus.ParseLevel(cfg.LogLevel) // validated by config
	log.Level = level
	return log
}
