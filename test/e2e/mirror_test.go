package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowspan/flowspan/api"
	"github.com/flowspan/flowspan/test/lab"
)

// udpCount counts UDP packets to dstPort.
func udpCount(pkts []lab.Packet, dstPort uint16) int {
	return len(lab.Filter(pkts, lab.UDPTo(dstPort)))
}

// expectUDP checks that exactly want[port] UDP packets to each port were captured.
func expectUDP(t *testing.T, where string, pkts []lab.Packet, want map[uint16]int) {
	t.Helper()
	for port, n := range want {
		if got := udpCount(pkts, port); got != n {
			t.Errorf("%s: %d UDP packets to port %d, want exactly %d; captured:\n%s", where, got, port, n, lab.Summary(pkts))
		}
	}
}

// waitStats polls a mirror's counters until its total equals base plus the
// packets captured on its output.
func (e *env) waitStats(t *testing.T, name string, base uint64, pkts []lab.Packet) api.MirrorStats {
	t.Helper()
	want := base + uint64(len(pkts))
	var st api.MirrorStats
	deadline := time.Now().Add(10 * time.Second)
	for {
		st = e.stats(name)
		if st.Packets == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.Packets != want {
		t.Errorf("mirror %s: stats report %d packets, want %d (%d before + %d captured on the output port); stats %+v; captured:\n%s",
			name, st.Packets, want, base, len(pkts), st, lab.Summary(pkts))
	}
	return st
}

// selection returns a mirror's counters for one port and direction.
func selection(st api.MirrorStats, port string, dir api.Direction) (api.SelectionStats, bool) {
	for _, s := range st.Selections {
		if s.Port == port && s.Direction == dir {
			return s, true
		}
	}
	return api.SelectionStats{}, false
}

// TestSelectionKinds mirrors with each selection kind and checks, on the
// output port, that exactly the selected packets arrive once each, that the
// copy carries the VLAN the native Mirror would give it, and that the
// mirror's counters equal what was captured.
func TestSelectionKinds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hs := e.hosts(3)
	h1, h2, h3 := hs[0], hs[1], hs[2]
	// Two hosts in access VLAN 10.
	v1 := e.host("v1", 11, lab.HostConfig{Tag: 10, IPv4: "10.0.10.1/24"})
	v2 := e.host("v2", 12, lab.HostConfig{Tag: 10, IPv4: "10.0.10.2/24"})
	neighbors(t, []*lab.Host{v1, v2})
	e.outputPort("m0")
	// learnAll makes every host send, so that both NORMAL's MAC table and
	// flowspan's shadow of it know every MAC (docs/conformance.md, egress_cold_mac_table: right
	// after take-over flowspan predicts unknown destinations as flooded).
	learnAll := func() {
		e.learn(hs)
		pingExact(t, v1, v2.IPv4(), 1)
	}
	learnAll()

	// traffic sends the same pattern each time:
	//   5001: h1 -> h2 x5 (ingress h1, egress h2)
	//   5002: h2 -> h1 x7 (ingress h2, egress h1)
	//   5003: h3 -> h2 x4 (ingress h3, egress h2)
	//   5010: v1 -> v2 x3 (VLAN 10)
	traffic := func() {
		h1.SendUDP(t, h2.IPv4(), 4001, 5001, 100, 5)
		h2.SendUDP(t, h1.IPv4(), 4002, 5002, 100, 7)
		h3.SendUDP(t, h2.IPv4(), 4003, 5003, 100, 4)
		v1.SendUDP(t, v2.IPv4(), 4010, 5010, 100, 3)
	}
	tests := []struct {
		name  string
		args  []string
		want  map[uint16]int
		check func(t *testing.T, pkts []lab.Packet, st, st0 api.MirrorStats)
	}{
		{
			name: "port",
			args: []string{"--port", "h1"},
			want: map[uint16]int{5001: 5, 5002: 7, 5003: 0, 5010: 0},
			check: func(t *testing.T, pkts []lab.Packet, st, st0 api.MirrorStats) {
				in, ok1 := selection(st, "h1", api.DirIngress)
				out, ok2 := selection(st, "h1", api.DirEgress)
				in0, _ := selection(st0, "h1", api.DirIngress)
				out0, _ := selection(st0, "h1", api.DirEgress)
				if !ok1 || !ok2 || in.Packets-in0.Packets != 5 || out.Packets-out0.Packets != 7 {
					t.Errorf("per-selection stats: h1 ingress %+v -> %+v (found %v), h1 egress %+v -> %+v (found %v); want +5 and +7",
						in0, in, ok1, out0, out, ok2)
				}
			},
		},
		{name: "ingress", args: []string{"--ingress", "h1"}, want: map[uint16]int{5001: 5, 5002: 0, 5003: 0, 5010: 0}},
		{name: "egress", args: []string{"--egress", "h1"}, want: map[uint16]int{5001: 0, 5002: 7, 5003: 0, 5010: 0}},
		{name: "ingress and egress of different ports", args: []string{"--ingress", "h3", "--egress", "h1"}, want: map[uint16]int{5001: 0, 5002: 7, 5003: 4, 5010: 0}},
		{name: "all", args: []string{"--all"}, want: map[uint16]int{5001: 5, 5002: 7, 5003: 4, 5010: 3}},
		{
			name: "vlan only",
			args: []string{"--vlan", "10"},
			want: map[uint16]int{5001: 0, 5002: 0, 5003: 0, 5010: 3},
			check: func(t *testing.T, pkts []lab.Packet, _, _ api.MirrorStats) {
				// m0 has no tag: like the native Mirror, copies of VLAN 10
				// traffic leave it tagged 10.
				for _, p := range lab.Filter(pkts, lab.UDPTo(5010)) {
					if !slices.Equal(p.VLANs, []uint16{10}) {
						t.Errorf("copy %s: VLANs %v, want [10]", p, p.VLANs)
					}
				}
			},
		},
		{name: "filter only", args: []string{"--match", "udp,tp_dst=5003"}, want: map[uint16]int{5001: 0, 5002: 0, 5003: 4, 5010: 0}},
		{name: "port with filter", args: []string{"--port", "h2", "--match", "udp,tp_src=4001", "--match", "udp,tp_dst=5003"}, want: map[uint16]int{5001: 5, 5002: 0, 5003: 4, 5010: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"mirror", "add", "sel", "--bridge", "br0", "--to", "m0"}, tt.args...)
			e.must(args...)
			e.waitActive("sel")
			learnAll()
			e.settle() // also brings the counters up to date
			st0 := e.stats("sel")
			c := e.lab.Capture(t, "m0")
			// What the bridge sends out of h1: egress selections must copy
			// exactly that (NORMAL knows every MAC here, so nothing is flooded).
			out1 := e.lab.Capture(t, "h1")
			traffic()
			pkts, sent1 := c.Stop(t), out1.Stop(t)
			expectUDP(t, "m0", pkts, tt.want)
			if t.Failed() {
				t.Logf("for reference, what the bridge sent out of h1:\n%s", lab.Summary(sent1))
			}
			// Every packet on m0 is a copy: the counters must equal the capture.
			st := e.waitStats(t, "sel", st0.Packets, pkts)
			// Per-selection counters count copies too: they add up.
			var sum, sum0 uint64
			for _, x := range st.Selections {
				sum += x.Packets
			}
			for _, x := range st0.Selections {
				sum0 += x.Packets
			}
			if sum-sum0 != uint64(len(pkts)) {
				t.Errorf("per-selection counters grew by %d, want %d (the copies captured): %+v -> %+v", sum-sum0, len(pkts), st0.Selections, st.Selections)
			}
			if tt.check != nil {
				tt.check(t, pkts, st, st0)
			}
			e.must("mirror", "del", "sel")
		})
	}
}

