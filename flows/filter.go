package flows

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// FilterError reports a bad filter: the filter text, the 1-based column of
// the offending token, the token and what is wrong. It wraps ErrInvalid.
type FilterError struct {
	Filter string
	Column int
	Token  string
	Err    error
}

func (e *FilterError) Error() string {
	if e.Token == "" {
		return fmt.Sprintf("filter %q: %v", e.Filter, e.Err)
	}
	return fmt.Sprintf("filter %q: column %d: %q: %v", e.Filter, e.Column, e.Token, e.Err)
}

func (e *FilterError) Unwrap() error { return e.Err }

// Is reports ErrInvalid.
func (e *FilterError) Is(target error) bool { return target == ErrInvalid }

type token struct {
	col         int // 1-based
	text        string
	name, value string
	hasValue    bool
}

// prerequisite kinds, checked after all fields are read (OVS accepts fields
// in any order).
type prereq int

const (
	preNone prereq = iota
	preIP          // IPv4 or IPv6
	preIPv4
	preIPv6
	preARP
	preL4 // tcp, udp or sctp
	preTCP
	preUDP
	preSCTP
	preICMPAny // icmp or icmp6
	preICMPv6
	preND    // icmp6 with icmp_type 135 or 136
	preNDSol // icmp6 with icmp_type 135
	preNDAdv // icmp6 with icmp_type 136
)

var prereqText = map[prereq]string{
	preIP:      `requires ip or ipv6 (e.g. "ip,%s")`,
	preIPv4:    `requires ip (e.g. "ip,%s")`,
	preIPv6:    `requires ipv6 (e.g. "ipv6,%s")`,
	preARP:     `requires arp (e.g. "arp,%s")`,
	preL4:      `requires tcp, udp or sctp (e.g. "tcp,%s")`,
	preTCP:     `requires tcp or tcp6 (e.g. "tcp,%s")`,
	preUDP:     `requires udp or udp6 (e.g. "udp,%s")`,
	preSCTP:    `requires sctp or sctp6 (e.g. "sctp,%s")`,
	preICMPAny: `requires icmp or icmp6 (e.g. "icmp,%s")`,
	preICMPv6:  `requires icmp6 (e.g. "icmp6,%s")`,
	preND:      `requires icmp6 with icmp_type=135 or 136 (e.g. "icmp6,icmp_type=135,%s")`,
	preNDSol:   `requires icmp6 with icmp_type=135 (e.g. "icmp6,icmp_type=135,%s")`,
	preNDAdv:   `requires icmp6 with icmp_type=136 (e.g. "icmp6,icmp_type=136,%s")`,
}

func (p prereq) ok(m *Match) bool {
	isIP4 := m.dlType.m != 0 && m.dlType.v == EthTypeIPv4
	isIP6 := m.dlType.m != 0 && m.dlType.v == EthTypeIPv6
	proto := func(p uint8) bool { return (isIP4 || isIP6) && m.nwProto.m != 0 && m.nwProto.v == p }
	icmp6 := isIP6 && proto(ProtoICMPv6)
	icmpType := func(t uint16) bool { return icmp6 && m.tpSrc.m == 0xffff && m.tpSrc.v == t }
	switch p {
	case preIP:
		return isIP4 || isIP6
	case preIPv4:
		return isIP4
	case preIPv6:
		return isIP6
	case preARP:
		return m.dlType.m != 0 && (m.dlType.v == EthTypeARP || m.dlType.v == EthTypeRARP)
	case preL4:
		return proto(ProtoTCP) || proto(ProtoUDP) || proto(ProtoSCTP)
	case preTCP:
		return proto(ProtoTCP)
	case preUDP:
		return proto(ProtoUDP)
	case preSCTP:
		return proto(ProtoSCTP)
	case preICMPAny:
		return (isIP4 && proto(ProtoICMP)) || icmp6
	case preICMPv6:
		return icmp6
	case preND:
		return icmpType(135) || icmpType(136)
	case preNDSol:
		return icmpType(135)
	case preNDAdv:
		return icmpType(136)
	}
	return true
}

type fieldDef struct {
	pre prereq
	// set parses value into m. pass 1 fields (protocol context) run first.
	set   func(m *Match, value string) error
	pass1 bool
}

