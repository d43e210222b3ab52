package flows

import (
	"fmt"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/flowspan/flowspan/ofctrl/ofpx"
)

// FlowMod commands (ofp_flow_mod_command), re-exported for callers of
// Flow.FlowMod.
const (
	FlowAdd          = ofpx.FlowAdd
	FlowModifyStrict = ofpx.FlowModifyStrict
	FlowDeleteStrict = ofpx.FlowDeleteStrict
)

// FlowMod converts the flow into the libOpenflow flow-mod ofctrl sends
// (encode it with ofpx.MarshalFlowMod). cmd is FlowAdd, FlowModifyStrict or
// FlowDeleteStrict; deletes carry no instructions. It fails only for flows
// the OpenFlow encoding cannot carry (e.g. a truncated output to a
// reserved port).
func (f Flow) FlowMod(cmd uint8) (*openflow13.FlowMod, error) {
	fm := ofpx.NewFlowMod(cmd, f.Table)
	fm.Priority = f.Priority
	fm.Cookie = f.Cookie
	fm.HardTimeout = f.HardTimeout
	fm.CookieMask = 0
	fields, err := f.Match.oxm()
	if err != nil {
		return nil, fmt.Errorf("flow %s: %w", f, err)
	}
	fm.Match.Fields = fields
	if cmd == FlowDeleteStrict {
		return fm, nil
	}
	acts := f.Actions
	var gotoTable *ActGotoTable
	if n := len(acts); n > 0 {
		if g, ok := acts[n-1].(ActGotoTable); ok {
			gotoTable = &g
			acts = acts[:n-1]
		}
	}
	ofacts, err := convertActions(acts)
	if err != nil {
		return nil, fmt.Errorf("flow %s: %w", f, err)
	}
	if len(ofacts) > 0 {
		in := openflow13.NewInstrApplyActions()
		for _, a := range ofacts {
			if err := in.AddAction(a, false); err != nil {
				return nil, fmt.Errorf("flow %s: %w", f, err)
			}
		}
		fm.AddInstruction(in)
	}
	if gotoTable != nil {
		fm.AddInstruction(openflow13.NewInstrGotoTable(gotoTable.Table))
	}
	return fm, nil
}

// port32 maps OVS's 16-bit port numbers to OpenFlow 1.3's 32-bit ones.
func port32(p uint32) uint32 {
	if p >= 0xff00 && p <= 0xffff {
		return p | 0xffff0000
	}
	return p
}

func convertActions(acts []Action) ([]openflow13.Action, error) {
	out := make([]openflow13.Action, 0, len(acts))
	for _, a := range acts {
		switch a := a.(type) {
		case ActOutput:
			if a.MaxLen != 0 {
				t := &ofpx.OutputTrunc{Port: a.Port, MaxLen: uint32(a.MaxLen)}
				if err := t.Validate(); err != nil {
					return nil, err
				}
				out = append(out, t)
			} else {
				out = append(out, &ofpx.Output{Port: port32(a.Port)})
			}
		case ActNormal:
			out = append(out, &ofpx.Output{Port: ofpx.PortNormal})
		case ActResubmit:
			out = append(out, ofpx.ResubmitTable(a.Table))
		case ActLoad:
			out = append(out, &ofpx.RegLoad{Dst: a.Dst, Value: a.Value})
		case ActMove:
			out = append(out, &ofpx.RegMove{Src: a.Src, Dst: a.Dst})
		case ActPushVLAN:
			out = append(out, &ofpx.PushVLAN{EtherType: 0x8100})
		case ActPopVLAN:
			out = append(out, &ofpx.PopVLAN{})
		case ActSetVLANVID:
			out = append(out, ofpx.SetVLANVID(a.VID))
		case ActClone:
			inner, err := convertActions(a.Actions)
			if err != nil {
				return nil, err
			}
			out = append(out, &ofpx.Clone{Actions: inner})
		case ActLearn:
			vlan := a.Regs.meta().Range(metaVLANOfs, metaVLANBits)
			var flags uint16
			if a.DeleteLearned {
				flags |= ofpx.LearnDeleteLearned
			}
			out = append(out, &ofpx.Learn{
				Table: a.Table, Priority: a.Priority, HardTimeout: a.HardTimeout, Cookie: a.Cookie, Flags: flags,
				Specs: []ofpx.LearnSpec{
					ofpx.LearnMatch(vlan, vlan),
					ofpx.LearnMatch(ofpx.NXMEthDst.All(), ofpx.NXMEthSrc.All()),
					ofpx.LearnLoad(ofpx.NXMInPort.All(), a.Regs.egress().Range(0, 16)),
				},
			})
		case ActGotoTable:
			return nil, fmt.Errorf("goto_table must be the last action")
		default:
			return nil, fmt.Errorf("action %T has no OpenFlow encoding", a)
		}
	}
	return out, nil
}

