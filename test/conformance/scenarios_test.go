package conformance

import (
	"fmt"
	"net/netip"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/flowspan/flowspan/test/lab"
)

// Topologies.

// std is br0 with hosts h1..hn (02:00:00:00:00:0i, 10.0.0.i/24, with ipv6
// also fd00::i/64) and internal ports with no VLAN configuration.
func std(n int, ipv6 bool, internal ...string) Topology {
	var t Topology
	for i := 1; i <= n; i++ {
		cfg := lab.HostConfig{MAC: fmt.Sprintf("02:00:00:00:00:%02x", i), IPv4: fmt.Sprintf("10.0.0.%d/24", i)}
		if ipv6 {
			cfg.IPv6 = fmt.Sprintf("fd00::%d/64", i)
		}
		t.Hosts = append(t.Hosts, HostSpec{Name: fmt.Sprintf("h%d", i), HostConfig: cfg})
	}
	for _, p := range internal {
		t.Internal = append(t.Internal, InternalSpec{Name: p})
	}
	t.Outputs = internal
	return t
}

// withMon adds a silent host "mon" (no addresses) and makes it the output.
func withMon(t Topology, cfg lab.HostConfig) Topology {
	cfg.MAC = "02:00:00:00:00:99"
	t.Hosts = append(t.Hosts, HostSpec{Name: "mon", HostConfig: cfg})
	t.Outputs = []string{"mon"}
	return t
}

// vlanTopo: access ports a, b (VLAN 10) and c, d (VLAN 20); e5, a host on
// a trunk (10, 20) sending tagged in VLAN 20; t, a trunk (10, 20) sending
// raw tagged and untagged frames; n, a native-untagged trunk (native VLAN
// 10, trunks 10, 20); and the outputs given.
func vlanTopo(outputs ...string) Topology {
	return Topology{
		Hosts: []HostSpec{
			{Name: "a", HostConfig: lab.HostConfig{MAC: "02:00:00:00:01:01", IPv4: "10.1.0.1/24", Tag: 10}},
			{Name: "b", HostConfig: lab.HostConfig{MAC: "02:00:00:00:01:02", IPv4: "10.1.0.2/24", Tag: 10}},
			{Name: "c", HostConfig: lab.HostConfig{MAC: "02:00:00:00:02:03", IPv4: "10.2.0.3/24", Tag: 20}},
			{Name: "d", HostConfig: lab.HostConfig{MAC: "02:00:00:00:02:04", IPv4: "10.2.0.4/24", Tag: 20}},
			{Name: "e5", HostConfig: lab.HostConfig{MAC: "02:00:00:00:02:05", IPv4: "10.2.0.5/24", Trunks: []int{10, 20}, VLAN: 20}},
			{Name: "t", HostConfig: lab.HostConfig{MAC: "02:00:00:00:03:06", Trunks: []int{10, 20}}},
			{Name: "n", HostConfig: lab.HostConfig{MAC: "02:00:00:00:03:07", Tag: 10, Trunks: []int{10, 20}}, VLANMode: "native-untagged"},
		},
		Outputs: outputs,
	}
}

func withInternal(t Topology, name string, tag int) Topology {
	t.Internal = append(t.Internal, InternalSpec{Name: name, Tag: tag})
	return t
}

// Traffic.

// basic: known unicast between h1..h3 through the kernel, and one
// broadcast each from h1 and h3. 18 packets reach the bridge:
//
//	h1->h2 5, h2->h1 3, h2->h3 4, h3->h1 2, h3->h2 2, h1 bcast 1, h3 bcast 1
func basic(e *Env) {
	e.UDP("h1", "h2", 4000, 5000, 100, 5)
	e.UDP("h2", "h1", 4001, 5001, 200, 3)
	e.UDP("h2", "h3", 4002, 5002, 300, 4)
	e.UDP("h3", "h1", 4003, 5003, 50, 2)
	e.UDP("h3", "h2", 4004, 5004, 60, 2)
	e.RawUDP("h1", 0, macBroadcast, netip.MustParseAddr("10.0.0.255"), 4005, 6000, 64, 1)
	e.RawUDP("h3", 0, macBroadcast, netip.MustParseAddr("10.0.0.255"), 4006, 6000, 64, 1)
}

// vlanTraffic: on vlanTopo, 20 frames reach the bridge; 18 carry a valid
// VLAN for their port (t's untagged and VLAN 30 frames do not):
//
//	a->b 3 (VLAN 10), c->e5 3 and e5->d 2 (VLAN 20, e5 tagged),
//	t: tagged 10 to a 2, tagged 20 to d 2, untagged to a 1, tagged 30 to a 1,
//	n: untagged (native 10) to b 2, tagged 20 broadcast 1, tagged 10 to a 1,
//	a broadcast 1 (VLAN 10), c broadcast 1 (VLAN 20)
func vlanTraffic(e *Env) {
	foreign10, foreign20 := netip.MustParseAddr("10.1.0.99"), netip.MustParseAddr("10.2.0.99")
	e.UDP("a", "b", 4000, 5000, 100, 3)
	e.UDP("c", "e5", 4001, 5001, 120, 3)
	e.UDP("e5", "d", 4002, 5002, 140, 2)
	e.RawUDP("t", 10, e.MAC("a"), foreign10, 4003, 5003, 80, 2)
	e.RawUDP("t", 20, e.MAC("d"), foreign20, 4004, 5004, 80, 2)
	e.RawUDP("t", 0, e.MAC("a"), foreign10, 4005, 5005, 80, 1)
	e.RawUDP("t", 30, e.MAC("a"), foreign10, 4006, 5006, 80, 1)
	e.RawUDP("n", 0, e.MAC("b"), foreign10, 4007, 5007, 90, 2)
	e.RawUDP("n", 20, macBroadcast, netip.MustParseAddr("10.2.0.255"), 4008, 6000, 90, 1)
	e.RawUDP("n", 10, e.MAC("a"), foreign10, 4009, 5009, 90, 1)
	e.RawUDP("a", 0, macBroadcast, netip.MustParseAddr("10.1.0.255"), 4010, 6000, 64, 1)
	e.RawUDP("c", 0, macBroadcast, netip.MustParseAddr("10.2.0.255"), 4011, 6000, 64, 1)
}

