package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"all interfaces", []string{"-config", write("a.yaml", "listen: 0.0.0.0:15080\n")}, 2,
			`sidecar: invalid config: listen: listen address is not a unix socket or a loopback address: "0.0.0.0:15080"`},
		{"pod address", []string{"-config", write("b.yaml", "listen: 10.1.2.3:15080\n")}, 2,
			`sidecar: invalid config: listen: listen address is not a unix socket or a loopback address: "10.1.2.3:15080"`},
		{"unknown key", []string{"-config", write("c.yaml", "listen: 127.0.0.1:0\nbind_all: true\n")}, 2,
			`sidecar: invalid config: line 2: unknown key "bind_all"`},
		{"metrics on a host name", []string{"-config", write("e.yaml", "listen: 127.0.0.1:0\nmetrics_listen: prometheus:9091\n")}, 2,
			`sidecar: invalid config: metrics_listen: "prometheus:9091": host must be an IP address, "localhost" or empty (all interfaces); names are not resolved`},
		{"missing file", []string{"-config", filepath.Join(dir, "none.yaml")}, 2, "sidecar: failed to read config: open "},
		{"bad flag", []string{"-listen", "x"}, 2, "flag provided but not defined: -listen"},
		{"no Workload API", []string{"-config", write("d.yaml", "listen: 127.0.0.1:0\nworkload_api: unix:///nonexistent/agent.sock\n")}, 1,
			"agentid-sidecar: agentclient: SPIRE unavailable or delegation denied without a recognisable reason: failed to get an X509-SVID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			var stderr bytes.Buffer
			if code := run(ctx, tt.args, &stderr); code != tt.code || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("exit %d, stderr %s\nwant %d, %s", code, stderr.String(), tt.code, tt.want)
			}
		})
	}
}
