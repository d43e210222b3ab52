package ofctrl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/contiv/libOpenflow/openflow13"
	"golang.org/x/sys/unix"

	"github.com/flowspan/flowspan/ofctrl/ofpx"
	"github.com/flowspan/flowspan/test/lab"
)

// newLabBridge starts a private OVS with bridge br0 and returns the lab and
// the bridge's datapath id as OVSDB reports it.
func newLabBridge(t *testing.T) (*lab.Lab, uint64) {
	t.Helper()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	return l, l.DatapathID(t, "br0")
}

// waitEvent returns the first event of type E (skipping others) or fails.
func waitEvent[E Event](t *testing.T, c *Controller, timeout time.Duration) E {
	t.Helper()
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("events channel closed")
			}
			if e, ok := ev.(E); ok {
				return e
			}
		case <-tm.C:
			var zero E
			t.Fatalf("no %T event within %v", zero, timeout)
		}
	}
}

func testFlows(n int, table uint8, cookie uint64) []*openflow13.FlowMod {
	mods := make([]*openflow13.FlowMod, n)
	for i := range mods {
		fm := ofpx.NewFlowMod(ofpx.FlowAdd, table)
		fm.Priority = 100
		fm.Cookie = cookie + uint64(i)
		mf, _ := ofpx.MatchReg(0, uint32(i), 0xffffffff)
		fm.Match.AddField(mf)
		in := openflow13.NewInstrApplyActions()
		if i%2 == 0 {
			_ = in.AddAction(&ofpx.Output{Port: 1 + uint32(i%5)}, false)
		} else {
			_ = in.AddAction(&ofpx.OutputTrunc{Port: 1 + uint32(i%5), MaxLen: 128}, false)
		}
		_ = in.AddAction(ofpx.ResubmitTable(table+1), false)
		fm.AddInstruction(in)
		mods[i] = fm
	}
	return mods
}

// dumpNoStats returns every flow of br0 without counters or durations.
func dumpNoStats(t *testing.T, l *lab.Lab) string {
	t.Helper()
	out, err := l.Ofctl("-O", "OpenFlow13", "--no-stats", "--sort", "dump-flows", "br0")
	if err != nil {
		t.Fatalf("dump-flows: %v: %s", err, out)
	}
	return out
}

func countFlows(t *testing.T, l *lab.Lab, table int) int {
	t.Helper()
	out, err := l.Ofctl("-O", "OpenFlow13", "dump-flows", "br0", fmt.Sprintf("table=%d", table))
	if err != nil {
		t.Fatalf("dump-flows: %v: %s", err, out)
	}
	return strings.Count(out, "priority=")
}

