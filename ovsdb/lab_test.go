package ovsdb_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/flowspan/flowspan/ovsdb"
	"github.com/flowspan/flowspan/test/lab"
)

func labLogger(t *testing.T) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(testWriter{t})
	l.SetLevel(logrus.InfoLevel)
	return l
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a log line after the test ended
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func dialLab(t *testing.T, l *lab.Lab) *ovsdb.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := ovsdb.Dial(ctx, l.DBEndpoint(), ovsdb.Config{Logger: labLogger(t), Netns: l.Netns(),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFacts polls the client's facts until cond holds.
func waitFacts(t *testing.T, c *ovsdb.Client, bridge string, what string, cond func(ovsdb.Bridge) bool) ovsdb.Bridge {
	t.Helper()
	var f ovsdb.Bridge
	lab.Eventually(t, 20*time.Second, func() error {
		var err error
		f, err = c.Bridge(context.Background(), bridge)
		if err != nil {
			return err
		}
		if !cond(f) {
			return fmt.Errorf("%s: not yet (facts %+v)", what, f)
		}
		return nil
	})
	return f
}

// waitChange reads the watch until cond holds.
func waitChange(t *testing.T, ch <-chan ovsdb.Change, what string, cond func(ovsdb.Change) bool) ovsdb.Change {
	t.Helper()
	deadline := time.After(20 * time.Second)
	var seen []ovsdb.Change
	for {
		select {
		case c, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed waiting for %s", what)
			}
			if cond(c) {
				return c
			}
			seen = append(seen, c)
		case <-deadline:
			t.Fatalf("no %s within 20s; saw %+v", what, seen)
		}
	}
}

func TestLabBridgeFactsAndWatch(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	h1 := l.AddHost(t, "br0", "h1", lab.HostConfig{IPv4: "10.0.0.1/24", Tag: 10})
	l.AddHost(t, "br0", "h2", lab.HostConfig{IPv4: "10.0.0.2/24", Trunks: []int{20, 30}})
	l.MustVsctl(t, "set", "Bridge", "br0", "other_config:mac-aging-time=77")
	l.MustVsctl(t, "set", "Interface", "h1", "external_ids:attached-mac=52:54:00:00:00:01")
	c := dialLab(t, l)
	ctx := testCtx(t)
	watch := c.Watch(ctx)

	of1, of2 := l.OFPort(t, "h1"), l.OFPort(t, "h2")
	f := waitFacts(t, c, "br0", "ofports and mac", func(b ovsdb.Bridge) bool {
		return b.Ports["h1"].OFPort == uint32(of1) && b.Ports["h2"].OFPort == uint32(of2) && b.DatapathID != 0 &&
			b.Ports["h1"].MAC != nil && b.MACAgingTime == 77*time.Second
	})
	if dpid := l.DatapathID(t, "br0"); f.DatapathID != dpid {
		t.Errorf("DatapathID = %x, ovs-vsctl says %x", f.DatapathID, dpid)
	}
	if f.DatapathType != "netdev" || f.FailMode != "" || len(f.Controllers) != 0 {
		t.Errorf("bridge facts = %+v", f)
	}
	if p := f.Ports["h1"]; p.Tag != 10 || p.MAC.String() != "52:54:00:00:00:01" || p.Type != "" || p.Flowspan {
		t.Errorf("h1 = %+v", p)
	}
	if p := f.Ports["h2"]; p.Tag != 0 || fmt.Sprint(p.Trunks) != "[20 30]" {
		t.Errorf("h2 = %+v", p)
	}
	if p := f.Ports["br0"]; p.OFPort != 65534 || p.Type != "internal" {
		t.Errorf("local port = %+v", p)
	}
	waitChange(t, watch, "initial", func(c ovsdb.Change) bool { return c.Bridge == "br0" && c.Kind&ovsdb.Initial != 0 })

	// VLAN change.
	l.MustVsctl(t, "set", "Port", "h1", "tag=11")
	waitChange(t, watch, "vlan change", func(c ovsdb.Change) bool {
		return c.Kind&ovsdb.PortVLANChanged != 0 && strings.Contains(fmt.Sprint(c.Ports), "h1")
	})

	// Port deleted and re-added: new ofport (forced different, OVS would
	// otherwise reuse the old number for the same name).
	l.MustVsctl(t, "del-port", "br0", h1.Port())
	waitChange(t, watch, "port removed", func(c ovsdb.Change) bool { return c.Kind&ovsdb.PortRemoved != 0 })
	newOF := of1 + 40
	l.MustVsctl(t, "add-port", "br0", h1.Port(), "--", "set", "Interface", h1.Port(), fmt.Sprintf("ofport_request=%d", newOF))
	waitChange(t, watch, "new ofport", func(ch ovsdb.Change) bool {
		if ch.Kind&(ovsdb.PortAdded|ovsdb.PortRenumbered) == 0 {
			return false
		}
		f, err := c.Bridge(ctx, "br0")
		return err == nil && f.Ports["h1"].OFPort == uint32(newOF)
	})
	if got := l.OFPort(t, "h1"); got != newOF {
		t.Fatalf("ovs-vsctl ofport of h1 = %d, want %d", got, newOF)
	}

	// Bridge re-created in one transaction: same name, new row.
	old := f.UUID
	l.MustVsctl(t, "del-br", "br0", "--", "add-br", "br0", "--", "set", "Bridge", "br0", "datapath_type=netdev")
	waitChange(t, watch, "bridge re-created", func(c ovsdb.Change) bool { return c.Kind&ovsdb.BridgeRecreated != 0 })
	if nf, err := c.Bridge(ctx, "br0"); err != nil || nf.UUID == old || len(nf.Ports) != 1 {
		t.Errorf("re-created bridge facts = %+v, %v", nf, err)
	}
	// Bridge deleted, then added.
	l.MustVsctl(t, "del-br", "br0")
	waitChange(t, watch, "bridge removed", func(c ovsdb.Change) bool { return c.Kind&ovsdb.BridgeRemoved != 0 })
	l.AddBridge(t, "br0")
	waitChange(t, watch, "bridge added", func(c ovsdb.Change) bool { return c.Kind&ovsdb.BridgeAdded != 0 })
}

func TestLabOvsdbRestart(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	l.AddHost(t, "br0", "h1", lab.HostConfig{IPv4: "10.0.0.1/24"})
	c := dialLab(t, l)
	ctx := testCtx(t)
	watch := c.Watch(ctx)
	waitChange(t, watch, "initial", func(c ovsdb.Change) bool { return c.Kind&ovsdb.Initial != 0 })

	l.RestartOvsdb(t)
	// The client reconnects by itself and the watch resumes: a port added
	// after the restart is reported, and writes work again.
	l.MustVsctl(t, "add-port", "br0", "extra", "--", "set", "Interface", "extra", "type=internal")
	waitChange(t, watch, "port added after restart", func(c ovsdb.Change) bool {
		return c.Kind&ovsdb.PortAdded != 0 && strings.Contains(fmt.Sprint(c.Ports), "extra")
	})
	if _, err := c.CreateInternalPort(ctx, "br0", "fsmir0"); err != nil {
		t.Fatalf("CreateInternalPort after ovsdb-server restart: %v", err)
	}
	if !c.Connected() {
		t.Error("client reports not connected")
	}
}

func TestLabTunnelPorts(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	h1 := l.AddHost(t, "br0", "h1", lab.HostConfig{IPv4: "10.0.0.1/24"})
	c := dialLab(t, l)
	ctx := testCtx(t)
	remote := netip.MustParseAddr("192.0.2.10")
	for _, tc := range []struct {
		name string
		tun  ovsdb.Tunnel
		want map[string]string // options as ovs-vsctl prints them
	}{
		{"fsgre", ovsdb.Tunnel{Type: "gre", Remote: remote, Key: 100}, map[string]string{"remote_ip": "192.0.2.10", "key": "100"}},
		{"fserspan1", ovsdb.Tunnel{Type: "erspan", Remote: remote, Key: 7, ERSPANIndex: 0x2a},
			map[string]string{"remote_ip": "192.0.2.10", "key": "7", "erspan_ver": "1", "erspan_idx": "0x2a"}},
		{"fserspan2", ovsdb.Tunnel{Type: "erspan", Remote: remote, Key: 8, ERSPANVersion: 2, ERSPANDir: 1, ERSPANHwID: 5},
			map[string]string{"remote_ip": "192.0.2.10", "key": "8", "erspan_ver": "2", "erspan_dir": "1", "erspan_hwid": "0x5"}},
		{"fsvxlan", ovsdb.Tunnel{Type: "vxlan", Remote: remote, Key: 5001}, map[string]string{"remote_ip": "192.0.2.10", "key": "5001"}},
		{"fsgeneve", ovsdb.Tunnel{Type: "geneve", Remote: netip.MustParseAddr("fd00::10"), Key: 77},
			map[string]string{"remote_ip": "fd00::10", "key": "77"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ofp, err := c.CreateTunnelPort(ctx, "br0", tc.name, tc.tun)
			if err != nil {
				t.Fatal(err)
			}
			if got := l.OFPort(t, tc.name); uint32(got) != ofp {
				t.Errorf("ofport %d, ovs-vsctl says %d", ofp, got)
			}
			if typ := strings.TrimSpace(l.MustVsctl(t, "get", "Interface", tc.name, "type")); typ != tc.tun.Type {
				t.Errorf("type = %s", typ)
			}
			if e := strings.TrimSpace(l.MustVsctl(t, "get", "Interface", tc.name, "error")); e != "[]" {
				t.Errorf("interface error: %s", e)
			}
			for k, v := range tc.want {
				got := strings.Trim(strings.TrimSpace(l.MustVsctl(t, "get", "Interface", tc.name, "options:"+k)), `"`)
				if got != v {
					t.Errorf("options:%s = %q, want %q", k, got, v)
				}
			}
			// ovs-vswitchd configured it: the OpenFlow port exists.
			out, err := l.Ofctl("show", "br0")
			if err != nil || !strings.Contains(out, "("+tc.name+")") {
				t.Errorf("ovs-ofctl show lacks %s: %v\n%s", tc.name, err, out)
			}
			if err := c.RemovePort(ctx, "br0", tc.name); err != nil {
				t.Fatal(err)
			}
			lab.Eventually(t, 20*time.Second, func() error {
				if out := l.MustVsctl(t, "list-ports", "br0"); strings.Contains(out, tc.name) {
					return fmt.Errorf("port still listed: %s", out)
				}
				return nil
			})
		})
	}
	if err := c.RemovePort(ctx, "br0", h1.Port()); !errors.Is(err, ovsdb.ErrNotOwned) {
		t.Errorf("RemovePort(host port) = %v, want ErrNotOwned", err)
	}
	if _, err := c.CreateTunnelPort(ctx, "br0", "fsbad", ovsdb.Tunnel{Type: "gre"}); !errors.Is(err, ovsdb.ErrInvalid) {
		t.Errorf("tunnel without remote = %v, want ErrInvalid", err)
	}
	if out := l.MustVsctl(t, "list-ports", "br0"); strings.TrimSpace(out) != h1.Port() {
		t.Errorf("ports left: %q", out)
	}
}

// TestLabInternalPortIsolation: an internal port flowspan creates is up and
// packets output to it can be captured; once isolated, NORMAL floods and
// forwards nothing to it (broadcast, unknown unicast, other VLANs), while
// an explicit OpenFlow output still reaches it.
func TestLabInternalPortIsolation(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	h1 := l.AddHost(t, "br0", "h1", lab.HostConfig{IPv4: "10.0.0.1/24"})
	h2 := l.AddHost(t, "br0", "h2", lab.HostConfig{IPv4: "10.0.0.2/24"})
	h3 := l.AddHost(t, "br0", "h3", lab.HostConfig{IPv4: "10.0.10.3/24", Trunks: []int{10}, VLAN: 10})
	h4 := l.AddHost(t, "br0", "h4", lab.HostConfig{IPv4: "10.0.10.4/24", Tag: 10})
	c := dialLab(t, l)
	ctx := testCtx(t)

	ofp, err := c.CreateInternalPort(ctx, "br0", "fsmir0")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.OFPort(t, "fsmir0"); uint32(got) != ofp {
		t.Fatalf("ofport %d, ovs-vsctl says %d", ofp, got)
	}
	lab.Eventually(t, 20*time.Second, func() error {
		if s := strings.TrimSpace(l.MustVsctl(t, "get", "Interface", "fsmir0", "admin_state")); s != "up" {
			return fmt.Errorf("admin_state %s", s)
		}
		return nil
	})

	traffic := func() {
		// broadcast ARP for an absent host, unicast ping, VLAN 10 flood
		h1.Ping(t, netip.MustParseAddr("10.0.0.99"), 2)
		if n := h1.Ping(t, h2.IPv4(), 3); n != 3 {
			t.Errorf("h1->h2 ping: %d/3", n)
		}
		if n := h3.Ping(t, h4.IPv4(), 3); n != 3 {
			t.Errorf("h3->h4 ping (VLAN 10): %d/3", n)
		}
		h1.SendUDP(t, netip.MustParseAddr("10.0.0.255"), 4000, 4001, 64, 3)
	}

	// Control: not isolated, the port receives floods (so the capture
	// below would see leaks).
	capt := l.Capture(t, "fsmir0")
	traffic()
	if pkts := capt.Stop(t); len(pkts) == 0 {
		t.Fatal("control: nothing flooded to the non-isolated internal port")
	}

	if err := c.IsolatePort(ctx, "br0", "fsmir0"); err != nil {
		t.Fatal(err)
	}
	lab.Eventually(t, 20*time.Second, func() error {
		if s := strings.TrimSpace(l.MustVsctl(t, "get", "Port", "fsmir0", "tag")); s != "4095" {
			return fmt.Errorf("tag %s", s)
		}
		return nil
	})
	capt = l.Capture(t, "fsmir0")
	traffic()
	if pkts := capt.Stop(t); len(pkts) != 0 {
		t.Errorf("isolated port received %d packets from NORMAL:\n%s", len(pkts), lab.Summary(pkts))
	}

	// An OpenFlow output still reaches it.
	if _, err := l.Ofctl("add-flow", "br0", fmt.Sprintf("priority=10,in_port=%s,icmp,actions=NORMAL,output:%d", h1.Port(), ofp)); err != nil {
		t.Fatal(err)
	}
	capt = l.Capture(t, "fsmir0")
	if n := h1.Ping(t, h2.IPv4(), 3); n != 3 {
		t.Errorf("h1->h2 with mirror flow: %d/3", n)
	}
	pkts := lab.Filter(capt.Stop(t), lab.ICMPEcho)
	if len(pkts) != 3 {
		t.Errorf("explicit output: %d echo requests on fsmir0, want 3:\n%s", len(pkts), lab.Summary(pkts))
	}

	if err := c.UnisolatePort(ctx, "br0", "fsmir0"); err != nil {
		t.Fatal(err)
	}
	lab.Eventually(t, 20*time.Second, func() error {
		if s := strings.TrimSpace(l.MustVsctl(t, "get", "Port", "fsmir0", "tag")); s != "[]" {
			return fmt.Errorf("tag %s", s)
		}
		return nil
	})
}

// pinger runs `ping -i 0.01` and records which sequence numbers were
// answered.
type pinger struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	got  map[int]bool
	max  int
	sent int
	done chan struct{}
}

