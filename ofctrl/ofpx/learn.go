package ofpx

import (
	"encoding/binary"
	"fmt"

	"github.com/contiv/libOpenflow/openflow13"
)

// Learn flags (nx_action_learn.flags).
const (
	LearnSendFlowRem   = 1 << 0 // send_flow_rem
	LearnDeleteLearned = 1 << 1 // delete_learned
)

// LearnOp is what a learn spec does in the learned flow.
type LearnOp uint8

// Learn spec operations.
const (
	LearnOpMatch  LearnOp = 0 // the learned flow matches Dst against the source
	LearnOpLoad   LearnOp = 1 // the learned flow loads the source into Dst
	LearnOpOutput LearnOp = 2 // the learned flow outputs to the port in the source
)

// LearnSpec is one flow_mod_spec of a learn action. The source is either
// the subfield Src of the packet being processed or, when Immediate is set,
// the constant Value.
type LearnSpec struct {
	Op        LearnOp
	Src       Subfield
	Immediate bool
	Value     uint64
	Dst       Subfield // unused for LearnOpOutput
}

// LearnMatch: the learned flow matches dst against the current value of src
// (ovs-ofctl: DST=SRC, or just FIELD[..] when dst == src).
func LearnMatch(dst, src Subfield) LearnSpec { return LearnSpec{Op: LearnOpMatch, Src: src, Dst: dst} }

// LearnMatchValue: the learned flow matches dst against value (DST=VALUE).
func LearnMatchValue(dst Subfield, value uint64) LearnSpec {
	return LearnSpec{Op: LearnOpMatch, Immediate: true, Value: value, Dst: dst}
}

// LearnLoad: the learned flow loads the current value of src into dst
// (load:SRC->DST).
func LearnLoad(src, dst Subfield) LearnSpec { return LearnSpec{Op: LearnOpLoad, Src: src, Dst: dst} }

// LearnLoadValue: the learned flow loads value into dst (load:VALUE->DST).
func LearnLoadValue(value uint64, dst Subfield) LearnSpec {
	return LearnSpec{Op: LearnOpLoad, Immediate: true, Value: value, Dst: dst}
}

// LearnOutput: the learned flow outputs to the port held in src (output:SRC).
func LearnOutput(src Subfield) LearnSpec { return LearnSpec{Op: LearnOpOutput, Src: src} }

func (s LearnSpec) nbits() int {
	if s.Op == LearnOpOutput || !s.Immediate {
		return s.Src.NBits
	}
	return s.Dst.NBits
}

func (s LearnSpec) validate() error {
	switch s.Op {
	case LearnOpMatch, LearnOpLoad:
		if err := s.Dst.Validate(); err != nil {
			return err
		}
		if s.Immediate {
			if s.Dst.NBits > 64 {
				return fmt.Errorf("immediate value for %s wider than 64 bits", s.Dst)
			}
			if s.Dst.NBits < 64 && s.Value>>uint(s.Dst.NBits) != 0 {
				return fmt.Errorf("value 0x%x does not fit in %s", s.Value, s.Dst)
			}
			return nil
		}
		if err := s.Src.Validate(); err != nil {
			return err
		}
		if s.Src.NBits != s.Dst.NBits {
			return fmt.Errorf("%s is %d bits but %s is %d bits", s.Src, s.Src.NBits, s.Dst, s.Dst.NBits)
		}
	case LearnOpOutput:
		if s.Immediate {
			return fmt.Errorf("output spec needs a source field")
		}
		if err := s.Src.Validate(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown learn op %d", s.Op)
	}
	return nil
}

func (s LearnSpec) len() int {
	n := 2
	if s.Immediate {
		n += 2 * ((s.nbits() + 15) / 16)
	} else {
		n += 6
	}
	if s.Op != LearnOpOutput {
		n += 6
	}
	return n
}

func (s LearnSpec) put(b []byte) int {
	h := uint16(s.nbits()) | uint16(s.Op)<<11
	if s.Immediate {
		h |= 1 << 13
	}
	binary.BigEndian.PutUint16(b, h)
	n := 2
	if s.Immediate {
		w := 2 * ((s.nbits() + 15) / 16)
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], s.Value)
		if w > 8 {
			n += w - 8 // leading zero bytes
			w = 8
		}
		copy(b[n:], v[8-w:])
		n += w
	} else {
		binary.BigEndian.PutUint32(b[n:], s.Src.Field.Header(false))
		binary.BigEndian.PutUint16(b[n+4:], uint16(s.Src.Ofs))
		n += 6
	}
	if s.Op != LearnOpOutput {
		binary.BigEndian.PutUint32(b[n:], s.Dst.Field.Header(false))
		binary.BigEndian.PutUint16(b[n+4:], uint16(s.Dst.Ofs))
		n += 6
	}
	return n
}

// String returns the ovs-ofctl form of the spec.
func (s LearnSpec) String() string {
	switch s.Op {
	case LearnOpMatch:
		if s.Immediate {
			return fmt.Sprintf("%s=0x%x", s.Dst, s.Value)
		}
		if s.Src == s.Dst {
			return s.Dst.String()
		}
		return fmt.Sprintf("%s=%s", s.Dst, s.Src)
	case LearnOpLoad:
		if s.Immediate {
			return fmt.Sprintf("load:0x%x->%s", s.Value, s.Dst)
		}
		return fmt.Sprintf("load:%s->%s", s.Src, s.Dst)
	case LearnOpOutput:
		return fmt.Sprintf("output:%s", s.Src)
	}
	return fmt.Sprintf("learnspec(op=%d)", s.Op)
}

