package ofctrl

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// OpenFlow 1.1 dropped the OFPPC_NO_FLOOD port config bit, but Open vSwitch
// still honours it (NORMAL's floods and the FLOOD action skip such a port)
// and still accepts it in an OpenFlow 1.0 PORT_MOD. PortConn is a small
// OpenFlow 1.0 connection for that one purpose, next to the OpenFlow 1.3
// connection that carries everything else.

// OpenFlow 1.0 port config bits (ofp_port_config).
const (
	PortConfigDown       uint32 = 1 << 0
	PortConfigNoRecv     uint32 = 1 << 2
	PortConfigNoFlood    uint32 = 1 << 4
	PortConfigNoFwd      uint32 = 1 << 5
	PortConfigNoPacketIn uint32 = 1 << 6
)

const (
	of10Version             = 1
	of10TypeHello           = 0
	of10TypeError           = 1
	of10TypeEchoRequest     = 2
	of10TypeEchoReply       = 3
	of10TypeFeaturesRequest = 5
	of10TypeFeaturesReply   = 6
	of10TypePortMod         = 15
	of10TypeStatsRequest    = 16
	of10TypeStatsReply      = 17
	of10TypeBarrierRequest  = 18
	of10TypeBarrierReply    = 19
	of10FeaturesLen         = 32
	of10PhyPortLen          = 48
	of10PortModLen          = 32
	of10StatsPort           = 4      // OFPST_PORT
	of10PortStatsLen        = 104    // struct ofp_port_stats
	of10PortMax             = 0xff00 // ports from here on are reserved
)

// ErrNoOpenFlow10 reports a switch that does not accept OpenFlow 1.0 (the
// bridge's protocols column leaves it out).
var ErrNoOpenFlow10 = errors.New("switch does not accept OpenFlow 1.0")

// PortConn is an OpenFlow 1.0 connection to one switch, for port config
// bits only OpenFlow 1.0 can set (PortConfigNoFlood). It is safe for
// concurrent use (requests take turns). A reader goroutine answers the
// switch's echo requests, so an idle connection stays up for the next
// request (Open vSwitch drops a connection that leaves its echo requests
// unanswered), and notices at once when the switch closes it (Done).
// Close it when done.
type PortConn struct {
	nc   net.Conn
	br   *bufio.Reader // the handshake's; the reader's after start
	dpid uint64
	max  int
	log  logrus.FieldLogger

	mu    sync.Mutex // one request at a time; guards ports and xid
	ports map[uint16]port10
	xid   uint32

	wmu     sync.Mutex    // writes: requests and echo replies
	frames  chan []byte   // messages from the switch other than echo requests
	done    chan struct{} // closed when the reader ends
	rerr    error         // why the reader ended, set before done is closed
	started bool
}

type port10 struct {
	hw     [6]byte
	config uint32
}

// portFrames bounds the messages kept for a request; asynchronous ones
// (port status) beyond it are dropped, nothing waits for them.
const portFrames = 64

func newPortConn(nc net.Conn, max int, log logrus.FieldLogger) *PortConn {
	return &PortConn{nc: nc, br: bufio.NewReaderSize(nc, 16*1024), max: max, log: log,
		frames: make(chan []byte, portFrames), done: make(chan struct{})}
}

// DialPortConn connects to target (unix:, tcp: or ssl:, a switch's passive
// listener), negotiates OpenFlow 1.0 and reads the switch's ports. If dpid
// is not zero the switch must have that datapath id. A switch that only
// accepts later versions gives ErrNoOpenFlow10.
func (c *Controller) DialPortConn(ctx context.Context, targetStr string, dpid uint64) (*PortConn, error) {
	t, err := parseTarget(targetStr, false)
	if err != nil {
		return nil, err
	}
	if t.scheme == "ssl" && c.cfg.TLS == nil {
		return nil, fmt.Errorf("target %q: ssl needs Config.TLS", targetStr)
	}
	nc, err := c.dialOnce(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("openflow 1.0 connection to %s: %w", t, err)
	}
	p := newPortConn(nc, c.cfg.MaxFrame, c.log.WithField("remote", t.String()))
	if err := p.handshake(ctx, dpid); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("openflow 1.0 connection to %s: %w", t, err)
	}
	p.start()
	return p, nil
}

