package ofpx

import (
	"fmt"
)

// Field is an NXM/OXM field header without its has-mask bit:
// class<<16 | field<<9 | payload length in bytes. The constants below are the
// fields the flowspan pipeline uses; Reg, OXM and NXM build others.
type Field uint32

// OXM/NXM classes.
const (
	ClassNXM0          = 0x0000 // NXM_OF_* (legacy OpenFlow 1.0 fields)
	ClassNXM1          = 0x0001 // NXM_NX_* (Nicira extension fields)
	ClassOpenFlowBasic = 0x8000 // OXM_OF_*
)

// Fields commonly used in matches, learn specs and register moves.
const (
	NXMInPort  Field = ClassNXM0<<16 | 0<<9 | 2 // NXM_OF_IN_PORT (16-bit port)
	NXMEthDst  Field = ClassNXM0<<16 | 1<<9 | 6 // NXM_OF_ETH_DST
	NXMEthSrc  Field = ClassNXM0<<16 | 2<<9 | 6 // NXM_OF_ETH_SRC
	NXMEthType Field = ClassNXM0<<16 | 3<<9 | 2 // NXM_OF_ETH_TYPE
	NXMVlanTCI Field = ClassNXM0<<16 | 4<<9 | 2 // NXM_OF_VLAN_TCI

	OXMInPort  Field = ClassOpenFlowBasic<<16 | 0<<9 | 4 // OXM_OF_IN_PORT (32-bit port)
	OXMEthDst  Field = ClassOpenFlowBasic<<16 | 3<<9 | 6 // OXM_OF_ETH_DST
	OXMEthSrc  Field = ClassOpenFlowBasic<<16 | 4<<9 | 6 // OXM_OF_ETH_SRC
	OXMEthType Field = ClassOpenFlowBasic<<16 | 5<<9 | 2 // OXM_OF_ETH_TYPE
	OXMVlanVID Field = ClassOpenFlowBasic<<16 | 6<<9 | 2 // OXM_OF_VLAN_VID (13 bits: OFPVID_PRESENT | vid)
	OXMVlanPCP Field = ClassOpenFlowBasic<<16 | 7<<9 | 1 // OXM_OF_VLAN_PCP
)

// NumRegs is the number of 32-bit NXM_NX_REG registers.
const NumRegs = 16

// Reg returns the field NXM_NX_REGn (32 bits). n must be 0..15; any other n
// gives an invalid Field that every encoder rejects.
func Reg(n int) Field {
	if n < 0 || n >= NumRegs {
		return 0
	}
	return Field(ClassNXM1<<16 | uint32(n)<<9 | 4)
}

// NXM returns the field with the given class, field number and payload
// length in bytes (without mask).
func NXM(class uint16, field uint8, length uint8) Field {
	if field > 0x7f {
		return 0
	}
	return Field(uint32(class)<<16 | uint32(field)<<9 | uint32(length))
}

// Class returns the field's OXM class.
func (f Field) Class() uint16 { return uint16(f >> 16) }

// Num returns the field number within its class.
func (f Field) Num() uint8 { return uint8(f>>9) & 0x7f }

// Bytes returns the field's width in bytes.
func (f Field) Bytes() int { return int(f & 0xff) }

// Bits returns the field's width in bits.
func (f Field) Bits() int { return f.Bytes() * 8 }

// Valid reports whether f names a field with a non-zero width that fits an
// OXM header, including its masked form.
func (f Field) Valid() bool {
	return f.Bytes() > 0 && f.Bytes() <= 127 && f&0x100 == 0
}

// Header returns the 32-bit NXM/OXM header; masked doubles the length and
// sets the has-mask bit.
func (f Field) Header(masked bool) uint32 {
	h := uint32(f) &^ 0x1ff
	if masked {
		return h | 0x100 | uint32(2*f.Bytes())
	}
	return h | uint32(f.Bytes())
}

// IsReg reports whether f is one of NXM_NX_REG0..15 and returns its index.
func (f Field) IsReg() (int, bool) {
	if f.Class() == ClassNXM1 && f.Num() < NumRegs && f.Bytes() == 4 {
		return int(f.Num()), true
	}
	return 0, false
}

// String returns the OVS name of the field (NXM_NX_REG3, NXM_OF_ETH_SRC, ...)
// or a hex form for fields this package does not name.
func (f Field) String() string {
	if n, ok := f.IsReg(); ok {
		return fmt.Sprintf("NXM_NX_REG%d", n)
	}
	switch f {
	case NXMInPort:
		return "NXM_OF_IN_PORT"
	case NXMEthDst:
		return "NXM_OF_ETH_DST"
	case NXMEthSrc:
		return "NXM_OF_ETH_SRC"
	case NXMEthType:
		return "NXM_OF_ETH_TYPE"
	case NXMVlanTCI:
		return "NXM_OF_VLAN_TCI"
	case OXMInPort:
		return "OXM_OF_IN_PORT"
	case OXMEthDst:
		return "OXM_OF_ETH_DST"
	case OXMEthSrc:
		return "OXM_OF_ETH_SRC"
	case OXMEthType:
		return "OXM_OF_ETH_TYPE"
	case OXMVlanVID:
		return "OXM_OF_VLAN_VID"
	case OXMVlanPCP:
		return "OXM_OF_VLAN_PCP"
	}
	return fmt.Sprintf("field(class=0x%04x,num=%d,len=%d)", f.Class(), f.Num(), f.Bytes())
}

// Subfield is a bit range of a field: bits Ofs..Ofs+NBits-1, as written
// FIELD[start..end] in ovs-ofctl syntax.
type Subfield struct {
	Field Field
	Ofs   int // least significant bit, 0-based
	NBits int // number of bits, >= 1
}

// Range returns the subfield f[ofs..ofs+nbits-1].
func (f Field) Range(ofs, nbits int) Subfield { return Subfield{Field: f, Ofs: ofs, NBits: nbits} }

// All returns the subfield covering the whole field (FIELD[] in ovs-ofctl syntax).
func (f Field) All() Subfield { return Subfield{Field: f, Ofs: 0, NBits: f.Bits()} }

// Validate checks that the subfield lies inside its field.
func (s Subfield) Validate() error {
	if !s.Field.Valid() {
		return fmt.Errorf("subfield %s: invalid field", s)
	}
	if s.NBits < 1 || s.Ofs < 0 || s.Ofs+s.NBits > s.Field.Bits() {
		return fmt.Errorf("subfield %s: bits %d..%d outside the %d-bit field", s, s.Ofs, s.Ofs+s.NBits-1, s.Field.Bits())
	}
	return nil
}

// ofsNbits encodes the range as NXM ofs_nbits: ofs<<6 | (nbits-1).
func (s Subfield) ofsNbits() uint16 {
	return uint16(s.Ofs)<<6 | uint16(s.NBits-1)
}

// String returns the ovs-ofctl form, e.g. NXM_NX_REG0[0..15] or NXM_OF_ETH_SRC[].
func (s Subfield) String() string {
	if s.Ofs == 0 && s.NBits == s.Field.Bits() {
		return s.Field.String() + "[]"
	}
	if s.NBits == 1 {
		return fmt.Sprintf("%s[%d]", s.Field, s.Ofs)
	}
	return fmt.Sprintf("%s[%d..%d]", s.Field, s.Ofs, s.Ofs+s.NBits-1)
}
