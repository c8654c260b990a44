package sidecar_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/server/servertest"
	"github.com/agentid/agentid/pkg/sidecar"
)

func TestUnixSocket(t *testing.T) {
	f := newFixture(t)
	dir, err := os.MkdirTemp("", "sc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "sidecar.sock")
	// A stale socket from a previous run is replaced.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	config, err := sidecar.ParseConfig([]byte("listen: unix://" + path + "\nsocket_mode: \"0600\"\nworkload_api: " + f.wl.Addr + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sidecar.Start(servertest.Ctx(t), config)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v, %v", fi.Mode(), err)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	resp, err := client.Get("http://localhost/v1/identity")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("identity over unix socket: %d %s", resp.StatusCode, body)
	}
	client.CloseIdleConnections()
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
}

func TestUnixSocketPathOccupied(t *testing.T) {
	f := newFixture(t)
	path := filepath.Join(t.TempDir(), "not-a-socket")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if len(path) > 107 {
		t.Skip("temp dir too long for a socket path")
	}
	config, err := sidecar.ParseConfig([]byte("listen: unix://" + path + "\nworkload_api: " + f.wl.Addr + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = sidecar.Start(servertest.Ctx(t), config)
	if err == nil || err.Error() != "sidecar: "+path+" exists and is not a socket" {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Fatal("the file was touched")
	}
}

func TestStartWithoutWorkloadAPI(t *testing.T) {
	config, err := sidecar.ParseConfig([]byte("listen: 127.0.0.1:0\nworkload_api: unix:///nonexistent/agent.sock\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := sidecar.Start(ctx, config); !errors.Is(err, agentclient.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	f := newFixture(t)
	dir, err := os.MkdirTemp("", "sc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "s.sock")
	config, err := sidecar.ParseConfig([]byte("listen: unix://" + path + "\nworkload_api: " + f.wl.Addr + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(servertest.Ctx(t))
	done := make(chan error, 1)
	go func() { done <- sidecar.Run(ctx, config) }()
	// Wait until it serves (the socket accepts), bounded by the test context.
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Run ended early: %v", err)
		case <-servertest.Ctx(t).Done():
			t.Fatal("sidecar never listened")
		default:
			runtime.Gosched()
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
}

// A socket another instance listens on is left alone: only a socket
// nobody answers on is stale.
func TestUnixSocketInUseNotReplaced(t *testing.T) {
	f := newFixture(t)
	dir, err := os.MkdirTemp("", "sc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "sidecar.sock")
	live, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	config, err := sidecar.ParseConfig([]byte("listen: unix://" + path + "\nworkload_api: " + f.wl.Addr + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sidecar.Start(servertest.Ctx(t), config)
	if err == nil {
		sc.Close()
		t.Fatal("Start replaced a live socket")
	}
	if err.Error() != "sidecar: "+path+" is in use: another process listens on it" {
		t.Fatalf("err = %v", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the live socket was unlinked: %v", err)
	}
	c.Close()
}

// A Config built in code gets the defaults a file gets: without them every
// body would be too large and every call time out at once.
func TestStartAppliesDefaultsToCodeConfig(t *testing.T) {
	f := newFixture(t)
	dir, err := os.MkdirTemp("", "sc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "s.sock")
	listen, err := sidecar.ParseListenAddr("unix://" + path)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sidecar.Start(servertest.Ctx(t), sidecar.Config{
		Listen: listen, WorkloadAPI: f.wl.Addr,
		Server: sidecar.ServerConfig{Address: f.env.MTLSAddr, SPIFFEID: servertest.ServerID},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != sidecar.DefaultSocketMode {
		t.Fatalf("socket mode: %v, %v", fi.Mode(), err)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	defer client.CloseIdleConnections()
	body := `{"user_token":"` + f.env.AliceToken(t) + `","scopes":["campaigns:read"],"ttl":"5m"}`
	resp, err := client.Post("http://localhost/v1/delegations", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
}

func TestStartValidatesCodeConfig(t *testing.T) {
	listen, err := sidecar.ParseListenAddr("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := sidecar.ParseListenAddr("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		config sidecar.Config
		want   string
	}{
		{"world socket mode", sidecar.Config{Listen: listen, SocketMode: 0o666},
			"sidecar: invalid config: socket_mode: 0666 lets every local user reach the agent's credentials"},
		{"negative timeout", sidecar.Config{Listen: listen, RequestTimeout: -time.Second},
			"sidecar: invalid config: request_timeout: -1s outside 0..5m"},
		{"tiny body limit", sidecar.Config{Listen: listen, MaxBodyBytes: 10},
			"sidecar: invalid config: max_body_bytes: 10 outside 1024..16777216"},
		{"server without id", sidecar.Config{Listen: listen, Server: sidecar.ServerConfig{Address: "127.0.0.1:1"}},
			"sidecar: invalid config: server.spiffe_id: required with server.address"},
		{"route without id", sidecar.Config{Listen: listen, ProxyListen: proxy, Routes: []sidecar.Route{{Name: "crm", Upstream: "127.0.0.1:1"}}},
			"sidecar: invalid config: routes[0].spiffe_id: required"},
		{"routes for one host and port", sidecar.Config{Listen: listen, ProxyListen: proxy, Routes: []sidecar.Route{
			{Name: "crm", Upstream: "127.0.0.1:1", SPIFFEID: servertest.Verifier},
			{Name: "crm:80", Hosts: []string{"crm:8080", "CRM:8081"}, Upstream: "127.0.0.1:1", SPIFFEID: servertest.Verifier, Audience: "a b"}}},
			`sidecar: invalid config: routes[1].name: "crm:80" is already routed by routes[0].name; routes[1].hosts[1]: "CRM:8081" is not a lower-case host name or host:port; ` +
				"routes[1].audience: has a space or control character at byte 1"},
		{"proxy without routes", sidecar.Config{Listen: listen, ProxyListen: proxy},
			"sidecar: invalid config: proxy_listen: the proxy has no routes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := sidecar.Start(t.Context(), tt.config)
			if err == nil {
				sc.Close()
				t.Fatal("started")
			}
			if !errors.Is(err, sidecar.ErrInvalidConfig) || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant %s", err, tt.want)
			}
		})
	}
}

// The health check reads the injected clock: past the SVID's expiry it
// reports unhealthy.
func TestHealthzUsesClock(t *testing.T) {
	f := newFixture(t)
	svid, err := f.sc.Agent().X509SVID()
	if err != nil {
		t.Fatal(err)
	}
	after := svid.Certificates[0].NotAfter.Add(time.Second)
	config, err := sidecar.ParseConfig([]byte("listen: 127.0.0.1:0\nworkload_api: " + f.wl.Addr + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	config.Clock = func() time.Time { return after }
	sc, err := sidecar.Start(servertest.Ctx(t), config)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	r := f.do(t, "GET", "http://"+sc.APIAddr().String()+"/healthz", nil)
	if e := r.errorBody(t); r.status != http.StatusServiceUnavailable || e.Message != "sidecar: no valid X509-SVID" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}
