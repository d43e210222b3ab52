package ofpx

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/contiv/libOpenflow/openflow13"
)

// Nicira vendor id and the NXAST subtypes this package encodes.
const (
	NXVendorID = 0x00002320

	NXASTResubmitTable = 14 // resubmit(port,table)
	NXASTRegMove       = 6  // move:src->dst
	NXASTRegLoad       = 7  // load:value->dst
	NXASTLearn         = 16 // learn(...)
	NXASTConjunction   = 34 // conjunction(id,k/n)
	NXASTOutputTrunc   = 39 // output(port=P,max_len=N)
	NXASTClone         = 42 // clone(actions)
)

// OpenFlow 1.3 action types used here.
const (
	atOutput       = 0
	atPushVLAN     = 17
	atPopVLAN      = 18
	atSetField     = 25
	atExperimenter = 0xffff
)

// OpenFlow 1.3 reserved ports (32-bit).
const (
	PortInPort     uint32 = 0xfffffff8 // OFPP_IN_PORT
	PortTable      uint32 = 0xfffffff9 // OFPP_TABLE
	PortNormal     uint32 = 0xfffffffa // OFPP_NORMAL
	PortFlood      uint32 = 0xfffffffb // OFPP_FLOOD
	PortAll        uint32 = 0xfffffffc // OFPP_ALL
	PortController uint32 = 0xfffffffd // OFPP_CONTROLLER
	PortLocal      uint32 = 0xfffffffe // OFPP_LOCAL
	PortAny        uint32 = 0xffffffff // OFPP_ANY
	PortMax        uint32 = 0xffffff00 // OFPP_MAX: physical ports are below
)

// TableNone in Resubmit means "the current table".
const TableNone uint8 = 0xff

// errShort is returned by UnmarshalBinary for truncated input.
var errShort = errors.New("action truncated")

// port16 converts an OpenFlow 1.3 port number to the 16-bit form NX actions
// carry (OFPP_IN_PORT 0xfffffff8 -> 0xfff8).
func port16(p uint32) (uint16, error) {
	switch {
	case p < 0xff00:
		return uint16(p), nil
	case p >= PortMax:
		return uint16(p - 0xffff0000), nil
	}
	return 0, fmt.Errorf("port %d does not fit the 16-bit port space of Nicira actions", p)
}

func port32(p uint16) uint32 {
	if p >= 0xff00 {
		return uint32(p) + 0xffff0000
	}
	return uint32(p)
}

// putNXHeader writes type, len, vendor, subtype (10 bytes).
func putNXHeader(b []byte, length uint16, subtype uint16) {
	binary.BigEndian.PutUint16(b[0:], atExperimenter)
	binary.BigEndian.PutUint16(b[2:], length)
	binary.BigEndian.PutUint32(b[4:], NXVendorID)
	binary.BigEndian.PutUint16(b[8:], subtype)
}

// checkNX validates an NX action header of the given subtype and minimum length.
func checkNX(data []byte, subtype uint16, min int) (int, error) {
	if len(data) < 10 || len(data) < min {
		return 0, errShort
	}
	l := int(binary.BigEndian.Uint16(data[2:]))
	if binary.BigEndian.Uint16(data[0:]) != atExperimenter || binary.BigEndian.Uint32(data[4:]) != NXVendorID ||
		binary.BigEndian.Uint16(data[8:]) != subtype {
		return 0, fmt.Errorf("not an NX action with subtype %d", subtype)
	}
	if l < min || l > len(data) || l%8 != 0 {
		return 0, fmt.Errorf("NX action subtype %d: bad length %d", subtype, l)
	}
	return l, nil
}

func pad8(n int) int { return (n + 7) / 8 * 8 }

// ---- output_trunc ----

// OutputTrunc outputs the packet to Port truncated to MaxLen bytes
// (NXAST_OUTPUT_TRUNC; ovs-ofctl: output(port=P,max_len=N)). Port must be a
// physical/logical port (not a reserved one) and MaxLen at least 14.
type OutputTrunc struct {
	Port   uint32
	MaxLen uint32
}

var _ openflow13.Action = (*OutputTrunc)(nil)

