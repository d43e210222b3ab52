package ovsdb

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logrustest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"

	"github.com/flowspan/flowspan/ovsdb/vswitchd"
)

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		in      string
		wantErr bool
	}{
		{"unix:/run/openvswitch/db.sock", false},
		{"tcp:127.0.0.1:6640", false},
		{"tcp:[::1]:6640", false},
		{"ssl:10.0.0.1:6640", false},
		{"unix:relative.sock", true},
		{"unix:", true},
		{"tcp:127.0.0.1", true},
		{"ptcp:6640", true},
		{"/run/openvswitch/db.sock", true},
		{"", true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, _, err := parseEndpoint(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseEndpoint(%q) = %v, want error %v", tc.in, err, tc.wantErr)
			}
			if err != nil && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.in)) {
				t.Fatalf("error %q does not name the endpoint or wrap ErrInvalid", err)
			}
		})
	}
}

func TestDialErrors(t *testing.T) {
	ctx := ctxT(t, 5*time.Second)
	if _, err := Dial(ctx, "ssl:127.0.0.1:6640", Config{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ssl without TLS: got %v, want ErrInvalid", err)
	}
	// Nothing listens: Dial keeps retrying until its context ends.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err := Dial(short, "unix:"+t.TempDir()+"/none.sock", Config{MinBackoff: 10 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "none.sock") {
		t.Fatalf("got %v, want deadline error naming the endpoint", err)
	}
}

func TestBridgeFacts(t *testing.T) {
	m := newMemDB(t)
	tag := 10
	trunk := vswitchd.PortVLANModeTrunk
	m.addBridge("br0",
		vswitchd.Port{Name: "vm1", Tag: &tag},
		vswitchd.Port{Name: "up1", Trunks: []int{30, 20}, VLANMode: &trunk},
	)
	m.setOFPort("vm1", 3)
	// attached-mac and bridge settings as a hypervisor / admin would set them
	ifc := &vswitchd.Interface{Name: "vm1", ExternalIDs: map[string]string{"attached-mac": "52:54:00:12:34:56"}}
	ops, _ := m.raw.WhereCache(func(i *vswitchd.Interface) bool { return i.Name == "vm1" }).Update(ifc, &ifc.ExternalIDs)
	m.transact(ops...)
	dpid := "00000000000000ab"
	fm := vswitchd.BridgeFailModeSecure
	br := &vswitchd.Bridge{Name: "br0", DatapathID: &dpid, FailMode: &fm, OtherConfig: map[string]string{"mac-aging-time": "42"}}
	ops, _ = m.raw.WhereCache(func(b *vswitchd.Bridge) bool { return b.Name == "br0" }).Update(br, &br.DatapathID, &br.FailMode, &br.OtherConfig)
	m.transact(ops...)

	c := dialMem(t, m, Config{})
	ctx := ctxT(t, 10*time.Second)
	var got Bridge
	// The cache follows the server asynchronously: poll until it shows
	// the last write.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		got, err = c.Bridge(ctx, "br0")
		if err != nil {
			t.Fatal(err)
		}
		if got.DatapathID != 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := Bridge{
		Name: "br0", UUID: got.UUID, DatapathID: 0xab, DatapathType: "netdev", FailMode: "secure",
		MACAgingTime: 42 * time.Second,
		Ports: map[string]Port{
			"vm1": {Name: "vm1", OFPort: 3, Tag: 10, MAC: net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56},
				Interfaces: []Interface{{Name: "vm1", OFPort: 3}}},
			"up1": {Name: "up1", Trunks: []uint16{20, 30}, VLANMode: "trunk", Interfaces: []Interface{{Name: "up1"}}},
		},
	}
	// Ports compare by what they expose (not Error or the unexported
	// bookkeeping); MACs by text, so nil and empty are the same.
	view := func(b Bridge) Bridge {
		ports := map[string]Port{}
		for n, p := range b.Ports {
			ports[n] = Port{Name: p.Name, OFPort: p.OFPort, Type: p.Type, Tag: p.Tag, Trunks: p.Trunks, VLANMode: p.VLANMode,
				MAC: net.HardwareAddr(p.MAC.String()), Flowspan: p.Flowspan, Isolated: p.Isolated, Interfaces: p.Interfaces}
		}
		b.Ports = ports
		return b
	}
	assert.Equal(t, view(want), view(got), "Bridge(br0)")
	if _, err := c.Bridge(ctx, "nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Bridge(nope) = %v, want ErrNotFound naming the bridge", err)
	}
	names, err := c.Bridges(ctx)
	if err != nil || !reflect.DeepEqual(names, []string{"br0"}) {
		t.Errorf("Bridges = %v, %v", names, err)
	}
}

