// Package flows_test runs flowspan's compiled pipeline in a real Open
// vSwitch and compares what reaches the mirror output with what OVS's own
// Mirror table delivers for the same selection and the same traffic.
package flows_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowspan/flowspan/flows"
	"github.com/flowspan/flowspan/test/lab"
)

// Topology shared by the comparison tests (one private OVS per test):
//
//	a1  access VLAN 10         a2  access VLAN 10       a3  access VLAN 20
//	t1  no VLAN settings (trunk of every VLAN, VLAN 0 untagged)
//	t2  trunk of VLANs 10, 20  n1  native-untagged VLAN 20, trunks 10, 20
//	mirror0, mirror1: internal ports used as mirror outputs
var hostDefs = []struct {
	name string
	mac  string
	tag  int
	cfg  []string // extra ovs-vsctl "set Port" columns
}{
	{"a1", "02:00:00:00:00:a1", 10, nil},
	{"a2", "02:00:00:00:00:a2", 10, nil},
	{"a3", "02:00:00:00:00:a3", 20, nil},
	{"t1", "02:00:00:00:00:b1", 0, nil},
	{"t2", "02:00:00:00:00:b2", 0, []string{"trunks=10,20"}},
	{"n1", "02:00:00:00:00:c1", 0, []string{"vlan_mode=native-untagged", "tag=20", "trunks=10,20"}},
}

type bench struct {
	macTable int // flowspan's learned-MAC table
	l        *lab.Lab
	hosts    map[string]*lab.Host
	mac      map[string]net.HardwareAddr
}

func newBench(t *testing.T, outputs map[string]int) *bench {
	t.Helper()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	b := &bench{l: l, hosts: map[string]*lab.Host{}, mac: map[string]net.HardwareAddr{}}
	for _, h := range hostDefs {
		host := l.AddHost(t, "br0", h.name, lab.HostConfig{MAC: h.mac, Tag: h.tag})
		b.hosts[h.name] = host
		b.mac[h.name] = host.MAC()
		if len(h.cfg) > 0 {
			l.MustVsctl(t, append([]string{"set", "Port", host.Port()}, h.cfg...)...)
		}
	}
	names := make([]string, 0, len(outputs))
	for n := range outputs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l.AddInternalPort(t, "br0", n, outputs[n])
	}
	return b
}

// frame builds an Ethernet frame (802.1Q-tagged when vlan >= 0 is given as
// tag+1... see tagged) carrying a UDP datagram whose ports identify the step.
func udpFrame(dst, src net.HardwareAddr, vlan int, step uint16, payload int) []byte {
	var f []byte
	f = append(f, dst...)
	f = append(f, src...)
	if vlan >= 0 {
		f = append(f, 0x81, 0x00, byte(vlan>>8), byte(vlan))
	}
	f = append(f, 0x08, 0x00)
	ip := make([]byte, 20+8+payload)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	ip[8] = 64
	ip[9] = 17
	copy(ip[12:], []byte{10, 0, 0, byte(src[5])})
	copy(ip[16:], []byte{10, 0, 0, 200})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(ip[20:], 1000+step)
	binary.BigEndian.PutUint16(ip[22:], 2000+step)
	binary.BigEndian.PutUint16(ip[24:], uint16(8+payload))
	return append(f, ip...)
}

