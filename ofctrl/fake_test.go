package ofctrl

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"
)

// fakeSwitch is the switch end of a net.Pipe connected to a Controller.
type fakeSwitch struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

// attach connects a fake switch to c through net.Pipe without handshaking.
func attach(t *testing.T, c *Controller) *fakeSwitch {
	t.Helper()
	a, b := net.Pipe()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.serve(c.ctx, a, "pipe")
	}()
	fs := &fakeSwitch{t: t, nc: b, br: bufio.NewReader(b)}
	t.Cleanup(func() { b.Close() })
	return fs
}

// connect attaches a fake switch and completes HELLO/FEATURES for dpid.
func connect(t *testing.T, c *Controller, dpid uint64) *fakeSwitch {
	t.Helper()
	fs := attach(t, c)
	h := fs.read()
	if h[1] != typeHello || h[0] != ofVersion {
		t.Fatalf("first message %x, want an OpenFlow 1.3 HELLO", h)
	}
	fs.write(helloMsg(1))
	fr := fs.read()
	if fr[1] != typeFeaturesRequest {
		t.Fatalf("got %s, want FEATURES_REQUEST", msgTypeName(fr[1]))
	}
	fs.write(featuresReply(frameXID(fr), dpid))
	if sa := fs.read(); sa[1] != typeSetAsync || len(sa) != 32 || binary.BigEndian.Uint32(sa[16:]) != 7 || binary.BigEndian.Uint32(sa[8:]) != 0 {
		t.Fatalf("after FEATURES_REPLY got %x, want SET_ASYNC for port status only", sa)
	}
	return fs
}

func featuresReply(xid uint32, dpid uint64) []byte {
	b := newMsg(typeFeaturesReply, xid, 24)
	binary.BigEndian.PutUint64(b[8:], dpid)
	b[20] = 254 // n_tables
	return b
}

// read returns the next message from the controller, skipping echo
// requests (which it answers) unless raw.
func (fs *fakeSwitch) read() []byte {
	fs.t.Helper()
	for {
		f := fs.readRaw()
		if f[1] == typeEchoRequest {
			r := append([]byte(nil), f...)
			r[1] = typeEchoReply
			fs.write(r)
			continue
		}
		return f
	}
}

func (fs *fakeSwitch) readRaw() []byte {
	fs.t.Helper()
	_ = fs.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := readFrame(fs.br, MaxFrame)
	if err != nil {
		fs.t.Fatalf("fake switch read: %v", err)
	}
	return f
}

// tryRead is read that reports an error instead of failing.
func (fs *fakeSwitch) tryRead(d time.Duration) ([]byte, error) {
	_ = fs.nc.SetReadDeadline(time.Now().Add(d))
	return readFrame(fs.br, MaxFrame)
}

func (fs *fakeSwitch) write(b []byte) {
	fs.t.Helper()
	_ = fs.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := fs.nc.Write(b); err != nil {
		fs.t.Fatalf("fake switch write: %v", err)
	}
}

// reply builds a message of type typ answering request req.
func reply(req []byte, typ uint8, body []byte) []byte {
	b := newMsg(typ, frameXID(req), len(body))
	copy(b[8:], body)
	return b
}

// flowStatsReply builds a MULTIPART_REPLY (OFPMP_FLOW) with one entry per cookie.
func flowStatsReply(xid uint32, more bool, table uint8, cookies ...uint64) []byte {
	var body []byte
	body = append(body, 0, mpFlow, 0, 0, 0, 0, 0, 0)
	if more {
		body[3] = mpReplyMore
	}
	for _, ck := range cookies {
		e := make([]byte, flowStatsLen+8+8)
		binary.BigEndian.PutUint16(e, uint16(len(e)))
		e[2] = table
		binary.BigEndian.PutUint32(e[4:], 3)   // duration 3s
		binary.BigEndian.PutUint32(e[8:], 500) // +500ns
		binary.BigEndian.PutUint16(e[12:], 100)
		binary.BigEndian.PutUint64(e[24:], ck)
		binary.BigEndian.PutUint64(e[32:], ck*2) // packets
		binary.BigEndian.PutUint64(e[40:], ck*3) // bytes
		binary.BigEndian.PutUint16(e[48:], 1)    // OXM match, empty
		binary.BigEndian.PutUint16(e[50:], 4)
		// instructions: goto_table 1
		binary.BigEndian.PutUint16(e[56:], 1)
		binary.BigEndian.PutUint16(e[58:], 8)
		e[60] = 1
		body = append(body, e...)
	}
	b := newMsg(typeMultipartReply, xid, len(body))
	copy(b[8:], body)
	return b
}

func newTestController(t *testing.T, cfg Config) *Controller {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	c := New(cfg)
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func bufioReader(nc net.Conn) *bufio.Reader { return bufio.NewReader(nc) }
