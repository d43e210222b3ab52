package ofpx

import (
	"encoding/binary"
	"fmt"

	"github.com/contiv/libOpenflow/openflow13"
	"github.com/contiv/libOpenflow/util"
)

// Bytes is a raw big-endian field value or mask; it implements
// libOpenflow's util.Message so it can be used as openflow13.MatchField.Value
// and .Mask.
type Bytes []byte

var _ util.Message = (*Bytes)(nil)

// Len returns the length in bytes.
func (b *Bytes) Len() uint16 { return uint16(len(*b)) }

// MarshalBinary returns a copy of the bytes.
func (b *Bytes) MarshalBinary() ([]byte, error) { return append([]byte(nil), (*b)...), nil }

// UnmarshalBinary keeps a copy of data.
func (b *Bytes) UnmarshalBinary(data []byte) error {
	*b = append((*b)[:0], data...)
	return nil
}

// uintBytes encodes v big-endian in n bytes (n <= 8).
func uintBytes(v uint64, n int) []byte {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	return append([]byte(nil), buf[8-n:]...)
}

// MatchField builds an openflow13.MatchField for field f with the given
// value and optional mask (nil = exact match). A mask of all ones is encoded
// as an exact match, as OVS does. Value bits outside the mask are an error
// (OVS rejects them with OFPBMC_BAD_WILDCARDS), as is a zero mask (omit the
// field instead).
func MatchField(f Field, value, mask []byte) (openflow13.MatchField, error) {
	if !f.Valid() {
		return openflow13.MatchField{}, fmt.Errorf("match field %s: invalid field", f)
	}
	if len(value) != f.Bytes() {
		return openflow13.MatchField{}, fmt.Errorf("match field %s: value has %d bytes, want %d", f, len(value), f.Bytes())
	}
	if mask != nil {
		if len(mask) != f.Bytes() {
			return openflow13.MatchField{}, fmt.Errorf("match field %s: mask has %d bytes, want %d", f, len(mask), f.Bytes())
		}
		allOnes, allZero := true, true
		for i := range mask {
			if mask[i] != 0xff {
				allOnes = false
			}
			if mask[i] != 0 {
				allZero = false
			}
			if value[i]&^mask[i] != 0 {
				return openflow13.MatchField{}, fmt.Errorf("match field %s: value %x has bits outside mask %x", f, value, mask)
			}
		}
		if allZero {
			return openflow13.MatchField{}, fmt.Errorf("match field %s: mask is zero (omit the field to match anything)", f)
		}
		if allOnes {
			mask = nil
		}
	}
	v := Bytes(append([]byte(nil), value...))
	mf := openflow13.MatchField{
		Class:  f.Class(),
		Field:  f.Num(),
		Length: uint8(f.Bytes()),
		Value:  &v,
	}
	if mask != nil {
		m := Bytes(append([]byte(nil), mask...))
		mf.HasMask = true
		mf.Mask = &m
		mf.Length = uint8(2 * f.Bytes())
	}
	return mf, nil
}

// MatchReg matches register NXM_NX_REGn against value under mask
// (reg3=0x5/0xffff). mask 0xffffffff is an exact match. Unlike
// libOpenflow's NewNXRange-based masks, every mask (including the top bit
// and single-bit masks) is encoded verbatim.
func MatchReg(n int, value, mask uint32) (openflow13.MatchField, error) {
	f := Reg(n)
	if !f.Valid() {
		return openflow13.MatchField{}, fmt.Errorf("match reg%d: no such register (0..%d)", n, NumRegs-1)
	}
	return MatchField(f, uintBytes(uint64(value), 4), uintBytes(uint64(mask), 4))
}

// MatchRegBits matches bits ofs..ofs+nbits-1 of register n against value
// (value is right-aligned: reg0[16..31]=0x7 is MatchRegBits(0, 16, 16, 7)).
func MatchRegBits(n, ofs, nbits int, value uint32) (openflow13.MatchField, error) {
	s := Reg(n).Range(ofs, nbits)
	if err := s.Validate(); err != nil {
		return openflow13.MatchField{}, fmt.Errorf("match reg%d: %w", n, err)
	}
	if nbits < 32 && value>>uint(nbits) != 0 {
		return openflow13.MatchField{}, fmt.Errorf("match %s: value 0x%x does not fit in %d bits", s, value, nbits)
	}
	mask := uint32(((uint64(1) << uint(nbits)) - 1) << uint(ofs))
	return MatchReg(n, value<<uint(ofs), mask)
}

// VLAN match helpers for OXM_OF_VLAN_VID (OpenFlow 1.3 semantics).
const (
	// VIDPresent is OFPVID_PRESENT, set in OXM_OF_VLAN_VID values of tagged packets.
	VIDPresent = 0x1000
)

// MatchVLAN matches packets tagged with VLAN vid (dl_vlan=vid).
func MatchVLAN(vid uint16) (openflow13.MatchField, error) {
	if vid > 4095 {
		return openflow13.MatchField{}, fmt.Errorf("match vlan %d: VLAN id out of range 0..4095", vid)
	}
	return MatchField(OXMVlanVID, uintBytes(uint64(vid|VIDPresent), 2), nil)
}

// MatchNoVLAN matches packets without an 802.1Q header (vlan_tci=0x0000/0x1fff).
func MatchNoVLAN() openflow13.MatchField {
	v := Bytes{0, 0}
	return openflow13.MatchField{Class: ClassOpenFlowBasic, Field: OXMVlanVID.Num(), Length: 2, Value: &v}
}

// MatchAnyVLAN matches packets with any 802.1Q header (vlan_tci=0x1000/0x1000).
func MatchAnyVLAN() openflow13.MatchField {
	v, m := Bytes{0x10, 0}, Bytes{0x10, 0}
	return openflow13.MatchField{Class: ClassOpenFlowBasic, Field: OXMVlanVID.Num(), HasMask: true, Length: 4, Value: &v, Mask: &m}
}

// MatchInPort matches the OpenFlow 1.3 in_port.
func MatchInPort(port uint32) openflow13.MatchField {
	mf, _ := MatchField(OXMInPort, uintBytes(uint64(port), 4), nil)
	return mf
}