// Validate checks the port and length against what OVS accepts.
func (a *OutputTrunc) Validate() error {
	if a.Port == 0 || a.Port >= 0xff00 {
		return fmt.Errorf("output_trunc: port %d is not a truncatable port (1..65279)", a.Port)
	}
	if a.MaxLen < 14 {
		return fmt.Errorf("output_trunc: max_len %d is below the 14-byte Ethernet header", a.MaxLen)
	}
	return nil
}

// Header implements openflow13.Action.
func (a *OutputTrunc) Header() *openflow13.ActionHeader {
	return &openflow13.ActionHeader{Type: atExperimenter, Length: a.Len()}
}

// Len implements util.Message.
func (a *OutputTrunc) Len() uint16 { return 16 }

// MarshalBinary implements util.Message.
func (a *OutputTrunc) MarshalBinary() ([]byte, error) { return a.appendTo(nil) }

// appendTo appends the encoded action to dst.
func (a *OutputTrunc) appendTo(dst []byte) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	dst, b := grow(dst, 16)
	putNXHeader(b, 16, NXASTOutputTrunc)
	binary.BigEndian.PutUint16(b[10:], uint16(a.Port))
	binary.BigEndian.PutUint32(b[12:], a.MaxLen)
	return dst, nil
}

// UnmarshalBinary implements util.Message.
func (a *OutputTrunc) UnmarshalBinary(data []byte) error {
	if _, err := checkNX(data, NXASTOutputTrunc, 16); err != nil {
		return fmt.Errorf("output_trunc: %w", err)
	}
	a.Port = port32(binary.BigEndian.Uint16(data[10:]))
	a.MaxLen = binary.BigEndian.Uint32(data[12:])
	return nil
}

// ---- resubmit(port,table) ----

// Resubmit re-runs the packet through Table (TableNone: the current table)
// as if it arrived on InPort (PortInPort: the packet's in_port)
// (NXAST_RESUBMIT_TABLE; ovs-ofctl: resubmit(,T) or resubmit(P,T)).
type Resubmit struct {
	InPort uint32
	Table  uint8
}

var _ openflow13.Action = (*Resubmit)(nil)

// ResubmitTable returns resubmit(,table).
func ResubmitTable(table uint8) *Resubmit { return &Resubmit{InPort: PortInPort, Table: table} }

// Header implements openflow13.Action.
func (a *Resubmit) Header() *openflow13.ActionHeader {
	return &openflow13.ActionHeader{Type: atExperimenter, Length: a.Len()}
}

// Len implements util.Message.
func (a *Resubmit) Len() uint16 { return 16 }

// MarshalBinary implements util.Message.
func (a *Resubmit) MarshalBinary() ([]byte, error) { return a.appendTo(nil) }

// appendTo appends the encoded action to dst.
func (a *Resubmit) appendTo(dst []byte) ([]byte, error) {
	p, err := port16(a.InPort)
	if err != nil {
		return nil, fmt.Errorf("resubmit: %w", err)
	}
	dst, b := grow(dst, 16)
	putNXHeader(b, 16, NXASTResubmitTable)
	binary.BigEndian.PutUint16(b[10:], p)
	b[12] = a.Table
	return dst, nil
}

// UnmarshalBinary implements util.Message.
func (a *Resubmit) UnmarshalBinary(data []byte) error {
	if _, err := checkNX(data, NXASTResubmitTable, 16); err != nil {
		return fmt.Errorf("resubmit: %w", err)
	}
	a.InPort = port32(binary.BigEndian.Uint16(data[10:]))
	a.Table = data[12]
	return nil
}

// ---- load ----

// RegLoad writes Value into the subfield Dst (NXAST_REG_LOAD; ovs-ofctl:
// load:VALUE->DST[a..b], shown by OVS as set_field:VALUE/MASK->dst).
type RegLoad struct {
	Dst   Subfield
	Value uint64
}

var _ openflow13.Action = (*RegLoad)(nil)

// Validate checks the destination and that Value fits in it.
func (a *RegLoad) Validate() error {
	if err := a.Dst.Validate(); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	if a.Dst.NBits > 64 {
		return fmt.Errorf("load: %s is wider than 64 bits", a.Dst)
	}
	if a.Dst.NBits < 64 && a.Value>>uint(a.Dst.NBits) != 0 {
		return fmt.Errorf("load: value 0x%x does not fit in %s", a.Value, a.Dst)
	}
	return nil
}

