package flows

// Cookie layout (64 bits), so that every flow says who made it and why:
//
//	63..56  CookieApp (0xf5): a flowspan flow
//	55..48  generation (1..255; 0 only on learned MAC flows, which survive
//	        generation swaps)
//	47..40  Kind
//	39..24  mirror ID (0 for pipeline flows shared by all mirrors)
//	23..0   index: the selection index for selection flows (see
//	        MirrorStatus.Selections), the filter index for filter flows,
//	        the input port for learned MAC flows
//
// Counters (see Aggregate and the package doc): a mirror's copies are the
// sum over its KindEmit flows; each copy is counted once more by one
// KindCount flow, the one of the selection that selected the packet, so
// per-selection copies sum to the mirror's. Select flows (KindSel*) count
// what each selection picked before VLANs, filters and de-duplication.
type Cookie uint64

// Kind says what a flow is for.
type Kind uint8

// Flow kinds.
const (
	KindPipeline   Kind = 1  // shared skeleton: classify, learn, predict, dispatch, continue
	KindDropOutput Kind = 2  // drop packets received on an output port
	KindLearned    Kind = 3  // MAC flows written by the learn action
	KindSelIngress Kind = 10 // mirror selects packets received on a port
	KindSelEgress  Kind = 11 // mirror selects packets NORMAL sends to a port (unicast)
	KindSelFlood   Kind = 12 // mirror selects flooded packets (egress ports in the VLAN)
	KindSelAll     Kind = 13 // mirror selects every packet (all, or VLANs / filters only)
	KindSelExclude Kind = 14 // not selected: NORMAL will not send it to the egress port
	KindVLAN       Kind = 20 // mirror's VLAN list passed
	KindFilter     Kind = 21 // mirror's filter [index] matched
	KindEmit       Kind = 30 // copy sent to the output
	KindEmitDup    Kind = 31 // selected but the output already has its copy
	KindEmitNone   Kind = 32 // selected but no copy can be sent (RSPAN: packet already in the output VLAN, reserved destination, no port in the VLAN)
	KindCount      Kind = 40 // copy sent, counted for the selection [index] that selected the packet
	CookieApp           = 0xf5
)

// Cookie masks.
const (
	CookieMaskApp        uint64 = 0xff << 56
	CookieMaskGeneration uint64 = 0xff << 48
	CookieMaskKind       uint64 = 0xff << 40
	CookieMaskMirror     uint64 = 0xffff << 24
	CookieMaskIndex      uint64 = 0xffffff
)

// MakeCookie builds a cookie. index is truncated to 24 bits.
func MakeCookie(gen uint8, kind Kind, mirror uint16, index uint32) Cookie {
	return Cookie(uint64(CookieApp)<<56 | uint64(gen)<<48 | uint64(kind)<<40 |
		uint64(mirror)<<24 | uint64(index)&CookieMaskIndex)
}

// IsFlowspan reports whether the cookie carries flowspan's marker.
func (c Cookie) IsFlowspan() bool { return uint64(c)&CookieMaskApp == uint64(CookieApp)<<56 }

// Generation returns the generation field.
func (c Cookie) Generation() uint8 { return uint8(uint64(c) >> 48) }

// Kind returns the kind field.
func (c Cookie) Kind() Kind { return Kind(uint64(c) >> 40) }

// Mirror returns the mirror ID field.
func (c Cookie) Mirror() uint16 { return uint16(uint64(c) >> 24) }

// Index returns the index field.
func (c Cookie) Index() uint32 { return uint32(uint64(c) & CookieMaskIndex) }

// CookieMatch is a cookie value and mask, as used by OpenFlow flow-stats
// requests and delete flow-mods (flows whose cookie&Mask == Value&Mask).
type CookieMatch struct {
	Value, Mask uint64
}

// GenerationCookies matches every compiled flow of generation gen (not the
// learned MAC flows).
func GenerationCookies(gen uint8) CookieMatch {
	return CookieMatch{uint64(MakeCookie(gen, 0, 0, 0)), CookieMaskApp | CookieMaskGeneration}
}

// MirrorCookies matches every flow of mirror id in any generation.
func MirrorCookies(id uint16) CookieMatch {
	return CookieMatch{uint64(MakeCookie(0, 0, id, 0)), CookieMaskApp | CookieMaskMirror}
}

