package conformance

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// Raw frames the scenarios send with Host.SendRaw. Every byte is fixed by
// the scenario (IPv4 ID, TCP sequence numbers, payloads), so both labs put
// identical frames on the wire; only what the hosts' kernels answer needs
// canonicalising (see canonical in compare_test.go).

// Fixed addresses used by raw traffic.
var (
	macBroadcast = mustMAC("ff:ff:ff:ff:ff:ff")
	// macUnknown is on no port: NORMAL floods frames to it.
	macUnknown = mustMAC("02:00:00:00:99:99")
	// macWarm is the destination of warm-up frames (etherWarm), also
	// unknown to the bridge.
	macWarm = mustMAC("02:ff:ff:ff:ff:fe")
	// macMcast4 is the Ethernet group of 239.1.1.1.
	macMcast4 = mustMAC("01:00:5e:01:01:01")
	// macMcast6 is the Ethernet group of ff02::1 (all nodes).
	macMcast6 = mustMAC("33:33:00:00:00:01")
	ipMcast4  = netip.MustParseAddr("239.1.1.1")
	ipMcast6  = netip.MustParseAddr("ff02::1")
)

// etherWarm is the EtherType of warm-up frames (IEEE local experimental).
// Captures drop them: they teach the bridge (and flowspan's shadow MAC
// table) where hosts are and are not part of any scenario's traffic.
const etherWarm = 0x88b5

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err) // only called on the literals above
	}
	return m
}

// ether builds an Ethernet frame; vlan > 0 adds an 802.1Q tag. Frames are
// padded to the 60-byte minimum as a NIC would.
func ether(dst, src net.HardwareAddr, vlan uint16, etype uint16, payload []byte) []byte {
	b := make([]byte, 0, 18+len(payload))
	b = append(b, dst...)
	b = append(b, src...)
	if vlan > 0 {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, vlan&0x0fff)
	}
	b = binary.BigEndian.AppendUint16(b, etype)
	b = append(b, payload...)
	for len(b) < 60 {
		b = append(b, 0)
	}
	return b
}

func checksum(data ...[]byte) uint16 {
	var sum uint32
	for _, d := range data {
		for i := 0; i+1 < len(d); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(d[i:]))
		}
		if len(d)%2 == 1 {
			sum += uint32(d[len(d)-1]) << 8
		}
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// ipv4 builds an IPv4 packet (ID 0x4242, DF, TTL 64) around an L4 payload.
func ipv4(src, dst netip.Addr, proto uint8, l4 []byte) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
	binary.BigEndian.PutUint16(h[4:], 0x4242)
	binary.BigEndian.PutUint16(h[6:], 0x4000)
	h[8] = 64
	h[9] = proto
	s, d := src.As4(), dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	binary.BigEndian.PutUint16(h[10:], checksum(h))
	return append(h, l4...)
}

// ipv6 builds an IPv6 packet (hop limit 64; 255 for ICMPv6, as ND needs).
func ipv6(src, dst netip.Addr, next uint8, l4 []byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(l4)))
	h[6] = next
	h[7] = 64
	if next == 58 {
		h[7] = 255
	}
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, l4...)
}

// pseudo is the L4 checksum pseudo-header.
func pseudo(src, dst netip.Addr, proto uint8, length int) []byte {
	var b []byte
	b = append(b, src.AsSlice()...)
	b = append(b, dst.AsSlice()...)
	if src.Is4() {
		b = append(b, 0, proto)
		b = binary.BigEndian.AppendUint16(b, uint16(length))
		return b
	}
	b = binary.BigEndian.AppendUint32(b, uint32(length))
	return append(b, 0, 0, 0, proto)
}

