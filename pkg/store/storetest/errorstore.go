package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
)

// ErrorStore wraps a store.Store and fails calls on demand, as SPIRE's fake
// datastore does with SetNextError: tests of a store's callers use it to
// reach their store-failure paths on a real store.
//
// Errors are queued: each call of a method that can fail takes the next
// queued error, and a nil error lets that call through. A failed call never
// reaches the wrapped store, so it writes nothing, as a store that refuses a
// call must not. Notify and Close are never failed. With nothing queued
// every call goes through at the cost of one atomic load.
type ErrorStore struct {
	store.Store

	queued atomic.Int64 // len(next), read without the lock
	mu     sync.Mutex
	next   []error
	failed []string // methods that returned a queued error, in order
}

// NewErrorStore wraps s.
func NewErrorStore(s store.Store) *ErrorStore { return &ErrorStore{Store: s} }

// SetNextError makes the next call fail with err, dropping whatever was
// queued before. SetNextError(nil) clears the queue.
func (s *ErrorStore) SetNextError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = s.next[:0]
	if err != nil {
		s.next = append(s.next, err)
	}
	s.queued.Store(int64(len(s.next)))
}

// AppendNextError queues errs after those already queued, one per call, in
// order; a nil lets its call through, so AppendNextError(nil, err) fails
// the second call.
func (s *ErrorStore) AppendNextError(errs ...error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = append(s.next, errs...)
	s.queued.Store(int64(len(s.next)))
}

// Pending returns how many queued errors no call has taken yet. A test that
// expects its call to reach the failure checks that it is 0 afterwards.
func (s *ErrorStore) Pending() int {
	return int(s.queued.Load())
}

// Failed returns the methods that returned a queued error, in order, and
// forgets them.
func (s *ErrorStore) Failed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.failed
	s.failed = nil
	return out
}

// take returns the error queued for this call of method, if any.
func (s *ErrorStore) take(method string) error {
	if s.queued.Load() == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.next) == 0 {
		return nil
	}
	err := s.next[0]
	s.next = s.next[1:]
	s.queued.Store(int64(len(s.next)))
	if err != nil {
		s.failed = append(s.failed, method)
	}
	return err
}

// CreateDelegation implements store.Store.
func (s *ErrorStore) CreateDelegation(ctx context.Context, d *delegation.Delegation, ev audit.Event) (store.Revision, error) {
	if err := s.take("CreateDelegation"); err != nil {
		return 0, err
	}
	return s.Store.CreateDelegation(ctx, d, ev)
}

// GetDelegation implements store.Store.
func (s *ErrorStore) GetDelegation(ctx context.Context, id delegation.ID) (*delegation.Delegation, error) {
	if err := s.take("GetDelegation"); err != nil {
		return nil, err
	}
	return s.Store.GetDelegation(ctx, id)
}

// ListDelegations implements store.Store.
func (s *ErrorStore) ListDelegations(ctx context.Context, f store.Filter, p store.Page) ([]*delegation.Delegation, string, error) {
	if err := s.take("ListDelegations"); err != nil {
		return nil, "", err
	}
	return s.Store.ListDelegations(ctx, f, p)
}

// Children implements store.Store.
func (s *ErrorStore) Children(ctx context.Context, id delegation.ID) ([]*delegation.Delegation, error) {
	if err := s.take("Children"); err != nil {
		return nil, err
	}
	return s.Store.Children(ctx, id)
}

// RevokeDelegation implements store.Store.
func (s *ErrorStore) RevokeDelegation(ctx context.Context, r store.Revocation) ([]delegation.ID, store.Revision, error) {
	if err := s.take("RevokeDelegation"); err != nil {
		return nil, 0, err
	}
	return s.Store.RevokeDelegation(ctx, r)
}

// PurgeExpired implements store.Store.
func (s *ErrorStore) PurgeExpired(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := s.take("PurgeExpired"); err != nil {
		return 0, err
	}
	return s.Store.PurgeExpired(ctx, before, limit)
}

// Snapshot implements store.Store.
func (s *ErrorStore) Snapshot(ctx context.Context) ([]*delegation.Delegation, store.Revision, error) {
	if err := s.take("Snapshot"); err != nil {
		return nil, 0, err
	}
	return s.Store.Snapshot(ctx)
}

// Revision implements store.Store.
func (s *ErrorStore) Revision(ctx context.Context) (store.Revision, error) {
	if err := s.take("Revision"); err != nil {
		return 0, err
	}
	return s.Store.Revision(ctx)
}

// Changes implements store.Store.
func (s *ErrorStore) Changes(ctx context.Context, since store.Revision, limit int) ([]store.Change, error) {
	if err := s.take("Changes"); err != nil {
		return nil, err
	}
	return s.Store.Changes(ctx, since, limit)
}

// AppendEvents implements store.Store.
func (s *ErrorStore) AppendEvents(ctx context.Context, evs ...audit.Event) error {
	if err := s.take("AppendEvents"); err != nil {
		return err
	}
	return s.Store.AppendEvents(ctx, evs...)
}

// ListEvents implements store.Store.
func (s *ErrorStore) ListEvents(ctx context.Context, f store.EventFilter, p store.Page) ([]audit.Event, string, error) {
	if err := s.take("ListEvents"); err != nil {
		return nil, "", err
	}
	return s.Store.ListEvents(ctx, f, p)
}

// AuditHead implements store.Store.
func (s *ErrorStore) AuditHead(ctx context.Context) (audit.Anchor, error) {
	if err := s.take("AuditHead"); err != nil {
		return audit.Anchor{}, err
	}
	return s.Store.AuditHead(ctx)
}

// PruneEvents implements store.Store.
func (s *ErrorStore) PruneEvents(ctx context.Context, through audit.Anchor, ev audit.Event) (int, error) {
	if err := s.take("PruneEvents"); err != nil {
		return 0, err
	}
	return s.Store.PruneEvents(ctx, through, ev)
}

// AuditBase implements store.Store.
func (s *ErrorStore) AuditBase(ctx context.Context) (audit.Anchor, error) {
	if err := s.take("AuditBase"); err != nil {
		return audit.Anchor{}, err
	}
	return s.Store.AuditBase(ctx)
}

// PutAgent implements store.Store.
func (s *ErrorStore) PutAgent(ctx context.Context, a store.Agent) error {
	if err := s.take("PutAgent"); err != nil {
		return err
	}
	return s.Store.PutAgent(ctx, a)
}

// GetAgent implements store.Store.
func (s *ErrorStore) GetAgent(ctx context.Context, name string) (store.Agent, error) {
	if err := s.take("GetAgent"); err != nil {
		return store.Agent{}, err
	}
	return s.Store.GetAgent(ctx, name)
}

// ListAgents implements store.Store.
func (s *ErrorStore) ListAgents(ctx context.Context) ([]store.Agent, error) {
	if err := s.take("ListAgents"); err != nil {
		return nil, err
	}
	return s.Store.ListAgents(ctx)
}

// DeleteAgent implements store.Store.
func (s *ErrorStore) DeleteAgent(ctx context.Context, name string) error {
	if err := s.take("DeleteAgent"); err != nil {
		return err
	}
	return s.Store.DeleteAgent(ctx, name)
}

var _ store.Store = (*ErrorStore)(nil)
