package flowspan

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowspan/flowspan/api"
)

// TestIdleReleaseOncePerBurst: after a burst of changes the Manager frees
// memory once, when it has been idle for IdleRelease, and not again until
// the next change.
func TestIdleReleaseOncePerBurst(t *testing.T) {
	e := newEnv(t)
	m, err := New(Config{OVSDB: e.db, Controller: e.ctl, Compiler: fakeCompiler{}, IdleRelease: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var frees atomic.Int32
	m.freeOSMemory = func() { frees.Add(1) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done; m.Close() }()
	e.m = m
	for i, p := range []string{"p1", "p2", "p3"} {
		s := spec1()
		s.Name, s.Ports = "m"+string(rune('1'+i)), []string{p}
		e.add(s)
	}
	eventually(t, "memory freed after the burst", func() bool { return frees.Load() >= 1 })
	time.Sleep(200 * time.Millisecond) // four idle periods: no more frees
	if n := frees.Load(); n != 1 {
		t.Fatalf("freed %d times after one burst, want 1", n)
	}
	if err := m.DeleteMirror(ctx, "m2"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "freed again after a delete", func() bool { return frees.Load() == 2 })

	// Disabled: never.
	e2 := newEnv(t)
	m2, err := New(Config{OVSDB: e2.db, Controller: e2.ctl, Compiler: fakeCompiler{}, IdleRelease: -1})
	if err != nil {
		t.Fatal(err)
	}
	var frees2 atomic.Int32
	m2.freeOSMemory = func() { frees2.Add(1) }
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- m2.Run(ctx2) }()
	defer func() { cancel2(); <-done2; m2.Close() }()
	if _, err := m2.AddMirror(ctx2, spec1(), api.OriginAPI); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := frees2.Load(); n != 0 {
		t.Fatalf("IdleRelease < 0: freed %d times", n)
	}
}
