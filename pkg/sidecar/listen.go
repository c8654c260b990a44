package sidecar

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxSocketPath is the longest unix socket path Linux accepts (108 bytes
// with the terminating NUL).
const maxSocketPath = 107

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
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return ListenAddr{}, fmt.Errorf("%w: %q: %v", ErrNotLoopback, s, err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || (port != "0" && p == 0) {
		return ListenAddr{}, fmt.Errorf("%w: %q: port must be 0..65535", ErrNotLoopback, s)
	}
	if strings.EqualFold(host, "localhost") {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" || !ip.IsLoopback() {
		return ListenAddr{}, fmt.Errorf("%w: %q", ErrNotLoopback, s)
	}
	return ListenAddr{network: "tcp", address: net.JoinHostPort(ip.Unmap().String(), port)}, nil
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

// listen binds a. A unix socket left by a previous run is replaced, but
// only once a dial shows nobody answers on it: a live socket belongs to
// another instance, and is an error, as is any other file at the path. The
// socket is created under a tight umask and then given mode, so it is never
// reachable with looser permissions, even briefly. The bound address is
// checked again, so no resolver or kernel surprise can leave the sidecar on
// a non-loopback address.
func (a ListenAddr) listen(mode fs.FileMode) (net.Listener, error) {
	switch a.network {
	case "unix":
		if fi, err := os.Lstat(a.address); err == nil {
			if fi.Mode().Type() != fs.ModeSocket {
				return nil, fmt.Errorf("sidecar: %s exists and is not a socket", a.address)
			}
			if err := checkStale(a.address); err != nil {
				return nil, err
			}
			if err := os.Remove(a.address); err != nil {
				return nil, fmt.Errorf("sidecar: failed to remove stale socket: %w", err)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("sidecar: failed to inspect socket path: %w", err)
		}
		l, err := listenUnixPrivate(a.address)
		if err != nil {
			return nil, fmt.Errorf("sidecar: failed to listen: %w", err)
		}
		if err := os.Chmod(a.address, mode); err != nil {
			l.Close()
			return nil, fmt.Errorf("sidecar: failed to set socket mode: %w", err)
		}
		return l, nil
	case "tcp":
		l, err := net.Listen("tcp", a.address)
		if err != nil {
			return nil, fmt.Errorf("sidecar: failed to listen: %w", err)
		}
		if tcp, ok := l.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
			l.Close()
			return nil, fmt.Errorf("%w: bound to %s", ErrNotLoopback, l.Addr())
		}
		return l, nil
	default:
		return nil, fmt.Errorf("%w: not configured", ErrNotLoopback)
	}
}

// staleDialTimeout bounds the dial that tells a stale socket from a live
// one; a live local listener answers at once.
const staleDialTimeout = time.Second

// umaskMu serialises the sidecar's own umask changes. The umask is the
// process's: a file another goroutine creates meanwhile gets the tighter
// mode, which errs on the safe side.
var umaskMu sync.Mutex

// listenUnixPrivate creates the socket at path with umask 0177, so that it
// is born owner-only (0600) and only widened by the caller's chmod.
func listenUnixPrivate(path string) (net.Listener, error) {
	umaskMu.Lock()
	defer umaskMu.Unlock()
	old := syscall.Umask(0o177)
	defer syscall.Umask(old)
	return net.Listen("unix", path)
}

// checkStale returns nil if the socket at path is stale (connection
// refused: nobody listens), and an error if something answers or the
// dial fails otherwise, so a live socket is never unlinked.
func checkStale(path string) error {
	c, err := net.DialTimeout("unix", path, staleDialTimeout)
	switch {
	case err == nil:
		c.Close()
		return fmt.Errorf("sidecar: %s is in use: another process listens on it", path)
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil
	default:
		return fmt.Errorf("sidecar: cannot tell whether %s is stale: %w", path, err)
	}
}
