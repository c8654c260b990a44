package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	bolt "go.etcd.io/bbolt"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
)

// benchStore opens a fresh store (fsync on, as in production) that the
// benchmark closes.
func benchStore(b *testing.B, opts Options) *Store {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "agentid.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// createConcurrently creates n root delegations from the given number of
// goroutines and returns the latency of each create.
func createConcurrently(b *testing.B, s *Store, writers, n int) []time.Duration {
	b.Helper()
	var (
		next      atomic.Int64
		wg        sync.WaitGroup
		latencies = make([]time.Duration, n)
		ctx       = context.Background()
	)
	for range writers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				d := newRoot(b)
				start := time.Now()
				if _, err := s.CreateDelegation(ctx, d, createdEvent(d)); err != nil {
					b.Error(err)
					return
				}
				latencies[i] = time.Since(start)
			}
		})
	}
	wg.Wait()
	return latencies
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// BenchmarkCreateConcurrent measures CreateDelegation from 1 and 16
// goroutines on a store with fsync on: throughput, the latency of one create
// (p50, p99), the pages bbolt wrote per create and the fraction of the time
// spent writing and syncing them.
func BenchmarkCreateConcurrent(b *testing.B) {
	for _, writers := range []int{1, 16} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := benchStore(b, Options{})
			b.ResetTimer()
			start := time.Now()
			latencies := createConcurrently(b, s, writers, b.N)
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(latencies)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "creates/s")
			b.ReportMetric(float64(percentile(latencies, 0.50).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(percentile(latencies, 0.99).Microseconds())/1000, "p99-ms")
			st := s.db.Stats()
			b.ReportMetric(float64(st.TxStats.GetWrite())/float64(b.N), "pagewrites/create")
			b.ReportMetric(st.TxStats.GetWriteTime().Seconds()/elapsed.Seconds(), "write-fraction")
		})
	}
}

// buildTree writes a tree of n delegations under one root directly, in
// large transactions, as setup for the revocation benchmark: each node has
// up to fanout children, and an agent per depth.
func buildTree(b *testing.B, s *Store, n, fanout int) *delegation.Delegation {
	b.Helper()
	agents := make([]spiffeid.ID, delegation.MaxDepthLimit)
	for i := range agents {
		agents[i] = spiffeid.RequireFromString(fmt.Sprintf("spiffe://example.org/agent/depth%d", i))
	}
	root := newRoot(b)
	all := []*delegation.Delegation{root}
	for parent := 0; len(all) < n; parent++ {
		for range fanout {
			if len(all) == n {
				break
			}
			p := all[parent]
			all = append(all, newChild(b, p, agents[p.Depth()]))
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
	return root
}

// BenchmarkRevokeCascade measures revoking the root of a tree of 10,000
// delegations: one transaction rewrites every record, its state index
// entry, a change and an audit event each.
func BenchmarkRevokeCascade(b *testing.B) {
	const n = 10_000
	s := benchStore(b, Options{})
	ctx := context.Background()
	b.StopTimer()
	for range b.N {
		root := buildTree(b, s, n, 10)
		b.StartTimer()
		ids, _, err := s.RevokeDelegation(ctx, store.Revocation{
			ID: root.ID, At: testT0, Reason: "benchmark",
			Event: audit.Event{Type: audit.TypeRevoked, Actor: "local"},
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if len(ids) != n {
			b.Fatalf("revoked %d, want %d", len(ids), n)
		}
	}
}

// BenchmarkDiskPerDelegation fills a store with 100,000 delegations through
// CreateDelegation (64 writers, so grouped as in production) and reports the
// file size per delegation, audit events and indexes included, and the part
// of it that holds live data (the rest is free pages bbolt reuses).
func BenchmarkDiskPerDelegation(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		s := benchStore(b, Options{})
		createConcurrently(b, s, 64, n)
		var inuse int
		if err := s.db.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(_ []byte, bucket *bolt.Bucket) error {
				st := bucket.Stats()
				inuse += st.BranchInuse + st.LeafInuse + st.InlineBucketInuse
				return nil
			})
		}); err != nil {
			b.Fatal(err)
		}
		info, err := os.Stat(s.Path())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(info.Size())/n, "file-bytes/delegation")
		b.ReportMetric(float64(inuse)/n, "live-bytes/delegation")
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDiskPerIssuanceEvent appends 100,000 token-issued events, in
// batches of 200 as the composer's records arrive, and reports the file
// size per event: what every delegated token costs the audit log's volume.
//
//	go test -run '^$' -bench DiskPerIssuanceEvent -benchtime 1x ./pkg/store/boltstore
func BenchmarkDiskPerIssuanceEvent(b *testing.B) {
	const n, batch = 100_000, 200
	for b.Loop() {
		s := benchStore(b, Options{})
		evs := make([]audit.Event, 0, batch)
		for i := range n {
			evs = append(evs, audit.Event{Time: time.Unix(1_764_212_645, int64(i)), Type: audit.TypeTokenIssued,
				Actor: "spiffe://example.org/agent/bench", DelegationID: "dlg_0123456789abcdefghjkmnpqrs",
				Agent: "spiffe://example.org/agent/bench", User: "https://idp.example.com#alice",
				Detail: map[string]string{"audience": fmt.Sprintf("spiffe://example.org/svc/target-%09d", i),
					"expires_at": "2026-11-27T03:04:05Z", "recorded_by": "local:uid:1000"}})
			if len(evs) == batch {
				if err := s.AppendEvents(context.Background(), evs...); err != nil {
					b.Fatal(err)
				}
				evs = evs[:0]
			}
		}
		info, err := os.Stat(s.Path())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(info.Size())/n, "file-bytes/event")
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