var (
	seqRE  = regexp.MustCompile(`bytes from .*icmp_seq=(\d+)`)
	sentRE = regexp.MustCompile(`(\d+) packets transmitted`)
)

func startPinger(t *testing.T, netns string, dst netip.Addr) *pinger {
	t.Helper()
	p := &pinger{got: map[int]bool{}, done: make(chan struct{})}
	p.cmd = exec.Command("ip", "netns", "exec", netns, "ping", "-n", "-i", "0.01", dst.String())
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			if m := seqRE.FindStringSubmatch(line); m != nil {
				n, _ := strconv.Atoi(m[1])
				p.got[n] = true
				p.max = max(p.max, n)
			} else if m := sentRE.FindStringSubmatch(line); m != nil {
				p.sent, _ = strconv.Atoi(m[1])
			}
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.done; _ = p.cmd.Wait() })
	return p
}

// mark returns the highest answered sequence number so far.
func (p *pinger) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.max
}

// waitMore waits until n more replies than now have arrived.
func (p *pinger) waitMore(t *testing.T, n int) {
	t.Helper()
	p.mu.Lock()
	want := len(p.got) + n
	p.mu.Unlock()
	lab.Eventually(t, 20*time.Second, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.got) < want {
			return fmt.Errorf("ping: %d replies, waiting for %d", len(p.got), want)
		}
		return nil
	})
}

