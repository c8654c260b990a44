package servertest

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrStoreDown is what tests make the fixture's store fail with: an outage, not a
// refusal (no store sentinel).
var ErrStoreDown = errors.New("storetest: injected outage")

// StoreState is what a failed request must leave unchanged: the stored
// delegations and their states, and the audit log's head.
type StoreState struct {
	delegations map[string]string
	head        audit.Anchor
}

// StoreStateOf reads what a failed request must leave unchanged.
func StoreStateOf(tb testing.TB, e *Env) StoreState {
	tb.Helper()
	ctx := context.Background()
	st := StoreState{delegations: map[string]string{}}
	page := store.Page{Size: store.MaxPageSize}
	for {
		list, next, err := e.Store.ListDelegations(ctx, store.Filter{}, page)
		if err != nil {
			tb.Fatal(err)
		}
		for _, d := range list {
			st.delegations[d.ID.String()] = d.State.String()
		}
		if next == "" {
			break
		}
		page.Token = next
	}
	var err error
	if st.head, err = e.Store.AuditHead(ctx); err != nil {
		tb.Fatal(err)
	}
	return st
}

// Equal reports whether s and o hold the same delegations in the same
// states and the same audit head.
func (s StoreState) Equal(o StoreState) bool {
	if s.head != o.head || len(s.delegations) != len(o.delegations) {
		return false
	}
	for id, state := range s.delegations {
		if o.delegations[id] != state {
			return false
		}
	}
	return true
}

// StoreFailure is one request whose store calls fail.
type StoreFailure struct {
	Name string
	// Errs are queued on the fixture's store in order (nil lets a call
	// through); every one must be taken by the request.
	Errs []error
	// Call makes the request.
	Call func(ctx context.Context) error
	// Code and Msg are the answer it must get.
	Code codes.Code
	Msg  string
	// Wrote: the request's write committed before the failing read (the
	// answer is still UNAVAILABLE; a retry finds it done).
	Wrote bool
}

// RunStoreFailures runs each request with its errors queued on e.Faults and
// checks the exact answer, that every queued error was reached, and that the
// store's delegations and audit head are unchanged (changed, for Wrote).
func RunStoreFailures(t *testing.T, e *Env, tests []StoreFailure) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.Name, func(t *testing.T) {
			before := StoreStateOf(t, e)
			e.Faults.AppendNextError(tt.Errs...)
			err := tt.Call(Ctx(t))
			pending := e.Faults.Pending()
			e.Faults.SetNextError(nil)
			if st, _ := status.FromError(err); st.Code() != tt.Code || st.Message() != tt.Msg {
				t.Fatalf("error = %v, want %s %q", err, tt.Code, tt.Msg)
			}
			if pending != 0 {
				t.Fatalf("%d injected errors were not reached", pending)
			}
			if after := StoreStateOf(t, e); after.Equal(before) == tt.Wrote {
				t.Fatalf("store before %v, after %v (wrote: %v)", before, after, tt.Wrote)
			}
		})
	}
}

// RecvAll reads a stream to its end and returns its error (nil at EOF).
func RecvAll[T any](recv func() (T, error)) error {
	for {
		if _, err := recv(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// CountDenied counts the denied events in e's audit log.
func CountDenied(tb testing.TB, e *Env) int {
	tb.Helper()
	n := 0
	page := store.Page{Size: store.MaxPageSize}
	for {
		evs, next, err := e.Store.ListEvents(context.Background(), store.EventFilter{Type: audit.TypeDenied}, page)
		if err != nil {
			tb.Fatal(err)
		}
		n += len(evs)
		if next == "" {
			return n
		}
		page.Token = next
	}
}
