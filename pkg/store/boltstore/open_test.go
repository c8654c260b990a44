package boltstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	bolt "go.etcd.io/bbolt"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
)

var (
	testT0    = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	testUser  = mustUser("https://idp.example.com", "alice")
	testAgent = spiffeid.RequireFromString("spiffe://example.org/agent/a")
)

func mustUser(iss, sub string) delegation.User {
	u, err := delegation.NewUser(iss, sub, "")
	if err != nil {
		panic(err)
	}
	return u
}

// newRoot builds a root delegation with a fresh id.
func newRoot(t testing.TB) *delegation.Delegation {
	t.Helper()
	d, err := delegation.NewRoot(delegation.RootParams{
		Agent: testAgent, User: testUser, Scopes: delegation.MustParseScopes("crm:read"),
		MaxDepth: delegation.MaxDepthLimit, CreatedAt: testT0, ExpiresAt: testT0.Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newChild(t testing.TB, parent *delegation.Delegation, agent spiffeid.ID) *delegation.Delegation {
	t.Helper()
	d, err := delegation.NewChild(parent, delegation.ChildParams{
		Agent: agent, Scopes: parent.Scopes, CreatedAt: testT0, ExpiresAt: parent.ExpiresAt,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func createdEvent(d *delegation.Delegation) audit.Event {
	return audit.Event{Time: d.CreatedAt, Type: audit.TypeDelegationCreated, Actor: "local"}
}

func mustCreate(t testing.TB, s *Store, d *delegation.Delegation) store.Revision {
	t.Helper()
	rev, err := s.CreateDelegation(context.Background(), d, createdEvent(d))
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func TestOpenRejectsOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		opts Options
		want string
	}{
		{"empty path", "", Options{}, "store: invalid argument: empty path"},
		{"negative change log limit", "a.db", Options{ChangeLogLimit: -1}, "store: invalid argument: change log limit -1 is negative"},
		{"negative batch size", "a.db", Options{MaxBatchSize: -1}, "store: invalid argument: max batch size -1 is negative"},
		{"negative lock timeout", "a.db", Options{LockTimeout: -time.Second}, "store: invalid argument: lock timeout -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path != "" {
				path = filepath.Join(dir, path)
			}
			s, err := Open(path, tt.opts)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, store.ErrInvalidArgument) || err.Error() != tt.want {
				t.Fatalf("error = %q, want %q", err, tt.want)
			}
			if path != "" {
				if _, err := os.Stat(path); !os.IsNotExist(err) {
					t.Fatalf("Open created the file despite bad options: %v", err)
				}
			}
		})
	}
}

// rawUpdate edits a closed store file with bbolt directly, as damage or an
// older or newer agentid would.
func rawUpdate(t testing.TB, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// newFile makes a store file holding one delegation and returns its path.
func newFile(t testing.TB) (string, *delegation.Delegation) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agentid.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := newRoot(t)
	mustCreate(t, s, d)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path, d
}

func TestOpenRefusesOtherFiles(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(tx *bolt.Tx) error
		want   string
		wantIs error
	}{
		{"newer schema", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keySchema, u64(SchemaVersion+1))
		}, "store: data has a newer schema version: file has version 2, this agentid reads 1", store.ErrNewerSchema},
		{"older schema", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keySchema, u64(0))
		}, "store: file has schema version 0, which this agentid cannot migrate", nil},
		{"no schema version", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Delete(keySchema)
		}, "store: file has no schema version: not an agentid store", nil},
		{"another program's file", func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket(bucketMeta); err != nil {
				return err
			}
			_, err := tx.CreateBucket([]byte("something-else"))
			return err
		}, "store: file holds other data: not an agentid store", nil},
		{"revision log cut short", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketChanges).Delete(u64(1))
		}, "store: corrupt file: revision log ends at 0, meta says 1", nil},
		{"audit log cut short", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketEvents).Delete(u64(1))
		}, "store: corrupt file: audit log ends at 0, meta says 1", nil},
		{"last audit event edited", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEvents)
			v := bytes.Replace(b.Get(u64(1)), []byte(`"actor":"local"`), []byte(`"actor":"lokal"`), 1)
			return b.Put(u64(1), v)
		}, "store: corrupt file: audit event 1 does not match the head hash", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, _ := newFile(t)
			rawUpdate(t, path, tt.edit)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(path, Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if err.Error() != tt.want || tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Fatalf("error = %q, want %q", err, tt.want)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Fatal("a refused Open changed the file")
			}
		})
	}
}