var errConflict = errors.New("conflicts with an earlier field")

type shorthand struct {
	dlType uint16
	proto  uint8 // 0 = none
}

var shorthands = map[string]shorthand{
	"ip":    {EthTypeIPv4, 0},
	"ipv4":  {EthTypeIPv4, 0},
	"ipv6":  {EthTypeIPv6, 0},
	"icmp":  {EthTypeIPv4, ProtoICMP},
	"icmp6": {EthTypeIPv6, ProtoICMPv6},
	"tcp":   {EthTypeIPv4, ProtoTCP},
	"tcp6":  {EthTypeIPv6, ProtoTCP},
	"udp":   {EthTypeIPv4, ProtoUDP},
	"udp6":  {EthTypeIPv6, ProtoUDP},
	"sctp":  {EthTypeIPv4, ProtoSCTP},
	"sctp6": {EthTypeIPv6, ProtoSCTP},
	"arp":   {EthTypeARP, 0},
	"rarp":  {EthTypeRARP, 0},
}

// mergeU16 and friends add a masked value to a field, failing if it
// disagrees with bits set earlier.
func mergeU8(f *u8m, v, mask uint8) error {
	v &= mask
	if (f.v^v)&f.m&mask != 0 {
		return errConflict
	}
	f.v |= v
	f.m |= mask
	return nil
}

func mergeU16(f *u16m, v, mask uint16) error {
	v &= mask
	if (f.v^v)&f.m&mask != 0 {
		return errConflict
	}
	f.v |= v
	f.m |= mask
	return nil
}

func mergeU32(f *u32m, v, mask uint32) error {
	v &= mask
	if (f.v^v)&f.m&mask != 0 {
		return errConflict
	}
	f.v |= v
	f.m |= mask
	return nil
}

func mergeMAC(f *macm, v, mask [6]byte) error {
	for i := range v {
		v[i] &= mask[i]
		if (f.v[i]^v[i])&f.m[i]&mask[i] != 0 {
			return errConflict
		}
	}
	for i := range v {
		f.v[i] |= v[i]
		f.m[i] |= mask[i]
	}
	return nil
}

func mergeV6(f *v6m, v, mask [16]byte) error {
	for i := range v {
		v[i] &= mask[i]
		if (f.v[i]^v[i])&f.m[i]&mask[i] != 0 {
			return errConflict
		}
	}
	for i := range v {
		f.v[i] |= v[i]
		f.m[i] |= mask[i]
	}
	return nil
}

// parseUint parses like OVS: "0x" hex, a leading "0" octal, else decimal.
func parseUint(s string, bits int) (uint64, error) {
	if s == "" {
		return 0, errors.New("missing number")
	}
	base := 10
	digits := s
	switch {
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		base, digits = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, digits = 8, s[1:]
	}
	if digits == "" || strings.ContainsAny(digits, "_+-") {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	v, err := strconv.ParseUint(digits, base, bits)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, fmt.Errorf("%s does not fit in %d bits", s, bits)
		}
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return v, nil
}

func parseUintMasked(s string, bits int) (v, m uint64, err error) {
	max := uint64(1)<<bits - 1
	val, mask, hasMask := strings.Cut(s, "/")
	if v, err = parseUint(val, bits); err != nil {
		return 0, 0, err
	}
	m = max
	if hasMask {
		if m, err = parseUint(mask, bits); err != nil {
			return 0, 0, err
		}
	}
	return v, m, nil
}

func parseMAC(s string) ([6]byte, error) {
	var a [6]byte
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return a, fmt.Errorf("%q is not an Ethernet address (want xx:xx:xx:xx:xx:xx)", s)
	}
	for i, p := range parts {
		if len(p) == 0 || len(p) > 2 {
			return a, fmt.Errorf("%q is not an Ethernet address (want xx:xx:xx:xx:xx:xx)", s)
		}
		v, err := strconv.ParseUint(p, 16, 8)
		if err != nil {
			return a, fmt.Errorf("%q is not an Ethernet address (want xx:xx:xx:xx:xx:xx)", s)
		}
		a[i] = byte(v)
	}
	return a, nil
}

