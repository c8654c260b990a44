// Package revocation keeps a verifier's list of revoked delegations current,
// so that tokens already issued under a revoked delegation are refused before
// they expire. (SPIRE agents cache JWT-SVIDs, and an agent keeps handing out
// a cached token when renewal fails: revocation cannot rely on the issuer.)
//
// A Watcher follows agentid-server's WatchDelegations stream in revoked_only
// mode over mTLS: first a snapshot of every revoked, unexpired delegation,
// then each revocation as it commits (a cascade arrives as one change per
// delegation), and a heartbeat when there is nothing to say. It implements
// verify.RevocationChecker from memory:
//
//	conn, _ := grpc.NewClient(serverAddr, grpc.WithTransportCredentials(
//		grpccredentials.MTLSClientCredentials(x509Source, x509Source, tlsconfig.AuthorizeID(serverID))))
//	w, _ := revocation.New(revocation.Config{Client: delegationv1.NewDelegationServiceClient(conn)})
//	go w.Run(ctx)
//	v, _ := verify.New(verify.Config{..., Revocation: w})
//
// Ids are remembered until their delegation's expires_at plus Retention:
// after that every token issued under them has expired anyway. An id the
// server sends without expires_at is remembered until the Watcher stops.
//
// The stream can break. The Watcher follows it through agentid's one
// WatchDelegations client (pkg/internal/delegationwatch, shared with the
// composer plugin): it reconnects with jittered backoff and resumes from
// the last revision it applied; when the server answers OUT_OF_RANGE (it no
// longer holds that history), or breaks the protocol (a change type this
// client does not know among them), it takes a fresh snapshot, keeping what
// it knew meanwhile. A stream silent for MaxStaleness is redialed. If
// nothing arrives for MaxStaleness (30 s, three heartbeats) it fails
// closed: Revoked returns ErrStale and verifiers refuse delegated tokens
// until the stream is back; the backlog of a resumed stream does not count
// as contact until the server's first heartbeat says it is all sent.
// OnStale: FailOpen trades that for availability.
package revocation