// nonForwarded: h1 sends a frame to its own MAC (NORMAL: "learned port is
// input port", dropped), an LLDP frame to 01:80:c2:00:00:0e and an 802.3
// frame to 01:80:c2:00:00:00 (reserved: NORMAL drops them); h2 sends a
// frame tagged VLAN 10 to h1's MAC, which the bridge learned in VLAN 0
// only: flooded in VLAN 10 to h1 and h3 (ports without VLAN config carry
// every VLAN). 4 frames reach the bridge.
func nonForwarded(e *Env) {
	h1 := e.MAC("h1")
	e.Raw("h1",
		rawEther(h1, h1, 0, 0x88b6, 50),
		rawEther(mustMAC("01:80:c2:00:00:0e"), h1, 0, 0x88cc, 50),
		rawEther(mustMAC("01:80:c2:00:00:00"), h1, 0, 38, 46)) // 802.3 length field
	e.Raw("h2", rawEther(h1, e.MAC("h2"), 10, 0x88b6, 60))
}

// filterTraffic: a mix the filter scenarios select from (std 3 hosts):
//
//	TCP SYN h1->h2:80 2 (h2 answers RST 2), TCP SYN h1->h2:443 1 (RST 1),
//	TCP SYN h3->10.0.1.1:80 from 10.0.1.3 1 (foreign: no answer),
//	UDP h1->h2 from ports 0x1234 2, 0x1fff 1, 0x2345 1,
//	IPv6 UDP h2->fd00::99 from fd00::2 1 and from fd01::2 1 (foreign),
//	ARP request h1 for h2 1 (reply 1), ICMP echo h3->h1 1 (reply 1)
//
// 17 packets reach the bridge.
func filterTraffic(e *Env) {
	h1, h2, h3 := e.MAC("h1"), e.MAC("h2"), e.MAC("h3")
	e.Raw("h1",
		tcpFrame(h2, h1, 0, e.IP4("h1"), e.IP4("h2"), 1234, 80, 1000, tcpSYN, nil),
		tcpFrame(h2, h1, 0, e.IP4("h1"), e.IP4("h2"), 1235, 80, 2000, tcpSYN, nil),
		tcpFrame(h2, h1, 0, e.IP4("h1"), e.IP4("h2"), 1236, 443, 3000, tcpSYN, nil))
	e.Raw("h3", tcpFrame(h1, h3, 0, netip.MustParseAddr("10.0.1.3"), netip.MustParseAddr("10.0.1.1"), 1237, 80, 4000, tcpSYN, nil))
	e.UDP("h1", "h2", 0x1234, 5000, 100, 2)
	e.UDP("h1", "h2", 0x1fff, 5001, 100, 1)
	e.UDP("h1", "h2", 0x2345, 5002, 100, 1)
	dst6 := netip.MustParseAddr("fd00::99")
	e.Raw("h2",
		udpFrame(h3, h2, 0, netip.MustParseAddr("fd00::2"), dst6, 4000, 5000, 100),
		udpFrame(h3, h2, 0, netip.MustParseAddr("fd01::2"), dst6, 4001, 5000, 100))
	e.Raw("h1", arpFrame(1, 0, h1, e.IP4("h1"), nil, e.IP4("h2")))
	e.Raw("h3", echoFrame(h1, h3, 0, e.IP4("h3"), e.IP4("h1"), 1))
}

// Post-filters: the same matches as the flowspan filters, applied by the
// test to the native copies.
func isTCP4(p lab.Packet) bool { return p.EtherType == lab.EtherTypeIPv4 && p.Proto == 6 }
func isUDP4(p lab.Packet) bool { return p.EtherType == lab.EtherTypeIPv4 && p.Proto == 17 }
func tcpDst80(p lab.Packet) bool {
	return isTCP4(p) && p.DstPort == 80
}
func nwSrc10(p lab.Packet) bool {
	return p.EtherType == lab.EtherTypeIPv4 && netip.MustParsePrefix("10.0.0.0/24").Contains(p.IPSrc)
}
func udpSrc1000(p lab.Packet) bool { return isUDP4(p) && p.SrcPort&0xf000 == 0x1000 }
func v6SrcFd01(p lab.Packet) bool {
	return p.EtherType == lab.EtherTypeIPv6 && netip.MustParsePrefix("fd01::/16").Contains(p.IPSrc)
}
func isARP(p lab.Packet) bool { return p.EtherType == lab.EtherTypeARP }
func anyOf(fs ...func(lab.Packet) bool) func(lab.Packet) bool {
	return func(p lab.Packet) bool {
		for _, f := range fs {
			if f(p) {
				return true
			}
		}
		return false
	}
}

func udpDstIn(lo, hi uint16) func(lab.Packet) bool {
	return func(p lab.Packet) bool { return isUDP4(p) && p.DstPort >= lo && p.DstPort < hi }
}

// Checks.

// maxLen fails a side whose outputs carry a packet longer than n bytes, or
// none truncated to exactly n.
func maxLen(n int) func(e *Env, got map[string][]lab.Packet) {
	return func(e *Env, got map[string][]lab.Packet) {
		exact := 0
		for _, o := range e.sc.Topo.Outputs {
			for _, p := range got[o] {
				if p.Len > n {
					e.T.Errorf("snaplen %d: copy on %s is %d bytes: %v", n, o, p.Len, p)
				}
				if p.Len == n {
					exact++
				}
			}
		}
		if exact == 0 {
			e.T.Errorf("snaplen %d: no copy was truncated to %d bytes", n, n)
		}
	}
}

// nothingFrom fails a side where a port other than the outputs received a
// packet sent by host.
func nothingFrom(host string) func(e *Env, got map[string][]lab.Packet) {
	return func(e *Env, got map[string][]lab.Packet) {
		mac := e.MAC(host).String()
		for port, pkts := range got {
			if isOutput(e.sc, port) {
				continue
			}
			for _, p := range pkts {
				if p.Src.String() == mac {
					e.T.Errorf("%s received %v, sent by %s on a mirror output port (must be dropped)", port, p, host)
				}
			}
		}
	}
}

const (
	manyMirrors  = 300
	manyBasePort = 10000
)