// stop interrupts ping and returns how many requests it sent and which
// sequence numbers below the last answered one went unanswered (requests
// still in flight at the end are not counted as lost).
func (p *pinger) stop(t *testing.T) (sent int, lost []int) {
	t.Helper()
	_ = p.cmd.Process.Signal(os.Interrupt)
	<-p.done
	_ = p.cmd.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 1; i < p.max; i++ {
		if !p.got[i] {
			lost = append(lost, i)
		}
	}
	return p.sent, lost
}

func listBridge(t *testing.T, l *lab.Lab, br string) string {
	t.Helper()
	return l.MustVsctl(t, "list", "Bridge", br)
}

// waitSameBridge polls until `ovs-vsctl list Bridge` equals before: every
// column is compared, none is treated as volatile.
func waitSameBridge(t *testing.T, l *lab.Lab, br, before string) {
	t.Helper()
	var after string
	deadline := time.Now().Add(10 * time.Second)
	for {
		after = listBridge(t, l, br)
		if after == before || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if after != before {
		t.Errorf("ovs-vsctl list Bridge %s changed by hand-over + release:\nbefore:\n%s\nafter:\n%s", br, before, after)
	}
}

func TestLabHandOverServiceModeZeroLoss(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	h1 := l.AddHost(t, "br0", "h1", lab.HostConfig{IPv4: "10.0.0.1/24"})
	h2 := l.AddHost(t, "br0", "h2", lab.HostConfig{IPv4: "10.0.0.2/24"})
	c := dialLab(t, l)
	ctx := testCtx(t)
	before := listBridge(t, l, "br0")

	p := startPinger(t, h1.Netns(), h2.IPv4())
	p.waitMore(t, 50)
	dial, err := c.TakeOver(ctx, "br0", ovsdb.ServiceMode{})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(l.RunDir(), "br0.flowspan")
	if dial != "unix:"+sock {
		t.Errorf("dial target %q, want unix:%s", dial, sock)
	}
	// ovs-vswitchd listens there and speaks OpenFlow (nobody needs to be
	// connected for forwarding to go on; this only proves the target).
	lab.Eventually(t, 20*time.Second, func() error {
		conn, err := net.DialTimeout("unix", sock, time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		var hdr [8]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return err
		}
		if hdr[1] != 0 { // OFPT_HELLO
			return fmt.Errorf("first message type %d, want HELLO", hdr[1])
		}
		return nil
	})
	if f := l.DumpFlows(t, "br0"); !strings.Contains(f, "actions=NORMAL") {
		t.Errorf("NORMAL flow gone after service hand-over:\n%s", f)
	}
	if fm := strings.TrimSpace(l.MustVsctl(t, "get", "Bridge", "br0", "fail_mode")); fm != "[]" {
		t.Errorf("fail_mode changed to %s", fm)
	}
	p.waitMore(t, 50)
	if _, err := c.TakeOver(ctx, "br0", ovsdb.ServiceMode{}); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := c.Release(ctx, "br0"); err != nil {
		t.Fatal(err)
	}
	p.waitMore(t, 50)
	sent, lost := p.stop(t)
	t.Logf("service mode: %d pings 10 ms apart across hand-over and release, %d lost %v", sent, len(lost), lost)
	if len(lost) != 0 {
		t.Errorf("service mode hand-over/release lost %d pings: seq %v", len(lost), lost)
	}
	waitSameBridge(t, l, "br0", before)
}

func TestLabHandOverControllerModeLoss(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	h1 := l.AddHost(t, "br0", "h1", lab.HostConfig{IPv4: "10.0.0.1/24"})
	h2 := l.AddHost(t, "br0", "h2", lab.HostConfig{IPv4: "10.0.0.2/24"})
	c := dialLab(t, l)
	ctx := testCtx(t)
	before := listBridge(t, l, "br0")

	// The controller is listening and its "pipeline" (one NORMAL flow)
	// ready before the OVSDB transaction, as ControllerMode requires.
	sock := filepath.Join(l.Dir(), "flowspan-ctl.sock")
	ctl := startMiniController(t, sock)

	p := startPinger(t, h1.Netns(), h2.IPv4())
	p.waitMore(t, 50)
	start := time.Now()
	if _, err := c.TakeOver(ctx, "br0", ovsdb.ControllerMode{Target: "unix:" + sock}); err != nil {
		t.Fatal(err)
	}
	var installed time.Duration
	select {
	case at := <-ctl.installed:
		installed = at.Sub(start)
	case <-time.After(20 * time.Second):
		t.Fatalf("switch never connected to the controller; flows:\n%s", l.DumpFlows(t, "br0"))
	}
	if fm := strings.TrimSpace(l.MustVsctl(t, "get", "Bridge", "br0", "fail_mode")); fm != "secure" {
		t.Errorf("fail_mode %s, want secure", fm)
	}
	// OVS flushed the table (the default NORMAL flow, cookie 0, is gone)
	// and only the controller's flow forwards.
	flows := l.DumpFlows(t, "br0")
	if !strings.Contains(flows, fmt.Sprintf("cookie=%#x", miniCookie)) || strings.Contains(flows, "cookie=0x0,") {
		t.Errorf("after controller hand-over, want only the controller's flow:\n%s", flows)
	}
	p.waitMore(t, 50)
	releaseMark := p.mark()
	if err := c.Release(ctx, "br0"); err != nil {
		t.Fatal(err)
	}
	p.waitMore(t, 50)
	sent, lost := p.stop(t)
	var handLost, relLost int
	for _, s := range lost {
		if s <= releaseMark {
			handLost++
		} else {
			relLost++
		}
	}
	t.Logf("controller mode: %d pings 10 ms apart; hand-over lost %d (≈%d ms), release lost %d (≈%d ms); "+
		"the switch connected and NORMAL was installed %v after TakeOver started",
		sent, handLost, handLost*10, relLost, relLost*10, installed.Round(time.Millisecond))
	waitSameBridge(t, l, "br0", before)
	if f := l.DumpFlows(t, "br0"); !strings.Contains(f, "actions=NORMAL") {
		t.Errorf("no NORMAL flow after release:\n%s", f)
	}
}

// miniController is the least an OpenFlow 1.3 controller does for the
// hand-over measurement: HELLO, answer echoes, and on the switch's HELLO
// install priority=0,actions=NORMAL followed by a barrier.
type miniController struct {
	installed chan time.Time
}

func startMiniController(t *testing.T, path string) *miniController {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	m := &miniController{installed: make(chan time.Time, 16)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[conn] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				m.serve(t, conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return m
}

func ofMsg(typ uint8, xid uint32, body []byte) []byte {
	b := make([]byte, 8+len(body))
	b[0] = 4 // OpenFlow 1.3
	b[1] = typ
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint32(b[4:], xid)
	copy(b[8:], body)
	return b
}

// miniCookie marks the mini controller's flow.
const miniCookie = 0xf10f

// normalFlowMod is OFPT_FLOW_MOD add, table 0, priority 0, match all,
// apply-actions output:NORMAL.
func normalFlowMod() []byte {
	body := make([]byte, 40+8+24)
	binary.BigEndian.PutUint64(body[0:], miniCookie)
	body[17] = 0                                      // command ADD (table_id 0 at [16])
	binary.BigEndian.PutUint32(body[24:], 0xffffffff) // buffer_id NO_BUFFER
	binary.BigEndian.PutUint32(body[28:], 0xffffffff) // out_port ANY
	binary.BigEndian.PutUint32(body[32:], 0xffffffff) // out_group ANY
	binary.BigEndian.PutUint16(body[40:], 1)          // match type OXM
	binary.BigEndian.PutUint16(body[42:], 4)          // match length (no fields)
	binary.BigEndian.PutUint16(body[48:], 4)          // OFPIT_APPLY_ACTIONS
	binary.BigEndian.PutUint16(body[50:], 24)         // instruction length
	binary.BigEndian.PutUint16(body[56:], 0)          // OFPAT_OUTPUT
	binary.BigEndian.PutUint16(body[58:], 16)         // action length
	binary.BigEndian.PutUint32(body[60:], 0xfffffffa) // OFPP_NORMAL
	binary.BigEndian.PutUint16(body[64:], 0xffff)     // max_len
	return body
}

func (m *miniController) serve(t *testing.T, conn net.Conn) {
	if _, err := conn.Write(ofMsg(0, 1, nil)); err != nil {
		return
	}
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[2:]))
		if n < 8 {
			return
		}
		body := make([]byte, n-8)
		if _, err := io.ReadFull(conn, body); err != nil {
			return
		}
		xid := binary.BigEndian.Uint32(hdr[4:])
		switch hdr[1] {
		case 0: // HELLO from the switch
			msg := append(ofMsg(14, 2, normalFlowMod()), ofMsg(20, 3, nil)...)
			if _, err := conn.Write(msg); err != nil {
				return
			}
		case 1: // ERROR
			t.Errorf("switch sent OpenFlow error: %x", body)
		case 2: // ECHO_REQUEST
			if _, err := conn.Write(ofMsg(3, xid, body)); err != nil {
				return
			}
		case 21: // BARRIER_REPLY
			select {
			case m.installed <- time.Now():
			default:
			}
		}
	}
}

