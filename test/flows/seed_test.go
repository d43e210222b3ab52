package flows_test

import (
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
	fdb, err := b.l.Appctl("fdb/show", "br0")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := flows.ParseFDBShow(fdb)
	if err != nil {
		t.Fatal(err)
	}
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

// addFlows adds flows without replacing the table.
func addFlows(t *testing.T, l *lab.Lab, fl []flows.Flow) {
	t.Helper()
	var ch flows.Changes
	ch.Add = fl
	applyChanges(t, l, ch)
}
