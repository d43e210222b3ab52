package conformance

import (
	"encoding/binary"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/flowspan/flowspan/test/lab"
)

// These tests need neither root nor Open vSwitch: they pin down what the
// comparison ignores and what it does not.

var (
	tA  = mustMAC("02:00:00:00:00:01")
	tB  = mustMAC("02:00:00:00:00:02")
	ip1 = netip.MustParseAddr("10.0.0.1")
	ip2 = netip.MustParseAddr("10.0.0.2")
)

func pkt(b []byte) lab.Packet { return lab.Decode(b, len(b)) }

// l3 returns the offset of the IP header of an untagged frame.
const l3 = 14

func TestCanonicalIgnoresKernelChosenFields(t *testing.T) {
	base := tcpFrame(tB, tA, 0, ip1, ip2, 80, 40000, 1000, tcpSYN|tcpACK, nil)
	other := append([]byte(nil), base...)
	binary.BigEndian.PutUint16(other[l3+4:], 0x9999)       // IPv4 ID
	binary.BigEndian.PutUint16(other[l3+10:], 0x1111)      // header checksum
	binary.BigEndian.PutUint32(other[l3+20+4:], 123456789) // seq
	binary.BigEndian.PutUint32(other[l3+20+8:], 987654321) // ack
	binary.BigEndian.PutUint16(other[l3+20+14:], 512)      // window
	binary.BigEndian.PutUint16(other[l3+20+16:], 0x2222)   // checksum
	binary.BigEndian.PutUint16(other[l3+20+2:], 50000)     // another ephemeral port
	if canonical(pkt(base)) != canonical(pkt(other)) {
		t.Errorf("kernel-chosen TCP/IP fields must not matter:\n%s\n%s", canonical(pkt(base)), canonical(pkt(other)))
	}
}

func TestCanonicalKeepsWhatMirrorsMustPreserve(t *testing.T) {
	base := udpFrame(tB, tA, 10, ip1, ip2, 4000, 5000, 100)
	for name, mutate := range map[string]func([]byte) []byte{
		"vlan":        func(b []byte) []byte { b[15] = 20; return b },
		"dst mac":     func(b []byte) []byte { b[5] = 9; return b },
		"udp port":    func(b []byte) []byte { binary.BigEndian.PutUint16(b[18+20+2:], 5001); return b },
		"payload":     func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b },
		"ttl":         func(b []byte) []byte { b[18+8] = 63; return b },
		"truncated":   func(b []byte) []byte { return b[:100] },
		"untagged":    func(b []byte) []byte { return append(append([]byte(nil), b[:12]...), b[16:]...) },
		"udp csum":    func(b []byte) []byte { b[18+20+6] ^= 1; return b },
		"nw_src":      func(b []byte) []byte { b[18+12+3] = 7; return b },
		"ether type0": func(b []byte) []byte { b[16] = 0x86; return b },
	} {
		other := mutate(append([]byte(nil), base...))
		if canonical(pkt(base)) == canonical(pkt(other)) {
			t.Errorf("%s: a difference the comparison must see was ignored", name)
		}
	}
}

func TestDiffPacketsCountsDuplicates(t *testing.T) {
	a := pkt(udpFrame(tB, tA, 0, ip1, ip2, 4000, 5000, 10))
	b := pkt(udpFrame(tA, tB, 0, ip2, ip1, 4001, 5001, 10))
	if d := diffPackets("p", "x", []lab.Packet{a, b}, "y", []lab.Packet{b, a}); d != nil {
		t.Errorf("order must not matter, got %v", d)
	}
	d := diffPackets("p", "native", []lab.Packet{a, b}, "flowspan", []lab.Packet{a, a, b})
	if d == nil {
		t.Fatal("a duplicate went unnoticed")
	}
	if len(d.OnlyA) != 0 || len(d.OnlyB) != 1 || !strings.Contains(d.OnlyB[0], "4000>5000") {
		t.Errorf("want the extra copy listed on the flowspan side, got %+v", d)
	}
	if !strings.Contains(d.String(), "only flowspan") {
		t.Errorf("report does not say which side saw it:\n%s", d)
	}
}

func TestIgnoredBackground(t *testing.T) {
	mld := ether(macMcast6, tA, 0, lab.EtherTypeIPv6, ipv6(netip.MustParseAddr("fe80::1"), netip.MustParseAddr("ff02::16"), 58, []byte{143, 0, 0, 0, 0, 0, 0, 0}))
	for name, c := range map[string]struct {
		frame []byte
		want  bool
	}{
		"warm-up":     {warmFrame(tA, 0, 1), true},
		"mldv2":       {mld, true},
		"udp":         {udpFrame(tB, tA, 0, ip1, ip2, 1, 2, 3), false},
		"arp":         {arpFrame(1, 0, tA, ip1, nil, ip2), false},
		"icmpv6 echo": {echoFrame(tB, tA, 0, netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2"), 1), false},
	} {
		if got := ignored(pkt(c.frame)); got != c.want {
			t.Errorf("%s: ignored = %v, want %v", name, got, c.want)
		}
	}
}

func TestFramesDecode(t *testing.T) {
	p := pkt(udpFrame(tB, tA, 20, ip1, ip2, 4000, 5000, 100))
	if p.EtherType != lab.EtherTypeIPv4 || len(p.VLANs) != 1 || p.VLANs[0] != 20 || p.SrcPort != 4000 || p.DstPort != 5000 || p.Len != 14+4+20+8+100 {
		t.Errorf("udp frame decodes as %v", p)
	}
	// The IPv4 header checksum we compute verifies.
	f := udpFrame(tB, tA, 0, ip1, ip2, 4000, 5000, 1)
	if checksum(f[l3:l3+20]) != 0 {
		t.Errorf("IPv4 header checksum does not verify")
	}
	// So does the UDP checksum (pseudo-header included).
	udp := f[l3+20 : l3+20+9]
	if checksum(pseudo(ip1, ip2, 17, len(udp)), udp) != 0 {
		t.Errorf("UDP checksum does not verify")
	}
	a := pkt(arpFrame(1, 0, tA, ip1, nil, ip2))
	if a.ARPOp != 1 || a.IPSrc != ip1 || a.IPDst != ip2 || a.Dst.String() != "ff:ff:ff:ff:ff:ff" {
		t.Errorf("arp request decodes as %v", a)
	}
}

// TestDocListsEveryScenario keeps docs/conformance.md in step with the
// table in scenarios_test.go.
func TestDocListsEveryScenario(t *testing.T) {
	doc, err := os.ReadFile("../../docs/conformance.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, sc := range scenarios() {
		if seen[sc.Name] {
			t.Errorf("scenario %s defined twice", sc.Name)
		}
		seen[sc.Name] = true
		if !strings.Contains(string(doc), "| "+sc.Name+" |") {
			t.Errorf("docs/conformance.md has no table row for scenario %s", sc.Name)
		}
		if sc.Traffic == nil || sc.About == "" || len(sc.Native) == 0 || len(sc.Flowspan) == 0 || len(sc.Topo.Outputs) == 0 {
			t.Errorf("scenario %s is incomplete", sc.Name)
		}
	}
}