func TestOpenWaitsForLock(t *testing.T) {
	s := openTest(t, Options{})
	_, err := Open(s.Path(), Options{LockTimeout: 20 * time.Millisecond})
	want := "store: failed to open " + s.Path() + ": locked by another process after 20ms"
	if err == nil || err.Error() != want {
		t.Fatalf("second Open = %v, want %q", err, want)
	}
}

func TestReopenContinues(t *testing.T) {
	path, first := newFile(t)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetDelegation(context.Background(), first.ID)
	if err != nil || got.ID != first.ID {
		t.Fatalf("GetDelegation after reopen = %v, %v", got, err)
	}
	// Revisions and the audit chain continue where the last process left.
	if rev := mustCreate(t, s, newRoot(t)); rev != 2 {
		t.Fatalf("revision after reopen = %d, want 2", rev)
	}
	evs, _, err := s.ListEvents(context.Background(), store.EventFilter{}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.VerifySlice(evs); err != nil || len(evs) != 2 {
		t.Fatalf("audit log after reopen: %d events, %v", len(evs), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path)
}

func TestClockFillsMissingTimes(t *testing.T) {
	now := testT0.Add(10 * time.Minute)
	s := openTest(t, Options{Clock: func() time.Time { return now }})
	ctx := context.Background()
	d := newRoot(t)
	ev := createdEvent(d)
	ev.Time = time.Time{}
	if _, err := s.CreateDelegation(ctx, d, ev); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RevokeDelegation(ctx, store.Revocation{ID: d.ID, Event: audit.Event{Type: audit.TypeRevoked, Actor: "local"}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetDelegation(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.RevokedAt.Equal(now) {
		t.Errorf("RevokedAt = %s, want the clock's %s", got.RevokedAt, now)
	}
	evs, _, err := s.ListEvents(ctx, store.EventFilter{}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if !e.Time.Equal(now) {
			t.Errorf("event %d time = %s, want the clock's %s", e.Sequence, e.Time, now)
		}
	}
}

func TestChangeLogLimitLoweredOnReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agentid.db")
	s, err := Open(path, Options{ChangeLogLimit: 20})
	if err != nil {
		t.Fatal(err)
	}
	for range 12 {
		mustCreate(t, s, newRoot(t))
	}
	s.Close()
	s, err = Open(path, Options{ChangeLogLimit: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		s.Close()
		checkFile(t, path)
	}()
	// The next write compacts everything older than the new limit at once.
	if rev := mustCreate(t, s, newRoot(t)); rev != 13 {
		t.Fatalf("revision = %d, want 13", rev)
	}
	ctx := context.Background()
	if _, err := s.Changes(ctx, 7, 0); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("Changes(7) = %v, want ErrCompacted", err)
	}
	changes, err := s.Changes(ctx, 8, 0)
	if err != nil || len(changes) != 5 {
		t.Fatalf("Changes(8) = %d changes, %v; want 5", len(changes), err)
	}
}

// TestBatchRetryIsIdempotent makes bbolt re-run the writes of a batch: one
// create in the batch fails (its parent record is corrupt), bbolt rolls the
// shared transaction back and runs the others again. They must allocate the
// same revisions and audit sequence numbers from the transaction, not skip
// or repeat any.
func TestBatchRetryIsIdempotent(t *testing.T) {
	s := openTest(t, Options{MaxBatchSize: 16})
	ctx := context.Background()
	parent := newRoot(t)
	mustCreate(t, s, parent)
	good := newRoot(t)
	mustCreate(t, s, good)
	// Corrupt the parent: any read of it fails to decode.
	putRecord(t, s, parent.ID, []byte(`{"id":"broken"}`))
	other := spiffeid.RequireFromString("spiffe://example.org/agent/b")
	const n = 15
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		revs    = map[store.Revision]bool{}
		corrupt error
	)
	for i := range n + 1 {
		wg.Go(func() {
			d := newChild(t, good, other)
			if i == n {
				d = newChild(t, parent, other) // fails to decode the parent inside the batch
			}
			rev, err := s.CreateDelegation(ctx, d, createdEvent(d))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case i == n:
				corrupt = err
			case err != nil:
				t.Errorf("create %d: %v", i, err)
			default:
				revs[rev] = true
			}
		})
	}
	wg.Wait()
	if corrupt == nil || !strings.HasPrefix(corrupt.Error(), "store: corrupt delegation record at seq 0000000000000001: ") {
		t.Fatalf("create under the corrupt parent = %v", corrupt)
	}
	for r := store.Revision(3); r < 3+n; r++ {
		if !revs[r] {
			t.Fatalf("revisions %v are not 3..%d", revs, 2+n)
		}
	}
	// Repair the parent so that the cleanup's Check passes; it would
	// (rightly) report the corrupt record.
	record, err := parent.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	putRecord(t, s, parent.ID, record)
}

// putRecord overwrites the stored record of id, bypassing every check.
func putRecord(t testing.TB, s *Store, id delegation.ID, record []byte) {
	t.Helper()
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDelegations).Put(tx.Bucket(bucketIDs).Get([]byte(id.String())), record)
	}); err != nil {
		t.Fatal(err)
	}
}

