package sidecar

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// outcomeOK labels a request that was answered as asked.
const outcomeOK = "ok"

// outcomeCanceled labels a proxied request the agent gave up on before the
// upstream answered (answered 499, which nobody reads).
const outcomeCanceled = "canceled"

// The outcomes each metric may carry: outcomeOK or an error code the
// handler can answer with. Every series is created at start with value 0,
// so that increase() sees the first failure too (a series born at 1 shows
// no increase) and a dashboard lists what can go wrong before it does.
var (
	tokenOutcomes = []string{outcomeOK, codeInvalidRequest, codeDelegationDenied, codeNoIdentity, codeSPIREUnavailable}

	delegationOps      = []string{"create", "sub", "revoke", "get", "list"}
	delegationOutcomes = []string{outcomeOK, codeNotConfigured, codeInvalidRequest, codeUnsupportedMedia, codeTooLarge,
		codeUnauthenticated, codePermissionDenied, codeNotFound, codeFailedPrecondition,
		codeServerUnavailable, codeServerIdentity, codeServerError}

	// proxyUnrouted are the refusals made before a route is chosen: their
	// route label is empty (no route name is empty).
	proxyUnrouted = []string{codeBrowserRefused, codeConnectUnsupported, codeUnknownRoute}
	// proxyStatusClasses label the requests the upstream answered, by the
	// class of its status; "other" is a status outside 100..599.
	proxyStatusClasses = [...]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}
	// proxyRouted are the refusals and failures of a routed request.
	proxyRouted = []string{codeInvalidRequest, codeTooLarge, codeDelegationDenied, codeNoIdentity, codeSPIREUnavailable,
		codeUpstreamIdentity, codeUpstreamError, outcomeCanceled}
)

// metrics are the sidecar's Prometheus series. Labels hold fixed codes and
// the configuration's route names only, never hosts, delegations or
// SPIFFE IDs from requests, so cardinality is bounded by the config.
// The counters the hot paths touch are looked up once, at start.
type metrics struct {
	registry *prometheus.Registry

	tokens      map[string]prometheus.Counter // by outcome
	delegations map[string]map[string]prometheus.Counter
	apiRefused  prometheus.Counter
	proxied     *prometheus.CounterVec
	unrouted    map[string]prometheus.Counter
	upstream    *prometheus.HistogramVec
}

// routeMetrics are one route's series.
type routeMetrics struct {
	answered [len(proxyStatusClasses)]prometheus.Counter
	failed   map[string]prometheus.Counter
	latency  prometheus.Observer
}

func newMetrics(s *Sidecar) (*metrics, error) {
	m := &metrics{registry: prometheus.NewRegistry()}
	tokens := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agentid_sidecar_token_requests_total",
		Help: "GET /v1/token requests by outcome: ok or the error code answered.",
	}, []string{"outcome"})
	delegations := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agentid_sidecar_delegation_requests_total",
		Help: "Delegation API requests (create, sub, revoke, get, list) by outcome: ok or the error code answered.",
	}, []string{"operation", "outcome"})
	m.apiRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "agentid_sidecar_api_browser_requests_refused_total",
		Help: "Local API requests refused as a browser's (Origin, Sec-Fetch-Site or non-loopback Host), any endpoint.",
	})
	m.proxied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agentid_sidecar_proxy_requests_total",
		Help: "Egress proxy requests by route and outcome: the upstream's status class (2xx...) or the error code answered; route is empty when refused before routing.",
	}, []string{"route", "outcome"})
	m.upstream = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "agentid_sidecar_proxy_upstream_duration_seconds",
		Help: "Time from handing a proxied request to the route's mTLS transport (token, connection) to the upstream's response headers, for requests the upstream answered.",
		// From a pooled loopback call (~100µs) to a slow service.
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
	}, []string{"route"})
	svid := &svidCollector{s: s,
		held: prometheus.NewDesc("agentid_sidecar_x509_svid_held",
			"1 while the sidecar holds an unexpired X509-SVID for the agent, else 0: without one it can issue nothing.", nil, nil),
		expiry: prometheus.NewDesc("agentid_sidecar_x509_svid_expiry_timestamp_seconds",
			"Expiry (NotAfter) of the agent's X509-SVID, Unix seconds; absent while none is held.", nil, nil),
	}
	for _, c := range []prometheus.Collector{tokens, delegations, m.apiRefused, m.proxied, m.upstream, svid,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := m.registry.Register(c); err != nil {
			return nil, err
		}
	}
	m.tokens = children(tokens, tokenOutcomes)
	m.delegations = make(map[string]map[string]prometheus.Counter, len(delegationOps))
	for _, op := range delegationOps {
		m.delegations[op] = children(delegations.MustCurryWith(prometheus.Labels{"operation": op}), delegationOutcomes)
	}
	m.unrouted = children(m.proxied.MustCurryWith(prometheus.Labels{"route": ""}), proxyUnrouted)
	return m, nil
}

// children creates the series of vec for each outcome.
func children(vec *prometheus.CounterVec, outcomes []string) map[string]prometheus.Counter {
	out := make(map[string]prometheus.Counter, len(outcomes))
	for _, o := range outcomes {
		out[o] = vec.WithLabelValues(o)
	}
	return out
}

// route creates the series of one route.
func (m *metrics) route(name string) *routeMetrics {
	vec := m.proxied.MustCurryWith(prometheus.Labels{"route": name})
	rm := &routeMetrics{failed: children(vec, proxyRouted), latency: m.upstream.WithLabelValues(name)}
	for i, class := range proxyStatusClasses {
		rm.answered[i] = vec.WithLabelValues(class)
	}
	return rm
}

// token counts a GET /v1/token answer.
func (m *metrics) token(outcome string) { inc(m.tokens, outcome) }

// delegation counts a delegation API answer.
func (m *metrics) delegation(op, outcome string) { inc(m.delegations[op], outcome) }

// inc adds one to the outcome's counter. An outcome missing from the list
// is a bug of this package; it is not counted rather than made a new
// series at run time.
func inc(counters map[string]prometheus.Counter, outcome string) {
	if c, ok := counters[outcome]; ok {
		c.Inc()
	}
}

// observe counts a request the upstream answered with status, and how
// long the answer took since start.
func (rm *routeMetrics) observe(status int, start time.Time) {
	rm.latency.Observe(time.Since(start).Seconds())
	class := status / 100
	if status < 100 || class >= len(proxyStatusClasses) {
		class = 0
	}
	rm.answered[class].Inc()
}

// handler serves the metrics listener: /metrics, and /healthz as the API
// answers it (for a kubelet probe, which cannot reach a loopback API).
// Nothing here names the agent or a delegation.
func (m *metrics) handler(s *Sidecar) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, codeNotFound, "sidecar: the metrics listener serves /metrics and /healthz only")
	})
	return mux
}

// svidCollector reads the agent's X509-SVID at each scrape, so the gauges
// cost nothing between scrapes and are never stale.
type svidCollector struct {
	s            *Sidecar
	held, expiry *prometheus.Desc
}

func (c *svidCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.held
	ch <- c.expiry
}

func (c *svidCollector) Collect(ch chan<- prometheus.Metric) {
	svid, err := c.s.agent.X509SVID()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, 0)
		return
	}
	notAfter := svid.Certificates[0].NotAfter
	held := 0.0
	if !c.s.config.Clock().After(notAfter) {
		held = 1
	}
	ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, held)
	ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, float64(notAfter.Unix()))
}
