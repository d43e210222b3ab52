package lab_test

import (
	"testing"

	"github.com/flowspan/flowspan/test/lab"
)

// hosts builds br0 with n hosts h1..hn in 10.0.0.0/24 and fd00::/64 that
// already know each other (so no ARP/ND happens during a measurement) and
// whose MACs the bridge has learned.
func hosts(t *testing.T, l *lab.Lab, n int, ipv6 bool) []*lab.Host {
	t.Helper()
	l.AddBridge(t, "br0")
	var hs []*lab.Host
	for i := 1; i <= n; i++ {
		cfg := lab.HostConfig{
			MAC:  "02:00:00:00:00:0" + string(rune('0'+i)),
			IPv4: "10.0.0." + string(rune('0'+i)) + "/24",
		}
		if ipv6 {
			cfg.IPv6 = "fd00::" + string(rune('0'+i)) + "/64"
		}
		hs = append(hs, l.AddHost(t, "br0", "h"+string(rune('0'+i)), cfg))
	}
	for _, a := range hs {
		for _, b := range hs {
			if a != b {
				a.Neighbor(t, b.IPv4(), b.MAC())
			}
		}
	}
	// One packet from each host teaches the bridge every MAC.
	for i, a := range hs {
		b := hs[(i+1)%len(hs)]
		if got := a.Ping(t, b.IPv4(), 1); got != 1 {
			t.Fatalf("warm-up ping %s -> %s: %d replies", a.Name(), b.Name(), got)
		}
	}
	return hs
}

func TestPingThroughNormalBridge(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	hs := hosts(t, l, 2, true)
	if got := hs[0].Ping(t, hs[1].IPv4(), 5); got != 5 {
		t.Errorf("IPv4 ping h1 -> h2: %d of 5 replies", got)
	}
	if got := hs[1].Ping(t, hs[0].IPv6(), 5); got != 5 {
		t.Errorf("IPv6 ping h2 -> h1: %d of 5 replies", got)
	}
}

func TestTCPTransfer(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	hs := hosts(t, l, 2, false)
	hs[0].SendTCP(t, hs[1], 5001, 8<<20)
}

// TestNativeMirrorOracle checks that OVS's own Mirror table, the oracle of
// the conformance tests, delivers exactly the expected packets to the
// capture on its output port.
func TestNativeMirrorOracle(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	hs := hosts(t, l, 3, false)
	h1, h2, h3 := hs[0], hs[1], hs[2]
	l.AddInternalPort(t, "br0", "mirror0", 0)
	l.AddNativeMirror(t, "br0", lab.NativeMirror{
		Name: "m0", SelectSrc: []string{h1.Port()}, SelectDst: []string{h1.Port()}, Output: "mirror0",
	})
	out := l.Capture(t, "mirror0")
	at2 := l.Capture(t, h2.Port())
	h1.SendUDP(t, h2.IPv4(), 4000, 5000, 100, 15) // h1 -> h2: mirrored (ingress of h1)
	h2.SendUDP(t, h1.IPv4(), 4001, 5001, 200, 7)  // h2 -> h1: mirrored (egress of h1)
	h2.SendUDP(t, h3.IPv4(), 4002, 5002, 300, 10) // h2 -> h3: not mirrored
	got := out.Stop(t)
	received := at2.Stop(t)

	if n := len(lab.Filter(got, lab.UDPTo(5000))); n != 15 {
		t.Errorf("mirror0 got %d copies of h1->h2, want 15", n)
	}
	if n := len(lab.Filter(got, lab.UDPTo(5001))); n != 7 {
		t.Errorf("mirror0 got %d copies of h2->h1, want 7", n)
	}
	if len(got) != 22 {
		t.Errorf("mirror0 got %d packets, want exactly 22:\n%s", len(got), lab.Summary(got))
	}
	for _, p := range lab.Filter(got, lab.UDPTo(5000)) {
		if p.Len != 14+20+8+100 || p.Src.String() != h1.MAC().String() || len(p.VLANs) != 0 {
			t.Errorf("mirrored packet %v: want untagged, %d bytes, from %s", p, 14+20+8+100, h1.MAC())
			break
		}
	}
	// Forwarding is unchanged: h2 received h1's 15 datagrams, and nothing
	// mirrored or from itself.
	if n := len(lab.Filter(received, lab.UDPTo(5000))); n != 15 {
		t.Errorf("h2 received %d of h1's 15 datagrams", n)
	}
	if len(received) != 15 {
		t.Errorf("h2 received %d packets, want 15:\n%s", len(received), lab.Summary(received))
	}
}

func TestAccessVLANsIsolate(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	a := l.AddHost(t, "br0", "a", lab.HostConfig{IPv4: "10.1.0.1/24", Tag: 10})
	b := l.AddHost(t, "br0", "b", lab.HostConfig{IPv4: "10.1.0.2/24", Tag: 20})
	c := l.AddHost(t, "br0", "c", lab.HostConfig{IPv4: "10.1.0.3/24", Tag: 10})
	// A trunk host sending tagged frames in VLAN 10 reaches the access ports of VLAN 10.
	d := l.AddHost(t, "br0", "d", lab.HostConfig{IPv4: "10.1.0.4/24", Trunks: []int{10, 20}, VLAN: 10})
	if got := a.Ping(t, c.IPv4(), 3); got != 3 {
		t.Errorf("same VLAN a -> c: %d of 3 replies", got)
	}
	if got := d.Ping(t, a.IPv4(), 3); got != 3 {
		t.Errorf("trunk d (VLAN 10) -> access a (VLAN 10): %d of 3 replies", got)
	}
	if got := a.Ping(t, b.IPv4(), 3); got != 0 {
		t.Errorf("VLAN 10 -> VLAN 20: %d replies, want none", got)
	}
	// The trunk host's frames arrive tagged on the trunk port.
	cap := l.Capture(t, d.Port())
	a.Ping(t, d.IPv4(), 2)
	for _, p := range lab.Filter(cap.Stop(t), lab.ICMPEcho) {
		if len(p.VLANs) != 1 || p.VLANs[0] != 10 {
			t.Errorf("on trunk port: %v, want VLAN 10 tag", p)
		}
	}
}

func TestCleanupLeavesNothing(t *testing.T) {
	var l *lab.Lab
	t.Run("lab", func(t *testing.T) {
		l = lab.New(t)
		hs := hosts(t, l, 2, false)
		l.AddInternalPort(t, "br0", "int0", 0)
		c := l.Capture(t, hs[1].Port())
		_ = c // left running: cleanup must stop it
		if len(l.Leftovers()) == 0 {
			t.Fatal("Leftovers sees nothing of a running lab")
		}
	})
	if l == nil {
		return // the subtest was skipped (-short, or no OVS outside CI)
	}
	if left := l.Leftovers(); len(left) != 0 {
		t.Errorf("after cleanup, left behind: %v", left)
	}
}
