package sidecar

import (
	"strings"
	"testing"
)

// strippedByFamily lists, per family, header names seen in the wild (and
// in the attack run of issue 13) in the spellings an agent could send:
// canonical, lower, upper, with '_' for '-'. Every one must be stripped and
// named by its family; TestProxyStripsEveryFamily sends them all through
// the proxy.
var strippedByFamily = map[string][]string{
	"agentid": {"X-Agentid-Delegation", "X-Agentid-User", "x-agentid-principal", "X_AGENTID_USER", "X-AgentID-Scopes"},
	"original-request": {
		"Forwarded", "forwarded", "X-Forwarded-For", "X_Forwarded_For", "X-Forwarded-Host", "X-Forwarded-Proto",
		"X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Uri", "X-Forwarded-Client-Cert", "X_FORWARDED_CLIENT_CERT",
		"X-Forwarded-Tls-Client-Cert", "X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Access-Token",
		"X-Original-Url", "X-Original-URI", "x-original-method", "X_Original_Forwarded_For", "X-Rewrite-Url",
		"X-Real-Ip", "X_Real_IP", "X-Originating-Ip", "X-Remote-Addr", "Remote-Addr",
	},
	"front-proxy": {"X-Envoy-Peer-Metadata", "X-Envoy-External-Address", "x-envoy-original-path", "X_Envoy_Internal", "X-Istio-Attributes",
		"X-Amzn-Oidc-Identity", "X-Amzn-Oidc-Data", "x_amzn_oidc_accesstoken", "X-Amzn-Mtls-Clientcert-Leaf", "X-Amzn-Trace-Id"},
	"client-certificate": {
		"X-Ssl-Client-Cert", "X-SSL-Client-Verify", "X_SSL_CLIENT_S_DN", "X-Ssl-Client-Dn", "Ssl-Client-Cert", "SSL_CLIENT_CERT",
		"Ssl-Client-Verify", "X-Tls-Client-Cert", "Tls-Client-Subject", "Client-Cert", "Client-Cert-Chain", "client_cert",
		"X-Arr-ClientCert", "X-ARR-SSL", "X-SSLClientCert",
		// by a word naming TLS or a certificate, whatever the prefix
		"X-Haproxy-Ssl-Client-Der", "X-Peer-Certificate", "X-Mtls-Subject", "Cert-Pem",
		"X-Cert",
	},
	"client": {"X-Client-Ip", "X-Client-Dn", "X-Client-Verify", "X_Client_Id", "x-client-spiffe-id", "X_Client_Certs"},
	"authenticated-user": {
		"X-Auth-Request-User", "X-Auth-Request-Email", "X_Auth_Request_Groups", "X-Auth-Request-Access-Token",
		"X-Remote-User", "X-Remote-Group", "X-Remote-Extra-Scopes", "Remote-User", "REMOTE_USER",
		"Impersonate-User", "Impersonate-Group", "Impersonate-Extra-Scopes", "Impersonate-Uid",
		"X-Authenticated-Userid", "X-Authenticated-Scope", "X-Consumer-Username", "X-Consumer-Id", "X-Credential-Identifier",
		"X-Userinfo", "X-Webauth-User",
		"X-Goog-Authenticated-User-Email", "X-Goog-Iap-Jwt-Assertion", "X-Ms-Client-Principal", "X-MS-CLIENT-PRINCIPAL-NAME",
		"X-Ms-Token-Aad-Id-Token", "Cf-Access-Authenticated-User-Email", "Cf-Access-Jwt-Assertion", "Cf-Connecting-Ip",
		"X-User", "X-User-Id", "X-Username", "X-UserID", "X_User_Email", "X-Email", "X-Groups", "X-Preferred-Username",
	},
	"credentials":    {"Authorization", "authorization", "Proxy-Authorization", "Proxy_Authorization", "X-Auth-Token", "X-Auth-User", "X-Api-Key", "X_API_KEY"},
	"client-address": {"True-Client-Ip", "Fastly-Client-Ip", "X-Cluster-Client-Ip", "TRUE_CLIENT_IP", "X-Device-Ip"},
}

// keptHeaders pass the proxy: content, caching, tracing, CSRF and cookies,
// and names that only look like a family (X-Forwardedness is not
// X-Forwarded-*, X-Realm not X-Real-*, X-Concert has no word "cert").
var keptHeaders = []string{
	"Accept", "Accept-Language", "Content-Type", "Cache-Control", "If-None-Match", "User-Agent", "Cookie",
	"Traceparent", "Tracestate", "X-Request-Id", "X-B3-Traceid", "X-Csrf-Token", "X-Other", "X_Other",
	"X-Forwardedness", "X-Realm", "X-Concert", "X-Ip-Version", "X-Clientele", "X-Origin", "X-Sslx", "Certainty",
	"X-Envoyx", "X-Userspace",
}

func TestStrippedFamily(t *testing.T) {
	for family, names := range strippedByFamily {
		for _, n := range names {
			if got := strippedFamily(n); got != family {
				t.Errorf("strippedFamily(%q) = %q, want %q", n, got, family)
			}
		}
	}
	for _, n := range keptHeaders {
		if got := strippedFamily(n); got != "" {
			t.Errorf("strippedFamily(%q) = %q, want kept", n, got)
		}
	}
}

// FuzzStrippedFamilySpelling checks the rule is blind to spelling: any
// mix of case and of '-' / '_' names the same family.
func FuzzStrippedFamilySpelling(f *testing.F) {
	for _, names := range strippedByFamily {
		for _, n := range names {
			f.Add(n, uint64(0x5555))
		}
	}
	for _, n := range keptHeaders {
		f.Add(n, uint64(0xffff))
	}
	f.Fuzz(func(t *testing.T, name string, flips uint64) {
		b := []byte(name)
		for i, c := range b {
			if flips&(1<<(i%64)) == 0 {
				continue
			}
			switch {
			case c == '-':
				b[i] = '_'
			case c == '_':
				b[i] = '-'
			case 'a' <= c && c <= 'z':
				b[i] = c - 'a' + 'A'
			case 'A' <= c && c <= 'Z':
				b[i] = c - 'A' + 'a'
			}
		}
		if got, want := strippedFamily(string(b)), strippedFamily(name); got != want {
			t.Fatalf("strippedFamily(%q) = %q but strippedFamily(%q) = %q", b, got, name, want)
		}
		if strings.EqualFold(name, "authorization") && strippedFamily(name) != "credentials" {
			t.Fatalf("%q kept", name)
		}
	})
}

// FuzzRouteKey: a request's Host is the agent's (or a page's) input. The key
// is lower case, has a port 1..65535, and keys to itself.
func FuzzRouteKey(f *testing.F) {
	for _, s := range []string{"crm", "CRM:80", "crm:080", "[::1]:8080", "crm:", ":80", "crm:65536", "a:b:c", "[::1", "crm.internal:8080"} {
		f.Add(s, "http")
	}
	f.Add("crm", "https")
	f.Fuzz(func(t *testing.T, host, scheme string) {
		k, err := routeKey(host, scheme)
		if err != nil {
			return
		}
		if k != strings.ToLower(k) {
			t.Fatalf("routeKey(%q) = %q: not lower case", host, k)
		}
		if again, err := routeKey(k, "none"); err != nil || again != k {
			t.Fatalf("routeKey(%q) = %q, which keys to %q, %v", host, k, again, err)
		}
	})
}
