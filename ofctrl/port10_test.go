package ofctrl

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLabPortConnNoFlood(t *testing.T) {
	l, dpid := newLabBridge(t)
	l.AddInternalPort(t, "br0", "p1", 0)
	ofport := uint32(l.OFPort(t, "p1"))
	c, ctx := labController(t, Config{Logger: testLogger(t)})
	mgmt := "unix:" + filepath.Join(l.RunDir(), "br0.mgmt")

	if _, err := c.DialPortConn(ctx, mgmt, dpid+1); err == nil || !strings.Contains(err.Error(), "datapath id") {
		t.Fatalf("wrong dpid: err = %v, want a datapath id mismatch", err)
	}
	p, err := c.DialPortConn(ctx, mgmt, dpid)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.DPID() != dpid {
		t.Fatalf("DPID() = %016x, want %016x", p.DPID(), dpid)
	}
	mask := PortConfigNoFlood | PortConfigNoRecv
	prev, err := p.ModPort(ctx, ofport, mask, mask)
	if err != nil {
		t.Fatal(err)
	}
	if prev != 0 {
		t.Fatalf("previous bits = 0x%x, want 0", prev)
	}
	if got := l.PortConfig10(t, "br0", "p1"); !strings.Contains(got, "NO_FLOOD") || !strings.Contains(got, "NO_RECV") {
		t.Fatalf("after ModPort: %q, want NO_RECV and NO_FLOOD", got)
	}
	// Setting again reports the bits as they are now, then clearing
	// restores the port.
	if prev, err = p.ModPort(ctx, ofport, mask, mask); err != nil || prev != mask {
		t.Fatalf("second ModPort: prev 0x%x, err %v; want 0x%x", prev, err, mask)
	}
	if _, err := p.ModPort(ctx, ofport, 0, mask); err != nil {
		t.Fatal(err)
	}
	if got := l.PortConfig10(t, "br0", "p1"); got != "config:     0" {
		t.Fatalf("after clearing: %q, want config 0", got)
	}
	if _, err := p.ModPort(ctx, 4000, mask, mask); err == nil || !strings.Contains(err.Error(), "not on switch") {
		t.Fatalf("unknown port: err = %v", err)
	}
	if _, err := p.ModPort(ctx, 0x10000, mask, mask); err == nil || !strings.Contains(err.Error(), "OpenFlow 1.0") {
		t.Fatalf("32-bit port: err = %v", err)
	}

	// A bridge that does not allow OpenFlow 1.0.
	l.MustVsctl(t, "set", "bridge", "br0", "protocols=OpenFlow13")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = c.DialPortConn(ctx, mgmt, dpid)
		if errors.Is(err, ErrNoOpenFlow10) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !errors.Is(err, ErrNoOpenFlow10) {
		t.Fatalf("bridge with protocols=OpenFlow13: err = %v, want ErrNoOpenFlow10", err)
	}
}

// fakePortSwitch answers an OpenFlow 1.0 handshake on nc with one port
// (number 7), then runs reply on every later request.
func fakePortSwitch(t *testing.T, nc net.Conn, reply func(f []byte) [][]byte) {
	t.Helper()
	go func() {
		defer nc.Close()
		br := bufio.NewReader(nc)
		if !fakeHandshake(nc, br) {
			return
		}
		for {
			f, err := readFrame(br, MaxFrame)
			if err != nil {
				return
			}
			for _, m := range reply(f) {
				if _, err := nc.Write(m); err != nil {
					return
				}
			}
		}
	}()
}

// fakeHandshake plays the switch's side of PortConn's handshake on nc: one
// port, number 7, datapath id 0x2a.
func fakeHandshake(nc net.Conn, br *bufio.Reader) bool {
	// net.Pipe is synchronous: take the client's hello first.
	if _, err := readFrame(br, MaxFrame); err != nil {
		return false
	}
	if _, err := nc.Write(msg10(of10TypeHello, 0, 0)); err != nil {
		return false
	}
	f, err := readFrame(br, MaxFrame)
	if err != nil || f[1] != of10TypeFeaturesRequest {
		return false
	}
	r := msg10(of10TypeFeaturesReply, frameXID(f), of10FeaturesLen-headerLen+of10PhyPortLen)
	r[15] = 0x2a // dpid 0x2a
	port := r[of10FeaturesLen:]
	port[1] = 7
	_, err = nc.Write(r)
	return err == nil
}

// pipePortConn returns a PortConn on one end of a pipe whose other end
// runs fake (which must play fakeHandshake first), handshake done.
func pipePortConn(t *testing.T, c *Controller, fake func(nc net.Conn)) *PortConn {
	t.Helper()
	a, b := net.Pipe()
	go fake(b)
	p := newPortConn(a, MaxFrame, c.log)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.handshake(ctx, 0x2a); err != nil {
		t.Fatal(err)
	}
	p.start()
	return p
}

