// Package spireapi is agentid's narrow window onto the SPIRE Server API
// (github.com/spiffe/spire-api-sdk): registration entries, X509-SVID minting
// and bundles, in the project's own types (spiffeid.ID, time.Duration,
// go-spiffe bundles and SVIDs) rather than protobuf messages.
//
// # Connecting
//
// agentid-server runs beside spire-server (a sidecar in the same pod, or on
// the same VM) and talks to it over the admin unix socket, the server's
// socket_path. The socket has no TLS; SPIRE treats whoever can open it as a
// local administrator, so the socket's filesystem permissions are the access
// control:
//
//	client, err := spireapi.Dial(ctx, "/tmp/spire-server/private/api.sock")
//	if err != nil {
//		return err
//	}
//	defer client.Close()
//
// Dial waits until the connection is up or ctx ends. Afterwards calls fail
// fast while the server is unreachable (so a reconciliation pass can report
// the outage) and the connection comes back by itself, retrying at least
// every 5 s.
//
// # Entries
//
// EntryClient is the part a reconciler needs, and what package reconciler
// depends on: ListEntries reads every entry (200 per page), CreateEntries,
// UpdateEntries and DeleteEntries write in batches (50, 50 and 200 per call)
// and return one Status per item, in order. SPIRE keeps caller-chosen entry
// IDs, which is how a controller marks the entries it owns (an ID prefix),
// and it refuses to create a second entry with the same SPIFFE ID, parent ID
// and selectors: that Status is ALREADY_EXISTS and carries the existing
// entry, which may belong to somebody else.
//
//	sts, err := client.CreateEntries(ctx, []spireapi.Entry{{
//		ID:        "agentid-gdpr-compliance.267b944557717480",
//		SPIFFEID:  spiffeid.RequireFromString("spiffe://example.org/agent/gdpr-compliance"),
//		ParentID:  spiffeid.RequireFromString("spiffe://example.org/spire/agent/k8s_psat/prod/node1"),
//		Selectors: []spireapi.Selector{{Type: "aiagent", Value: "name:gdpr-compliance"}},
//	}})
//
// Update sends every field, so an owned entry that somebody edited by hand
// (made admin, say) is put back as declared.
//
// # Its own identity
//
// A process that holds the admin socket but has no Workload API can get an
// X509-SVID for itself with MintX509SVID (only a CSR leaves the process; the
// answer is checked to certify exactly the ID and key asked for) and the
// trust bundle with GetBundle, GetX509Bundle or GetJWTBundle. Minting needs no
// registration entry: another reason to guard the socket.
//
// Tests use package spireapitest, a fake SPIRE server with SPIRE's own
// semantics on a real unix socket.
package spireapi
