package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowspan/flowspan/api"
	"github.com/flowspan/flowspan/test/lab"
)

// waitFlowSet polls br0's flow set until it equals want.
func (e *env) waitFlowSet(want []string, what string) {
	e.t.Helper()
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = e.flowSet("br0")
		if slices.Equal(got, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !slices.Equal(got, want) {
		e.t.Errorf("%s: flow set differs (-want +got):\n%s", what, lineDiff(want, got))
	}
}

func lineDiff(want, got []string) string {
	var b strings.Builder
	for _, w := range want {
		if !slices.Contains(got, w) {
			b.WriteString("- " + w + "\n")
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			b.WriteString("+ " + g + "\n")
		}
	}
	return b.String()
}

// checkForwardAndMirror sends n UDP packets h1 -> h2 to dstPort and checks
// that h2 receives them and m0 gets one copy each.
func (e *env) checkForwardAndMirror(h1, h2 *lab.Host, dstPort uint16, n int, when string) {
	e.t.Helper()
	cm, ch := e.lab.Capture(e.t, "m0"), e.lab.Capture(e.t, h2.Port())
	h1.SendUDP(e.t, h2.IPv4(), 4000, dstPort, 64, n)
	pm, ph := cm.Stop(e.t), ch.Stop(e.t)
	expectUDP(e.t, when+": h2 (forwarding)", ph, map[uint16]int{dstPort: n})
	expectUDP(e.t, when+": m0 (mirror)", pm, map[uint16]int{dstPort: n})
}

// TestServeRestart checks persistence: mirrors survive SIGTERM and kill -9
// of the daemon; while it is down forwarding and mirroring go on; after a
// restart the same mirrors and the same flow set are back.
func TestServeRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hs := e.hosts(2)
	h1, h2 := hs[0], hs[1]
	e.outputPort("m0")
	e.learn(hs)
	e.must("mirror", "add", "web", "--bridge", "br0", "--port", "h1", "--match", "udp", "--to", "m0")
	e.waitActive("web")
	e.settle()
	e.checkForwardAndMirror(h1, h2, 5001, 5, "before restart")
	flows := e.flowSet("br0")
	mirrors := e.list()
	if _, err := os.Stat(e.d.state); err != nil {
		t.Fatalf("state file: %v", err)
	}

	for _, how := range []string{"kill -9", "SIGTERM"} {
		t.Run(how, func(t *testing.T) {
			if how == "kill -9" {
				e.d.kill()
			} else {
				e.d.stop()
			}
			if r := e.fs("mirror", "list"); r.code != 1 || !strings.Contains(r.stderr, "daemon not running") {
				t.Errorf("mirror list with the daemon down: %v", r)
			}
			// Flows stay in the switch while the daemon is down.
			if got := e.flowSet("br0"); !slices.Equal(got, flows) {
				t.Errorf("flows while the daemon is down (-want +got):\n%s", lineDiff(flows, got))
			}
			e.checkForwardAndMirror(h1, h2, 5002, 6, "daemon down after "+how)

			e.d.start()
			got := e.list()
			if len(got) != 1 || got[0].Spec.Name != "web" || !slices.Equal(got[0].Spec.Ports, mirrors[0].Spec.Ports) ||
				!slices.Equal(got[0].Spec.Match, mirrors[0].Spec.Match) || got[0].Spec.Output != mirrors[0].Spec.Output {
				t.Errorf("mirrors after restart: %+v, want %+v", got, mirrors)
			}
			e.waitActive("web")
			e.waitFlowSet(flows, "after restart")
			e.checkForwardAndMirror(h1, h2, 5003, 4, "after restart")
		})
	}
}

// TestVswitchdRestart restarts ovs-vswitchd (its flow table is lost) and
// checks that mirroring resumes within 5 s.
func TestVswitchdRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hs := e.hosts(2)
	h1, h2 := hs[0], hs[1]
	e.outputPort("m0")
	e.learn(hs)
	e.must("mirror", "add", "web", "--bridge", "br0", "--ingress", "h1", "--to", "m0")
	e.waitActive("web")
	flows := e.flowSet("br0")

	e.lab.RestartVswitchd(t)
	restarted := time.Now()
	e.linkUp("m0") // OVS recreates the internal port as a down device
	c := e.lab.Capture(t, "m0")
	sent := 0
	for c.Count() == 0 {
		if time.Since(restarted) > 5*time.Second {
			t.Fatalf("no mirrored packet on m0 within 5s of the vswitchd restart (%d sent)", sent)
		}
		h1.SendUDP(t, h2.IPv4(), 4000, 5001, 64, 1)
		sent++
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("mirroring resumed %v after the restart returned", time.Since(restarted).Round(10*time.Millisecond))
	c.Stop(t)
	e.waitFlowSet(flows, "after vswitchd restart")
	e.checkForwardAndMirror(h1, h2, 5002, 5, "after vswitchd restart")
}

