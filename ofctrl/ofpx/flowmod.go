package ofpx

import (
	"encoding/binary"
	"fmt"

	"github.com/contiv/libOpenflow/openflow13"
	"github.com/contiv/libOpenflow/util"
)

// OpenFlow 1.3 constants used when encoding flow mods.
const (
	Version       = 4  // OFP_VERSION for OpenFlow 1.3
	typeFlowMod   = 14 // OFPT_FLOW_MOD
	flowModLen    = 48 // fixed part, header included
	GroupAny      = 0xffffffff
	NoBuffer      = 0xffffffff
	maxMessageLen = 0xffff
)

// FlowMod command values (ofp_flow_mod_command).
const (
	FlowAdd          = 0
	FlowModify       = 1
	FlowModifyStrict = 2
	FlowDelete       = 3
	FlowDeleteStrict = 4
)

// MarshalFlowMod encodes fm as an OpenFlow 1.3 OFPT_FLOW_MOD with the
// given xid. Use it instead of fm.MarshalBinary, which
//   - writes OutPort into the out_group field (so deletes filtered by
//     out_port match nothing),
//   - trusts stale Match.Length / InstrActions.Length values,
//   - ignores errors from match fields and actions, and
//   - emits instructions on deletes while leaving them out of the length.
//
// Every length here is computed from the encoded bytes, and any encoding
// error is returned naming the failing part. Instructions are omitted for
// delete commands. fm is not modified.
func MarshalFlowMod(fm *openflow13.FlowMod, xid uint32) ([]byte, error) {
	return AppendFlowMod(make([]byte, 0, 128), fm, xid)
}

// AppendFlowMod is MarshalFlowMod appending to dst (which is returned
// unchanged in length on error).
func AppendFlowMod(dst []byte, fm *openflow13.FlowMod, xid uint32) ([]byte, error) {
	start := len(dst)
	dst, b := grow(dst, flowModLen)
	b[0] = Version
	b[1] = typeFlowMod
	binary.BigEndian.PutUint32(b[4:], xid)
	binary.BigEndian.PutUint64(b[8:], fm.Cookie)
	binary.BigEndian.PutUint64(b[16:], fm.CookieMask)
	b[24] = fm.TableId
	b[25] = fm.Command
	binary.BigEndian.PutUint16(b[26:], fm.IdleTimeout)
	binary.BigEndian.PutUint16(b[28:], fm.HardTimeout)
	binary.BigEndian.PutUint16(b[30:], fm.Priority)
	binary.BigEndian.PutUint32(b[32:], fm.BufferId)
	binary.BigEndian.PutUint32(b[36:], fm.OutPort)
	binary.BigEndian.PutUint32(b[40:], fm.OutGroup)
	binary.BigEndian.PutUint16(b[44:], fm.Flags)
	var err error
	if dst, err = appendMatch(dst, &fm.Match); err != nil {
		return dst[:start], fmt.Errorf("flow mod: %w", err)
	}
	if fm.Command != FlowDelete && fm.Command != FlowDeleteStrict {
		if dst, err = appendInstructions(dst, fm.Instructions); err != nil {
			return dst[:start], fmt.Errorf("flow mod: %w", err)
		}
	}
	total := len(dst) - start
	if total > maxMessageLen {
		return dst[:start], fmt.Errorf("flow mod: %d bytes exceeds the 65535-byte OpenFlow message limit", total)
	}
	binary.BigEndian.PutUint16(dst[start+2:], uint16(total))
	return dst, nil
}

// NewFlowMod returns a flow mod with OpenFlow 1.3 defaults that
// MarshalFlowMod encodes correctly: no buffer, out_port/out_group ANY
// (match every flow on delete), priority 0x8000 like ovs-ofctl.
func NewFlowMod(command uint8, table uint8) *openflow13.FlowMod {
	fm := openflow13.NewFlowMod()
	fm.Command = command
	fm.TableId = table
	fm.Priority = 0x8000
	fm.BufferId = NoBuffer
	fm.OutPort = PortAny
	fm.OutGroup = GroupAny
	return fm
}

// MarshalMatch encodes an OXM match (ofp_match with type OFPMT_OXM),
// padded to 8 bytes, computing its length from the fields.
func MarshalMatch(m *openflow13.Match) ([]byte, error) { return appendMatch(nil, m) }