// DPID returns the switch's datapath id.
func (p *PortConn) DPID() uint64 { return p.dpid }

// Done is closed once the connection is down (the switch closed it, it
// broke, or Close was called); a request on it then fails at once.
func (p *PortConn) Done() <-chan struct{} { return p.done }

// Close closes the connection and waits for its reader to end.
func (p *PortConn) Close() error {
	err := p.nc.Close()
	if p.started {
		<-p.done
	} else {
		select {
		case <-p.done:
		default:
			close(p.done)
		}
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// start runs the reader: after the handshake, every message comes in
// through it.
func (p *PortConn) start() {
	p.started = true
	go p.read()
}

func (p *PortConn) read() {
	defer close(p.done)
	defer p.nc.Close()
	for {
		f, err := readFrame(p.br, p.max)
		if err != nil {
			p.rerr = err
			if !errors.Is(err, net.ErrClosed) {
				p.log.WithError(err).WithField("dpid", fmt.Sprintf("%016x", p.dpid)).Debug("OpenFlow 1.0 connection down")
			}
			return
		}
		if f[1] == of10TypeEchoRequest {
			r := append([]byte(nil), f...)
			r[1] = of10TypeEchoReply
			if err := p.write(context.Background(), r); err != nil {
				continue // the next read fails too
			}
			continue
		}
		select {
		case p.frames <- f:
		default: // nothing waits for it (see portFrames)
		}
	}
}

// write sends b, bounded by ctx.
func (p *PortConn) write(ctx context.Context, b []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		_ = p.nc.SetWriteDeadline(dl)
		defer func() { _ = p.nc.SetWriteDeadline(time.Time{}) }()
	}
	stop := context.AfterFunc(ctx, func() { _ = p.nc.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	_, err := p.nc.Write(b)
	return err
}

// down describes why the connection is down.
func (p *PortConn) down() error {
	if p.rerr == nil || errors.Is(p.rerr, net.ErrClosed) {
		return fmt.Errorf("openflow 1.0 connection: %w", ErrDisconnected)
	}
	return fmt.Errorf("openflow 1.0 connection: %w: %w", ErrDisconnected, p.rerr)
}

// guard applies ctx's deadline and cancellation to the connection until
// the returned function is called (the handshake, before the reader runs).
func (p *PortConn) guard(ctx context.Context) func() {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Time{}
	}
	_ = p.nc.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = p.nc.SetDeadline(time.Unix(1, 0)) })
	return func() {
		stop()
		_ = p.nc.SetDeadline(time.Time{})
	}
}

func (p *PortConn) handshake(ctx context.Context, dpid uint64) error {
	defer p.guard(ctx)()
	// The features request goes out with the hello: one round trip.
	p.xid++
	if _, err := p.nc.Write(append(msg10(of10TypeHello, 0, 0), msg10(of10TypeFeaturesRequest, p.xid, 0)...)); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	f, err := readFrame(p.br, p.max)
	if err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	switch {
	case f[1] == of10TypeError:
		return fmt.Errorf("%w: %s", ErrNoOpenFlow10, errorText10(f))
	case f[1] != of10TypeHello:
		return fmt.Errorf("expected HELLO, got message type %d (version 0x%02x)", f[1], f[0])
	}
	if ok, offered := helloSupports(f, of10Version); !ok {
		return fmt.Errorf("%w (it offers %s)", ErrNoOpenFlow10, offered)
	}
	f, err = p.awaitHandshake(p.xid, of10TypeFeaturesReply)
	if err != nil {
		return fmt.Errorf("features request: %w", err)
	}
	if len(f) < of10FeaturesLen {
		return fmt.Errorf("%w: features reply of %d bytes", ErrFrame, len(f))
	}
	p.dpid = binary.BigEndian.Uint64(f[8:])
	if dpid != 0 && p.dpid != dpid {
		return fmt.Errorf("switch has datapath id %016x, want %016x", p.dpid, dpid)
	}
	p.ports = map[uint16]port10{}
	for b := f[of10FeaturesLen:]; len(b) >= of10PhyPortLen; b = b[of10PhyPortLen:] {
		var pt port10
		copy(pt.hw[:], b[2:8])
		pt.config = binary.BigEndian.Uint32(b[24:])
		p.ports[binary.BigEndian.Uint16(b)] = pt
	}
	return nil
}