// TestLabInternalPortKeptUp: flowspan's internal port stays up across an
// ovs-vswitchd restart, and is brought up again when something takes it
// down (ovs-vswitchd reports admin_state down; the client's watch loop
// reacts).
func TestLabInternalPortKeptUp(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	c := dialLab(t, l)
	ctx := testCtx(t)
	if _, err := c.CreateInternalPort(ctx, "br0", "fsmir0"); err != nil {
		t.Fatal(err)
	}
	adminUp := func() error {
		if s := strings.TrimSpace(l.MustVsctl(t, "get", "Interface", "fsmir0", "admin_state")); s != "up" {
			return fmt.Errorf("admin_state %s", s)
		}
		return nil
	}
	lab.Eventually(t, 20*time.Second, adminUp)
	l.RestartVswitchd(t)
	lab.Eventually(t, 30*time.Second, adminUp)
	if out, err := exec.Command("ip", "-n", l.Netns(), "link", "set", "fsmir0", "down").CombinedOutput(); err != nil {
		t.Fatalf("ip link set down: %v: %s", err, out)
	}
	lab.Eventually(t, 30*time.Second, func() error {
		out, err := exec.Command("ip", "-n", l.Netns(), "-o", "link", "show", "fsmir0").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.Contains(string(out), ",UP") && !strings.Contains(string(out), "<UP") {
			return fmt.Errorf("fsmir0 still down: %s", out)
		}
		return nil
	})
	lab.Eventually(t, 30*time.Second, adminUp)

	// A client that cannot reach the port's namespace fails, and the port
	// it created is gone again.
	bad, err := ovsdb.Dial(ctx, l.DBEndpoint(), ovsdb.Config{Logger: labLogger(t), Netns: "fsl-no-such-netns"})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := bad.CreateInternalPort(ctx, "br0", "fsmir1"); err == nil || !strings.Contains(err.Error(), "fsl-no-such-netns") {
		t.Fatalf("CreateInternalPort with a bad netns = %v", err)
	}
	if out := l.MustVsctl(t, "list-ports", "br0"); strings.Contains(out, "fsmir1") {
		t.Errorf("fsmir1 left on the bridge: %s", out)
	}
}

