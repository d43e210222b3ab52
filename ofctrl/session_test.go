package ofctrl

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// A session is a private connection: it programs the switch, is invisible
// to Switch/Connected, and ends with its close function.
func TestLabSession(t *testing.T) {
	l, dpid := newLabBridge(t)
	l.AddInternalPort(t, "br0", "p1", 0)
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
	ofport := uint32(l.OFPort(t, "p1"))
	pc, err := sw.PortStats(ctx, ofport)
	if err != nil || len(pc) != 1 || pc[0].Port != ofport {
		t.Fatalf("PortStats(%d) = %+v, %v", ofport, pc, err)
	}
	out, err := l.Ofctl("-O", "OpenFlow13", "dump-ports", "br0", "p1")
	if err != nil || !strings.Contains(out, fmt.Sprintf("rx pkts=%d,", pc[0].RxPackets)) || !strings.Contains(out, fmt.Sprintf("tx pkts=%d,", pc[0].TxPackets)) {
		t.Fatalf("PortStats %+v vs ovs-ofctl dump-ports:\n%s (%v)", pc[0], out, err)
	}
	if all, err := sw.PortStats(ctx, 0xffffffff); err != nil || len(all) != 2 {
		t.Fatalf("PortStats(ANY) = %+v, %v; want p1 and LOCAL", all, err)
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

// ApplyGated commits only when the gate allows it, after the switch took
// the whole bundle.
func TestLabApplyGated(t *testing.T) {
	l, dpid := newLabBridge(t)
	c, ctx := labController(t, Config{Logger: testLogger(t)})
	if err := c.Dial(ctx, "unix:"+filepath.Join(l.RunDir(), "br0.mgmt")); err != nil {
		t.Fatal(err)
	}
	sw := mustSwitch(t, c, dpid)
	no := errors.New("not now")
	gated := 0
	err := sw.ApplyGated(ctx, testFlows(10, 3, 0x6a00), func(context.Context) error {
		gated++
		if n := countFlows(t, l, 3); n != 0 {
			t.Errorf("gate sees %d flows: committed before the gate", n)
		}
		return no
	})
	if !errors.Is(err, no) || gated != 1 {
		t.Fatalf("refused gate: err %v, gate called %d times", err, gated)
	}
	if n := countFlows(t, l, 3); n != 0 {
		t.Fatalf("%d flows after a refused gate", n)
	}
	if err := sw.ApplyGated(ctx, testFlows(10, 3, 0x6a00), func(context.Context) error { gated++; return nil }); err != nil || gated != 2 {
		t.Fatalf("open gate: %v (gate called %d times)", err, gated)
	}
	if n := countFlows(t, l, 3); n != 10 {
		t.Fatalf("%d flows after an open gate, want 10", n)
	}
	// The connection is still in order.
	if err := sw.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
}
