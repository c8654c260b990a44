package spireapi_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/spireapi"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	svidv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/svid/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func newKey(tb testing.TB) crypto.Signer {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

func TestMintX509SVID(t *testing.T) {
	srv, client := startServer(t)
	ctx := context.Background()
	id := spiffeid.RequireFromPath(td, "/agentid-server")
	key := newKey(t)

	before := time.Now().Truncate(time.Second)
	svid, err := client.MintX509SVID(ctx, id, key, 10*time.Minute)
	if err != nil {
		t.Fatalf("MintX509SVID: %v", err)
	}
	after := time.Now()
	if svid.ID != id || svid.PrivateKey != key {
		t.Errorf("SVID = %s with key %p, want %s with key %p", svid.ID, svid.PrivateKey, id, key)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, x509bundle.FromX509Authorities(td, []*x509.Certificate{srv.X509Authority()})); err != nil {
		t.Errorf("minted SVID does not verify against the server's CA: %v", err)
	}
	if na := svid.Certificates[0].NotAfter; na.Before(before.Add(10*time.Minute)) || na.After(after.Add(10*time.Minute)) {
		t.Errorf("NotAfter = %s, want 10m after the call (%s..%s)", na, before, after)
	}
	if got := srv.Calls().MintX509SVID; got != 1 {
		t.Errorf("server saw %d MintX509SVID calls, want 1", got)
	}
}

func TestMintX509SVIDErrors(t *testing.T) {
	_, client := startServer(t)
	ctx := context.Background()
	key := newKey(t)
	for _, tt := range []struct {
		name string
		id   spiffeid.ID
		key  crypto.Signer
		ttl  time.Duration
		code codes.Code // OK: a local error, no call
		want string
	}{
		{name: "no id", key: key, want: "spireapi: SPIFFE ID is missing"},
		{name: "no key", id: spiffeid.RequireFromPath(td, "/x"), want: "spireapi: private key is missing"},
		{name: "negative ttl", id: spiffeid.RequireFromPath(td, "/x"), key: key, ttl: -time.Second, want: "spireapi: TTL -1s is out of range"},
		{
			name: "another trust domain",
			id:   spiffeid.RequireFromString("spiffe://other.org/x"),
			key:  key,
			code: codes.InvalidArgument,
			want: `spireapi: failed to mint X509-SVID: rpc error: code = InvalidArgument desc = CSR URI SAN is invalid: "spiffe://other.org/x" is not a member of trust domain "example.org"`,
		},
		{
			name: "reserved path",
			id:   spiffeid.RequireFromPath(td, "/spire/server"),
			key:  key,
			code: codes.InvalidArgument,
			want: `spireapi: failed to mint X509-SVID: rpc error: code = InvalidArgument desc = CSR URI SAN is invalid: "spiffe://example.org/spire/server" is not a workload in trust domain "example.org"; path is in the reserved namespace`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.MintX509SVID(ctx, tt.id, tt.key, tt.ttl)
			if fmt.Sprint(err) != tt.want {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
			if got := status.Code(errors.Unwrap(err)); tt.code != codes.OK && got != tt.code {
				t.Errorf("code = %s, want %s", got, tt.code)
			}
		})
	}
}

// lyingSVIDServer answers MintX509SVID with a certificate of its choosing.
type lyingSVIDServer struct {
	svidv1.UnimplementedSVIDServer
	answer func(csr *x509.CertificateRequest) [][]byte
}

func (l *lyingSVIDServer) MintX509SVID(_ context.Context, req *svidv1.MintX509SVIDRequest) (*svidv1.MintX509SVIDResponse, error) {
	csr, err := x509.ParseCertificateRequest(req.Csr)
	if err != nil {
		return nil, err
	}
	return &svidv1.MintX509SVIDResponse{Svid: &types.X509SVID{CertChain: l.answer(csr)}}, nil
}

func selfSigned(tb testing.TB, uri string, pub crypto.PublicKey) []byte {
	tb.Helper()
	signer := newKey(tb)
	u, err := url.Parse(uri)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		URIs:         []*url.URL{u},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, signer)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// serveSVID runs svc on a unix socket and returns a client made with New.
func serveSVID(tb testing.TB, svc svidv1.SVIDServer) *spireapi.Client {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		tb.Fatal(err)
	}
	gs := grpc.NewServer()
	svidv1.RegisterSVIDServer(gs, svc)
	go gs.Serve(ln)
	tb.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return spireapi.New(conn)
}

func TestMintX509SVIDChecksTheAnswer(t *testing.T) {
	id := spiffeid.RequireFromPath(td, "/agentid-server")
	other := newKey(t)
	for _, tt := range []struct {
		name   string
		answer func(csr *x509.CertificateRequest) [][]byte
		want   string
	}{
		{
			name:   "no certificates",
			answer: func(*x509.CertificateRequest) [][]byte { return nil },
			want:   "spireapi: malformed response from SPIRE server: X509-SVID has no certificates",
		},
		{
			name:   "garbage",
			answer: func(*x509.CertificateRequest) [][]byte { return [][]byte{[]byte("garbage")} },
			want:   "spireapi: malformed response from SPIRE server: X509-SVID certificate: x509: malformed certificate",
		},
		{
			name: "another SPIFFE ID",
			answer: func(csr *x509.CertificateRequest) [][]byte {
				return [][]byte{selfSigned(t, "spiffe://example.org/admin", csr.PublicKey)}
			},
			want: `spireapi: malformed response from SPIRE server: X509-SVID is for "spiffe://example.org/admin", not "spiffe://example.org/agentid-server"`,
		},
		{
			name: "another key",
			answer: func(*x509.CertificateRequest) [][]byte {
				return [][]byte{selfSigned(t, id.String(), other.Public())}
			},
			want: "spireapi: malformed response from SPIRE server: X509-SVID does not certify the key sent",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client := serveSVID(t, &lyingSVIDServer{answer: tt.answer})
			_, err := client.MintX509SVID(context.Background(), id, newKey(t), 0)
			if fmt.Sprint(err) != tt.want {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
			if !errors.Is(err, spireapi.ErrMalformedResponse) {
				t.Errorf("error %v does not wrap ErrMalformedResponse", err)
			}
		})
	}
}
