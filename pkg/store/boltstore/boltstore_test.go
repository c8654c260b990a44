package boltstore

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/storetest"
)

// openTest opens a store in t.TempDir() and, at cleanup, closes it and runs
// Check on the reopened file: bbolt's consistency check, the indexes and the
// audit chain.
func openTest(t testing.TB, opts Options) *Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agentid.db")
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		checkFile(t, path)
	})
	return s
}

// checkFile reopens a closed store file and runs Check on it.
func checkFile(t testing.TB, path string) {
	t.Helper()
	s, err := Open(path, Options{})
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
		return openTest(t, Options{ChangeLogLimit: storetest.ChangeLogLimit})
	})
}

func TestSigningKeysConformance(t *testing.T) {
	storetest.RunSigningKeys(t, func(t testing.TB) storetest.SigningKeyStore {
		return openTest(t, Options{})
	})
}
