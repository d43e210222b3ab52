package ofctrl

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/flowspan/flowspan/ofctrl/ofpx"
)

// OpenFlow 1.3 message types.
const (
	ofVersion = 4

	typeHello            = 0
	typeError            = 1
	typeEchoRequest      = 2
	typeEchoReply        = 3
	typeExperimenter     = 4
	typeFeaturesRequest  = 5
	typeFeaturesReply    = 6
	typePortStatus       = 12
	typeFlowMod          = 14
	typeMultipartRequest = 18
	typeMultipartReply   = 19
	typeBarrierRequest   = 20
	typeBarrierReply     = 21
	typeSetAsync         = 28

	mpFlow      = 1
	mpPortStats = 4
	mpPortDesc  = 13
	mpReplyMore = 1

	onfExperimenter    = 0x4f4e4600
	onfBundleControl   = 2300
	onfBundleAdd       = 2301
	bundleOpen         = 0
	bundleOpenReply    = 1
	bundleCommit       = 4
	bundleCommitReply  = 5
	bundleDiscard      = 6
	bundleDiscardReply = 7
	bundleFlagAtomic   = 1

	headerLen = 8
	// MaxFrame is the largest OpenFlow message (the length field is 16 bits).
	MaxFrame = 0xffff
)

var msgTypeNames = [...]string{
	"HELLO", "ERROR", "ECHO_REQUEST", "ECHO_REPLY", "EXPERIMENTER", "FEATURES_REQUEST",
	"FEATURES_REPLY", "GET_CONFIG_REQUEST", "GET_CONFIG_REPLY", "SET_CONFIG", "PACKET_IN",
	"FLOW_REMOVED", "PORT_STATUS", "PACKET_OUT", "FLOW_MOD", "GROUP_MOD", "PORT_MOD",
	"TABLE_MOD", "MULTIPART_REQUEST", "MULTIPART_REPLY", "BARRIER_REQUEST", "BARRIER_REPLY",
	"QUEUE_GET_CONFIG_REQUEST", "QUEUE_GET_CONFIG_REPLY", "ROLE_REQUEST", "ROLE_REPLY",
	"GET_ASYNC_REQUEST", "GET_ASYNC_REPLY", "SET_ASYNC", "METER_MOD",
}

func msgTypeName(t uint8) string {
	if int(t) < len(msgTypeNames) {
		return "OFPT_" + msgTypeNames[t]
	}
	return fmt.Sprintf("OFPT_%d", t)
}

// ErrFrame is wrapped by errors about malformed frames from a switch.
var ErrFrame = errors.New("malformed OpenFlow frame")

// readFrame reads one length-prefixed OpenFlow message. The returned slice
// is newly allocated. Frames shorter than a header or longer than max are
// rejected; a frame is never split or reordered.
func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	hdr, err := r.Peek(headerLen)
	if err != nil {
		if errors.Is(err, io.EOF) && len(hdr) > 0 {
			return nil, fmt.Errorf("%w: truncated header (%d bytes)", ErrFrame, len(hdr))
		}
		return nil, err
	}
	l := int(binary.BigEndian.Uint16(hdr[2:]))
	if l < headerLen {
		return nil, fmt.Errorf("%w: length %d shorter than the header", ErrFrame, l)
	}
	if l > max {
		return nil, fmt.Errorf("%w: length %d exceeds the %d-byte limit", ErrFrame, l, max)
	}
	f := make([]byte, l)
	if _, err := io.ReadFull(r, f); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: truncated %s (want %d bytes): %w", ErrFrame, msgTypeName(f[1]), l, err)
		}
		return nil, err
	}
	return f, nil
}

// newMsg returns a message of the given type with room for body bytes.
func newMsg(typ uint8, xid uint32, body int) []byte {
	return newMsgV(ofVersion, typ, xid, body)
}

// newMsgV is newMsg for OpenFlow version.
func newMsgV(version, typ uint8, xid uint32, body int) []byte {
	b := make([]byte, headerLen+body)
	b[0] = version
	b[1] = typ
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint32(b[4:], xid)
	return b
}

func frameXID(f []byte) uint32 { return binary.BigEndian.Uint32(f[4:]) }

// helloMsg is a HELLO advertising only OpenFlow 1.3 with a version bitmap.
func helloMsg(xid uint32) []byte {
	b := newMsg(typeHello, xid, 8)
	binary.BigEndian.PutUint16(b[8:], 1)  // OFPHET_VERSIONBITMAP
	binary.BigEndian.PutUint16(b[10:], 8) // element length
	binary.BigEndian.PutUint32(b[12:], 1<<ofVersion)
	return b
}

