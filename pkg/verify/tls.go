package verify

import (
	"crypto/tls"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ServerTLSConfig returns a TLS configuration for a service that receives
// agent calls: it presents the service's X509-SVID, requires a client
// X509-SVID, and verifies it against bundle and authorizer on every
// connection, resumed ones included.
//
// go-spiffe's tlsconfig.MTLSServerConfig checks the peer in
// VerifyPeerCertificate, which crypto/tls skips when a session is resumed: a
// client whose certificate was good once could come back on a ticket after
// the bundle or the authorizer changed. This configuration checks in
// VerifyConnection, which runs for resumptions too, so session tickets stay
// on (resumption keeps its speed) and every connection is checked.
//
// The adapters (httpmw, grpcmw) take the peer's SPIFFE ID from the
// connection state and trust that this check happened: serve them only with
// this configuration or one as strict.
func ServerTLSConfig(svid x509svid.Source, bundle x509bundle.Source, authorizer tlsconfig.Authorizer) *tls.Config {
	config := tlsconfig.MTLSServerConfig(svid, bundle, authorizer)
	verify := tlsconfig.VerifyPeerCertificate(bundle, authorizer)
	config.VerifyPeerCertificate = nil
	config.VerifyConnection = func(cs tls.ConnectionState) error {
		raw := make([][]byte, len(cs.PeerCertificates))
		for i, c := range cs.PeerCertificates {
			raw[i] = c.Raw
		}
		return verify(raw, nil)
	}
	return config
}

// PeerID returns the SPIFFE ID of the client certificate on a connection
// served with ServerTLSConfig, or ErrNoPeer.
func PeerID(cs *tls.ConnectionState) (spiffeid.ID, error) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, ErrNoPeer
	}
	id, err := x509svid.IDFromCert(cs.PeerCertificates[0])
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("%w: %w", ErrNoPeer, err)
	}
	return id, nil
}