// TakeOver with ports to isolate does both in one transaction: one OVSDB
// change, after which the controller row and the isolated port are there
// together; a port name that does not exist fails and changes nothing.
func TestLabTakeOverIsolating(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	l.AddInternalPort(t, "br0", "out0", 7)
	c := dialLab(t, l)
	ctx := testCtx(t)
	before := listBridge(t, l, "br0")
	tagBefore := strings.TrimSpace(l.MustVsctl(t, "get", "Port", "out0", "tag"))

	if _, err := c.TakeOver(ctx, "br0", ovsdb.ServiceMode{}, "out0", "nope"); !errors.Is(err, ovsdb.ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("take over isolating a missing port: %v, want ErrNotFound naming it", err)
	}
	if got := listBridge(t, l, "br0"); got != before {
		t.Fatalf("failed take over changed the bridge:\n%s\nwas:\n%s", got, before)
	}
	if tag := strings.TrimSpace(l.MustVsctl(t, "get", "Port", "out0", "tag")); tag != tagBefore {
		t.Fatalf("failed take over changed out0's tag to %s", tag)
	}

	if _, err := c.TakeOver(ctx, "br0", ovsdb.ServiceMode{}, "out0"); err != nil {
		t.Fatal(err)
	}
	// Both changes are visible in the same committed state.
	if tag := strings.TrimSpace(l.MustVsctl(t, "get", "Port", "out0", "tag")); tag != "4095" {
		t.Errorf("out0 tag %s after take over, want 4095", tag)
	}
	if ct := l.MustVsctl(t, "get-controller", "br0"); !strings.Contains(ct, "br0.flowspan") {
		t.Errorf("controllers %q after take over, want the flowspan target", ct)
	}
	if err := c.Release(ctx, "br0"); err != nil {
		t.Fatal(err)
	}
	if err := c.UnisolatePort(ctx, "br0", "out0"); err != nil {
		t.Fatal(err)
	}
	waitSameBridge(t, l, "br0", before)
	if tag := strings.TrimSpace(l.MustVsctl(t, "get", "Port", "out0", "tag")); tag != tagBefore {
		t.Errorf("out0 tag %s after release, want %s", tag, tagBefore)
	}
}

