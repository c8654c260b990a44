package composer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/claims"
	metricsv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/hostservice/common/metrics/v1"
	credentialcomposerv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/credentialcomposer/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// fakeMetrics is SPIRE's metrics host service as the plugin sees it: it
// sums counters and keeps the last value of gauges, by key and labels
// ("agentid_composer.tokens_refused{reason=revoked}").
type fakeMetrics struct {
	metricsv1.UnimplementedMetricsServer

	mu       sync.Mutex
	counters map[string]float32
	gauges   map[string]float32
	// fail, when set, is answered to every call.
	fail error
	// hang, when set, makes every call wait for its context to end, as a
	// host service that stopped answering; inFlight is closed at the first
	// call that hangs.
	hang     bool
	inFlight chan struct{}
	wake     chan struct{}
}

func newFakeMetrics() *fakeMetrics {
	return &fakeMetrics{counters: map[string]float32{}, gauges: map[string]float32{}, wake: make(chan struct{})}
}

func seriesName(key []string, labels []*metricsv1.Label) string {
	name := strings.Join(key, ".")
	if len(labels) > 0 {
		var ls []string
		for _, l := range labels {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		name += "{" + strings.Join(ls, ",") + "}"
	}
	return name
}

func (m *fakeMetrics) record(into map[string]float32, name string, val float32, add bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	close(m.wake)
	m.wake = make(chan struct{})
	if m.fail != nil {
		return m.fail
	}
	if add {
		into[name] += val
	} else {
		into[name] = val
	}
	return nil
}

func (m *fakeMetrics) IncrCounter(ctx context.Context, req *metricsv1.IncrCounterRequest) (*emptypb.Empty, error) {
	if err := m.hanging(ctx); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, m.record(m.counters, seriesName(req.GetKey(), req.GetLabels()), req.GetVal(), true)
}

func (m *fakeMetrics) SetGauge(ctx context.Context, req *metricsv1.SetGaugeRequest) (*emptypb.Empty, error) {
	if err := m.hanging(ctx); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, m.record(m.gauges, seriesName(req.GetKey(), req.GetLabels()), req.GetVal(), false)
}

// hanging waits for ctx to end when the service hangs.
func (m *fakeMetrics) hanging(ctx context.Context) error {
	m.mu.Lock()
	hang, inFlight := m.hang, m.inFlight
	if hang && inFlight != nil {
		close(inFlight)
		m.inFlight = nil
	}
	m.mu.Unlock()
	if !hang {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

// setHang makes every later call hang; the returned channel is closed when
// the first one does.
func (m *fakeMetrics) setHang() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hang, m.inFlight = true, make(chan struct{})
	return m.inFlight
}

func (m *fakeMetrics) changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.wake
}

func (m *fakeMetrics) setFail(err error) {
	m.mu.Lock()
	m.fail = err
	m.mu.Unlock()
}

func (m *fakeMetrics) snapshot() (counters, gauges map[string]float32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.counters), maps.Clone(m.gauges)
}

// wantCounters is the full set of counter series with every value zero
// except those in nonzero: the first flush announces every series.
func wantCounters(nonzero map[string]float32) map[string]float32 {
	want := map[string]float32{
		"agentid_composer.tokens_composed":    0,
		"agentid_composer.audit_records_lost": 0,
	}
	for _, r := range reasonNames {
		want["agentid_composer.tokens_refused{reason="+r+"}"] = 0
	}
	for k, v := range nonzero {
		if _, ok := want[k]; !ok {
			panic("wantCounters: no series " + k)
		}
		want[k] = v
	}
	return want
}

func checkCounters(t *testing.T, fm *fakeMetrics, want map[string]float32) {
	t.Helper()
	got, _ := fm.snapshot()
	if !maps.Equal(got, want) {
		t.Fatalf("counters\n got %v\nwant %v", sorted(got), sorted(want))
	}
}

func sorted(m map[string]float32) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%g", k, v))
	}
	slices.Sort(out)
	return out
}

func newMetricsHarness(t *testing.T, srv *fakeServer, fm *fakeMetrics, prepare func(p *Plugin)) *harness {
	t.Helper()
	return newHarnessWith(t, srv, "-", prepare, metricsv1.MetricsServiceServer(fm))
}

