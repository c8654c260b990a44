package spireapi_test

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestGetBundle(t *testing.T) {
	srv, client := startServer(t)
	ctx := context.Background()

	b, err := client.GetBundle(ctx)
	if err != nil {
		t.Fatalf("GetBundle: %v", err)
	}
	if b.TrustDomain() != td {
		t.Errorf("trust domain = %s, want %s", b.TrustDomain(), td)
	}
	if got := b.X509Authorities(); len(got) != 1 || !got[0].Equal(srv.X509Authority()) {
		t.Errorf("X.509 authorities = %d certificates, want the server's CA", len(got))
	}
	keyID, key := srv.JWTAuthority()
	if got, ok := b.FindJWTAuthority(keyID); !ok || !got.(*ecdsa.PublicKey).Equal(key) {
		t.Errorf("JWT authority %q missing or different", keyID)
	}
	if hint, ok := b.RefreshHint(); !ok || hint != 300*time.Second {
		t.Errorf("refresh hint = %s, %t, want 5m0s", hint, ok)
	}

	x, err := client.GetX509Bundle(ctx, td)
	if err != nil || len(x.X509Authorities()) != 1 {
		t.Errorf("GetX509Bundle(own) = %v, %v", x, err)
	}
	j, err := client.GetJWTBundle(ctx, td)
	if err != nil || !j.HasJWTAuthority(keyID) {
		t.Errorf("GetJWTBundle(own) = %v, %v", j, err)
	}
}

func TestGetFederatedBundles(t *testing.T) {
	srv, client := startServer(t)
	ctx := context.Background()
	partner := spiffeid.RequireTrustDomainFromString("partner.example")
	srv.SetFederatedBundle(&types.Bundle{
		TrustDomain:     partner.Name(),
		X509Authorities: []*types.X509Certificate{{Asn1: srv.X509Authority().Raw}},
	})

	x, err := client.GetX509Bundle(ctx, partner)
	if err != nil {
		t.Fatalf("GetX509Bundle(partner): %v", err)
	}
	if x.TrustDomain() != partner || len(x.X509Authorities()) != 1 {
		t.Errorf("partner bundle = %s with %d authorities", x.TrustDomain(), len(x.X509Authorities()))
	}

	for _, tt := range []struct {
		name string
		call func() error
		code codes.Code
		want string
	}{
		{
			name: "unknown trust domain",
			call: func() error {
				_, err := client.GetJWTBundle(ctx, spiffeid.RequireTrustDomainFromString("stranger.example"))
				return err
			},
			code: codes.NotFound,
			want: `spireapi: failed to get federated bundle for "stranger.example": rpc error: code = NotFound desc = bundle not found`,
		},
		{
			name: "own trust domain as federated",
			call: func() error {
				_, err := client.GetFederatedBundle(ctx, td)
				return err
			},
			code: codes.InvalidArgument,
			want: `spireapi: failed to get federated bundle for "example.org": rpc error: code = InvalidArgument desc = getting a federated bundle for the server's own trust domain is not allowed`,
		},
		{
			name: "no trust domain",
			call: func() error {
				_, err := client.GetX509Bundle(ctx, spiffeid.TrustDomain{})
				return err
			},
			want: "spireapi: trust domain is missing",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if fmt.Sprint(err) != tt.want {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
			if tt.code != codes.OK {
				if got := status.Code(errors.Unwrap(err)); got != tt.code {
					t.Errorf("code = %s, want %s", got, tt.code)
				}
			}
		})
	}
}
