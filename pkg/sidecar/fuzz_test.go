package sidecar_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/agentid/agentid/pkg/sidecar"
)

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(goodConfig))
	f.Add([]byte("listen: 127.0.0.1:1\nlisten_all: true\n"))
	f.Add([]byte("routes:\n  - name: a\n    upstream: a:1\n    spiffe_id: spiffe://example.org/a\n"))
	f.Add([]byte("listen: [a, b]\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := sidecar.ParseConfig(data)
		if err != nil {
			if !errors.Is(err, sidecar.ErrInvalidConfig) {
				t.Fatalf("error %v is not ErrInvalidConfig", err)
			}
			return
		}
		for _, a := range []sidecar.ListenAddr{c.Listen, c.ProxyListen} {
			if !a.IsZero() {
				checkSafe(t, a.String())
			}
		}
	})
}

func FuzzParseListenAddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1:80", "localhost:1", "[::1]:2", "unix:///a", "0.0.0.0:1", ":1", "[::ffff:127.0.0.1]:1", "unix:/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := sidecar.ParseListenAddr(s)
		if err != nil {
			if !errors.Is(err, sidecar.ErrNotLoopback) {
				t.Fatalf("error %v is not ErrNotLoopback", err)
			}
			return
		}
		checkSafe(t, a.String())
	})
}

// checkSafe asserts an accepted address is a unix socket or loopback.
func checkSafe(t *testing.T, s string) {
	t.Helper()
	if strings.HasPrefix(s, "unix:///") {
		return
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || !ap.Addr().IsLoopback() {
		t.Fatalf("accepted %q, which is not loopback", s)
	}
}
