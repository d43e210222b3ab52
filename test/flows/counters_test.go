package flows_test

import (
	"bytes"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flowspan/flowspan/flows"
	"github.com/flowspan/flowspan/test/lab"
)

// TestSelectionCountersCountCopies checks on real traffic that the
// per-selection counters Aggregate derives from flow statistics count the
// copies each selection actually sent to the output: packets a selection
// picked but a filter rejected are not counted (they show in SelectedBy),
// a packet picked by two selections of a mirror (ingress a1 and egress a2)
// is counted once, for the ingress one, and a copy another mirror with the
// same output had already sent (DONE) is not counted for the second
// mirror. The oracle is the capture on the output port, each copy
// classified by the direction that selected it (from its MAC addresses and
// VLAN); every selection's count must equal its copies, and each mirror's
// selections must sum to its Mirrored counter.
func TestSelectionCountersCountCopies(t *testing.T) {
	t.Parallel()
	b := newBench(t, map[string]int{"mirror0": 0})
	web := flows.Mirror{Name: "web", ID: 1, Ports: []string{"a1", "a2"},
		Filters: []string{"udp,tp_dst=2001", "udp,tp_dst=2003", "udp,tp_dst=2005"}, Output: flows.Output{Port: "mirror0"}}
	all := flows.Mirror{Name: "all", ID: 2, All: true,
		Filters: []string{"udp,tp_dst=2001", "udp,tp_dst=2006"}, Output: flows.Output{Port: "mirror0"}}
	res := b.install(t, flows.Config{}, []flows.Mirror{web, all}, map[string]bool{"mirror0": true})

	// Teach the bridge and flowspan's shadow table every MAC (ARP is not
	// UDP: no filter matches it).
	b.runSteps(t, []step{
		{"a1", func(b *bench) []byte { return arpFrame(b.mac["a1"], -1, 250) }, learns(10, "a1")},
		{"a2", func(b *bench) []byte { return arpFrame(b.mac["a2"], -1, 250) }, learns(10, "a2")},
		{"t1", func(b *bench) []byte { return arpFrame(b.mac["t1"], 10, 250) }, learns(10, "t1")},
		{"a3", func(b *bench) []byte { return arpFrame(b.mac["a3"], -1, 250) }, learns(20, "a3")},
		{"t1", func(b *bench) []byte { return arpFrame(b.mac["t1"], 20, 250) }, learns(20, "t1")},
	}, true)
	before := flows.Aggregate(res.Generation, flowCounts(t, b.l))

	// Traffic: UDP to port 2000+n (udpFrame), repeated so that each
	// selection ends with a different count.
	type send struct {
		from, to string // to: a host, "bcast" or "unknown"
		vlan     int    // 802.1Q tag on the sender's port, -1 untagged
		n        uint16
		times    int
	}
	traffic := []send{
		{"a1", "a2", -1, 1, 3},      // web: ingress a1 (also egress a2); all: same output, already copied
		{"a2", "a1", -1, 2, 2},      // web: ingress a2 picks it, no filter matches
		{"t1", "a1", 10, 3, 4},      // web: egress a1
		{"t1", "unknown", 10, 5, 5}, // web: flood in VLAN 10 (a1, a2)
		{"a3", "bcast", -1, 1, 2},   // flood in VLAN 20: not web's; all copies it
		{"a3", "t1", -1, 6, 1},      // all
		{"a1", "bcast", -1, 5, 6},   // web: ingress a1 (before flood)
	}
	dst := func(to string) net.HardwareAddr {
		switch to {
		case "bcast":
			return macBcast
		case "unknown":
			return macUnknown
		}
		return b.mac[to]
	}
	c := b.l.Capture(t, "mirror0")
	want := 0
	for _, s := range traffic {
		for i := 0; i < s.times; i++ {
			b.hosts[s.from].SendRaw(t, udpFrame(dst(s.to), b.mac[s.from], s.vlan, s.n, 40))
		}
		if s.n != 2 {
			want += s.times
		}
	}
	c.WaitFor(t, want)
	copies := lab.Filter(c.Stop(t), func(p lab.Packet) bool { return p.Proto == 17 })

	// Classify each copy by the selection that picked it, in select-table
	// order: web's ingress, egress, flood; then all's.
	is := func(m net.HardwareAddr, h string) bool { return bytes.Equal(m, b.mac[h]) }
	key := func(mirror string, dir flows.Direction, port string) string {
		return fmt.Sprintf("%s/%s/%s", mirror, dir, port)
	}
	captured := map[string]int{}
	for _, p := range copies {
		var k string
		switch {
		case is(p.Src, "a1") || is(p.Src, "a2"):
			port := "a1"
			if is(p.Src, "a2") {
				port = "a2"
			}
			k = key("web", flows.DirIngress, port)
		case is(p.Dst, "a1"):
			k = key("web", flows.DirEgress, "a1")
		case is(p.Dst, "a2"):
			k = key("web", flows.DirEgress, "a2")
		case p.Dst[0]&1 == 1 || bytes.Equal(p.Dst, macUnknown):
			if len(p.VLANs) == 1 && p.VLANs[0] == 10 {
				k = key("web", flows.DirFlood, "")
			} else {
				k = key("all", flows.DirAll, "")
			}
		default:
			k = key("all", flows.DirAll, "")
		}
		captured[k]++
	}
	// The traffic exercises every case the test is about.
	for _, k := range []string{key("web", flows.DirIngress, "a1"), key("web", flows.DirEgress, "a1"), key("web", flows.DirFlood, ""), key("all", flows.DirAll, "")} {
		if captured[k] == 0 {
			t.Fatalf("no copy captured for %s; copies:\n%s", k, lab.Summary(copies))
		}
	}

	delta := func(now, old map[uint16]*flows.MirrorCounters, id uint16, m func(*flows.MirrorCounters) map[uint32]flows.Counter, idx uint32) uint64 {
		var n uint64
		if mc := now[id]; mc != nil {
			n = m(mc)[idx].Packets
		}
		if mc := old[id]; mc != nil {
			n -= m(mc)[idx].Packets
		}
		return n
	}
	sels := func(mc *flows.MirrorCounters) map[uint32]flows.Counter { return mc.Selections }
	selBy := func(mc *flows.MirrorCounters) map[uint32]flows.Counter { return mc.SelectedBy }
	var last string
	lab.Eventually(t, 10*time.Second, func() error {
		now := flows.Aggregate(res.Generation, flowCounts(t, b.l))
		var errs []string
		got := map[string]int{}
		for _, m := range []flows.Mirror{web, all} {
			st := res.Status[m.Name]
			var sum uint64
			for _, s := range st.Selections {
				n := delta(now, before, st.ID, sels, s.Index)
				sum += n
				if n != 0 {
					got[key(m.Name, s.Direction, s.Port)] = int(n)
				}
			}
			mc, mc0 := now[st.ID], before[st.ID]
			if mc == nil {
				return fmt.Errorf("no counters for mirror %s", m.Name)
			}
			mirrored := mc.Mirrored.Packets
			if mc0 != nil {
				mirrored -= mc0.Mirrored.Packets
			}
			if sum != mirrored {
				errs = append(errs, fmt.Sprintf("%s: selections sum to %d, Mirrored is %d", m.Name, sum, mirrored))
			}
		}
		last = fmt.Sprintf("flow stats %v, captured %v", sorted(got), sorted(captured))
		if len(got) != len(captured) {
			errs = append(errs, last)
		}
		for k, n := range captured {
			if got[k] != n {
				errs = append(errs, fmt.Sprintf("%s: flow stats count %d copies, the capture has %d", k, got[k], n))
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%s (mirror0 statistics: %s)", strings.Join(errs, "; "), ifaceStats(b.l, "mirror0"))
		}
		// The pre-filter counters are still there: web's ingress a2 picked
		// the two packets to port 2002 and mirrored none.
		idx := selIndex(t, res, "web", flows.DirIngress, "a2")
		if n := delta(now, before, res.Status["web"].ID, selBy, idx); n != 2 {
			return fmt.Errorf("web ingress a2 SelectedBy grew by %d, want 2", n)
		}
		// all selected web's copies to port 2001 too, but sent none of them.
		ac, ac0 := now[res.Status["all"].ID], before[res.Status["all"].ID]
		if ac == nil {
			return fmt.Errorf("no counters for mirror all")
		}
		dup := ac.Selected.Packets - ac.Mirrored.Packets
		if ac0 != nil {
			dup -= ac0.Selected.Packets - ac0.Mirrored.Packets
		}
		if want := uint64(len(lab.Filter(copies, func(p lab.Packet) bool { return p.DstPort == 2001 && (is(p.Src, "a1") || is(p.Src, "a2")) }))); dup != want || want == 0 {
			return fmt.Errorf("all: %d packets selected but already copied by web, want %d (the web copies to port 2001)", dup, want)
		}
		return nil
	})
	t.Log(last)
}

func selIndex(t *testing.T, res *flows.Result, mirror string, dir flows.Direction, port string) uint32 {
	t.Helper()
	for _, s := range res.Status[mirror].Selections {
		if s.Direction == dir && s.Port == port {
			return s.Index
		}
	}
	t.Fatalf("mirror %s has no selection %s %s", mirror, dir, port)
	return 0
}

func sorted(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, m[k])
	}
	return strings.TrimSpace(b.String())
}
