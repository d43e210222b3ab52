package flows

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Ethernet types and IP protocols the match language knows by name.
const (
	EthTypeIPv4 = 0x0800
	EthTypeARP  = 0x0806
	EthTypeRARP = 0x8035
	EthTypeIPv6 = 0x86dd

	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
	ProtoSCTP   = 132
)

// VLAN TCI bits (802.1Q tag control information as OVS matches it: the CFI
// bit, 0x1000, means "a tag is present").
const (
	VLANCFI     = 0x1000
	VLANVIDMask = 0x0fff
	VLANPCPMask = 0xe000
)

// IP fragment bits of nw_frag (ip_frag).
const (
	fragAny   = 1
	fragLater = 2
)

type u8m struct{ v, m uint8 }
type u16m struct{ v, m uint16 }
type u32m struct{ v, m uint32 }
type macm struct{ v, m [6]byte }
type v6m struct{ v, m [16]byte }

// Match is an OpenFlow match over the fields flowspan uses: registers,
// in_port, the VLAN TCI, and the Ethernet/IP/ARP/transport fields of the
// filter language. The zero value matches every packet. Match is a
// comparable value: two matches are equal iff they match the same packets
// with the same field masks (values are stored masked, as OVS stores them).
type Match struct {
	regs      [16]u32m
	inPort    u32m
	vlanTCI   u16m
	dlSrc     macm
	dlDst     macm
	dlType    u16m
	nwSrc     u32m // IPv4 source, or ARP SPA when dlType is ARP/RARP
	nwDst     u32m // IPv4 destination, or ARP TPA
	ipv6Src   v6m
	ipv6Dst   v6m
	ipv6Label u32m
	nwProto   u8m  // IP protocol, or the ARP opcode for ARP/RARP
	arpSha    macm // ARP SHA, or ND source link-layer address
	arpTha    macm // ARP THA, or ND target link-layer address
	nwTOS     u8m  // DSCP bits (mask 0xfc) and ECN bits (mask 0x03)
	nwTTL     u8m
	nwFrag    u8m
	tpSrc     u16m // transport source port, or ICMP type
	tpDst     u16m // transport destination port, or ICMP code
	ndTarget  v6m
	tcpFlags  u16m
}

// fieldSet is a bit set of the match field groups a flow uses; the pipeline
// declaration lists which groups each table may match.
type fieldSet uint32

const (
	fReg     fieldSet = 1 << iota // any register
	fInPort                       // in_port
	fVLAN                         // vlan_tci
	fEthAddr                      // dl_src, dl_dst
	fPacket                       // everything else (filter fields)
)

func (m *Match) fields() fieldSet {
	var s fieldSet
	for _, r := range m.regs {
		if r.m != 0 {
			s |= fReg
			break
		}
	}
	if m.inPort.m != 0 {
		s |= fInPort
	}
	if m.vlanTCI.m != 0 {
		s |= fVLAN
	}
	if m.dlSrc.m != ([6]byte{}) || m.dlDst.m != ([6]byte{}) {
		s |= fEthAddr
	}
	n := *m
	n.regs, n.inPort, n.vlanTCI, n.dlSrc, n.dlDst = [16]u32m{}, u32m{}, u16m{}, macm{}, macm{}
	if n != (Match{}) {
		s |= fPacket
	}
	return s
}

// Reg returns the value and mask matched on register n (0..15; other n
// match nothing and give 0, 0).
func (m Match) Reg(n int) (value, mask uint32) {
	if n < 0 || n >= len(m.regs) {
		return 0, 0
	}
	return m.regs[n].v, m.regs[n].m
}

// WithReg returns m also matching register n (0..15) against value under
// mask (bits outside mask are ignored). Bits already matched on the register
// are replaced where mask has them set. For n outside 0..15, m is returned
// unchanged.
func (m Match) WithReg(n int, value, mask uint32) Match {
	if n < 0 || n >= len(m.regs) {
		return m
	}
	r := m.regs[n]
	r.v = r.v&^mask | value&mask
	r.m |= mask
	m.regs[n] = r
	return m
}

// WithInPort returns m also matching in_port.
func (m Match) WithInPort(port uint32) Match {
	m.inPort = u32m{port, ^uint32(0)}
	return m
}

