// Package sidecar is agentid-sidecar: it gives an agent that does not speak
// SPIFFE its agentid identity over plain local HTTP. It runs beside the
// agent (a container in the same pod, a process on the same host), holds
// the agent's X509-SVID from the SPIRE Workload API, and offers two things:
//
//   - a local JSON API: the agent's identity, delegated JWT-SVIDs
//     (GET /v1/token?audience=…&delegation=…), and creating, sub-delegating,
//     revoking, reading and listing delegations at agentid-server;
//   - an egress proxy: the agent sends plain HTTP with an
//     X-Agentid-Delegation header to a route name (as the Host, or through
//     HTTP_PROXY); the sidecar dials the route's upstream with mTLS, checks
//     its SPIFFE ID, attaches the delegated JWT-SVID as a bearer token and
//     strips every header the agent sent that asserts a credential, a
//     client identity or the original request: a rule over families
//     (X-Agentid-*, Forwarded, X-Forwarded-*, X-Original-*, X-Envoy-*,
//     X-Ssl-*, Client-Cert, X-Client-*, X-Auth-Request-*, ..., any name with
//     a word such as "cert" or "tls", any "-ip"), in any case and with '_'
//     for '-' (headers.go).
//
// Start it from a configuration file:
//
//	config, err := sidecar.LoadConfig("/etc/agentid/sidecar.yaml")
//	config.Log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
//	err = sidecar.Run(ctx, config)
//
// # Security
//
// Whoever can reach the sidecar acts as the agent. It therefore listens
// only on a unix socket (mode 0660 by default, never world-accessible,
// created owner-only, never replacing a socket something still listens on)
// or a loopback address: ParseListenAddr refuses everything else, host
// names included, and the bound address is checked again after binding.
// Loopback TCP (the default) is open to every local user: fine in a pod, a
// unix socket anywhere else. Requests carrying an Origin header or a
// Sec-Fetch-Site other than "none" (API and proxy) or a non-loopback Host
// (API) are refused, so a web page the agent opens cannot drive the sidecar
// (CSRF, DNS rebinding). Proxy routes match host and port. Request
// bodies are bounded and decoded strictly. User tokens are forwarded to
// agentid-server and never logged or echoed.
//
// # Errors
//
// Every error answer is JSON {"error": code, "message": text}. Token
// failures map as agentclient classifies them: a delegation SPIRE refused
// (unknown, revoked, expired, another agent's) is 403 delegation_denied;
// SPIRE unreachable is 503 spire_unavailable. agentid-server's gRPC codes
// map to 400/401/403/404/409/503. The proxy answers 502 unknown_route for a
// host it has no route for and 502 upstream_identity_mismatch when the
// upstream presents another SPIFFE ID; the upstream's own answers pass
// through unchanged. The README of cmd/agentid-sidecar lists every code.
//
// # Metrics
//
// The sidecar counts its answers in Prometheus series (agentid_sidecar_*:
// token and delegation requests and proxied requests by outcome, upstream
// latency per route, whether an unexpired X509-SVID is held and its expiry)
// in a registry of its own. Config.MetricsListen (metrics_listen) serves
// them at /metrics, with /healthz, on a TCP address that, unlike the API,
// may face the network: it acts for no one. Labels are error codes and
// configured route names only.
package sidecar
