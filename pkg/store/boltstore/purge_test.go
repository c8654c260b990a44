package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	bolt "go.etcd.io/bbolt"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
)

// TestPurgeChainOneAtATime purges a chain of sub-delegations one record per
// call: each call must find the deepest one, whatever the creation order,
// and the file must check after each.
func TestPurgeChainOneAtATime(t *testing.T) {
	s := openTest(t, Options{ChangeLogLimit: 1})
	ctx := context.Background()
	chain := []*delegation.Delegation{newRoot(t)}
	for i := range 4 {
		sub := spiffeid.RequireFromString(fmt.Sprintf("spiffe://example.org/agent/sub%d", i))
		chain = append(chain, newChild(t, chain[len(chain)-1], sub))
	}
	for _, d := range chain {
		if _, err := s.CreateDelegation(ctx, d, audit.Event{Time: testT0, Type: audit.TypeDelegationCreated, Actor: "local"}); err != nil {
			t.Fatal(err)
		}
	}
	// One more change, so that the last creation leaves the log.
	other := newRoot(t)
	other.ExpiresAt = testT0.Add(48 * time.Hour)
	if _, err := s.CreateDelegation(ctx, other, createdEvent(other)); err != nil {
		t.Fatal(err)
	}
	before := testT0.Add(2 * time.Hour)
	for i, d := range slices.Backward(chain) {
		n, err := s.PurgeExpired(ctx, before, 1)
		if err != nil || n != 1 {
			t.Fatalf("purge %d = %d, %v; want 1", i, n, err)
		}
		if _, err := s.GetDelegation(ctx, d.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("purge %d: %s = %v, want ErrNotFound", i, d.ID, err)
		}
		if err := s.Check(ctx); err != nil {
			t.Fatalf("check after purge %d: %v", i, err)
		}
	}
	if n, err := s.PurgeExpired(ctx, before, 1); err != nil || n != 0 {
		t.Fatalf("purge after the chain = %d, %v; want 0", n, err)
	}
}

// fillExpired inserts n delegations that expire at testT0+1h (a root, and
// a child of it for every tenth), in transactions of 2,000, as benchmark
// setup.
func fillExpired(b *testing.B, s *Store, n int) {
	b.Helper()
	sub := spiffeid.RequireFromString("spiffe://example.org/agent/sub")
	all := make([]*delegation.Delegation, 0, n)
	for len(all) < n {
		root := newRoot(b)
		all = append(all, root)
		if len(all)%10 == 1 && len(all) < n {
			all = append(all, newChild(b, root, sub))
		}
	}
	for chunk := range slices.Chunk(all, 2000) {
		err := s.db.Update(func(tx *bolt.Tx) error {
			for _, d := range chunk {
				record, err := d.MarshalJSON()
				if err != nil {
					return err
				}
				_, rejected, err := s.insert(tx, d, record, createdEvent(d))
				if err := errors.Join(rejected, err); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func fileSize(b *testing.B, path string) int64 {
	b.Helper()
	info, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return info.Size()
}

// BenchmarkPurgeExpired purges 100,000 expired delegations in calls of
// 1,000 (the server's batch) and reports the time of the whole purge, the
// file size before and after, and the size after inserting 100,000 more:
// bbolt never shrinks the file, it reuses the freed pages. With log=1000
// the revision log keeps 1,000 changes; with log=100000 (the default) it
// keeps 100,000 more delegations that no purge may touch, so each call also
// walks a long log and the purge reads past nothing but what it deletes.
func BenchmarkPurgeExpired(b *testing.B) {
	for _, logLimit := range []int{1000, DefaultChangeLogLimit} {
		b.Run(fmt.Sprintf("log=%d", logLimit), func(b *testing.B) { benchPurge(b, logLimit) })
	}
}

func benchPurge(b *testing.B, logLimit int) {
	const n, batch = 100_000, 1000
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		s := benchStore(b, Options{ChangeLogLimit: logLimit})
		fillExpired(b, s, n+logLimit)
		full := fileSize(b, s.Path())
		b.StartTimer()
		start := time.Now()
		total, calls := 0, 0
		for {
			got, err := s.PurgeExpired(ctx, testT0.Add(2*time.Hour), batch)
			if err != nil {
				b.Fatal(err)
			}
			total += got
			calls++
			if got < batch {
				break
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		// The last logLimit are still named by the revision log.
		if total != n {
			b.Fatalf("purged %d, want %d", total, n)
		}
		purged := fileSize(b, s.Path())
		fillExpired(b, s, n)
		refilled := fileSize(b, s.Path())
		if err := s.Check(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(elapsed.Seconds(), "purge-s")
		b.ReportMetric(float64(calls), "calls")
		b.ReportMetric(float64(full)/1e6, "MB-before")
		b.ReportMetric(float64(purged)/1e6, "MB-after-purge")
		b.ReportMetric(float64(refilled)/1e6, "MB-after-refill")
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
