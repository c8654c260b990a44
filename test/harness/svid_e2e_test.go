//go:build e2e

package harness_test

import (
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/agentid/agentid/test/harness"
)

// TestMintX509SVID mints an X509-SVID over the admin socket and checks it
// as a peer would: it chains to the server's bundle, carries the ID asked
// for and lives about as long as asked.
func TestMintX509SVID(t *testing.T) {
	t.Parallel()
	srv := harness.StartSPIREServer(t, harness.ServerOptions{})
	id := spiffeid.RequireFromPath(srv.TrustDomain(), "/svc/minted")
	svid := srv.MintX509SVID(t, id, 10*time.Minute)

	got, chains, err := x509svid.Verify(svid.Certificates, srv.X509Bundle(t))
	if err != nil {
		t.Fatalf("minted X509-SVID does not verify against the server's bundle: %v", err)
	}
	if got != id || len(chains) == 0 {
		t.Fatalf("minted X509-SVID verifies as %s with %d chains, want %s", got, len(chains), id)
	}
	leaf := svid.Certificates[0]
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 9*time.Minute || life > 11*time.Minute {
		t.Fatalf("minted X509-SVID lives %s (%s to %s), want about 10m", life, leaf.NotBefore, leaf.NotAfter)
	}
}
