package main

import (
	"regexp"
	"strconv"

	"github.com/flowspan/flowspan/test/lab"
)

// twoHosts builds br0 with hosts h1 (10.0.0.1) and h2 (10.0.0.2) that know
// each other's MACs (no ARP during a measurement), a bridge that has
// learned both, and an internal port mirror0 for mirror copies.
func twoHosts(t lab.T, l *lab.Lab) (h1, h2 *lab.Host) {
	t.Helper()
	l.AddBridge(t, "br0")
	h1 = l.AddHost(t, "br0", "h1", lab.HostConfig{MAC: "02:00:00:00:00:01", IPv4: "10.0.0.1/24"})
	h2 = l.AddHost(t, "br0", "h2", lab.HostConfig{MAC: "02:00:00:00:00:02", IPv4: "10.0.0.2/24"})
	h1.Neighbor(t, h2.IPv4(), h2.MAC())
	h2.Neighbor(t, h1.IPv4(), h1.MAC())
	l.AddInternalPort(t, "br0", "mirror0", 0)
	if got := h1.Ping(t, h2.IPv4(), 1); got != 1 {
		t.Fatalf("warm-up ping h1 -> h2: %d replies", got)
	}
	if got := h2.Ping(t, h1.IPv4(), 1); got != 1 {
		t.Fatalf("warm-up ping h2 -> h1: %d replies", got)
	}
	return h1, h2
}

var txPktsRE = regexp.MustCompile(`tx pkts=(\d+)`)

// txPackets is how many packets OVS has sent out of a port.
func txPackets(t lab.T, l *lab.Lab, port string) int64 {
	t.Helper()
	out, err := l.Ofctl("-O", "OpenFlow13", "dump-ports", "br0", port)
	if err != nil {
		t.Fatalf("%v", err)
	}
	m := txPktsRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("dump-ports %s: no tx pkts in %q", port, out)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}
