package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentid/agentid/pkg/store"
)

// migrations are the schema's versions in order: migrations[i] takes a
// database from version i to i+1. A version, once released, is never
// edited: a change is a new entry. SchemaVersion is their number.
//
// Every table is prefixed agentid_, so the database (or schema) may be
// shared with other programs, SPIRE's own datastore included. Times that
// are compared (expiry) are Unix nanoseconds, as the store's callers give
// them (timestamptz keeps microseconds); the records themselves are the
// JSON encodings boltstore stores, byte for byte, so an audit event's hash
// and a delegation read back are the same from either backend.
var migrations = []string{
	// 1: the first schema.
	`
CREATE TABLE agentid_meta (
	singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	revision        bigint NOT NULL, -- the last revision written
	compacted       bigint NOT NULL, -- the last revision deleted from agentid_changes
	audit_seq       bigint NOT NULL, -- the sequence of the last audit event
	audit_hash      bytea  NOT NULL, -- its hash ('' for an empty log)
	audit_base_seq  bigint NOT NULL, -- the last event pruned (0: never pruned)
	audit_base_hash bytea  NOT NULL,
	audit_swept     bigint NOT NULL  -- the base whose events are all deleted
);
INSERT INTO agentid_meta VALUES (true, 0, 0, 0, '', 0, '', 0);

-- seq is the revision that created the delegation.
CREATE TABLE agentid_delegations (
	seq          bigint PRIMARY KEY,
	id           text   NOT NULL UNIQUE,
	parent_seq   bigint REFERENCES agentid_delegations (seq),
	user_issuer  text   NOT NULL,
	user_subject text   NOT NULL,
	agent        text   NOT NULL,
	state        smallint NOT NULL, -- 1 active, 2 revoked (delegation.State)
	expires_at   bigint NOT NULL,   -- Unix nanoseconds
	record       bytea  NOT NULL    -- delegation.Delegation's JSON
);
CREATE INDEX agentid_delegations_user ON agentid_delegations (user_issuer, user_subject, seq);
CREATE INDEX agentid_delegations_agent ON agentid_delegations (agent, seq);
CREATE INDEX agentid_delegations_state ON agentid_delegations (state, seq);
CREATE INDEX agentid_delegations_parent ON agentid_delegations (parent_seq, seq);
CREATE INDEX agentid_delegations_expiry ON agentid_delegations (expires_at);

CREATE TABLE agentid_changes (
	revision bigint PRIMARY KEY,
	kind     smallint NOT NULL, -- 1 created, 2 revoked (store.ChangeKind)
	seq      bigint NOT NULL REFERENCES agentid_delegations (seq)
);
CREATE INDEX agentid_changes_seq ON agentid_changes (seq);

CREATE TABLE agentid_events (
	seq           bigint PRIMARY KEY,
	type          smallint NOT NULL,
	delegation_id text,
	record        bytea NOT NULL -- audit.Event's JSON, sealed
);
CREATE INDEX agentid_events_delegation ON agentid_events (delegation_id, seq) WHERE delegation_id IS NOT NULL;
CREATE INDEX agentid_events_type ON agentid_events (type, seq);

CREATE TABLE agentid_agents (
	name   text COLLATE "C" PRIMARY KEY,
	record bytea NOT NULL
);
`,
	// 2: the OAuth signing key set (store.SigningKeySet), one row whose
	// version SwapSigningKeys compares and moves in one UPDATE.
	`
CREATE TABLE agentid_signing_keys (
	singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	version   bigint NOT NULL,
	keys      bytea  NOT NULL -- the keys' JSON, as boltstore's record
);
INSERT INTO agentid_signing_keys VALUES (true, 0, '[]');
`,
}

// SchemaVersion is the schema this package reads and writes. A database
// with a higher version is refused with store.ErrNewerSchema.
var SchemaVersion = len(migrations)

// migrationLock is the key of the advisory lock held while migrating:
// replicas starting together wait for the first to finish.
const migrationLock = 0x61676e7469640001 // "agntid" 0001

// migrate brings the database to SchemaVersion in one transaction, or
// refuses it.
func migrate(ctx context.Context, pool *pgxpool.Pool, migrations []string) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return migrateTx(ctx, tx, migrations)
	})
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case strings.HasPrefix(err.Error(), "store: "):
		return err
	case errors.As(err, &pe) && strings.HasPrefix(pe.Code, "28"): // invalid authorization
		return fmt.Errorf("store: PostgreSQL refused the login (check the user and the password file): %s (SQLSTATE %s)", pe.Message, pe.Code)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: failed to connect to PostgreSQL: %w", store.ErrUnavailable, err)
	case unavailable(err):
		return fmt.Errorf("%w: failed to connect to PostgreSQL: %w", store.ErrUnavailable, err)
	}
	return fmt.Errorf("store: failed to prepare the PostgreSQL schema: %w", err)
}

func migrateTx(ctx context.Context, tx pgx.Tx, migrations []string) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS agentid_schema (version integer NOT NULL)"); err != nil {
		return err
	}
	var versions []int
	rows, err := tx.Query(ctx, "SELECT version FROM agentid_schema")
	if err != nil {
		return err
	}
	versions, err = pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return err
	}
	version := 0
	switch len(versions) {
	case 0:
		// Tables without a version: a partial restore, or tables made by
		// hand. Migrating would fail on the first CREATE, or worse, succeed
		// on a mix: say what is wrong instead.
		var meta *string
		if err := tx.QueryRow(ctx, "SELECT to_regclass('agentid_meta')::text").Scan(&meta); err != nil {
			return err
		}
		if meta != nil {
			return fmt.Errorf("store: corrupt database: agentid tables exist but agentid_schema holds no version (a partial restore?); restore a whole backup or use an empty database")
		}
		if _, err := tx.Exec(ctx, "INSERT INTO agentid_schema VALUES (0)"); err != nil {
			return err
		}
	case 1:
		version = versions[0]
	default:
		return fmt.Errorf("store: corrupt database: agentid_schema has %d rows", len(versions))
	}
	if version > len(migrations) {
		return fmt.Errorf("%w: database has version %d, this agentid reads %d", store.ErrNewerSchema, version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		if _, err := tx.Exec(ctx, migrations[v]); err != nil {
			return fmt.Errorf("store: failed to migrate the schema to version %d: %w", v+1, err)
		}
	}
	if version < len(migrations) {
		if _, err := tx.Exec(ctx, "UPDATE agentid_schema SET version = $1", len(migrations)); err != nil {
			return err
		}
	}
	return nil
}
