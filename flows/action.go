package flows

import (
	"fmt"
	"strconv"

	"github.com/flowspan/flowspan/ofctrl/ofpx"
)

// Action is one OpenFlow action (or, for GotoTable, the goto instruction,
// which must come last). Actions are values built by the compiler; their
// text is what ovs-ofctl prints.
type Action interface {
	appendText(b []byte) []byte
}

// ActOutput sends the packet to Port (an OVS 16-bit port number, PortLocal for
// the bridge's local port). A MaxLen other than 0 truncates the copy
// (output_trunc).
type ActOutput struct {
	Port   uint32
	MaxLen uint16
}

func (a ActOutput) appendText(b []byte) []byte {
	if a.MaxLen != 0 {
		return fmt.Appendf(b, "output(port=%s,max_len=%d)", formatPort(a.Port), a.MaxLen)
	}
	if a.Port >= 0xff00 {
		return append(b, formatPort(a.Port)...)
	}
	return fmt.Appendf(b, "output:%d", a.Port)
}

// ActNormal forwards with the bridge's NORMAL (L2 learning switch) action.
type ActNormal struct{}

func (ActNormal) appendText(b []byte) []byte { return append(b, "NORMAL"...) }

// ActResubmit looks the packet up in Table and runs that flow's actions, then
// continues here.
type ActResubmit struct{ Table uint8 }

func (a ActResubmit) appendText(b []byte) []byte { return fmt.Appendf(b, "resubmit(,%d)", a.Table) }

// ActGotoTable continues in Table (an instruction; must be the last action).
type ActGotoTable struct{ Table uint8 }

func (a ActGotoTable) appendText(b []byte) []byte { return fmt.Appendf(b, "goto_table:%d", a.Table) }

// ActLoad writes Value into the subfield Dst.
type ActLoad struct {
	Dst   ofpx.Subfield
	Value uint64
}

func (a ActLoad) appendText(b []byte) []byte {
	b = append(b, "load:"...)
	b = append(b, hexC(a.Value)...)
	b = append(b, "->"...)
	return append(b, subfieldText(a.Dst)...)
}

// ActMove copies subfield Src into Dst (same width).
type ActMove struct{ Src, Dst ofpx.Subfield }

func (a ActMove) appendText(b []byte) []byte {
	b = append(b, "move:"...)
	b = append(b, subfieldText(a.Src)...)
	b = append(b, "->"...)
	return append(b, subfieldText(a.Dst)...)
}

// ActPushVLAN pushes an 802.1Q header (TPID 0x8100, VID 0).
type ActPushVLAN struct{}

func (ActPushVLAN) appendText(b []byte) []byte { return append(b, "push_vlan:0x8100"...) }

// ActPopVLAN removes the outermost 802.1Q header.
type ActPopVLAN struct{}

func (ActPopVLAN) appendText(b []byte) []byte { return append(b, "pop_vlan"...) }

// ActSetVLANVID sets the VID of the outermost 802.1Q header.
type ActSetVLANVID struct{ VID uint16 }

func (a ActSetVLANVID) appendText(b []byte) []byte {
	return fmt.Appendf(b, "set_field:%d->vlan_vid", VLANCFI|a.VID)
}

// ActClone runs Actions on a copy of the packet; changes made inside (VLAN
// tags, in_port) do not leak into the actions after it.
type ActClone struct{ Actions []Action }

func (a ActClone) appendText(b []byte) []byte {
	b = append(b, "clone("...)
	b = appendActions(b, a.Actions)
	return append(b, ')')
}

// ActLearn adds or refreshes, in Table, a flow that matches the MAC table key
// (the packet's VLAN in the meta register and Ethernet destination = this
// packet's source) and loads the input port into the egress register.
//
// With DeleteLearned, OVS deletes the learned flows once no flow with a
// learn action for the same table and cookie remains (flowspan gives each
// port's learn its own cookie, so removing a port forgets its MACs, as
// NORMAL does).
type ActLearn struct {
	Table         uint8
	Priority      uint16
	HardTimeout   uint16
	DeleteLearned bool
	Cookie        uint64
	Regs          Registers
}

func (a ActLearn) appendText(b []byte) []byte {
	b = fmt.Appendf(b, "learn(table=%d", a.Table)
	if a.HardTimeout != 0 {
		b = fmt.Appendf(b, ",hard_timeout=%d", a.HardTimeout)
	}
	if a.Priority != 0x8000 {
		b = fmt.Appendf(b, ",priority=%d", a.Priority)
	}
	if a.DeleteLearned {
		b = append(b, ",delete_learned"...)
	}
	if a.Cookie != 0 {
		b = fmt.Appendf(b, ",cookie=%#x", a.Cookie)
	}
	vlan := a.Regs.meta().Range(metaVLANOfs, metaVLANBits)
	b = fmt.Appendf(b, ",%s,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:NXM_OF_IN_PORT[]->%s)",
		subfieldText(vlan), subfieldText(a.Regs.egress().Range(0, 16)))
	return b
}

func appendActions(b []byte, acts []Action) []byte {
	if len(acts) == 0 {
		return append(b, "drop"...)
	}
	for i, a := range acts {
		if i > 0 {
			b = append(b, ',')
		}
		b = a.appendText(b)
	}
	return b
}

// subfieldText prints a subfield as OVS does: FIELD[] for the whole field,
// FIELD[n] for one bit, FIELD[a..b] otherwise.
func subfieldText(s ofpx.Subfield) string {
	name := s.Field.String()
	switch {
	case s.Ofs == 0 && s.NBits == s.Field.Bits():
		return name + "[]"
	case s.NBits == 1:
		return name + "[" + strconv.Itoa(s.Ofs) + "]"
	}
	return name + "[" + strconv.Itoa(s.Ofs) + ".." + strconv.Itoa(s.Ofs+s.NBits-1) + "]"
}
