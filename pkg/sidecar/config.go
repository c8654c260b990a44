package sidecar

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"gopkg.in/yaml.v3"
)

// Defaults for keys the file leaves out.
const (
	// DefaultListen is the API's address when `listen` is absent. Loopback
	// TCP has no access control: every local user can act as the agent
	// through it. It suits a pod (whose loopback only the pod's containers
	// share); on a shared host configure a unix socket instead.
	DefaultListen = "127.0.0.1:15080"
	// DefaultSocketMode is the mode of a unix socket: the agent's container
	// and the sidecar share a group, nobody else may connect.
	DefaultSocketMode fs.FileMode = 0o660
	// DefaultMaxBodyBytes bounds the API's request bodies: a user token is a
	// few KiB, a request of the API never needs more.
	DefaultMaxBodyBytes = 64 << 10
	// DefaultRequestTimeout bounds each call to SPIRE or agentid-server made
	// for one API request.
	DefaultRequestTimeout = 10 * time.Second
	// maxConfigBytes bounds the configuration file.
	maxConfigBytes = 1 << 20
	// maxMaxBodyBytes bounds max_body_bytes.
	maxMaxBodyBytes = 16 << 20
	// DefaultProxyMaxBodyBytes bounds the bodies of proxied HTTP requests:
	// an agent uploads documents, but a runaway or hostile tool must not
	// stream without end on the agent's identity. It does not bound what
	// flows over a connection after a protocol upgrade (WebSocket).
	DefaultProxyMaxBodyBytes = 16 << 20
	// maxProxyMaxBodyBytes bounds proxy_max_body_bytes.
	maxProxyMaxBodyBytes = 1 << 30
)

// file is the YAML shape of the configuration. Every key is documented in
// cmd/agentid-sidecar/README.md.
type file struct {
	Listen         string        `yaml:"listen"`
	SocketMode     string        `yaml:"socket_mode"`
	ProxyListen    string        `yaml:"proxy_listen"`
	MetricsListen  string        `yaml:"metrics_listen"`
	WorkloadAPI    string        `yaml:"workload_api"`
	SPIFFEID       string        `yaml:"spiffe_id"`
	Server         *serverFile   `yaml:"server"`
	OAuth          *oauthFile    `yaml:"oauth"`
	Routes         []routeFile   `yaml:"routes"`
	MaxBodyBytes   int64         `yaml:"max_body_bytes"`
	RequestTimeout time.Duration `yaml:"request_timeout"`

	ProxyMaxBodyBytes int64 `yaml:"proxy_max_body_bytes"`
}

type serverFile struct {
	Address  string `yaml:"address"`
	SPIFFEID string `yaml:"spiffe_id"`
}

type oauthFile struct {
	Issuer string `yaml:"issuer"`
	CAFile string `yaml:"ca_file"`
}

type routeFile struct {
	Name     string   `yaml:"name"`
	Hosts    []string `yaml:"hosts"`
	Upstream string   `yaml:"upstream"`
	SPIFFEID string   `yaml:"spiffe_id"`
	Audience string   `yaml:"audience"`
}