// TestMetricsCountRefusals triggers every refusal the fixtures can give on
// one configured plugin, plus issued tokens and records lost at Close, and
// checks the exact counters SPIRE receives at the flush Close makes.
func TestMetricsCountRefusals(t *testing.T) {
	fm := newFakeMetrics()
	srv := startFakeServer(t, "", fixtures()...)
	h := newMetricsHarness(t, srv, fm, func(p *Plugin) { p.tuning.flushTimeout = 100 * time.Millisecond })
	h.configure(t, "audit_queue_size = 1")
	h.waitReady(t)

	// Two tokens: the sender holds the first record at the gate (never
	// released: both records are lost at Close), the second fills the
	// queue, the third token is refused.
	holdAudit(t, srv)
	if err := h.compose(t, analyst, childID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "sender in flight", srv.changed, func() bool { return srv.calls() == 1 })
	if err := h.compose(t, analyst, childID); err != nil {
		t.Fatal(err)
	}
	checkStatus(t, h.compose(t, analyst, childID), codes.ResourceExhausted, "composer: audit queue full, refusing to issue an unaudited token")

	checkStatus(t, h.compose(t, analyst, unknownID), codes.PermissionDenied, "composer: unknown delegation: "+unknownID)
	checkStatus(t, h.compose(t, analyst, expiredID), codes.PermissionDenied, "composer: delegation is expired: "+expiredID)
	checkStatus(t, h.compose(t, analyst, closeID), codes.PermissionDenied, "composer: delegation is expired: "+closeID)
	checkStatus(t, h.compose(t, analyst, rootID), codes.PermissionDenied, "composer: delegation belongs to another agent: "+rootID)

	ctx := context.Background()
	_, err := h.client.ComposeWorkloadJWTSVID(ctx, jwtRequest(t, analyst, marker(childID)))
	checkStatus(t, err, codes.InvalidArgument, "composer: bad request: the delegation marker is the only audience")
	_, err = h.client.ComposeWorkloadJWTSVID(ctx, jwtRequest(t, analyst, crm, marker(childID), marker(rootID)))
	checkStatus(t, err, codes.InvalidArgument, "composer: claims: bad delegation marker: more than one marker audience")
	_, err = h.client.ComposeWorkloadJWTSVID(ctx, &credentialcomposerv1.ComposeWorkloadJWTSVIDRequest{SpiffeId: analyst})
	checkStatus(t, err, codes.InvalidArgument, "composer: request missing attributes")
	// A token without a marker is SPIRE's, neither composed nor refused.
	_, err = h.client.ComposeWorkloadJWTSVID(ctx, jwtRequest(t, analyst, crm))
	checkStatus(t, err, codes.Unimplemented, "composer: no delegation marker in aud")

	h.waitRevision(t, srv.revoke(childID))
	checkStatus(t, h.compose(t, analyst, childID), codes.PermissionDenied, "composer: delegation is revoked: "+childID)

	h.clock.Add(31 * time.Second)
	checkStatus(t, h.compose(t, analyst, childID), codes.Unavailable,
		"composer: delegation replica is stale: last heard from agentid-server 31s ago, bound 30s")

	// Nothing is reported before a flush: the interval is an hour.
	if got, gauges := fm.snapshot(); len(got)+len(gauges) != 0 {
		t.Fatalf("reported before any flush: %v %v", got, gauges)
	}
	if err := h.plugin.Close(); err != nil {
		t.Fatal(err)
	}
	checkCounters(t, fm, wantCounters(map[string]float32{
		"agentid_composer.tokens_composed":                         2,
		"agentid_composer.audit_records_lost":                      2,
		"agentid_composer.tokens_refused{reason=audit_queue_full}": 1,
		"agentid_composer.tokens_refused{reason=unknown}":          1,
		"agentid_composer.tokens_refused{reason=expired}":          2,
		"agentid_composer.tokens_refused{reason=foreign}":          1,
		"agentid_composer.tokens_refused{reason=bad_request}":      3,
		"agentid_composer.tokens_refused{reason=revoked}":          1,
		"agentid_composer.tokens_refused{reason=stale}":            1,
	}))
	// Close sends no gauge: the backend is gone.
	if _, gauges := fm.snapshot(); len(gauges) != 0 {
		t.Fatalf("gauges at Close: %v", gauges)
	}
}