// helloSupports13 reports whether a peer's HELLO allows OpenFlow 1.3: its
// version bitmap has bit 4, or, without a bitmap, its version is >= 4.
func helloSupports13(f []byte) (bool, string) { return helloSupports(f, ofVersion) }

// helloSupports reports whether a peer's HELLO allows OpenFlow version
// want (by its version bitmap, or without one by its version being at
// least want) and what it offers.
func helloSupports(f []byte, want uint8) (bool, string) {
	peer := f[0]
	body := f[headerLen:]
	for len(body) >= 4 {
		typ := binary.BigEndian.Uint16(body)
		l := int(binary.BigEndian.Uint16(body[2:]))
		if l < 4 || l > len(body) {
			break
		}
		if typ == 1 { // version bitmap
			var vs []string
			ok := false
			for i := 4; i+4 <= l; i += 4 {
				bm := binary.BigEndian.Uint32(body[i:])
				for bit := 0; bit < 32; bit++ {
					if bm&(1<<bit) != 0 {
						v := (i-4)/4*32 + bit
						vs = append(vs, fmt.Sprintf("0x%02x", v))
						if v == int(want) {
							ok = true
						}
					}
				}
			}
			return ok, "versions " + strings.Join(vs, ",")
		}
		adv := (l + 7) / 8 * 8
		if adv > len(body) {
			break
		}
		body = body[adv:]
	}
	return peer >= want, fmt.Sprintf("version 0x%02x", peer)
}

// setAsyncMsg asks for port-status messages (add, delete, modify) and
// nothing else. OVS sends no asynchronous messages to service connections
// (such as <bridge>.mgmt) unless asked, and packet-ins are of no use here.
func setAsyncMsg(xid uint32) []byte {
	b := newMsg(typeSetAsync, xid, 24)
	// packet_in_mask[2] = 0; port_status_mask[2]; flow_removed_mask[2] = 0
	binary.BigEndian.PutUint32(b[16:], 1<<PortAdded|1<<PortDeleted|1<<PortModified)
	binary.BigEndian.PutUint32(b[20:], 1<<PortAdded|1<<PortDeleted|1<<PortModified)
	return b
}

// errorMsg builds an OFPT_ERROR.
func errorMsg(xid uint32, typ, code uint16, data []byte) []byte {
	b := newMsg(typeError, xid, 4+len(data))
	binary.BigEndian.PutUint16(b[8:], typ)
	binary.BigEndian.PutUint16(b[10:], code)
	copy(b[12:], data)
	return b
}

// appendHeader appends a body-less message.
func appendHeader(dst []byte, typ uint8, xid uint32) []byte {
	dst = append(dst, ofVersion, typ, 0, headerLen)
	return binary.BigEndian.AppendUint32(dst, xid)
}

func bundleControlMsg(xid, id uint32, typ uint16) []byte {
	return appendBundleControl(make([]byte, 0, headerLen+16), xid, id, typ)
}

// appendBundleControl appends an ONF bundle control message.
func appendBundleControl(dst []byte, xid, id uint32, typ uint16) []byte {
	dst = append(dst, ofVersion, typeExperimenter, 0, headerLen+16)
	dst = binary.BigEndian.AppendUint32(dst, xid)
	dst = binary.BigEndian.AppendUint32(dst, onfExperimenter)
	dst = binary.BigEndian.AppendUint32(dst, onfBundleControl)
	dst = binary.BigEndian.AppendUint32(dst, id)
	dst = binary.BigEndian.AppendUint16(dst, typ)
	return binary.BigEndian.AppendUint16(dst, bundleFlagAtomic)
}

// appendBundleAddFlowMod appends an ONF bundle-add wrapping fm, encoded
// in place with the same xid (OVS rejects a mismatch).
func appendBundleAddFlowMod(dst []byte, xid, id uint32, fm *openflow13.FlowMod) ([]byte, error) {
	start := len(dst)
	dst = append(dst, make([]byte, headerLen+16)...)
	dst, err := ofpx.AppendFlowMod(dst, fm, xid)
	if err != nil {
		return dst[:start], err
	}
	l := len(dst) - start
	if l > MaxFrame {
		return dst[:start], fmt.Errorf("bundle add: flow mod of %d bytes too large", l-headerLen-16)
	}
	h := dst[start:]
	h[0] = ofVersion
	h[1] = typeExperimenter
	binary.BigEndian.PutUint16(h[2:], uint16(l))
	binary.BigEndian.PutUint32(h[4:], xid)
	binary.BigEndian.PutUint32(h[8:], onfExperimenter)
	binary.BigEndian.PutUint32(h[12:], onfBundleAdd)
	binary.BigEndian.PutUint32(h[16:], id)
	binary.BigEndian.PutUint16(h[22:], bundleFlagAtomic)
	return dst, nil
}

