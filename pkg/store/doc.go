// Package store defines where agentid-server keeps its state: the
// delegations, the revision log that feeds WatchDelegations, the hash-chained
// audit log and the registry of declared agents. Store is the interface; a
// backend implements it (boltstore, the embedded default) and proves it with
// the conformance suite in storetest.
//
// Every change to delegations is one transaction holding the change, its
// entries in the revision log and its audit events:
//
//	rev, err := s.CreateDelegation(ctx, d, audit.Event{
//		Type: audit.TypeDelegationCreated, Actor: "user:" + d.User.String(), Time: now,
//	})
//	switch {
//	case errors.Is(err, store.ErrParentInactive):
//		// the parent was revoked (or expired) meanwhile: refuse the sub-delegation
//	case err != nil:
//		return err
//	}
//
// Revoking cascades to every active descendant in the same transaction, so
// a revocation racing a sub-delegation ends with either both revoked or the
// child refused:
//
//	ids, rev, err := s.RevokeDelegation(ctx, store.Revocation{ID: id, Reason: "user asked", Event: ev})
//
// A watcher (the composer's replica) takes a Snapshot, then follows Changes
// from the revision the snapshot reflects, woken by Notify. The revision log
// is bounded: a watcher that falls too far behind gets ErrCompacted and takes
// a new snapshot.
//
//	ds, rev, err := s.Snapshot(ctx)
//	notify, stop := s.Notify()
//	defer stop()
//	for range notify {
//		changes, err := s.Changes(ctx, rev, 0)
//		if errors.Is(err, store.ErrCompacted) || errors.Is(err, store.ErrFutureRevision) {
//			// start again from a Snapshot
//		}
//		// apply changes; rev = changes[len(changes)-1].Revision
//	}
//
// Listings are paged with opaque tokens (Page, ListDelegations,
// ListEvents); callers branch on the sentinel errors of errors.go, which
// every backend wraps with the offending value.
package store
