package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
)

// DelegationHeader names the delegation a proxied request acts under. The
// proxy removes it, with every other X-Agentid-* header, any Authorization
// the agent sent and every header that asserts a client identity or the
// original request (headers.go), before the request leaves.
const DelegationHeader = "X-Agentid-Delegation"

type routeHandler struct {
	route   Route
	rp      *httputil.ReverseProxy
	metrics *routeMetrics
}

// timedTransport counts the requests of one route the upstream answered,
// by status class, and how long the answer took; failures are counted by
// proxyError, which the ReverseProxy calls instead.
type timedTransport struct {
	rt      http.RoundTripper
	metrics *routeMetrics
}

func (t timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.rt.RoundTrip(req)
	if err == nil {
		t.metrics.observe(resp.StatusCode, start)
	}
	return resp, err
}

// limitBody refuses a request whose declared body is larger than max
// before anything is dialled, and cuts a chunked one off where it passes
// max (the transport then fails the request with *http.MaxBytesError,
// answered as 413 by proxyError). It reports whether the request may go on.
func limitBody(w http.ResponseWriter, req *http.Request, max int64) bool {
	if req.ContentLength > max {
		writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("sidecar: body larger than %d bytes", max))
		return false
	}
	if req.ContentLength != 0 {
		// No ResponseWriter: the transport reads the body from its own
		// goroutine, possibly while this one writes the answer, and
		// MaxBytesReader would touch the answer's header.
		req.Body = http.MaxBytesReader(nil, req.Body, max)
	}
	return true
}

// bufferPool recycles the proxy's copy buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

func (s *Sidecar) proxyHandler() (http.Handler, error) {
	routes := make(map[string]*routeHandler)
	pool := &bufferPool{}
	for _, r := range s.config.Routes {
		tr, err := agentclient.NewTransport(agentclient.TransportConfig{
			SVIDs: s.agent.SVIDs(), Bundles: s.agent.Bundles(), Authorizer: tlsconfig.AuthorizeID(r.SPIFFEID),
			Tokens: s.agent.Tokens(), Audience: r.Audience,
		})
		if err != nil {
			return nil, err
		}
		s.proxyTransport = append(s.proxyTransport, tr)
		target := &url.URL{Scheme: "https", Host: r.Upstream}
		h := &routeHandler{route: r, metrics: s.metrics.route(r.Name)}
		h.rp = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				stripHeaders(pr.Out.Header)
				// The transport attaches the delegated token (from the
				// context) after this, so nothing the agent sent survives.
			},
			Transport:    timedTransport{rt: tr, metrics: h.metrics},
			BufferPool:   pool,
			ErrorHandler: s.proxyError(r, h.metrics),
			ErrorLog:     slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
		for _, host := range append([]string{r.Name}, r.Hosts...) {
			key, err := routeKey(host, "http")
			if err != nil {
				return nil, fmt.Errorf("%w: routes: %w", ErrInvalidConfig, err)
			}
			routes[key] = h
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// As for the API: a web page the agent opens must not be able to
		// send requests on the agent's identity through the proxy.
		if msg := browserRequest(req.Header); msg != "" {
			s.metrics.unrouted[codeBrowserRefused].Inc()
			writeError(w, http.StatusForbidden, codeBrowserRefused, msg)
			return
		}
		if req.Method == http.MethodConnect {
			s.metrics.unrouted[codeConnectUnsupported].Inc()
			writeError(w, http.StatusMethodNotAllowed, codeConnectUnsupported, "sidecar: CONNECT is not supported; send plain HTTP and the proxy upgrades it to mTLS")
			return
		}
		host, scheme := req.Host, "http"
		if req.URL.IsAbs() {
			host, scheme = req.URL.Host, req.URL.Scheme // absolute-form, as from HTTP_PROXY clients
		}
		// Host and port: a route for crm is not one for crm:9000, which may
		// be another service the agent never meant to send a token to.
		key, err := routeKey(host, scheme)
		h, ok := routes[key]
		if err != nil || !ok {
			s.metrics.unrouted[codeUnknownRoute].Inc()
			writeError(w, http.StatusBadGateway, codeUnknownRoute, fmt.Sprintf("sidecar: no route for host %q", truncate(host)))
			return
		}
		ctx := req.Context()
		if vals := req.Header.Values(DelegationHeader); len(vals) > 0 {
			if len(vals) > 1 {
				inc(h.metrics.failed, writeError(w, http.StatusBadRequest, codeInvalidRequest, "sidecar: more than one "+DelegationHeader+" header"))
				return
			}
			id, err := delegation.ParseID(strings.TrimSpace(vals[0]))
			if err != nil {
				inc(h.metrics.failed, writeError(w, http.StatusBadRequest, codeInvalidRequest, "sidecar: "+DelegationHeader+": "+err.Error()))
				return
			}
			ctx = agentclient.WithDelegation(ctx, id)
		}
		if !limitBody(w, req, s.config.ProxyMaxBodyBytes) {
			inc(h.metrics.failed, codeTooLarge)
			return
		}
		h.rp.ServeHTTP(w, req.WithContext(ctx))
	}), nil
}

// routeKey is the host:port a proxied request for host (a Host header or
// an absolute URL's host, with or without a port) is routed by: the host
// in lower case, the port as given or else scheme's default (80 for http,
// the agent's plain connection to the proxy; 443 for https). A route's
// name or host is keyed the same way, so "crm" routes http://crm/ and
// http://crm:80/ but not http://crm:9000/.
func routeKey(host, scheme string) (string, error) {
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		h, port = host, ""
		if strings.Contains(host, ":") { // a port we cannot split, "[::1", "a:b:c"
			return "", fmt.Errorf("%q is not host or host:port", truncate(host))
		}
	}
	if port == "" {
		switch strings.ToLower(scheme) {
		case "http":
			port = "80"
		case "https":
			port = "443"
		default:
			return "", fmt.Errorf("%q: no default port for scheme %q", truncate(host), truncate(scheme))
		}
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", fmt.Errorf("%q: port must be 1..65535", truncate(host))
	}
	if h == "" {
		return "", fmt.Errorf("%q has no host", truncate(host))
	}
	return net.JoinHostPort(strings.ToLower(h), strconv.FormatUint(p, 10)), nil
}

// proxyError answers a request the proxy could not complete, and counts it.
func (s *Sidecar) proxyError(r Route, m *routeMetrics) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, req *http.Request, err error) {
		inc(m.failed, s.answerProxyError(r, w, err))
	}
}

// answerProxyError answers err and returns the outcome.
func (s *Sidecar) answerProxyError(r Route, w http.ResponseWriter, err error) string {
	if status, code, ok := tokenFailure(err); ok {
		return writeError(w, status, code, err.Error())
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("sidecar: body larger than %d bytes", tooLarge.Limit))
	case errors.Is(err, agentclient.ErrPeerNotAuthorized):
		s.log.Error("Upstream presented an unexpected SPIFFE ID", "route", r.Name, "expected", r.SPIFFEID.String(), "error", err.Error())
		return writeError(w, http.StatusBadGateway, codeUpstreamIdentity,
			fmt.Sprintf("sidecar: upstream of route %q did not present %s", r.Name, r.SPIFFEID))
	case errors.Is(err, context.Canceled):
		w.WriteHeader(499) // the agent went away; nobody reads this
		return outcomeCanceled
	default:
		s.log.Warn("Upstream request failed", "route", r.Name, "error", err.Error())
		return writeError(w, http.StatusBadGateway, codeUpstreamError, fmt.Sprintf("sidecar: upstream of route %q: %v", r.Name, err))
	}
}