func appendMatch(dst []byte, m *openflow13.Match) ([]byte, error) {
	start := len(dst)
	dst, b := grow(dst, 4)
	binary.BigEndian.PutUint16(b, 1) // OFPMT_OXM
	for i := range m.Fields {
		var err error
		if dst, err = appendMatchField(dst, &m.Fields[i]); err != nil {
			return dst[:start], fmt.Errorf("match field %d: %w", i+1, err)
		}
	}
	binary.BigEndian.PutUint16(dst[start+2:], uint16(len(dst)-start))
	if pad := (8 - (len(dst)-start)%8) % 8; pad > 0 {
		dst, _ = grow(dst, pad)
	}
	return dst, nil
}

func marshalMatchField(f *openflow13.MatchField) ([]byte, error) { return appendMatchField(nil, f) }

// appendValue appends the encoding of a match value or mask: without
// allocating for this package's Bytes and for the libOpenflow field types
// whose value is exported (the same bytes as their MarshalBinary, which
// allocates; TestAppendValueMatchesMarshalBinary), through MarshalBinary
// for any other type.
func appendValue(dst []byte, v util.Message) ([]byte, error) {
	switch v := v.(type) {
	case *Bytes:
		return append(dst, *v...), nil
	case *openflow13.EthTypeField:
		return binary.BigEndian.AppendUint16(dst, v.EthType), nil
	case *openflow13.VlanIdField:
		return binary.BigEndian.AppendUint16(dst, v.VlanId), nil
	case *openflow13.ArpOperField:
		return binary.BigEndian.AppendUint16(dst, v.ArpOper), nil
	case *openflow13.TcpFlagsField:
		return binary.BigEndian.AppendUint16(dst, v.TcpFlags), nil
	case *openflow13.InPortField:
		return binary.BigEndian.AppendUint32(dst, v.InPort), nil
	case *openflow13.MplsLabelField:
		return binary.BigEndian.AppendUint32(dst, v.MplsLabel), nil
	case *openflow13.MplsBosField:
		return append(dst, v.MplsBos), nil
	case *openflow13.TunnelIdField:
		return binary.BigEndian.AppendUint64(dst, v.TunnelId), nil
	case *openflow13.MetadataField:
		return binary.BigEndian.AppendUint64(dst, v.Metadata), nil
	case *openflow13.EthDstField:
		return appendFixed(dst, 6, v.EthDst), nil
	case *openflow13.EthSrcField:
		return appendFixed(dst, 6, v.EthSrc), nil
	case *openflow13.Ipv4SrcField:
		return appendFixed(dst, 4, v.Ipv4Src.To4()), nil
	case *openflow13.Ipv4DstField:
		return appendFixed(dst, 4, v.Ipv4Dst.To4()), nil
	case *openflow13.TunnelIpv4SrcField:
		return appendFixed(dst, 4, v.TunnelIpv4Src.To4()), nil
	case *openflow13.TunnelIpv4DstField:
		return appendFixed(dst, 4, v.TunnelIpv4Dst.To4()), nil
	case *openflow13.Ipv6SrcField:
		return appendFixed(dst, 16, v.Ipv6Src), nil
	case *openflow13.Ipv6DstField:
		return appendFixed(dst, 16, v.Ipv6Dst), nil
	}
	b, err := v.MarshalBinary()
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// appendFixed appends n bytes: b truncated or zero-padded to n (what the
// libOpenflow fields' make+copy does).
func appendFixed(dst []byte, n int, b []byte) []byte {
	dst, w := grow(dst, n)
	copy(w, b)
	return dst
}

func appendMatchField(dst []byte, f *openflow13.MatchField) ([]byte, error) {
	start := len(dst)
	if f.Value == nil {
		return dst, fmt.Errorf("class 0x%04x field %d: no value", f.Class, f.Field)
	}
	hdr := 4
	if f.Class == 0xffff { // experimenter OXM carries its id in the payload
		hdr = 8
	}
	// Header first (filled in below), then value and mask in place.
	dst, _ = grow(dst, hdr)
	dst, err := appendValue(dst, f.Value)
	if err != nil {
		return dst[:start], fmt.Errorf("class 0x%04x field %d: value: %w", f.Class, f.Field, err)
	}
	vlen := len(dst) - start - hdr
	if f.HasMask {
		if f.Mask == nil {
			return dst[:start], fmt.Errorf("class 0x%04x field %d: has-mask set but no mask", f.Class, f.Field)
		}
		if dst, err = appendValue(dst, f.Mask); err != nil {
			return dst[:start], fmt.Errorf("class 0x%04x field %d: mask: %w", f.Class, f.Field, err)
		}
		if mlen := len(dst) - start - hdr - vlen; mlen != vlen {
			return dst[:start], fmt.Errorf("class 0x%04x field %d: mask has %d bytes, value %d", f.Class, f.Field, mlen, vlen)
		}
	}
	payload := len(dst) - start - hdr
	if vlen == 0 || payload > 255 || f.Field > 0x7f {
		return dst[:start], fmt.Errorf("class 0x%04x field %d: bad length %d", f.Class, f.Field, payload)
	}
	if hdr == 8 {
		payload += 4
		if payload > 255 {
			return dst[:start], fmt.Errorf("class 0x%04x field %d: bad length %d", f.Class, f.Field, payload)
		}
	}
	b := dst[start:]
	binary.BigEndian.PutUint16(b, f.Class)
	b[2] = f.Field << 1
	if f.HasMask {
		b[2] |= 1
	}
	if hdr == 8 {
		binary.BigEndian.PutUint32(b[4:], f.ExperimenterID)
	}
	b[3] = uint8(payload)
	return dst, nil
}

// MarshalInstructions encodes an instruction list. Apply/write-actions
// instructions are encoded here (their length recomputed, each action's
// encoding error returned); other instructions use their own
// MarshalBinary and must produce Len() bytes, a multiple of 8.
func MarshalInstructions(instrs []openflow13.Instruction) ([]byte, error) {
	return appendInstructions(nil, instrs)
}

func appendInstructions(dst []byte, instrs []openflow13.Instruction) ([]byte, error) {
	for i, in := range instrs {
		var err error
		switch in := in.(type) {
		case *openflow13.InstrActions:
			dst, err = appendInstrActions(dst, in)
		case *openflow13.InstrGotoTable:
			// MarshalBinary's bytes without its allocations; the
			// header's Length is checked like any other instruction's.
			var b []byte
			dst, b = grow(dst, 8)
			binary.BigEndian.PutUint16(b, in.Type)
			binary.BigEndian.PutUint16(b[2:], in.Length)
			b[4] = in.TableId
			if in.Length != 8 {
				err = fmt.Errorf("instruction %T encodes 8 bytes, inconsistent with its length", in)
			}
		case nil:
			err = fmt.Errorf("nil instruction")
		default:
			var ib []byte
			ib, err = in.MarshalBinary()
			if err == nil && (len(ib) != int(in.Len()) || len(ib)%8 != 0 || len(ib) < 4 ||
				int(binary.BigEndian.Uint16(ib[2:])) != len(ib)) {
				err = fmt.Errorf("instruction %T encodes %d bytes, inconsistent with its length", in, len(ib))
			}
			dst = append(dst, ib...)
		}
		if err != nil {
			return dst, fmt.Errorf("instruction %d: %w", i+1, err)
		}
	}
	return dst, nil
}

func appendInstrActions(dst []byte, in *openflow13.InstrActions) ([]byte, error) {
	start := len(dst)
	dst, b := grow(dst, 8)
	binary.BigEndian.PutUint16(b, in.Type)
	dst, err := appendActions(dst, in.Actions)
	if err != nil {
		return dst[:start], err
	}
	l := len(dst) - start
	if l > maxMessageLen {
		return dst[:start], fmt.Errorf("actions too long (%d bytes)", l)
	}
	binary.BigEndian.PutUint16(dst[start+2:], uint16(l))
	return dst, nil
}

// MarshalActions encodes an action list, checking that each action encodes
// to exactly Len() bytes, a multiple of 8, with a matching length field.
func MarshalActions(acts []openflow13.Action) ([]byte, error) { return appendActions(nil, acts) }

func appendActions(dst []byte, acts []openflow13.Action) ([]byte, error) {
	for j, a := range acts {
		if a == nil {
			return dst, fmt.Errorf("action %d: nil", j+1)
		}
		start := len(dst)
		var out []byte
		var err error
		if ap, ok := a.(appender); ok {
			out, err = ap.appendTo(dst)
		} else {
			var ab []byte
			if ab, err = a.MarshalBinary(); err == nil {
				out = append(dst, ab...)
			}
		}
		if err != nil {
			return dst[:start], fmt.Errorf("action %d (%T): %w", j+1, a, err)
		}
		dst = out
		ab := dst[start:]
		if len(ab) < 8 || len(ab)%8 != 0 || len(ab) != int(a.Len()) || int(binary.BigEndian.Uint16(ab[2:])) != len(ab) {
			return dst[:start], fmt.Errorf("action %d (%T): encodes %d bytes, inconsistent with its length %d", j+1, a, len(ab), a.Len())
		}
	}
	return dst, nil
}