func arpFrame(src net.HardwareAddr, vlan int, target byte) []byte {
	var f []byte
	f = append(f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	f = append(f, src...)
	if vlan >= 0 {
		f = append(f, 0x81, 0x00, byte(vlan>>8), byte(vlan))
	}
	f = append(f, 0x08, 0x06)
	arp := []byte{0, 1, 8, 0, 6, 4, 0, 1}
	arp = append(arp, src...)
	arp = append(arp, 10, 0, 0, src[5])
	arp = append(arp, 0, 0, 0, 0, 0, 0)
	arp = append(arp, 10, 0, 0, target)
	return append(f, arp...)
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

var (
	macBcast   = mustMAC("ff:ff:ff:ff:ff:ff")
	macUnknown = mustMAC("02:00:00:00:00:99")
	macMcast   = mustMAC("01:00:5e:00:00:01")
	macSTP     = mustMAC("01:80:c2:00:00:00")
)

// step is one frame of the traffic script. learn names a (VLAN, host)
// whose MAC the bridge must have learned before the next step.
type step struct {
	from  string
	frame func(b *bench) []byte
	learn *learnCheck
}

// learnCheck: the MAC of host must be learned in vlan on the port of host
// at (the sender's own port when empty).
type learnCheck struct {
	vlan int
	host string
	at   string
}

func learns(vlan int, host string) *learnCheck { return &learnCheck{vlan: vlan, host: host} }

// script is the traffic every comparison sends: broadcast, ARP, flooded and
// learned unicast, multicast, VLAN 0, invalid VLANs, frames to the input
// port's own MAC, reserved multicast, duplicates and a large frame.
func script() []step {
	u := func(dst func(b *bench) net.HardwareAddr, from string, vlan int, n uint16, payload int) func(b *bench) []byte {
		return func(b *bench) []byte { return udpFrame(dst(b), b.mac[from], vlan, n, payload) }
	}
	mac := func(h string) func(b *bench) net.HardwareAddr {
		return func(b *bench) net.HardwareAddr { return b.mac[h] }
	}
	fixed := func(m net.HardwareAddr) func(b *bench) net.HardwareAddr {
		return func(*bench) net.HardwareAddr { return m }
	}
	return []step{
		{"a1", func(b *bench) []byte { return arpFrame(b.mac["a1"], -1, 250) }, learns(10, "a1")}, // 1 ARP broadcast, VLAN 10
		{"a2", u(mac("a1"), "a2", -1, 2, 40), learns(10, "a2")},                                   // 2 learned unicast a2 -> a1
		{"a1", u(fixed(macUnknown), "a1", -1, 3, 40), nil},                                        // 3 unknown unicast: flood VLAN 10
		{"t1", u(fixed(macBcast), "t1", 20, 4, 40), learns(20, "t1")},                             // 4 tagged broadcast VLAN 20
		{"a3", u(mac("t1"), "a3", -1, 5, 40), learns(20, "a3")},                                   // 5 unicast a3 -> t1 (VLAN 20)
		{"t1", u(fixed(macBcast), "t1", -1, 6, 40), learns(0, "t1")},                              // 6 untagged broadcast on trunk: VLAN 0
		{"t2", u(fixed(macBcast), "t2", 30, 7, 40), nil},                                          // 7 VLAN 30 not trunked on t2: dropped
		{"a1", u(fixed(macBcast), "a1", 10, 8, 40), nil},                                          // 8 tagged on access port: dropped
		{"n1", u(fixed(macMcast), "n1", -1, 9, 40), learns(20, "n1")},                             // 9 multicast, native VLAN 20
		{"n1", u(mac("a1"), "n1", 10, 10, 40), learns(10, "n1")},                                  // 10 tagged VLAN 10 on native port -> a1
		{"a1", u(mac("a2"), "a1", -1, 11, 40), nil},                                               // 11 learned unicast a1 -> a2
		{"a2", u(mac("a2"), "a2", -1, 12, 40), nil},                                               // 12 to its own port: NORMAL drops
		{"a1", u(fixed(macSTP), "a1", -1, 13, 40), nil},                                           // 13 reserved multicast: NORMAL drops
		{"a1", u(fixed(macBcast), "a1", -1, 14, 40), nil},                                         // 14 broadcast...
		{"a1", u(fixed(macBcast), "a1", -1, 14, 40), nil},                                         // 15 ...and its duplicate
		{"t2", u(mac("a3"), "t2", 20, 16, 1000), learns(20, "t2")},                                // 16 large frame t2 -> a3
		{"a3", u(mac("t2"), "a3", -1, 17, 40), nil},                                               // 17 learned unicast back to trunk t2
		{"t1", u(fixed(macUnknown), "t1", 10, 18, 40), learns(10, "t1")},                          // 18 unknown unicast VLAN 10 from trunk
		{"a2", u(mac("t1"), "a2", -1, 19, 40), nil},                                               // 19 learned unicast a2 -> t1 tagged 10
		{"t2", func(b *bench) []byte { return arpFrame(b.mac["t2"], 10, 251) }, learns(10, "t2")}, // 20 ARP from trunk t2 in VLAN 10
	}
}

// run sends the script, waiting after teaching steps until the bridge's
// MAC table (and, when macTable is set, flowspan's learned flows) know the
// source, so every run sees the same forwarding decisions.
func (b *bench) run(t *testing.T, flowspan bool) {
	t.Helper()
	b.runSteps(t, script(), flowspan)
}

// runSteps sends steps in order, waiting for learning like run.
func (b *bench) runSteps(t *testing.T, steps []step, flowspan bool) {
	t.Helper()
	for i, s := range steps {
		b.hosts[s.from].SendRaw(t, s.frame(b))
		if s.learn == nil {
			continue
		}
		mac := b.mac[s.learn.host].String()
		at := s.learn.at
		if at == "" {
			at = s.from
		}
		port := strconv.Itoa(b.l.OFPort(t, b.hosts[at].Port()))
		lab.Eventually(t, 5*time.Second, func() error {
			out, err := b.l.Appctl("fdb/show", "br0")
			if err != nil {
				return err
			}
			found := false
			for _, line := range strings.Split(out, "\n") {
				f := strings.Fields(line)
				if len(f) >= 3 && f[0] == port && f[1] == strconv.Itoa(s.learn.vlan) && f[2] == mac {
					found = true
				}
			}
			if !found {
				return fmt.Errorf("step %d: bridge has not learned %s in VLAN %d on port %s:\n%s", i+1, mac, s.learn.vlan, port, out)
			}
			if flowspan {
				out, err := b.l.Ofctl("-O", "OpenFlow13", "dump-flows", "br0", fmt.Sprintf("table=%d,dl_dst=%s", b.macTable, mac))
				if err != nil {
					return err
				}
				if !strings.Contains(out, "dl_dst="+mac+" actions=load:"+hexPort(port)+"->") {
					return fmt.Errorf("step %d: flowspan has not learned %s:\n%s", i+1, mac, out)
				}
			}
			return nil
		})
	}
}

// facts reads the bridge's ports from OVSDB like the daemon does.
func (b *bench) facts(t *testing.T, isolated map[string]bool) flows.BridgeFacts {
	t.Helper()
	out := b.l.MustVsctl(t, "--format=csv", "--data=bare", "--no-headings", "--columns=name,tag,trunks,vlan_mode", "list", "Port")
	facts := flows.BridgeFacts{Ports: map[string]flows.PortFacts{}}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, ",")
		if len(f) != 4 {
			t.Fatalf("unexpected Port row %q", line)
		}
		p := flows.PortFacts{Name: f[0], VLANMode: f[3], Isolated: isolated[f[0]]}
		if f[1] != "" {
			v, _ := strconv.Atoi(f[1])
			p.Tag = uint16(v)
		}
		for _, s := range strings.Fields(f[2]) {
			v, _ := strconv.Atoi(s)
			p.Trunks = append(p.Trunks, uint16(v))
		}
		p.OFPort = uint32(b.l.OFPort(t, f[0]))
		facts.Ports[p.Name] = p
	}
	return facts
}

