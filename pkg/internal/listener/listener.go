// Package listener opens the local listeners of agentid's programs, the
// same safe way in each: agentid-server's local socket, the sidecar's API
// and proxy, agentid-extauthz's ext_authz and admin listeners.
//
// A unix socket is the access control of what listens on it (the local
// socket grants admin rights, the sidecar's API acts as the agent), so Unix
// never weakens it:
//
//   - A live socket (another instance answers on it) is never replaced: Unix
//     fails, and the other instance keeps serving.
//   - A stale socket (left by a crash: connecting is refused) is removed.
//     Any other file at the path is an error, never removed.
//   - The socket is created under umask 0177, so it exists only as 0600
//     until it is given its mode: no process can connect in a window with
//     looser permissions.
//   - Its owner is the process's user and group (or the directory's group
//     when the directory is setgid); the mode says who else may connect.
//     A mode letting others (the o bits) connect is refused.
//   - Closing the listener removes the socket.
//
// A TCP listener that must stay on the host is checked with Loopback,
// before binding and again on the address bound.
package listener

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

// MaxUnixPath is the longest unix socket path Linux accepts (108 bytes with
// the terminating NUL).
const MaxUnixPath = 107

// staleDialTimeout bounds the dial that tells a stale socket from a live
// one; a live local listener answers at once.
const staleDialTimeout = time.Second

// ErrNotLoopback is returned by Loopback and LoopbackTCP for an address
// reachable from other hosts.
var ErrNotLoopback = errors.New("not a loopback address")

// umaskMu serialises this package's umask changes. The umask is the
// process's: a file another goroutine creates meanwhile gets the tighter
// mode, which errs on the safe side.
var umaskMu sync.Mutex

// Unix listens on the unix socket at path with the given permission mode
// (e.g. 0o660: owner and group), following the rules in the package
// documentation. Errors name the path.
func Unix(path string, mode fs.FileMode) (net.Listener, error) {
	switch {
	case mode&^fs.ModePerm != 0:
		return nil, fmt.Errorf("socket %s: %v is not a permission mode like 0660", path, mode)
	case mode&0o007 != 0:
		return nil, fmt.Errorf("socket %s: mode %04o lets every local user connect", path, uint32(mode))
	case len(path) > MaxUnixPath:
		return nil, fmt.Errorf("socket %s: path is %d bytes, at most %d", path, len(path), MaxUnixPath)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	l, err := listenPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf("failed to set the mode of %s: %w", path, err)
	}
	return l, nil
}

// removeStale removes a socket at path nobody answers on. Nothing at path
// is fine; a live socket or another kind of file is an error.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("failed to inspect %s: %w", path, err)
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, staleDialTimeout)
	switch {
	case err == nil:
		c.Close()
		return fmt.Errorf("%s is in use: another process listens on it", path)
	case !errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot tell whether %s is stale: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("failed to remove stale socket %s: %w", path, err)
	}
	return nil
}

// listenPrivate creates the socket with umask 0177: born 0600.
func listenPrivate(path string) (net.Listener, error) {
	umaskMu.Lock()
	defer umaskMu.Unlock()
	old := syscall.Umask(0o177)
	defer syscall.Umask(old)
	return net.Listen("unix", path)
}

// Loopback checks that hostport names a loopback address and returns it as
// it is to be bound: the host a loopback IP literal (127.0.0.0/8, ::1, no
// zone), "localhost" becoming 127.0.0.1 without any resolver asked. An
// empty host (all interfaces), a host name or another IP is ErrNotLoopback,
// as is a port outside 0..65535.
func Loopback(hostport string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %w", ErrNotLoopback, hostport, err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || (port != "0" && p == 0) {
		return "", fmt.Errorf("%w: %q: port must be 0..65535", ErrNotLoopback, hostport)
	}
	if strings.EqualFold(host, "localhost") {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" || !ip.IsLoopback() {
		return "", fmt.Errorf("%w: %q", ErrNotLoopback, hostport)
	}
	return net.JoinHostPort(ip.Unmap().String(), port), nil
}

// LoopbackTCP listens on hostport after Loopback accepts it, and checks the
// address bound again, so no kernel surprise leaves it reachable from
// other hosts.
func LoopbackTCP(hostport string) (net.Listener, error) {
	addr, err := Loopback(hostport)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %s: %w", addr, err)
	}
	if tcp, ok := l.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		l.Close()
		return nil, fmt.Errorf("%w: bound to %s", ErrNotLoopback, l.Addr())
	}
	return l, nil
}