func parseMACMasked(s string) (v, m [6]byte, err error) {
	val, mask, hasMask := strings.Cut(s, "/")
	if v, err = parseMAC(val); err != nil {
		return v, m, err
	}
	m = allOnesMAC
	if hasMask {
		if m, err = parseMAC(mask); err != nil {
			return v, m, err
		}
	}
	return v, m, nil
}

func parseIPv4Masked(s string) (v, m uint32, err error) {
	val, mask, hasMask := strings.Cut(s, "/")
	a, err := netip.ParseAddr(val)
	if err != nil || !a.Is4() {
		return 0, 0, fmt.Errorf("%q is not an IPv4 address", val)
	}
	b := a.As4()
	v = binary.BigEndian.Uint32(b[:])
	m = ^uint32(0)
	if hasMask {
		if n, err := strconv.Atoi(mask); err == nil && !strings.HasPrefix(mask, "+") {
			if n < 0 || n > 32 {
				return 0, 0, fmt.Errorf("prefix length %d out of range 0..32", n)
			}
			m = ^uint32(0) << (32 - n)
			if n == 0 {
				m = 0
			}
		} else {
			ma, err := netip.ParseAddr(mask)
			if err != nil || !ma.Is4() {
				return 0, 0, fmt.Errorf("%q is neither a prefix length nor an IPv4 mask", mask)
			}
			mb := ma.As4()
			m = binary.BigEndian.Uint32(mb[:])
		}
	}
	return v, m, nil
}

func parseIPv6Masked(s string) (v, m [16]byte, err error) {
	val, mask, hasMask := strings.Cut(s, "/")
	a, err := netip.ParseAddr(val)
	if err != nil || !a.Is6() || a.Zone() != "" {
		return v, m, fmt.Errorf("%q is not an IPv6 address", val)
	}
	v = a.As16()
	for i := range m {
		m[i] = 0xff
	}
	if hasMask {
		if n, err := strconv.Atoi(mask); err == nil && !strings.HasPrefix(mask, "+") {
			if n < 0 || n > 128 {
				return v, m, fmt.Errorf("prefix length %d out of range 0..128", n)
			}
			p := netip.PrefixFrom(netip.IPv6Unspecified(), n)
			m = prefixMask16(p.Bits())
		} else {
			ma, err := netip.ParseAddr(mask)
			if err != nil || !ma.Is6() {
				return v, m, fmt.Errorf("%q is neither a prefix length nor an IPv6 mask", mask)
			}
			m = ma.As16()
		}
	}
	return v, m, nil
}

func prefixMask16(n int) [16]byte {
	var m [16]byte
	for i := 0; i < 16 && n > 0; i++ {
		if n >= 8 {
			m[i] = 0xff
			n -= 8
		} else {
			m[i] = byte(0xff << (8 - n))
			n = 0
		}
	}
	return m
}

func parseTCPFlags(s string) (v, m uint16, err error) {
	if s == "" {
		return 0, 0, errors.New("missing value")
	}
	if s[0] == '+' || s[0] == '-' {
		for s != "" {
			sign := s[0]
			if sign != '+' && sign != '-' {
				return 0, 0, fmt.Errorf("expected '+' or '-' before %q", s)
			}
			s = s[1:]
			end := strings.IndexAny(s, "+-")
			if end < 0 {
				end = len(s)
			}
			name := s[:end]
			s = s[end:]
			bit := flagBit(name)
			if bit == 0 {
				return 0, 0, fmt.Errorf("unknown TCP flag %q (fin syn rst psh ack urg ece cwr ns)", name)
			}
			if m&bit != 0 {
				return 0, 0, fmt.Errorf("TCP flag %q given twice", name)
			}
			m |= bit
			if sign == '+' {
				v |= bit
			}
		}
		return v, m, nil
	}
	if s[0] >= '0' && s[0] <= '9' {
		vv, mm, err := parseUintMasked(s, 16)
		if err != nil {
			return 0, 0, err
		}
		if mm == 0xffff {
			mm = 0xfff
		}
		if vv&mm > 0x1ff || mm != 0xfff && mm > 0x1ff {
			return 0, 0, fmt.Errorf("%s: TCP flags are 9 bits (value at most 0x1ff, mask at most 0xfff)", s)
		}
		return uint16(vv), uint16(mm) & 0xfff, nil
	}
	for _, name := range strings.Split(s, "|") {
		bit := flagBit(name)
		if bit == 0 {
			return 0, 0, fmt.Errorf("unknown TCP flag %q (fin syn rst psh ack urg ece cwr ns)", name)
		}
		v |= bit
	}
	return v, 0xfff, nil
}