// Header implements openflow13.Action.
func (a *RegLoad) Header() *openflow13.ActionHeader {
	return &openflow13.ActionHeader{Type: atExperimenter, Length: a.Len()}
}

// Len implements util.Message.
func (a *RegLoad) Len() uint16 { return 24 }

// MarshalBinary implements util.Message.
func (a *RegLoad) MarshalBinary() ([]byte, error) { return a.appendTo(nil) }

// appendTo appends the encoded action to dst.
func (a *RegLoad) appendTo(dst []byte) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	dst, b := grow(dst, 24)
	putNXHeader(b, 24, NXASTRegLoad)
	binary.BigEndian.PutUint16(b[10:], a.Dst.ofsNbits())
	binary.BigEndian.PutUint32(b[12:], a.Dst.Field.Header(false))
	binary.BigEndian.PutUint64(b[16:], a.Value)
	return dst, nil
}

// UnmarshalBinary implements util.Message.
func (a *RegLoad) UnmarshalBinary(data []byte) error {
	if _, err := checkNX(data, NXASTRegLoad, 24); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	on := binary.BigEndian.Uint16(data[10:])
	a.Dst = Subfield{Field: fieldFromHeader(binary.BigEndian.Uint32(data[12:])), Ofs: int(on >> 6), NBits: int(on&0x3f) + 1}
	a.Value = binary.BigEndian.Uint64(data[16:])
	return nil
}

func fieldFromHeader(h uint32) Field {
	if h&0x100 != 0 { // masked header: halve the length
		return Field(h&^0x1ff | (h&0xff)/2)
	}
	return Field(h &^ 0x100)
}

// ---- move ----

// RegMove copies subfield Src into subfield Dst of the same width
// (NXAST_REG_MOVE; ovs-ofctl: move:SRC[a..b]->DST[c..d]).
type RegMove struct {
	Src Subfield
	Dst Subfield
}

var _ openflow13.Action = (*RegMove)(nil)

// Validate checks both subfields and their widths.
func (a *RegMove) Validate() error {
	if err := a.Src.Validate(); err != nil {
		return fmt.Errorf("move: %w", err)
	}
	if err := a.Dst.Validate(); err != nil {
		return fmt.Errorf("move: %w", err)
	}
	if a.Src.NBits != a.Dst.NBits {
		return fmt.Errorf("move: %s is %d bits but %s is %d bits", a.Src, a.Src.NBits, a.Dst, a.Dst.NBits)
	}
	return nil
}

// Header implements openflow13.Action.
func (a *RegMove) Header() *openflow13.ActionHeader {
	return &openflow13.ActionHeader{Type: atExperimenter, Length: a.Len()}
}

// Len implements util.Message.
func (a *RegMove) Len() uint16 { return 24 }

// MarshalBinary implements util.Message.
func (a *RegMove) MarshalBinary() ([]byte, error) { return a.appendTo(nil) }

// appendTo appends the encoded action to dst.
func (a *RegMove) appendTo(dst []byte) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	dst, b := grow(dst, 24)
	putNXHeader(b, 24, NXASTRegMove)
	binary.BigEndian.PutUint16(b[10:], uint16(a.Src.NBits))
	binary.BigEndian.PutUint16(b[12:], uint16(a.Src.Ofs))
	binary.BigEndian.PutUint16(b[14:], uint16(a.Dst.Ofs))
	binary.BigEndian.PutUint32(b[16:], a.Src.Field.Header(false))
	binary.BigEndian.PutUint32(b[20:], a.Dst.Field.Header(false))
	return dst, nil
}

// UnmarshalBinary implements util.Message.
func (a *RegMove) UnmarshalBinary(data []byte) error {
	if _, err := checkNX(data, NXASTRegMove, 24); err != nil {
		return fmt.Errorf("move: %w", err)
	}
	n := int(binary.BigEndian.Uint16(data[10:]))
	a.Src = Subfield{Field: fieldFromHeader(binary.BigEndian.Uint32(data[16:])), Ofs: int(binary.BigEndian.Uint16(data[12:])), NBits: n}
	a.Dst = Subfield{Field: fieldFromHeader(binary.BigEndian.Uint32(data[20:])), Ofs: int(binary.BigEndian.Uint16(data[14:])), NBits: n}
	return nil
}

