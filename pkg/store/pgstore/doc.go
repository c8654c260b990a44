// Package pgstore is the PostgreSQL store.Store, for agentid-server replicas
// that share one database: the delegations, the revision log that feeds
// WatchDelegations, the hash-chained audit log, the agent registry and the
// OAuth signing keys, with the semantics of boltstore (the same conformance
// suite, pkg/store/storetest, runs against both).
//
//	s, err := pgstore.Open(ctx, pgstore.Config{
//		ConnString:   "host=db.example.com dbname=agentid user=agentid sslmode=verify-full sslrootcert=/etc/agentid/pg-ca.pem",
//		PasswordFile: "/run/secrets/agentid-pg-password",
//	})
//	if err != nil {
//		return err // store.ErrNewerSchema, store.ErrUnavailable, or what is wrong with the config
//	}
//	defer s.Close()
//
// # Connection and secrets
//
// The connection string is libpq's (key=value pairs or a postgres:// URL,
// parsed by pgx v5). Put the password in a file (Config.PasswordFile,
// re-read at each new connection, so a rotated Secret needs no restart),
// never on a command line; neither the string nor the password is ever
// logged or put in an error. Use sslmode=verify-full with sslrootcert
// naming the server's CA for a database across a network: the other modes
// do not check that the server is the one named by host.
//
// # Several replicas
//
// Every write transaction of every replica first locks the single row of
// agentid_meta, which holds the revision counter and the audit head, so
// revisions are numbered from 1 without gaps across replicas and the audit
// chain has one order and cannot fork. Each replica groups the writes
// waiting at once into one transaction (commit.go), so the lock and the WAL
// flush are paid once per group. A commit that changed delegations sends
// NOTIFY agentid_changes; every replica LISTENs and wakes its Notify
// subscribers, and reads the revision every Config.PollInterval in case a
// notification was lost: the agentid_changes table is the truth, a lost
// notification costs latency only.
//
// # Failure
//
// A database that cannot be reached (refused, reset, shutting down,
// starting up) makes every call fail with an error wrapping
// store.ErrUnavailable; nothing is known to be written, and the store
// recovers by itself when the database returns (pgx reconnects). A group
// whose COMMIT was lost in flight may have committed, so it is reported
// failed to its callers and never retried: a caller that retries a create
// gets store.ErrAlreadyExists if the first one landed.
//
// # Schema
//
// The schema is versioned (schema.go: an ordered list of migrations and a
// one-row agentid_schema table). Open applies the missing migrations in one
// transaction under an advisory lock, so replicas starting together migrate
// once and a failed migration leaves the database as it was. A database
// whose version is newer than this package's is refused
// (store.ErrNewerSchema), as are agentid tables without a version. Tables
// are prefixed agentid_ so the database may be shared, with SPIRE's own
// datastore for one. Records are the JSON encodings boltstore stores, so an
// audit event hashes alike from either backend.
package pgstore