// TestFiltersTwoMirrorsAndDelete runs two mirrors to different outputs and
// two overlapping mirrors to the same output, then deletes them.
func TestFiltersTwoMirrorsAndDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hs := e.hosts(2)
	h1, h2 := hs[0], hs[1]
	e.outputPort("m0")
	e.outputPort("m1")
	e.learn(hs)

	e.must("mirror", "add", "a", "--bridge", "br0", "--port", "h1", "--match", "udp,tp_dst=5001", "--match", "icmp", "--to", "m0")
	// Flags before the name work too.
	e.must("mirror", "add", "--bridge", "br0", "--ingress", "h2", "--to", "m1", "b")
	// Overlaps a on the same output: each packet still arrives once.
	e.must("mirror", "add", "c", "--bridge", "br0", "--ingress", "h1", "--match", "udp,tp_dst=5001", "--to", "m0")
	for _, n := range []string{"a", "b", "c"} {
		e.waitActive(n)
	}
	e.settle()
	if got := e.list(); len(got) != 3 {
		t.Fatalf("mirror list: %d mirrors, want 3: %+v", len(got), got)
	}
	// mirror show --flows prints flows that are in the switch, in
	// ovs-ofctl syntax (compared without counters and ages).
	norm := func(line string) string {
		return strings.Join(strings.Fields(flowCounters.ReplaceAllString(line, " ")), " ")
	}
	installed := map[string]bool{}
	for _, line := range strings.Split(e.lab.DumpFlows(t, "br0"), "\n") {
		installed[norm(line)] = true
	}
	var shown int
	for _, line := range strings.Split(e.must("mirror", "show", "a", "--flows"), "\n") {
		line = strings.TrimSpace(line)
		if !strings.Contains(line, "actions=") {
			continue
		}
		shown++
		if !installed[norm(line)] {
			t.Errorf("mirror show a --flows: %q is not in the switch's flow table", line)
		}
	}
	if shown == 0 {
		t.Errorf("mirror show a --flows printed no flows")
	}

	c0, c1 := e.lab.Capture(t, "m0"), e.lab.Capture(t, "m1")
	h1.SendUDP(t, h2.IPv4(), 4001, 5001, 64, 5)
	h1.SendUDP(t, h2.IPv4(), 4002, 5002, 64, 3)
	if got := h1.Ping(t, h2.IPv4(), 4); got != 4 {
		t.Fatalf("ping: %d replies, want 4", got)
	}
	p0, p1 := c0.Stop(t), c1.Stop(t)
	expectUDP(t, "m0", p0, map[uint16]int{5001: 5, 5002: 0})
	if got := len(lab.Filter(p0, lab.ICMPEcho)); got != 8 {
		t.Errorf("m0: %d ICMP echo packets, want 8 (4 requests in, 4 replies out of h1):\n%s", got, lab.Summary(p0))
	}
	// b selects what h2 sends: the 4 echo replies, nothing else of ours.
	expectUDP(t, "m1", p1, map[uint16]int{5001: 0, 5002: 0})
	replies := lab.Filter(p1, func(p lab.Packet) bool { return p.Proto == 1 && p.ICMPType == 0 })
	if got := len(lab.Filter(p1, lab.ICMPEcho)); got != 4 || len(replies) != 4 {
		t.Errorf("m1: %d ICMP echo packets (%d replies), want 4 replies only:\n%s", got, len(replies), lab.Summary(p1))
	}

	// Delete a and c: m0 gets nothing more, b keeps working.
	e.must("mirror", "del", "a")
	e.must("mirror", "del", "c")
	if r := e.fs("mirror", "show", "a"); r.code != 1 || !strings.Contains(r.stderr, `"a"`) {
		t.Errorf("show deleted mirror: %v", r)
	}
	e.settle()
	c0, c1 = e.lab.Capture(t, "m0"), e.lab.Capture(t, "m1")
	h1.SendUDP(t, h2.IPv4(), 4001, 5001, 64, 5)
	h2.SendUDP(t, h1.IPv4(), 4002, 5002, 64, 6)
	p0, p1 = c0.Stop(t), c1.Stop(t)
	if len(p0) != 0 {
		t.Errorf("m0 after deleting its mirrors: %d packets, want 0:\n%s", len(p0), lab.Summary(p0))
	}
	expectUDP(t, "m1", p1, map[uint16]int{5001: 0, 5002: 6})

	// Deleting the last mirror releases the bridge: flowspan's controller
	// target goes away and forwarding goes on.
	e.must("mirror", "del", "b")
	lab.Eventually(t, 10*time.Second, func() error {
		if out := strings.TrimSpace(e.lab.MustVsctl(t, "get-controller", "br0")); out != "" {
			return fmt.Errorf("br0 controllers after the last mirror was deleted: %q, want none", out)
		}
		return nil
	})
	e.settle()
	if got := h1.Ping(t, h2.IPv4(), 3); got != 3 {
		t.Errorf("ping after release: %d replies, want 3", got)
	}
	c1 = e.lab.Capture(t, "m1")
	h2.SendUDP(t, h1.IPv4(), 4002, 5002, 64, 3)
	if p := c1.Stop(t); len(p) != 0 {
		t.Errorf("m1 after deleting every mirror: %d packets, want 0:\n%s", len(p), lab.Summary(p))
	}
	if got := e.list(); len(got) != 0 {
		t.Errorf("mirror list after deleting all: %+v", got)
	}
}