// OXM/NXM fields for the packet fields (class, field number, bytes).
var (
	oxmEthDst    = ofpx.NXM(ofpx.ClassOpenFlowBasic, 3, 6)
	oxmEthSrc    = ofpx.NXM(ofpx.ClassOpenFlowBasic, 4, 6)
	oxmEthType   = ofpx.NXM(ofpx.ClassOpenFlowBasic, 5, 2)
	oxmIPDSCP    = ofpx.NXM(ofpx.ClassOpenFlowBasic, 8, 1)
	oxmIPECN     = ofpx.NXM(ofpx.ClassOpenFlowBasic, 9, 1)
	oxmIPProto   = ofpx.NXM(ofpx.ClassOpenFlowBasic, 10, 1)
	oxmIPv4Src   = ofpx.NXM(ofpx.ClassOpenFlowBasic, 11, 4)
	oxmIPv4Dst   = ofpx.NXM(ofpx.ClassOpenFlowBasic, 12, 4)
	oxmTCPSrc    = ofpx.NXM(ofpx.ClassOpenFlowBasic, 13, 2)
	oxmTCPDst    = ofpx.NXM(ofpx.ClassOpenFlowBasic, 14, 2)
	oxmUDPSrc    = ofpx.NXM(ofpx.ClassOpenFlowBasic, 15, 2)
	oxmUDPDst    = ofpx.NXM(ofpx.ClassOpenFlowBasic, 16, 2)
	oxmSCTPSrc   = ofpx.NXM(ofpx.ClassOpenFlowBasic, 17, 2)
	oxmSCTPDst   = ofpx.NXM(ofpx.ClassOpenFlowBasic, 18, 2)
	oxmICMPType  = ofpx.NXM(ofpx.ClassOpenFlowBasic, 19, 1)
	oxmICMPCode  = ofpx.NXM(ofpx.ClassOpenFlowBasic, 20, 1)
	oxmARPOp     = ofpx.NXM(ofpx.ClassOpenFlowBasic, 21, 2)
	oxmARPSpa    = ofpx.NXM(ofpx.ClassOpenFlowBasic, 22, 4)
	oxmARPTpa    = ofpx.NXM(ofpx.ClassOpenFlowBasic, 23, 4)
	oxmARPSha    = ofpx.NXM(ofpx.ClassOpenFlowBasic, 24, 6)
	oxmARPTha    = ofpx.NXM(ofpx.ClassOpenFlowBasic, 25, 6)
	oxmIPv6Src   = ofpx.NXM(ofpx.ClassOpenFlowBasic, 26, 16)
	oxmIPv6Dst   = ofpx.NXM(ofpx.ClassOpenFlowBasic, 27, 16)
	oxmIPv6Label = ofpx.NXM(ofpx.ClassOpenFlowBasic, 28, 4)
	oxmICMP6Type = ofpx.NXM(ofpx.ClassOpenFlowBasic, 29, 1)
	oxmICMP6Code = ofpx.NXM(ofpx.ClassOpenFlowBasic, 30, 1)
	oxmNDTarget  = ofpx.NXM(ofpx.ClassOpenFlowBasic, 31, 16)
	oxmNDSll     = ofpx.NXM(ofpx.ClassOpenFlowBasic, 32, 6)
	oxmNDTll     = ofpx.NXM(ofpx.ClassOpenFlowBasic, 33, 6)
	nxmIPTTL     = ofpx.NXM(ofpx.ClassNXM1, 29, 1)
	nxmIPFrag    = ofpx.NXM(ofpx.ClassNXM1, 26, 1)
	nxmTCPFlags  = ofpx.NXM(ofpx.ClassNXM1, 34, 2)
)

func be(v uint64, n int) []byte {
	b := make([]byte, n)
	for i := n - 1; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return b
}

