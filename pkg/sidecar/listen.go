package sidecar

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"

	"github.com/agentid/agentid/pkg/internal/listener"
)

// maxSocketPath is the longest unix socket path Linux accepts.
const maxSocketPath = listener.MaxUnixPath

// ListenAddr is where the sidecar listens: a unix socket or a loopback
// TCP address. The only way to get one is ParseListenAddr, which refuses
// everything else, so a ListenAddr in hand is safe to bind.
type ListenAddr struct {
	network string // "unix" or "tcp"
	address string
}

// ParseListenAddr accepts "unix:///absolute/path" (or "unix:/absolute/path")
// and "host:port" where host is a loopback IP literal (127.0.0.0/8, ::1) or
// "localhost" (bound as 127.0.0.1, never resolved). Anything else, an empty
// host (all interfaces) or a host name above all, is ErrNotLoopback.
func ParseListenAddr(s string) (ListenAddr, error) {
	if s == "" {
		return ListenAddr{}, fmt.Errorf("%w: empty", ErrNotLoopback)
	}
	if rest, ok := strings.CutPrefix(s, "unix:"); ok {
		path := strings.TrimPrefix(rest, "//")
		switch {
		case !strings.HasPrefix(path, "/"):
			return ListenAddr{}, fmt.Errorf("%w: unix socket path %q is not absolute", ErrNotLoopback, path)
		case len(path) > maxSocketPath:
			return ListenAddr{}, fmt.Errorf("%w: unix socket path is %d bytes, at most %d", ErrNotLoopback, len(path), maxSocketPath)
		case strings.ContainsRune(path, 0):
			return ListenAddr{}, fmt.Errorf("%w: unix socket path contains NUL", ErrNotLoopback)
		}
		return ListenAddr{network: "unix", address: path}, nil
	}
	addr, err := listener.Loopback(s)
	if err != nil {
		return ListenAddr{}, notLoopback(err)
	}
	return ListenAddr{network: "tcp", address: addr}, nil
}

// IsZero reports whether a is the zero ListenAddr (not configured).
func (a ListenAddr) IsZero() bool { return a.network == "" }

// String returns the address as ParseListenAddr accepts it.
func (a ListenAddr) String() string {
	if a.network == "unix" {
		return "unix://" + a.address
	}
	return a.address
}

// listen binds a: a unix socket through listener.Unix (a live socket is
// never replaced, a stale one is; created 0600 then given mode), a TCP
// address through listener.LoopbackTCP (the bound address is checked
// again, so no resolver or kernel surprise can leave the sidecar on a
// non-loopback address).
func (a ListenAddr) listen(mode fs.FileMode) (net.Listener, error) {
	switch a.network {
	case "unix":
		l, err := listener.Unix(a.address, mode)
		if err != nil {
			return nil, fmt.Errorf("sidecar: %w", err)
		}
		return l, nil
	case "tcp":
		l, err := listener.LoopbackTCP(a.address)
		if errors.Is(err, listener.ErrNotLoopback) {
			return nil, notLoopback(err)
		} else if err != nil {
			return nil, fmt.Errorf("sidecar: %w", err)
		}
		return l, nil
	default:
		return nil, fmt.Errorf("%w: not configured", ErrNotLoopback)
	}
}

// notLoopback restates listener's refusal as the sidecar's ErrNotLoopback.
func notLoopback(err error) error {
	return fmt.Errorf("%w: %s", ErrNotLoopback, strings.TrimPrefix(err.Error(), listener.ErrNotLoopback.Error()+": "))
}