// Config is the sidecar's validated configuration, with defaults applied.
type Config struct {
	// Listen is where the local API listens.
	Listen ListenAddr
	// SocketMode is the file mode of unix sockets.
	SocketMode fs.FileMode
	// ProxyListen is where the egress proxy listens; zero means no proxy.
	ProxyListen ListenAddr
	// MetricsListen is the TCP host:port serving /metrics and /healthz;
	// empty means none. Unlike Listen it may be any local address (a pod
	// IP for Prometheus): it serves nothing that acts as the agent. Set it
	// from ParseMetricsListen.
	MetricsListen string
	// WorkloadAPI is the SPIRE agent's socket; empty means
	// SPIFFE_ENDPOINT_SOCKET.
	WorkloadAPI string
	// SPIFFEID pins the agent's SPIFFE ID; zero takes the Workload API's
	// first identity.
	SPIFFEID spiffeid.ID
	// Server is agentid-server; a zero Address disables the delegation
	// endpoints (501).
	Server ServerConfig
	// OAuth is agentid-server's authorization server; a zero Issuer
	// disables GET /v1/access-token (501).
	OAuth OAuthConfig
	// Routes are the egress proxy's upstreams.
	Routes []Route
	// MaxBodyBytes bounds API request bodies.
	MaxBodyBytes int64
	// ProxyMaxBodyBytes bounds the bodies of proxied requests.
	ProxyMaxBodyBytes int64
	// RequestTimeout bounds each upstream call of one API request.
	RequestTimeout time.Duration

	// Log receives the sidecar's log; nil discards it. Set by the program,
	// not the file.
	Log *slog.Logger
	// Clock is the sidecar's clock (token cache, health check); nil is
	// time.Now. Set by tests.
	Clock func() time.Time
}

// ServerConfig locates agentid-server.
type ServerConfig struct {
	// Address is the server's mTLS listener, host:port.
	Address string
	// SPIFFEID is the SPIFFE ID the server must present.
	SPIFFEID spiffeid.ID
}

// OAuthConfig locates agentid-server's authorization server.
type OAuthConfig struct {
	// Issuer is its issuer URL (https; http only on loopback).
	Issuer string
	// RootCAs verify its listener's web PKI certificate; nil: the system's.
	RootCAs *x509.CertPool
}

// Route is one upstream of the egress proxy.
type Route struct {
	// Name is matched against the request's host and port, like each of
	// Hosts: a lower-case host name, optionally with ":port"; without one
	// it is port 80 (the agent's http://name/), never any port.
	Name string
	// Hosts are further host names (or host:port) routed here.
	Hosts []string
	// Upstream is the upstream's host:port, dialled with mTLS.
	Upstream string
	// SPIFFEID is the SPIFFE ID the upstream must present.
	SPIFFEID spiffeid.ID
	// Audience is the audience of the tokens attached; defaults to
	// SPIFFEID's string.
	Audience string
}

// LoadConfig reads and parses the configuration file at path.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("sidecar: failed to read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return Config{}, fmt.Errorf("sidecar: failed to read config: %w", err)
	}
	return ParseConfig(data)
}

// ParseConfig decodes a YAML configuration strictly (an unknown key is an
// error naming the key and its line), validates it and applies defaults.
func ParseConfig(data []byte) (Config, error) {
	if len(data) > maxConfigBytes {
		return Config{}, fmt.Errorf("%w: larger than %d bytes", ErrInvalidConfig, maxConfigBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f file
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, fmt.Errorf("%w: the file is empty", ErrInvalidConfig)
		}
		return Config{}, fmt.Errorf("%w: %s", ErrInvalidConfig, yamlError(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%w: more than one YAML document", ErrInvalidConfig)
	}
	return f.build()
}

var unknownField = regexp.MustCompile(`^line (\d+): field (.*) not found in type \S+$`)

// yamlError rewrites yaml.v3's messages into the sidecar's words.
func yamlError(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		if sub := unknownField.FindStringSubmatch(m); sub != nil {
			m = fmt.Sprintf("line %s: unknown key %q", sub[1], sub[2])
		}
		msgs[i] = m
	}
	return strings.Join(msgs, "; ")
}

var routeName = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)

// checkRouteHost checks a route's name or one of its hosts: a lower-case
// host name, optionally with a port (without one it is port 80), and
// returns the host:port requests are matched by.
func checkRouteHost(s string) (string, bool) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host = s
	} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 || port != strconv.FormatUint(n, 10) {
		return "", false
	}
	if !routeName.MatchString(host) {
		return "", false
	}
	key, err := routeKey(s, "http")
	return key, err == nil
}

