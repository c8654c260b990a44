package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/store"
)

// SchemaVersion is the layout this package reads and writes (see doc.go). A
// file with a higher version is refused with store.ErrNewerSchema.
const SchemaVersion = 1

// Defaults of Options.
const (
	// DefaultChangeLogLimit keeps the last 100,000 changes: hours of history
	// for a busy server, so a watcher that reconnects after a restart resumes
	// instead of downloading a snapshot.
	DefaultChangeLogLimit = 100_000
	// DefaultMaxBatchSize lets up to 128 waiting writes share one
	// transaction (one pair of fsyncs). It only bounds the size of a
	// transaction: a write never waits for a batch to fill (see commit.go).
	DefaultMaxBatchSize = 128
	// DefaultLockTimeout bounds how long Open waits for the file lock held by
	// another process (another agentid-server on the same volume).
	DefaultLockTimeout = 5 * time.Second
)

// Options configure Open. The zero value is ready to use.
type Options struct {
	// Clock gives the time for a revocation or an audit event recorded
	// without one. Default time.Now; tests inject a fixed clock.
	Clock func() time.Time
	// ChangeLogLimit is how many of the most recent changes Changes can
	// return; older ones are deleted inside the write transactions that add
	// new ones. 0 means DefaultChangeLogLimit.
	ChangeLogLimit int
	// MaxBatchSize is the most waiting writes committed together in one
	// transaction; 0 means DefaultMaxBatchSize. 1 commits every write alone.
	MaxBatchSize int
	// LockTimeout is how long Open waits for the file lock; 0 means
	// DefaultLockTimeout.
	LockTimeout time.Duration
}

// Store is the bbolt implementation of store.Store. It is safe for
// concurrent use. Open it with Open and Close it when done.
type Store struct {
	db             *bolt.DB
	committer      *committer
	path           string
	clock          func() time.Time
	changeLogLimit uint64
	closed         atomic.Bool
	// sweepMu lets one deletion of pruned audit events run at a time.
	sweepMu    sync.Mutex
	pruneChunk int // defaultPruneChunk; lowered by tests

	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

var _ store.Store = (*Store)(nil)

// Open opens (or creates, mode 0600) the store file at path. It refuses a
// file written by a newer schema (store.ErrNewerSchema) and a file another
// process holds open past Options.LockTimeout.
func Open(path string, opts Options) (*Store, error) {
	switch {
	case path == "":
		return nil, fmt.Errorf("%w: empty path", store.ErrInvalidArgument)
	case opts.ChangeLogLimit < 0:
		return nil, fmt.Errorf("%w: change log limit %d is negative", store.ErrInvalidArgument, opts.ChangeLogLimit)
	case opts.MaxBatchSize < 0:
		return nil, fmt.Errorf("%w: max batch size %d is negative", store.ErrInvalidArgument, opts.MaxBatchSize)
	case opts.LockTimeout < 0:
		return nil, fmt.Errorf("%w: lock timeout %s is negative", store.ErrInvalidArgument, opts.LockTimeout)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.ChangeLogLimit == 0 {
		opts.ChangeLogLimit = DefaultChangeLogLimit
	}
	if opts.MaxBatchSize == 0 {
		opts.MaxBatchSize = DefaultMaxBatchSize
	}
	if opts.LockTimeout == 0 {
		opts.LockTimeout = DefaultLockTimeout
	}

	_, statErr := os.Stat(path) //nolint:gosec // the operator's configured store path; opening the operator's file is the point
	created := errors.Is(statErr, os.ErrNotExist)
	db, err := bolt.Open(path, 0o600, boltOptions(opts.LockTimeout))
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("store: failed to open %s: locked by another process after %s", path, opts.LockTimeout)
		}
		return nil, fmt.Errorf("store: failed to open %s: %w", path, err)
	}
	if err := db.Update(initSchema); err != nil {
		db.Close()
		return nil, err
	}
	if created {
		// bbolt syncs the file, not the directory entry naming it: without
		// this, a power loss right after the first acknowledged write could
		// leave no file at all.
		if err := syncDir(filepath.Dir(path)); err != nil {
			db.Close()
			return nil, fmt.Errorf("store: failed to sync the directory of %s: %w", path, err)
		}
	}
	s := &Store{
		db:             db,
		committer:      newCommitter(db, opts.MaxBatchSize),
		path:           path,
		clock:          opts.Clock,
		changeLogLimit: uint64(opts.ChangeLogLimit),
		subs:           make(map[chan struct{}]struct{}),
		pruneChunk:     defaultPruneChunk,
	}
	// A prune interrupted by a crash left events and index entries at or
	// below the base that nobody reads: delete them now, in chunks, before
	// anyone writes (nothing to do when the last sweep finished).
	if _, err := s.sweepPruned(); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: failed to finish deleting pruned audit events in %s: %w", path, err)
	}
	return s, nil
}