func TestPortConnSwitchErrors(t *testing.T) {
	defer checkLeaks(t)
	c := New(Config{Logger: testLogger(t)})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The switch rejects the port mod: its error is reported, the cached
	// config is unchanged.
	a, b := net.Pipe()
	fakePortSwitch(t, b, func(f []byte) [][]byte {
		if f[1] != of10TypePortMod {
			return [][]byte{msg10(of10TypeBarrierReply, frameXID(f), 0)}
		}
		e := msg10(of10TypeError, frameXID(f), 4)
		e[9] = 7  // OFPET_PORT_MOD_FAILED
		e[11] = 1 // OFPPMFC_BAD_HW_ADDR
		return [][]byte{e}
	})
	p := newPortConn(a, MaxFrame, c.log)
	if err := p.handshake(ctx, 0x2a); err != nil {
		t.Fatal(err)
	}
	p.start()
	if _, err := p.ModPort(ctx, 7, PortConfigNoFlood, PortConfigNoFlood); err == nil || !strings.Contains(err.Error(), "error type 7 code 1") {
		t.Fatalf("rejected port mod: err = %v", err)
	}
	if p.ports[7].config != 0 {
		t.Fatalf("cached config changed after a failed port mod: 0x%x", p.ports[7].config)
	}
	p.Close()

	// A switch that never answers: the context ends the wait.
	a, b = net.Pipe()
	fakePortSwitch(t, b, func([]byte) [][]byte { return nil })
	p = newPortConn(a, MaxFrame, c.log)
	if err := p.handshake(ctx, 0); err != nil {
		t.Fatal(err)
	}
	p.start()
	sctx, scancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := p.ModPort(sctx, 7, PortConfigNoFlood, PortConfigNoFlood)
	scancel()
	if err == nil {
		t.Fatal("ModPort on a silent switch returned no error")
	}
	p.Close()
}

// An idle PortConn answers the switch's echo requests (Open vSwitch drops a
// connection that does not), and a request after the switch closed the
// connection fails at once instead of writing into it.
func TestPortConnIdle(t *testing.T) {
	defer checkLeaks(t)
	c := New(Config{Logger: testLogger(t)})
	defer c.Close()
	echoed := make(chan []byte, 1)
	closeNow := make(chan struct{})
	p := pipePortConn(t, c, func(nc net.Conn) {
		defer nc.Close()
		br := bufio.NewReader(nc)
		if !fakeHandshake(nc, br) {
			return
		}
		// Asynchronous messages nobody waits for must not block the
		// reader: more than it keeps.
		for i := 0; i < portFrames+10; i++ {
			if _, err := nc.Write(msg10(12 /* PORT_STATUS */, 0, 56)); err != nil {
				return
			}
		}
		if _, err := nc.Write(msg10(of10TypeEchoRequest, 0xe0e0, 0)); err != nil {
			return
		}
		f, err := readFrame(br, MaxFrame)
		if err != nil {
			return
		}
		echoed <- f
		<-closeNow
	})
	defer p.Close()
	select {
	case f := <-echoed:
		if f[1] != of10TypeEchoReply || frameXID(f) != 0xe0e0 {
			t.Fatalf("answer to the echo request: type %d xid %#x, want an echo reply with xid 0xe0e0", f[1], frameXID(f))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("idle PortConn did not answer the echo request")
	}
	select {
	case <-p.Done():
		t.Fatal("Done closed while the connection is up")
	default:
	}
	close(closeNow) // the switch closes the connection
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after the switch closed the connection")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.ModPort(ctx, 7, PortConfigNoFlood, PortConfigNoFlood); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("ModPort on a closed connection: err = %v, want ErrDisconnected", err)
	}
}

// ModPortCounting reads the port's receive count in the same round trip,
// after the change: the stats request follows the barrier.
func TestPortConnCounting(t *testing.T) {
	defer checkLeaks(t)
	c := New(Config{Logger: testLogger(t)})
	defer c.Close()
	var order []uint8
	p := pipePortConn(t, c, func(nc net.Conn) {
		fakePortSwitch(t, nc, func(f []byte) [][]byte {
			order = append(order, f[1])
			switch f[1] {
			case of10TypeBarrierRequest:
				return [][]byte{msg10(of10TypeBarrierReply, frameXID(f), 0)}
			case of10TypeStatsRequest:
				if binary.BigEndian.Uint16(f[8:]) != of10StatsPort || binary.BigEndian.Uint16(f[12:]) != 7 {
					return [][]byte{msg10(of10TypeError, frameXID(f), 4)}
				}
				r := msg10(of10TypeStatsReply, frameXID(f), 4+of10PortStatsLen)
				binary.BigEndian.PutUint16(r[8:], of10StatsPort)
				binary.BigEndian.PutUint16(r[12:], 7)
				binary.BigEndian.PutUint64(r[12+8:], 12345)
				return [][]byte{r}
			}
			return nil
		})
	})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := p.ModPortCounting(ctx, 7, PortConfigNoFlood, PortConfigNoFlood)
	if err != nil || r.RxErr != nil {
		t.Fatalf("ModPortCounting: %v, rx error %v", err, r.RxErr)
	}
	if r.RxPackets != 12345 || r.Prev != 0 {
		t.Fatalf("rx %d, prev 0x%x; want 12345, 0", r.RxPackets, r.Prev)
	}
	if want := []uint8{of10TypePortMod, of10TypeBarrierRequest, of10TypeStatsRequest}; !slices.Equal(order, want) {
		t.Fatalf("messages in order %v, want %v", order, want)
	}
}