func (f file) build() (Config, error) {
	var errs []string
	var notLoopback bool
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	badListen := func(key string, err error) {
		notLoopback = true
		bad("%s: %s", key, strings.TrimPrefix(err.Error(), "sidecar: "))
	}
	c := Config{
		WorkloadAPI: f.WorkloadAPI, MaxBodyBytes: f.MaxBodyBytes, RequestTimeout: f.RequestTimeout,
		ProxyMaxBodyBytes: f.ProxyMaxBodyBytes,
		SocketMode:        DefaultSocketMode,
	}
	listen := f.Listen
	if listen == "" {
		listen = DefaultListen
	}
	var err error
	if c.Listen, err = ParseListenAddr(listen); err != nil {
		badListen("listen", err)
	}
	if f.ProxyListen != "" {
		if c.ProxyListen, err = ParseListenAddr(f.ProxyListen); err != nil {
			badListen("proxy_listen", err)
		}
	}
	if f.MetricsListen != "" {
		if c.MetricsListen, err = ParseMetricsListen(f.MetricsListen); err != nil {
			bad("%s", strings.TrimPrefix(err.Error(), ErrInvalidConfig.Error()+": "))
		}
	}
	if f.SocketMode != "" {
		m, err := strconv.ParseUint(f.SocketMode, 8, 32)
		if err != nil || m > 0o777 {
			bad("socket_mode: %q is not an octal file mode like \"0660\"", f.SocketMode)
		} else if m&0o007 != 0 {
			bad("socket_mode: %q lets every local user reach the agent's credentials", f.SocketMode)
		} else {
			c.SocketMode = fs.FileMode(m)
		}
	}
	if f.WorkloadAPI != "" && !strings.HasPrefix(f.WorkloadAPI, "unix:") && !strings.HasPrefix(f.WorkloadAPI, "tcp:") {
		bad("workload_api: %q is not a unix:// or tcp:// address", f.WorkloadAPI)
	}
	if f.SPIFFEID != "" {
		if c.SPIFFEID, err = spiffeid.FromString(f.SPIFFEID); err != nil {
			bad("spiffe_id: %v", err)
		}
	}
	if f.Server != nil {
		if _, _, err := net.SplitHostPort(f.Server.Address); err != nil {
			bad("server.address: %q is not host:port", f.Server.Address)
		}
		c.Server.Address = f.Server.Address
		if c.Server.SPIFFEID, err = spiffeid.FromString(f.Server.SPIFFEID); err != nil {
			bad("server.spiffe_id: %v", err)
		}
	}
	if f.OAuth != nil {
		if u, err := url.Parse(f.OAuth.Issuer); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			bad("oauth.issuer: %q is not an https URL", f.OAuth.Issuer)
		}
		c.OAuth.Issuer = f.OAuth.Issuer
		if f.OAuth.CAFile != "" {
			pem, err := os.ReadFile(f.OAuth.CAFile)
			c.OAuth.RootCAs = x509.NewCertPool()
			if err != nil {
				bad("oauth.ca_file: %v", err)
			} else if !c.OAuth.RootCAs.AppendCertsFromPEM(pem) {
				bad("oauth.ca_file: %q holds no PEM certificate", f.OAuth.CAFile)
			}
		}
	}
	seen := map[string]string{}
	for i, r := range f.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		route := Route{Name: r.Name, Upstream: r.Upstream, Audience: r.Audience}
		for j, h := range append([]string{r.Name}, r.Hosts...) {
			field := key + ".name"
			if j > 0 {
				field = fmt.Sprintf("%s.hosts[%d]", key, j-1)
			}
			k, ok := checkRouteHost(h)
			if !ok {
				bad("%s: %q is not a lower-case host name or host:port", field, h)
				continue
			}
			if prev, dup := seen[k]; dup {
				bad("%s: %q is already routed by %s", field, h, prev)
				continue
			}
			seen[k] = field
			if j > 0 {
				route.Hosts = append(route.Hosts, h)
			}
		}
		if host, port, err := net.SplitHostPort(r.Upstream); err != nil || host == "" || port == "" {
			bad("%s.upstream: %q is not host:port", key, r.Upstream)
		}
		if route.SPIFFEID, err = spiffeid.FromString(r.SPIFFEID); err != nil {
			bad("%s.spiffe_id: %v", key, err)
		}
		if route.Audience == "" && !route.SPIFFEID.IsZero() {
			route.Audience = route.SPIFFEID.String()
		}
		if err := agentclient.CheckAudience(route.Audience); route.Audience != "" && err != nil {
			bad("%s.%s", key, audienceReason(err))
		}
		c.Routes = append(c.Routes, route)
	}
	if len(f.Routes) > 0 && f.ProxyListen == "" {
		bad("routes: set proxy_listen, or the routes are never used")
	}
	if f.ProxyListen != "" && len(f.Routes) == 0 {
		bad("proxy_listen: the proxy has no routes")
	}
	if !c.Listen.IsZero() && c.Listen == c.ProxyListen && !strings.HasSuffix(c.Listen.address, ":0") {
		bad("proxy_listen: same address as listen")
	}
	if c.MetricsListen != "" && !strings.HasSuffix(c.MetricsListen, ":0") {
		for _, other := range []struct {
			key  string
			addr ListenAddr
		}{{"listen", c.Listen}, {"proxy_listen", c.ProxyListen}} {
			if other.addr.network == "tcp" && other.addr.address == c.MetricsListen {
				bad("metrics_listen: same address as %s", other.key)
			}
		}
	}
	errs = append(errs, c.applyDefaults()...)
	if len(errs) > 0 {
		return Config{}, newConfigError(errs, notLoopback)
	}
	return c, nil
}