// TestMetricsNotReady checks the not_ready count and the gauges of a
// plugin that never reached agentid-server: not ready, and as old as the
// backend.
func TestMetricsNotReady(t *testing.T) {
	fm := newFakeMetrics()
	h := newMetricsHarness(t, nil, fm, func(p *Plugin) { p.tuning.metricsInterval = 10 * time.Millisecond })
	// Unconfigured, the plugin answers FailedPrecondition: a refusal too.
	checkStatus(t, h.compose(t, analyst, childID), codes.FailedPrecondition, "composer: not configured")
	h.configure(t, "")
	checkStatus(t, h.compose(t, analyst, childID), codes.Unavailable, "composer: delegation replica not ready")
	h.clock.Add(5 * time.Second)
	want := map[string]float32{
		"agentid_composer.replica_delegations": 0,
		"agentid_composer.replica_age_seconds": 5,
		"agentid_composer.replica_ready":       0,
		"agentid_composer.audit_queue_depth":   0,
	}
	waitFor(t, "gauges of a plugin that is not ready", fm.changed, func() bool {
		_, gauges := fm.snapshot()
		return maps.Equal(gauges, want)
	})
	if err := h.plugin.Close(); err != nil {
		t.Fatal(err)
	}
	checkCounters(t, fm, wantCounters(map[string]float32{"agentid_composer.tokens_refused{reason=not_ready}": 2}))
}

// TestMetricsGauges checks the gauges of a ready replica as the periodic
// flush sends them: its size, readiness, the age of its last message (by
// the plugin's clock) and the records waiting in the audit queue.
func TestMetricsGauges(t *testing.T) {
	fm := newFakeMetrics()
	srv := startFakeServer(t, "", fixtures()...)
	h := newMetricsHarness(t, srv, fm, func(p *Plugin) { p.tuning.metricsInterval = 10 * time.Millisecond })
	h.configure(t, "")
	h.waitReady(t)
	holdAudit(t, srv)
	if err := h.compose(t, analyst, childID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "sender in flight", srv.changed, func() bool { return srv.calls() == 1 })
	if err := h.compose(t, analyst, childID); err != nil {
		t.Fatal(err)
	}
	h.clock.Add(12 * time.Second)
	want := map[string]float32{
		"agentid_composer.replica_delegations": 4,
		"agentid_composer.replica_age_seconds": 12,
		"agentid_composer.replica_ready":       1,
		"agentid_composer.audit_queue_depth":   1,
	}
	waitFor(t, "gauges of a ready replica", fm.changed, func() bool {
		_, gauges := fm.snapshot()
		return maps.Equal(gauges, want)
	})
	// The counters went out with the periodic flushes already.
	waitFor(t, "tokens counted", fm.changed, func() bool {
		got, _ := fm.snapshot()
		return got["agentid_composer.tokens_composed"] == 2
	})
}

// TestMetricsHostServiceFailing checks that counts not acknowledged by
// SPIRE are carried to the next flush, neither lost nor sent twice, and
// that the failure is logged.
func TestMetricsHostServiceFailing(t *testing.T) {
	fm := newFakeMetrics()
	fm.setFail(status.Error(codes.Unavailable, "telemetry busy"))
	srv := startFakeServer(t, "", fixtures()...)
	h := newMetricsHarness(t, srv, fm, func(p *Plugin) { p.tuning.metricsInterval = 10 * time.Millisecond })
	h.configure(t, "")
	h.waitReady(t)
	if err := h.compose(t, analyst, childID); err != nil {
		t.Fatal(err)
	}
	checkStatus(t, h.compose(t, analyst, unknownID), codes.PermissionDenied, "composer: unknown delegation: "+unknownID)
	waitFor(t, "a failed flush logged", fm.changed, func() bool {
		return strings.Contains(h.logs.String(), "Failed to report metrics to SPIRE; retrying at the next flush")
	})
	containsLog(t, h.logs, "[WARN]", "Failed to report metrics to SPIRE", "attempt=1", "telemetry busy")
	fm.setFail(nil)
	if err := h.plugin.Close(); err != nil {
		t.Fatal(err)
	}
	checkCounters(t, fm, wantCounters(map[string]float32{
		"agentid_composer.tokens_composed":                1,
		"agentid_composer.tokens_refused{reason=unknown}": 1,
	}))
}

// TestMetricsWithoutHostService checks that a SPIRE without the metrics
// host service gets the plugin as before, and one Info line saying its
// metrics are off.
func TestMetricsWithoutHostService(t *testing.T) {
	srv := startFakeServer(t, "", fixtures()...)
	h := newHarness(t, srv, "")
	h.waitReady(t)
	if err := h.compose(t, analyst, childID); err != nil {
		t.Fatal(err)
	}
	checkStatus(t, h.compose(t, analyst, unknownID), codes.PermissionDenied, "composer: unknown delegation: "+unknownID)
	h.configure(t, `max_staleness = "40s"`)
	if err := h.plugin.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "issuance record", srv.changed, func() bool { return len(srv.recorded()) == 1 })
	const off = "SPIRE offers no metrics host service; agentid_composer metrics are off"
	containsLog(t, h.logs, "[INFO]", off)
	if n := strings.Count(h.logs.String(), off); n != 1 {
		t.Fatalf("%q logged %d times, want once", off, n)
	}
	if h.plugin.flusher != nil {
		t.Fatal("a flusher runs without the host service")
	}
}