// ---- conjunction ----

// Conjunction marks the flow as clause Clause (1-based) of NClauses of
// conjunctive match ID (NXAST_CONJUNCTION; ovs-ofctl: conjunction(ID,K/N)).
type Conjunction struct {
	ID       uint32
	Clause   uint8
	NClauses uint8
}

var _ openflow13.Action = (*Conjunction)(nil)

// Validate checks 1 <= Clause <= NClauses and 2 <= NClauses <= 64.
func (a *Conjunction) Validate() error {
	if a.NClauses < 2 || a.NClauses > 64 || a.Clause < 1 || a.Clause > a.NClauses {
		return fmt.Errorf("conjunction(%d,%d/%d): need 2 <= n <= 64 and 1 <= k <= n", a.ID, a.Clause, a.NClauses)
	}
	return nil
}

// Header implements openflow13.Action.
func (a *Conjunction) Header() *openflow13.ActionHeader {
	return &openflow13.ActionHeader{Type: atExperimenter, Length: a.Len()}
}

// Len implements util.Message.
func (a *Conjunction) Len() uint16 { return 16 }

// MarshalBinary implements util.Message.
func (a *Conjunction) MarshalBinary() ([]byte, error) { return a.appendTo(nil) }

// appendTo appends the encoded action to dst.
func (a *Conjunction) appendTo(dst []byte) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	dst, b := grow(dst, 16)
	putNXHeader(b, 16, NXASTConjunction)
	b[10] = a.Clause - 1
	b[11] = a.NClauses
	binary.BigEndian.PutUint32(b[12:], a.ID)
	return dst, nil
}

// UnmarshalBinary implements util.Message.
func (a *Conjunction) UnmarshalBinary(data []byte) error {
	if _, err := checkNX(data, NXASTConjunction, 16); err != nil {
		return fmt.Errorf("conjunction: %w", err)
	}
	a.Clause = data[10] + 1
	a.NClauses = data[11]
	a.ID = binary.BigEndian.Uint32(data[12:])
	return nil
}

// ---- OpenFlow 1.3 standard actions ----

// Output sends the packet to port (OFPAT_OUTPUT). For PortController the
// whole packet is sent (max_len OFPCML_NO_BUFFER); otherwise max_len is 0 as
// ovs-ofctl encodes it.
type Output struct {
	Port uint32
}

var _ openflow13.Action = (*Output)(nil)

// Header implements openflow13.Action.
func (a *Output) Header() *openflow13.ActionHeader {
	return &openflow13.ActionHeader{Type: atOutput, Length: a.Len()}
}

// Len implements util.Message.
func (a *Output) Len() uint16 { return 16 }

// MarshalBinary implements util.Message.
func (a *Output) MarshalBinary() ([]byte, error) { return a.appendTo(nil) }

// appendTo appends the encoded action to dst.
func (a *Output) appendTo(dst []byte) ([]byte, error) {
	if a.Port == 0 || a.Port == PortAny {
		return nil, fmt.Errorf("output: invalid port %d", a.Port)
	}
	dst, b := grow(dst, 16)
	binary.BigEndian.PutUint16(b[0:], atOutput)
	binary.BigEndian.PutUint16(b[2:], 16)
	binary.BigEndian.PutUint32(b[4:], a.Port)
	if a.Port == PortController {
		binary.BigEndian.PutUint16(b[8:], 0xffff)
	}
	return dst, nil
}

// UnmarshalBinary implements util.Message.
func (a *Output) UnmarshalBinary(data []byte) error {
	if len(data) < 16 || binary.BigEndian.Uint16(data) != atOutput || binary.BigEndian.Uint16(data[2:]) != 16 {
		return fmt.Errorf("output: %w", errShort)
	}
	a.Port = binary.BigEndian.Uint32(data[4:])
	return nil
}