// manyTraffic: h1 sends i%3+1 datagrams to UDP port 10000+i for each of
// the 300 mirrors (600 in all), and h2 answers a few unselected ones.
func manyTraffic(e *Env) {
	var frames [][]byte
	dst := netip.MustParseAddr("10.0.0.250") // foreign: h2 drops them quietly
	for i := 0; i < manyMirrors; i++ {
		f := udpFrame(e.MAC("h2"), e.MAC("h1"), 0, e.IP4("h1"), dst, 3000, uint16(manyBasePort+i), 32)
		for k := 0; k <= i%3; k++ {
			frames = append(frames, f)
		}
	}
	e.Raw("h1", frames...)
	e.UDP("h2", "h1", 4000, 5000, 100, 3)
}

func manyFlowspan() [][]string {
	var ms [][]string
	for i := 0; i < manyMirrors; i++ {
		ms = append(ms, []string{fmt.Sprintf("m%03d", i), "--ingress", "h1",
			"--match", fmt.Sprintf("udp,tp_dst=%d", manyBasePort+i), "--to", "mirror0"})
	}
	return ms
}

// manyCounters checks flowspan's per-mirror counters against what was
// sent: mirror i copied i%3+1 packets.
func manyCounters(e *Env, _ map[string][]lab.Packet) {
	if e.Side != flowspan {
		return
	}
	want := map[string]uint64{}
	for i := 0; i < manyMirrors; i++ {
		want[fmt.Sprintf("m%03d", i)] = uint64(i%3 + 1)
	}
	var bad []string
	lab.Eventually(e.T, lab.Timeout, func() error {
		bad = bad[:0]
		got := map[string]uint64{}
		for _, m := range e.d.stats(e.T).Mirrors {
			got[m.Name] = m.Packets
		}
		for name, n := range want {
			if got[name] != n {
				bad = append(bad, fmt.Sprintf("%s: %d packets, want %d", name, got[name], n))
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("mirror stats (flow counters lag by up to a second): %d mirrors wrong, first: %s", len(bad), strings.Join(bad[:min(5, len(bad))], "; "))
		}
		return nil
	})
}

const (
	lifeN     = 1500
	lifePort  = 7000
	lifeEvery = 2 * time.Millisecond
)

// lifeAt: after how many datagrams the mirrors are added (even index) or
// deleted (odd).
var lifeAt = []int{lifeN / 10, lifeN * 3 / 10, lifeN / 2, lifeN * 7 / 10, lifeN * 85 / 100}

// ranges renders sorted numbers as "3-7,9".
func ranges(ns []uint32) string {
	var b strings.Builder
	for i := 0; i < len(ns); {
		j := i
		for j+1 < len(ns) && ns[j+1] == ns[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteString(",")
		}
		if i == j {
			fmt.Fprintf(&b, "%d", ns[i])
		} else {
			fmt.Fprintf(&b, "%d-%d", ns[i], ns[j])
		}
		i = j + 1
	}
	return b.String()
}

// lifeTraffic is the stream alone (the no-mirror run).
func lifeTraffic(e *Env) {
	e.Stream("h1", "h2", lifePort, lifeN, lifeEvery).Wait(e)
}

// lifeMirrored adds and deletes the mirrors five times while the stream
// flows; the first add is also flowspan taking over the bridge.
func lifeMirrored(e *Env) {
	s := e.Stream("h1", "h2", lifePort, lifeN, lifeEvery)
	for i, at := range lifeAt {
		s.WaitSent(e, at)
		if i%2 == 0 {
			e.AddMirrors()
		} else {
			e.DelMirrors()
		}
	}
	s.Wait(e)
}

// restartMirrored adds the mirrors, starts the stream and, in the flowspan
// lab, restarts the daemon a third of the way through (the native table
// just keeps mirroring).
func restartMirrored(e *Env) {
	e.AddMirrors()
	e.warm(false)
	s := e.Stream("h1", "h2", lifePort, lifeN, lifeEvery)
	s.WaitSent(e, lifeN/3)
	if e.Side == flowspan {
		at := s.sent.Load()
		e.d.restart(e.T)
		e.d.waitActive(e.T, []string{e.sc.Flowspan[0][0]})
		e.T.Logf("flowspan serve restarted between datagrams %d and %d", at, s.sent.Load())
	}
	s.Wait(e)
}

// vswitchdRestartMirrored adds the mirrors, restarts ovs-vswitchd and waits
// until the switch's flow table is what it was before (learned MAC flows
// aside: those have timeouts), brings the lab's internal ports up again
// (vswitchd re-creates them down), lets the bridge relearn every host and
// sends the traffic.
func vswitchdRestartMirrored(e *Env) {
	e.AddMirrors()
	want, err := e.flowTable()
	if err != nil {
		e.T.Fatalf("%v", err)
	}
	e.Lab.RestartVswitchd(e.T)
	lab.Eventually(e.T, lab.Timeout, func() error {
		got, err := e.flowTable()
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("flow table after the restart:\n%s\nbefore:\n%s", got, want)
		}
		return nil
	})
	for _, p := range e.sc.Topo.Internal {
		if out, err := exec.Command("ip", "netns", "exec", e.Lab.Netns(), "ip", "link", "set", "dev", p.Name, "up").CombinedOutput(); err != nil {
			e.T.Fatalf("bring %s up after the restart: %v: %s", p.Name, err, out)
		}
	}
	e.quietOffloads()
	e.warm(true)
	e.sc.Traffic(e)
}

// flowTable is the bridge's OpenFlow table without statistics, cookies and
// flows that have timeouts (learned entries), sorted.
func (e *Env) flowTable() (string, error) {
	out, err := e.Lab.Ofctl("-O", "OpenFlow13", "--no-stats", "dump-flows", bridge)
	if err != nil {
		return "", err
	}
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "OFPST_FLOW") || strings.Contains(l, "hard_timeout=") || strings.Contains(l, "idle_timeout=") {
			continue
		}
		// Cookies aside too: flowspan installs a new generation on reconnect.
		if strings.HasPrefix(l, "cookie=") {
			if _, rest, ok := strings.Cut(l, ", "); ok {
				l = rest
			}
		}
		keep = append(keep, l)
	}
	sort.Strings(keep)
	return strings.Join(keep, "\n"), nil
}

