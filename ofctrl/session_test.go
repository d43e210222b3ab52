package ofctrl

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// A session is a private connection: it programs the switch, is invisible
// to Switch/Connected, and ends with its close function.
func TestLabSession(t *testing.T) {
	l, dpid := newLabBridge(t)
	c, ctx := labController(t, Config{Logger: testLogger(t)})
	sw, closeFn, err := c.DialSession(ctx, "unix:"+filepath.Join(l.RunDir(), "br0.mgmt"))
	if err != nil {
		t.Fatal(err)
	}
	if sw.DPID() != dpid {
		t.Fatalf("session DPID %016x, want %016x", sw.DPID(), dpid)
	}
	if got := c.Connected(); len(got) != 0 {
		t.Fatalf("Connected() = %x with only a session open", got)
	}
	if err := sw.Apply(ctx, testFlows(20, 3, 0x5e00)); err != nil {
		t.Fatal(err)
	}
	if n := countFlows(t, l, 3); n != 20 {
		t.Fatalf("table 3 has %d flows after the session's bundle, want 20", n)
	}
	st, err := sw.FlowStats(ctx, FlowFilter{Table: 3, Cookie: 0x5e00, CookieMask: ^uint64(0xff)})
	if err != nil || len(st) != 20 {
		t.Fatalf("FlowStats over the session: %d flows, %v", len(st), err)
	}
	closeFn()
	if err := sw.Barrier(ctx); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Barrier after close: %v, want ErrNotConnected", err)
	}
	// A canceled context ends a session too.
	sctx, cancel := context.WithCancel(ctx)
	sw, closeFn, err = c.DialSession(sctx, "unix:"+filepath.Join(l.RunDir(), "br0.mgmt"))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	closeFn() // waits for the session's goroutines
	if err := sw.Barrier(ctx); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Barrier after ctx end: %v, want ErrNotConnected", err)
	}
	if _, _, err := c.DialSession(ctx, "unix:"+filepath.Join(l.RunDir(), "nope.mgmt")); err == nil {
		t.Fatal("session to a missing socket succeeded")
	}
}