func flagBit(name string) uint16 {
	for i, n := range tcpFlagNames[:9] {
		if n == name {
			return 1 << i
		}
	}
	return 0
}

func uintField(bits int, set func(m *Match, v, mask uint64) error) func(*Match, string) error {
	return func(m *Match, s string) error {
		v, mask, err := parseUintMasked(s, bits)
		if err != nil {
			return err
		}
		return set(m, v, mask)
	}
}

func exactUintField(bits int, set func(m *Match, v uint64) error) func(*Match, string) error {
	return func(m *Match, s string) error {
		if strings.Contains(s, "/") {
			return errors.New("this field takes no mask")
		}
		v, err := parseUint(s, bits)
		if err != nil {
			return err
		}
		return set(m, v)
	}
}

func macField(sel func(m *Match) *macm) func(*Match, string) error {
	return func(m *Match, s string) error {
		v, mask, err := parseMACMasked(s)
		if err != nil {
			return err
		}
		return mergeMAC(sel(m), v, mask)
	}
}

func ipv4Field(sel func(m *Match) *u32m) func(*Match, string) error {
	return func(m *Match, s string) error {
		v, mask, err := parseIPv4Masked(s)
		if err != nil {
			return err
		}
		return mergeU32(sel(m), v, mask)
	}
}

func ipv6Field(sel func(m *Match) *v6m) func(*Match, string) error {
	return func(m *Match, s string) error {
		v, mask, err := parseIPv6Masked(s)
		if err != nil {
			return err
		}
		return mergeV6(sel(m), v, mask)
	}
}

func tpField(sel func(m *Match) *u16m) func(*Match, string) error {
	return uintField(16, func(m *Match, v, mask uint64) error { return mergeU16(sel(m), uint16(v), uint16(mask)) })
}

func tpSrc(m *Match) *u16m { return &m.tpSrc }
func tpDst(m *Match) *u16m { return &m.tpDst }

// fieldDefs is read-only after package initialization.
var fieldDefs = buildFieldDefs()

