// Package storetest is the conformance suite of store.Store: every backend
// runs it from its own tests, so the server can swap backends without
// knowing which one it has.
//
// A backend's test hands Run a factory that opens an empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t testing.TB) store.Store {
//			s, err := boltstore.Open(filepath.Join(t.TempDir(), "agentid.db"),
//				boltstore.Options{ChangeLogLimit: storetest.ChangeLogLimit})
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The factory must keep ChangeLogLimit changes in the revision log, so that
// the suite reaches ErrCompacted quickly, and Close must be idempotent. The
// cleanup is also the place for the backend's own consistency check.
//
// The suite covers every method: creation and the exact sentinel errors of
// refused calls (and that a refused call writes nothing: no record, no
// revision, no audit event), listing with each filter and their
// combinations, paging across inserts, children, revocation with cascade and
// its events, a revocation racing sub-delegations (no child is ever left
// active under a revoked parent), purging expired delegations (gone from
// every read, their events kept, the log and children kept whole), the snapshot and the revision log with its
// compaction, notifications, the audit log with its filters and paging,
// pruning the audit log through an anchor (every listing starts after the
// base, the prune is recorded and chained, refusals name their sentinel and
// write nothing), the agent registry, canceled contexts and use after Close.
// After every test the suite verifies the whole audit log as a hash chain
// from its base (AuditBase) to its head. All times are fixed (T0), so
// nothing depends on the clock; concurrent tests wait only for their own
// goroutines.
//
// ErrorStore is the suite's other half, for the store's callers: it wraps a
// real store and fails the calls a test queues (SetNextError,
// AppendNextError), as SPIRE's fake datastore does, so a handler's
// store-failure path runs against a real store rather than a mock:
//
//	faults := storetest.NewErrorStore(st)
//	faults.AppendNextError(nil, errors.New("disk gone")) // the second call fails
package storetest
