package listener_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentid/agentid/pkg/internal/listener"
)

// socketPath returns a short path: t.TempDir() can pass MaxUnixPath.
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ls")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s.sock")
}

func TestUnixModeAndRemovedOnClose(t *testing.T) {
	path := socketPath(t)
	l, err := listener.Unix(path, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket = %v, %v; want a 0660 socket", fi, err)
	}
	l.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind after Close: %v", err)
	}
}

func TestUnixReplacesStaleSocket(t *testing.T) {
	path := socketPath(t)
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	l, err := listener.Unix(path, 0o600)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l.Close()
}

func TestUnixRefuses(t *testing.T) {
	live := socketPath(t)
	l, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	file := socketPath(t)
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	long := "/tmp/" + strings.Repeat("x", listener.MaxUnixPath-4)
	world, notPerm := socketPath(t), socketPath(t)
	for _, tc := range []struct {
		name, path string
		mode       os.FileMode
		want       string
	}{
		{"live socket", live, 0o660, live + " is in use: another process listens on it"},
		{"not a socket", file, 0o660, file + " exists and is not a socket"},
		{"world mode", world, 0o666, "socket " + world + ": mode 0666 lets every local user connect"},
		{"not a permission", notPerm, os.ModeDir | 0o600, "socket " + notPerm + ": drw------- is not a permission mode like 0660"},
		{"long path", long, 0o600, "socket " + long + ": path is 108 bytes, at most 107"},
	} {
		want := tc.want
		l, err := listener.Unix(tc.path, tc.mode)
		if err == nil {
			l.Close()
			t.Errorf("%s: Unix succeeded", tc.name)
			continue
		}
		if err.Error() != want {
			t.Errorf("%s: %v, want %q", tc.name, err, want)
		}
	}
	// The live socket and the file are untouched.
	if c, err := net.Dial("unix", live); err != nil {
		t.Errorf("live socket unlinked: %v", err)
	} else {
		c.Close()
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep" {
		t.Errorf("file at the path changed: %q, %v", b, err)
	}
}

func TestLoopback(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:80":         "127.0.0.1:80",
		"localhost:0":          "127.0.0.1:0",
		"LOCALHOST:1":          "127.0.0.1:1",
		"127.1.2.3:9":          "127.1.2.3:9",
		"[::1]:443":            "[::1]:443",
		"[::ffff:127.0.0.1]:5": "127.0.0.1:5",
	} {
		got, err := listener.Loopback(in)
		if err != nil || got != want {
			t.Errorf("Loopback(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		":80":             `not a loopback address: ":80"`,
		"0.0.0.0:80":      `not a loopback address: "0.0.0.0:80"`,
		"10.0.0.1:80":     `not a loopback address: "10.0.0.1:80"`,
		"example.com:80":  `not a loopback address: "example.com:80"`,
		"[fe80::1%lo]:80": `not a loopback address: "[fe80::1%lo]:80"`,
		"127.0.0.1:65536": `not a loopback address: "127.0.0.1:65536": port must be 0..65535`,
		"127.0.0.1:00":    `not a loopback address: "127.0.0.1:00": port must be 0..65535`,
		"127.0.0.1":       `not a loopback address: "127.0.0.1": address 127.0.0.1: missing port in address`,
	} {
		_, err := listener.Loopback(in)
		if !errors.Is(err, listener.ErrNotLoopback) || err.Error() != want {
			t.Errorf("Loopback(%q) = %v; want %q", in, err, want)
		}
	}
}

func TestLoopbackTCP(t *testing.T) {
	l, err := listener.LoopbackTCP("localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if ip := l.Addr().(*net.TCPAddr).IP; !ip.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("bound to %v", l.Addr())
	}
	if _, err := listener.LoopbackTCP("0.0.0.0:0"); !errors.Is(err, listener.ErrNotLoopback) {
		t.Errorf("LoopbackTCP(0.0.0.0:0) = %v", err)
	}
}
