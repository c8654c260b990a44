package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/pkg/store/pgstore/pgtest"
)

// TestServer starts a cluster, checks it runs durable and as configured,
// survives a stop and a kill with what was committed, and is gone after.
func TestServer(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	db := srv.CreateDatabase(t)
	query := func(sql string) string {
		t.Helper()
		conn, err := pgx.Connect(ctx, srv.ConnString(db))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var v string
		if err := conn.QueryRow(ctx, sql).Scan(&v); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return v
	}
	for setting, want := range map[string]string{"fsync": "on", "synchronous_commit": "on", "listen_addresses": ""} {
		if got := query("SHOW " + setting); got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	srv.Exec(t, db, "CREATE TABLE t (v text)")
	srv.Exec(t, db, "INSERT INTO t VALUES ('kept')")
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, srv.ConnString(db)); err == nil {
		t.Fatal("connected to a killed server")
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if got := query("SELECT v FROM t"); got != "kept" {
		t.Fatalf("after a kill: %q", got)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if got := query("SELECT v FROM t"); got != "kept" {
		t.Fatalf("after a stop: %q", got)
	}
	// A wrong password is refused: the socket asks for one.
	bad := srv.ConnStringWithoutPassword(db) + " password=wrong"
	if conn, err := pgx.Connect(ctx, bad); err == nil {
		conn.Close(ctx)
		t.Fatal("connected with a wrong password")
	}
}
