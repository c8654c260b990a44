package server

import (
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/store/boltstore"
	"github.com/agentid/agentid/pkg/store/storetest"
	"github.com/prometheus/client_golang/prometheus"
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
			healthMux(faults, tt.id, reg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.code || rec.Body.String() != tt.body {
				t.Fatalf("GET %s = %d %q, want %d %q", tt.path, rec.Code, rec.Body.String(), tt.code, tt.body)
			}
			if tt.reachd && faults.Pending() != 0 {
				t.Fatal("the store was not asked")
			}
		})
	}
}
