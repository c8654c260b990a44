// Package task runs a long-running program's parts together, the way every
// agentid program does (agentid-server, agentid-sidecar, agentid-extauthz),
// after SPIRE's util.RunTasks: named tasks share one context; the first
// task to fail or panic cancels it for all the others; Run returns once
// every task has returned, with the first failure named by its task.
//
// A task ends when its context does. A task that returns nil earlier is
// done and the others go on; context.Canceled returned after the context
// ended is a clean stop, not a failure.
package task

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
)

// Task is one named part of a program.
type Task struct {
	// Name says which part failed, in the error Run returns.
	Name string
	// Run does the work until ctx ends.
	Run func(ctx context.Context) error
}

// Run runs tasks concurrently until they have all returned. It returns nil
// when none failed (ctx ended, or every task finished), otherwise the first
// failure as "<name>: <error>". A panic in a task is recovered and reported
// as that task's failure, with its stack, instead of killing the process
// before the others could stop.
func Run(ctx context.Context, tasks ...Task) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	wg.Add(len(tasks))
	for _, t := range tasks {
		go func() {
			defer wg.Done()
			if err := run(ctx, t); err != nil {
				once.Do(func() { first = err })
				cancel(err)
			}
		}()
	}
	wg.Wait()
	return first
}

func run(ctx context.Context, t Task) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: panic: %v\n%s", t.Name, r, debug.Stack())
		}
	}()
	err = t.Run(ctx)
	if err == nil || (ctx.Err() != nil && errors.Is(err, context.Canceled)) {
		return nil
	}
	return fmt.Errorf("%s: %w", t.Name, err)
}

// Serve adapts a blocking serve call, such as (*grpc.Server).Serve or
// (*http.Server).Serve, to a Task: serve runs until ctx ends, then stop is
// called and serve's return awaited. What serve returns after stop is not
// a failure (grpc returns nil, net/http http.ErrServerClosed); a serve that
// returns before, even nil, is.
func Serve(name string, serve func() error, stop func()) Task {
	return Task{Name: name, Run: func(ctx context.Context) error {
		done := make(chan error, 1)
		go func() { done <- serve() }()
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("stopped serving")
			}
			return err
		case <-ctx.Done():
			stop()
			<-done //nolint:errcheck // what serving returns after a requested stop is no failure
			return nil
		}
	}}
}
