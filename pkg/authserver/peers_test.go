package authserver_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentid/agentid/pkg/authserver"
	"github.com/agentid/agentid/pkg/internal/testca"
)

// switchableBundle is an X.509 bundle source a test replaces.
type switchableBundle struct {
	b atomic.Pointer[x509bundle.Bundle]
}

func (s *switchableBundle) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return s.b.Load().GetX509BundleForTrustDomain(td)
}

// TestClientCertificateCache: a verified client certificate is taken as
// verified for at most 30 s of the clock; a CA removed from the bundle stops
// being honoured after that, and a certificate never seen is always checked.
func TestClientCertificateCache(t *testing.T) {
	bundles := &switchableBundle{}
	e := newEnvWith(t, func(c *authserver.Config) { c.X509Bundles = bundles })
	bundles.b.Store(e.ca.Bundle())
	cert := e.svidCert(t, e.ca, analyst)
	e.grant(t, e.child, mcpResource, cert)

	bundles.b.Store(testca.New(t, td).Bundle()) // the analyst's CA rotated out
	e.grant(t, e.child, mcpResource, cert)      // within the cache's 30 s
	if w := e.post(authserver.TokenPath, grantForm(e.assertion(t, e.child), mcpResource).Encode(), e.svidCert(t, e.ca, analyst), nil); w.Code != http.StatusUnauthorized {
		t.Fatalf("a certificate not seen before, from the removed CA: %d, want 401", w.Code)
	}
	e.clock.Add(31 * time.Second)
	if w := e.post(authserver.TokenPath, grantForm(e.assertion(t, e.child), mcpResource).Encode(), cert, nil); w.Code != http.StatusUnauthorized {
		t.Fatalf("after the cache's TTL: %d %s, want 401", w.Code, w.Body)
	}
}