func newConfigError(errs []string, notLoopback bool) error {
	err := &configError{msg: ErrInvalidConfig.Error() + ": " + strings.Join(errs, "; "), causes: []error{ErrInvalidConfig}}
	if notLoopback {
		err.causes = append(err.causes, ErrNotLoopback)
	}
	return err
}

// applyDefaults fills the zero values that have defaults and checks the
// ranges of the numeric fields, for a file and a Config built in code
// alike: a zero RequestTimeout would time every call out, a zero
// MaxBodyBytes refuse every body, a zero SocketMode lock the agent out.
// It returns the problems, named by their file keys.
func (c *Config) applyDefaults() []string {
	var errs []string
	switch {
	case c.SocketMode == 0:
		c.SocketMode = DefaultSocketMode
	case c.SocketMode&^fs.ModePerm != 0:
		errs = append(errs, fmt.Sprintf("socket_mode: %v is not a permission mode like 0660", c.SocketMode))
	case c.SocketMode&0o007 != 0:
		errs = append(errs, fmt.Sprintf("socket_mode: %04o lets every local user reach the agent's credentials", uint32(c.SocketMode)))
	}
	switch {
	case c.MaxBodyBytes == 0:
		c.MaxBodyBytes = DefaultMaxBodyBytes
	case c.MaxBodyBytes < 1024 || c.MaxBodyBytes > maxMaxBodyBytes:
		errs = append(errs, fmt.Sprintf("max_body_bytes: %d outside 1024..%d", c.MaxBodyBytes, maxMaxBodyBytes))
	}
	switch {
	case c.ProxyMaxBodyBytes == 0:
		c.ProxyMaxBodyBytes = DefaultProxyMaxBodyBytes
	case c.ProxyMaxBodyBytes < 1024 || c.ProxyMaxBodyBytes > maxProxyMaxBodyBytes:
		errs = append(errs, fmt.Sprintf("proxy_max_body_bytes: %d outside 1024..%d", c.ProxyMaxBodyBytes, maxProxyMaxBodyBytes))
	}
	switch {
	case c.RequestTimeout == 0:
		c.RequestTimeout = DefaultRequestTimeout
	case c.RequestTimeout < 0 || c.RequestTimeout > 5*time.Minute:
		errs = append(errs, fmt.Sprintf("request_timeout: %v outside 0..5m", c.RequestTimeout))
	}
	for i := range c.Routes {
		if r := &c.Routes[i]; r.Audience == "" && !r.SPIFFEID.IsZero() {
			r.Audience = r.SPIFFEID.String()
		}
	}
	return errs
}

