package pgstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/pgstore/pgtest"
)

// TestOpenRefuses: every bad configuration is refused with an error naming
// what is wrong and never quoting a password, and writes nothing.
func TestOpenRefuses(t *testing.T) {
	srv := server(t)
	db := srv.CreateDatabase(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	const secret = "s3cret-Pa55word"
	for _, tt := range []struct {
		name      string
		config    Config
		want      string
		sentinel  error
		unchanged bool
	}{
		{name: "empty", config: Config{}, want: "store: invalid argument: empty connection string", sentinel: store.ErrInvalidArgument},
		{
			name:     "bad port",
			config:   Config{ConnString: "host=/tmp port=notaport password=" + secret},
			want:     `store: invalid argument: malformed PostgreSQL connection string (not shown: it may hold a password): invalid port`,
			sentinel: store.ErrInvalidArgument,
		},
		{
			name:     "bad URL",
			config:   Config{ConnString: "postgres://agentid:" + secret + "%zz@db.example.com/agentid"},
			want:     "store: invalid argument: malformed PostgreSQL connection string (not shown: it may hold a password): failed to parse as URL",
			sentinel: store.ErrInvalidArgument,
		},
		{
			name:     "bad timeout",
			config:   Config{ConnString: "host=/tmp connect_timeout=soon password=" + secret},
			want:     `store: invalid argument: malformed PostgreSQL connection string (not shown: it may hold a password): invalid connect_timeout (strconv.ParseInt: parsing "soon": invalid syntax)`,
			sentinel: store.ErrInvalidArgument,
		},
		{
			name:     "unknown sslmode",
			config:   Config{ConnString: "host=db.example.com sslmode=sometimes"},
			want:     "store: invalid argument: malformed PostgreSQL connection string (not shown: it may hold a password): failed to configure TLS (sslmode is invalid)",
			sentinel: store.ErrInvalidArgument,
		},
		{
			name:   "missing password file",
			config: Config{ConnString: srv.ConnStringWithoutPassword(db), PasswordFile: filepath.Join(dir, "nope")},
			want:   "store: failed to read the PostgreSQL password file: open " + filepath.Join(dir, "nope") + ": no such file or directory",
		},
		{
			name:   "empty password file",
			config: Config{ConnString: srv.ConnStringWithoutPassword(db), PasswordFile: write("empty", "\n")},
			want:   "store: PostgreSQL password file " + filepath.Join(dir, "empty") + " is empty",
		},
		{
			name:   "wrong password",
			config: Config{ConnString: srv.ConnStringWithoutPassword(db), PasswordFile: write("wrong", secret+"\n")},
			want:   `store: PostgreSQL refused the login (check the user and the password file): password authentication failed for user "postgres" (SQLSTATE 28P01)`,
		},
		{
			name:     "negative limit",
			config:   Config{ConnString: srv.ConnString(db), ChangeLogLimit: -1},
			want:     "store: invalid argument: change log limit -1 is negative",
			sentinel: store.ErrInvalidArgument,
		},
		{
			name:     "too few connections",
			config:   Config{ConnString: srv.ConnString(db), MaxConns: 2},
			want:     "store: invalid argument: max connections 2: at least 3",
			sentinel: store.ErrInvalidArgument,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(context.Background(), tt.config)
			if err == nil {
				s.Close()
				t.Fatalf("Open succeeded, want %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("Open: %q\nwant  %q", err, tt.want)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("Open: %v does not wrap %v", err, tt.sentinel)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), srv.Password()) {
				t.Errorf("Open's error quotes a password: %v", err)
			}
		})
	}
	// Nothing was created by the refused opens.
	if n := countTables(t, srv.ConnString(db)); n != 0 {
		t.Errorf("%d agentid tables after refused opens, want 0", n)
	}
}

// TestOpenUnreachable: a server that is not there is store.ErrUnavailable
// within the connect timeout.
func TestOpenUnreachable(t *testing.T) {
	pgtest.Require(t)
	dir := t.TempDir()
	start := time.Now()
	_, err := Open(context.Background(), Config{ConnString: "host=" + dir + " dbname=agentid user=agentid", ConnectTimeout: 2 * time.Second})
	if !errors.Is(err, store.ErrUnavailable) || !strings.HasPrefix(err.Error(), "store: backend unavailable: failed to connect to PostgreSQL: ") {
		t.Fatalf("Open: %v, want store.ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open took %v, want within the 2 s connect timeout", d)
	}
}

// TestOpenRefusesNewerSchema: a database a newer agentid migrated is not
// touched.
func TestOpenRefusesNewerSchema(t *testing.T) {
	srv := server(t)
	db := srv.CreateDatabase(t)
	s, err := Open(context.Background(), Config{ConnString: srv.ConnString(db)})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	srv.Exec(t, db, "UPDATE agentid_schema SET version = 99")
	_, err = Open(context.Background(), Config{ConnString: srv.ConnString(db)})
	want := "store: data has a newer schema version: database has version 99, this agentid reads 2"
	if !errors.Is(err, store.ErrNewerSchema) || err.Error() != want {
		t.Fatalf("Open: %v, want %q", err, want)
	}
}

// TestOpenHalfMigrated: a schema that is not what its version says is
// refused, never migrated further.
func TestOpenHalfMigrated(t *testing.T) {
	srv := server(t)
	t.Run("TablesWithoutVersion", func(t *testing.T) {
		db := srv.CreateDatabase(t)
		srv.Exec(t, db, "CREATE TABLE agentid_meta (singleton boolean PRIMARY KEY)")
		_, err := Open(context.Background(), Config{ConnString: srv.ConnString(db)})
		want := "store: corrupt database: agentid tables exist but agentid_schema holds no version (a partial restore?); restore a whole backup or use an empty database"
		if err == nil || err.Error() != want {
			t.Fatalf("Open: %v, want %q", err, want)
		}
		if n := countTables(t, srv.ConnString(db)); n != 1 {
			t.Errorf("%d agentid tables, want only the one made by hand", n)
		}
	})
	t.Run("VersionWithoutTables", func(t *testing.T) {
		db := srv.CreateDatabase(t)
		srv.Exec(t, db, "CREATE TABLE agentid_schema (version integer NOT NULL); INSERT INTO agentid_schema VALUES (2)")
		_, err := Open(context.Background(), Config{ConnString: srv.ConnString(db)})
		want := `store: failed to read revision: ERROR: relation "agentid_meta" does not exist (SQLSTATE 42P01)`
		if err == nil || err.Error() != want {
			t.Fatalf("Open: %v, want %q", err, want)
		}
	})
	t.Run("FailedMigrationLeavesNothing", func(t *testing.T) {
		// A migration that fails halfway (here the second, after a
		// statement that succeeded) is rolled back whole with every
		// version before it in the same run: the database stays as it was.
		db := srv.CreateDatabase(t)
		pool, err := pgxpool.New(context.Background(), srv.ConnString(db))
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		broken := []string{migrations[0], "CREATE TABLE agentid_half (x int); SELECT no_such_column FROM agentid_meta"}
		err = migrate(context.Background(), pool, broken)
		want := `store: failed to migrate the schema to version 2: ERROR: column "no_such_column" does not exist (SQLSTATE 42703)`
		if err == nil || err.Error() != want {
			t.Fatalf("migrate: %v, want %q", err, want)
		}
		if n := countTables(t, srv.ConnString(db)); n != 0 {
			t.Errorf("%d agentid tables after a failed migration, want 0", n)
		}
		s, err := Open(context.Background(), Config{ConnString: srv.ConnString(db)})
		if err != nil {
			t.Fatalf("Open after the failed migration: %v", err)
		}
		s.Close()
		check(t, srv.ConnString(db))
	})
}

// countTables counts the tables whose name starts with agentid_.
func countTables(t *testing.T, dsn string) int {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_tables WHERE tablename LIKE 'agentid\_%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