// lifeVerify: h2 received every datagram exactly once; the output got no
// datagram twice, and some (the mirror was in place for a while).
func lifeVerify(e *Env, got map[string][]lab.Packet) {
	rx := streamSeqs(got["h2"], lifePort)
	var missing []uint32
	dup := 0
	for i := uint32(0); i < lifeN; i++ {
		switch n := rx[i]; {
		case n == 0:
			missing = append(missing, i)
		case n > 1:
			dup++
		}
	}
	if len(missing) > 0 || dup > 0 || len(rx) != lifeN {
		e.T.Errorf("h2 received %d distinct datagrams of %d: %d missing (%s), %d duplicated; mirror changes at %v",
			len(rx), lifeN, len(missing), ranges(missing), dup, lifeAt)
	}
	copies := streamSeqs(got["mirror0"], lifePort)
	total := 0
	for seq, n := range copies {
		total += n
		if n > 1 {
			e.T.Errorf("mirror0 received datagram %d %d times", seq, n)
		}
	}
	if total == 0 {
		e.T.Errorf("mirror0 received no copy although the mirror was in place for about %d of %d datagrams", lifeN*45/100, lifeN)
	}
	e.T.Logf("lifecycle: h2 received %d/%d, mirror0 %d copies", len(rx), lifeN, total)
}

