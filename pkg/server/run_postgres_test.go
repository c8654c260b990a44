package server

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/agentid/agentid/pkg/server/config"
	"github.com/agentid/agentid/pkg/spireapi/spireapitest"
	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/pgstore/pgtest"
	agentv1 "github.com/agentid/agentid/proto/agentid/agent/v1"
)

// TestRunPostgres runs agentid-server on a real PostgreSQL (store.type
// postgres, the password from a file), stops PostgreSQL under it and starts
// it again: while it is down every request fails closed with UNAVAILABLE
// saying why, /readyz is false, agentid_store_available is 0 and one log
// line says so; when it is back the server recovers by itself. Neither
// the connection string nor the password reaches the log.
func TestRunPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.CreateDatabase(t)
	spire := spireapitest.New(t, runTD)
	cfg := runConfig(t, spire)
	pwFile := filepath.Join(t.TempDir(), "pg-password")
	if err := os.WriteFile(pwFile, []byte(pg.Password()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.StoreType, cfg.StorePath = config.StorePostgres, ""
	cfg.Postgres = &config.Postgres{ConnString: pg.ConnStringWithoutPassword(db), PasswordFile: pwFile, MaxConns: 4}

	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, testLog(&logs)) }()

	waitFor(t, "the local socket", func() bool { _, err := os.Stat(cfg.LocalSocket); return err == nil })
	conn, err := grpc.NewClient("unix://"+cfg.LocalSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	agents := agentv1.NewAgentServiceClient(conn)
	waitFor(t, "the agent synced in PostgreSQL", func() bool {
		resp, err := agents.GetAgent(ctx, &agentv1.GetAgentRequest{Key: &agentv1.GetAgentRequest_Name{Name: "writer"}})
		return err == nil && resp.Agent.SyncState == agentv1.SyncState_SYNC_STATE_SYNCED
	})
	ready := func() (string, int) { return get(t, "http://"+cfg.HTTPAddr+"/readyz") }
	if body, code := ready(); code != http.StatusOK {
		t.Fatalf("/readyz = %d %q before the outage", code, body)
	}

	// PostgreSQL goes away.
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	_, err = agents.ListAgents(ctx, &agentv1.ListAgentsRequest{})
	want := "rpc error: code = Unavailable desc = failed to list agents: the store's database is unreachable; retry later"
	if status.Code(err) != codes.Unavailable || err.Error() != want {
		t.Fatalf("ListAgents while PostgreSQL is down = %v, want %q", err, want)
	}
	if body, code := ready(); code != http.StatusServiceUnavailable || body != "store not ready\n" {
		t.Fatalf("/readyz while PostgreSQL is down = %d %q", code, body)
	}
	metric := func(line string) bool {
		body, _ := get(t, "http://"+cfg.HTTPAddr+"/metrics")
		return strings.Contains(body, "\n"+line+"\n")
	}
	if !metric("agentid_store_available 0") {
		t.Error("metrics lack agentid_store_available 0 while PostgreSQL is down")
	}
	if !strings.Contains(logs.String(), "Store unavailable: failing requests closed (UNAVAILABLE) until it answers again") {
		t.Errorf("no log line says the store is unavailable:\n%s", logs.String())
	}

	// It comes back: the server recovers without a restart.
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/readyz after PostgreSQL returned", func() bool { _, code := ready(); return code == http.StatusOK })
	if _, err := agents.ListAgents(ctx, &agentv1.ListAgentsRequest{}); err != nil {
		t.Fatalf("ListAgents after PostgreSQL returned: %v", err)
	}
	if !metric("agentid_store_available 1") {
		t.Error("metrics lack agentid_store_available 1 after PostgreSQL returned")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil when its context ends", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop")
	}
	out := logs.String()
	for _, want := range []string{`"store":"postgres"`, "Store available again"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	// pgx's connection errors name the host, user and database (not
	// secrets); never the password, nor the string as configured.
	for _, secret := range []string{pg.Password(), cfg.Postgres.ConnString} {
		if strings.Contains(out, secret) {
			t.Errorf("log quotes the connection string or password (%q):\n%s", secret, out)
		}
	}
}

// TestRunRefusesPostgres: a server that cannot reach PostgreSQL at start,
// or is refused the login, does not start, and says which.
func TestRunRefusesPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.CreateDatabase(t)
	spire := spireapitest.New(t, runTD)
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		pg       config.Postgres
		want     string
		sentinel error
	}{
		{"wrong password", config.Postgres{ConnString: pg.ConnStringWithoutPassword(db), PasswordFile: wrong},
			`failed to open store: store: PostgreSQL refused the login (check the user and the password file): password authentication failed for user "postgres" (SQLSTATE 28P01)`, nil},
		{"unreachable", config.Postgres{ConnString: "host=" + t.TempDir() + " dbname=agentid user=agentid connect_timeout=2"},
			"failed to open store: store: backend unavailable: failed to connect to PostgreSQL: ", store.ErrUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := runConfig(t, spire)
			cfg.StoreType, cfg.StorePath, cfg.Postgres = config.StorePostgres, "", &tt.pg
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := Run(ctx, cfg, testLog(&syncBuffer{}))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Fatalf("Run = %v, want %q", err, tt.want)
			}
			if tt.sentinel == nil && err.Error() != tt.want {
				t.Fatalf("Run = %q, want exactly %q", err, tt.want)
			}
		})
	}
}