func TestWatch(t *testing.T) {
	m := newMemDB(t)
	m.addBridge("br0", vswitchd.Port{Name: "vm1"})
	c := dialMem(t, m, Config{})
	ctx := ctxT(t, 20*time.Second)
	ch := c.Watch(ctx)
	if got := nextChange(t, ch); got.Bridge != "br0" || got.Kind != Initial {
		t.Fatalf("first change = %+v, want Initial br0", got)
	}

	m.setOFPort("vm1", 5)
	got := waitChange(t, ch, "renumbered", func(c Change) bool { return c.Kind&PortRenumbered != 0 })
	if !reflect.DeepEqual(got.Ports, []string{"vm1"}) {
		t.Errorf("renumber change ports = %v", got.Ports)
	}

	tag := 20
	p := &vswitchd.Port{Tag: &tag}
	ops, _ := m.raw.WhereCache(func(p *vswitchd.Port) bool { return p.Name == "vm1" }).Update(p, &p.Tag)
	m.transact(ops...)
	waitChange(t, ch, "vlan change", func(c Change) bool { return c.Kind&PortVLANChanged != 0 })

	// Port removed, then re-added with a new ofport.
	pt := m.raw.Cache().Table(vswitchd.PortTable)
	var portUUID string
	for u, r := range pt.Rows() {
		if r.(*vswitchd.Port).Name == "vm1" {
			portUUID = u
		}
	}
	br := &vswitchd.Bridge{Name: "br0"}
	ops, _ = m.raw.WhereCache(func(b *vswitchd.Bridge) bool { return b.Name == "br0" }).Mutate(br,
		modelMutation(&br.Ports, "delete", []string{portUUID}))
	m.transact(ops...)
	waitChange(t, ch, "port removed", func(c Change) bool { return c.Kind&PortRemoved != 0 })

	// Bridge deleted and re-created under the same name.
	brUUID := m.bridgeRow("br0").UUID
	ovs := &vswitchd.OpenvSwitch{}
	ops, _ = m.raw.WhereCache(func(*vswitchd.OpenvSwitch) bool { return true }).Mutate(ovs,
		modelMutation(&ovs.Bridges, "delete", []string{brUUID}))
	m.transact(ops...)
	waitChange(t, ch, "bridge removed", func(c Change) bool { return c.Kind&BridgeRemoved != 0 })
	m.addBridge("br0", vswitchd.Port{Name: "vm1"})
	got = waitChange(t, ch, "bridge added", func(c Change) bool { return c.Kind&BridgeAdded != 0 })
	if !reflect.DeepEqual(got.Ports, []string{"vm1"}) {
		t.Errorf("bridge added ports = %v", got.Ports)
	}
	m.setOFPort("vm1", 6)
	waitChange(t, ch, "renumbered after re-add", func(c Change) bool { return c.Kind&PortRenumbered != 0 })
	f, err := c.Bridge(ctx, "br0")
	if err != nil || f.Ports["vm1"].OFPort != 6 {
		t.Errorf("after re-add: vm1 ofport %d, %v; want 6", f.Ports["vm1"].OFPort, err)
	}
}

func TestDiffBridgeRecreated(t *testing.T) {
	old := Bridge{Name: "br0", UUID: "a", Ports: map[string]Port{"p": {Name: "p", OFPort: 1}}}
	cur := Bridge{Name: "br0", UUID: "b", Ports: map[string]Port{"p": {Name: "p", OFPort: 2}}}
	ch := diffBridge(old, cur)
	if ch.Kind != BridgeRecreated|PortRenumbered || !reflect.DeepEqual(ch.Ports, []string{"p"}) {
		t.Fatalf("diff = %v %v", ch.Kind, ch.Ports)
	}
	if s := (BridgeRecreated | PortAdded).String(); s != "bridge-recreated|port-added" {
		t.Errorf("String = %q", s)
	}
}