// TestPortReadded deletes a mirrored port and adds it back with a new
// OpenFlow port number: the mirror reports the missing port meanwhile and
// then follows the port by name.
func TestPortReadded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hs := e.hosts(2)
	h1, h2 := hs[0], hs[1]
	e.outputPort("m0")
	e.learn(hs)
	e.must("mirror", "add", "web", "--bridge", "br0", "--port", "h1", "--to", "m0")
	e.waitActive("web")
	old := e.lab.OFPort(t, "h1")

	e.lab.MustVsctl(t, "del-port", "br0", "h1")
	lab.Eventually(t, 10*time.Second, func() error {
		m := e.mirror("web")
		if m.Status.State != api.StatePending || !slices.Contains(m.Status.MissingPorts, "h1") {
			return fmt.Errorf("mirror web with h1 deleted: status %+v, want pending with h1 missing", m.Status)
		}
		return nil
	})
	newPort := old + 40
	e.lab.MustVsctl(t, "add-port", "br0", "h1", "--", "set", "Interface", "h1", fmt.Sprintf("ofport_request=%d", newPort))
	if got := e.lab.OFPort(t, "h1"); got != newPort {
		t.Fatalf("h1 re-added with ofport %d, want %d", got, newPort)
	}
	e.waitActive("web")
	e.settle()
	e.learn(hs)
	e.checkForwardAndMirror(h1, h2, 5001, 5, "after re-adding h1")
	// And the egress direction, which depends on the new port number too.
	c := e.lab.Capture(t, "m0")
	h2.SendUDP(t, h1.IPv4(), 4000, 5002, 64, 4)
	expectUDP(t, "m0", c.Stop(t), map[uint16]int{5002: 4})
}

// TestInvalidInput checks each error case of DESIGN.md 3.9: the command
// fails with exit 1 and an error naming the problem, and neither the
// switch's flows nor the daemon's state change.
func TestInvalidInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.hosts(2)
	e.outputPort("m0")
	e.must("mirror", "add", "good", "--bridge", "br0", "--port", "h1", "--to", "m0")
	e.waitActive("good")
	flows := e.flowSet("br0")
	state, err := os.ReadFile(e.d.state)
	if err != nil {
		t.Fatal(err)
	}
	list := e.must("mirror", "list", "-o", "json")
	tests := []struct {
		name  string
		args  []string
		names string // the error must mention this
	}{
		{"unknown bridge", []string{"bad", "--bridge", "br9", "--port", "h1", "--to", "m0"}, "br9"},
		{"unknown port", []string{"bad", "--bridge", "br0", "--port", "vnet9", "--to", "m0"}, "vnet9"},
		{"unknown output port", []string{"bad", "--bridge", "br0", "--port", "h1", "--to", "nosuch0"}, "nosuch0"},
		{"output port also selected", []string{"bad", "--bridge", "br0", "--port", "h1", "--port", "h2", "--to", "h2"}, "h2"},
		{"bad filter", []string{"bad", "--bridge", "br0", "--port", "h1", "--match", "tcp,tp_dst=https", "--to", "m0"}, "tp_dst"},
		{"bad filter among good ones", []string{"bad", "--bridge", "br0", "--port", "h1", "--match", "udp", "--match", "nw_src=10.0.0.300", "--to", "m0"}, "10.0.0.300"},
		{"duplicate name", []string{"good", "--bridge", "br0", "--port", "h2", "--to", "m0"}, "good"},
		{"tunnel without remote", []string{"bad", "--bridge", "br0", "--port", "h1", "--to-tunnel", "gre"}, "remote"},
		{"selects nothing", []string{"bad", "--bridge", "br0", "--to", "m0"}, "bad"},
		{"snaplen too small", []string{"bad", "--bridge", "br0", "--port", "h1", "--snaplen", "5", "--to", "m0"}, "snaplen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.fs(append([]string{"mirror", "add"}, tt.args...)...)
			if r.code != 1 {
				t.Errorf("exit %d, want 1: %v", r.code, r)
			}
			if !strings.Contains(r.stderr, tt.names) {
				t.Errorf("error does not name %q: %q", tt.names, r.stderr)
			}
			if got := e.flowSet("br0"); !slices.Equal(got, flows) {
				t.Errorf("flows changed (-want +got):\n%s", lineDiff(flows, got))
			}
			if got, _ := os.ReadFile(e.d.state); string(got) != string(state) {
				t.Errorf("state file changed:\nbefore %s\nafter  %s", state, got)
			}
			if got := e.must("mirror", "list", "-o", "json"); got != list {
				t.Errorf("mirror list changed:\nbefore %s\nafter  %s", list, got)
			}
		})
	}
	if r := e.fs("mirror", "del", "nope"); r.code != 1 || !strings.Contains(r.stderr, "nope") {
		t.Errorf("del of an unknown mirror: %v", r)
	}
	if r := e.fs("release", "--bridge", "br9"); r.code != 1 || !strings.Contains(r.stderr, "br9") {
		t.Errorf("release of an unknown bridge: %v", r)
	}
	// A second daemon on the same API socket refuses to start.
	r := e.fs("serve", "--ovsdb", e.lab.DBEndpoint(), "--api", e.api, "--state", e.d.state+".second", "--metrics", "")
	if r.code != 1 || !strings.Contains(r.stderr, "already in use") {
		t.Errorf("second serve on %s: %v", e.api, r)
	}
	if got := e.must("mirror", "list", "-o", "json"); got != list {
		t.Errorf("mirror list changed after a second serve failed:\nbefore %s\nafter  %s", list, got)
	}
}