// WithVLANTCI returns m also matching the VLAN TCI under mask.
func (m Match) WithVLANTCI(tci, mask uint16) Match {
	m.vlanTCI = u16m{tci & mask, mask}
	return m
}

// WithEthSrc returns m also matching the Ethernet source under mask.
func (m Match) WithEthSrc(mac, mask [6]byte) Match {
	m.dlSrc = maskMAC(mac, mask)
	return m
}

// WithEthDst returns m also matching the Ethernet destination under mask.
func (m Match) WithEthDst(mac, mask [6]byte) Match {
	m.dlDst = maskMAC(mac, mask)
	return m
}

// InPort returns the matched in_port and whether one is matched.
func (m Match) InPort() (uint32, bool) { return m.inPort.v, m.inPort.m != 0 }

func maskMAC(v, mask [6]byte) macm {
	for i := range v {
		v[i] &= mask[i]
	}
	return macm{v, mask}
}

var allOnesMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// MarshalText renders the match as ovs-ofctl prints it (OVS's canonical
// field order and spelling), without priority. The empty match renders as
// the empty string.
func (m Match) MarshalText() ([]byte, error) {
	var b strings.Builder
	m.format(&b)
	return []byte(b.String()), nil
}

// String is MarshalText as a string.
func (m Match) String() string {
	var b strings.Builder
	m.format(&b)
	return b.String()
}