// TestReasonOf checks the reason label of every refusal the composer can
// give, matching codeOf's classes; the unclassified is internal.
func TestReasonOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: x", errBadRequest), "bad_request"},
		{fmt.Errorf("composer: %w", claims.ErrMarker), "bad_request"},
		{ErrNotReady, "not_ready"},
		{errAuditStopped, "not_ready"},
		{fmt.Errorf("%w: x", ErrStale), "stale"},
		{fmt.Errorf("%w: x", ErrUnknownDelegation), "unknown"},
		{fmt.Errorf("%w: x", ErrForeignDelegation), "foreign"},
		{fmt.Errorf("%w: x", ErrRevoked), "revoked"},
		{fmt.Errorf("%w: x", ErrExpired), "expired"},
		{ErrAuditQueueFull, "audit_queue_full"},
		{errors.New("composer: failed to encode claims"), "internal"},
	} {
		if got := reasonNames[reasonOf(tc.err)]; got != tc.want {
			t.Errorf("reasonOf(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

// TestMetricsAcrossCloseAndConfigure checks that a plugin configured again
// after Close reports only what grew since, not its totals a second time.
func TestMetricsAcrossCloseAndConfigure(t *testing.T) {
	fm := newFakeMetrics()
	srv := startFakeServer(t, "", fixtures()...)
	h := newMetricsHarness(t, srv, fm, nil)
	for round := 1; round <= 2; round++ {
		h.configure(t, "")
		h.waitReady(t)
		if err := h.compose(t, analyst, childID); err != nil {
			t.Fatal(err)
		}
		if err := h.plugin.Close(); err != nil {
			t.Fatal(err)
		}
		checkCounters(t, fm, wantCounters(map[string]float32{"agentid_composer.tokens_composed": float32(round)}))
	}
}

// A host service that stops answering neither slows signing nor holds up
// the plugin's unload past SPIRE's 10 s: Close cuts the flush in flight and
// gives the last one finalFlushTimeout.
func TestMetricsHangingHostService(t *testing.T) {
	fm := newFakeMetrics()
	srv := startFakeServer(t, "", fixtures()...)
	h := newMetricsHarness(t, srv, fm, func(p *Plugin) {
		p.tuning.metricsInterval = 10 * time.Millisecond
		p.tuning.metricsTimeout = time.Hour // only stop may end the flush in flight
		p.tuning.flushTimeout = 100 * time.Millisecond
	})
	h.configure(t, "")
	h.waitReady(t)
	select {
	case <-fm.setHang():
	case <-time.After(5 * time.Second):
		t.Fatal("no flush reached the host service")
	}
	start := time.Now()
	for range 100 {
		if err := h.compose(t, analyst, childID); err != nil {
			t.Fatal(err)
		}
	}
	// Generous bounds for a loaded machine: without the fixes, signing
	// would wait on the hung service and Close would never return (the
	// flush in flight has an hour's timeout here).
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("100 tokens took %s while the host service hung", d)
	}
	start = time.Now()
	if err := h.plugin.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > finalFlushTimeout+4*time.Second {
		t.Fatalf("Close took %s with the host service hanging; want at most about %s", d, finalFlushTimeout)
	}
}

// Reconfiguring keeps the one flusher: a second would share its
// bookkeeping and count twice.
func TestMetricsAcrossReconfigure(t *testing.T) {
	fm := newFakeMetrics()
	srv := startFakeServer(t, "", fixtures()...)
	h := newMetricsHarness(t, srv, fm, nil)
	h.configure(t, "")
	h.waitReady(t)
	first := h.plugin.flusher
	if err := h.compose(t, analyst, childID); err != nil {
		t.Fatal(err)
	}
	h.configure(t, `max_staleness = "20s"`)
	h.waitReady(t)
	if err := h.compose(t, analyst, childID); err != nil {
		t.Fatal(err)
	}
	if h.plugin.flusher != first {
		t.Fatal("Configure started a second flusher")
	}
	if err := h.plugin.Close(); err != nil {
		t.Fatal(err)
	}
	checkCounters(t, fm, wantCounters(map[string]float32{"agentid_composer.tokens_composed": 2}))
}