// boltOptions are the bbolt options Open uses. Durability rests on the
// zero values of two of them: NoSync false (every commit is fsynced before
// it returns) and NoFreelistSync false (the freelist is written with each
// commit, so a reopened file needs no freelist rebuild and bbolt's check
// sees it). TestOpenSyncs holds them there.
func boltOptions(lockTimeout time.Duration) *bolt.Options {
	return &bolt.Options{
		Timeout: lockTimeout,
		// The hashmap freelist stays fast when a large file has many free
		// pages; the array one degrades (bbolt's docs, etcd's choice).
		FreelistType: bolt.FreelistMapType,
	}
}

// syncDir fsyncs a directory, making the entries created in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir) //nolint:gosec // the directory of the operator's configured store path
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

// initSchema checks the schema version of an existing file before touching
// anything, and creates the buckets of a new one.
func initSchema(tx *bolt.Tx) error {
	if meta := tx.Bucket(bucketMeta); meta != nil {
		v := meta.Get(keySchema)
		if len(v) != 8 {
			return errors.New("store: file has no schema version: not an agentid store")
		}
		switch version := binary.BigEndian.Uint64(v); {
		case version > SchemaVersion:
			return fmt.Errorf("%w: file has version %d, this agentid reads %d", store.ErrNewerSchema, version, SchemaVersion)
		case version < SchemaVersion:
			return fmt.Errorf("store: file has schema version %d, which this agentid cannot migrate", version)
		}
		if err := checkHeads(tx); err != nil {
			return err
		}
	} else if c := tx.Cursor(); func() bool { k, _ := c.First(); return k != nil }() {
		return errors.New("store: file holds other data: not an agentid store")
	}
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("store: failed to create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keySchema) == nil {
		if err := meta.Put(keySchema, u64(SchemaVersion)); err != nil {
			return fmt.Errorf("store: failed to write schema version: %w", err)
		}
	}
	return nil
}

// checkHeads is the cheap part of Check that Open runs: the last revision and
// the last audit event stored are the ones the meta bucket names. bbolt
// commits a transaction whole or not at all, so a mismatch means the file was
// edited or damaged, not that a write was interrupted.
func checkHeads(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	rev, err := readU64(meta.Get(keyRevision))
	if err != nil {
		return err
	}
	compacted, err := readU64(meta.Get(keyCompacted))
	if err != nil {
		return err
	}
	var last uint64
	if changes := tx.Bucket(bucketChanges); changes != nil {
		if k, _ := changes.Cursor().Last(); len(k) == 8 {
			last = binary.BigEndian.Uint64(k)
		}
	}
	if rev > compacted && last != rev {
		return fmt.Errorf("store: corrupt file: revision log ends at %d, meta says %d", last, rev)
	}
	seq, err := readU64(meta.Get(keyAuditSeq))
	if err != nil {
		return err
	}
	last = 0
	var lastEvent []byte
	if events := tx.Bucket(bucketEvents); events != nil {
		var k []byte
		if k, lastEvent = events.Cursor().Last(); len(k) == 8 {
			last = binary.BigEndian.Uint64(k)
		}
	}
	if last != seq {
		return fmt.Errorf("store: corrupt file: audit log ends at %d, meta says %d", last, seq)
	}
	base, swept, err := readPruneState(meta)
	if err != nil {
		return err
	}
	if base.Sequence >= seq && !base.IsZero() || swept > base.Sequence {
		return fmt.Errorf("store: corrupt file: audit base %d, deleted through %d, last event %d", base.Sequence, swept, seq)
	}
	if seq > 0 {
		var e audit.Event
		if err := e.UnmarshalJSON(lastEvent); err != nil {
			return fmt.Errorf("store: corrupt audit event %d: %w", seq, err)
		}
		if !bytes.Equal(e.Hash[:], meta.Get(keyAuditHash)) || e.ComputeHash() != e.Hash {
			return fmt.Errorf("store: corrupt file: audit event %d does not match the head hash", seq)
		}
	}
	return nil
}

// Path returns the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Close closes the file and every channel Notify returned. Calling it again
// is a no-op.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.committer.close()
	s.mu.Lock()
	for ch := range s.subs {
		close(ch)
		delete(s.subs, ch)
	}
	s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: failed to close: %w", err)
	}
	return nil
}

// Notify implements store.Store. The channel has a buffer of one: signals
// that arrive while the reader is busy coalesce into one. It is closed by the
// returned stop function and by Close.
func (s *Store) Notify() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		close(ch)
		return ch, func() {}
	}
	s.subs[ch] = struct{}{}
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.subs[ch]; ok {
			delete(s.subs, ch)
			close(ch)
		}
	}
}

// notify wakes every subscriber after a committed change.
func (s *Store) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default: // a signal is already pending
		}
	}
}

// begin rejects a call on a closed store or with a finished context.
func (s *Store) begin(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

// boltErr maps bbolt's errors on a closed database to store.ErrClosed and
// wraps bbolt's other errors (a failed commit or sync) with what failed.
// Errors made by this package pass unchanged: they already say what failed.
func boltErr(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bolterrors.ErrDatabaseNotOpen) || errors.Is(err, bolterrors.ErrTxClosed):
		return store.ErrClosed
	case strings.HasPrefix(err.Error(), "store: "):
		return err
	}
	return fmt.Errorf("store: failed to %s: %w", what, err)
}