// AllCookies matches every flowspan flow, learned ones included.
func AllCookies() CookieMatch {
	return CookieMatch{uint64(CookieApp) << 56, CookieMaskApp}
}

// Matches reports whether cookie c is matched.
func (m CookieMatch) Matches(c uint64) bool { return c&m.Mask == m.Value&m.Mask }

// NextGeneration returns the generation after gen, skipping 0.
func NextGeneration(gen uint8) uint8 {
	if gen == 255 {
		return 1
	}
	return gen + 1
}

// FlowCount is one flow's counters, as read from flow statistics.
type FlowCount struct {
	Cookie  uint64
	Packets uint64
	Bytes   uint64
}

// Counter is a packet and byte count.
type Counter struct {
	Packets uint64
	Bytes   uint64
}

func (c *Counter) add(f FlowCount) {
	c.Packets += f.Packets
	c.Bytes += f.Bytes
}

// MirrorCounters are one mirror's counters derived from flow statistics.
//
// Every packet is evaluated once per mirror (per output, in mirror ID
// order): one select flow picks it (the highest-priority selection:
// ingress, then egress, then flood, then all), the VLAN list and the
// filters (OR-ed) must pass, and then the copy is sent unless an earlier
// mirror with the same output already sent this packet's copy. For each
// mirror, the Selections counters sum exactly to Mirrored.
type MirrorCounters struct {
	// Mirrored counts copies this mirror sent to its output (for an
	// RSPAN output: packets flooded as a copy in the output VLAN).
	Mirrored Counter
	// Selected counts packets the mirror selected and whose VLAN and
	// filters matched, including those whose copy another mirror with
	// the same output had already sent (native OVS counts those for both
	// mirrors) and RSPAN packets that could not be copied.
	Selected Counter
	// Selections counts, per selection index (MirrorStatus.Selections),
	// the copies this mirror sent of packets that selection selected.
	// A packet selected by several selections of the mirror is counted
	// for the one whose select flow matched (ingress before egress
	// before flood before all); copies not sent (filtered out, outside
	// the mirror's VLANs, or already sent to the output by another
	// mirror) are not counted. The values sum to Mirrored.
	Selections map[uint32]Counter
	// SelectedBy counts, per selection index, the packets that selection
	// selected before VLANs, filters and de-duplication (the select
	// flows' own counters; attributed like Selections). These are not
	// mirrored packets: their sum may exceed Mirrored.
	SelectedBy map[uint32]Counter
	// Filters counts, per filter index, selected packets that filter
	// matched (first matching filter only), before de-duplication.
	Filters map[uint32]Counter
}

// Aggregate sums flow counters by mirror. Flows without a flowspan cookie
// and pipeline flows are ignored; so are generations other than gen unless
// gen is 0 (all generations).
func Aggregate(gen uint8, counts []FlowCount) map[uint16]*MirrorCounters {
	out := map[uint16]*MirrorCounters{}
	get := func(id uint16) *MirrorCounters {
		mc := out[id]
		if mc == nil {
			mc = &MirrorCounters{Selections: map[uint32]Counter{}, SelectedBy: map[uint32]Counter{}, Filters: map[uint32]Counter{}}
			out[id] = mc
		}
		return mc
	}
	addTo := func(m map[uint32]Counter, i uint32, f FlowCount) {
		s := m[i]
		s.add(f)
		m[i] = s
	}
	for _, f := range counts {
		c := Cookie(f.Cookie)
		if !c.IsFlowspan() || c.Mirror() == 0 || (gen != 0 && c.Generation() != gen) {
			continue
		}
		mc := get(c.Mirror())
		switch c.Kind() {
		case KindEmit:
			mc.Mirrored.add(f)
			mc.Selected.add(f)
		case KindEmitDup, KindEmitNone:
			mc.Selected.add(f)
		case KindCount:
			addTo(mc.Selections, c.Index(), f)
		case KindSelIngress, KindSelEgress, KindSelFlood, KindSelAll:
			addTo(mc.SelectedBy, c.Index(), f)
		case KindFilter:
			addTo(mc.Filters, c.Index(), f)
		}
	}
	return out
}
