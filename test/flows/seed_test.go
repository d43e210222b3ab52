package flows_test

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowspan/flowspan/flows"
	"github.com/flowspan/flowspan/test/lab"
)

// TestSeededMACTableOnWarmBridge takes over a bridge whose NORMAL MAC table
// is already warm: with the shadow MAC table seeded from fdb/show
// (MACFlows), known unicast is predicted as unicast at once, and an egress
// mirror on a bystander port gets what the native mirror gets, not the
// flood copies an empty shadow table would predict.
func TestSeededMACTableOnWarmBridge(t *testing.T) {
	t.Parallel()
	b := newBench(t, map[string]int{"mirror0": 0})
	warm := func() {
		// t1 and a1 announce themselves in VLAN 10.
		b.hosts["t1"].SendRaw(t, udpFrame(macBcast, b.mac["t1"], 10, 1, 40))
		b.hosts["a1"].SendRaw(t, udpFrame(macBcast, b.mac["a1"], -1, 2, 40))
	}
	traffic := func() {
		for i := 0; i < 3; i++ {
			b.hosts["a1"].SendRaw(t, udpFrame(b.mac["t1"], b.mac["a1"], -1, uint16(10+i), 40))
		}
		b.hosts["t1"].SendRaw(t, udpFrame(b.mac["a1"], b.mac["t1"], 10, 20, 40))
		b.hosts["a1"].SendRaw(t, udpFrame(macUnknown, b.mac["a1"], -1, 21, 40)) // still a flood
	}
	// Native: mirror the bystander a2's egress.
	b.l.AddNativeMirror(t, "br0", lab.NativeMirror{Name: "m", SelectDst: []string{"a2"}, Output: "mirror0"})
	b.flushFDB(t)
	warm()
	waitLearned(t, b, "t1", "a1")
	c := b.l.Capture(t, "mirror0")
	traffic()
	native := c.Stop(t)
	b.l.DelNativeMirror(t, "br0", "m")

	// flowspan takes the warm bridge over: no flush, shadow table seeded.
	mirrors := []flows.Mirror{{Name: "m", Egress: []string{"a2"}, Output: flows.Output{Port: "mirror0"}}}
	b.install(t, flows.Config{}, mirrors, map[string]bool{"mirror0": true})
	fdb, entries := b.macTableEntries(t)
	seeded, err := flows.MACFlows(flows.Config{}, mirrors, b.facts(t, map[string]bool{"mirror0": true}), entries)
	if err != nil {
		t.Fatal(err)
	}
	if len(seeded) < 2 {
		t.Fatalf("seeded %d MAC flows from:\n%s", len(seeded), fdb)
	}
	addFlows(t, b.l, seeded)
	c = b.l.Capture(t, "mirror0")
	traffic()
	got := c.Stop(t)
	if len(native) != 1 {
		t.Errorf("native mirror sent %d copies, want 1 (the unknown-unicast flood):\n%s", len(native), lab.Summary(native))
	}
	comparePackets(t, "mirror0", native, got)
}

func waitLearned(t *testing.T, b *bench, hosts ...string) {
	t.Helper()
	lab.Eventually(t, 5*time.Second, func() error {
		out, err := b.l.Appctl("fdb/show", "br0")
		if err != nil {
			return err
		}
		for _, h := range hosts {
			if !strings.Contains(out, b.mac[h].String()) {
				return errString("bridge has not learned " + h + ":\n" + out)
			}
		}
		return nil
	})
}

// macTableEntries reads and parses the bridge's MAC table.
func (b *bench) macTableEntries(t *testing.T) (string, []flows.MACEntry) {
	t.Helper()
	fdb, err := b.l.Appctl("fdb/show", "br0")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := flows.ParseFDBShow(fdb)
	if err != nil {
		t.Fatal(err)
	}
	return fdb, entries
}

// addFlows adds flows without replacing the table.
func addFlows(t *testing.T, l *lab.Lab, fl []flows.Flow) {
	t.Helper()
	var ch flows.Changes
	ch.Add = fl
	applyChanges(t, l, ch)
}

