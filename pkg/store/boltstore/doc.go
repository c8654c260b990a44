// Package boltstore is the embedded store.Store: one bbolt file holding the
// delegations, the revision log that feeds WatchDelegations, the hash-chained
// audit log and the agent registry.
//
// Open the file once per process (bbolt locks it) and close it on shutdown:
//
//	s, err := boltstore.Open("/var/lib/agentid/agentid.db", boltstore.Options{})
//	if err != nil {
//		return err // store.ErrNewerSchema: written by a newer agentid
//	}
//	defer s.Close()
//
//	rev, err := s.CreateDelegation(ctx, d, audit.Event{
//		Type: audit.TypeDelegationCreated, Actor: "user:" + d.User.String(), Time: now,
//	})
//
// # Durability and grouping
//
// Every write is one bbolt transaction, committed with fsync (bbolt's NoSync
// is never set): when a method returns nil, the change, its revision-log entry
// and its audit event are on disk together; when it returns an error, none of
// them is. Writes that wait at the same time share one transaction (group
// commit, see commit.go), so concurrent creates share the cost of the sync.
// A transaction may be rolled back and run again when another write of the
// same batch fails, so each write derives everything it allocates (revision,
// audit sequence, previous hash) from the transaction itself. Open also
// fsyncs the directory after creating a new file, so that the file itself
// survives a power loss.
//
// The crash tests (crash_test.go, and the end-to-end suite's SIGKILL of
// agentid-server) cover process crashes only: a killed process loses
// nothing the kernel already holds, with or without fsync. Power loss is
// covered by the fsyncs above, which no test here can observe;
// TestOpenSyncs asserts that the file is opened with them on (NoSync and
// NoFreelistSync both false).
//
// # Layout (schema version 1)
//
// A delegation is stored once, under its seq: the revision of the change
// that created it. Seqs only grow, so new records and most index entries go
// to the end of their bucket (kept 95% full), and a listing walks an index
// in creation order. All integers are 8-byte big-endian.
//
//	bucket                 key                               value
//	meta                   "schema"                          SchemaVersion
//	                       "revision"                        last revision written
//	                       "compacted"                       last revision deleted from changes
//	                       "audit_seq", "audit_hash"         sequence and hash of the last audit event
//	                       "audit_base_seq", "audit_base_hash" the last event pruned (absent: never pruned)
//	                       "audit_swept"                     the base whose events are all deleted (absent: 0)
//	delegations            seq                               delegation JSON (pkg/delegation)
//	ids                    delegation id                     seq
//	idx_user               sha256(iss NUL sub)[:16] ‖ seq    empty
//	idx_agent              sha256(agent SPIFFE ID)[:16] ‖ seq empty
//	idx_state              'a' or 'r' ‖ seq                  empty
//	idx_children           parent seq ‖ child seq            empty
//	changes                revision                          'c' (created) or 'r' (revoked) ‖ seq
//	events                 audit sequence                    audit event JSON (pkg/audit)
//	idx_event_delegation   's' ‖ delegation seq ‖ sequence    empty
//	                       'i' ‖ delegation id ‖ NUL ‖ seq.   empty (an id not stored)
//	idx_event_type         type (1 byte) ‖ sequence          empty
//	agents                 agent name                        agent JSON
//	signing_keys           "set"                             OAuth signing key set JSON (version, keys with
//	                                                         PKCS #8 private keys: protect the file)
//
// The user and agent indexes hash their text to a fixed 16 bytes; a listing
// compares the decoded record with the filter, so a collision could cost a
// wasted read but never a wrong result. Every record read back is validated
// by its decoder (pkg/delegation, pkg/audit), so a damaged record is an
// error, never a valid-looking value.
//
// The revision log keeps the last Options.ChangeLogLimit changes: each write
// deletes, in the same transaction, the entries that fell out of it (one per
// change in steady state). A Created change is stored as a pointer to the
// record; Changes returns the record as it was created, since a record only
// ever changes by revocation.
//
// # Purging expired delegations
//
// Nothing else ever deletes a delegation, so PurgeExpired is what keeps the
// file from growing forever: it deletes records that expired before a given
// time, with their index entries, up to a limit per transaction. It keeps
// every record the revision log still names (a Created change points to
// its record; see above) and every parent whose children are still stored,
// so Changes and Children stay whole. The audit events of a purged
// delegation are never deleted (the chain forbids it): their
// idx_event_delegation entries move from 's' ‖ seq to 'i' ‖ id, where
// events naming an unknown id live, and ListEvents still finds them. No
// audit event and no revision records a purge. There is no expiry index: a
// call walks records in creation order up to the first one the log names
// (purge.go has the cost). bbolt does not shrink the file: freed pages are
// reused by later writes (BenchmarkPurgeExpired).
//
// # Pruning the audit log
//
// The audit log is append-only, but not kept forever: once an operator has
// archived and verified an export up to an anchor, PruneEvents deletes the
// events up to it (prune.go). One transaction moves the base (the meta keys
// above; new optional keys, so the schema version did not change) and
// appends an audit_pruned event naming it; readers start after the base from
// that commit on. The keys are then deleted in transactions of a few
// thousand, so creates wait for one chunk at most; a crash in between leaves
// keys nobody reads, which Open deletes ("audit_swept" behind the base). The
// remaining log verifies as a chain from the base (audit.VerifyConfig.From).
//
// # Schema versions
//
// Open refuses a file whose schema version is newer than SchemaVersion
// (store.ErrNewerSchema) or older without a migration, and a bbolt file that
// is not an agentid store, without writing to it. It also checks, cheaply,
// that the last revision and the last audit event are the ones the meta
// bucket names; Check verifies the whole file (bbolt's page check, every
// index entry, the revision log, the audit chain) for tests and for
// operators after a crash or a restore.
package boltstore