// PushVLAN pushes an 802.1Q header with TPID EtherType (0 means 0x8100)
// (OFPAT_PUSH_VLAN; ovs-ofctl: push_vlan:0x8100).
type PushVLAN struct {
	EtherType uint16
}

var _ openflow13.Action = (*PushVLAN)(nil)

// Header implements openflow13.Action.
func (a *PushVLAN) Header() *openflow13.ActionHeader {
	return &openflow13.ActionHeader{Type: atPushVLAN, Length: a.Len()}
}

// Len implements util.Message.
func (a *PushVLAN) Len() uint16 { return 8 }

// MarshalBinary implements util.Message.
func (a *PushVLAN) MarshalBinary() ([]byte, error) { return a.appendTo(nil) }

// appendTo appends the encoded action to dst.
func (a *PushVLAN) appendTo(dst []byte) ([]byte, error) {
	et := a.EtherType
	if et == 0 {
		et = 0x8100
	}
	if et != 0x8100 && et != 0x88a8 {
		return nil, fmt.Errorf("push_vlan: ethertype 0x%04x is not 0x8100 or 0x88a8", et)
	}
	dst, b := grow(dst, 8)
	binary.BigEndian.PutUint16(b[0:], atPushVLAN)
	binary.BigEndian.PutUint16(b[2:], 8)
	binary.BigEndian.PutUint16(b[4:], et)
	return dst, nil
}

// UnmarshalBinary implements util.Message.
func (a *PushVLAN) UnmarshalBinary(data []byte) error {
	if len(data) < 8 || binary.BigEndian.Uint16(data) != atPushVLAN {
		return fmt.Errorf("push_vlan: %w", errShort)
	}
	a.EtherType = binary.BigEndian.Uint16(data[4:])
	return nil
}

// PopVLAN removes the outermost 802.1Q header (OFPAT_POP_VLAN; strip_vlan).
type PopVLAN struct{}

var _ openflow13.Action = (*PopVLAN)(nil)

// Header implements openflow13.Action.
func (a *PopVLAN) Header() *openflow13.ActionHeader {
	return &openflow13.ActionHeader{Type: atPopVLAN, Length: a.Len()}
}

// Len implements util.Message.
func (a *PopVLAN) Len() uint16 { return 8 }

// MarshalBinary implements util.Message.
func (a *PopVLAN) MarshalBinary() ([]byte, error) { return a.appendTo(nil) }

// appendTo appends the encoded action to dst.
func (a *PopVLAN) appendTo(dst []byte) ([]byte, error) {
	dst, b := grow(dst, 8)
	binary.BigEndian.PutUint16(b[0:], atPopVLAN)
	binary.BigEndian.PutUint16(b[2:], 8)
	return dst, nil
}

// UnmarshalBinary implements util.Message.
func (a *PopVLAN) UnmarshalBinary(data []byte) error {
	if len(data) < 8 || binary.BigEndian.Uint16(data) != atPopVLAN {
		return fmt.Errorf("pop_vlan: %w", errShort)
	}
	return nil
}

// SetField sets a whole field to Value (OFPAT_SET_FIELD; ovs-ofctl:
// set_field:VALUE->field). Value is big-endian with the field's width. Use
// RegLoad for partial writes.
type SetField struct {
	Field Field
	Value []byte
}

var _ openflow13.Action = (*SetField)(nil)

// SetVLANVID sets the VLAN id of the outermost 802.1Q header
// (set_field:VID->vlan_vid; pair it with PushVLAN for untagged packets).
func SetVLANVID(vid uint16) *SetField {
	return &SetField{Field: OXMVlanVID, Value: uintBytes(uint64(vid&0xfff|VIDPresent), 2)}
}

// SetReg sets register n to v (set_field:v->regN).
func SetReg(n int, v uint32) *SetField {
	return &SetField{Field: Reg(n), Value: uintBytes(uint64(v), 4)}
}

// Header implements openflow13.Action.
func (a *SetField) Header() *openflow13.ActionHeader {
	return &openflow13.ActionHeader{Type: atSetField, Length: a.Len()}
}

// Len implements util.Message.
func (a *SetField) Len() uint16 { return uint16(pad8(8 + len(a.Value))) }

// MarshalBinary implements util.Message.
func (a *SetField) MarshalBinary() ([]byte, error) { return a.appendTo(nil) }

