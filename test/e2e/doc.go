// Package e2e is agentid's end-to-end suite: the whole story on real parts,
// no fakes. SPIRE v1.13.3's spire-server runs agentid-composer,
// spire-agent runs agentid-attestor, agentid-server reconciles the declared
// agents into SPIRE entries and takes users' ID tokens from Ory Hydra, a
// real OpenID provider; the example agents and the example service are the
// programs under examples/, started as processes of their own and attested
// by their signed manifests.
//
// TestScenario brings one stack up (test/e2e/stack) and walks the issue's
// steps in order as subtests, each building on the one before:
//
//  1. declared agents appear as SPIRE entries; an agent process gets its
//     X509-SVID through the attestor;
//  2. a user's ID token becomes a delegation; the Go agent fetches a
//     delegated JWT-SVID and calls the service over mTLS; the service
//     answers with agent, user, scopes and chain;
//  3. the same through the sidecar for the Python agent;
//  4. sub-delegation narrows, never widens;
//  5. no agent gets another's delegated token; a tampered manifest earns no
//     identity;
//  6. revoking the root stops new tokens and, through the watch stream,
//     the tokens already issued;
//  7. a verifier outside SPIFFE checks a delegated token with the JWKS of
//     SPIRE's oidc-discovery-provider;
//  8. agentid-server killed with SIGKILL and restarted loses nothing; the
//     composer fails closed while it is down; then the audit log is
//     archived (export, verify) and pruned through the archive's head with
//     the CLI: what is left starts after that head, verifies from it, and
//     records the prune;
//  9. agentid-extauthz, attested like the service and following
//     revocations, answers Envoy-shaped CheckRequests: a delegated token
//     from its own agent passes with the x-agentid-* headers, from another
//     agent it is refused, and once revoked it is refused within a second.
//     Its mTLS listener, the chart's production setting, gives the same
//     answers to the Envoy it admits (an X509-SVID spire-server mints for
//     the test) and presents agentid-extauthz's own SVID; another SVID of
//     the trust domain, or no certificate, is refused in the TLS handshake
//     before any Check runs;
//  10. agentid-composer's counts reach spire-server's Prometheus sink
//     through SPIRE's metrics host service: tokens composed in the earlier
//     steps, and the refusals of the revoked delegation, of step 5's
//     theft (foreign) and of step 8's outage (stale).
//
// A step that fails skips the ones after it, which need its state. Every
// wait is bounded and its failure names what did not happen; the logs of
// the programs involved are printed when the test fails.
//
// The suite needs the e2e build tag and the SPIRE and Hydra binaries
// (built on first use, or by `make tools`):
//
//	go test -count=1 -tags e2e -run TestScenario -v ./e2e/   (in test/, the test module)
package e2e