func TestCheckFindsDamage(t *testing.T) {
	tests := []struct {
		name string
		edit func(tx *bolt.Tx, d *delegation.Delegation) error
		want string
	}{
		{"missing index entry", func(tx *bolt.Tx, d *delegation.Delegation) error {
			return tx.Bucket(bucketByAgent).Delete(join(agentPrefix(d.Agent.String()), u64(1)))
		}, "store: check: delegation " + "%s: no idx_agent entry"},
		{"stray index entry", func(tx *bolt.Tx, d *delegation.Delegation) error {
			return tx.Bucket(bucketByState).Put(join([]byte{stateRevoked}, u64(1)), []byte{})
		}, "store: check: idx_state: entry 720000000000000001 has no matching record"},
		{"id pointing elsewhere", func(tx *bolt.Tx, d *delegation.Delegation) error {
			return tx.Bucket(bucketIDs).Put([]byte(d.ID.String()), u64(2))
		}, "store: check: delegation %s at seq 0000000000000001: ids entry is 0000000000000002\n" +
			// The event index of the delegation now resolves elsewhere too.
			"store: check: audit event 1: no idx_event_delegation entry\n" +
			"store: check: idx_event_delegation: entry 7300000000000000010000000000000001 has no matching event"},
		{"edited event", func(tx *bolt.Tx, d *delegation.Delegation) error {
			b := tx.Bucket(bucketEvents)
			v := bytes.Replace(b.Get(u64(1)), []byte(`"actor":"local"`), []byte(`"actor":"lokal"`), 1)
			// Re-seal the edited event so that it is valid on its own: only
			// the link from the next event betrays the edit.
			var e audit.Event
			if err := e.UnmarshalJSON(v); err != nil {
				return err
			}
			e.Hash = e.ComputeHash()
			v, err := e.MarshalJSON()
			if err != nil {
				return err
			}
			return b.Put(u64(1), v)
		}, "store: check: audit log: audit: chain broken at sequence 2: " + audit.ReasonPrevHashMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, d := newFile(t)
			s, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			mustCreate(t, s, newRoot(t))
			s.Close()
			rawUpdate(t, path, func(tx *bolt.Tx) error { return tt.edit(tx, d) })
			s, err = Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			want := strings.Replace(tt.want, "%s", d.ID.String(), 1)
			if err := s.Check(context.Background()); err == nil || err.Error() != want {
				t.Fatalf("Check = %v, want %q", err, want)
			}
		})
	}
}

// TestOpenSyncs holds the settings doc.go's durability promise rests on:
// the SIGKILL crash tests cannot see a missing fsync (the kernel keeps the
// writes of a killed process), so this asserts the switches themselves.
func TestOpenSyncs(t *testing.T) {
	opts := boltOptions(DefaultLockTimeout)
	if opts.NoSync || opts.NoFreelistSync || opts.NoGrowSync || opts.ReadOnly {
		t.Fatalf("boltOptions: NoSync %v, NoFreelistSync %v, NoGrowSync %v, ReadOnly %v; want all false",
			opts.NoSync, opts.NoFreelistSync, opts.NoGrowSync, opts.ReadOnly)
	}
	for _, name := range []string{"new", "reopened"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "agentid.db")
			if name == "reopened" {
				s, err := Open(path, Options{})
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			s, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.db.NoSync || s.db.NoFreelistSync || s.db.NoGrowSync || s.db.IsReadOnly() {
				t.Fatalf("opened bbolt DB: NoSync %v, NoFreelistSync %v, NoGrowSync %v, read-only %v; want all false",
					s.db.NoSync, s.db.NoFreelistSync, s.db.NoGrowSync, s.db.IsReadOnly())
			}
		})
	}
}
