package flows_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowspan/flowspan/flows"
	"github.com/flowspan/flowspan/test/lab"
)

type compareCase struct {
	name string
	// outputs: internal output ports and their access tag (0: none).
	outputs map[string]int
	native  []lab.NativeMirror
	mirrors []flows.Mirror
	// keep, when set, filters the native capture (OVS 3.1 mirrors have no
	// filters, so filtered mirrors are compared against the native
	// unfiltered mirror's packets that match the filter).
	keep func(lab.Packet) bool
	// capture: ports to compare (default: the outputs).
	capture []string
	// wantMin: the native capture must have at least this many packets,
	// so a broken oracle cannot make the comparison vacuous.
	wantMin int
	// nativeHas, when set, must match at least 3 native packets (e.g. the
	// RSPAN copies among forwarded traffic).
	nativeHas func(lab.Packet) bool
	// outCfg: extra "set Port" columns of output ports (both phases).
	outCfg map[string][]string
	// cfg and host: embedding mode, with a host pipeline around flowspan's
	// tables.
	cfg  flows.Config
	host []string
}

func TestCompareWithNativeMirror(t *testing.T) {
	out := map[string]int{"mirror0": 0}
	cases := []compareCase{
		{name: "ingress-access", outputs: out,
			native:  []lab.NativeMirror{{Name: "m", SelectSrc: []string{"a1"}, Output: "mirror0"}},
			mirrors: []flows.Mirror{{Name: "m", Ingress: []string{"a1"}, Output: flows.Output{Port: "mirror0"}}}, wantMin: 6},
		{name: "egress-access", outputs: out,
			native:  []lab.NativeMirror{{Name: "m", SelectDst: []string{"a1"}, Output: "mirror0"}},
			mirrors: []flows.Mirror{{Name: "m", Egress: []string{"a1"}, Output: flows.Output{Port: "mirror0"}}}, wantMin: 4},
		{name: "both-access", outputs: out,
			native:  []lab.NativeMirror{{Name: "m", SelectSrc: []string{"a2"}, SelectDst: []string{"a2"}, Output: "mirror0"}},
			mirrors: []flows.Mirror{{Name: "m", Ports: []string{"a2"}, Output: flows.Output{Port: "mirror0"}}}, wantMin: 6},
		{name: "both-two-ports", outputs: out,
			native:  []lab.NativeMirror{{Name: "m", SelectSrc: []string{"a1", "a2"}, SelectDst: []string{"a1", "a2"}, Output: "mirror0"}},
			mirrors: []flows.Mirror{{Name: "m", Ports: []string{"a1", "a2"}, Output: flows.Output{Port: "mirror0"}}}, wantMin: 10},
		{name: "both-trunk", outputs: out,
			native:  []lab.NativeMirror{{Name: "m", SelectSrc: []string{"t1"}, SelectDst: []string{"t1"}, Output: "mirror0"}},
			mirrors: []flows.Mirror{{Name: "m", Ports: []string{"t1"}, Output: flows.Output{Port: "mirror0"}}}, wantMin: 6},
		{name: "egress-trunk-list", outputs: out,
			native:  []lab.NativeMirror{{Name: "m", SelectDst: []string{"t2"}, Output: "mirror0"}},
			mirrors: []flows.Mirror{{Name: "m", Egress: []string{"t2"}, Output: flows.Output{Port: "mirror0"}}}, wantMin: 4},
		{name: "both-native-untagged", outputs: out,
			native:  []lab.NativeMirror{{Name: "m", SelectSrc: []string{"n1"}, SelectDst: []string{"n1"}, Output: "mirror0"}},
			mirrors: []flows.Mirror{{Name: "m", Ports: []string{"n1"}, Output: flows.Output{Port: "mirror0"}}}, wantMin: 4},
		{name: "vlan-only", outputs: out,
			native:  []lab.NativeMirror{{Name: "m", SelectAll: true, SelectVLAN: []int{20}, Output: "mirror0"}},
			mirrors: []flows.Mirror{{Name: "m", VLANs: []uint16{20}, Output: flows.Output{Port: "mirror0"}}}, wantMin: 5},
		{name: "ports-narrowed-by-vlan", outputs: out,
			native:  []lab.NativeMirror{{Name: "m", SelectSrc: []string{"t1", "t2"}, SelectDst: []string{"t1", "t2"}, SelectVLAN: []int{10}, Output: "mirror0"}},
			mirrors: []flows.Mirror{{Name: "m", Ports: []string{"t1", "t2"}, VLANs: []uint16{10}, Output: flows.Output{Port: "mirror0"}}}, wantMin: 4},
		{name: "all", outputs: out,
			native:  []lab.NativeMirror{{Name: "m", SelectAll: true, Output: "mirror0"}},
			mirrors: []flows.Mirror{{Name: "m", All: true, Output: flows.Output{Port: "mirror0"}}}, wantMin: 18},
		{name: "filtered", outputs: out,
			native:  []lab.NativeMirror{{Name: "m", SelectSrc: []string{"a1"}, SelectDst: []string{"a1"}, Output: "mirror0"}},
			mirrors: []flows.Mirror{{Name: "m", Ports: []string{"a1"}, Filters: []string{"arp", "udp,tp_dst=2011"}, Output: flows.Output{Port: "mirror0"}}},
			keep:    func(p lab.Packet) bool { return p.EtherType == lab.EtherTypeARP || p.Proto == 17 && p.DstPort == 2011 }, wantMin: 2},
		{name: "two-mirrors-one-output", outputs: out,
			native: []lab.NativeMirror{
				{Name: "m1", SelectSrc: []string{"a1"}, Output: "mirror0"},
				{Name: "m2", SelectDst: []string{"a2"}, Output: "mirror0"},
			},
			mirrors: []flows.Mirror{
				{Name: "m1", Ingress: []string{"a1"}, Output: flows.Output{Port: "mirror0"}},
				{Name: "m2", Egress: []string{"a2"}, Output: flows.Output{Port: "mirror0"}},
			}, wantMin: 8},
		{name: "two-mirrors-two-outputs", outputs: map[string]int{"mirror0": 0, "mirror1": 0},
			native: []lab.NativeMirror{
				{Name: "m1", SelectSrc: []string{"a1"}, SelectDst: []string{"a1"}, Output: "mirror0"},
				{Name: "m2", SelectAll: true, SelectVLAN: []int{10}, Output: "mirror1"},
			},
			mirrors: []flows.Mirror{
				{Name: "m1", Ports: []string{"a1"}, Output: flows.Output{Port: "mirror0"}},
				{Name: "m2", VLANs: []uint16{10}, Output: flows.Output{Port: "mirror1"}},
			}, wantMin: 8},
		{name: "access-output-untagged", outputs: map[string]int{"mirror0": 30},
			native:  []lab.NativeMirror{{Name: "m", SelectAll: true, Output: "mirror0"}},
			mirrors: []flows.Mirror{{Name: "m", All: true, Output: flows.Output{Port: "mirror0"}}}, wantMin: 18},
		// Outputs whose VLAN settings keep NORMAL away (VLAN 30 carries no
		// forwarded traffic) but decide the copies' tags.
		{name: "native-untagged-output", outputs: map[string]int{"mirror0": 30},
			outCfg:  map[string][]string{"mirror0": {"vlan_mode=native-untagged", "trunks=30"}},
			native:  []lab.NativeMirror{{Name: "m", SelectAll: true, Output: "mirror0"}},
			mirrors: []flows.Mirror{{Name: "m", All: true, Output: flows.Output{Port: "mirror0"}}}, wantMin: 18},
		{name: "native-tagged-output", outputs: map[string]int{"mirror0": 30},
			outCfg:  map[string][]string{"mirror0": {"vlan_mode=native-tagged", "trunks=30"}},
			native:  []lab.NativeMirror{{Name: "m", SelectAll: true, Output: "mirror0"}},
			mirrors: []flows.Mirror{{Name: "m", All: true, Output: flows.Output{Port: "mirror0"}}}, wantMin: 18},
		{name: "snaplen", outputs: out,
			native:  []lab.NativeMirror{{Name: "m", SelectAll: true, Output: "mirror0", Snaplen: 64}},
			mirrors: []flows.Mirror{{Name: "m", All: true, Output: flows.Output{Port: "mirror0"}, Snaplen: 64}}, wantMin: 18},
		{name: "snaplen-access-output", outputs: map[string]int{"mirror0": 30},
			native:  []lab.NativeMirror{{Name: "m", SelectAll: true, Output: "mirror0", Snaplen: 60}},
			mirrors: []flows.Mirror{{Name: "m", All: true, Output: flows.Output{Port: "mirror0"}, Snaplen: 60}}, wantMin: 18},
		{name: "embedded", outputs: out,
			native:  []lab.NativeMirror{{Name: "m", SelectSrc: []string{"t1"}, SelectDst: []string{"a2", "n1"}, SelectVLAN: []int{10, 20}, Output: "mirror0"}},
			mirrors: []flows.Mirror{{Name: "m", Ingress: []string{"t1"}, Egress: []string{"a2", "n1"}, VLANs: []uint16{10, 20}, Output: flows.Output{Port: "mirror0"}}},
			cfg:     flows.Config{TableBase: 20, ContinueTable: 40, Registers: &flows.Registers{Meta: 3, Egress: 4}, Generation: 7},
			host: []string{
				"cookie=0x1, priority=1 actions=goto_table:20",
				"cookie=0x1, table=40, priority=1 actions=NORMAL",
			}, wantMin: 6},
		{name: "rspan", outputs: map[string]int{}, capture: []string{"t1", "a1"},
			native:  []lab.NativeMirror{{Name: "m", SelectSrc: []string{"a2"}, SelectDst: []string{"a3"}, OutputVLAN: 30}},
			mirrors: []flows.Mirror{{Name: "m", Ingress: []string{"a2"}, Egress: []string{"a3"}, Output: flows.Output{VLAN: 30}}}, wantMin: 15,
			nativeHas: func(p lab.Packet) bool { return len(p.VLANs) == 1 && p.VLANs[0] == 30 }},
		{name: "forwarding-unchanged", outputs: out, capture: []string{"mirror0", "a1", "a2", "a3", "t1", "t2", "n1"},
			native:  []lab.NativeMirror{{Name: "m", SelectSrc: []string{"t1"}, SelectDst: []string{"n1"}, Output: "mirror0"}},
			mirrors: []flows.Mirror{{Name: "m", Ingress: []string{"t1"}, Egress: []string{"n1"}, Output: flows.Output{Port: "mirror0"}}}, wantMin: 30},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			compare(t, tc)
		})
	}
}