// check applies the defaults to a Config that may have been built in code
// rather than parsed, and refuses what ParseConfig would have refused.
func (c *Config) check() error {
	errs := c.applyDefaults()
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if c.Server.Address != "" && c.Server.SPIFFEID.IsZero() {
		bad("server.spiffe_id: required with server.address")
	}
	seen := map[string]string{} // host:port → the field that routes it
	for i, r := range c.Routes {
		for j, h := range append([]string{r.Name}, r.Hosts...) {
			field := fmt.Sprintf("routes[%d].name", i)
			if j > 0 {
				field = fmt.Sprintf("routes[%d].hosts[%d]", i, j-1)
			}
			k, ok := checkRouteHost(h)
			switch prev, dup := seen[k]; {
			case !ok:
				bad("%s: %q is not a lower-case host name or host:port", field, h)
			case dup:
				bad("%s: %q is already routed by %s", field, h, prev)
			default:
				seen[k] = field
			}
		}
		if host, port, err := net.SplitHostPort(r.Upstream); err != nil || host == "" || port == "" {
			bad("routes[%d].upstream: %q is not host:port", i, r.Upstream)
		}
		if r.SPIFFEID.IsZero() {
			bad("routes[%d].spiffe_id: required", i)
		}
		if err := agentclient.CheckAudience(r.Audience); err != nil && !r.SPIFFEID.IsZero() {
			bad("routes[%d].%s", i, audienceReason(err))
		}
	}
	if !c.ProxyListen.IsZero() && len(c.Routes) == 0 {
		bad("proxy_listen: the proxy has no routes")
	}
	if c.MetricsListen != "" {
		if addr, err := ParseMetricsListen(c.MetricsListen); err != nil {
			bad("%s", strings.TrimPrefix(err.Error(), ErrInvalidConfig.Error()+": "))
		} else {
			c.MetricsListen = addr
		}
	}
	if len(errs) > 0 {
		return newConfigError(errs, false)
	}
	return nil
}

// configError lists every problem of a file; it is ErrInvalidConfig, and
// also ErrNotLoopback when a listen address was refused.
type configError struct {
	msg    string
	causes []error
}

func (e *configError) Error() string   { return e.msg }
func (e *configError) Unwrap() []error { return e.causes }

// ParseMetricsListen checks a metrics_listen address and returns it as it
// is bound: "host:port" where host is an IP literal (any local address,
// e.g. the pod IP, or 0.0.0.0 / [::] for all interfaces), "localhost"
// (bound as 127.0.0.1) or empty (all interfaces). Host names are refused,
// as for listen: an address that depends on a resolver could bind
// somewhere unforeseen. Unix sockets are refused: Prometheus scrapes TCP.
// Errors are ErrInvalidConfig.
func ParseMetricsListen(s string) (string, error) {
	const example = `, like "0.0.0.0:9090" or "127.0.0.1:9090"`
	if strings.HasPrefix(s, "unix:") {
		return "", fmt.Errorf("%w: metrics_listen: %q: a unix socket cannot be scraped; use a TCP host:port%s", ErrInvalidConfig, truncate(s), example)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%w: metrics_listen: %q is not host:port%s", ErrInvalidConfig, truncate(s), example)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || (port != "0" && p == 0) {
		return "", fmt.Errorf("%w: metrics_listen: %q: port must be 0..65535", ErrInvalidConfig, truncate(s))
	}
	switch {
	case host == "":
		return net.JoinHostPort("", port), nil
	case strings.EqualFold(host, "localhost"):
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return "", fmt.Errorf("%w: metrics_listen: %q: host must be an IP address, \"localhost\" or empty (all interfaces); names are not resolved", ErrInvalidConfig, truncate(s))
	}
	return net.JoinHostPort(ip.Unmap().String(), port), nil
}
