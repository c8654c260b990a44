package spireapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"log"
	"time"

	"github.com/agentid/agentid/pkg/spireapi"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Dial the admin socket, list the entries, and mint an X509-SVID for the
// calling process.
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := spireapi.Dial(ctx, "/tmp/spire-server/private/api.sock")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	entries, err := client.ListEntries(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range entries {
		fmt.Println(e.ID, e.SPIFFEID, e.Selectors)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	svid, err := client.MintX509SVID(ctx, spiffeid.RequireFromString("spiffe://example.org/agentid-server"), key, time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(svid.ID, svid.Certificates[0].NotAfter)
}
