package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/internal/denylimit"
	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/boltstore"
	"github.com/agentid/agentid/pkg/store/storetest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

func cert(t *testing.T, notAfter time.Time, uri string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
	if uri != "" {
		u, _ := url.Parse(uri)
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tlsPeer(certs ...*x509.Certificate) *peer.Peer {
	return &peer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: certs}}}
}

// TestIdentify: the caller comes from the connection, and a request whose
// connection names nobody is refused before any handler.
func TestIdentify(t *testing.T) {
	id := "spiffe://example.org/agent/writer"
	tests := []struct {
		name string
		peer *peer.Peer
		want string // the caller as an actor; "" refused
	}{
		{"no peer", nil, ""},
		{"local", &peer.Peer{AuthInfo: localAuthInfo{uid: 1000}}, "local:uid:1000"},
		{"local, uid unknown", &peer.Peer{AuthInfo: localAuthInfo{uid: -1}}, "local:uid:-1"},
		{"mTLS", tlsPeer(cert(t, time.Now().Add(time.Hour), id)), id},
		{"no certificate", tlsPeer(), ""},
		{"expired since the handshake", tlsPeer(cert(t, time.Now().Add(-time.Second), id)), ""},
		{"no SPIFFE ID", tlsPeer(cert(t, time.Now().Add(time.Hour), "")), ""},
		{"other transport", &peer.Peer{AuthInfo: nil}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.peer != nil {
				ctx = peer.NewContext(ctx, tt.peer)
			}
			var got string
			handler := func(ctx context.Context, _ any) (any, error) { got = CallerFrom(ctx).String(); return nil, nil }
			_, err := IdentifyUnary(ctx, nil, &grpc.UnaryServerInfo{}, handler)
			streamErr := IdentifyStream(nil, &fakeStream{ctx: ctx}, &grpc.StreamServerInfo{}, func(_ any, ss grpc.ServerStream) error {
				if c := CallerFrom(ss.Context()).String(); c != got {
					t.Errorf("stream caller %q, unary %q", c, got)
				}
				return nil
			})
			if tt.want == "" {
				for _, err := range []error{err, streamErr} {
					if st, _ := status.FromError(err); st.Code() != codes.Unauthenticated || st.Message() != "caller not identified" {
						t.Fatalf("refusal = %v", err)
					}
				}
				return
			}
			if err != nil || streamErr != nil || got != tt.want {
				t.Fatalf("caller %q (%v, %v), want %q", got, err, streamErr, tt.want)
			}
		})
	}
	if c := CallerFrom(WithCaller(context.Background(), Caller{ID: spiffeid.RequireFromString(id)})); c.String() != id || c.Local {
		t.Fatalf("WithCaller: %v", c)
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *fakeStream) Context() context.Context     { return s.ctx }
func (s *fakeStream) SetHeader(metadata.MD) error  { return nil }
func (s *fakeStream) SendHeader(metadata.MD) error { return nil }