// appendTo appends the encoded action to dst.
func (a *SetField) appendTo(dst []byte) ([]byte, error) {
	if !a.Field.Valid() {
		return nil, fmt.Errorf("set_field: invalid field %s", a.Field)
	}
	if len(a.Value) != a.Field.Bytes() {
		return nil, fmt.Errorf("set_field %s: value has %d bytes, want %d", a.Field, len(a.Value), a.Field.Bytes())
	}
	if a.Field == OXMVlanVID {
		v := binary.BigEndian.Uint16(a.Value)
		if v&VIDPresent == 0 || v > 0x1fff {
			return nil, fmt.Errorf("set_field vlan_vid: value 0x%04x must be OFPVID_PRESENT|vid", v)
		}
	}
	dst, b := grow(dst, int(a.Len()))
	binary.BigEndian.PutUint16(b[0:], atSetField)
	binary.BigEndian.PutUint16(b[2:], a.Len())
	binary.BigEndian.PutUint32(b[4:], a.Field.Header(false))
	copy(b[8:], a.Value)
	return dst, nil
}

// UnmarshalBinary implements util.Message.
func (a *SetField) UnmarshalBinary(data []byte) error {
	if len(data) < 8 || binary.BigEndian.Uint16(data) != atSetField {
		return fmt.Errorf("set_field: %w", errShort)
	}
	l := int(binary.BigEndian.Uint16(data[2:]))
	h := binary.BigEndian.Uint32(data[4:])
	if h&0x100 != 0 {
		return fmt.Errorf("set_field: masked field header 0x%08x not supported", h)
	}
	a.Field = fieldFromHeader(h)
	if l > len(data) || 8+a.Field.Bytes() > l {
		return fmt.Errorf("set_field: %w", errShort)
	}
	a.Value = append([]byte(nil), data[8:8+a.Field.Bytes()]...)
	return nil
}

// grow extends dst by n zero bytes and returns it and the new n-byte window.
func grow(dst []byte, n int) ([]byte, []byte) {
	l := len(dst)
	if cap(dst)-l < n {
		nd := make([]byte, l, 2*cap(dst)+n)
		copy(nd, dst)
		dst = nd
	}
	dst = dst[:l+n]
	w := dst[l:]
	clear(w)
	return dst, w
}

// appender is implemented by this package's actions: append the encoding
// to dst without an intermediate allocation.
type appender interface {
	appendTo(dst []byte) ([]byte, error)
}

// Clone runs Actions on a copy of the packet; changes they make do not
// affect the actions after the clone (NXAST_CLONE; ovs-ofctl:
// clone(ACTIONS)).
type Clone struct {
	Actions []openflow13.Action
}

var _ openflow13.Action = (*Clone)(nil)

// Header implements openflow13.Action.
func (a *Clone) Header() *openflow13.ActionHeader {
	return &openflow13.ActionHeader{Type: atExperimenter, Length: a.Len()}
}

// Len implements util.Message.
func (a *Clone) Len() uint16 {
	n := 16
	for _, in := range a.Actions {
		if in != nil {
			n += int(in.Len())
		}
	}
	return uint16(n)
}

// MarshalBinary implements util.Message.
func (a *Clone) MarshalBinary() ([]byte, error) { return a.appendTo(nil) }

func (a *Clone) appendTo(dst []byte) ([]byte, error) {
	start := len(dst)
	dst = append(dst, make([]byte, 16)...)
	dst, err := appendActions(dst, a.Actions)
	if err != nil {
		return dst[:start], fmt.Errorf("clone: %w", err)
	}
	n := len(dst) - start
	if n > 0xffff {
		return dst[:start], fmt.Errorf("clone: %d bytes of actions", n)
	}
	putNXHeader(dst[start:], uint16(n), NXASTClone)
	return dst, nil
}

// UnmarshalBinary implements util.Message. Nested actions are not decoded
// (the controller never needs to read a clone back).
func (a *Clone) UnmarshalBinary(data []byte) error {
	if _, err := checkNX(data, NXASTClone, 16); err != nil {
		return err
	}
	return errors.New("clone: decoding nested actions is not supported")
}