func compare(t *testing.T, tc compareCase) {
	b := newBench(t, tc.outputs)
	for p, cols := range tc.outCfg {
		b.l.MustVsctl(t, append([]string{"set", "Port", p}, cols...)...)
	}
	ports := tc.capture
	if ports == nil {
		for p := range tc.outputs {
			ports = append(ports, p)
		}
	}
	// Native phase.
	for _, m := range tc.native {
		b.l.AddNativeMirror(t, "br0", m)
	}
	native := b.capture(t, false, ports...)
	for _, m := range tc.native {
		b.l.DelNativeMirror(t, "br0", m.Name)
	}
	// flowspan phase: outputs without an access tag are isolated the way
	// the daemon isolates them.
	isolated := map[string]bool{}
	for p, tag := range tc.outputs {
		if tag == 0 {
			isolated[p] = true
		}
	}
	res := b.install(t, tc.cfg, tc.mirrors, isolated, tc.host...)
	got := b.capture(t, true, ports...)
	// Counters from flow stats: each copy on a port output is counted once,
	// for the mirror that sent it.
	for out := range tc.outputs {
		var ids []uint16
		for _, m := range tc.mirrors {
			if m.Output.Port == out {
				ids = append(ids, res.Status[m.Name].ID)
			}
		}
		lab.Eventually(t, 10*time.Second, func() error {
			agg := flows.Aggregate(res.Generation, flowCounts(t, b.l))
			var n uint64
			for _, id := range ids {
				if mc := agg[id]; mc != nil {
					n += mc.Mirrored.Packets
				}
			}
			if n != uint64(len(got[out])) {
				return fmt.Errorf("%s: flow stats count %d mirrored packets, the capture has %d (interface statistics: %s)", out, n, len(got[out]), ifaceStats(b.l, out))
			}
			return nil
		})
	}
	// Per-selection counters count the same copies: for every mirror
	// (RSPAN included) they sum to its Mirrored counter.
	lab.Eventually(t, 10*time.Second, func() error {
		agg := flows.Aggregate(res.Generation, flowCounts(t, b.l))
		for _, m := range tc.mirrors {
			st := res.Status[m.Name]
			mc := agg[st.ID]
			if mc == nil {
				return fmt.Errorf("%s: no counters", m.Name)
			}
			var sum uint64
			for _, s := range st.Selections {
				sum += mc.Selections[s.Index].Packets
			}
			if sum != mc.Mirrored.Packets || len(mc.Selections) > len(st.Selections) {
				return fmt.Errorf("%s: selections %v sum to %d packets, Mirrored is %d", m.Name, mc.Selections, sum, mc.Mirrored.Packets)
			}
		}
		return nil
	})
	total, has := 0, 0
	for _, p := range ports {
		want := native[p]
		if tc.nativeHas != nil {
			has += len(lab.Filter(want, tc.nativeHas))
		}
		if tc.keep != nil {
			want = lab.Filter(want, tc.keep)
		}
		total += len(want)
		comparePackets(t, p, want, got[p])
	}
	if tc.nativeHas != nil && has < 3 {
		t.Errorf("native run delivered %d packets of the kind the case is about, want at least 3", has)
	}
	if total < tc.wantMin {
		t.Errorf("native run delivered only %d packets to %v, the case expects at least %d", total, ports, tc.wantMin)
	}
}

var statsRE = regexp.MustCompile(`cookie=(0x[0-9a-f]+),.* n_packets=(\d+), n_bytes=(\d+),`)

// flowCounts reads every flow's cookie and counters, as the daemon reads
// flow statistics.
func flowCounts(t *testing.T, l *lab.Lab) []flows.FlowCount {
	t.Helper()
	out, err := l.Ofctl("-O", "OpenFlow13", "dump-flows", "br0")
	if err != nil {
		t.Fatalf("dump-flows: %v", err)
	}
	var fc []flows.FlowCount
	for _, line := range strings.Split(out, "\n") {
		m := statsRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		c, _ := strconv.ParseUint(m[1], 0, 64)
		p, _ := strconv.ParseUint(m[2], 10, 64)
		by, _ := strconv.ParseUint(m[3], 10, 64)
		fc = append(fc, flows.FlowCount{Cookie: c, Packets: p, Bytes: by})
	}
	return fc
}

// ifaceStats is an interface's OVS statistics (tx_dropped says whether a
// copy the flows sent was lost on the way to the capture).
func ifaceStats(l *lab.Lab, iface string) string {
	out, err := l.Vsctl("get", "Interface", iface, "statistics")
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(out)
}
