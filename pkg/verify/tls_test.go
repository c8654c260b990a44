package verify_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/internal/testca"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
)

// serveTLS accepts TLS connections on loopback, writes "ok" on each and
// closes it, until the test ends.
func serveTLS(t *testing.T, config *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.Write([]byte("ok"))
			}()
		}
	}()
	return ln.Addr().String()
}

// dial connects, reads the greeting and reports whether the session was
// resumed.
func dial(addr string, config *tls.Config) (resumed bool, err error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, config)
	if err != nil {
		return false, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil {
		return c.ConnectionState().DidResume, err
	}
	return c.ConnectionState().DidResume, nil
}

// A client admitted once must be checked again when it resumes its session:
// here the authorizer stops admitting it between two connections.
func TestServerTLSConfigChecksResumedSessions(t *testing.T) {
	ca := testca.New(t, "example.org")
	server := ca.X509SVID(t, ca.ID(t, "/svc/crm"))
	client := ca.X509SVID(t, ca.ID(t, "/agent/market-analysis"))
	var admit atomic.Bool
	admitting := tlsconfig.Authorizer(func(id spiffeid.ID, _ [][]*x509.Certificate) error {
		if !admit.Load() {
			return errors.New("not admitted")
		}
		return nil
	})

	for _, tt := range []struct {
		name       string
		config     *tls.Config
		resumedGet bool // whether the second connection gets through
	}{
		{"go-spiffe MTLSServerConfig lets the resumed session through", tlsconfig.MTLSServerConfig(server, ca.X509Bundle, admitting), true},
		{"ServerTLSConfig checks it", verify.ServerTLSConfig(server, ca.X509Bundle, admitting), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			admit.Store(true)
			addr := serveTLS(t, tt.config)
			cc := tlsconfig.MTLSClientConfig(client, ca.X509Bundle, tlsconfig.AuthorizeAny())
			cc.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			if resumed, err := dial(addr, cc); err != nil || resumed {
				t.Fatalf("first connection: resumed=%v err=%v", resumed, err)
			}
			admit.Store(false)
			resumed, err := dial(addr, cc)
			if tt.resumedGet {
				if err != nil || !resumed {
					t.Fatalf("second connection: resumed=%v err=%v", resumed, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("second connection (resumed=%v) was not checked", resumed)
			}
			// A fresh client without a session is refused too.
			if _, err := dial(addr, tlsconfig.MTLSClientConfig(client, ca.X509Bundle, tlsconfig.AuthorizeAny())); err == nil {
				t.Fatal("fresh connection admitted")
			}
		})
	}
}

func TestPeerID(t *testing.T) {
	ca := testca.New(t, "example.org")
	svid := ca.X509SVID(t, ca.ID(t, "/agent/a"))
	id, err := verify.PeerID(&tls.ConnectionState{PeerCertificates: svid.Certificates})
	if err != nil || id != svid.ID {
		t.Fatalf("PeerID = %v, %v", id, err)
	}
	if _, err := verify.PeerID(&tls.ConnectionState{}); err == nil || err.Error() != "verify: no peer SPIFFE ID" {
		t.Fatalf("no certificate: %v", err)
	}
	if _, err := verify.PeerID(nil); !errors.Is(err, verify.ErrNoPeer) {
		t.Fatalf("no TLS: %v", err)
	}
	noURI := *svid.Certificates[0]
	noURI.URIs = nil
	if _, err := verify.PeerID(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{&noURI}}); err == nil ||
		err.Error() != "verify: no peer SPIFFE ID: certificate contains no URI SAN" {
		t.Fatalf("no URI SAN: %v", err)
	}
}
