package pgstore

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/pgstore/pgtest"
	"github.com/agentid/agentid/pkg/store/storetest"
)

// cluster is the one PostgreSQL cluster of this package's tests (started
// by the first test that needs it, stopped by TestMain): one initdb for
// the package, a database per test.
var (
	clusterOnce sync.Once
	cluster     *pgtest.Server
	clusterErr  error
)

// server returns the package's cluster, starting it on first use.
func server(t testing.TB) *pgtest.Server {
	t.Helper()
	pgtest.Require(t)
	clusterOnce.Do(func() { cluster, clusterErr = pgtest.New() })
	if clusterErr != nil {
		t.Fatalf("pgtest: %v", clusterErr)
	}
	return cluster
}

func TestMain(m *testing.M) {
	code := m.Run()
	if cluster != nil {
		cluster.Close()
	}
	os.Exit(code)
}

// openTest opens a store on a new database and, at cleanup, closes it and
// runs Check on a fresh store of the same database.
func openTest(t testing.TB, config Config) (*Store, string) {
	t.Helper()
	dsn := server(t).NewDatabase(t)
	config.ConnString = dsn
	s, err := Open(context.Background(), config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		check(t, dsn)
	})
	return s, dsn
}

// check opens the database again and runs Check on it.
func check(t testing.TB, dsn string) {
	t.Helper()
	s, err := Open(context.Background(), Config{ConnString: dsn})
	if err != nil {
		t.Fatalf("reopen for check: %v", err)
	}
	defer s.Close()
	if err := s.Check(context.Background()); err != nil {
		t.Errorf("check after test: %v", err)
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB) store.Store {
		s, _ := openTest(t, Config{ChangeLogLimit: storetest.ChangeLogLimit})
		return s
	})
}

func TestSigningKeysConformance(t *testing.T) {
	storetest.RunSigningKeys(t, func(t testing.TB) storetest.SigningKeyStore {
		s, _ := openTest(t, Config{})
		return s
	})
}