func TestReconnect(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs after every other cleanup
	m := newMemDB(t)
	m.addBridge("br0", vswitchd.Port{Name: "vm1"})
	c := dialMem(t, m, Config{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	ctx := ctxT(t, 20*time.Second)
	ch := c.Watch(ctx)
	nextChange(t, ch) // Initial

	m.proxy.stop()
	deadline := time.Now().Add(5 * time.Second)
	for c.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("client did not notice the disconnect")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// While disconnected: reads wait for the connection until ctx ends.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := c.Bridge(short, "br0")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Bridge while disconnected = %v, want deadline exceeded", err)
	}
	// Changed during the outage: reported after the reconnect.
	m.setOFPort("vm1", 7)
	m.proxy.start()
	got := waitChange(t, ch, "renumber after reconnect", func(c Change) bool { return c.Kind&PortRenumbered != 0 })
	if got.Bridge != "br0" {
		t.Fatalf("change %+v", got)
	}
	f, err := c.Bridge(ctx, "br0")
	if err != nil || f.Ports["vm1"].OFPort != 7 {
		t.Fatalf("after reconnect: %+v %v", f.Ports["vm1"], err)
	}
	// Close while disconnected stops everything (goleak checks).
	m.proxy.stop()
	deadline = time.Now().Add(5 * time.Second)
	for c.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("client did not notice the second disconnect")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.Close()
	if _, ok := <-ch; ok {
		t.Fatal("watch channel not closed by Close")
	}
	if _, err := c.Bridge(ctx, "br0"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Bridge after Close = %v, want ErrClosed", err)
	}
}

func TestTunnelOptions(t *testing.T) {
	r4 := netip.MustParseAddr("192.0.2.9")
	for _, tc := range []struct {
		name string
		tun  Tunnel
		want map[string]string
		err  string
	}{
		{"gre", Tunnel{Type: "gre", Remote: r4, Key: 7}, map[string]string{"remote_ip": "192.0.2.9", "key": "7"}, ""},
		{"gre-nokey", Tunnel{Type: "gre", Remote: r4}, map[string]string{"remote_ip": "192.0.2.9"}, ""},
		{"vxlan", Tunnel{Type: "vxlan", Remote: r4, Key: 5000, DstPort: 4790}, map[string]string{"remote_ip": "192.0.2.9", "key": "5000", "dst_port": "4790"}, ""},
		{"geneve-v6", Tunnel{Type: "geneve", Remote: netip.MustParseAddr("fd00::9"), Local: netip.MustParseAddr("fd00::1"), Key: 1}, map[string]string{"remote_ip": "fd00::9", "local_ip": "fd00::1", "key": "1"}, ""},
		{"erspan-v1", Tunnel{Type: "erspan", Remote: r4, Key: 1, ERSPANIndex: 0x1f}, map[string]string{"remote_ip": "192.0.2.9", "key": "1", "erspan_ver": "1", "erspan_idx": "0x1f"}, ""},
		{"erspan-v2", Tunnel{Type: "erspan", Remote: r4, Key: 2, ERSPANVersion: 2, ERSPANDir: 1, ERSPANHwID: 12}, map[string]string{"remote_ip": "192.0.2.9", "key": "2", "erspan_ver": "2", "erspan_dir": "1", "erspan_hwid": "0xc"}, ""},
		{"no-remote", Tunnel{Type: "gre"}, nil, "remote IP"},
		{"bad-type", Tunnel{Type: "stt", Remote: r4}, nil, `unknown type "stt"`},
		{"vni-too-big", Tunnel{Type: "vxlan", Remote: r4, Key: 1 << 24}, nil, "24 bits"},
		{"session-too-big", Tunnel{Type: "erspan", Remote: r4, Key: 1024}, nil, "10 bits"},
		{"v1-with-dir", Tunnel{Type: "erspan", Remote: r4, ERSPANDir: 1}, nil, "v1 takes an index"},
		{"v2-with-idx", Tunnel{Type: "erspan", Remote: r4, ERSPANVersion: 2, ERSPANIndex: 1}, nil, "v2 takes dir/hwid"},
		{"hwid-too-big", Tunnel{Type: "erspan", Remote: r4, ERSPANVersion: 2, ERSPANHwID: 64}, nil, "6 bits"},
		{"version-3", Tunnel{Type: "erspan", Remote: r4, ERSPANVersion: 3}, nil, "version 3"},
		{"erspan-on-gre", Tunnel{Type: "gre", Remote: r4, ERSPANIndex: 1}, nil, "non-erspan"},
		{"dstport-on-gre", Tunnel{Type: "gre", Remote: r4, DstPort: 1}, nil, "dst_port"},
		{"mixed-family", Tunnel{Type: "gre", Remote: r4, Local: netip.MustParseAddr("fd00::1")}, nil, "different families"},
		{"multicast", Tunnel{Type: "vxlan", Remote: netip.MustParseAddr("239.1.1.1")}, nil, "unicast"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.tun.Options()
			if tc.err != "" {
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Options() error = %v, want ErrInvalid containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assert.Equal(t, tc.want, got, "Options()")
		})
	}
}

func TestPortsInMemory(t *testing.T) {
	m := newMemDB(t)
	m.addBridge("br0", vswitchd.Port{Name: "vm1"})
	m.addBridge("br1", vswitchd.Port{Name: "other"})
	m.fakeVswitchd()
	c := dialMem(t, m, Config{})
	ctx := ctxT(t, 20*time.Second)

	ofp, err := c.CreateTunnelPort(ctx, "br0", "gre0", Tunnel{Type: "gre", Remote: netip.MustParseAddr("192.0.2.1"), Key: 9})
	if err != nil || ofp == 0 {
		t.Fatalf("CreateTunnelPort = %d, %v", ofp, err)
	}
	// Same again: no-op, same ofport.
	if ofp2, err := c.CreateTunnelPort(ctx, "br0", "gre0", Tunnel{Type: "gre", Remote: netip.MustParseAddr("192.0.2.1"), Key: 9}); err != nil || ofp2 != ofp {
		t.Fatalf("repeat CreateTunnelPort = %d, %v; want %d", ofp2, err, ofp)
	}
	// Other options under the same name: refused.
	if _, err := c.CreateTunnelPort(ctx, "br0", "gre0", Tunnel{Type: "gre", Remote: netip.MustParseAddr("192.0.2.2")}); !errors.Is(err, ErrExists) {
		t.Fatalf("conflicting CreateTunnelPort = %v, want ErrExists", err)
	}
	var ifs []vswitchd.Interface
	_ = m.raw.WhereCache(func(i *vswitchd.Interface) bool { return i.Name == "gre0" }).List(ctx, &ifs)
	if len(ifs) != 1 || ifs[0].Type != "gre" || ifs[0].Options["remote_ip"] != "192.0.2.1" || ifs[0].Options["key"] != "9" ||
		ifs[0].ExternalIDs[keyCreated] != "true" {
		t.Fatalf("gre0 interface row = %+v", ifs)
	}
	// Existing non-flowspan names are refused, here and on other bridges.
	for _, name := range []string{"vm1", "other"} {
		if _, err := c.CreateInternalPort(ctx, "br0", name); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), name) {
			t.Errorf("CreateInternalPort(%s) = %v, want ErrExists", name, err)
		}
	}
	for _, bad := range []string{"", "a/b", "waytoolongname16"} {
		if _, err := c.CreateInternalPort(ctx, "br0", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateInternalPort(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := c.CreateInternalPort(ctx, "nobr", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("CreateInternalPort on missing bridge = %v", err)
	}
	if _, err := c.CreateInternalPort(ctx, "br0", "mir0"); err != nil {
		t.Fatal(err)
	}
	f, err := c.Bridge(ctx, "br0")
	if err != nil {
		t.Fatal(err)
	}
	if p := f.Ports["mir0"]; !p.Flowspan || p.Type != "internal" || p.OFPort == 0 {
		t.Fatalf("mir0 facts = %+v", p)
	}

	// Isolation and its undo.
	tag := 5
	p := &vswitchd.Port{Tag: &tag, Trunks: []int{1, 2}}
	ops, _ := m.raw.WhereCache(func(p *vswitchd.Port) bool { return p.Name == "vm1" }).Update(p, &p.Tag, &p.Trunks)
	m.transact(ops...)
	waitPort(t, c, "br0", "vm1", func(p Port) bool { return p.Tag == 5 })
	for range 2 { // idempotent
		if err := c.IsolatePort(ctx, "br0", "vm1"); err != nil {
			t.Fatal(err)
		}
	}
	got := waitPort(t, c, "br0", "vm1", func(p Port) bool { return p.Isolated })
	if got.Tag != 4095 || got.VLANMode != "access" || len(got.Trunks) != 0 {
		t.Fatalf("isolated vm1 = %+v", got)
	}
	if err := c.UnisolatePort(ctx, "br0", "vm1"); err != nil {
		t.Fatal(err)
	}
	got = waitPort(t, c, "br0", "vm1", func(p Port) bool { return !p.Isolated })
	if got.Tag != 5 || got.VLANMode != "" || !reflect.DeepEqual(got.Trunks, []uint16{1, 2}) {
		t.Fatalf("restored vm1 = %+v", got)
	}
	var pts []vswitchd.Port
	_ = m.raw.WhereCache(func(p *vswitchd.Port) bool { return p.Name == "vm1" }).List(ctx, &pts)
	if len(pts) != 1 || len(pts[0].ExternalIDs) != 0 {
		t.Fatalf("vm1 external_ids after unisolate = %v", pts[0].ExternalIDs)
	}

	// Removal: only flowspan's ports.
	if err := c.RemovePort(ctx, "br0", "vm1"); !errors.Is(err, ErrNotOwned) || !strings.Contains(err.Error(), `"vm1"`) {
		t.Fatalf("RemovePort(vm1) = %v, want ErrNotOwned", err)
	}
	for _, name := range []string{"gre0", "mir0", "mir0"} {
		if err := c.RemovePort(ctx, "br0", name); err != nil {
			t.Fatalf("RemovePort(%s) = %v", name, err)
		}
	}
	waitPort(t, c, "br0", "gre0", nil)
	// Garbage collection removed the Interface row too.
	ifs = nil
	_ = m.raw.WhereCache(func(i *vswitchd.Interface) bool { return i.Name == "gre0" }).List(ctx, &ifs)
	if len(ifs) != 0 {
		t.Errorf("gre0 interface still present: %+v", ifs)
	}
}

// waitPort polls the client's facts until ok(port) (ok nil: until the port
// is gone).
func waitPort(t *testing.T, c *Client, bridge, port string, ok func(Port) bool) Port {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f, err := c.Bridge(context.Background(), bridge)
		if err != nil {
			t.Fatal(err)
		}
		p, present := f.Ports[port]
		if (ok == nil && !present) || (ok != nil && present && ok(p)) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge %s port %s: condition not met; last %+v (present %v)", bridge, port, p, present)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWaitOFPortFailed(t *testing.T) {
	m := newMemDB(t)
	m.addBridge("br0", vswitchd.Port{Name: "bad"})
	msg := "could not open network device bad (No such device)"
	neg := -1
	ifc := &vswitchd.Interface{Ofport: &neg, Error: &msg}
	ops, _ := m.raw.WhereCache(func(i *vswitchd.Interface) bool { return i.Name == "bad" }).Update(ifc, &ifc.Ofport, &ifc.Error)
	m.transact(ops...)
	c := dialMem(t, m, Config{OFPortTimeout: 2 * time.Second})
	ctx := ctxT(t, 10*time.Second)
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = c.WaitOFPort(ctx, "br0", "bad")
		if errors.Is(err, ErrPortFailed) || time.Now().After(deadline) {
			break
		}
	}
	if !errors.Is(err, ErrPortFailed) || !strings.Contains(err.Error(), "No such device") {
		t.Fatalf("WaitOFPort = %v, want ErrPortFailed with the interface error", err)
	}
	if _, err := c.WaitOFPort(ctx, "br0", "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("WaitOFPort(nope) = %v", err)
	}
	m.addBridge("br1", vswitchd.Port{Name: "slow"})
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := c.WaitOFPort(short, "br1", "slow"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitOFPort without vswitchd = %v, want deadline", err)
	}
}

// TestLibovsdbLogsThroughConfigLogger: libovsdb's own log lines arrive at
// the injected logger (at Debug), not at its global default.
func TestLibovsdbLogsThroughConfigLogger(t *testing.T) {
	m := newMemDB(t)
	l, hook := logrustest.NewNullLogger()
	l.SetLevel(logrus.TraceLevel)
	c := dialMem(t, m, Config{Logger: l})
	c.Close()
	var lib int
	for _, e := range hook.AllEntries() {
		if e.Data["component"] == "libovsdb" {
			lib++
			if e.Level < logrus.DebugLevel {
				t.Errorf("libovsdb line at level %v: %s", e.Level, e.Message)
			}
			if e.Data["ovsdb"] != "unix:"+m.Socket {
				t.Errorf("libovsdb line without the endpoint field: %v", e.Data)
			}
		}
	}
	if lib == 0 {
		t.Fatalf("no libovsdb log line reached the injected logger (%d entries)", len(hook.AllEntries()))
	}
}

// TestWatchSlowReader: changes a reader has not taken yet are kept
// (merged per bridge); nothing blocks and every kind of change is reported.
func TestWatchSlowReader(t *testing.T) {
	m := newMemDB(t)
	m.addBridge("br0", vswitchd.Port{Name: "vm1"}, vswitchd.Port{Name: "vm2"})
	c := dialMem(t, m, Config{})
	ctx := ctxT(t, 20*time.Second)
	ch := c.Watch(ctx)
	if got := nextChange(t, ch); got.Kind != Initial {
		t.Fatalf("first = %+v", got)
	}
	// Not reading: a renumbering and a VLAN change on different ports.
	m.setOFPort("vm1", 4)
	tag := 7
	p := &vswitchd.Port{Tag: &tag}
	ops, _ := m.raw.WhereCache(func(p *vswitchd.Port) bool { return p.Name == "vm2" }).Update(p, &p.Tag)
	m.transact(ops...)
	waitFacts(t, c, "br0", func(b Bridge) bool { return b.Ports["vm1"].OFPort == 4 && b.Ports["vm2"].Tag == 7 })
	var got Change
	deadline := time.After(5 * time.Second)
	for got.Kind&(PortRenumbered|PortVLANChanged) != PortRenumbered|PortVLANChanged {
		select {
		case c := <-ch:
			got.merge(c)
		case <-deadline:
			t.Fatalf("merged change = %+v", got)
		}
	}
	if !reflect.DeepEqual(got.Ports, []string{"vm1", "vm2"}) {
		t.Errorf("ports = %v", got.Ports)
	}
}

// TestCreatePortRollsBack: a port whose ofport never comes is removed
// again, so the failed call changes nothing.
func TestCreatePortRollsBack(t *testing.T) {
	m := newMemDB(t)
	m.addBridge("br0")
	c := dialMem(t, m, Config{OFPortTimeout: 200 * time.Millisecond})
	ctx := ctxT(t, 10*time.Second)
	_, err := c.CreateTunnelPort(ctx, "br0", "vx0", Tunnel{Type: "vxlan", Remote: netip.MustParseAddr("192.0.2.1")})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `"vx0"`) {
		t.Fatalf("CreateTunnelPort without ofport = %v, want deadline error naming the port", err)
	}
	m.sentinel(1)
	if row := m.bridgeRow("br0"); len(row.Ports) != 0 {
		t.Fatalf("port left on the bridge after a failed creation: %v", row.Ports)
	}
	var ifs []vswitchd.Interface
	_ = m.raw.List(ctx, &ifs)
	if len(ifs) != 0 {
		t.Fatalf("interface rows left: %+v", ifs)
	}
}
