package sidecar_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/sidecar"
)

const goodConfig = `
listen: unix:///run/agentid/sidecar.sock
socket_mode: "0600"
proxy_listen: 127.0.0.1:15001
workload_api: unix:///run/spire/agent.sock
spiffe_id: spiffe://example.org/agent/orchestrator
server:
  address: agentid-server:8443
  spiffe_id: spiffe://example.org/agentid-server
routes:
  - name: crm
    hosts: [crm.example.org, crm.internal]
    upstream: crm:8443
    spiffe_id: spiffe://example.org/svc/crm
  - name: docs
    upstream: docs:8443
    spiffe_id: spiffe://example.org/svc/docs
    audience: https://docs.example.org
max_body_bytes: 131072
proxy_max_body_bytes: 1048576
request_timeout: 3s
`

func TestParseConfig(t *testing.T) {
	c, err := sidecar.ParseConfig([]byte(goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen.String() != "unix:///run/agentid/sidecar.sock" || c.SocketMode != 0o600 || c.ProxyListen.String() != "127.0.0.1:15001" ||
		c.WorkloadAPI != "unix:///run/spire/agent.sock" || c.SPIFFEID.String() != "spiffe://example.org/agent/orchestrator" ||
		c.Server.Address != "agentid-server:8443" || c.Server.SPIFFEID.String() != "spiffe://example.org/agentid-server" ||
		c.MaxBodyBytes != 131072 || c.ProxyMaxBodyBytes != 1<<20 || c.RequestTimeout != 3*time.Second || len(c.Routes) != 2 {
		t.Fatalf("config %+v", c)
	}
	if r := c.Routes[0]; r.Name != "crm" || len(r.Hosts) != 2 || r.Audience != "spiffe://example.org/svc/crm" {
		t.Fatalf("route 0 %+v", r)
	}
	if r := c.Routes[1]; r.Audience != "https://docs.example.org" {
		t.Fatalf("route 1 %+v", r)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := sidecar.ParseConfig([]byte("workload_api: unix:///run/spire/agent.sock\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen.String() != sidecar.DefaultListen || c.SocketMode != sidecar.DefaultSocketMode || !c.ProxyListen.IsZero() ||
		c.MaxBodyBytes != sidecar.DefaultMaxBodyBytes || c.ProxyMaxBodyBytes != sidecar.DefaultProxyMaxBodyBytes || c.RequestTimeout != sidecar.DefaultRequestTimeout || c.Server.Address != "" {
		t.Fatalf("defaults %+v", c)
	}
}

func TestParseConfigRejects(t *testing.T) {
	route := "proxy_listen: 127.0.0.1:15001\nroutes:\n  - name: crm\n    upstream: crm:8443\n    spiffe_id: spiffe://example.org/svc/crm\n"
	tests := []struct {
		name, yaml, want string
		notLoopback      bool
	}{
		{"empty", "", "sidecar: invalid config: the file is empty", false},
		{"unknown key", "listen: 127.0.0.1:1\nlisten_all: true\n", `sidecar: invalid config: line 2: unknown key "listen_all"`, false},
		{"unknown nested key", "server:\n  address: a:1\n  spiffe_id: spiffe://example.org/s\n  insecure: true\n",
			`sidecar: invalid config: line 4: unknown key "insecure"`, false},
		{"unknown route key", route + "    tls: false\n", `sidecar: invalid config: line 6: unknown key "tls"`, false},
		{"wrong type", "max_body_bytes: lots\n", "sidecar: invalid config: line 1: cannot unmarshal !!str `lots` into int64", false},
		{"bad duration", "request_timeout: soon\n", "sidecar: invalid config: line 1: cannot unmarshal !!str `soon` into time.Duration", false},
		{"two documents", "listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n", "sidecar: invalid config: more than one YAML document", false},
		{"all interfaces", "listen: :8080\n", `sidecar: invalid config: listen: listen address is not a unix socket or a loopback address: ":8080"`, true},
		{"any address", "listen: 0.0.0.0:8080\n", `sidecar: invalid config: listen: listen address is not a unix socket or a loopback address: "0.0.0.0:8080"`, true},
		{"public address", "listen: 192.0.2.1:8080\n", `sidecar: invalid config: listen: listen address is not a unix socket or a loopback address: "192.0.2.1:8080"`, true},
		{"host name", "listen: myhost:8080\n", `sidecar: invalid config: listen: listen address is not a unix socket or a loopback address: "myhost:8080"`, true},
		{"proxy on all interfaces", "proxy_listen: '[::]:15001'\nroutes:\n  - name: a\n    upstream: a:1\n    spiffe_id: spiffe://example.org/a\n",
			`sidecar: invalid config: proxy_listen: listen address is not a unix socket or a loopback address: "[::]:15001"`, true},
		{"relative socket", "listen: unix:sidecar.sock\n", `sidecar: invalid config: listen: listen address is not a unix socket or a loopback address: unix socket path "sidecar.sock" is not absolute`, true},
		{"world socket mode", "socket_mode: \"0666\"\n", `sidecar: invalid config: socket_mode: "0666" lets every local user reach the agent's credentials`, false},
		{"bad socket mode", "socket_mode: rw\n", `sidecar: invalid config: socket_mode: "rw" is not an octal file mode like "0660"`, false},
		{"bad workload api", "workload_api: /run/spire/agent.sock\n", `sidecar: invalid config: workload_api: "/run/spire/agent.sock" is not a unix:// or tcp:// address`, false},
		{"bad spiffe id", "spiffe_id: agent\n", "sidecar: invalid config: spiffe_id: scheme is missing or invalid", false},
		{"server without id", "server:\n  address: a:1\n", "sidecar: invalid config: server.spiffe_id: cannot be empty", false},
		{"oauth issuer not a URL", "oauth:\n  issuer: agentid.example.com\n", `sidecar: invalid config: oauth.issuer: "agentid.example.com" is not an https URL`, false},
		{"oauth missing CA file", "oauth:\n  issuer: https://agentid.example.com\n  ca_file: /nonexistent/ca.pem\n",
			"sidecar: invalid config: oauth.ca_file: open /nonexistent/ca.pem: no such file or directory", false},
		{"oauth CA file without PEM", "oauth:\n  issuer: https://agentid.example.com\n  ca_file: /dev/null\n",
			`sidecar: invalid config: oauth.ca_file: "/dev/null" holds no PEM certificate`, false},
		{"server bad address", "server:\n  address: a\n  spiffe_id: spiffe://example.org/s\n", `sidecar: invalid config: server.address: "a" is not host:port`, false},
		{"routes without proxy", "routes:\n  - name: a\n    upstream: a:1\n    spiffe_id: spiffe://example.org/a\n",
			"sidecar: invalid config: routes: set proxy_listen, or the routes are never used", false},
		{"proxy without routes", "proxy_listen: 127.0.0.1:1\n", "sidecar: invalid config: proxy_listen: the proxy has no routes", false},
		{"route problems", "proxy_listen: 127.0.0.1:1\nroutes:\n  - name: CRM\n    hosts: [a]\n    upstream: crm\n  - name: a\n    upstream: a:1\n    spiffe_id: spiffe://example.org/a\n",
			`sidecar: invalid config: routes[0].name: "CRM" is not a lower-case host name or host:port; routes[0].upstream: "crm" is not host:port; ` +
				`routes[0].spiffe_id: cannot be empty; routes[1].name: "a" is already routed by routes[0].hosts[0]`, false},
		{"route hosts with ports", "proxy_listen: 127.0.0.1:1\nroutes:\n  - name: crm\n    hosts: [\"crm:80\", \"crm:0\", \"crm:080\", \"crm:65536\", \"crm:\", \":8080\", \"crm:8080\"]\n" +
			"    upstream: crm:1\n    spiffe_id: spiffe://example.org/a\n  - name: crm.example.org:8080\n    hosts: [\"crm:8080\"]\n    upstream: a:1\n    spiffe_id: spiffe://example.org/a\n",
			`sidecar: invalid config: routes[0].hosts[0]: "crm:80" is already routed by routes[0].name; routes[0].hosts[1]: "crm:0" is not a lower-case host name or host:port; ` +
				`routes[0].hosts[2]: "crm:080" is not a lower-case host name or host:port; routes[0].hosts[3]: "crm:65536" is not a lower-case host name or host:port; ` +
				`routes[0].hosts[4]: "crm:" is not a lower-case host name or host:port; routes[0].hosts[5]: ":8080" is not a lower-case host name or host:port; ` +
				`routes[1].hosts[0]: "crm:8080" is already routed by routes[0].hosts[6]`, false},
		{"route audiences", "proxy_listen: 127.0.0.1:1\nroutes:\n  - name: a\n    upstream: a:1\n    spiffe_id: spiffe://example.org/a\n    audience: urn:agentid:delegation:dlg_01jd0000000000000000000000\n" +
			"  - name: b\n    upstream: b:1\n    spiffe_id: spiffe://example.org/b\n    audience: \"crm \"\n" +
			"  - name: c\n    upstream: c:1\n    spiffe_id: spiffe://example.org/c\n    audience: \"127.0.0.1:8443\"\n",
			"sidecar: invalid config: routes[0].audience: is a delegation marker (urn:agentid:delegation:…); name the delegation by its id instead; " +
				"routes[1].audience: has a space or control character at byte 3; " +
				"routes[2].audience: has a ':' but is not an absolute URI, like spiffe://example.org/svc/crm or https://crm.example.org", false},
		{"body limit", "max_body_bytes: 10\n", "sidecar: invalid config: max_body_bytes: 10 outside 1024..16777216", false},
		{"proxy body limit", "proxy_max_body_bytes: 1023\n", "sidecar: invalid config: proxy_max_body_bytes: 1023 outside 1024..1073741824", false},
		{"proxy body limit too high", "proxy_max_body_bytes: 1073741825\n",
			"sidecar: invalid config: proxy_max_body_bytes: 1073741825 outside 1024..1073741824", false},
		{"timeout", "request_timeout: -1s\n", "sidecar: invalid config: request_timeout: -1s outside 0..5m", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sidecar.ParseConfig([]byte(tt.yaml))
			if err == nil || err.Error() != tt.want || !errors.Is(err, sidecar.ErrInvalidConfig) {
				t.Fatalf("err = %v\nwant %s", err, tt.want)
			}
			if errors.Is(err, sidecar.ErrNotLoopback) != tt.notLoopback {
				t.Fatalf("errors.Is(ErrNotLoopback) = %v", !tt.notLoopback)
			}
		})
	}
}

func TestParseListenAddr(t *testing.T) {
	good := map[string]string{
		"127.0.0.1:80":         "127.0.0.1:80",
		"127.1.2.3:0":          "127.1.2.3:0",
		"localhost:15080":      "127.0.0.1:15080",
		"[::1]:15080":          "[::1]:15080",
		"[::ffff:127.0.0.1]:1": "127.0.0.1:1",
		"unix:///run/a.sock":   "unix:///run/a.sock",
		"unix:/run/a.sock":     "unix:///run/a.sock",
	}
	for in, want := range good {
		a, err := sidecar.ParseListenAddr(in)
		if err != nil || a.String() != want {
			t.Errorf("ParseListenAddr(%q) = %v, %v; want %s", in, a, err, want)
		}
	}
	for _, in := range []string{"", ":80", "0.0.0.0:80", "[::]:80", "10.0.0.1:80", "example.org:80", "127.0.0.1", "127.0.0.1:99999",
		"[fe80::1%lo]:80", "unix://", "unix://" + strings.Repeat("a", 120), "tcp://127.0.0.1:80"} {
		if _, err := sidecar.ParseListenAddr(in); !errors.Is(err, sidecar.ErrNotLoopback) {
			t.Errorf("ParseListenAddr(%q) err = %v, want ErrNotLoopback", in, err)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sidecar.yaml")
	if err := os.WriteFile(path, []byte(goodConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sidecar.LoadConfig(path); err != nil {
		t.Fatal(err)
	}
	if _, err := sidecar.LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestStartRefusesUnconfiguredListen(t *testing.T) {
	_, err := sidecar.Start(t.Context(), sidecar.Config{})
	if err == nil || err.Error() != "sidecar: listen address is not a unix socket or a loopback address: listen: not configured" {
		t.Fatalf("err = %v", err)
	}
}
