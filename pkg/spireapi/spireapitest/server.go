package spireapitest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	bundlev1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/bundle/v1"
	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	svidv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/svid/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// Server is a fake SPIRE Server API listening on a unix socket. All methods
// are safe for concurrent use.
type Server struct {
	tb         testing.TB
	td         spiffeid.TrustDomain
	socketPath string

	caCert   *x509.Certificate
	caKey    crypto.Signer
	jwtKeyID string
	jwtKey   crypto.PublicKey
	jwtSign  crypto.Signer

	mu        sync.Mutex
	grpc      *grpc.Server
	served    chan struct{} // closed when the current Serve returns
	entries   map[string]*storedEntry
	nextEID   uint64
	calls     Calls
	failures  map[spiffeid.ID]failure
	federated map[spiffeid.TrustDomain]*types.Bundle
}

type storedEntry struct {
	eid   uint64 // SPIRE's row id: list order and page token
	entry *types.Entry
}

type failure struct {
	code    codes.Code
	message string
}

// Calls counts what the fake served: RPCs by method, and entries written
// successfully. Tests use it to prove a pass wrote nothing, or batched.
type Calls struct {
	ListEntries        int
	BatchCreateEntry   int
	BatchUpdateEntry   int
	BatchDeleteEntry   int
	MintX509SVID       int
	GetBundle          int
	GetFederatedBundle int
	// Created, Updated and Deleted count entries (not calls) whose write
	// succeeded.
	Created int
	Updated int
	Deleted int
}

// Writes returns the number of batch write calls, successful or not.
func (c Calls) Writes() int {
	return c.BatchCreateEntry + c.BatchUpdateEntry + c.BatchDeleteEntry
}

// New starts a fake SPIRE server for trust domain td on a socket in a fresh
// temporary directory. It is stopped when the test ends.
func New(tb testing.TB, td spiffeid.TrustDomain) *Server {
	tb.Helper()
	s := &Server{
		tb:         tb,
		td:         td,
		socketPath: socketPath(tb),
		entries:    make(map[string]*storedEntry),
		failures:   make(map[spiffeid.ID]failure),
		federated:  make(map[spiffeid.TrustDomain]*types.Bundle),
		jwtKeyID:   "fake-jwt-key",
	}
	s.caKey, s.caCert = newCA(tb, td)
	jwtKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("spireapitest: failed to generate JWT key: %v", err)
	}
	s.jwtKey, s.jwtSign = jwtKey.Public(), jwtKey
	s.Start()
	tb.Cleanup(s.Stop)
	return s
}

// socketPath picks a socket path in the test's temporary directory, or in a
// shorter one when the test name makes it longer than a unix socket path may
// be (108 bytes on Linux).
func socketPath(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	if len(dir) > 90 {
		var err error
		dir, err = os.MkdirTemp("", "spireapitest")
		if err != nil {
			tb.Fatalf("spireapitest: %v", err)
		}
		tb.Cleanup(func() { os.RemoveAll(dir) })
	}
	return filepath.Join(dir, "api.sock")
}

func newCA(tb testing.TB, td spiffeid.TrustDomain) (crypto.Signer, *x509.Certificate) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("spireapitest: failed to generate CA key: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"spireapitest"}, CommonName: "fake SPIRE CA"},
		URIs:                  []*url.URL{spiffeid.RequireFromPath(td, "").URL()},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatalf("spireapitest: failed to create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("spireapitest: failed to parse CA certificate: %v", err)
	}
	return key, cert
}

// SocketPath is the unix socket the fake serves on.
func (s *Server) SocketPath() string { return s.socketPath }

// TrustDomain is the fake server's own trust domain.
func (s *Server) TrustDomain() spiffeid.TrustDomain { return s.td }

// X509Authority is the CA certificate that signs minted X509-SVIDs and the
// X.509 authority of the fake's bundle.
func (s *Server) X509Authority() *x509.Certificate { return s.caCert }

// JWTAuthority is the JWT authority of the fake's bundle.
func (s *Server) JWTAuthority() (keyID string, key crypto.PublicKey) {
	return s.jwtKeyID, s.jwtKey
}

// JWTSigner is the private key of the JWT authority (ES256), so a test can
// sign JWT-SVIDs that verify against the fake's bundle as SPIRE's own would.
func (s *Server) JWTSigner() crypto.Signer { return s.jwtSign }

// Start serves on the socket again after Stop, with the entries kept. It is
// called by New; calling it on a running server does nothing.
func (s *Server) Start() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grpc != nil {
		return
	}
	ln, err := net.Listen("unix", s.socketPath)
	if err != nil {
		s.tb.Fatalf("spireapitest: failed to listen on %q: %v", s.socketPath, err)
	}
	srv := grpc.NewServer()
	entryv1.RegisterEntryServer(srv, &entryService{s: s})
	svidv1.RegisterSVIDServer(srv, &svidService{s: s})
	bundlev1.RegisterBundleServer(srv, &bundleService{s: s})
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	s.grpc, s.served = srv, served
}

// Stop closes the socket and every connection, as a SPIRE server that went
// down. It returns when the server has stopped.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, served := s.grpc, s.served
	s.grpc, s.served = nil, nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Stop()
	<-served
}

// FailWrites makes every create, update and delete of an entry with SPIFFE
// ID id answer code and message, as SPIRE does when it refuses one item of a
// batch; the other items are served.
func (s *Server) FailWrites(id spiffeid.ID, code codes.Code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[id] = failure{code: code, message: message}
}

// ClearFailures undoes FailWrites.
func (s *Server) ClearFailures() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.failures)
}

// Calls returns the counts since New or the last ResetCalls.
func (s *Server) Calls() Calls {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// ResetCalls sets every count back to zero.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = Calls{}
}

// AddEntry creates e as BatchCreateEntry would, and fails the test if SPIRE
// would have refused it. It returns the stored entry. Use it to seed entries
// that the code under test did not create (another controller's, a human's).
func (s *Server) AddEntry(e *types.Entry) *types.Entry {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.createLocked(e)
	if r.Status.Code != int32(codes.OK) {
		s.tb.Fatalf("spireapitest: seeding entry %q: %s: %s", e.GetId(), codes.Code(r.Status.Code), r.Status.Message)
	}
	return r.Entry
}

// Entries returns copies of the stored entries in list order.
func (s *Server) Entries() []*types.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*types.Entry
	for _, se := range s.sortedLocked() {
		out = append(out, proto.Clone(se.entry).(*types.Entry))
	}
	return out
}

// Entry returns a copy of the entry with the given id.
func (s *Server) Entry(id string) (*types.Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.entries[id]
	if !ok {
		return nil, false
	}
	return proto.Clone(se.entry).(*types.Entry), true
}

// SetFederatedBundle stores the bundle of another trust domain, served by
// GetFederatedBundle.
func (s *Server) SetFederatedBundle(b *types.Bundle) {
	s.tb.Helper()
	td, err := spiffeid.TrustDomainFromString(b.GetTrustDomain())
	if err != nil {
		s.tb.Fatalf("spireapitest: federated bundle: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.federated[td] = proto.Clone(b).(*types.Bundle)
}
