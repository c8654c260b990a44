package task_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/internal/task"
)

// waitCtx is a task that ends when its context does, counting the stops.
func waitCtx(name string, stopped *atomic.Int32) task.Task {
	return task.Task{Name: name, Run: func(ctx context.Context) error {
		<-ctx.Done()
		stopped.Add(1)
		return ctx.Err()
	}}
}

func TestFirstErrorStopsAll(t *testing.T) {
	var stopped atomic.Int32
	boom := errors.New("boom")
	err := task.Run(context.Background(),
		waitCtx("a", &stopped),
		task.Task{Name: "failing", Run: func(context.Context) error { return boom }},
		waitCtx("b", &stopped),
	)
	if !errors.Is(err, boom) || err.Error() != "failing: boom" {
		t.Fatalf("Run = %v, want failing: boom", err)
	}
	if n := stopped.Load(); n != 2 {
		t.Fatalf("%d tasks stopped, want 2", n)
	}
}

func TestPanicRecoveredAndReported(t *testing.T) {
	var stopped atomic.Int32
	err := task.Run(context.Background(),
		waitCtx("a", &stopped),
		task.Task{Name: "panicking", Run: func(context.Context) error { panic("oops") }},
	)
	if err == nil || !strings.HasPrefix(err.Error(), "panicking: panic: oops\n") || !strings.Contains(err.Error(), "task_test.go") {
		t.Fatalf("Run = %v, want the panic with its stack", err)
	}
	if stopped.Load() != 1 {
		t.Fatal("the other task was not stopped")
	}
}

func TestCanceledIsACleanStop(t *testing.T) {
	var stopped atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- task.Run(ctx, waitCtx("a", &stopped), waitCtx("b", &stopped)) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after ctx ended", err)
	}
	if stopped.Load() != 2 {
		t.Fatal("not every task stopped")
	}
}

func TestEarlyNilDoesNotStopOthers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var stopped atomic.Int32
	finished := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- task.Run(ctx,
			task.Task{Name: "once", Run: func(context.Context) error { close(finished); return nil }},
			waitCtx("a", &stopped))
	}()
	<-finished
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while a task still ran", err)
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil || stopped.Load() != 1 {
		t.Fatalf("Run = %v, stopped %d", err, stopped.Load())
	}
}

func TestServe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accept := func() error {
		for {
			c, err := l.Accept()
			if err != nil {
				return err
			}
			c.Close()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- task.Run(ctx, task.Serve("listener", accept, func() { l.Close() })) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil: serve's error after stop is no failure", err)
	}

	// A server that stops by itself is a failure, nil or not.
	err = task.Run(context.Background(), task.Serve("quitter", func() error { return nil }, func() {}))
	if err == nil || err.Error() != "quitter: stopped serving" {
		t.Fatalf("Run = %v", err)
	}
}
