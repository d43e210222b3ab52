package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// A minimal OpenFlow 1.3 client that speaks just enough to time a bundle:
// hello, echo, bundle open/add/commit (the ONF extension OVS implements for
// OpenFlow 1.3) and errors. Everything is encoded before the clock starts,
// so what it measures is the switch's own work plus the socket.

const (
	ofVersion13      = 0x04
	ofptHello        = 0
	ofptError        = 1
	ofptEchoRequest  = 2
	ofptEchoReply    = 3
	ofptExperimenter = 4
	ofptFlowMod      = 14
	ofptBarrierReq   = 20
	ofptBarrierReply = 21

	onfExperimenter     = 0x4f4e4600
	onfBundleControl    = 2300
	onfBundleAdd        = 2301
	bundleOpenRequest   = 0
	bundleOpenReply     = 1
	bundleCommitRequest = 4
	bundleCommitReply   = 5
	bundleFlagsAtomic   = 1
	bundleFlagsOrdered  = 2
)

// flowSpec is one flow in two encodings of the same thing: ovs-ofctl text
// (for add-flows) and an OpenFlow 1.3 FLOW_MOD (ADD) message whose xid is
// set when it is sent.
type flowSpec struct {
	text string
	mod  []byte
	// The fields both encodings are made of.
	cookie uint64
	dst    [4]byte
	port   uint16
}

// benchCookie marks every flow the programming benchmark installs.
const (
	benchCookie     = 0xb5_00_0000_0000_0000
	benchCookieMask = 0xff_00_0000_0000_0000
	benchTable      = 2
)

// syntheticFlows returns n distinct flows shaped like mirror filters: a
// UDP 5-tuple match in table 2 that continues to table 3.
//
//	table=2,priority=1000,cookie=0xb5000000000000NN,udp,nw_dst=10.X.Y.Z,tp_dst=P,actions=goto_table:3
func syntheticFlows(n int) []flowSpec {
	out := make([]flowSpec, n)
	for i := range n {
		cookie := uint64(benchCookie) | uint64(i)
		dst := [4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}
		port := uint16(1000 + i%1000)
		out[i] = flowSpec{
			cookie: cookie, dst: dst, port: port,
			text: fmt.Sprintf("table=%d,priority=1000,cookie=%#x,udp,nw_dst=%d.%d.%d.%d,tp_dst=%d,actions=goto_table:%d",
				benchTable, cookie, dst[0], dst[1], dst[2], dst[3], port, benchTable+1),
			mod: encodeFlowMod(cookie, benchTable, 1000, dst, port, benchTable+1),
		}
	}
	return out
}

