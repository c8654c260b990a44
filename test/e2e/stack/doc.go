// Package stack brings up a whole agentid trust domain on one machine, from
// real parts, for the end-to-end suite (test/e2e) and the demo (test/demo):
//
//   - spire-server (SPIRE v1.13.3) with agentid-composer as its
//     CredentialComposer, pointed at agentid-server's local socket;
//   - spire-agent with agentid-attestor as a WorkloadAttestor, trusting a
//     release key made for the run;
//   - SPIRE's oidc-discovery-provider, for verifiers outside SPIFFE;
//   - Ory Hydra, the users' OpenID provider;
//   - agentid-server, with four declared agents, a policy for marketing
//     users and the service as a revocation verifier;
//   - the example service (examples/service), following revocations;
//   - on demand (StartExtAuthz), agentid-extauthz in front of the service,
//     attested by its own manifest and following revocations too, its
//     ext_authz listener plaintext or mTLS (ExtAuthzOptions.TLSClientIDs;
//     the clients' X509-SVIDs come from SPIRE.MintX509SVID).
//
// A test or the demo starts it in one call and reads the parts from the
// returned Stack:
//
//	st := stack.Start(t, stack.Options{})
//	st.WaitForEntries(t, 30*time.Second)           // the agents are SPIRE entries
//	alice := st.Login(t, "alice", "alice@example.com", "marketing")
//	out, err := st.CLIAs(t, st.Manifest(t, "orchestrator"), "-o", "json", "delegate",
//		"-agent", stack.Orchestrator.String(), "-scope", "campaigns:read", "-token-file", alice.TokenFile)
//
// Every process here runs as the same user, so agents are told apart the way
// the attestor intends (pkg/plugin/workloadattestor/aiagent), by their manifests: each declared agent's entry
// requires aiagent:name:<name> and aiagent:signer:release-e2e, and the stack
// writes a signed agentid.dev/v2 manifest per agent, bound to the stack's
// workload programs (their SHA-256), so that the attestor gives signer only
// to those programs. A process is attested as an agent by
// starting it with that manifest in AGENTID_MANIFEST (WorkloadEnv does it):
// the Go example agent, agentid-sidecar for the Python one, the CLI acting
// as an agent (CLIAs), or the probe program (Probe), which makes one
// Workload API call or one service call and prints what SPIRE or the
// service answered. TamperedManifest and WriteManifest make the manifests
// that must earn nothing; CopiedManifest and Impostor (other code: the probe
// with bytes appended) make the copied-manifest attack, which must earn
// nothing either.
//
// Start takes a testing.TB, like the harness it builds on; everything it
// starts stops when the test ends. Progress lines (what started, how long it
// took) go to Options.Progress, or to t.Logf. Helpers fail the test with a
// message naming what did not happen, within bounded waits.
package stack