// install compiles mirrors and installs the flows in one bundle with
// ovs-ofctl, then checks the switch holds exactly those flows.
func (b *bench) install(t *testing.T, cfg flows.Config, mirrors []flows.Mirror, isolated map[string]bool, host ...string) *flows.Result {
	t.Helper()
	for name := range isolated {
		// What ovsdb.IsolatePort does: an unused access VLAN keeps NORMAL
		// from flooding to the output port.
		b.l.MustVsctl(t, "set", "Port", name, "tag=4095")
	}
	b.macTable = int(cfg.TableBase) + 3
	res, err := flows.Compile(cfg, mirrors, b.facts(t, isolated))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	for name, st := range res.Status {
		if !st.Active {
			t.Fatalf("mirror %s not active: %v", name, st.Err)
		}
	}
	installFlows(t, b.l, res.Flows, host...)
	return res
}

// installFlows installs fl and the extra flow lines (a host pipeline).
func installFlows(t *testing.T, l *lab.Lab, fl []flows.Flow, extra ...string) {
	t.Helper()
	var sb strings.Builder
	want := make([]string, 0, len(fl)+len(extra))
	for _, e := range extra {
		sb.WriteString(e + "\n")
		want = append(want, e)
	}
	for _, f := range fl {
		text, err := f.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		sb.Write(text)
		sb.WriteByte('\n')
		want = append(want, string(text))
	}
	file := filepath.Join(t.TempDir(), "flows.txt")
	if err := os.WriteFile(file, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Ofctl("-O", "OpenFlow13", "del-flows", "br0"); err != nil {
		t.Fatalf("del-flows: %v: %s", err, out)
	}
	if out, err := l.Ofctl("-O", "OpenFlow13", "--bundle", "add-flows", "br0", file); err != nil {
		t.Fatalf("ovs-ofctl add-flows rejected the compiled flows: %v\n%s", err, out)
	}
	out, err := l.Ofctl("-O", "OpenFlow13", "--no-names", "--no-stats", "dump-flows", "br0")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "OFPST_FLOW") {
			continue
		}
		got = append(got, line)
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the switch shows different flows than MarshalText printed:\n%s", lineDiff(want, got))
	}
}