// TestSplitSeedsAreExact installs the pipeline with only the MAC entries
// SplitMACEntries says are needed now (the rest would follow in a second
// bundle) on a warm bridge, and checks that the copies equal the native
// mirror's for unicast to every known host, in every VLAN, from every
// host. The frames carry fresh source MACs, so neither table learns
// anything about the destinations from this traffic: what the shadow table
// knows of them is exactly the seeds.
func TestSplitSeedsAreExact(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name           string
		native         lab.NativeMirror
		mirror         flows.Mirror
		wantNow, later bool // whether some entries are needed now / can wait
	}{
		{"egress a2", lab.NativeMirror{SelectDst: []string{"a2"}},
			flows.Mirror{Egress: []string{"a2"}}, true, true},
		{"egress a1 a3", lab.NativeMirror{SelectDst: []string{"a1", "a3"}},
			flows.Mirror{Egress: []string{"a1", "a3"}}, true, true},
		{"both t1", lab.NativeMirror{SelectSrc: []string{"t1"}, SelectDst: []string{"t1"}},
			flows.Mirror{Ports: []string{"t1"}}, true, true},
		{"egress t2 n1", lab.NativeMirror{SelectDst: []string{"t2", "n1"}},
			flows.Mirror{Egress: []string{"t2", "n1"}}, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBench(t, map[string]int{"mirror0": 0})
			// Where each host sends from: -1 untagged, else the VID.
			vlans := map[string][]int{"a1": {-1}, "a2": {-1}, "a3": {-1}, "t1": {-1, 10, 20}, "t2": {10, 20}, "n1": {-1, 10}}
			hosts := []string{"a1", "a2", "a3", "t1", "t2", "n1"}
			warm := func() {
				for _, h := range hosts {
					for _, v := range vlans[h] {
						b.hosts[h].SendRaw(t, udpFrame(macBcast, b.mac[h], v, 1, 40))
					}
				}
				lab.Eventually(t, 5*time.Second, func() error {
					out, err := b.l.Appctl("fdb/show", "br0")
					if err != nil {
						return err
					}
					if n := strings.Count(out, "02:00:00:00:00:"); n < 10 {
						return errString("bridge learned " + strconv.Itoa(n) + " of 10 entries:\n" + out)
					}
					return nil
				})
			}
			traffic := func() {
				k := byte(0)
				for _, from := range hosts {
					for _, v := range vlans[from] {
						for _, to := range append(hosts, "") {
							k++
							dst := macUnknown
							if to != "" {
								dst = b.mac[to]
							}
							src := net.HardwareAddr{0x02, 0xee, 0, 0, 0, k}
							b.hosts[from].SendRaw(t, udpFrame(dst, src, v, uint16(k), 40))
						}
					}
				}
			}
			nm := tc.native
			nm.Name, nm.Output = "m", "mirror0"
			b.l.AddNativeMirror(t, "br0", nm)
			b.flushFDB(t)
			warm()
			c := b.l.Capture(t, "mirror0")
			traffic()
			native := c.Stop(t)
			b.l.DelNativeMirror(t, "br0", "m")

			b.flushFDB(t)
			warm()
			m := tc.mirror
			m.Name, m.Output = "m", flows.Output{Port: "mirror0"}
			mirrors := []flows.Mirror{m}
			b.install(t, flows.Config{}, mirrors, map[string]bool{"mirror0": true})
			fdb, entries := b.macTableEntries(t)
			facts := b.facts(t, map[string]bool{"mirror0": true})
			now, later, err := flows.SplitMACEntries(flows.Config{}, mirrors, facts, entries)
			if err != nil {
				t.Fatal(err)
			}
			if len(now)+len(later) != len(entries) || (len(now) > 0) != tc.wantNow || (len(later) > 0) != tc.later {
				t.Fatalf("split of %d entries: %d now, %d later; want some now %v, some later %v:\n%s",
					len(entries), len(now), len(later), tc.wantNow, tc.later, fdb)
			}
			seeded, err := flows.MACFlows(flows.Config{}, mirrors, facts, now)
			if err != nil {
				t.Fatal(err)
			}
			addFlows(t, b.l, seeded)
			c = b.l.Capture(t, "mirror0")
			traffic()
			got := c.Stop(t)
			if len(native) == 0 {
				t.Fatalf("native mirror sent no copies: the comparison would prove nothing")
			}
			comparePackets(t, "mirror0", native, got)
			t.Logf("%d entries: %d seeded now, %d later; %d copies equal to native", len(entries), len(now), len(later), len(got))
		})
	}
}