// encodeFlowMod encodes an OFPFC_ADD flow mod: eth_type=0x0800,
// ip_proto=17, ipv4_dst, udp_dst, instruction goto_table.
func encodeFlowMod(cookie uint64, table uint8, prio uint16, dst [4]byte, port uint16, next uint8) []byte {
	b := make([]byte, 0, 88)
	b = append(b, ofVersion13, ofptFlowMod, 0, 0, 0, 0, 0, 0) // length, xid later
	b = binary.BigEndian.AppendUint64(b, cookie)
	b = binary.BigEndian.AppendUint64(b, 0) // cookie mask
	b = append(b, table, 0)                 // table, OFPFC_ADD
	b = binary.BigEndian.AppendUint16(b, 0) // idle timeout
	b = binary.BigEndian.AppendUint16(b, 0) // hard timeout
	b = binary.BigEndian.AppendUint16(b, prio)
	b = binary.BigEndian.AppendUint32(b, 0xffffffff) // buffer id: none
	b = binary.BigEndian.AppendUint32(b, 0xffffffff) // out port: any
	b = binary.BigEndian.AppendUint32(b, 0xffffffff) // out group: any
	b = binary.BigEndian.AppendUint16(b, 0)          // flags
	b = append(b, 0, 0)
	// ofp_match, OXM: eth_type, ip_proto, ipv4_dst, udp_dst.
	var oxm []byte
	oxm = binary.BigEndian.AppendUint32(oxm, 0x80000a02)
	oxm = binary.BigEndian.AppendUint16(oxm, 0x0800)
	oxm = binary.BigEndian.AppendUint32(oxm, 0x80001401)
	oxm = append(oxm, 17)
	oxm = binary.BigEndian.AppendUint32(oxm, 0x80001804)
	oxm = append(oxm, dst[:]...)
	oxm = binary.BigEndian.AppendUint32(oxm, 0x80002002)
	oxm = binary.BigEndian.AppendUint16(oxm, port)
	b = binary.BigEndian.AppendUint16(b, 1) // OFPMT_OXM
	b = binary.BigEndian.AppendUint16(b, uint16(4+len(oxm)))
	b = append(b, oxm...)
	for (len(b)-48)%8 != 0 {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint16(b, 1) // OFPIT_GOTO_TABLE
	b = binary.BigEndian.AppendUint16(b, 8)
	b = append(b, next, 0, 0, 0)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

func ofHeader(typ uint8, length int, xid uint32) []byte {
	b := []byte{ofVersion13, typ, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(b[2:], uint16(length))
	binary.BigEndian.PutUint32(b[4:], xid)
	return b
}

func bundleControl(xid, id uint32, typ uint16) []byte {
	b := ofHeader(ofptExperimenter, 24, xid)
	b = binary.BigEndian.AppendUint32(b, onfExperimenter)
	b = binary.BigEndian.AppendUint32(b, onfBundleControl)
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, bundleFlagsAtomic|bundleFlagsOrdered)
	return b
}

// bundleAdd wraps msg (its xid overwritten: OVS wants the inner and outer
// xids equal).
func bundleAdd(xid, id uint32, msg []byte) []byte {
	b := ofHeader(ofptExperimenter, 24+len(msg), xid)
	b = binary.BigEndian.AppendUint32(b, onfExperimenter)
	b = binary.BigEndian.AppendUint32(b, onfBundleAdd)
	b = binary.BigEndian.AppendUint32(b, id)
	b = append(b, 0, 0)
	b = binary.BigEndian.AppendUint16(b, bundleFlagsAtomic|bundleFlagsOrdered)
	start := len(b)
	b = append(b, msg...)
	binary.BigEndian.PutUint32(b[start+4:], xid)
	return b
}

// encodeBundle returns open + one add per mod + commit, and the commit's xid.
func encodeBundle(mods [][]byte, id uint32) ([]byte, uint32) {
	size := 48
	for _, m := range mods {
		size += 24 + len(m)
	}
	buf := make([]byte, 0, size)
	xid := uint32(1)
	buf = append(buf, bundleControl(xid, id, bundleOpenRequest)...)
	for _, m := range mods {
		xid++
		buf = append(buf, bundleAdd(xid, id, m)...)
	}
	xid++
	buf = append(buf, bundleControl(xid, id, bundleCommitRequest)...)
	return buf, xid
}

// ofError is an OFPT_ERROR the switch sent.
type ofError struct {
	xid       uint32
	typ, code uint16
}

func (e *ofError) Error() string {
	return fmt.Sprintf("switch error type %d code %d (xid %d)", e.typ, e.code, e.xid)
}

// rawConn is a connected, version-negotiated OpenFlow 1.3 connection.
type rawConn struct {
	c       net.Conn
	r       *bufio.Reader
	bundles uint32 // bundles sent (the next bundle's id)
}

// dialRaw connects to a unix socket (e.g. <rundir>/br0.mgmt) and exchanges
// hellos.
func dialRaw(ctx context.Context, path string) (*rawConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	rc := &rawConn{c: c, r: bufio.NewReaderSize(c, 1<<16)}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write(ofHeader(ofptHello, 8, 0)); err != nil {
		c.Close()
		return nil, err
	}
	h, _, err := rc.read()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("hello from %s: %w", path, err)
	}
	if h[1] != ofptHello {
		c.Close()
		return nil, fmt.Errorf("hello from %s: got message type %d", path, h[1])
	}
	return rc, nil
}

func (rc *rawConn) Close() error { return rc.c.Close() }

// read returns one message: its 8-byte header and body.
func (rc *rawConn) read() ([]byte, []byte, error) {
	h := make([]byte, 8)
	if _, err := io.ReadFull(rc.r, h); err != nil {
		return nil, nil, err
	}
	n := int(binary.BigEndian.Uint16(h[2:]))
	if n < 8 {
		return nil, nil, fmt.Errorf("bad message length %d", n)
	}
	body := make([]byte, n-8)
	if _, err := io.ReadFull(rc.r, body); err != nil {
		return nil, nil, err
	}
	if h[0] != ofVersion13 && h[1] != ofptHello {
		return nil, nil, fmt.Errorf("switch speaks OpenFlow version %#x, want 1.3", h[0])
	}
	return h, body, nil
}

// waitFor reads until the reply with xid whose body satisfies done arrives,
// answering echo requests; an error message with any xid ends it.
func (rc *rawConn) waitFor(xid uint32, done func(typ uint8, body []byte) bool) error {
	for {
		h, body, err := rc.read()
		if err != nil {
			return err
		}
		switch h[1] {
		case ofptEchoRequest:
			reply := append(ofHeader(ofptEchoReply, len(h)+len(body), binary.BigEndian.Uint32(h[4:])), body...)
			if _, err := rc.c.Write(reply); err != nil {
				return err
			}
			continue
		case ofptError:
			e := &ofError{xid: binary.BigEndian.Uint32(h[4:])}
			if len(body) >= 4 {
				e.typ, e.code = binary.BigEndian.Uint16(body), binary.BigEndian.Uint16(body[2:])
			}
			return e
		}
		if binary.BigEndian.Uint32(h[4:]) == xid && done(h[1], body) {
			return nil
		}
	}
}

// bundleTiming is what one raw bundle took.
type bundleTiming struct {
	Total  time.Duration // first byte written → commit reply
	Commit time.Duration // last byte written → commit reply
}

// rawBundle installs mods as one atomic bundle on a new connection and
// times it (the connection set-up is not timed).
func rawBundle(ctx context.Context, path string, mods [][]byte) (bundleTiming, error) {
	rc, err := dialRaw(ctx, path)
	if err != nil {
		return bundleTiming{}, err
	}
	defer rc.Close()
	return rc.bundle(ctx, mods)
}

// bundle installs mods as one atomic bundle and times it. The write
// happens in its own goroutine so replies and echo requests are read while
// a large bundle is still being written. The connection can be reused.
func (rc *rawConn) bundle(ctx context.Context, mods [][]byte) (bundleTiming, error) {
	rc.bundles++
	buf, commitXID := encodeBundle(mods, rc.bundles)
	if dl, ok := ctx.Deadline(); ok {
		_ = rc.c.SetDeadline(dl)
	}
	wrote := make(chan time.Time, 1)
	werr := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := rc.c.Write(buf)
		wrote <- time.Now()
		werr <- err
	}()
	err := rc.waitFor(commitXID, func(typ uint8, body []byte) bool {
		return typ == ofptExperimenter && len(body) >= 14 &&
			binary.BigEndian.Uint32(body[4:]) == onfBundleControl &&
			binary.BigEndian.Uint16(body[12:]) == bundleCommitReply
	})
	end := time.Now()
	if err != nil {
		rc.c.Close() // unblocks the writer
		<-werr
		return bundleTiming{}, fmt.Errorf("bundle of %d flows: %w", len(mods), err)
	}
	if err := <-werr; err != nil {
		return bundleTiming{}, fmt.Errorf("bundle of %d flows: write: %w", len(mods), err)
	}
	w := <-wrote
	return bundleTiming{Total: end.Sub(start), Commit: end.Sub(w)}, nil
}