func buildFieldDefs() map[string]fieldDef {
	ethType := fieldDef{pass1: true, set: exactUintField(16, func(m *Match, v uint64) error {
		return mergeU16(&m.dlType, uint16(v), 0xffff)
	})}
	nwProto := fieldDef{pass1: true, pre: preNone, set: exactUintField(8, func(m *Match, v uint64) error {
		return mergeU8(&m.nwProto, uint8(v), 0xff)
	})}
	dlSrc := fieldDef{set: macField(func(m *Match) *macm { return &m.dlSrc })}
	dlDst := fieldDef{set: macField(func(m *Match) *macm { return &m.dlDst })}
	nwSrc := fieldDef{pre: preIPv4, set: ipv4Field(func(m *Match) *u32m { return &m.nwSrc })}
	nwDst := fieldDef{pre: preIPv4, set: ipv4Field(func(m *Match) *u32m { return &m.nwDst })}
	tos := fieldDef{pre: preIP, set: exactUintField(8, func(m *Match, v uint64) error {
		if v&3 != 0 {
			return fmt.Errorf("nw_tos %d has ECN bits set; give a multiple of 4 (or use ip_dscp)", v)
		}
		return mergeU8(&m.nwTOS, uint8(v), 0xfc)
	})}
	dscp := fieldDef{pre: preIP, set: exactUintField(8, func(m *Match, v uint64) error {
		if v > 63 {
			return fmt.Errorf("DSCP %d out of range 0..63", v)
		}
		return mergeU8(&m.nwTOS, uint8(v<<2), 0xfc)
	})}
	ecn := fieldDef{pre: preIP, set: exactUintField(8, func(m *Match, v uint64) error {
		if v > 3 {
			return fmt.Errorf("ECN %d out of range 0..3", v)
		}
		return mergeU8(&m.nwTOS, uint8(v), 0x03)
	})}
	frag := fieldDef{pre: preIP, set: func(m *Match, s string) error {
		var v, mask uint8
		switch s {
		case "no":
			v, mask = 0, fragAny
		case "yes":
			v, mask = fragAny, fragAny
		case "first":
			v, mask = fragAny, fragAny|fragLater
		case "later":
			v, mask = fragAny|fragLater, fragAny|fragLater
		case "not_later":
			v, mask = 0, fragLater
		default:
			return fmt.Errorf("%q is not one of no, yes, first, later, not_later", s)
		}
		return mergeU8(&m.nwFrag, v, mask)
	}}
	icmpType := fieldDef{pre: preICMPAny, set: exactUintField(8, func(m *Match, v uint64) error {
		return mergeU16(&m.tpSrc, uint16(v), 0xffff)
	})}
	icmpCode := fieldDef{pre: preICMPAny, set: exactUintField(8, func(m *Match, v uint64) error {
		return mergeU16(&m.tpDst, uint16(v), 0xffff)
	})}
	icmp6Type, icmp6Code := icmpType, icmpCode
	icmp6Type.pre, icmp6Code.pre = preICMPv6, preICMPv6
	vlanTCI := fieldDef{set: uintField(16, func(m *Match, v, mask uint64) error {
		return mergeU16(&m.vlanTCI, uint16(v), uint16(mask))
	})}
	dlVLAN := fieldDef{set: exactUintField(16, func(m *Match, v uint64) error {
		if v == 0xffff {
			return mergeU16(&m.vlanTCI, 0, VLANCFI|VLANVIDMask)
		}
		if v > 4095 {
			return fmt.Errorf("VLAN %d out of range 0..4095 (or 0xffff for no VLAN)", v)
		}
		return mergeU16(&m.vlanTCI, VLANCFI|uint16(v), VLANCFI|VLANVIDMask)
	})}
	vlanVID := fieldDef{set: uintField(16, func(m *Match, v, mask uint64) error {
		if v > 0x1fff || mask > 0x1fff && mask != 0xffff {
			return fmt.Errorf("vlan_vid has 13 bits (0x1000 = tag present, low 12 bits = VID)")
		}
		return mergeU16(&m.vlanTCI, uint16(v), uint16(mask)&0x1fff)
	})}
	vlanPCP := fieldDef{set: exactUintField(8, func(m *Match, v uint64) error {
		if v > 7 {
			return fmt.Errorf("priority %d out of range 0..7", v)
		}
		return mergeU16(&m.vlanTCI, VLANCFI|uint16(v)<<13, VLANCFI|VLANPCPMask)
	})}
	arpOp := fieldDef{pre: preARP, set: exactUintField(16, func(m *Match, v uint64) error {
		if v > 255 {
			return fmt.Errorf("ARP opcode %d out of range 0..255", v)
		}
		return mergeU8(&m.nwProto, uint8(v), 0xff)
	})}
	arpSpa := fieldDef{pre: preARP, set: ipv4Field(func(m *Match) *u32m { return &m.nwSrc })}
	arpTpa := fieldDef{pre: preARP, set: ipv4Field(func(m *Match) *u32m { return &m.nwDst })}
	arpSha := fieldDef{pre: preARP, set: macField(func(m *Match) *macm { return &m.arpSha })}
	arpTha := fieldDef{pre: preARP, set: macField(func(m *Match) *macm { return &m.arpTha })}
	ipv6Src := fieldDef{pre: preIPv6, set: ipv6Field(func(m *Match) *v6m { return &m.ipv6Src })}
	ipv6Dst := fieldDef{pre: preIPv6, set: ipv6Field(func(m *Match) *v6m { return &m.ipv6Dst })}
	label := fieldDef{pre: preIPv6, set: uintField(32, func(m *Match, v, mask uint64) error {
		if v > 0xfffff || mask > 0xfffff && mask != 0xffffffff {
			return fmt.Errorf("ipv6_label has 20 bits (at most 0xfffff)")
		}
		return mergeU32(&m.ipv6Label, uint32(v), uint32(mask)&0xfffff)
	})}
	ndTarget := fieldDef{pre: preND, set: ipv6Field(func(m *Match) *v6m { return &m.ndTarget })}
	ndSll := fieldDef{pre: preNDSol, set: macField(func(m *Match) *macm { return &m.arpSha })}
	ndTll := fieldDef{pre: preNDAdv, set: macField(func(m *Match) *macm { return &m.arpTha })}
	tcpFlags := fieldDef{pre: preTCP, set: func(m *Match, s string) error {
		v, mask, err := parseTCPFlags(s)
		if err != nil {
			return err
		}
		return mergeU16(&m.tcpFlags, v, mask)
	}}
	ttl := fieldDef{pre: preIP, set: exactUintField(8, func(m *Match, v uint64) error {
		return mergeU8(&m.nwTTL, uint8(v), 0xff)
	})}
	l4 := func(pre prereq, sel func(*Match) *u16m) fieldDef { return fieldDef{pre: pre, set: tpField(sel)} }
	return map[string]fieldDef{
		"dl_type": ethType, "eth_type": ethType,
		"nw_proto": nwProto, "ip_proto": nwProto,
		"dl_src": dlSrc, "eth_src": dlSrc,
		"dl_dst": dlDst, "eth_dst": dlDst,
		"dl_vlan": dlVLAN, "vlan_vid": vlanVID, "vlan_tci": vlanTCI,
		"dl_vlan_pcp": vlanPCP, "vlan_pcp": vlanPCP,
		"nw_src": nwSrc, "ip_src": nwSrc, "nw_dst": nwDst, "ip_dst": nwDst,
		"ipv6_src": ipv6Src, "ipv6_dst": ipv6Dst, "ipv6_label": label,
		"nw_tos": tos, "ip_dscp": dscp, "nw_ecn": ecn, "ip_ecn": ecn,
		"nw_ttl": ttl, "ip_frag": frag, "nw_frag": frag,
		"tp_src": l4(preL4, tpSrc), "tp_dst": l4(preL4, tpDst),
		"tcp_src": l4(preTCP, tpSrc), "tcp_dst": l4(preTCP, tpDst),
		"udp_src": l4(preUDP, tpSrc), "udp_dst": l4(preUDP, tpDst),
		"sctp_src": l4(preSCTP, tpSrc), "sctp_dst": l4(preSCTP, tpDst),
		"tcp_flags": tcpFlags,
		"icmp_type": icmpType, "icmp_code": icmpCode,
		"icmpv4_type": {pre: preICMPAny, set: icmpType.set}, "icmpv4_code": {pre: preICMPAny, set: icmpCode.set},
		"icmpv6_type": icmp6Type, "icmpv6_code": icmp6Code,
		"arp_op": arpOp, "arp_spa": arpSpa, "arp_tpa": arpTpa, "arp_sha": arpSha, "arp_tha": arpTha,
		"nd_target": ndTarget, "nd_sll": ndSll, "nd_tll": ndTll,
	}
}

