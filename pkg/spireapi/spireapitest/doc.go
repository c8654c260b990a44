// Package spireapitest runs a fake SPIRE Server API on a real unix socket, for
// tests of code that talks to SPIRE through package spireapi.
//
// The fake answers entry.v1 (ListEntries, BatchCreateEntry, BatchUpdateEntry,
// BatchDeleteEntry), svid.v1 (MintX509SVID) and bundle.v1 (GetBundle,
// GetFederatedBundle) with the semantics of SPIRE v1.13.3's own handlers and
// SQL datastore, read from its source:
//
//   - Create keeps a caller-chosen entry id. When an entry with the same
//     SPIFFE ID, parent ID and selector set exists, whatever its id, the
//     answer is ALREADY_EXISTS "similar entry already exists" with that
//     entry; when only the id is taken, ALREADY_EXISTS without an entry.
//   - Entry ids are limited to [A-Za-z0-9._-] and 255 bytes; SPIFFE IDs must
//     be in the server's trust domain, outside /spire; selectors must not be
//     empty; all of these answer INVALID_ARGUMENT with SPIRE's messages.
//   - Update replaces every field (or the masked ones) and bumps the revision
//     number; NOT_FOUND for an unknown id. Delete answers NOT_FOUND likewise.
//   - List pages by a token naming the last row returned; the last page is
//     empty and has no token.
//
// A test starts one with New, points spireapi.Dial at SocketPath, and reads
// back what happened with Entries and Calls:
//
//	srv := spireapitest.New(t, spiffeid.RequireTrustDomainFromString("example.org"))
//	client, err := spireapi.Dial(ctx, srv.SocketPath())
//	...
//	if got := srv.Calls(); got.Writes() != 0 { t.Errorf("second pass wrote %d entries", got.Writes()) }
//
// FailWrites makes writes of one SPIFFE ID fail with a chosen code, and
// Stop/Start take the server down and bring it back on the same socket with
// its entries kept, as a restarted SPIRE server with a persistent datastore.
package spireapitest