func TestIntegrationDialMgmtBundleAndStats(t *testing.T) {
	l, dpid := newLabBridge(t)
	checkLeaks(t)
	c, ctx := labController(t, Config{Logger: testLogger(t)})
	dialMgmt(t, ctx, c, l)
	ev := waitEvent[Connected](t, c, 10*time.Second)
	if ev.DPID != dpid {
		t.Fatalf("Connected DPID %016x, OVSDB says %016x", ev.DPID, dpid)
	}
	sw, err := c.Switch(ctx, dpid)
	if err != nil {
		t.Fatal(err)
	}
	ports, err := sw.Ports(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ports) != 1 || ports[0].Name != "br0" || ports[0].No != ofpx.PortLocal {
		t.Errorf("Ports() = %+v, want only br0 LOCAL", ports)
	}

	const n = 10000
	if err := sw.Apply(ctx, testFlows(n, 1, 0x10000)); err != nil {
		t.Fatal(err)
	}
	if got := countFlows(t, l, 1); got != n {
		t.Fatalf("ovs-ofctl sees %d flows in table 1, want %d", got, n)
	}
	stats, err := sw.FlowStats(ctx, FlowFilter{Table: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != n {
		t.Fatalf("FlowStats returned %d flows, want %d", len(stats), n)
	}
	seen := make(map[uint64]bool, n)
	for _, s := range stats {
		if s.Table != 1 || s.Priority != 100 || s.Cookie < 0x10000 || s.Cookie >= 0x10000+n || seen[s.Cookie] {
			t.Fatalf("unexpected flow stat %+v", s)
		}
		seen[s.Cookie] = true
		if len(s.Match) != 4+8 || len(s.Instructions) == 0 {
			t.Fatalf("flow stat raw match %x / instructions %x", s.Match, s.Instructions)
		}
	}
	// Cookie filtering on the switch side.
	stats, err = sw.FlowStats(ctx, FlowFilter{Table: TableAll, Cookie: 0x10000 + 7, CookieMask: ^uint64(0)})
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 1 || stats[0].Cookie != 0x10007 {
		t.Fatalf("cookie-filtered stats = %+v", stats)
	}
	// Delete by cookie mask, out_port filter honoured (out_group bug fixed);
	// ovs-ofctl's own out_port filter is the oracle.
	out, err := l.Ofctl("-O", "OpenFlow13", "dump-flows", "br0", "table=1,out_port=1")
	if err != nil {
		t.Fatal(err)
	}
	withOut1 := strings.Count(out, "priority=")
	if withOut1 == 0 {
		t.Fatalf("no flow outputs to port 1:\n%s", out)
	}
	del := ofpx.NewFlowMod(ofpx.FlowDelete, 1)
	del.Cookie, del.CookieMask = 0x10000, 0xffff0000
	del.OutPort = 1
	if err := sw.Apply(ctx, []*openflow13.FlowMod{del}); err != nil {
		t.Fatal(err)
	}
	if got := countFlows(t, l, 1); got != n-withOut1 {
		t.Fatalf("after deleting flows with out_port 1: %d flows, want %d", got, n-withOut1)
	}
	// Concurrent Applies each get their own bundle.
	errs := make(chan error, 4)
	for k := 0; k < 4; k++ {
		go func() { errs <- sw.Apply(ctx, testFlows(500, uint8(2+k), 0x10000+uint64(k)*1000)) }()
	}
	for k := 0; k < 4; k++ {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Apply: %v", err)
		}
	}
	for k := 0; k < 4; k++ {
		if got := countFlows(t, l, 2+k); got != 500 {
			t.Fatalf("table %d has %d flows after concurrent applies, want 500", 2+k, got)
		}
	}
	// Delete by cookie across all tables, as the daemon removes a generation.
	delAll := ofpx.NewFlowMod(ofpx.FlowDelete, TableAll)
	delAll.Cookie, delAll.CookieMask = 0x10000, 0xffff0000
	if err := sw.Apply(ctx, []*openflow13.FlowMod{delAll}); err != nil {
		t.Fatal(err)
	}
	for tbl := 1; tbl <= 5; tbl++ {
		if got := countFlows(t, l, tbl); got != 0 {
			t.Fatalf("after deleting cookie 0x1xxxx in all tables: %d flows left in table %d", got, tbl)
		}
	}
	if got := countFlows(t, l, 0); got != 1 {
		t.Fatalf("table 0 has %d flows, want the untouched NORMAL flow", got)
	}
	if err := sw.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationFailingBundleChangesNothing(t *testing.T) {
	l, dpid := newLabBridge(t)
	checkLeaks(t)
	c, ctx := labController(t, Config{Logger: testLogger(t)})
	sw := mgmtSwitch(t, ctx, c, l, dpid)
	if err := sw.Apply(ctx, testFlows(10, 2, 0x100)); err != nil {
		t.Fatal(err)
	}
	before := dumpNoStats(t, l)

	t.Run("rejected at add", func(t *testing.T) {
		mods := testFlows(100, 2, 0x200)
		bad := ofpx.NewFlowMod(ofpx.FlowAdd, 5)
		bad.AddInstruction(openflow13.NewInstrGotoTable(3)) // goto_table backwards: OFPBIC_BAD_TABLE_ID
		mods = append(mods[:50], append([]*openflow13.FlowMod{bad}, mods[50:]...)...)
		err := sw.Apply(ctx, mods)
		var se *SwitchError
		if !errors.As(err, &se) {
			t.Fatalf("Apply error = %v, want a *SwitchError", err)
		}
		if !strings.Contains(err.Error(), "flow mod 51 of 101") || !strings.Contains(err.Error(), "nothing changed") {
			t.Errorf("error does not name the failing flow mod: %v", err)
		}
		if got := dumpNoStats(t, l); got != before {
			t.Errorf("flows changed after failed bundle:\nbefore:\n%s\nafter:\n%s", before, got)
		}
	})
	t.Run("rejected at commit", func(t *testing.T) {
		// Table 3 refuses more than 20 flows: the adds are fine, the commit fails.
		l.MustVsctl(t, "--", "--id=@ft", "create", "Flow_Table", "flow_limit=20", "overflow_policy=refuse",
			"--", "set", "bridge", "br0", "flow_tables:3=@ft")
		err := sw.Apply(ctx, append(testFlows(5, 2, 0x300), testFlows(30, 3, 0x400)...))
		var se *SwitchError
		if !errors.As(err, &se) {
			t.Fatalf("Apply error = %v, want a *SwitchError", err)
		}
		if !errors.Is(err, &SwitchError{Type: 5, Code: 1}) || !strings.Contains(err.Error(), "OFPFMFC_TABLE_FULL") ||
			!strings.Contains(err.Error(), "table=3") || !strings.Contains(err.Error(), "commit failed") {
			t.Errorf("Apply error = %v, want OFPFMFC_TABLE_FULL naming a table 3 flow mod", err)
		}
		if got := dumpNoStats(t, l); got != before {
			t.Errorf("flows changed after failed commit:\nbefore:\n%s\nafter:\n%s", before, got)
		}
	})
	t.Run("bad encoding sends nothing", func(t *testing.T) {
		mods := testFlows(3, 2, 0x500)
		mods[1].Instructions[0].(*openflow13.InstrActions).Actions[0] = &ofpx.OutputTrunc{Port: 1, MaxLen: 3}
		err := sw.Apply(ctx, mods)
		if err == nil || !strings.Contains(err.Error(), "flow mod 2 of 3") || !strings.Contains(err.Error(), "max_len 3") {
			t.Fatalf("Apply error = %v", err)
		}
		if got := dumpNoStats(t, l); got != before {
			t.Errorf("flows changed:\n%s", got)
		}
	})
}

// inNetns runs fn on a thread inside the named network namespace (sockets
// created there stay in it).
func inNetns(t *testing.T, name string, fn func() error) {
	t.Helper()
	target, err := os.Open("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer self.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err // thread stays locked and is discarded
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationListeners(t *testing.T) {
	t.Run("unix", func(t *testing.T) {
		t.Parallel()
		l, dpid := newLabBridge(t)
		c, ctx := labController(t, Config{Logger: testLogger(t)})
		path := filepath.Join(l.RunDir(), "ctl.sock")
		addr, err := c.Listen(ctx, "unix:"+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 || addr.String() != path {
			t.Fatalf("socket %s: %v mode %v addr %v", path, err, fi.Mode(), addr)
		}
		l.MustVsctl(t, "set-controller", "br0", "unix:"+path)
		ev := waitEvent[Connected](t, c, 20*time.Second)
		if ev.DPID != dpid {
			t.Fatalf("DPID %016x, want %016x", ev.DPID, dpid)
		}
		sw, err := c.Switch(ctx, dpid)
		if err != nil {
			t.Fatal(err)
		}
		if err := sw.Apply(ctx, testFlows(100, 0, 1)); err != nil {
			t.Fatal(err)
		}
		if got := countFlows(t, l, 0); got != 100 {
			t.Fatalf("%d flows, want 100", got)
		}
		c.Close()
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket file left after Close: %v", err)
		}
	})
	t.Run("tcp", func(t *testing.T) {
		t.Parallel()
		l, dpid := newLabBridge(t)
		c, ctx := labController(t, Config{Logger: testLogger(t)})
		// Listen on loopback inside vswitchd's namespace.
		var addr net.Addr
		inNetns(t, l.Netns(), func() error {
			var err error
			if err = runCmd("ip", "link", "set", "lo", "up"); err != nil {
				return err
			}
			addr, err = c.Listen(ctx, "tcp:0", nil)
			return err
		})
		if !strings.HasPrefix(addr.String(), "127.0.0.1:") {
			t.Fatalf("default tcp listen address %v is not loopback", addr)
		}
		l.MustVsctl(t, "set-controller", "br0", "tcp:"+addr.String())
		ev := waitEvent[Connected](t, c, 20*time.Second)
		if ev.DPID != dpid {
			t.Fatalf("DPID %016x, want %016x", ev.DPID, dpid)
		}
		sw, err := c.Switch(ctx, dpid)
		if err != nil {
			t.Fatal(err)
		}
		if err := sw.Apply(ctx, testFlows(100, 0, 1)); err != nil {
			t.Fatal(err)
		}
		if got := countFlows(t, l, 0); got != 100 {
			t.Fatalf("%d flows, want 100", got)
		}
	})
}

func TestIntegrationVswitchdRestart(t *testing.T) {
	l, dpid := newLabBridge(t)
	checkLeaks(t)
	c, ctx := labController(t, Config{Logger: testLogger(t), ReconnectMax: 500 * time.Millisecond})
	dialMgmt(t, ctx, c, l)
	if ev := waitEvent[Connected](t, c, 10*time.Second); ev.DPID != dpid {
		t.Fatalf("DPID %016x", ev.DPID)
	}
	l.RestartVswitchd(t)
	if ev := waitEvent[Disconnected](t, c, 20*time.Second); ev.DPID != dpid || ev.Err == nil {
		t.Fatalf("Disconnected = %+v", ev)
	}
	if ev := waitEvent[Connected](t, c, 20*time.Second); ev.DPID != dpid {
		t.Fatalf("reconnected DPID %016x, want %016x", ev.DPID, dpid)
	}
	sw, err := c.Switch(ctx, dpid)
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.Apply(ctx, testFlows(10, 0, 1)); err != nil {
		t.Fatalf("apply after reconnect: %v", err)
	}
	if s := c.Stats(); s.Connections < 2 || s.Disconnects < 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestIntegrationNoBundles(t *testing.T) {
	l, dpid := newLabBridge(t)
	checkLeaks(t)
	c, ctx := labController(t, Config{Logger: testLogger(t), NoBundles: true})
	sw := mgmtSwitch(t, ctx, c, l, dpid)
	if err := sw.Apply(ctx, testFlows(1000, 1, 0x100)); err != nil {
		t.Fatal(err)
	}
	if got := countFlows(t, l, 1); got != 1000 {
		t.Fatalf("%d flows, want 1000", got)
	}
	bad := ofpx.NewFlowMod(ofpx.FlowAdd, 5)
	bad.AddInstruction(openflow13.NewInstrGotoTable(3))
	err := sw.Apply(ctx, []*openflow13.FlowMod{bad})
	if !errors.Is(err, &SwitchError{Type: 3, Code: 2}) || !strings.Contains(err.Error(), "flow mod 1 of 1") {
		t.Fatalf("Apply(goto_table backwards) = %v, want OFPBIC_BAD_TABLE_ID naming flow mod 1", err)
	}
}

// TestIntegrationPortStatus: port-status events arrive on a service
// connection (OVS sends them only after SET_ASYNC asks for them).
func TestIntegrationPortStatus(t *testing.T) {
	l, dpid := newLabBridge(t)
	checkLeaks(t)
	c, ctx := labController(t, Config{Logger: testLogger(t)})
	dialMgmt(t, ctx, c, l)
	waitEvent[Connected](t, c, 10*time.Second)
	l.AddInternalPort(t, "br0", "p1", 0)
	want := func(reason PortReason) PortStatus {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			ev := waitEvent[PortStatus](t, c, time.Until(deadline))
			if ev.Reason == reason && ev.Port.Name == "p1" {
				return ev
			}
		}
		t.Fatalf("no %v event for p1", reason)
		return PortStatus{}
	}
	added := want(PortAdded)
	if added.DPID != dpid || added.Port.No != uint32(l.OFPort(t, "p1")) || len(added.Port.HWAddr) != 6 {
		t.Fatalf("add event %+v", added)
	}
	l.MustVsctl(t, "del-port", "br0", "p1")
	if ev := want(PortDeleted); ev.Port.No != added.Port.No {
		t.Fatalf("delete event %+v", ev)
	}
}

// dialMgmt dials the lab's br0 management socket (<rundir>/br0.mgmt).
func dialMgmt(tb testing.TB, ctx context.Context, c *Controller, l *lab.Lab) {
	tb.Helper()
	if err := c.Dial(ctx, "unix:"+filepath.Join(l.RunDir(), "br0.mgmt")); err != nil {
		tb.Fatal(err)
	}
}

// mgmtSwitch dials br0.mgmt and returns the switch once it is connected.
func mgmtSwitch(tb testing.TB, ctx context.Context, c *Controller, l *lab.Lab, dpid uint64) *Switch {
	tb.Helper()
	dialMgmt(tb, ctx, c, l)
	sw, err := c.Switch(ctx, dpid)
	if err != nil {
		tb.Fatal(err)
	}
	return sw
}

// labController is a controller for a lab test with a 60 s context; both
// end with the test.
func labController(t *testing.T, cfg Config) (*Controller, context.Context) {
	t.Helper()
	c := New(cfg)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c, ctx
}