func (m *Match) format(b *strings.Builder) {
	start := b.Len()
	put := func(s string) {
		b.WriteString(s)
		b.WriteByte(',')
	}
	skipType, skipProto := false, false
	dlType := m.dlType.v
	if m.dlType.m != 0 {
		skipType = true
		switch dlType {
		case EthTypeIPv4, EthTypeIPv6:
			name := "ip"
			if dlType == EthTypeIPv6 {
				name = "ipv6"
			}
			if m.nwProto.m != 0 {
				skipProto = true
				switch m.nwProto.v {
				case ProtoICMP:
					if dlType == EthTypeIPv4 {
						name = "icmp"
					} else {
						skipProto = false
					}
				case ProtoICMPv6:
					if dlType == EthTypeIPv6 {
						name = "icmp6"
					} else {
						skipProto = false
					}
				case ProtoTCP:
					name = "tcp"
				case ProtoUDP:
					name = "udp"
				case ProtoSCTP:
					name = "sctp"
				default:
					skipProto = false
				}
				if skipProto && dlType == EthTypeIPv6 && name != "icmp6" {
					name += "6"
				}
			}
			put(name)
		case EthTypeARP:
			put("arp")
		case EthTypeRARP:
			put("rarp")
		default:
			skipType = false
		}
	}
	for i, r := range m.regs {
		if r.m != 0 {
			put(fmtU32Masked("reg"+strconv.Itoa(i), r.v, r.m))
		}
	}
	if m.inPort.m != 0 {
		put("in_port=" + formatPort(m.inPort.v))
	}
	if t := m.vlanTCI; t.m != 0 {
		vid, pcp, cfi := t.m&VLANVIDMask, t.m&VLANPCPMask, t.m&VLANCFI
		switch {
		case cfi != 0 && t.v&VLANCFI != 0 && (vid == 0 || vid == VLANVIDMask) &&
			(pcp == 0 || pcp == VLANPCPMask) && (vid != 0 || pcp != 0):
			if vid != 0 {
				put("dl_vlan=" + strconv.Itoa(int(t.v&VLANVIDMask)))
			}
			if pcp != 0 {
				put("dl_vlan_pcp=" + strconv.Itoa(int(t.v>>13)))
			}
		case t.m == 0xffff:
			put(fmt.Sprintf("vlan_tci=0x%04x", t.v))
		default:
			put(fmt.Sprintf("vlan_tci=0x%04x/0x%04x", t.v, t.m))
		}
	}
	if m.dlSrc.m != ([6]byte{}) {
		put("dl_src=" + fmtMACMasked(m.dlSrc))
	}
	if m.dlDst.m != ([6]byte{}) {
		put("dl_dst=" + fmtMACMasked(m.dlDst))
	}
	if !skipType && m.dlType.m != 0 {
		put(fmt.Sprintf("dl_type=0x%04x", dlType))
	}
	isARP := m.dlType.m != 0 && (dlType == EthTypeARP || dlType == EthTypeRARP)
	switch {
	case m.dlType.m != 0 && dlType == EthTypeIPv6:
		if m.ipv6Src.m != ([16]byte{}) {
			put("ipv6_src=" + fmtV6Masked(m.ipv6Src))
		}
		if m.ipv6Dst.m != ([16]byte{}) {
			put("ipv6_dst=" + fmtV6Masked(m.ipv6Dst))
		}
		if l := m.ipv6Label; l.m != 0 {
			if l.m == 0xfffff {
				put(fmt.Sprintf("ipv6_label=0x%05x", l.v))
			} else {
				put(fmt.Sprintf("ipv6_label=0x%05x/0x%05x", l.v, l.m))
			}
		}
	case isARP:
		if m.nwSrc.m != 0 {
			put("arp_spa=" + fmtIPv4Masked(m.nwSrc))
		}
		if m.nwDst.m != 0 {
			put("arp_tpa=" + fmtIPv4Masked(m.nwDst))
		}
	default:
		if m.nwSrc.m != 0 {
			put("nw_src=" + fmtIPv4Masked(m.nwSrc))
		}
		if m.nwDst.m != 0 {
			put("nw_dst=" + fmtIPv4Masked(m.nwDst))
		}
	}
	if !skipProto && m.nwProto.m != 0 {
		if isARP {
			put("arp_op=" + strconv.Itoa(int(m.nwProto.v)))
		} else {
			put("nw_proto=" + strconv.Itoa(int(m.nwProto.v)))
		}
	}
	if isARP {
		if m.arpSha.m != ([6]byte{}) {
			put("arp_sha=" + fmtMACMasked(m.arpSha))
		}
		if m.arpTha.m != ([6]byte{}) {
			put("arp_tha=" + fmtMACMasked(m.arpTha))
		}
	}
	if m.nwTOS.m&0xfc != 0 {
		put("nw_tos=" + strconv.Itoa(int(m.nwTOS.v&0xfc)))
	}
	if m.nwTOS.m&0x03 != 0 {
		put("nw_ecn=" + strconv.Itoa(int(m.nwTOS.v&0x03)))
	}
	if m.nwTTL.m != 0 {
		put("nw_ttl=" + strconv.Itoa(int(m.nwTTL.v)))
	}
	switch m.nwFrag.m & (fragAny | fragLater) {
	case fragAny | fragLater:
		switch m.nwFrag.v & (fragAny | fragLater) {
		case fragAny | fragLater:
			put("nw_frag=later")
		case fragAny:
			put("nw_frag=first")
		case 0:
			put("nw_frag=no")
		default:
			put("nw_frag=<error>")
		}
	case fragAny:
		if m.nwFrag.v&fragAny != 0 {
			put("nw_frag=yes")
		} else {
			put("nw_frag=no")
		}
	case fragLater:
		if m.nwFrag.v&fragLater != 0 {
			put("nw_frag=later")
		} else {
			put("nw_frag=not_later")
		}
	}
	switch {
	case m.dlType.m != 0 && dlType == EthTypeIPv4 && m.nwProto.v == ProtoICMP:
		putBE16(put, "icmp_type", m.tpSrc)
		putBE16(put, "icmp_code", m.tpDst)
	case m.dlType.m != 0 && dlType == EthTypeIPv6 && m.nwProto.v == ProtoICMPv6:
		putBE16(put, "icmp_type", m.tpSrc)
		putBE16(put, "icmp_code", m.tpDst)
		if m.ndTarget.m != ([16]byte{}) {
			put("nd_target=" + fmtV6Masked(m.ndTarget))
		}
		if m.arpSha.m != ([6]byte{}) {
			put("nd_sll=" + fmtMACMasked(m.arpSha))
		}
		if m.arpTha.m != ([6]byte{}) {
			put("nd_tll=" + fmtMACMasked(m.arpTha))
		}
	default:
		putBE16(put, "tp_src", m.tpSrc)
		putBE16(put, "tp_dst", m.tpDst)
	}
	if m.dlType.m != 0 && (dlType == EthTypeIPv4 || dlType == EthTypeIPv6) &&
		m.nwProto.v == ProtoTCP && m.tcpFlags.m != 0 {
		put("tcp_flags=" + fmtTCPFlags(m.tcpFlags))
	}
	if b.Len() > start {
		s := b.String()
		if s[len(s)-1] == ',' {
			// strings.Builder cannot shrink; rebuild without the comma.
			b.Reset()
			b.WriteString(s[:len(s)-1])
		}
	}
}

