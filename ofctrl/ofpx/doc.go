// Package ofpx encodes the OpenFlow 1.3 actions, matches and flow mods that
// flowspan needs and that github.com/contiv/libOpenflow lacks or encodes
// wrongly. It is pure: no I/O, no global state, no logging.
//
// Everything plugs into libOpenflow's openflow13 types: actions implement
// openflow13.Action (so they go into an openflow13.InstrActions), and match
// helpers return openflow13.MatchField values for openflow13.Match.AddField.
// The flows package builds *openflow13.FlowMod values with them; ofctrl
// encodes those with MarshalFlowMod (never FlowMod.MarshalBinary).
//
//	fm := ofpx.NewFlowMod(ofpx.FlowAdd, 3)           // priority 0x8000, out_port/out_group ANY
//	fm.Priority, fm.Cookie = 100, cookie
//	mf, err := ofpx.MatchRegBits(0, 0, 16, 5)       // reg0=0x5/0xffff
//	fm.Match.AddField(mf)
//	in := openflow13.NewInstrApplyActions()
//	in.AddAction(&ofpx.OutputTrunc{Port: 2, MaxLen: 100}, false) // output(port=2,max_len=100)
//	in.AddAction(ofpx.ResubmitTable(5), false)                   // resubmit(,5)
//	fm.AddInstruction(in)
//	b, err := ofpx.MarshalFlowMod(fm, xid)
//
// Actions (ovs-ofctl syntax → type):
//
//	output(port=P,max_len=N)      OutputTrunc{Port, MaxLen}         NXAST_OUTPUT_TRUNC
//	resubmit(,T) / resubmit(P,T)  ResubmitTable(T), Resubmit{InPort, Table}  NXAST_RESUBMIT_TABLE
//	load:V->REGn[a..b]            RegLoad{Dst: Reg(n).Range(a, b-a+1), Value}  NXAST_REG_LOAD
//	set_field:V->regN             SetReg(n, v)                      OFPAT_SET_FIELD
//	move:SRC[..]->DST[..]         RegMove{Src, Dst}                 NXAST_REG_MOVE
//	learn(...)                    Learn{Table, Priority, IdleTimeout, HardTimeout, Cookie, Flags, Specs}  NXAST_LEARN
//	  FIELD[..]                     LearnMatch(f, f)
//	  DST[..]=SRC[..]               LearnMatch(dst, src)
//	  DST[..]=VALUE                 LearnMatchValue(dst, v)
//	  load:SRC[..]->DST[..]         LearnLoad(src, dst)
//	  load:VALUE->DST[..]           LearnLoadValue(v, dst)
//	  output:SRC[..]                LearnOutput(src)
//	conjunction(ID,K/N)           Conjunction{ID, Clause: K, NClauses: N}  NXAST_CONJUNCTION
//	output:P / NORMAL             Output{Port}                      OFPAT_OUTPUT (max_len 0, like ovs-ofctl)
//	push_vlan:0x8100              PushVLAN{}                        OFPAT_PUSH_VLAN
//	pop_vlan (strip_vlan)         PopVLAN{}                         OFPAT_POP_VLAN
//	set_field:4096|V->vlan_vid    SetVLANVID(v)                     OFPAT_SET_FIELD
//
// Matches: MatchReg(n, value, mask) / MatchRegBits(n, ofs, nbits, value)
// for NXM_NX_REG0..15 with any mask (libOpenflow's NewNXRange(0,0) encodes
// mask 0), MatchVLAN(vid) (dl_vlan), MatchNoVLAN() (vlan_tci=0/0x1fff),
// MatchAnyVLAN(), MatchInPort(p) and the generic MatchField(field, value,
// mask). Fields are named by Field constants (NXMEthSrc, NXMVlanTCI,
// NXMInPort, OXMVlanVID, ...) or Reg(n); Field.Range/All give subfields.
//
// Validation: every action has exported fields and checks them in
// MarshalBinary (Validate where available); MarshalFlowMod returns the
// first error naming the instruction and action ("instruction 1: action 2
// (*ofpx.OutputTrunc): output_trunc: max_len 13 is below ..."), so invalid
// input never reaches a switch.
//
// MarshalFlowMod also fixes libOpenflow's FlowMod encoder: out_group is
// written from OutGroup (libOpenflow copies OutPort there, so deletes by
// out_port match nothing), match and instruction lengths are computed from
// the encoded bytes, errors are returned, and deletes carry no instructions.
//
// Every encoding is tested byte for byte against the flow mod that
// "ovs-ofctl -O OpenFlow13 add-flow" sends for the same flow text (a fake
// switch captures it), or, where OVS picks another equivalent wire form
// (load, move, learn), by decoding both with "ovs-ofctl ofp-print".
//
// Concurrency: values are plain data; an action or flow mod may be encoded
// from several goroutines as long as nobody modifies it meanwhile.
package ofpx
