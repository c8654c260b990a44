package sidecar

import (
	"fmt"
	"net/http"
	"strings"
)

// The egress proxy strips, from every request it forwards, each header
// that asserts a credential, a client identity or the original request.
// An upstream may sit behind a TLS terminator, an authenticating proxy or a
// mesh that writes such headers, and trust them; a header of that kind
// written by the agent would then be taken for the front proxy's word. The
// only identity that leaves the proxy is its mTLS connection and the
// delegated token the transport attaches.
//
// It is a rule over families, not a list of names. A name is read
// case-insensitively with '_' as '-' (CGI, WSGI, PHP and Rack upstreams
// fold both to '_': X_Ssl_Client_Cert arrives as HTTP_X_SSL_CLIENT_CERT,
// like X-Ssl-Client-Cert), and stripped when it
//
//   - is, or starts with (then '-'), a prefix of one of headerFamilies;
//   - has a '-'-separated word naming TLS or a certificate (certWords:
//     ssl, tls, mtls, cert, certificate, ...), or "clientcert" or
//     "client-cert" anywhere in it: whatever a terminator says about the
//     client's certificate, whoever the vendor;
//   - ends in "-ip": a client address (X-Real-Ip, True-Client-Ip,
//     Cf-Connecting-Ip, Fastly-Client-Ip, X-Cluster-Client-Ip, ...).
//
// A harmless header caught by the rule is a small cost; an identity header
// let through is not, so the families are wide (every X-Client-*,
// X-Envoy-*, X-Amzn-*, X-User*). Headers about the request's content,
// tracing (traceparent, X-Request-Id, X-B3-*), CSRF tokens and cookies
// pass.

// headerFamily is a family of stripped header names: a name is in it when
// it is one of prefixes or starts with one followed by '-' (normalised:
// lower case, '-'), so "x-real" takes X-Real-Ip but not X-Realm.
type headerFamily struct {
	name     string
	prefixes []string
}

// headerFamilies are the prefix families, with who writes them, in the
// order they are tried (the first match names the family).
var headerFamilies = []headerFamily{
	// agentid's own headers, which a mesh filter could take for agentid's.
	{"agentid", []string{"x-agentid"}},
	// The original request as a proxy in front saw it: client address,
	// host, port, scheme, path, URL (RFC 7239 Forwarded; X-Forwarded-*,
	// with Envoy's X-Forwarded-Client-Cert, Traefik's
	// X-Forwarded-Tls-Client-Cert, oauth2-proxy's X-Forwarded-User;
	// X-Original-Url and X-Rewrite-Url that IIS and Symfony route by;
	// X-Real-Ip, X-Originating-Ip, Remote-Addr).
	{"original-request", []string{"forwarded", "x-forwarded", "x-original", "x-originating", "x-rewrite", "x-real", "x-remote-addr", "remote-addr"}},
	// Mesh proxies and load balancers on the request and the caller:
	// Envoy's peer metadata, external address, original path and internal
	// flag; Istio's attributes; AWS ALB's X-Amzn-Oidc-* (the user it
	// authenticated), X-Amzn-Mtls-* (the client certificate) and trace id.
	{"front-proxy", []string{"x-envoy", "x-istio", "x-amzn"}},
	// TLS terminators on the client's certificate: nginx, HAProxy and Apache
	// conventions (X-Ssl-*, Ssl-*, X-Tls-*), RFC 9440 Client-Cert and
	// Client-Cert-Chain, IIS ARR (X-Arr-ClientCert, X-Arr-Ssl); see also
	// certWords.
	{"client-certificate", []string{"x-ssl", "ssl", "x-tls", "tls", "client-cert", "x-arr"}},
	// X-Client-*: what a front proxy says about the client (X-Client-Ip,
	// X-Client-Dn, X-Client-Verify, X-Client-Cert, X-Client-Id).
	{"client", []string{"x-client"}},
	// Authenticating proxies and gateways that assert the user: oauth2-proxy
	// (X-Auth-Request-*), the Kubernetes front proxy (X-Remote-User,
	// -Group, -Extra-*) and impersonation (Impersonate-*), Apache/nginx
	// Remote-User, Kong (X-Authenticated-*, X-Consumer-*, X-Credential-*,
	// X-Userinfo), Grafana (X-Webauth-*), Google IAP (X-Goog-Authenticated-*, X-Goog-Iap-*), Azure App Service
	// (X-Ms-Client-Principal*, X-Ms-Token-*), Cloudflare Access and its
	// client address (Cf-Access-*, Cf-Connecting-Ip), and the X-User,
	// X-Email, X-Groups an nginx auth_request setup passes on.
	{"authenticated-user", []string{
		"x-auth-request", "x-remote", "remote-user", "impersonate", "x-authenticated", "x-consumer",
		"x-credential", "x-userinfo", "x-webauth", "x-goog-authenticated", "x-goog-iap",
		"x-ms-client-principal", "x-ms-token", "cf-access", "cf-connecting", "x-user", "x-username", "x-userid", "x-email",
		"x-groups", "x-preferred-username",
	}},
	// The agent's own credentials: the delegated token replaces them
	// (Authorization, Proxy-Authorization, X-Auth-Token, X-Api-Key).
	{"credentials", []string{"authorization", "proxy-authorization", "x-auth", "x-api-key"}},
}

