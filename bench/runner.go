package main

import (
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/flowspan/flowspan/test/lab"
)

// runT is the lab.T a benchmark program gives the lab: Fatalf and Skipf end
// the scenario's goroutine (as testing does) after which the registered
// cleanups run, newest first.
type runT struct {
	name string
	log  io.Writer

	mu       sync.Mutex
	failed   bool
	skipped  bool
	msg      string
	cleanups []func()
}

var _ lab.T = (*runT)(nil)

func (r *runT) Helper() {}

func (r *runT) Logf(format string, args ...any) {
	if r.log != nil {
		fmt.Fprintf(r.log, "[%s] %s\n", r.name, fmt.Sprintf(format, args...))
	}
}

func (r *runT) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.failed = true
	r.msg = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	r.Logf("FAILED: %s", r.msg)
	runtime.Goexit()
}

func (r *runT) Skipf(format string, args ...any) {
	r.mu.Lock()
	r.skipped = true
	r.msg = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	r.Logf("skipped: %s", r.msg)
	runtime.Goexit()
}

func (r *runT) Cleanup(f func()) {
	r.mu.Lock()
	r.cleanups = append(r.cleanups, f)
	r.mu.Unlock()
}

func (r *runT) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *runT) runCleanups() {
	for {
		r.mu.Lock()
		n := len(r.cleanups)
		if n == 0 {
			r.mu.Unlock()
			return
		}
		f := r.cleanups[n-1]
		r.cleanups = r.cleanups[:n-1]
		r.mu.Unlock()
		func() {
			done := make(chan struct{})
			go func() { defer close(done); f() }() // a cleanup that calls Fatalf ends only its own goroutine
			<-done
		}()
	}
}

// scenarioError says how a scenario ended when it did not finish.
type scenarioError struct {
	name    string
	skipped bool
	msg     string
}

func (e *scenarioError) Error() string {
	if e.skipped {
		return fmt.Sprintf("%s: skipped: %s", e.name, e.msg)
	}
	return fmt.Sprintf("%s: %s", e.name, e.msg)
}

// runScenario runs fn with its own runT and returns after fn and every
// cleanup it registered have finished. It returns nil if fn finished.
func runScenario(name string, log io.Writer, fn func(t lab.T)) error {
	r := &runT{name: name, log: log}
	finished := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer r.runCleanups()
		fn(r)
		finished = true
	}()
	<-done
	if finished {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.msg == "" {
		r.msg = "stopped without a message"
	}
	return &scenarioError{name: name, skipped: r.skipped, msg: r.msg}
}
