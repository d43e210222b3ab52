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
