package reconciler_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/agentid/agentid/pkg/reconciler"
)

func manyAgents(n int) []reconciler.Agent {
	agents := make([]reconciler.Agent, 0, n)
	for i := range n {
		agents = append(agents, agent(fmt.Sprintf("agent-%04d", i)))
	}
	return agents
}

// BenchmarkNoopPass is the steady state: every 10 s, list everything over the
// admin socket and compare, writing nothing.
func BenchmarkNoopPass(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			e := newEnv(b)
			e.setAgents(b, manyAgents(n)...)
			e.reconcile(b)
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				if err := e.rec.Reconcile(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCreateDeletePass measures two passes per iteration: one creating n
// entries, one deleting them.
func BenchmarkCreateDeletePass(b *testing.B) {
	const n = 1000
	e := newEnv(b)
	agents := manyAgents(n)
	ctx := context.Background()
	for b.Loop() {
		e.setAgents(b, agents...)
		if err := e.rec.Reconcile(ctx); err != nil {
			b.Fatal(err)
		}
		e.setAgents(b)
		if err := e.rec.Reconcile(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