// ErrRefused reports an OpenFlow error reply to a PortConn request.
var ErrRefused = errors.New("switch refused the request")

// awaitHandshake reads messages until the reply of type typ with xid,
// answering echo requests and skipping asynchronous messages (before the
// reader runs). An error message with xid is returned as an error wrapping
// ErrRefused.
func (p *PortConn) awaitHandshake(xid uint32, typ uint8) ([]byte, error) {
	for {
		f, err := readFrame(p.br, p.max)
		if err != nil {
			return nil, err
		}
		switch {
		case f[1] == of10TypeEchoRequest:
			r := append([]byte(nil), f...)
			r[1] = of10TypeEchoReply
			if _, err := p.nc.Write(r); err != nil {
				return nil, fmt.Errorf("send echo reply: %w", err)
			}
		case frameXID(f) != xid:
		case f[1] == of10TypeError:
			return nil, fmt.Errorf("%w: %s", ErrRefused, errorText10(f))
		case f[1] == typ:
			return f, nil
		}
	}
}

// ModPort sets the config bits in mask of the port with OpenFlow 1.3 port
// number port to those of config, waits until the switch has applied the
// change (a barrier) and returns the port's bits before the change. On a
// connection that is down (Done) it fails at once with ErrDisconnected.
func (p *PortConn) ModPort(ctx context.Context, port uint32, config, mask uint32) (prev uint32, err error) {
	r, err := p.modPort(ctx, port, config, mask, false)
	return r.Prev, err
}

// PortMod is what ModPortCounting reports.
type PortMod struct {
	Prev      uint32 // the port's bits in mask before the change
	RxPackets uint64 // packets the port had received once the change was applied
	RxErr     error  // why RxPackets could not be read (the change stands)
}

// ModPortCounting is ModPort, also reading in the same round trip the
// number of packets the port has received, once the change is applied.
func (p *PortConn) ModPortCounting(ctx context.Context, port uint32, config, mask uint32) (PortMod, error) {
	return p.modPort(ctx, port, config, mask, true)
}

