package server

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/store/boltstore"
	"github.com/agentid/agentid/pkg/store/storetest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// fixedIdentity holds one SVID whose leaf expires at notAfter.
type fixedIdentity struct{ notAfter time.Time }

func (f fixedIdentity) GetX509SVID() (*x509svid.SVID, error) {
	return &x509svid.SVID{Certificates: []*x509.Certificate{{NotAfter: f.notAfter}}}, nil
}

func (fixedIdentity) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return x509bundle.New(td), nil
}

// TestHealthMux: /healthz answers while the process runs; /readyz only
// while the store answers and the server's X509-SVID is unexpired.
func TestHealthMux(t *testing.T) {
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "agentid.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	faults := storetest.NewErrorStore(st)
	health, err := newStoreHealth(faults, testLog(io.Discard), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "test_total", Help: "A test series."}))
	valid, expired := fixedIdentity{time.Now().Add(time.Hour)}, fixedIdentity{time.Now().Add(-time.Second)}
	tests := []struct {
		name   string
		id     identity
		fail   bool
		path   string
		code   int
		body   string
		reachd bool
	}{
		{"healthz", expired, true, "/healthz", http.StatusOK, "ok\n", false},
		{"ready", valid, false, "/readyz", http.StatusOK, "ok\n", false},
		{"store down", valid, true, "/readyz", http.StatusServiceUnavailable, "store not ready\n", true},
		{"SVID expired", expired, false, "/readyz", http.StatusServiceUnavailable, "no valid X509-SVID\n", false},
		{"metrics", valid, false, "/metrics", http.StatusOK, "# HELP test_total A test series.\n# TYPE test_total counter\ntest_total 0\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fail {
				faults.SetNextError(errors.New("injected outage"))
			}
			defer faults.SetNextError(nil)
			rec := httptest.NewRecorder()
			healthMux(health, tt.id, reg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.code || rec.Body.String() != tt.body {
				t.Fatalf("GET %s = %d %q, want %d %q", tt.path, rec.Code, rec.Body.String(), tt.code, tt.body)
			}
			if tt.reachd && faults.Pending() != 0 {
				t.Fatal("the store was not asked")
			}
		})
	}
}

// TestStoreHealth: the probe says when the store stops and starts
// answering, once per transition, in the gauge and the log.
func TestStoreHealth(t *testing.T) {
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "agentid.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	faults := storetest.NewErrorStore(st)
	var logs syncBuffer
	h, err := newStoreHealth(faults, testLog(&logs), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, step := range []struct {
		fail      bool
		up        float64
		downLines int
		upLines   int
	}{
		{false, 1, 0, 0},
		{true, 0, 1, 0},
		{true, 0, 1, 0}, // still down: no second line
		{false, 1, 1, 1},
		{false, 1, 1, 1},
	} {
		if step.fail {
			faults.SetNextError(errors.New("injected outage"))
		}
		err := h.probe(ctx)
		if (err != nil) != step.fail {
			t.Fatalf("step %d: probe = %v, want failure %v", i, err, step.fail)
		}
		if got := testutil.ToFloat64(h.up); got != step.up {
			t.Errorf("step %d: agentid_store_available = %v, want %v", i, got, step.up)
		}
		out := logs.String()
		if n := strings.Count(out, "Store unavailable: failing requests closed (UNAVAILABLE) until it answers again"); n != step.downLines {
			t.Errorf("step %d: %d unavailable lines, want %d:\n%s", i, n, step.downLines, out)
		}
		if n := strings.Count(out, "Store available again"); n != step.upLines {
			t.Errorf("step %d: %d recovered lines, want %d:\n%s", i, n, step.upLines, out)
		}
	}
}
