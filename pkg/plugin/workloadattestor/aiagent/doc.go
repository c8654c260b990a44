// Package aiagent is agentid's SPIRE WorkloadAttestor: it tells spire-agent
// what an AI agent process is, so that registration entries can give each
// agent its own SPIFFE ID. cmd/agentid-attestor serves it as an external
// plugin; README.md beside this file is the operator's page (configuration,
// selectors, formats, security).
//
// # What it reads
//
// For a pid, Attest reads, all under /proc/<pid>:
//
//   - stat, for the process start time, before and after everything else:
//     if the process exited or its pid was reused meanwhile, the answer is
//     no selectors;
//   - environ, for AGENTID_MANIFEST (ManifestEnv), the manifest's absolute
//     path inside the process's root filesystem, else the configured
//     default_manifest_path;
//   - root/<path>, the manifest, and root/<path>.sig, its detached signature,
//     through an os.Root so that symlinks cannot lead outside the process's
//     root;
//   - exe, the executable, whose SHA-256 is cached by (device, inode, size,
//     mtime, ctime);
//   - for an agentid.dev/v2 manifest, what its binding needs: environ again
//     (for code-loading variables), and for an interpreted agent cmdline and
//     the bound script beneath root.
//
// A process without a manifest gets no selectors. A process with one gets
// (values as SPIRE receives them; the selector type is the plugin's name in
// the agent configuration, e.g. "aiagent"):
//
//	name:gdpr-compliance
//	version:1.4.2
//	model:anthropic/claude-sonnet-4
//	tool:crm.read
//	tool:mcp:github
//	manifest-sha256:<hex>
//	signer:release-2025        only for a v2 manifest the process matches, signed by that key
//	exe-sha256:<hex>
//
// # Manifests and signatures
//
// A manifest is a small JSON document that ParseManifest reads strictly: the
// bytes that were signed must mean one thing only. An "agentid.dev/v2"
// manifest (APIVersionV2) binds the code it describes (Binding: executable
// digests, and entry scripts for interpreted agents); a process that does not
// run that code gets none of its selectors, so a copy of a signed manifest
// beside other code earns nothing. An "agentid.dev/v1" manifest binds nothing
// and never earns signer. A release pipeline signs them with SignManifest, or with the
// openssl commands in README.md, and ships the signature next to the
// manifest:
//
//	sig, err := aiagent.SignManifest("release-2025", privateKey, manifestBytes)
//	// write sig to <manifest path>.sig
//
// The agent configuration maps key ids to public keys (Ed25519 or ECDSA
// P-256). A signature that does not verify costs only the signer selector and
// is logged as a warning.
//
// # Errors and "no selectors"
//
// SPIRE drops every selector of an attestor that answers an error, and logs
// the error. Attest therefore answers an error only when the plugin cannot do
// its job (not configured, /proc or the executable unreadable for a live
// process). What the workload controls (a missing, broken, oversized or
// unsigned manifest, a bad signature) and a process that goes away during
// attestation give fewer or no selectors, and a warning where an operator
// should look.
//
// The manifest path is the workload's choice, so the plugin looks before it
// opens: an O_PATH handle (which opens nothing) must name a regular file of a
// real file system (not /proc-like, not FUSE) before that same inode is
// opened for reading. Attest gives up when its context ends.
//
// Because the manifest lives in the workload's own filesystem, selectors
// other than signer and exe-sha256 are the workload's claims about itself:
// agentid-server refuses agents declared by those alone (README.md says what
// each selector proves and what it does not).
package aiagent
