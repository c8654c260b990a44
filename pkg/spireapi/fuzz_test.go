package spireapi

import (
	"reflect"
	"testing"

	apitypes "github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/protobuf/proto"
)

// FuzzEntryFromAPI feeds arbitrary wire bytes through the conversion of a
// SPIRE entry: it must never panic, and what it accepts must survive a round
// trip to the wire and back unchanged (what the reconciler's comparison relies
// on).
func FuzzEntryFromAPI(f *testing.F) {
	seed := func(e *apitypes.Entry) {
		b, err := proto.Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(&apitypes.Entry{
		Id:            "agentid-a.0123456789abcdef",
		SpiffeId:      &apitypes.SPIFFEID{TrustDomain: "example.org", Path: "/agent/a"},
		ParentId:      &apitypes.SPIFFEID{TrustDomain: "example.org", Path: "/spire/agent/x"},
		Selectors:     []*apitypes.Selector{{Type: "aiagent", Value: "name:a"}},
		X509SvidTtl:   3600,
		JwtSvidTtl:    300,
		FederatesWith: []string{"partner.example"},
		DnsNames:      []string{"a.example.org"},
		ExpiresAt:     1893456000,
		CreatedAt:     1767225600,
		Hint:          "a",
	})
	seed(&apitypes.Entry{SpiffeId: &apitypes.SPIFFEID{TrustDomain: "Example.org", Path: "a"}})
	seed(&apitypes.Entry{
		SpiffeId:  &apitypes.SPIFFEID{TrustDomain: "example.org", Path: "/a"},
		ParentId:  &apitypes.SPIFFEID{TrustDomain: "example.org", Path: "/b"},
		Selectors: []*apitypes.Selector{{Type: "a:b", Value: "c"}},
	})
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, b []byte) {
		var in apitypes.Entry
		if err := proto.Unmarshal(b, &in); err != nil {
			return
		}
		e, err := entryFromAPI(&in)
		if err != nil {
			return
		}
		again, err := entryFromAPI(entryToAPI(e))
		if err != nil {
			t.Fatalf("accepted entry %+v does not convert back: %v", e, err)
		}
		// Server-set fields are not sent.
		e.RevisionNumber, e.CreatedAt = 0, again.CreatedAt
		if len(e.DNSNames) == 0 {
			e.DNSNames = nil
		}
		if len(again.DNSNames) == 0 {
			again.DNSNames = nil
		}
		if !reflect.DeepEqual(e, again) {
			t.Fatalf("round trip changed the entry\n got %+v\nwant %+v", again, e)
		}
	})
}

// FuzzBundleFromAPI checks that no bundle the server could send makes the
// conversion panic.
func FuzzBundleFromAPI(f *testing.F) {
	b, err := proto.Marshal(&apitypes.Bundle{
		TrustDomain:     "example.org",
		X509Authorities: []*apitypes.X509Certificate{{Asn1: []byte{0x30, 0x03, 0x02, 0x01, 0x01}}},
		JwtAuthorities:  []*apitypes.JWTKey{{KeyId: "k", PublicKey: []byte{0x30, 0x00}}},
		RefreshHint:     300,
		SequenceNumber:  2,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var in apitypes.Bundle
		if err := proto.Unmarshal(b, &in); err != nil {
			return
		}
		out, err := bundleFromAPI(&in)
		if err == nil && out.TrustDomain().Name() == "" {
			t.Fatalf("accepted a bundle without a trust domain")
		}
	})
}
