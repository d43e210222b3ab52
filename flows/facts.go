package flows

import (
	"fmt"
	"time"
)

// PortFacts is what the compiler needs to know about one port of the bridge
// (from OVSDB's Port and Interface rows).
type PortFacts struct {
	Name string
	// OFPort is the OpenFlow port number; 0 means not assigned (yet), and
	// the port is treated as missing.
	OFPort uint32
	// Tag is the access VLAN or the native VLAN (0 = none).
	Tag uint16
	// Trunks lists the trunked VLANs (empty = all).
	Trunks []uint16
	// VLANMode is OVSDB's vlan_mode: "", "access", "trunk",
	// "native-tagged", "native-untagged" or "dot1q-tunnel". Empty means
	// access when Tag is set, else trunk, as in OVS.
	VLANMode string
	// Type is the interface type ("", "internal", "gre", ...); informative.
	Type string
	// Isolated says the port's VLAN settings were put there by flowspan to
	// keep NORMAL from flooding to it (an output port). The compiler then
	// ignores them and tags copies as on a port without VLAN settings.
	Isolated bool
}

// BridgeFacts is what the compiler needs to know about the bridge.
type BridgeFacts struct {
	// Ports by name. The bridge's local port is a port like any other
	// (OFPort PortLocal).
	Ports map[string]PortFacts
	// MACAgingTime is other_config:mac-aging-time; 0 means OVS's default
	// of 300 s. Learned flows age out like NORMAL's MAC entries.
	MACAgingTime time.Duration
	// ForwardBPDU is other_config:forward-bpdu. When false (the default)
	// NORMAL drops frames to reserved multicast addresses
	// (01:80:c2:00:00:0x), so they have no egress.
	ForwardBPDU bool
	// Unseeded says the shadow MAC table has not been seeded from the
	// bridge's MAC table yet: a destination missing from it may be one
	// NORMAL knows on another port, so the prediction for it is "no
	// egress" instead of a flood. Egress copies of unknown unicast are then
	// missed, but none is made by a wrong prediction. Compile without it
	// once the seeds are in.
	Unseeded bool
}

type vlanMode uint8

const (
	modeAccess vlanMode = iota
	modeTrunk
	modeNativeTagged
	modeNativeUntagged
	modeDot1QTunnel
)

// vlanSet is a bitmap of VLANs 0..4095.
type vlanSet [64]uint64

func (s *vlanSet) has(v uint16) bool { return s[v>>6]&(1<<(v&63)) != 0 }
func (s *vlanSet) set(v uint16)      { s[v>>6] |= 1 << (v & 63) }
func (s *vlanSet) clear(v uint16)    { s[v>>6] &^= 1 << (v & 63) }

// hasAllTagged reports whether VLANs 1..4095 are all in the set.
func (s *vlanSet) hasAllTagged() bool {
	if s[0]|1 != ^uint64(0) {
		return false
	}
	for _, w := range s[1:] {
		if w != ^uint64(0) {
			return false
		}
	}
	return true
}

func allVLANs() *vlanSet {
	var s vlanSet
	for i := range s {
		s[i] = ^uint64(0)
	}
	return &s
}

// portVLAN is a port's VLAN configuration resolved the way vswitchd's
// bridge.c and ofproto-dpif bundle_set resolve it.
type portVLAN struct {
	mode   vlanMode
	tag    uint16
	trunks *vlanSet // nil: all VLANs
}

func resolvePortVLAN(p PortFacts) (portVLAN, error) {
	var pv portVLAN
	switch p.VLANMode {
	case "":
		if p.Tag != 0 {
			pv.mode = modeAccess
		} else {
			pv.mode = modeTrunk
		}
	case "access":
		pv.mode = modeAccess
	case "trunk":
		pv.mode = modeTrunk
	case "native-tagged":
		pv.mode = modeNativeTagged
	case "native-untagged":
		pv.mode = modeNativeUntagged
	case "dot1q-tunnel":
		pv.mode = modeDot1QTunnel
	default:
		return pv, fmt.Errorf("port %q: unknown vlan_mode %q", p.Name, p.VLANMode)
	}
	if p.Tag > 4095 {
		return pv, fmt.Errorf("port %q: tag %d out of range", p.Name, p.Tag)
	}
	if pv.mode != modeTrunk {
		pv.tag = p.Tag
	}
	if len(p.Trunks) > 0 && pv.mode != modeAccess {
		var s vlanSet
		for _, v := range p.Trunks {
			if v > 4095 {
				return pv, fmt.Errorf("port %q: trunk VLAN %d out of range", p.Name, v)
			}
			s.set(v)
		}
		pv.trunks = &s
	}
	if (pv.mode == modeNativeTagged || pv.mode == modeNativeUntagged) && pv.tag != 0 &&
		(pv.trunks == nil || !pv.trunks.has(pv.tag) || pv.trunks.has(0)) {
		// ofproto forces trunking the native VLAN and prohibits VLAN 0.
		var s *vlanSet
		if pv.trunks != nil {
			c := *pv.trunks
			s = &c
		} else {
			s = allVLANs()
		}
		s.set(pv.tag)
		s.clear(0)
		pv.trunks = s
	}
	return pv, nil
}

// includes reports whether NORMAL floods packets of VLAN v to the port.
func (pv *portVLAN) includes(v uint16) bool {
	switch pv.mode {
	case modeAccess:
		return v == pv.tag
	case modeTrunk, modeNativeTagged, modeNativeUntagged:
		return pv.trunks == nil || pv.trunks.has(v)
	}
	return false
}

// includesAll reports whether the port is in every VLAN.
func (pv *portVLAN) includesAll() bool {
	return (pv.mode == modeTrunk || pv.mode == modeNativeTagged || pv.mode == modeNativeUntagged) && pv.trunks == nil
}

// vlanPrefixes calls fn for a minimal list of (value, mask) pairs over the
// 12-bit VLAN space covering exactly the VLANs v in [lo, hi] with in(v).
func vlanPrefixes(lo, hi uint16, in func(v uint16) bool, fn func(v, mask uint16)) {
	v := int(lo)
	for v <= int(hi) {
		if !in(uint16(v)) {
			v++
			continue
		}
		end := v
		for end+1 <= int(hi) && in(uint16(end+1)) {
			end++
		}
		for a := v; a <= end; {
			k := 0
			for k < 12 && a&(1<<(k+1)-1) == 0 && a+(1<<(k+1))-1 <= end {
				k++
			}
			fn(uint16(a), uint16(0xfff&^(1<<k-1)))
			a += 1 << k
		}
		v = end + 1
	}
}