func lineDiff(want, got []string) string {
	w := map[string]int{}
	for _, s := range want {
		w[s]++
	}
	for _, s := range got {
		w[s]--
	}
	var b strings.Builder
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for n := w[k]; n > 0; n-- {
			fmt.Fprintf(&b, "-%s\n", k)
		}
		for n := w[k]; n < 0; n++ {
			fmt.Fprintf(&b, "+%s\n", k)
		}
	}
	return b.String()
}

func (b *bench) flushFDB(t *testing.T) {
	t.Helper()
	if out, err := b.l.Appctl("fdb/flush", "br0"); err != nil {
		t.Fatalf("fdb/flush: %v: %s", err, out)
	}
}

// capture runs the script while capturing on the given ports.
func (b *bench) capture(t *testing.T, flowspan bool, ports ...string) map[string][]lab.Packet {
	t.Helper()
	b.flushFDB(t)
	caps := map[string]*lab.Capture{}
	for _, p := range ports {
		caps[p] = b.l.Capture(t, p)
	}
	b.run(t, flowspan)
	out := map[string][]lab.Packet{}
	for _, p := range ports {
		out[p] = caps[p].Stop(t)
	}
	return out
}

func keys(pkts []lab.Packet) []string {
	out := make([]string, len(pkts))
	for i, p := range pkts {
		out[i] = p.String()
	}
	sort.Strings(out)
	return out
}

func comparePackets(t *testing.T, what string, want, got []lab.Packet) {
	t.Helper()
	w, g := keys(want), keys(got)
	if strings.Join(w, "\n") != strings.Join(g, "\n") {
		t.Errorf("%s: flowspan delivered %d packets, native %d (-native +flowspan):\n%s", what, len(got), len(want), lineDiff(w, g))
	}
}

func hexPort(port string) string {
	n, _ := strconv.Atoi(port)
	return fmt.Sprintf("%#x", n)
}