// oxm encodes the match as OXM/NXM fields in OVS's prerequisite order.
func (m *Match) oxm() ([]openflow13.MatchField, error) {
	var out []openflow13.MatchField
	var err error
	add := func(f ofpx.Field, v, mask []byte, full bool) {
		if err != nil {
			return
		}
		if full {
			mask = nil
		}
		var mf openflow13.MatchField
		mf, err = ofpx.MatchField(f, v, mask)
		out = append(out, mf)
	}
	if m.inPort.m != 0 {
		out = append(out, ofpx.MatchInPort(port32(m.inPort.v)))
	}
	for i, r := range m.regs {
		if r.m != 0 {
			var mf openflow13.MatchField
			mf, err = ofpx.MatchReg(i, r.v, r.m)
			if err != nil {
				return nil, err
			}
			out = append(out, mf)
		}
	}
	if m.dlSrc.m != ([6]byte{}) {
		add(oxmEthSrc, m.dlSrc.v[:], m.dlSrc.m[:], m.dlSrc.m == allOnesMAC)
	}
	if m.dlDst.m != ([6]byte{}) {
		add(oxmEthDst, m.dlDst.v[:], m.dlDst.m[:], m.dlDst.m == allOnesMAC)
	}
	if m.vlanTCI.m != 0 {
		add(ofpx.NXMVlanTCI, be(uint64(m.vlanTCI.v), 2), be(uint64(m.vlanTCI.m), 2), m.vlanTCI.m == 0xffff)
	}
	if m.dlType.m != 0 {
		add(oxmEthType, be(uint64(m.dlType.v), 2), nil, true)
	}
	isARP := m.dlType.m != 0 && (m.dlType.v == EthTypeARP || m.dlType.v == EthTypeRARP)
	isIP6 := m.dlType.m != 0 && m.dlType.v == EthTypeIPv6
	if m.nwProto.m != 0 {
		if isARP {
			add(oxmARPOp, be(uint64(m.nwProto.v), 2), nil, true)
		} else {
			add(oxmIPProto, []byte{m.nwProto.v}, nil, true)
		}
	}
	u32 := func(f ofpx.Field, x u32m) {
		if x.m != 0 {
			add(f, be(uint64(x.v), 4), be(uint64(x.m), 4), x.m == ^uint32(0))
		}
	}
	if isARP {
		u32(oxmARPSpa, m.nwSrc)
		u32(oxmARPTpa, m.nwDst)
		if m.arpSha.m != ([6]byte{}) {
			add(oxmARPSha, m.arpSha.v[:], m.arpSha.m[:], m.arpSha.m == allOnesMAC)
		}
		if m.arpTha.m != ([6]byte{}) {
			add(oxmARPTha, m.arpTha.v[:], m.arpTha.m[:], m.arpTha.m == allOnesMAC)
		}
	} else {
		u32(oxmIPv4Src, m.nwSrc)
		u32(oxmIPv4Dst, m.nwDst)
	}
	all16 := [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	v6 := func(f ofpx.Field, x v6m) {
		if x.m != ([16]byte{}) {
			add(f, x.v[:], x.m[:], x.m == all16)
		}
	}
	v6(oxmIPv6Src, m.ipv6Src)
	v6(oxmIPv6Dst, m.ipv6Dst)
	if m.ipv6Label.m != 0 {
		add(oxmIPv6Label, be(uint64(m.ipv6Label.v), 4), be(uint64(m.ipv6Label.m), 4), m.ipv6Label.m == 0xfffff)
	}
	if m.nwTOS.m&0xfc != 0 {
		add(oxmIPDSCP, []byte{m.nwTOS.v >> 2}, nil, true)
	}
	if m.nwTOS.m&0x03 != 0 {
		add(oxmIPECN, []byte{m.nwTOS.v & 3}, nil, true)
	}
	if m.nwTTL.m != 0 {
		add(nxmIPTTL, []byte{m.nwTTL.v}, nil, true)
	}
	if m.nwFrag.m != 0 {
		add(nxmIPFrag, []byte{m.nwFrag.v}, []byte{m.nwFrag.m}, m.nwFrag.m == 0xff)
	}
	tp := func(src, dst ofpx.Field, bytes int) {
		for _, x := range []struct {
			f ofpx.Field
			v u16m
		}{{src, m.tpSrc}, {dst, m.tpDst}} {
			if x.v.m != 0 {
				full := x.v.m == 0xffff || bytes == 1
				add(x.f, be(uint64(x.v.v), bytes), be(uint64(x.v.m), bytes), full)
			}
		}
	}
	if m.nwProto.m != 0 && !isARP {
		switch m.nwProto.v {
		case ProtoTCP:
			tp(oxmTCPSrc, oxmTCPDst, 2)
		case ProtoUDP:
			tp(oxmUDPSrc, oxmUDPDst, 2)
		case ProtoSCTP:
			tp(oxmSCTPSrc, oxmSCTPDst, 2)
		case ProtoICMP:
			tp(oxmICMPType, oxmICMPCode, 1)
		case ProtoICMPv6:
			if isIP6 {
				tp(oxmICMP6Type, oxmICMP6Code, 1)
			}
		}
	}
	v6(oxmNDTarget, m.ndTarget)
	if isIP6 && m.nwProto.v == ProtoICMPv6 {
		if m.arpSha.m != ([6]byte{}) {
			add(oxmNDSll, m.arpSha.v[:], m.arpSha.m[:], m.arpSha.m == allOnesMAC)
		}
		if m.arpTha.m != ([6]byte{}) {
			add(oxmNDTll, m.arpTha.v[:], m.arpTha.m[:], m.arpTha.m == allOnesMAC)
		}
	}
	if m.tcpFlags.m != 0 {
		add(nxmTCPFlags, be(uint64(m.tcpFlags.v), 2), be(uint64(m.tcpFlags.m), 2), false)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}
