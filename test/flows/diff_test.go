package flows_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flowspan/flowspan/flows"
	"github.com/flowspan/flowspan/test/lab"
)

// applyChanges sends Changes as one ovs-ofctl bundle (what ofctrl does with
// Changes.FlowMods).
func applyChanges(t *testing.T, l *lab.Lab, ch flows.Changes) {
	t.Helper()
	var sb strings.Builder
	for _, f := range ch.Delete {
		sb.WriteString("delete_strict " + strictKey(f) + "\n")
	}
	for _, f := range ch.Modify {
		sb.WriteString("modify_strict " + f.String() + "\n")
	}
	for _, f := range ch.Add {
		sb.WriteString("add " + f.String() + "\n")
	}
	file := filepath.Join(t.TempDir(), "changes.txt")
	if err := os.WriteFile(file, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Ofctl("-O", "OpenFlow13", "--bundle", "add-flows", "br0", file); err != nil {
		t.Fatalf("applying changes: %v\n%s\n%s", err, out, sb.String())
	}
}

// strictKey is the flow's table, priority and match (what a strict delete
// names).
func strictKey(f flows.Flow) string {
	s := f.String()
	s = s[:strings.Index(s, " actions=")]
	if i := strings.Index(s, "table="); i >= 0 {
		s = s[i:]
	} else if i := strings.Index(s, "priority="); i >= 0 {
		s = s[i:]
	}
	return s
}

// TestDiffOnSwitch changes one mirror of two through Diff and checks the
// switch ends with exactly the desired flows while the other mirror's
// flows keep their counters (they were not touched).
func TestDiffOnSwitch(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	h1 := l.AddHost(t, "br0", "h1", lab.HostConfig{MAC: "02:00:00:00:00:01"})
	h2 := l.AddHost(t, "br0", "h2", lab.HostConfig{MAC: "02:00:00:00:00:02"})
	l.AddInternalPort(t, "br0", "mirror0", 4095)
	facts := flows.BridgeFacts{Ports: map[string]flows.PortFacts{}}
	for _, p := range []string{"h1", "h2", "mirror0"} {
		facts.Ports[p] = flows.PortFacts{OFPort: uint32(l.OFPort(t, p))}
	}
	mirror0 := facts.Ports["mirror0"]
	mirror0.Tag, mirror0.Isolated = 4095, true
	facts.Ports["mirror0"] = mirror0
	mirrors := []flows.Mirror{
		{Name: "a", ID: 1, Ingress: []string{"h1"}, Filters: []string{"udp"}, Output: flows.Output{Port: "mirror0"}},
		{Name: "b", ID: 2, Egress: []string{"h2"}, Output: flows.Output{Port: "mirror0"}},
	}
	before, err := flows.Compile(flows.Config{}, mirrors, facts)
	if err != nil {
		t.Fatal(err)
	}
	installFlows(t, l, before.Flows)
	frame := udpFrame(h2.MAC(), h1.MAC(), -1, 1, 40)
	h1.SendRaw(t, frame, frame, frame)
	bCounts := func() map[string]uint64 {
		out := map[string]uint64{}
		for _, fc := range flowCounts(t, l) {
			if flows.Cookie(fc.Cookie).Mirror() == 2 {
				out[fmt.Sprintf("%#x", fc.Cookie)] += fc.Packets
			}
		}
		return out
	}
	var was map[string]uint64
	lab.Eventually(t, 10*time.Second, func() error {
		was = bCounts()
		var n uint64
		for _, v := range was {
			n += v
		}
		if n == 0 {
			return errString("mirror b's flows have not counted the frames yet")
		}
		return nil
	})

	mirrors[0].Filters = []string{"udp,udp_dst=9", "arp"}
	after, err := flows.Compile(flows.Config{}, mirrors, facts)
	if err != nil {
		t.Fatal(err)
	}
	ch := flows.Diff(before.Flows, after.Flows)
	for _, f := range append(append(append([]flows.Flow{}, ch.Add...), ch.Modify...), ch.Delete...) {
		if flows.Cookie(f.Cookie).Mirror() != 1 {
			t.Errorf("changing mirror a touches %s", f)
		}
	}
	applyChanges(t, l, ch)
	out, err := l.Ofctl("-O", "OpenFlow13", "--no-names", "--no-stats", "dump-flows", "br0")
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, line := range strings.Split(out, "\n") {
		// Learned MAC flows are the switch's, not the compiler's.
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "OFPST") && !strings.HasPrefix(line, "cookie=0xf50003") {
			got = append(got, line)
		}
	}
	for _, f := range after.Flows {
		want = append(want, f.String())
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("after applying the diff the switch has (-want +got):\n%s", lineDiff(want, got))
	}
	now := bCounts()
	for k, v := range was {
		if now[k] < v {
			t.Errorf("mirror b flow %s: counter went from %d to %d (flow was replaced)", k, v, now[k])
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestPortRemovalForgetsItsMACs removes a port the way the daemon does
// (recompile without it, apply the diff) and checks OVS deleted the MAC
// flows learned on it, like NORMAL flushes the port's MAC entries, while
// the MACs of other ports stay.
func TestPortRemovalForgetsItsMACs(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	h1 := l.AddHost(t, "br0", "h1", lab.HostConfig{MAC: "02:00:00:00:00:01"})
	h2 := l.AddHost(t, "br0", "h2", lab.HostConfig{MAC: "02:00:00:00:00:02"})
	factsOf := func(ports ...string) flows.BridgeFacts {
		f := flows.BridgeFacts{Ports: map[string]flows.PortFacts{}}
		for _, p := range ports {
			f.Ports[p] = flows.PortFacts{OFPort: uint32(l.OFPort(t, p))}
		}
		return f
	}
	before, err := flows.Compile(flows.Config{}, nil, factsOf("h1", "h2"))
	if err != nil {
		t.Fatal(err)
	}
	installFlows(t, l, before.Flows)
	h1.SendRaw(t, udpFrame(macBcast, h1.MAC(), -1, 1, 40))
	h2.SendRaw(t, udpFrame(macBcast, h2.MAC(), -1, 2, 40))
	learned := func() string {
		out, err := l.Ofctl("-O", "OpenFlow13", "dump-flows", "br0", "table=3")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	lab.Eventually(t, 5*time.Second, func() error {
		if out := learned(); !strings.Contains(out, "dl_dst=02:00:00:00:00:01") || !strings.Contains(out, "dl_dst=02:00:00:00:00:02") {
			return errString("MACs not learned yet:\n" + out)
		}
		return nil
	})
	port1 := l.OFPort(t, "h1")
	l.MustVsctl(t, "del-port", "br0", "h1")
	after, err := flows.Compile(flows.Config{}, nil, factsOf("h2"))
	if err != nil {
		t.Fatal(err)
	}
	ch := flows.Diff(before.Flows, after.Flows)
	for _, f := range ch.Delete {
		if in, ok := f.Match.InPort(); !ok || in != uint32(port1) {
			t.Errorf("removing h1 deletes %s", f)
		}
	}
	applyChanges(t, l, ch)
	out := learned()
	if strings.Contains(out, "dl_dst=02:00:00:00:00:01") {
		t.Errorf("MAC learned on the removed port is still there:\n%s", out)
	}
	if !strings.Contains(out, "dl_dst=02:00:00:00:00:02") {
		t.Errorf("MAC learned on h2 was deleted too:\n%s", out)
	}
}