// certWords are words of a name that mark it as about TLS or a certificate,
// wherever they stand (X-Amzn-Mtls-Clientcert, X-Forwarded-Tls-Client-Cert,
// X-Haproxy-Ssl-Client-Der, X-Peer-Certificate).
var certWords = map[string]bool{
	"ssl": true, "tls": true, "mtls": true, "cert": true, "certs": true, "certificate": true,
	"certificates": true, "clientcert": true, "clientcertificate": true, "pem": true, "der": true,
}

// strippedFamily returns the family of header name k, or "" when the proxy
// forwards it.
func strippedFamily(k string) string {
	n := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
	for _, f := range headerFamilies {
		for _, p := range f.prefixes {
			if n == p || strings.HasPrefix(n, p) && n[len(p)] == '-' {
				return f.name
			}
		}
	}
	if strings.Contains(n, "clientcert") || strings.Contains(n, "client-cert") {
		return "client-certificate"
	}
	for w := range strings.SplitSeq(n, "-") {
		if certWords[w] {
			return "client-certificate"
		}
	}
	if strings.HasSuffix(n, "-ip") {
		return "client-address"
	}
	return ""
}

// stripHeaders removes from h every header strippedFamily names.
func stripHeaders(h http.Header) {
	for k := range h {
		if strippedFamily(k) != "" {
			delete(h, k)
		}
	}
}

// browserRequest returns why a request with header h was made by a browser
// for a web page, or "" when it was not. The API and the proxy act as the
// agent for whoever reaches them, and a page the agent (or a tool of it)
// opens must not: it could read the API's answers, or send requests under a
// delegation through the proxy.
//
//   - An Origin header, whatever its value: browsers send it on every
//     cross-origin request and on same-origin ones other than GET and HEAD.
//   - Sec-Fetch-Site (Fetch Metadata) with any value but "none": browsers
//     send it with every request, Origin or not (a cross-site <img>, a link
//     the page navigates to), so it catches the GETs Origin misses.
//     "cross-site" is a page of another site; "same-site" is another origin
//     of the same site (a sibling subdomain or port: another application,
//     often another owner, user content); "same-origin" is a page the
//     upstream served through the proxy, whose scripts would otherwise run
//     with the agent's delegation, as the Origin rule refuses whatever the
//     origin. Only "none", a request the user (or the automation driving the
//     browser) started by typing or opening the URL, is no page's. A value
//     not in the standard is refused too.
//
// Browsers send fetch metadata only to potentially trustworthy URLs (https,
// localhost), so over plain http to a route name only Origin is seen: this
// is a second check, not a reason to let a browser use the proxy.
func browserRequest(h http.Header) string {
	if h.Get("Origin") != "" {
		return "sidecar: requests with an Origin header are refused"
	}
	for _, v := range h.Values("Sec-Fetch-Site") {
		if !strings.EqualFold(strings.TrimSpace(v), "none") {
			return fmt.Sprintf("sidecar: requests with Sec-Fetch-Site %q are refused: a browser sent it for a web page", truncate(v))
		}
	}
	return ""
}