// IsolatePort returns once ovs-vswitchd has applied the change (cur_cfg
// caught up with the next_cfg its transaction set), and fails naming the
// wait when ovs-vswitchd does not apply it in time.
func TestLabIsolatePortWaitsForVswitchd(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	l.AddInternalPort(t, "br0", "out0", 0)
	l.AddInternalPort(t, "br0", "out1", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := ovsdb.Dial(ctx, l.DBEndpoint(), ovsdb.Config{Logger: labLogger(t), Netns: l.Netns(),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, ApplyTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfgs := func() (cur, next int) {
		out := l.MustVsctl(t, "get", "Open_vSwitch", ".", "cur_cfg", "next_cfg")
		f := strings.Fields(out)
		if len(f) != 2 {
			t.Fatalf("cur_cfg next_cfg: %q", out)
		}
		cur, _ = strconv.Atoi(f[0])
		next, _ = strconv.Atoi(f[1])
		return cur, next
	}
	_, before := cfgs()
	if err := c.IsolatePort(ctx, "br0", "out0"); err != nil {
		t.Fatal(err)
	}
	if cur, next := cfgs(); next != before+1 || cur < next {
		t.Fatalf("after IsolatePort: cur_cfg %d next_cfg %d (next_cfg was %d): returned before ovs-vswitchd applied it", cur, next, before)
	}
	l.StopVswitchd(t)
	defer l.StartVswitchd(t)
	err = c.IsolatePort(ctx, "br0", "out1")
	if err == nil || !strings.Contains(err.Error(), "has not applied") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("IsolatePort with ovs-vswitchd stopped: %v, want a timeout saying it was not applied", err)
	}
}

// TestLabSync: after Sync the cache holds what another client committed
// just before, even when that client did not wait for ovs-vswitchd.
func TestLabSync(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	c := dialLab(t, l)
	ctx := testCtx(t)
	if _, err := c.Bridge(ctx, "br0"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		name := fmt.Sprintf("p%d", i)
		l.MustVsctl(t, "--no-wait", "add-port", "br0", name, "--", "set", "Interface", name, "type=internal")
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		b, err := c.Bridge(ctx, "br0")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := b.Ports[name]; !ok {
			t.Fatalf("round %d: port %s not in the cache after Sync", i, name)
		}
	}
}
