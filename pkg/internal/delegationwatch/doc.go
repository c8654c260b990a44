// Package delegationwatch is the one client of agentid-server's
// WatchDelegations stream. The composer plugin's replica of live
// delegations and the verifier's revocation watcher both follow the stream
// through it, so resuming, resyncing and staleness mean the same in both:
//
//   - a fresh watch (since_revision 0) gathers the snapshot and hands it to
//     the Replica whole at snapshot_end;
//   - after a break it resumes from the Replica's revision; the changes of
//     the backlog are not "caught up" until the first progress;
//   - OUT_OF_RANGE, a message out of the contract's order, a revision that
//     does not increase, a change type this client does not know, or a
//     change the Replica refuses: the Replica is Reset and a fresh snapshot
//     is taken (at once when the refused watch was a resumed one);
//   - a stream silent for the idle timeout (no change, no heartbeat) is
//     abandoned and redialed; the Replica decides, from the times it is
//     given, when it is too stale to answer.
//
// A Client is silent: it reports every stream that ends to Config.Ended,
// and the caller logs it in its own way.
//
//	c, err := delegationwatch.New(delegationwatch.Config[entry]{
//		Client:      delegationv1.NewDelegationServiceClient(conn),
//		Replica:     replica,
//		RevokedOnly: true,
//	})
//	go c.Run(ctx)
package delegationwatch