// TestLocalCredentials: the peer's uid is read from the kernel.
func TestLocalCredentials(t *testing.T) {
	dir, err := os.MkdirTemp("", "aid")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := net.Dial("unix", l.Addr().String()); err == nil {
			defer c.Close()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	conn, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	creds := LocalCredentials()
	_, info, err := creds.ServerHandshake(conn)
	if err != nil {
		t.Fatal(err)
	}
	c, err := callerOfConn(peer.NewContext(context.Background(), &peer.Peer{AuthInfo: info}))
	if err != nil || !c.Local || c.UID != os.Getuid() {
		t.Fatalf("caller %+v, %v; want local uid %d", c, err, os.Getuid())
	}
	if info.AuthType() != "agentid-local" || creds.Info().SecurityProtocol != "agentid-local" || creds.Clone() == nil || creds.OverrideServerName("x") != nil { //nolint:staticcheck // OverrideServerName is deprecated but still part of credentials.TransportCredentials, which the local credentials implement
		t.Fatal("credentials metadata")
	}
	if _, _, err := creds.ClientHandshake(context.Background(), "", conn); err == nil || err.Error() != "local credentials are server-side only" {
		t.Fatalf("ClientHandshake = %v", err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	go func() {
		if c, err := net.Dial("tcp", tcp.Addr().String()); err == nil {
			c.Close()
		}
	}()
	tc, err := tcp.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if _, _, err := creds.ServerHandshake(tc); err == nil || !strings.Contains(err.Error(), "local credentials on a *net.TCPConn connection") {
		t.Fatalf("ServerHandshake on TCP = %v", err)
	}
}

func openStore(t *testing.T) *storetest.ErrorStore {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "agentid.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return storetest.NewErrorStore(st)
}

// TestDenier: each refusal is counted and logged; the events are rate
// limited per caller, the suppressed count going into the next one.
func TestDenier(t *testing.T) {
	st := openStore(t)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	m := NewUnregisteredMetrics()
	d := NewDenier(DenierConfig{Store: st, Metrics: m, Clock: func() time.Time { return now }})
	ctx := context.Background()
	alice := Caller{ID: spiffeid.RequireFromString("spiffe://example.org/app/alice")}
	for range int(denylimit.Burst) + 2 {
		d.Deny(ctx, "CreateDelegation", alice, "policy", strings.Repeat("é", audit.MaxDetailValueLength), audit.Event{})
	}
	d.Deny(ctx, "CreateDelegation", Caller{Local: true, UID: 0}, "policy", "", audit.Event{}) // another caller's bucket
	now = now.Add(time.Second)                                                                // 5 tokens back
	d.Deny(ctx, "CreateDelegation", alice, "policy", "", audit.Event{})
	evs, _, err := st.ListEvents(ctx, store.EventFilter{Type: audit.TypeDenied}, store.Page{Size: store.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != int(denylimit.Burst)+2 {
		t.Fatalf("%d denied events, want %d", len(evs), int(denylimit.Burst)+2)
	}
	if got := evs[0].Detail["detail"]; len(got) > audit.MaxDetailValueLength || !strings.HasPrefix(got, "éé") {
		t.Fatalf("detail of %d bytes not cut at a character", len(got))
	}
	if last := evs[len(evs)-1]; last.Actor != alice.String() || last.Detail["suppressed"] != "2" || last.Detail["rpc"] != "CreateDelegation" || last.Detail["reason"] != "policy" {
		t.Fatalf("last event %+v", last)
	}
	if got := testutil.ToFloat64(m.Denied.WithLabelValues("CreateDelegation", "policy")); got != denylimit.Burst+4 {
		t.Fatalf("denied_total = %v", got)
	}
	if got := testutil.ToFloat64(m.DeniedSuppressed); got != 2 {
		t.Fatalf("suppressed_total = %v", got)
	}
	// A store that fails to record the event loses the event only.
	st.SetNextError(errors.New("injected outage"))
	d.Deny(ctx, "GetDelegation", alice, "not_allowed", "", audit.Event{})
	if st.Pending() != 0 {
		t.Fatal("the store was not asked")
	}
}

func TestAnswers(t *testing.T) {
	m := NewUnregisteredMetrics()
	log := LogOrDiscard(nil)
	for err, want := range map[error]string{
		errors.New("disk gone"): "rpc error: code = Unavailable desc = failed to read delegation",
		fmt.Errorf("%w: failed to read delegation: dial error", store.ErrUnavailable): "rpc error: code = Unavailable desc = failed to read delegation: the store's database is unreachable; retry later",
		context.Canceled:         "rpc error: code = Canceled desc = context canceled",
		context.DeadlineExceeded: "rpc error: code = DeadlineExceeded desc = context deadline exceeded",
	} {
		if got := StoreError(log, m, "read delegation", err); got.Error() != want {
			t.Errorf("StoreError(%v) = %v, want %s", err, got, want)
		}
	}
	if got := testutil.ToFloat64(m.StoreErrors); got != 4 {
		t.Fatalf("store_errors_total = %v", got)
	}
	for in, want := range map[string]string{
		"": "rpc error: code = InvalidArgument desc = agent_id: is required",
		"spiffe://" + strings.Repeat("a", MaxSPIFFEIDLength): "rpc error: code = InvalidArgument desc = agent_id: longer than 2048 bytes",
		"agent/writer":            "rpc error: code = InvalidArgument desc = agent_id: scheme is missing or invalid",
		"spiffe://example.org/ok": "",
	} {
		_, err := ParseSPIFFEID("agent_id", in)
		if (err == nil && want != "") || (err != nil && err.Error() != want) {
			t.Errorf("ParseSPIFFEID(%.20q) = %v, want %q", in, err, want)
		}
	}
	if _, err := ParseDelegationID("id", "dlg_x"); status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "id: ") {
		t.Fatalf("ParseDelegationID = %v", err)
	}
	if _, err := ParseDelegationID("id", "dlg_00000000000000000000000000"); err != nil {
		t.Fatalf("ParseDelegationID = %v", err)
	}
	if got := TruncateUTF8("abc", 2); got != "ab" {
		t.Errorf("TruncateUTF8(abc, 2) = %q", got)
	}
	if got := TruncateUTF8("aé", 2); got != "a" {
		t.Errorf("TruncateUTF8 split a character: %q", got)
	}
	if got := TruncateUTF8("abc", 5); got != "abc" {
		t.Errorf("TruncateUTF8 cut a short string: %q", got)
	}
	now := time.Now()
	if ClockOrNow(func() time.Time { return now })() != now || ClockOrNow(nil)().IsZero() {
		t.Fatal("ClockOrNow")
	}
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Fatal("registering the metrics twice succeeded")
	}
	if m, err := NewMetrics(nil); err != nil || m == nil {
		t.Fatalf("NewMetrics(nil) = %v, %v", m, err)
	}
}
