// Package composer is agentid's SPIRE CredentialComposer plugin, built as
// cmd/agentid-composer and loaded by spire-server as an external plugin. It
// turns a JWT-SVID into a delegated one: the same token, signed by the trust
// domain's JWT authority, that also names the user the agent acts for, the
// scopes the user delegated and the chain of agents in between (the claims
// of pkg/claims).
//
// The package lives in credentialcomposer/delegation, after the SPIRE
// convention pkg/plugin/<type>/<name>, but is named composer: its code works
// with pkg/delegation's types throughout (imported as domain), and its
// errors read "composer: ..." in SPIRE's log, apart from pkg/delegation's
// "delegation: ...".
//
// # How a delegated token is made
//
// An agent holding delegation dlg_X fetches a JWT-SVID over the Workload API
// for its own SPIFFE ID with the audiences [target, "urn:agentid:delegation:dlg_X"].
// SPIRE builds the claims (sub, aud, exp, iat) and calls
// ComposeWorkloadJWTSVID, which
//
//  1. finds the marker audience (claims.SplitAudience); without one it
//     answers Unimplemented and SPIRE signs its default token: plain tokens
//     never depend on agentid-server;
//  2. looks dlg_X up in its in-memory replica: the replica must be ready and
//     fresh, the delegation known, held by sub, not revoked, not expired;
//  3. removes the marker from aud, adds principal, scope and delegation,
//     and lowers exp to the delegation's expiry if it is later;
//  4. queues an issuance record for agentid-server's audit log, without
//     waiting; a full queue refuses the token.
//
// Any refusal is an error, and SPIRE then fails the request: the plugin fails
// closed. The error names the reason and the delegation id, nothing else.
//
// # The replica
//
// A background watcher follows agentid-server's WatchDelegations over its
// local unix socket. A fresh watch receives a snapshot of every live
// delegation, applied at once when snapshot_end arrives; from then on the
// replica is ready and applies each change in revision order. When the
// stream breaks, the watcher reconnects with jittered exponential backoff and
// resumes from the last revision it applied. OUT_OF_RANGE (the server no
// longer has that revision, or has been restored from a backup) and any
// breach of the stream's contract discard the replica and start again from a
// snapshot; until it arrives, delegated tokens fail.
//
// A malformed delegation on the stream is logged and never kept, and a
// malformed change removes whatever the replica held under its id: bad input
// only ever takes authority away, and one bad record does not stop the
// replica from serving the others.
//
// Freshness is the time since the last message (change or heartbeat;
// agentid-server sends one every 10 s by default). Beyond max_staleness
// delegated tokens fail: the replica could be missing a revocation. On a
// resumed watch the replayed backlog does not count: the replica is fresh
// again only at the progress message that ends it, since a revocation may be
// further down. Expired delegations are refused at once and forgotten ten
// minutes later.
//
// Nothing on the signing path waits on the network: a lookup is a
// read-locked map access, every write to the replica holds the lock for a
// bounded time, and the audit record is a non-blocking channel send. One
// lookup does wait: an id the replica does not hold waits up to 500 ms for
// the watch stream to bring it (a delegation created a moment ago), on the
// replica's own update signal. At most 32 such lookups wait at once; beyond
// that an unknown id is refused at once, so random ids cannot tie up SPIRE's
// signing handlers.
//
// Outcomes (tokens composed, refusals by reason, issuance records lost) are
// counted with atomic adds and sent, with gauges of the replica and the
// audit queue, to SPIRE's metrics host service every 10 s by a background
// flusher: no token waits on SPIRE. Without the host service the plugin
// works the same, its metrics off.
//
// # Running it
//
// cmd/agentid-composer is all it takes:
//
//	plugin := composer.New(composer.Options{})
//	pluginmain.Serve(
//		credentialcomposerv1.CredentialComposerPluginServer(plugin),
//		configv1.ConfigServiceServer(plugin),
//	)
//
// README.md in this directory is the operator's page: configuration,
// claims, metrics, security considerations and a sample spire-server
// configuration.
package composer