// TestCreateOutputPort checks --to PORT --create: flowspan creates the
// internal port and removes it with the mirror.
func TestCreateOutputPort(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hs := e.hosts(2)
	e.learn(hs)
	e.must("mirror", "add", "web", "--bridge", "br0", "--port", "h1", "--to", "cap0", "--create")
	e.waitActive("web")
	e.settle()
	if !slices.Contains(e.ports("br0"), "cap0") {
		t.Fatalf("ports of br0 after --create: %v, want cap0 among them", e.ports("br0"))
	}
	// flowspan brings the port it created up: capturing works right away.
	c := e.lab.Capture(t, "cap0")
	hs[0].SendUDP(t, hs[1].IPv4(), 4001, 5001, 64, 5)
	expectUDP(t, "cap0", c.Stop(t), map[uint16]int{5001: 5})
	e.must("mirror", "del", "web")
	lab.Eventually(t, 10*time.Second, func() error {
		if p := e.ports("br0"); slices.Contains(p, "cap0") {
			return fmt.Errorf("ports of br0 after deleting the mirror: %v, want no cap0", p)
		}
		return nil
	})
}

// TestStatsCountFloodedCopies sends to a MAC nobody has, so NORMAL floods
// each packet out of every other port: an --egress mirror copies each once,
// and its counters must say so (per mirror and per selection).
func TestStatsCountFloodedCopies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hs := e.hosts(3)
	h2 := hs[1]
	e.outputPort("m0")
	e.learn(hs)
	e.must("mirror", "add", "fl", "--bridge", "br0", "--egress", "h1", "--to", "m0")
	e.waitActive("fl")
	e.settle()
	st0 := e.stats("fl")
	ghost := netip.MustParseAddr("10.0.0.99")
	h2.Neighbor(t, ghost, net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99})
	c, out1 := e.lab.Capture(t, "m0"), e.lab.Capture(t, "h1")
	h2.SendUDP(t, ghost, 4000, 5009, 64, 6)
	pkts, sent1 := c.Stop(t), out1.Stop(t)
	if got := udpCount(sent1, 5009); got != 6 {
		t.Fatalf("NORMAL flooded %d of the 6 packets out of h1, want 6:\n%s", got, lab.Summary(sent1))
	}
	expectUDP(t, "m0", pkts, map[uint16]int{5009: 6})
	st := e.waitStats(t, "fl", st0.Packets, pkts)
	var sel uint64
	for _, s := range st.Selections {
		sel += s.Packets
	}
	var sel0 uint64
	for _, s := range st0.Selections {
		sel0 += s.Packets
	}
	if sel-sel0 != uint64(len(pkts)) {
		t.Errorf("per-selection counters grew by %d, want %d (the copies captured): %+v -> %+v", sel-sel0, len(pkts), st0.Selections, st.Selections)
	}
}
