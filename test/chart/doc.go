// Package chart tests the Helm chart in charts/agentid and the Kubernetes
// examples in examples/kubernetes. It holds only tests; this file is its
// documentation.
//
// The tests run the real Helm (helm.sh/helm/v3, pinned as a Go tool in
// test/tools/helm and built on first use with `go tool -n helm`), so what
// they check is what `helm install` would apply:
//
//   - `helm lint --strict` and `helm template` for the default values and for
//     every example values file;
//   - the values schema rejects each file of testdata/bad with the expected
//     message, and strict mode refuses the placeholder values;
//   - every rendered manifest decodes strictly into its k8s.io/api type, so a
//     misspelt or misplaced field fails;
//   - every container is non-root, read-only, without privilege escalation,
//     with all capabilities dropped and the RuntimeDefault seccomp profile,
//     except spire-agent's documented exception (host PID, root with
//     CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH), which is checked to be exactly
//     that;
//   - agentid-server's rendered configuration passes config.Parse and
//     policy.Compile (what the server does at start-up), and its agents are
//     the declared ones;
//   - spire-server's and spire-agent's rendered HCL is decoded as SPIRE does,
//     the plugins' plugin_data passes the plugins' own Validate, and the
//     checksums, socket paths and volumes agree between SPIRE, the init
//     containers and agentid-server, in both modes (the values for the
//     hardened SPIRE charts included);
//   - the pinned checksums are those of a fresh reproducible build
//     (charts/images/checksums.sh check);
//   - the examples: the sidecar's configuration parses, extauthz's rules
//     compile and match examples/istio, and the kagent agent maps to its
//     agentid declaration.
//
// Run them with `make chart-test` (they are part of `make test`). The first
// run builds Helm (minutes on two cores); later runs take seconds.
package chart