func (p *PortConn) modPort(ctx context.Context, port uint32, config, mask uint32, count bool) (r PortMod, err error) {
	p16, ok := port10No(port)
	if !ok {
		return r, fmt.Errorf("port %d: not representable in OpenFlow 1.0", port)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pt, ok := p.ports[p16]
	if !ok {
		return r, fmt.Errorf("port %d: not on switch %016x", port, p.dpid)
	}
	select {
	case <-p.done:
		return r, fmt.Errorf("port %d: %w", port, p.down())
	default:
	}
	for drained := false; !drained; { // replies to a request given up on
		select {
		case <-p.frames:
		default:
			drained = true
		}
	}
	modXID, barrierXID, statsXID := p.xid+1, p.xid+2, p.xid+3
	p.xid += 3
	m := msg10(of10TypePortMod, modXID, of10PortModLen-headerLen)
	binary.BigEndian.PutUint16(m[8:], p16)
	copy(m[10:16], pt.hw[:])
	binary.BigEndian.PutUint32(m[16:], config&mask)
	binary.BigEndian.PutUint32(m[20:], mask)
	// advertise (m[24:28]) zero: leave the advertised features alone.
	m = append(m, msg10(of10TypeBarrierRequest, barrierXID, 0)...)
	if count {
		// Processed after the barrier: the count is of the changed port.
		st := msg10(of10TypeStatsRequest, statsXID, 4+8)
		binary.BigEndian.PutUint16(st[8:], of10StatsPort)
		binary.BigEndian.PutUint16(st[12:], p16)
		m = append(m, st...)
	}
	if err := p.write(ctx, m); err != nil {
		return r, fmt.Errorf("port %d: send port mod: %w", port, err)
	}
	// The port mod's error, if any, comes before the barrier reply, and
	// that before the stats reply.
	applied := false
	for {
		var f []byte
		select {
		case f = <-p.frames:
		case <-p.done:
			err = p.down()
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			if applied {
				r.RxErr = fmt.Errorf("port %d: port stats: %w", port, err)
				return r, nil
			}
			return r, fmt.Errorf("port %d: port mod: %w", port, err)
		}
		switch xid := frameXID(f); {
		case f[1] == of10TypeError && (xid == modXID || xid == barrierXID):
			return r, fmt.Errorf("port %d: port mod: %w: %s", port, ErrRefused, errorText10(f))
		case f[1] == of10TypeBarrierReply && xid == barrierXID:
			r.Prev = pt.config & mask
			pt.config = pt.config&^mask | config&mask
			p.ports[p16] = pt
			p.log.WithFields(logrus.Fields{"dpid": fmt.Sprintf("%016x", p.dpid), "port": port,
				"config": fmt.Sprintf("0x%x", config&mask), "mask": fmt.Sprintf("0x%x", mask)}).Debug("port config set (OpenFlow 1.0)")
			if !count {
				return r, nil
			}
			applied = true
		case !applied || xid != statsXID:
		case f[1] == of10TypeError:
			r.RxErr = fmt.Errorf("port %d: port stats: %w: %s", port, ErrRefused, errorText10(f))
			return r, nil
		case f[1] == of10TypeStatsReply:
			r.RxPackets, r.RxErr = portRx10(f, p16)
			return r, nil
		}
	}
}

// portRx10 reads port's rx_packets from an OpenFlow 1.0 port stats reply.
func portRx10(f []byte, port uint16) (uint64, error) {
	if len(f) < headerLen+4 || binary.BigEndian.Uint16(f[8:]) != of10StatsPort {
		return 0, fmt.Errorf("%w: not a port stats reply", ErrFrame)
	}
	for b := f[headerLen+4:]; len(b) >= of10PortStatsLen; b = b[of10PortStatsLen:] {
		if binary.BigEndian.Uint16(b) == port {
			return binary.BigEndian.Uint64(b[8:]), nil
		}
	}
	return 0, fmt.Errorf("port stats reply without port %d", port)
}

// port10No maps an OpenFlow 1.3 port number to OpenFlow 1.0's 16 bits.
func port10No(port uint32) (uint16, bool) {
	switch {
	case port < of10PortMax:
		return uint16(port), true
	case port >= 0xffffff00:
		return uint16(port - 0xffff0000), true
	}
	return 0, false
}

func msg10(typ uint8, xid uint32, body int) []byte { return newMsgV(of10Version, typ, xid, body) }

// errorText10 describes an OpenFlow error message (the type/code layout is
// the same in every version), with the text OVS appends to HELLO_FAILED.
func errorText10(f []byte) string {
	if len(f) < headerLen+4 {
		return fmt.Sprintf("malformed error message of %d bytes", len(f))
	}
	typ, code := binary.BigEndian.Uint16(f[8:]), binary.BigEndian.Uint16(f[10:])
	s := fmt.Sprintf("error type %d code %d", typ, code)
	if typ == 0 && len(f) > headerLen+4 { // HELLO_FAILED carries ASCII text
		s += ": " + string(f[headerLen+4:])
	}
	return s
}