// flowStatsRequest builds an OFPMP_FLOW request.
func flowStatsRequest(xid uint32, f FlowFilter) []byte {
	b := newMsg(typeMultipartRequest, xid, 8+32+8)
	binary.BigEndian.PutUint16(b[8:], mpFlow)
	p := b[16:]
	p[0] = f.Table
	outPort := f.OutPort
	if outPort == 0 {
		outPort = 0xffffffff
	}
	binary.BigEndian.PutUint32(p[4:], outPort)
	binary.BigEndian.PutUint32(p[8:], 0xffffffff) // out_group any
	binary.BigEndian.PutUint64(p[16:], f.Cookie)
	binary.BigEndian.PutUint64(p[24:], f.CookieMask)
	binary.BigEndian.PutUint16(p[32:], 1) // empty OXM match
	binary.BigEndian.PutUint16(p[34:], 4)
	return b
}

func portStatsRequest(xid, port uint32) []byte {
	b := newMsg(typeMultipartRequest, xid, 16)
	binary.BigEndian.PutUint16(b[8:], mpPortStats)
	binary.BigEndian.PutUint32(b[16:], port)
	return b
}

const portStatsLen = 112 // ofp_port_stats

// parsePortStats parses an OFPMP_PORT_STATS reply body.
func parsePortStats(b []byte) ([]PortCounters, error) {
	if len(b)%portStatsLen != 0 {
		return nil, fmt.Errorf("%w: port stats body of %d bytes", ErrFrame, len(b))
	}
	out := make([]PortCounters, 0, len(b)/portStatsLen)
	for ; len(b) > 0; b = b[portStatsLen:] {
		out = append(out, PortCounters{Port: binary.BigEndian.Uint32(b),
			RxPackets: binary.BigEndian.Uint64(b[8:]), TxPackets: binary.BigEndian.Uint64(b[16:]),
			RxBytes: binary.BigEndian.Uint64(b[24:]), TxBytes: binary.BigEndian.Uint64(b[32:])})
	}
	return out, nil
}

func portDescRequest(xid uint32) []byte {
	b := newMsg(typeMultipartRequest, xid, 8)
	binary.BigEndian.PutUint16(b[8:], mpPortDesc)
	return b
}

// ---- decoding ----

// message is a decoded switch-to-controller message.
type message struct {
	typ  uint8
	xid  uint32
	raw  []byte
	err  *SwitchError // typeError
	dpid uint64       // features reply
	// multipart
	mpType uint16
	mpMore bool
	flows  []FlowStat
	ports  []Port
	pstats []PortCounters
	portSt *PortStatus
	bundle uint16 // bundle control reply type
}

// parseMessage decodes a frame from a switch. It never panics on its own
// account (every access is bounds-checked); the connection still wraps it
// in recover as a last line of defence.
func parseMessage(f []byte) (*message, error) {
	if len(f) < headerLen || int(binary.BigEndian.Uint16(f[2:])) != len(f) {
		return nil, fmt.Errorf("%w: bad length", ErrFrame)
	}
	m := &message{typ: f[1], xid: frameXID(f), raw: f}
	body := f[headerLen:]
	if f[0] != ofVersion && m.typ != typeHello && m.typ != typeError {
		return nil, fmt.Errorf("%w: %s with version 0x%02x after negotiating 1.3", ErrFrame, msgTypeName(m.typ), f[0])
	}
	switch m.typ {
	case typeError:
		if len(body) < 4 {
			return nil, fmt.Errorf("%w: OFPT_ERROR of %d bytes", ErrFrame, len(f))
		}
		e := &SwitchError{Type: binary.BigEndian.Uint16(body), Code: binary.BigEndian.Uint16(body[2:])}
		data := body[4:]
		if e.Type == 0xffff {
			if len(data) < 4 {
				return nil, fmt.Errorf("%w: experimenter error of %d bytes", ErrFrame, len(f))
			}
			e.Experimenter = binary.BigEndian.Uint32(data)
			data = data[4:]
		}
		e.Data = append([]byte(nil), data...)
		m.err = e
	case typeFeaturesReply:
		if len(body) < 24 {
			return nil, fmt.Errorf("%w: FEATURES_REPLY of %d bytes", ErrFrame, len(f))
		}
		m.dpid = binary.BigEndian.Uint64(body)
	case typeMultipartReply:
		if len(body) < 8 {
			return nil, fmt.Errorf("%w: MULTIPART_REPLY of %d bytes", ErrFrame, len(f))
		}
		m.mpType = binary.BigEndian.Uint16(body)
		m.mpMore = binary.BigEndian.Uint16(body[2:])&mpReplyMore != 0
		var err error
		switch m.mpType {
		case mpFlow:
			m.flows, err = parseFlowStats(body[8:])
		case mpPortDesc:
			m.ports, err = parsePorts(body[8:])
		case mpPortStats:
			m.pstats, err = parsePortStats(body[8:])
		}
		if err != nil {
			return nil, err
		}
	case typePortStatus:
		if len(body) < 8+portLen {
			return nil, fmt.Errorf("%w: PORT_STATUS of %d bytes", ErrFrame, len(f))
		}
		p, err := parsePorts(body[8 : 8+portLen])
		if err != nil {
			return nil, err
		}
		m.portSt = &PortStatus{Reason: PortReason(body[0]), Port: p[0]}
	case typeExperimenter:
		if len(body) >= 16 && binary.BigEndian.Uint32(body) == onfExperimenter &&
			binary.BigEndian.Uint32(body[4:]) == onfBundleControl {
			m.bundle = binary.BigEndian.Uint16(body[12:])
		}
	}
	return m, nil
}