// scenarios is the conformance table. WantCopies is derived by hand from
// the traffic functions' comments and OVS's mirror semantics; it keeps
// the oracle honest (a capture that lost everything would otherwise
// compare equal).
func scenarios() []Scenario {
	selAll := lab.NativeMirror{Name: "m", SelectAll: true, Output: "mirror0"}
	return []Scenario{
		// Selections (OVS tests/ofproto-dpif.at "mirroring, select_*").
		{
			Name: "select_all", About: "select_all=true: every packet the bridge receives, once",
			Topo: std(3, false, "mirror0"), Traffic: basic, WantCopies: 18,
			Native:   []lab.NativeMirror{selAll},
			Flowspan: [][]string{{"m", "--all", "--to", "mirror0"}},
		},
		{
			Name: "select_src", About: "select_src_port=h1: packets received on h1",
			Topo: std(3, false, "mirror0"), Traffic: basic, WantCopies: 6,
			Native:   []lab.NativeMirror{{Name: "m", SelectSrc: []string{"h1"}, Output: "mirror0"}},
			Flowspan: [][]string{{"m", "--ingress", "h1", "--to", "mirror0"}},
		},
		{
			Name: "select_dst", About: "select_dst_port=h1: packets sent out of h1, unicast and flooded",
			Topo: std(3, false, "mirror0"), Traffic: basic, WantCopies: 6,
			Native:   []lab.NativeMirror{{Name: "m", SelectDst: []string{"h1"}, Output: "mirror0"}},
			Flowspan: [][]string{{"m", "--egress", "h1", "--to", "mirror0"}},
		},
		{
			Name: "src_dst_same_port", About: "select_src_port=h1 select_dst_port=h1 (flowspan --port h1)",
			Topo: std(3, false, "mirror0"), Traffic: basic, WantCopies: 12,
			Native:   []lab.NativeMirror{{Name: "m", SelectSrc: []string{"h1"}, SelectDst: []string{"h1"}, Output: "mirror0"}},
			Flowspan: [][]string{{"m", "--port", "h1", "--to", "mirror0"}},
		},
		{
			Name: "src_a_dst_b", About: "select_src_port=h1 select_dst_port=h2: one copy when h1 talks to h2",
			Topo: std(3, false, "mirror0"), Traffic: basic, WantCopies: 9,
			Native:   []lab.NativeMirror{{Name: "m", SelectSrc: []string{"h1"}, SelectDst: []string{"h2"}, Output: "mirror0"}},
			Flowspan: [][]string{{"m", "--ingress", "h1", "--egress", "h2", "--to", "mirror0"}},
		},
		{
			Name: "two_mirrors_same_output", About: "two mirrors to one output: one copy of a packet both select",
			Topo: std(3, false, "mirror0"), Traffic: basic, WantCopies: 9,
			Native: []lab.NativeMirror{
				{Name: "m1", SelectSrc: []string{"h1"}, Output: "mirror0"},
				{Name: "m2", SelectDst: []string{"h2"}, Output: "mirror0"},
			},
			Flowspan: [][]string{{"m1", "--ingress", "h1", "--to", "mirror0"}, {"m2", "--egress", "h2", "--to", "mirror0"}},
		},
		{
			Name: "two_mirrors_two_outputs", About: "two mirrors, two outputs: one copy on each",
			Topo: std(3, false, "mirror0", "mirror1"), Traffic: basic, WantCopies: 15,
			Native: []lab.NativeMirror{
				{Name: "m1", SelectSrc: []string{"h1"}, Output: "mirror0"},
				{Name: "m2", SelectDst: []string{"h2"}, Output: "mirror1"},
			},
			Flowspan: [][]string{{"m1", "--ingress", "h1", "--to", "mirror0"}, {"m2", "--egress", "h2", "--to", "mirror1"}},
		},
		{
			Name: "output_drops_received", About: "what the output port receives is dropped, never forwarded, never mirrored",
			Topo: withMon(std(3, false), lab.HostConfig{}), WantCopies: 18,
			Traffic: func(e *Env) {
				basic(e)
				mon := e.MAC("mon")
				e.Raw("mon",
					ether(macBroadcast, mon, 0, 0x0800, ipv4(netip.MustParseAddr("10.0.0.99"), netip.MustParseAddr("10.0.0.255"), 17, make([]byte, 16))),
					arpFrame(1, 0, mon, netip.MustParseAddr("10.0.0.99"), nil, e.IP4("h1")),
					rawEther(e.MAC("h1"), mon, 0, 0x88b6, 80),
					rawEther(macUnknown, mon, 0, 0x88b6, 80))
			},
			NoBaseline: "without a mirror mon is an ordinary port whose frames are forwarded",
			Verify:     nothingFrom("mon"),
			Native:     []lab.NativeMirror{{Name: "m", SelectAll: true, Output: "mon"}},
			Flowspan:   [][]string{{"m", "--all", "--to", "mon"}},
		},

		{
			Name: "output_port_mac_unicast", About: "unicast to the output port's MAC, learned before the mirror existed: NORMAL must not deliver it (the mirror copies it)",
			Topo: withMon(std(3, false), lab.HostConfig{}), WantCopies: 1,
			Traffic: func(e *Env) {
				e.Raw("h1", rawEther(e.MAC("mon"), e.MAC("h1"), 0, 0x88b6, 70))
			},
			NoBaseline: "without a mirror mon is an ordinary port and receives the frame",
			Native:     []lab.NativeMirror{{Name: "m", SelectAll: true, Output: "mon"}},
			Flowspan:   [][]string{{"m", "--all", "--to", "mon"}},
		},
		{
			Name: "output_port_mac_unicast_warm", About: "the same when the bridge already has a mirror (flowspan isolates mon on a bridge it has taken over)",
			Topo: func() Topology {
				t := withMon(std(3, false, "mirror0"), lab.HostConfig{})
				t.Outputs = []string{"mirror0", "mon"}
				return t
			}(),
			WantCopies: 1,
			Traffic: func(e *Env) {
				e.Raw("h1", rawEther(e.MAC("mon"), e.MAC("h1"), 0, 0x88b6, 70))
			},
			NoBaseline: "without a mirror mon is an ordinary port and receives the frame",
			Native: []lab.NativeMirror{{Name: "o", SelectSrc: []string{"h3"}, Output: "mirror0"},
				{Name: "m", SelectAll: true, Output: "mon"}},
			Flowspan: [][]string{{"o", "--ingress", "h3", "--to", "mirror0"}, {"m", "--all", "--to", "mon"}},
			InOrder:  true,
		},

		{
			Name: "output_created_port", About: "--to mirror0 --create: flowspan creates the internal output port (the native lab has it from the start)",
			Topo: func() Topology {
				t := std(3, false)
				t.Internal = []InternalSpec{{Name: "mirror0", Created: true}}
				t.Outputs = []string{"mirror0"}
				return t
			}(),
			Traffic: basic, WantCopies: 18,
			Native:   []lab.NativeMirror{selAll},
			Flowspan: [][]string{{"m", "--all", "--to", "mirror0", "--create"}},
		},

		// Snaplen (ofproto-dpif.at "mirroring, ... with snaplen").
		{
			Name: "snaplen_100", About: "snaplen=100: copies truncated to 100 bytes, originals whole",
			Topo: std(3, false, "mirror0"), Traffic: basic, WantCopies: 18, Verify: maxLen(100),
			Native:   []lab.NativeMirror{{Name: "m", SelectAll: true, Output: "mirror0", Snaplen: 100}},
			Flowspan: [][]string{{"m", "--all", "--snaplen", "100", "--to", "mirror0"}},
		},
		{
			Name: "snaplen_65535", About: "snaplen=65535 means whole packets",
			Topo: std(3, false, "mirror0"), Traffic: basic, WantCopies: 18,
			Native:   []lab.NativeMirror{{Name: "m", SelectAll: true, Output: "mirror0", Snaplen: 65535}},
			Flowspan: [][]string{{"m", "--all", "--snaplen", "65535", "--to", "mirror0"}},
		},
		{
			Name: "snaplen_0", About: "snaplen=0 means whole packets",
			Topo: std(3, false, "mirror0"), Traffic: basic, WantCopies: 18,
			Native:   []lab.NativeMirror{selAll},
			Flowspan: [][]string{{"m", "--all", "--snaplen", "0", "--to", "mirror0"}},
		},

		{
			Name: "snaplen_vlan_push", About: "snaplen=64 on copies that get a VLAN tag pushed (access ports to an output without VLAN config): where the tag goes relative to the cut",
			Topo: withInternal(vlanTopo("mirror0"), "mirror0", 0), Traffic: vlanTraffic, WantCopies: 18,
			Native:   []lab.NativeMirror{{Name: "m", SelectAll: true, Output: "mirror0", Snaplen: 64}},
			Flowspan: [][]string{{"m", "--all", "--snaplen", "64", "--to", "mirror0"}},
		},

		// VLANs (ofproto-dpif.at "mirroring, select_vlan", "output_port").
		{
			Name: "vlan_all_to_untagged_internal", About: "select_all, output an internal port without VLAN config: copies keep or get their VLAN tag",
			Topo: withInternal(vlanTopo("mirror0"), "mirror0", 0), Traffic: vlanTraffic, WantCopies: 18,
			Native:   []lab.NativeMirror{selAll},
			Flowspan: [][]string{{"m", "--all", "--to", "mirror0"}},
		},
		{
			Name: "vlan_select_10", About: "select_all + select_vlan=10 (flowspan --vlan 10): access, trunk and native-untagged members of VLAN 10",
			Topo: withInternal(vlanTopo("mirror0"), "mirror0", 0), Traffic: vlanTraffic, WantCopies: 9,
			Native:   []lab.NativeMirror{{Name: "m", SelectAll: true, SelectVLAN: []int{10}, Output: "mirror0"}},
			Flowspan: [][]string{{"m", "--vlan", "10", "--to", "mirror0"}},
		},
		{
			Name: "vlan_trunk_port_20", About: "select_src/dst=t (trunk 10,20) + select_vlan=20: tagged frames of one VLAN on a trunk",
			Topo: withInternal(vlanTopo("mirror0"), "mirror0", 0), Traffic: vlanTraffic, WantCopies: 4,
			Native:   []lab.NativeMirror{{Name: "m", SelectSrc: []string{"t"}, SelectDst: []string{"t"}, SelectVLAN: []int{20}, Output: "mirror0"}},
			Flowspan: [][]string{{"m", "--port", "t", "--vlan", "20", "--to", "mirror0"}},
		},
		{
			Name: "vlan_access_port", About: "select_src/dst=a (access 10) + select_vlan=10",
			Topo: withInternal(vlanTopo("mirror0"), "mirror0", 0), Traffic: vlanTraffic, WantCopies: 7,
			Native:   []lab.NativeMirror{{Name: "m", SelectSrc: []string{"a"}, SelectDst: []string{"a"}, SelectVLAN: []int{10}, Output: "mirror0"}},
			Flowspan: [][]string{{"m", "--port", "a", "--vlan", "10", "--to", "mirror0"}},
		},
		{
			Name: "vlan_access_port_other_vlan", About: "select_src/dst=a (access 10) + select_vlan=20: nothing",
			Topo: withInternal(vlanTopo("mirror0"), "mirror0", 0), Traffic: vlanTraffic, WantCopies: 0,
			Native:   []lab.NativeMirror{{Name: "m", SelectSrc: []string{"a"}, SelectDst: []string{"a"}, SelectVLAN: []int{20}, Output: "mirror0"}},
			Flowspan: [][]string{{"m", "--port", "a", "--vlan", "20", "--to", "mirror0"}},
		},
		{
			Name: "vlan_native_untagged_port", About: "select_src/dst=n (native-untagged 10, trunks 10,20): untagged and tagged frames",
			Topo: withInternal(vlanTopo("mirror0"), "mirror0", 0), Traffic: vlanTraffic, WantCopies: 6,
			Native:   []lab.NativeMirror{{Name: "m", SelectSrc: []string{"n"}, SelectDst: []string{"n"}, Output: "mirror0"}},
			Flowspan: [][]string{{"m", "--port", "n", "--to", "mirror0"}},
		},
		{
			Name: "vlan_output_access_port", About: "select_all, output an access port (tag 10): copies of every VLAN arrive untagged",
			Topo: withMon(vlanTopo(), lab.HostConfig{Tag: 10}), Traffic: vlanTraffic, WantCopies: 18,
			Native:   []lab.NativeMirror{{Name: "m", SelectAll: true, Output: "mon"}},
			Flowspan: [][]string{{"m", "--all", "--to", "mon"}},
		},
		{
			Name: "vlan_output_trunk_port", About: "select_all, output a trunk port (trunks 10): copies tagged with their VLAN",
			Topo: withMon(vlanTopo(), lab.HostConfig{Trunks: []int{10}}), Traffic: vlanTraffic, WantCopies: 18,
			Native:   []lab.NativeMirror{{Name: "m", SelectAll: true, Output: "mon"}},
			Flowspan: [][]string{{"m", "--all", "--to", "mon"}},
		},
		{
			Name: "vlan_output_rspan", About: "select_vlan=20, output_vlan=999 (RSPAN): copies flooded in VLAN 999, not to the access/trunk ports outside it",
			Topo: func() Topology {
				t := withMon(vlanTopo(), lab.HostConfig{Tag: 999})
				t = withInternal(t, "mirror0", 0)
				t.Outputs = []string{"mon", "mirror0"} // both carry VLAN 999
				return t
			}(),
			// 9 frames in VLAN 20, copied to each of mon and mirror0, and
			// 3 broadcasts flooded to mirror0 (it is in every VLAN).
			Traffic: vlanTraffic, WantCopies: 21,
			Native:   []lab.NativeMirror{{Name: "m", SelectAll: true, SelectVLAN: []int{20}, OutputVLAN: 999}},
			Flowspan: [][]string{{"m", "--vlan", "20", "--to-vlan", "999"}},
		},

		// Traffic mixes, all selected (select_all).
		{
			Name: "mix_arp", About: "ARP request (broadcast), the kernel's reply (unicast), gratuitous ARP",
			Topo: std(3, false, "mirror0"), WantCopies: 3,
			Traffic: func(e *Env) {
				e.Raw("h1", arpFrame(1, 0, e.MAC("h1"), e.IP4("h1"), nil, e.IP4("h2")))
				e.Raw("h3", arpFrame(1, 0, e.MAC("h3"), e.IP4("h3"), nil, e.IP4("h3")))
			},
			Native:   []lab.NativeMirror{selAll},
			Flowspan: [][]string{{"m", "--all", "--to", "mirror0"}},
		},
		{
			Name: "mix_broadcast_multicast", About: "IPv4 broadcast, IPv4 multicast (239.1.1.1), IPv6 all-nodes multicast: flooded, one copy each",
			Topo: std(3, false, "mirror0"), WantCopies: 5,
			Traffic: func(e *Env) {
				e.RawUDP("h1", 0, macBroadcast, netip.MustParseAddr("10.0.0.255"), 4000, 6000, 64, 2)
				e.RawUDP("h2", 0, macMcast4, ipMcast4, 4001, 6001, 64, 2)
				e.Raw("h3", udpFrame(macMcast6, e.MAC("h3"), 0, netip.MustParseAddr("fd00::3"), ipMcast6, 4002, 6002, 64))
			},
			Native:   []lab.NativeMirror{selAll},
			Flowspan: [][]string{{"m", "--all", "--to", "mirror0"}},
		},
		{
			Name: "mix_unknown_unicast", About: "unicast to a MAC the bridge does not know: flooded, one copy each",
			Topo: std(3, false, "mirror0"), WantCopies: 4,
			Traffic: func(e *Env) {
				e.RawUDP("h1", 0, macUnknown, netip.MustParseAddr("10.0.0.99"), 4000, 5000, 64, 3)
				e.RawUDP("h2", 0, macUnknown, netip.MustParseAddr("10.0.0.99"), 4001, 5001, 64, 1)
			},
			Native:   []lab.NativeMirror{selAll},
			Flowspan: [][]string{{"m", "--all", "--to", "mirror0"}},
		},
		{
			Name: "mix_icmp_echo", About: "ICMP and ICMPv6 echo with the kernels' replies (ICMPv6 after neighbour discovery)",
			Topo: std(3, true, "mirror0"), WantCopies: 8,
			Traffic: func(e *Env) {
				e.Flush6("h1", "h2", "h3")
				e.Raw("h1", echoFrame(e.MAC("h2"), e.MAC("h1"), 0, e.IP4("h1"), e.IP4("h2"), 1),
					echoFrame(e.MAC("h2"), e.MAC("h1"), 0, e.IP4("h1"), e.IP4("h2"), 2))
				// h1 resolves h3 (NS, NA) before it can reply: 2+2 and 1+2+1.
				e.Raw("h3", echoFrame(e.MAC("h1"), e.MAC("h3"), 0, e.IP6("h3"), e.IP6("h1"), 3))
			},
			Native:   []lab.NativeMirror{selAll},
			Flowspan: [][]string{{"m", "--all", "--to", "mirror0"}},
		},
		{
			Name: "mix_ipv6_nd", About: "IPv6 UDP through the kernel, starting with neighbour solicitation (multicast) and advertisement",
			Topo: std(3, true, "mirror0"), WantCopies: 5,
			Traffic: func(e *Env) {
				e.Flush6("h1", "h2", "h3")
				e.UDP6("h1", "h2", 4000, 5000, 100, 3)
			},
			Native:   []lab.NativeMirror{selAll},
			Flowspan: [][]string{{"m", "--all", "--to", "mirror0"}},
		},
		{
			Name: "mix_tcp", About: "TCP: SYN to a closed port (RST), SYN to a listener (SYN-ACK, RST), a stray data segment (RST)",
			Topo: std(3, false, "mirror0"), WantCopies: 7,
			Traffic: func(e *Env) {
				e.Listen("h2", 5201)
				h1, h2, h3 := e.MAC("h1"), e.MAC("h2"), e.MAC("h3")
				e.Raw("h1", tcpFrame(h2, h1, 0, e.IP4("h1"), e.IP4("h2"), 1111, 80, 100, tcpSYN, nil))
				e.Raw("h3", tcpFrame(h2, h3, 0, e.IP4("h3"), e.IP4("h2"), 2222, 5201, 200, tcpSYN, nil))
				e.Raw("h1", tcpFrame(h2, h1, 0, e.IP4("h1"), e.IP4("h2"), 3333, 80, 300, tcpPSH|tcpACK, []byte("GET / HTTP/1.0\r\n\r\n")))
			},
			Native:   []lab.NativeMirror{selAll},
			Flowspan: [][]string{{"m", "--all", "--to", "mirror0"}},
		},
		{
			Name: "mix_jumbo", About: "frames up to the MTU (9000) through the kernel",
			Topo: func() Topology {
				t := std(3, false)
				for i := range t.Hosts {
					t.Hosts[i].MTU = 9000
				}
				return withMon(t, lab.HostConfig{MTU: 9000})
			}(),
			WantCopies: 6,
			Traffic: func(e *Env) {
				e.UDP("h1", "h2", 4000, 5000, 9000-28, 2)
				e.UDP("h2", "h3", 4001, 5001, 1500-28, 2)
				e.UDP("h3", "h1", 4002, 5002, 4000, 2)
			},
			Native:   []lab.NativeMirror{{Name: "m", SelectAll: true, Output: "mon"}},
			Flowspan: [][]string{{"m", "--all", "--to", "mon"}},
		},

		{
			Name: "nonforwarded_all", About: "frames NORMAL does not forward (to the sender's own MAC, reserved 01:80:c2 multicast) and a VLAN-10 frame on ports without VLAN config: ingress is still mirrored",
			Topo: std(3, false, "mirror0"), Traffic: nonForwarded, WantCopies: 4,
			Native:   []lab.NativeMirror{selAll},
			Flowspan: [][]string{{"m", "--all", "--to", "mirror0"}},
		},
		{
			Name: "nonforwarded_egress", About: "as nonforwarded_all, select_dst=h3: only the VLAN-10 flood leaves through h3",
			Topo: std(3, false, "mirror0"), Traffic: nonForwarded, WantCopies: 1,
			Native:   []lab.NativeMirror{{Name: "m", SelectDst: []string{"h3"}, Output: "mirror0"}},
			Flowspan: [][]string{{"m", "--egress", "h3", "--to", "mirror0"}},
		},

		// Filters: the native side selects more, the test keeps what the
		// filter matches (OVS 3.1 has no Mirror filter column).
		{
			Name: "filter_tcp_dst_80", About: "--match tcp,tp_dst=80",
			Topo: std(3, false, "mirror0"), Traffic: filterTraffic, Post: tcpDst80, WantCopies: 3,
			Native:   []lab.NativeMirror{selAll},
			Flowspan: [][]string{{"m", "--all", "--match", "tcp,tp_dst=80", "--to", "mirror0"}},
		},
		{
			Name: "filter_ingress_tcp_dst_80", About: "--ingress h1 --match tcp,tp_dst=80 (filter narrows a port selection)",
			Topo: std(3, false, "mirror0"), Traffic: filterTraffic, Post: tcpDst80, WantCopies: 2,
			Native:   []lab.NativeMirror{{Name: "m", SelectSrc: []string{"h1"}, Output: "mirror0"}},
			Flowspan: [][]string{{"m", "--ingress", "h1", "--match", "tcp,tp_dst=80", "--to", "mirror0"}},
		},
		{
			Name: "filter_egress", About: "--egress h2 --match udp,tp_dst=5000 (filter narrows an egress selection)",
			Topo: std(3, false, "mirror0"), Traffic: basic, WantCopies: 5,
			Post:     func(p lab.Packet) bool { return isUDP4(p) && p.DstPort == 5000 },
			Native:   []lab.NativeMirror{{Name: "m", SelectDst: []string{"h2"}, Output: "mirror0"}},
			Flowspan: [][]string{{"m", "--egress", "h2", "--match", "udp,tp_dst=5000", "--to", "mirror0"}},
		},
		{
			Name: "filter_vlan", About: "--vlan 10 --match udp,tp_dst=5000 (filter narrows a VLAN selection)",
			Topo: withInternal(vlanTopo("mirror0"), "mirror0", 0), Traffic: vlanTraffic, WantCopies: 3,
			Post:     func(p lab.Packet) bool { return isUDP4(p) && p.DstPort == 5000 },
			Native:   []lab.NativeMirror{{Name: "m", SelectAll: true, SelectVLAN: []int{10}, Output: "mirror0"}},
			Flowspan: [][]string{{"m", "--vlan", "10", "--match", "udp,tp_dst=5000", "--to", "mirror0"}},
		},
		{
			Name: "filter_nw_src_masked", About: "--match ip,nw_src=10.0.0.0/24 (IPv4 only, not ARP)",
			Topo: std(3, false, "mirror0"), Traffic: filterTraffic, Post: nwSrc10, WantCopies: 12,
			Native:   []lab.NativeMirror{selAll},
			Flowspan: [][]string{{"m", "--match", "ip,nw_src=10.0.0.0/24", "--to", "mirror0"}},
		},
		{
			Name: "filter_tp_src_masked", About: "--match udp,tp_src=0x1000/0xf000",
			Topo: std(3, false, "mirror0"), Traffic: filterTraffic, Post: udpSrc1000, WantCopies: 3,
			Native:   []lab.NativeMirror{selAll},
			Flowspan: [][]string{{"m", "--all", "--match", "udp,tp_src=0x1000/0xf000", "--to", "mirror0"}},
		},
		{
			Name: "filter_ipv6_prefix", About: "--match ipv6,ipv6_src=fd01::/16",
			Topo: std(3, false, "mirror0"), Traffic: filterTraffic, Post: v6SrcFd01, WantCopies: 1,
			Native:   []lab.NativeMirror{selAll},
			Flowspan: [][]string{{"m", "--all", "--match", "ipv6,ipv6_src=fd01::/16", "--to", "mirror0"}},
		},
		{
			Name: "filter_ipv6_dst_prefix", About: "--match ipv6,ipv6_dst=fd00::/64 (both IPv6 packets; no IPv4)",
			Topo: std(3, false, "mirror0"), Traffic: filterTraffic, WantCopies: 2,
			Post: func(p lab.Packet) bool {
				return p.EtherType == lab.EtherTypeIPv6 && netip.MustParsePrefix("fd00::/64").Contains(p.IPDst)
			},
			Native:   []lab.NativeMirror{selAll},
			Flowspan: [][]string{{"m", "--all", "--match", "ipv6,ipv6_dst=fd00::/64", "--to", "mirror0"}},
		},
		{
			Name: "filter_arp", About: "--match arp",
			Topo: std(3, false, "mirror0"), Traffic: filterTraffic, Post: isARP, WantCopies: 2,
			Native:   []lab.NativeMirror{selAll},
			Flowspan: [][]string{{"m", "--all", "--match", "arp", "--to", "mirror0"}},
		},
		{
			Name: "filter_or", About: "three filters OR-ed: tcp,tp_dst=80 | udp,tp_src=0x1000/0xf000 | arp",
			Topo: std(3, false, "mirror0"), Traffic: filterTraffic, Post: anyOf(tcpDst80, udpSrc1000, isARP), WantCopies: 8,
			Native: []lab.NativeMirror{selAll},
			Flowspan: [][]string{{"m", "--all", "--match", "tcp,tp_dst=80", "--match", "udp,tp_src=0x1000/0xf000",
				"--match", "arp", "--to", "mirror0"}},
		},

		// Egress prediction: NORMAL's MAC table against flowspan's shadow.
		{
			Name: "egress_bystander", About: "select_dst=h3 while h1 and h2 talk: known unicast to others is not h3's egress",
			Topo: std(3, false, "mirror0"), Traffic: basic, WantCopies: 5,
			Native:   []lab.NativeMirror{{Name: "m", SelectDst: []string{"h3"}, Output: "mirror0"}},
			Flowspan: [][]string{{"m", "--egress", "h3", "--to", "mirror0"}},
		},
		{
			Name: "egress_cold_mac_table", About: "as egress_bystander, but no host has sent since the mirror was added: flowspan's shadow MAC table must come from the bridge's (fdb/show at take-over)",
			Topo: std(3, false, "mirror0"), Traffic: basic, WantCopies: 5, NoRelearn: true,
			Native:   []lab.NativeMirror{{Name: "m", SelectDst: []string{"h3"}, Output: "mirror0"}},
			Flowspan: [][]string{{"m", "--egress", "h3", "--to", "mirror0"}},
		},

		// Beyond native.
		{
			Name: "many_300_mirrors", About: "300 mirrors on one bridge (native stops at 32), each on its own UDP port; oracle: one native mirror post-filtered; per-mirror counters",
			Topo: std(2, false, "mirror0"), Traffic: manyTraffic, WantCopies: 600,
			Post:     udpDstIn(manyBasePort, manyBasePort+manyMirrors),
			Native:   []lab.NativeMirror{{Name: "m", SelectSrc: []string{"h1"}, Output: "mirror0"}},
			Flowspan: manyFlowspan(),
			Verify:   manyCounters,
		},

		// Lifecycle.
		{
			Name: "restart_vswitchd", About: "ovs-vswitchd restarted after the mirrors were added: the native rows are re-read from OVSDB, flowspan reinstalls its flows on reconnect; then the same traffic",
			Topo: std(3, false, "mirror0"), Traffic: basic, Mirrored: vswitchdRestartMirrored, WantCopies: 12,
			Native:   []lab.NativeMirror{{Name: "m", SelectSrc: []string{"h1"}, SelectDst: []string{"h1"}, Output: "mirror0"}},
			Flowspan: [][]string{{"m", "--port", "h1", "--to", "mirror0"}},
		},
		{
			Name: "restart_daemon_under_traffic", About: "flowspan serve stopped (SIGTERM) and started again on its state file during a 1500-datagram stream: flows stay, the new generation replaces them without a gap, every datagram copied once",
			Topo: std(3, false, "mirror0"), Traffic: lifeTraffic, Mirrored: restartMirrored, WantCopies: lifeN,
			Native:   []lab.NativeMirror{{Name: "m", SelectSrc: []string{"h1"}, SelectDst: []string{"h1"}, Output: "mirror0"}},
			Flowspan: [][]string{{"m", "--port", "h1", "--to", "mirror0"}},
		},
		{
			Name: "lifecycle_under_traffic", About: "mirrors added and deleted 5 times during a 1500-datagram stream: no forwarded datagram lost or duplicated",
			Topo: std(3, false, "mirror0"), Traffic: lifeTraffic, Mirrored: lifeMirrored, WantCopies: -1,
			OutputsTimed: true, Verify: lifeVerify,
			Native:   []lab.NativeMirror{{Name: "m", SelectSrc: []string{"h1"}, SelectDst: []string{"h1"}, Output: "mirror0"}},
			Flowspan: [][]string{{"m", "--port", "h1", "--to", "mirror0"}},
		},
	}
}
