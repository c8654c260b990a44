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