const flowStatsLen = 48 // ofp_flow_stats up to the match

// parseFlowStats parses an OFPMP_FLOW reply body: header fields are read
// here; the match and instructions are kept as raw bytes. They alias b
// (capacity capped, so appending to one cannot overwrite the other): b is
// a frame readFrame allocated for this message alone.
func parseFlowStats(b []byte) ([]FlowStat, error) {
	n := 0
	for rest := b; len(rest) >= 2; n++ {
		l := int(binary.BigEndian.Uint16(rest))
		if l == 0 || l > len(rest) {
			break // reported below
		}
		rest = rest[l:]
	}
	out := make([]FlowStat, 0, n)
	for len(b) > 0 {
		if len(b) < flowStatsLen+4 {
			return nil, fmt.Errorf("%w: flow stats entry truncated (%d bytes)", ErrFrame, len(b))
		}
		l := int(binary.BigEndian.Uint16(b))
		if l < flowStatsLen+4 || l > len(b) {
			return nil, fmt.Errorf("%w: flow stats entry length %d (have %d)", ErrFrame, l, len(b))
		}
		e := b[:l:l]
		ml := int(binary.BigEndian.Uint16(e[flowStatsLen+2:]))
		mpad := (ml + 7) / 8 * 8
		if ml < 4 || flowStatsLen+mpad > l {
			return nil, fmt.Errorf("%w: flow stats match length %d in a %d-byte entry", ErrFrame, ml, l)
		}
		out = append(out, FlowStat{
			Table:        e[2],
			Duration:     time.Duration(binary.BigEndian.Uint32(e[4:]))*time.Second + time.Duration(binary.BigEndian.Uint32(e[8:])),
			Priority:     binary.BigEndian.Uint16(e[12:]),
			IdleTimeout:  binary.BigEndian.Uint16(e[14:]),
			HardTimeout:  binary.BigEndian.Uint16(e[16:]),
			Flags:        binary.BigEndian.Uint16(e[18:]),
			Cookie:       binary.BigEndian.Uint64(e[24:]),
			Packets:      binary.BigEndian.Uint64(e[32:]),
			Bytes:        binary.BigEndian.Uint64(e[40:]),
			Match:        e[flowStatsLen : flowStatsLen+ml : flowStatsLen+ml],
			Instructions: e[flowStatsLen+mpad:],
		})
		b = b[l:]
	}
	return out, nil
}

const portLen = 64

func parsePorts(b []byte) ([]Port, error) {
	if len(b)%portLen != 0 {
		return nil, fmt.Errorf("%w: port list of %d bytes is not a multiple of %d", ErrFrame, len(b), portLen)
	}
	var out []Port
	for ; len(b) >= portLen; b = b[portLen:] {
		name := b[16:32]
		if i := strings.IndexByte(string(name), 0); i >= 0 {
			name = name[:i]
		}
		out = append(out, Port{
			No:        binary.BigEndian.Uint32(b),
			HWAddr:    net.HardwareAddr(append([]byte(nil), b[8:14]...)),
			Name:      string(name),
			Config:    binary.BigEndian.Uint32(b[32:]),
			State:     binary.BigEndian.Uint32(b[36:]),
			CurrSpeed: binary.BigEndian.Uint32(b[56:]),
			MaxSpeed:  binary.BigEndian.Uint32(b[60:]),
		})
	}
	return out, nil
}
