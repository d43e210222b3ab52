package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowspan/flowspan/test/lab"
)

// TestOutputKinds covers the outputs besides a port: an RSPAN VLAN (copies
// flooded in that VLAN reach a collector on an access port of it, once
// each) and a tunnel port flowspan creates and removes.
func TestOutputKinds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hs := e.hosts(2)
	h1, h2 := hs[0], hs[1]
	coll := e.host("coll", 9, lab.HostConfig{Tag: 999, IPv4: "10.9.9.9/24"})
	e.learn(hs)

	t.Run("rspan vlan", func(t *testing.T) {
		e.must("mirror", "add", "rspan", "--bridge", "br0", "--ingress", "h1", "--to-vlan", "999")
		e.waitActive("rspan")
		e.settle()
		c, c2 := e.lab.Capture(t, coll.Port()), e.lab.Capture(t, h2.Port())
		h1.SendUDP(t, h2.IPv4(), 4000, 5001, 64, 5)
		h2.SendUDP(t, h1.IPv4(), 4000, 5002, 64, 3) // not selected
		got, at2 := c.Stop(t), c2.Stop(t)
		expectUDP(t, "collector in VLAN 999", got, map[uint16]int{5001: 5, 5002: 0})
		// h2 is a trunk of every VLAN: like the native Mirror's
		// output_vlan, the copies are flooded to it too, tagged 999,
		// next to the 5 forwarded packets.
		var fwd, tagged int
		for _, p := range lab.Filter(at2, lab.UDPTo(5001)) {
			switch {
			case len(p.VLANs) == 0:
				fwd++
			case len(p.VLANs) == 1 && p.VLANs[0] == 999:
				tagged++
			}
		}
		if fwd != 5 || tagged != 5 || udpCount(at2, 5001) != 10 {
			t.Errorf("h2: %d forwarded and %d copies tagged 999, want 5 and 5:\n%s", fwd, tagged, lab.Summary(at2))
		}
		e.must("mirror", "del", "rspan")
	})

	t.Run("snaplen", func(t *testing.T) {
		e.outputPort("m0")
		e.must("mirror", "add", "snap", "--bridge", "br0", "--ingress", "h1", "--snaplen", "64", "--to", "m0")
		e.waitActive("snap")
		e.settle()
		c, c2 := e.lab.Capture(t, "m0"), e.lab.Capture(t, h2.Port())
		h1.SendUDP(t, h2.IPv4(), 4000, 5003, 500, 4)
		got, at2 := c.Stop(t), c2.Stop(t)
		expectUDP(t, "m0", got, map[uint16]int{5003: 4})
		for _, p := range got {
			if p.Len != 64 {
				t.Errorf("copy %s: %d bytes, want 64 (--snaplen 64)", p, p.Len)
			}
		}
		for _, p := range lab.Filter(at2, lab.UDPTo(5003)) {
			if p.Len != 14+20+8+500 {
				t.Errorf("forwarded %s: %d bytes, want the whole %d", p, p.Len, 14+20+8+500)
			}
		}
		e.must("mirror", "del", "snap")
	})

	t.Run("tunnel", func(t *testing.T) {
		e.must("mirror", "add", "tun", "--bridge", "br0", "--port", "h1", "--to-tunnel", "gre:192.0.2.10:7")
		m := e.mirror("tun")
		port := m.Spec.Output.Port
		if port == "" {
			t.Fatalf("tunnel mirror has no output port name: %+v", m.Spec.Output)
		}
		lab.Eventually(t, 10*time.Second, func() error {
			typ, err := e.lab.Vsctl("get", "Interface", port, "type")
			if err != nil || strings.TrimSpace(typ) != "gre" {
				return fmt.Errorf("interface %s type %q (%v), want gre", port, strings.TrimSpace(typ), err)
			}
			opts := e.lab.MustVsctl(t, "get", "Interface", port, "options")
			if !strings.Contains(opts, `remote_ip="192.0.2.10"`) || !strings.Contains(opts, `key="7"`) {
				return fmt.Errorf("interface %s options %s, want remote_ip 192.0.2.10 and key 7", port, opts)
			}
			return nil
		})
		e.must("mirror", "del", "tun")
		lab.Eventually(t, 10*time.Second, func() error {
			for _, p := range e.ports("br0") {
				if p == port {
					return fmt.Errorf("tunnel port %s left after the mirror was deleted", port)
				}
			}
			return nil
		})
	})
}