// fields that select by port or are flowspan's own; rejected with a hint.
var rejected = map[string]string{
	"in_port":  "selecting by port is the mirror's selection (ingress/egress/ports), not a filter",
	"vlan":     "use dl_vlan=N in a filter, or the mirror's VLAN selection",
	"actions":  "a filter is a match only; it has no actions",
	"priority": "a filter has no priority; filters of a mirror are OR-ed",
	"table":    "a filter has no table",
	"cookie":   "a filter has no cookie",
}

func tokenize(s string, toks []token) []token {
	i := 0
	for i < len(s) {
		for i < len(s) && isSep(s[i]) {
			i++
		}
		if i >= len(s) {
			break
		}
		start := i
		for i < len(s) && !isSep(s[i]) {
			i++
		}
		t := token{col: start + 1, text: s[start:i]}
		t.name, t.value, t.hasValue = strings.Cut(t.text, "=")
		toks = append(toks, t)
	}
	return toks
}

func isSep(c byte) bool { return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// ParseFilter parses a filter in ovs-ofctl / ovs-fields(7) match syntax
// (see the package documentation for the accepted fields) into a Match.
// Fields may come in any order; prerequisites are checked as OVS does, but
// strictly: a field whose prerequisite is missing is an error, not silently
// dropped. Errors are *FilterError naming the token and its column.
func ParseFilter(s string) (Match, error) {
	var m Match
	fail := func(t token, err error) (Match, error) {
		return Match{}, &FilterError{Filter: s, Column: t.col, Token: t.text, Err: err}
	}
	var tokBuf [8]token
	toks := tokenize(s, tokBuf[:0])
	if len(toks) == 0 {
		return Match{}, &FilterError{Filter: s, Err: errors.New("empty filter (use the mirror's selection to mirror everything)")}
	}
	type deferred struct {
		t   token
		def fieldDef
	}
	var laterBuf [8]deferred
	later := laterBuf[:0]
	for _, t := range toks {
		if !t.hasValue {
			sh, ok := shorthands[t.name]
			if !ok {
				if _, isField := fieldDefs[t.name]; isField {
					return fail(t, fmt.Errorf("field %s needs a value (%s=VALUE)", t.name, t.name))
				}
				return fail(t, errors.New("unknown protocol (ip ipv6 icmp icmp6 tcp tcp6 udp udp6 sctp sctp6 arp rarp)"))
			}
			if err := mergeU16(&m.dlType, sh.dlType, 0xffff); err != nil {
				return fail(t, err)
			}
			if sh.proto != 0 {
				if err := mergeU8(&m.nwProto, sh.proto, 0xff); err != nil {
					return fail(t, err)
				}
			}
			continue
		}
		if hint, ok := rejected[t.name]; ok {
			return fail(t, fmt.Errorf("%s is not allowed in a filter: %s", t.name, hint))
		}
		def, ok := fieldDefs[t.name]
		if !ok {
			return fail(t, errors.New("unknown field (see ovs-fields(7); supported: dl_src dl_dst dl_type dl_vlan vlan_vid vlan_pcp vlan_tci nw_src nw_dst ipv6_src ipv6_dst nw_proto nw_tos ip_dscp ip_ecn nw_ttl ip_frag tp_src tp_dst tcp_flags icmp_type icmp_code arp_op arp_spa arp_tpa arp_sha arp_tha ipv6_label nd_target ...)"))
		}
		if t.value == "" {
			return fail(t, fmt.Errorf("field %s has an empty value", t.name))
		}
		if def.pass1 {
			if err := def.set(&m, t.value); err != nil {
				return fail(t, err)
			}
			continue
		}
		later = append(later, deferred{t, def})
	}
	// nw_proto needs an IP or ARP context.
	if m.nwProto.m != 0 && !preIP.ok(&m) && !preARP.ok(&m) {
		for _, t := range toks {
			if t.name == "nw_proto" || t.name == "ip_proto" {
				return fail(t, fmt.Errorf(`%s requires ip, ipv6 or arp (e.g. "ip,%s")`, t.name, t.text))
			}
		}
	}
	// nw_src/nw_dst mean arp_spa/arp_tpa on ARP, as in OVS.
	for _, d := range later {
		def := d.def
		if (d.t.name == "nw_src" || d.t.name == "nw_dst" || d.t.name == "ip_src" || d.t.name == "ip_dst") && preARP.ok(&m) {
			def.pre = preARP
		}
		if def.pre != preNone && def.pre < preND && !def.pre.ok(&m) {
			return fail(d.t, fmt.Errorf("%s "+prereqText[def.pre], d.t.name, d.t.text))
		}
		if err := def.set(&m, d.t.value); err != nil {
			return fail(d.t, err)
		}
	}
	// Fields that refine the ICMPv6 type (nd_*) are checked once the type
	// is known, wherever icmp_type appeared.
	for _, d := range later {
		if d.def.pre == preND || d.def.pre == preNDSol || d.def.pre == preNDAdv {
			if !d.def.pre.ok(&m) {
				return fail(d.t, fmt.Errorf("%s "+prereqText[d.def.pre], d.t.name, d.t.text))
			}
		}
	}
	return m, nil
}
