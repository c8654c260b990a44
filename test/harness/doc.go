// Package harness starts and stops the real programs that agentid's
// end-to-end tests run against: SPIRE v1.13.3's spire-server, spire-agent
// and oidc-discovery-provider, and Ory Hydra v2.3.0 as the users' OpenID
// provider. Nothing here is a fake: each is the upstream program, built from
// the Go module proxy by test/tools/build.sh into <repo>/bin/<tool>/ and
// reused while its tool module is unchanged.
//
// A test brings up a trust domain in a few lines:
//
//	srv := harness.StartSPIREServer(t, harness.ServerOptions{})
//	agent := harness.StartSPIREAgent(t, srv, harness.AgentOptions{})
//	id := spiffeid.RequireFromPath(srv.TrustDomain(), "/agent/test")
//	srv.CreateEntry(t, harness.Entry{
//		SPIFFEID:  id,
//		ParentID:  agent.ID(),
//		Selectors: []string{fmt.Sprintf("unix:uid:%d", os.Getuid())},
//	})
//	svid := agent.WaitForX509SVID(t, id, 10*time.Second)
//
// and a user token with:
//
//	hydra := harness.StartHydra(t, harness.HydraOptions{})
//	idToken := hydra.Login(t, harness.LoginOptions{
//		Subject: "alice", Email: "alice@example.com", Groups: []string{"marketing"},
//	})
//
// The project's plugins load as SPIRE external plugins:
// ServerOptions.CredentialComposer and AgentOptions.WorkloadAttestor take
// an ExternalPlugin (name, binary, args, plugin_data body); the harness
// puts the binary's sha256 in plugin_checksum.
//
// The project's own programs come from BuildProgram (go build of a main
// package into the test's directory) and run under StartProgram with the
// same care as SPIRE's:
//
//	composer := harness.BuildProgram(t, "./cmd/agentid-composer")
//	srv := harness.StartSPIREServer(t, harness.ServerOptions{
//		CredentialComposer: &harness.ExternalPlugin{
//			Name: "agentid", Cmd: composer, Data: `server_socket = "/tmp/aid1/a.sock"`,
//		},
//	})
//
// Every program runs in its own process group with its output in a log file
// under t.TempDir(); the log is printed when the test fails, and the group
// is killed when the test ends (and, through the parent-death signal, when
// the test binary dies). Servers listen on loopback ports picked free and on
// unix sockets in a short directory under os.TempDir(), because a socket
// path must fit in 108 bytes. A port picked free may be taken by another
// process before the program binds it: spire-server, Hydra and the programs
// started with StartProgramOnPorts are started again on new ports when they
// exit with EADDRINUSE. Readiness is polled every 50 ms with a
// deadline; nothing sleeps longer than that.
//
// The server runs with a sqlite datastore, join_token node attestation and
// the disk key manager (a restarted server keeps its CA), a one-second
// cache_reload_interval and agent sync_interval (a new entry reaches a
// workload in about a second), and the JWT-SVID signing rate limit off.
//
// The package's tests that run SPIRE and Hydra need the e2e build tag:
//
//	test/tools/build.sh all
//	go test -tags e2e ./harness/   (in test/, the test module)
package harness