func putBE16(put func(string), name string, f u16m) {
	if f.m == 0 {
		return
	}
	if f.m == 0xffff {
		put(name + "=" + strconv.Itoa(int(f.v)))
		return
	}
	put(fmt.Sprintf("%s=0x%x/0x%x", name, f.v, f.m))
}

// fmtU32Masked prints like OVS's format_uint32_masked (C "%#x": 0 is "0").
func fmtU32Masked(name string, v, m uint32) string {
	s := name + "=" + hexC(uint64(v))
	if m != ^uint32(0) {
		s += "/" + hexC(uint64(m))
	}
	return s
}

// hexC formats like C's "%#x": "0" for zero, "0x..." otherwise.
func hexC(v uint64) string {
	if v == 0 {
		return "0"
	}
	return "0x" + strconv.FormatUint(v, 16)
}

// formatPort prints an OpenFlow port number as OVS does (reserved ports by
// name). Port numbers are OVS's 16-bit ofp_port values.
func formatPort(p uint32) string {
	switch p {
	case PortLocal:
		return "LOCAL"
	case 0xfff8:
		return "IN_PORT"
	case 0xfffa:
		return "NORMAL"
	case 0xfffb:
		return "FLOOD"
	case 0xfffc:
		return "ALL"
	case 0xfffd:
		return "CONTROLLER"
	case 0xffff:
		return "ANY"
	}
	return strconv.FormatUint(uint64(p), 10)
}

// PortLocal is OVS's number for the bridge's local (internal) port.
const PortLocal = 0xfffe

func fmtMAC(a [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3], a[4], a[5])
}

func fmtMACMasked(f macm) string {
	if f.m == allOnesMAC {
		return fmtMAC(f.v)
	}
	return fmtMAC(f.v) + "/" + fmtMAC(f.m)
}

// prefixLen32 returns the CIDR length of mask, or -1 if not contiguous.
func prefixLen32(m uint32) int {
	n := 0
	for m&0x80000000 != 0 {
		n++
		m <<= 1
	}
	if m != 0 {
		return -1
	}
	return n
}

func ipv4String(v uint32) string {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a).String()
}

func fmtIPv4Masked(f u32m) string {
	if f.m == ^uint32(0) {
		return ipv4String(f.v)
	}
	if n := prefixLen32(f.m); n >= 0 {
		return ipv4String(f.v) + "/" + strconv.Itoa(n)
	}
	return ipv4String(f.v) + "/" + ipv4String(f.m)
}

func prefixLen128(m [16]byte) int {
	n := 0
	i := 0
	for ; i < 16 && m[i] == 0xff; i++ {
		n += 8
	}
	if i < 16 {
		b := m[i]
		for b&0x80 != 0 {
			n++
			b <<= 1
		}
		if b != 0 {
			return -1
		}
		for i++; i < 16; i++ {
			if m[i] != 0 {
				return -1
			}
		}
	}
	return n
}

func fmtV6Masked(f v6m) string {
	a := netip.AddrFrom16(f.v).String()
	n := prefixLen128(f.m)
	switch {
	case n == 128:
		return a
	case n >= 0:
		return a + "/" + strconv.Itoa(n)
	}
	return a + "/" + netip.AddrFrom16(f.m).String()
}

var tcpFlagNames = []string{"fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns", "[200]", "[400]", "[800]"}

func fmtTCPFlags(f u16m) string {
	if f.m == 0xfff {
		if f.v == 0 {
			return "0"
		}
		var parts []string
		for i, n := range tcpFlagNames {
			if f.v&(1<<i) != 0 {
				parts = append(parts, n)
			}
		}
		return strings.Join(parts, "|")
	}
	var b strings.Builder
	for i, n := range tcpFlagNames {
		if f.m&(1<<i) == 0 {
			continue
		}
		if f.v&(1<<i) != 0 {
			b.WriteByte('+')
		} else {
			b.WriteByte('-')
		}
		b.WriteString(n)
	}
	return b.String()
}