// ipPacket wraps an L4 segment in IPv4 or IPv6 (by the addresses), filling
// in the L4 checksum at csumOff.
func ipPacket(src, dst netip.Addr, proto uint8, l4 []byte, csumOff int) (etype uint16, pkt []byte) {
	binary.BigEndian.PutUint16(l4[csumOff:], 0)
	if src.Is4() && proto == 1 {
		binary.BigEndian.PutUint16(l4[csumOff:], checksum(l4))
	} else {
		binary.BigEndian.PutUint16(l4[csumOff:], checksum(pseudo(src, dst, proto, len(l4)), l4))
	}
	if src.Is4() {
		return 0x0800, ipv4(src, dst, proto, l4)
	}
	return 0x86dd, ipv6(src, dst, proto, l4)
}

// udpFrame is a UDP datagram with payloadLen bytes of 0x5a.
func udpFrame(dstMAC, srcMAC net.HardwareAddr, vlan uint16, src, dst netip.Addr, sport, dport uint16, payloadLen int) []byte {
	l4 := make([]byte, 8+payloadLen)
	binary.BigEndian.PutUint16(l4[0:], sport)
	binary.BigEndian.PutUint16(l4[2:], dport)
	binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	for i := 8; i < len(l4); i++ {
		l4[i] = 0x5a
	}
	et, pkt := ipPacket(src, dst, 17, l4, 6)
	return ether(dstMAC, srcMAC, vlan, et, pkt)
}

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
)

// tcpFrame is one TCP segment without options.
func tcpFrame(dstMAC, srcMAC net.HardwareAddr, vlan uint16, src, dst netip.Addr, sport, dport uint16, seq uint32, flags uint8, payload []byte) []byte {
	l4 := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(l4[0:], sport)
	binary.BigEndian.PutUint16(l4[2:], dport)
	binary.BigEndian.PutUint32(l4[4:], seq)
	l4[12] = 5 << 4
	l4[13] = flags
	binary.BigEndian.PutUint16(l4[14:], 29200)
	l4 = append(l4, payload...)
	et, pkt := ipPacket(src, dst, 6, l4, 16)
	return ether(dstMAC, srcMAC, vlan, et, pkt)
}

// echoFrame is an ICMP (IPv4) or ICMPv6 echo request with a fixed
// identifier and a 32-byte payload.
func echoFrame(dstMAC, srcMAC net.HardwareAddr, vlan uint16, src, dst netip.Addr, seq uint16) []byte {
	l4 := make([]byte, 8+32)
	l4[0] = 8
	proto := uint8(1)
	if src.Is6() {
		l4[0], proto = 128, 58
	}
	binary.BigEndian.PutUint16(l4[4:], 0x4653) // "FS"
	binary.BigEndian.PutUint16(l4[6:], seq)
	for i := 8; i < len(l4); i++ {
		l4[i] = byte(i)
	}
	et, pkt := ipPacket(src, dst, proto, l4, 2)
	return ether(dstMAC, srcMAC, vlan, et, pkt)
}

// arpFrame is an ARP request (op 1, broadcast) or reply (op 2, to tha).
func arpFrame(op uint16, vlan uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	b := []byte{0, 1, 8, 0, 6, 4}
	b = binary.BigEndian.AppendUint16(b, op)
	b = append(b, sha...)
	b = append(b, spa.AsSlice()...)
	dst := tha
	if op == 1 {
		tha = make(net.HardwareAddr, 6)
		dst = macBroadcast
	}
	b = append(b, tha...)
	b = append(b, tpa.AsSlice()...)
	return ether(dst, sha, vlan, 0x0806, b)
}

// warmFrame teaches the bridge src's location; see etherWarm. round
// varies the destination, so that each round's frames miss the datapath's
// flow cache and go through a full translation (OVS runs NORMAL's MAC
// learning and the learn action at once only then; for packets of cached
// flows it does so later, when the revalidator pushes their statistics).
func warmFrame(src net.HardwareAddr, vlan uint16, round byte) []byte {
	dst := append(net.HardwareAddr(nil), macWarm...)
	dst[4] = round
	return ether(dst, src, vlan, etherWarm, []byte("flowspan conformance warm-up"))
}

// rawEther is a frame of an unusual EtherType with an n-byte payload.
func rawEther(dst, src net.HardwareAddr, vlan uint16, etype uint16, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i * 7)
	}
	return ether(dst, src, vlan, etype, p)
}
