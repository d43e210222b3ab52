package flows_test

import (
	"testing"
	"time"

	"github.com/flowspan/flowspan/flows"
	"github.com/flowspan/flowspan/test/lab"
)

// TestOutputPortIsolated: what a device on the output port sends goes
// nowhere (dropped by flowspan's first table, not forwarded, not
// mirrored), and the output port receives only mirror copies, none of the
// bridge's own flooding.
func TestOutputPortIsolated(t *testing.T) {
	t.Parallel()
	b := newBench(t, nil)
	o1 := b.l.AddHost(t, "br0", "o1", lab.HostConfig{MAC: "02:00:00:00:00:0f", Tag: 4095})
	b.install(t, flows.Config{}, []flows.Mirror{{Name: "m", All: true, Output: flows.Output{Port: "o1"}}},
		map[string]bool{"o1": true})
	others := []string{"a1", "a2", "a3", "t1", "t2", "n1"}
	caps := map[string]*lab.Capture{}
	for _, p := range append(others, "o1") {
		caps[p] = b.l.Capture(t, p)
	}
	in := b.l.CaptureDir(t, "o1", lab.Received)
	// The device behind the output port talks: broadcast, to a known MAC,
	// tagged.
	b.hosts["a1"].SendRaw(t, udpFrame(macBcast, b.mac["a1"], -1, 1, 40)) // teaches a1
	lab.Eventually(t, 5*time.Second, func() error {
		if caps["o1"].Count() < 1 {
			return errString("a1's broadcast not mirrored yet")
		}
		return nil
	})
	o1.SendRaw(t,
		udpFrame(macBcast, o1.MAC(), -1, 2, 40),
		udpFrame(b.mac["a1"], o1.MAC(), -1, 3, 40),
		udpFrame(macBcast, o1.MAC(), 10, 4, 40),
	)
	in.WaitFor(t, 3)
	b.hosts["a2"].SendRaw(t, udpFrame(macBcast, b.mac["a2"], -1, 5, 40)) // a normal flood after them
	for _, p := range others {
		for _, pkt := range caps[p].Stop(t) {
			if pkt.Src.String() == o1.MAC().String() {
				t.Errorf("%s received a frame sent on the output port: %s", p, pkt)
			}
		}
	}
	got := caps["o1"].Stop(t)
	in.Stop(t)
	if len(got) != 2 {
		t.Errorf("output port received %d packets, want the 2 mirror copies (a1's and a2's broadcasts):\n%s", len(got), lab.Summary(got))
	}
	for _, pkt := range got {
		if pkt.Src.String() == o1.MAC().String() {
			t.Errorf("a frame sent on the output port was mirrored back to it: %s", pkt)
		}
	}
	// The drop flow counted them.
	lab.Eventually(t, 10*time.Second, func() error {
		for _, fc := range flowCounts(t, b.l) {
			if flows.Cookie(fc.Cookie).Kind() == flows.KindDropOutput && fc.Packets >= 3 {
				return nil
			}
		}
		return errString("the output port's drop flow has not counted the 3 frames")
	})
}