// Learn adds or refreshes a flow in Table built from Specs (NXAST_LEARN;
// ovs-ofctl: learn(table=T,idle_timeout=..,priority=..,cookie=..,SPEC,...)).
type Learn struct {
	Table          uint8
	Priority       uint16
	IdleTimeout    uint16
	HardTimeout    uint16
	FinIdleTimeout uint16
	FinHardTimeout uint16
	Cookie         uint64
	Flags          uint16
	Specs          []LearnSpec
}

var _ openflow13.Action = (*Learn)(nil)

const learnHeaderLen = 32

// Validate checks the table and every spec.
func (a *Learn) Validate() error {
	if a.Table == 0xff {
		return fmt.Errorf("learn: table 255 is not a valid table")
	}
	if a.Flags&^(LearnSendFlowRem|LearnDeleteLearned) != 0 {
		return fmt.Errorf("learn: unknown flags 0x%x", a.Flags)
	}
	n := learnHeaderLen
	for i, s := range a.Specs {
		if err := s.validate(); err != nil {
			return fmt.Errorf("learn: spec %d (%s): %w", i+1, s, err)
		}
		n += s.len()
	}
	if pad8(n) > 0xffff {
		return fmt.Errorf("learn: %d specs do not fit an action", len(a.Specs))
	}
	return nil
}

// Header implements openflow13.Action.
func (a *Learn) Header() *openflow13.ActionHeader {
	return &openflow13.ActionHeader{Type: atExperimenter, Length: a.Len()}
}

// Len implements util.Message.
func (a *Learn) Len() uint16 {
	n := learnHeaderLen
	for _, s := range a.Specs {
		n += s.len()
	}
	return uint16(pad8(n))
}

// MarshalBinary implements util.Message.
func (a *Learn) MarshalBinary() ([]byte, error) { return a.appendTo(nil) }

// appendTo appends the encoded action to dst.
func (a *Learn) appendTo(dst []byte) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	l := a.Len()
	dst, b := grow(dst, int(l))
	putNXHeader(b, l, NXASTLearn)
	binary.BigEndian.PutUint16(b[10:], a.IdleTimeout)
	binary.BigEndian.PutUint16(b[12:], a.HardTimeout)
	binary.BigEndian.PutUint16(b[14:], a.Priority)
	binary.BigEndian.PutUint64(b[16:], a.Cookie)
	binary.BigEndian.PutUint16(b[24:], a.Flags)
	b[26] = a.Table
	binary.BigEndian.PutUint16(b[28:], a.FinIdleTimeout)
	binary.BigEndian.PutUint16(b[30:], a.FinHardTimeout)
	n := learnHeaderLen
	for _, s := range a.Specs {
		n += s.put(b[n:])
	}
	return dst, nil
}

// UnmarshalBinary implements util.Message.
func (a *Learn) UnmarshalBinary(data []byte) error {
	l, err := checkNX(data, NXASTLearn, learnHeaderLen)
	if err != nil {
		return fmt.Errorf("learn: %w", err)
	}
	a.IdleTimeout = binary.BigEndian.Uint16(data[10:])
	a.HardTimeout = binary.BigEndian.Uint16(data[12:])
	a.Priority = binary.BigEndian.Uint16(data[14:])
	a.Cookie = binary.BigEndian.Uint64(data[16:])
	a.Flags = binary.BigEndian.Uint16(data[24:])
	a.Table = data[26]
	a.FinIdleTimeout = binary.BigEndian.Uint16(data[28:])
	a.FinHardTimeout = binary.BigEndian.Uint16(data[30:])
	a.Specs = nil
	p := data[learnHeaderLen:l]
	for len(p) >= 2 {
		h := binary.BigEndian.Uint16(p)
		if h == 0 {
			break
		}
		var s LearnSpec
		nbits := int(h & 0x3ff)
		s.Immediate = h&(1<<13) != 0
		s.Op = LearnOp((h >> 11) & 3)
		if s.Op > LearnOpOutput || nbits == 0 {
			return fmt.Errorf("learn: bad spec header 0x%04x", h)
		}
		p = p[2:]
		if s.Immediate {
			w := 2 * ((nbits + 15) / 16)
			if len(p) < w {
				return fmt.Errorf("learn: %w", errShort)
			}
			var v uint64
			for i, c := range p[:w] {
				if w-i > 8 {
					if c != 0 {
						return fmt.Errorf("learn: immediate value wider than 64 bits")
					}
					continue
				}
				v = v<<8 | uint64(c)
			}
			s.Value = v
			p = p[w:]
		} else {
			if len(p) < 6 {
				return fmt.Errorf("learn: %w", errShort)
			}
			s.Src = Subfield{Field: fieldFromHeader(binary.BigEndian.Uint32(p)), Ofs: int(binary.BigEndian.Uint16(p[4:])), NBits: nbits}
			p = p[6:]
		}
		if s.Op != LearnOpOutput {
			if len(p) < 6 {
				return fmt.Errorf("learn: %w", errShort)
			}
			s.Dst = Subfield{Field: fieldFromHeader(binary.BigEndian.Uint32(p)), Ofs: int(binary.BigEndian.Uint16(p[4:])), NBits: nbits}
			p = p[6:]
		}
		a.Specs = append(a.Specs, s)
	}
	return nil
}