// TestHandoverNoLoss pings continuously while flowspan takes the bridge over
// (first mirror added) and releases it (last mirror deleted), several
// times: no forwarded packet may be lost or duplicated (DESIGN.md 3.11).
// Both ways to a first mirror: through the bridge's management socket (the
// default) and --take-over-first.
func TestHandoverNoLoss(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		via  string
	}{
		{"management socket", nil, "via_management_socket=true"},
		{"take over first", []string{"--take-over-first"}, "via_management_socket=false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.args...)
			testHandoverNoLoss(t, e)
			out := e.d.out.String()
			if !strings.Contains(out, tc.via) || strings.Count(out, "mirror added") != strings.Count(out, tc.via) {
				t.Errorf("every \"mirror added\" should log %s:\n%s", tc.via, out)
			}
		})
	}
}

func testHandoverNoLoss(t *testing.T, e *env) {
	hs := e.hosts(2)
	h1, h2 := hs[0], hs[1]
	e.outputPort("m0")
	e.learn(hs)
	before := e.lab.MustVsctl(t, "get-controller", "br0")
	const pings = 400 // 4 s at 10 ms
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := h1.Run(context.Background(), "ping", "-n", "-q", "-c", strconv.Itoa(pings), "-i", "0.01", "-W", "1", h2.IPv4().String())
		done <- result{out, err}
	}()
	cycles := 0
loop:
	for {
		select {
		case r := <-done:
			done <- r
			break loop
		default:
		}
		e.must("mirror", "add", "web", "--bridge", "br0", "--port", "h1", "--to", "m0")
		e.waitActive("web")
		e.must("mirror", "del", "web")
		cycles++
	}
	r := <-done
	want := fmt.Sprintf("%d packets transmitted, %d received, 0%% packet loss", pings, pings)
	if r.err != nil || !strings.Contains(r.out, want) || strings.Contains(r.out, "duplicates") {
		t.Errorf("ping during %d take-over/release cycles: want %q: %v\n%s", cycles, want, r.err, r.out)
	}
	if cycles < 2 {
		t.Errorf("only %d take-over/release cycles during the pings", cycles)
	}
	if after := e.lab.MustVsctl(t, "get-controller", "br0"); after != before {
		t.Errorf("controllers after release: %q, want %q as before", after, before)
	}
}

// TestOvsdbRestart restarts ovsdb-server: mirroring goes on, the daemon
// reconnects and later changes (a new mirror with a created port) work.
func TestOvsdbRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hs := e.hosts(2)
	h1, h2 := hs[0], hs[1]
	e.outputPort("m0")
	e.learn(hs)
	e.must("mirror", "add", "web", "--bridge", "br0", "--port", "h1", "--to", "m0")
	e.waitActive("web")
	e.settle()
	e.lab.RestartOvsdb(t)
	// ovs-vswitchd itself stops forwarding for a moment while it re-reads
	// the database (without flowspan too): wait until it forwards again.
	lab.Eventually(t, 10*time.Second, func() error {
		out, err := h1.Run(context.Background(), "ping", "-n", "-q", "-c", "1", "-W", "1", h2.IPv4().String())
		if err != nil {
			return fmt.Errorf("ping after ovsdb-server restart: %v: %s", err, out)
		}
		return nil
	})
	e.settle()
	e.checkForwardAndMirror(h1, h2, 5001, 5, "after ovsdb-server restart")
	lab.Eventually(t, 20*time.Second, func() error {
		r := e.fs("mirror", "add", "second", "--bridge", "br0", "--ingress", "h2", "--to", "cap1", "--create")
		if r.code != 0 {
			return fmt.Errorf("mirror add after ovsdb-server restart: %v", r)
		}
		return nil
	})
	e.waitActive("second")
	e.settle()
	c := e.lab.Capture(t, "cap1")
	h2.SendUDP(t, h1.IPv4(), 4000, 5002, 64, 4)
	expectUDP(t, "cap1", c.Stop(t), map[uint16]int{5002: 4})
}
