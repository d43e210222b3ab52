package ofctrl

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/contiv/libOpenflow/openflow13"
	"github.com/sirupsen/logrus"

	"github.com/flowspan/flowspan/ofctrl/ofpx"
)

func TestHandshake(t *testing.T) {
	checkLeaks(t)
	c := newTestController(t, Config{})
	connect(t, c, 0xabcdef)
	ev := waitEvent[Connected](t, c, 5*time.Second)
	if ev.DPID != 0xabcdef || ev.Remote != "pipe" {
		t.Fatalf("Connected = %+v", ev)
	}
	sw, err := c.Switch(testCtx(t), 0xabcdef)
	if err != nil || sw.DPID() != 0xabcdef {
		t.Fatalf("Switch() = %v, %v", sw, err)
	}
	if got := c.Connected(); len(got) != 1 || got[0] != 0xabcdef {
		t.Errorf("Connected() = %v", got)
	}
	c.Close()
	if _, err := c.Switch(testCtx(t), 0xabcdef); !errors.Is(err, ErrClosed) {
		t.Errorf("Switch after Close: %v, want ErrClosed", err)
	}
	if _, ok := <-c.Events(); ok {
		// drain: the channel must be closed eventually
		for range c.Events() {
		}
	}
}

func TestSwitchWaitsForConnection(t *testing.T) {
	checkLeaks(t)
	c := newTestController(t, Config{})
	done := make(chan error, 1)
	go func() {
		_, err := c.Switch(testCtx(t), 7)
		done <- err
	}()
	connect(t, c, 7)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Switch(ctx, 8); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Switch(8) = %v, want deadline exceeded", err)
	}
}

func TestVersionNegotiation(t *testing.T) {
	hello := func(version uint8, bitmap uint32) []byte {
		if bitmap == 0 {
			b := newMsg(typeHello, 1, 0)
			b[0] = version
			return b
		}
		b := helloMsg(1)
		b[0] = version
		binary.BigEndian.PutUint32(b[12:], bitmap)
		return b
	}
	tests := []struct {
		name  string
		hello []byte
		ok    bool
	}{
		{"1.0 without bitmap", hello(1, 0), false},
		{"1.5 bitmap without 1.3", hello(6, 1<<1|1<<6), false},
		{"1.5 bitmap with 1.3", hello(6, 1<<4|1<<6), true},
		{"1.3 without bitmap", hello(4, 0), true},
		{"1.4 without bitmap", hello(5, 0), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			c := newTestController(t, Config{})
			fs := attach(t, c)
			fs.read() // our HELLO
			fs.write(tt.hello)
			f := fs.read()
			if tt.ok {
				if f[1] != typeFeaturesRequest {
					t.Fatalf("got %s, want FEATURES_REQUEST", msgTypeName(f[1]))
				}
				return
			}
			m, err := parseMessage(f)
			if err != nil || m.err == nil || m.err.Type != 0 || m.err.Code != 0 {
				t.Fatalf("got %x (%v), want HELLO_FAILED/INCOMPATIBLE", f, err)
			}
			if !strings.Contains(string(m.err.Data), "1.3") {
				t.Errorf("HELLO_FAILED text %q does not explain", m.err.Data)
			}
			if _, err := fs.tryRead(5 * time.Second); err == nil {
				t.Fatal("connection still open after HELLO_FAILED")
			}
			if s := c.Stats(); s.HandshakeFail != 1 || s.Connections != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

func TestEcho(t *testing.T) {
	t.Run("answers with payload", func(t *testing.T) {
		checkLeaks(t)
		c := newTestController(t, Config{})
		fs := connect(t, c, 1)
		req := newMsg(typeEchoRequest, 77, 3)
		copy(req[8:], "abc")
		fs.write(req)
		r := fs.readRaw()
		if r[1] != typeEchoReply || frameXID(r) != 77 || !bytes.Equal(r[8:], []byte("abc")) {
			t.Fatalf("echo reply %x", r)
		}
	})
	t.Run("answered echoes keep the connection", func(t *testing.T) {
		checkLeaks(t)
		c := newTestController(t, Config{EchoInterval: 5 * time.Millisecond, EchoMisses: 2})
		fs := connect(t, c, 1)
		for i := 0; i < 10; i++ {
			f := fs.readRaw()
			if f[1] != typeEchoRequest {
				t.Fatalf("got %s", msgTypeName(f[1]))
			}
			fs.write(reply(f, typeEchoReply, f[8:]))
		}
		if s := c.Stats(); s.Disconnects != 0 {
			t.Fatalf("disconnected although echoes were answered: %+v", s)
		}
	})
	t.Run("missed echoes drop the connection", func(t *testing.T) {
		checkLeaks(t)
		c := newTestController(t, Config{EchoInterval: 5 * time.Millisecond, EchoMisses: 3})
		fs := connect(t, c, 9)
		n := 0
		for {
			f, err := fs.tryRead(5 * time.Second)
			if err != nil {
				break
			}
			if f[1] == typeEchoRequest {
				n++
			}
		}
		if n != 3 {
			t.Errorf("%d echo requests before dropping, want 3", n)
		}
		ev := waitEvent[Disconnected](t, c, 5*time.Second)
		if ev.DPID != 9 || !errors.Is(ev.Err, ErrEchoTimeout) {
			t.Fatalf("Disconnected = %+v, want ErrEchoTimeout", ev)
		}
	})
}

func TestSwitchErrorMapping(t *testing.T) {
	checkLeaks(t)
	c := newTestController(t, Config{})
	fs := connect(t, c, 0x42)
	sw := mustSwitch(t, c, 0x42)
	done := make(chan error, 1)
	go func() { done <- sw.Barrier(testCtx(t)) }()
	req := fs.read()
	if req[1] != typeBarrierRequest {
		t.Fatalf("got %s", msgTypeName(req[1]))
	}
	fs.write(errorMsg(frameXID(req), 1, 6, req)) // OFPET_BAD_REQUEST/OFPBRC_BAD_LEN
	err := <-done
	var se *SwitchError
	if !errors.As(err, &se) || se.Type != 1 || se.Code != 6 || se.DPID != 0x42 || !bytes.Equal(se.Data, req) {
		t.Fatalf("Barrier error = %#v", err)
	}
	for _, want := range []string{"OFPET_BAD_REQUEST/OFPBRC_BAD_LEN", "barrier request", "0000000000000042"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if !errors.Is(err, &SwitchError{Type: 1, Code: 6}) {
		t.Error("errors.Is by type/code failed")
	}
	// Experimenter (bundle) errors are named too.
	e := &SwitchError{Type: 0xffff, Code: 2313, Experimenter: onfExperimenter}
	if !strings.Contains(e.Error(), "ONFBFC_MSG_FAILED") {
		t.Errorf("experimenter error name: %s", e)
	}
}

// TestConcurrentRequestsOutOfOrder runs many FlowStats requests at once;
// the fake switch answers them in random order and in several parts.
func TestConcurrentRequestsOutOfOrder(t *testing.T) {
	checkLeaks(t)
	c := newTestController(t, Config{})
	fs := connect(t, c, 3)
	sw := mustSwitch(t, c, 3)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ck := uint64(1000 + i)
			st, err := sw.FlowStats(testCtx(t), FlowFilter{Table: TableAll, Cookie: ck, CookieMask: ^uint64(0)})
			if err != nil {
				errs <- err
				return
			}
			if len(st) != 3 {
				errs <- fmt.Errorf("request %d: %d flows, want 3 (stitched from parts)", i, len(st))
				return
			}
			for _, s := range st {
				if s.Cookie != ck || s.Packets != 2*ck || s.Bytes != 3*ck || s.Priority != 100 ||
					s.Duration != 3*time.Second+500 || len(s.Match) != 4 || len(s.Instructions) != 8 {
					errs <- fmt.Errorf("request %d: got %+v", i, s)
					return
				}
			}
		}()
	}
	var reqs [][]byte
	for len(reqs) < n {
		r := fs.read()
		if r[1] != typeMultipartRequest {
			t.Fatalf("got %s", msgTypeName(r[1]))
		}
		reqs = append(reqs, r)
	}
	rand.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
	// Interleave: first parts of every reply, then the last parts.
	for _, r := range reqs {
		ck := binary.BigEndian.Uint64(r[16+16:])
		fs.write(flowStatsReply(frameXID(r), true, 1, ck, ck))
	}
	for _, r := range reqs {
		ck := binary.BigEndian.Uint64(r[16+16:])
		fs.write(flowStatsReply(frameXID(r), false, 1, ck))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testMods(n int) []*openflow13.FlowMod {
	mods := make([]*openflow13.FlowMod, n)
	for i := range mods {
		fm := ofpx.NewFlowMod(ofpx.FlowAdd, 1)
		fm.Cookie = uint64(i + 1)
		in := openflow13.NewInstrApplyActions()
		_ = in.AddAction(&ofpx.Output{Port: 2}, false)
		fm.AddInstruction(in)
		mods[i] = fm
	}
	return mods
}

// parseBundle returns (exp_type, bundle id, control type or inner message).
func parseBundle(t *testing.T, f []byte) (uint32, uint32, uint16, []byte) {
	t.Helper()
	if f[1] != typeExperimenter || binary.BigEndian.Uint32(f[8:]) != onfExperimenter {
		t.Fatalf("got %s %x, want an ONF bundle message", msgTypeName(f[1]), f)
	}
	et := binary.BigEndian.Uint32(f[12:])
	id := binary.BigEndian.Uint32(f[16:])
	if et == onfBundleControl {
		return et, id, binary.BigEndian.Uint16(f[20:]), nil
	}
	return et, id, 0, f[24:]
}

func TestApplyBundle(t *testing.T) {
	tests := []struct {
		name       string
		failAdd    int // 1-based flow mod the switch rejects at add, 0 = none
		failCommit bool
		wantErr    string
	}{
		{name: "success"},
		{name: "add rejected rolls back", failAdd: 2, wantErr: "flow mod 2 of 3 (add table=1"},
		{name: "commit rejected", failCommit: true, wantErr: "commit failed, nothing changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			c := newTestController(t, Config{})
			fs := connect(t, c, 5)
			sw := mustSwitch(t, c, 5)
			done := make(chan error, 1)
			go func() { done <- sw.Apply(testCtx(t), testMods(3)) }()

			open := fs.read()
			_, id, ct, _ := parseBundle(t, open)
			if ct != bundleOpen {
				t.Fatalf("first message is bundle control %d, want OPEN", ct)
			}
			fs.write(bundleControlMsg(frameXID(open), id, bundleOpenReply))
			for i := 1; i <= 3; i++ {
				add := fs.read()
				et, aid, _, inner := parseBundle(t, add)
				if et != onfBundleAdd || aid != id {
					t.Fatalf("add %d: exp_type %d bundle %d", i, et, aid)
				}
				if inner[1] != typeFlowMod || frameXID(inner) != frameXID(add) {
					t.Fatalf("add %d: inner %s xid %d, outer xid %d", i, msgTypeName(inner[1]), frameXID(inner), frameXID(add))
				}
				if ck := binary.BigEndian.Uint64(inner[8:]); ck != uint64(i) {
					t.Fatalf("add %d carries cookie %d (reordered)", i, ck)
				}
				if i == tt.failAdd {
					fs.write(errorMsg(frameXID(add), 2, 4, inner[:64])) // BAD_ACTION/BAD_OUT_PORT
				}
			}
			bar := fs.read()
			if bar[1] != typeBarrierRequest {
				t.Fatalf("got %s, want BARRIER_REQUEST", msgTypeName(bar[1]))
			}
			fs.write(reply(bar, typeBarrierReply, nil))
			next := fs.read()
			_, _, ct, _ = parseBundle(t, next)
			switch {
			case tt.failAdd > 0:
				if ct != bundleDiscard {
					t.Fatalf("after a rejected add got bundle control %d, want DISCARD (never COMMIT)", ct)
				}
				fs.write(bundleControlMsg(frameXID(next), id, bundleDiscardReply))
			case tt.failCommit:
				if ct != bundleCommit {
					t.Fatalf("got bundle control %d, want COMMIT", ct)
				}
				// OVS reports the failing inner message, then the commit.
				fs.write(errorMsg(frameXID(open)+2, 5, 1, nil)) // TABLE_FULL for flow mod 2
				e := errorMsg(frameXID(next), 0xffff, 2313, make([]byte, 4))
				binary.BigEndian.PutUint32(e[12:], onfExperimenter)
				fs.write(e)
			default:
				if ct != bundleCommit {
					t.Fatalf("got bundle control %d, want COMMIT", ct)
				}
				fs.write(bundleControlMsg(frameXID(next), id, bundleCommitReply))
			}
			err := <-done
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var se *SwitchError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Apply error = %v, want a SwitchError containing %q", err, tt.wantErr)
			}
			if tt.failCommit && !strings.Contains(err.Error(), "OFPFMFC_TABLE_FULL") {
				t.Errorf("commit error %v does not name the failing flow mod's error", err)
			}
		})
	}
}

func TestApplyNoBundles(t *testing.T) {
	checkLeaks(t)
	c := newTestController(t, Config{NoBundles: true})
	fs := connect(t, c, 5)
	sw, _ := c.Switch(testCtx(t), 5)
	done := make(chan error, 1)
	go func() { done <- sw.Apply(testCtx(t), testMods(2)) }()
	for i := 0; i < 2; i++ {
		if f := fs.read(); f[1] != typeFlowMod {
			t.Fatalf("got %s, want FLOW_MOD", msgTypeName(f[1]))
		}
	}
	bar := fs.read()
	if bar[1] != typeBarrierRequest {
		t.Fatalf("got %s", msgTypeName(bar[1]))
	}
	fs.write(reply(bar, typeBarrierReply, nil))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestApplyEncodingErrorSendsNothing(t *testing.T) {
	checkLeaks(t)
	c := newTestController(t, Config{})
	fs := connect(t, c, 5)
	sw, _ := c.Switch(testCtx(t), 5)
	mods := testMods(2)
	mods[1].Instructions[0].(*openflow13.InstrActions).Actions[0] = &ofpx.OutputTrunc{Port: 2, MaxLen: 1}
	if err := sw.Apply(testCtx(t), mods); err == nil || !strings.Contains(err.Error(), "flow mod 2 of 2") {
		t.Fatalf("Apply error = %v", err)
	}
	// The next thing the switch sees is this barrier, nothing from Apply.
	go func() { _ = sw.Barrier(testCtx(t)) }()
	if f := fs.read(); f[1] != typeBarrierRequest {
		t.Fatalf("switch received %s", msgTypeName(f[1]))
	}
}

func TestContextAndDisconnect(t *testing.T) {
	checkLeaks(t)
	c := newTestController(t, Config{})
	fs := connect(t, c, 5)
	sw, _ := c.Switch(testCtx(t), 5)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	go func() { fs.read() }() // swallow the request, never answer
	if err := sw.Barrier(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Barrier = %v, want deadline exceeded", err)
	}

	done := make(chan error, 1)
	go func() { done <- sw.Barrier(testCtx(t)) }()
	time.Sleep(0) // let it send; the close below fails it either way
	fs.nc.Close()
	if err := <-done; !errors.Is(err, ErrDisconnected) && !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Barrier after switch closed = %v, want ErrDisconnected", err)
	}
	ev := waitEvent[Disconnected](t, c, 5*time.Second)
	if ev.DPID != 5 {
		t.Fatalf("Disconnected %+v", ev)
	}
	if err := sw.Barrier(testCtx(t)); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Barrier when disconnected = %v, want ErrNotConnected", err)
	}
}

func TestMalformedInputClosesConnection(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
	}{
		{"length below header", []byte{4, 2, 0, 4, 0, 0, 0, 1}},
		{"truncated error", newMsg(typeError, 1, 2)},
		{"flow stats entry overruns", func() []byte {
			b := flowStatsReply(9, false, 1, 5)
			binary.BigEndian.PutUint16(b[16:], 4000)
			return b
		}()},
		{"port status too short", newMsg(typePortStatus, 0, 20)},
		{"wrong version after handshake", func() []byte { b := newMsg(typeBarrierReply, 1, 0); b[0] = 1; return b }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			c := newTestController(t, Config{})
			fs := connect(t, c, 5)
			waitEvent[Connected](t, c, 5*time.Second)
			fs.write(tt.frame)
			ev := waitEvent[Disconnected](t, c, 5*time.Second)
			if !errors.Is(ev.Err, ErrDecode) && !errors.Is(ev.Err, ErrFrame) {
				t.Fatalf("Disconnected error %v, want a decode error", ev.Err)
			}
			if s := c.Stats(); s.DecodeErrors != 1 {
				t.Errorf("DecodeErrors = %d, want 1", s.DecodeErrors)
			}
		})
	}
}

func TestPortStatusEvent(t *testing.T) {
	checkLeaks(t)
	c := newTestController(t, Config{})
	fs := connect(t, c, 5)
	b := newMsg(typePortStatus, 0, 8+portLen)
	b[8] = byte(PortAdded)
	p := b[16:]
	binary.BigEndian.PutUint32(p, 7)
	copy(p[8:], []byte{2, 0, 0, 0, 0, 7})
	copy(p[16:], "vnet7")
	binary.BigEndian.PutUint32(p[56:], 10000000)
	fs.write(b)
	ev := waitEvent[PortStatus](t, c, 5*time.Second)
	if ev.DPID != 5 || ev.Reason != PortAdded || ev.Port.No != 7 || ev.Port.Name != "vnet7" ||
		ev.Port.HWAddr.String() != "02:00:00:00:00:07" || ev.Port.CurrSpeed != 10000000 {
		t.Fatalf("PortStatus = %+v", ev)
	}
}

func TestSameDPIDReplacesConnection(t *testing.T) {
	checkLeaks(t)
	c := newTestController(t, Config{})
	fs1 := connect(t, c, 5)
	waitEvent[Connected](t, c, 5*time.Second)
	connect(t, c, 5)
	waitEvent[Connected](t, c, 5*time.Second)
	if _, err := fs1.tryRead(5 * time.Second); err == nil {
		t.Fatal("old connection still open")
	}
	if got := c.Connected(); len(got) != 1 {
		t.Fatalf("Connected() = %v", got)
	}
}

func TestListenUnixSocketFile(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	c := newTestController(t, Config{})
	ctx := testCtx(t)

	// A stale socket (nobody listening) is replaced.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := c.Listen(ctx, "unix:"+stale, nil); err != nil {
		t.Fatalf("Listen over stale socket: %v", err)
	}
	fi, err := os.Stat(stale)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v mode %v", err, fi.Mode())
	}
	// A live socket is not stolen.
	if _, err := c.Listen(ctx, "unix:"+stale, nil); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("Listen over live socket: %v", err)
	}
	// A regular file is never removed.
	reg := filepath.Join(dir, "file")
	if err := os.WriteFile(reg, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Listen(ctx, "unix:"+reg, nil); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over regular file: %v", err)
	}
	// A switch connecting to the socket is served.
	nc, err := net.Dial("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if f, err := readFrame(bufioReader(nc), MaxFrame); err != nil || f[1] != typeHello {
		t.Fatalf("no HELLO on accepted connection: %v", err)
	}
	c.Close()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket not removed on Close: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("leftovers in %s: %v", dir, entries)
	}
}

func TestTargets(t *testing.T) {
	c := newTestController(t, Config{})
	for _, bad := range []string{"", "unix", "udp:1.2.3.4:5", "tcp:nohost", "ssl:1.2.3.4:6653"} {
		if err := c.Dial(testCtx(t), bad); err == nil {
			t.Errorf("Dial(%q) accepted", bad)
		}
	}
	if _, err := c.Listen(testCtx(t), "ssl:0", nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Listen ssl without TLS: %v", err)
	}
	tg, err := parseTarget("tcp:6653", true)
	if err != nil || tg.addr != "127.0.0.1:6653" {
		t.Errorf("listen tcp:6653 -> %v %v, want loopback", tg, err)
	}
}

func TestDialReconnects(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "sw.sock")
	c := newTestController(t, Config{ReconnectMin: 5 * time.Millisecond, ReconnectMax: 20 * time.Millisecond})
	if err := c.Dial(testCtx(t), "unix:"+path); err != nil {
		t.Fatal(err)
	}
	// The switch appears later; the dialer keeps retrying.
	time.Sleep(30 * time.Millisecond)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for round := 0; round < 2; round++ {
		nc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		fs := &fakeSwitch{t: t, nc: nc, br: bufioReader(nc)}
		fs.read()
		fs.write(helloMsg(1))
		fr := fs.read()
		fs.write(featuresReply(frameXID(fr), 11))
		if ev := waitEvent[Connected](t, c, 5*time.Second); ev.DPID != 11 {
			t.Fatalf("Connected %+v", ev)
		}
		nc.Close()
		waitEvent[Disconnected](t, c, 5*time.Second)
	}
}

// TestApplyEncodingErrorAfterFirstChunk: with bundles, encoding overlaps
// sending; a bad mod late in a large batch discards the open bundle and
// never commits.
func TestApplyEncodingErrorAfterFirstChunk(t *testing.T) {
	checkLeaks(t)
	c := newTestController(t, Config{})
	fs := connect(t, c, 5)
	sw, _ := c.Switch(testCtx(t), 5)
	mods := testMods(3000)
	mods[2499].Instructions[0].(*openflow13.InstrActions).Actions[0] = &ofpx.OutputTrunc{Port: 2, MaxLen: 1}
	done := make(chan error, 1)
	go func() { done <- sw.Apply(testCtx(t), mods) }()
	adds := 0
	for {
		f := fs.read()
		et, id, ct, _ := parseBundle(t, f)
		if et == onfBundleAdd {
			adds++
			continue
		}
		if ct == bundleOpen {
			fs.write(bundleControlMsg(frameXID(f), id, bundleOpenReply))
			continue
		}
		if ct != bundleDiscard {
			t.Fatalf("got bundle control %d after %d adds, want DISCARD", ct, adds)
		}
		fs.write(bundleControlMsg(frameXID(f), id, bundleDiscardReply))
		break
	}
	if adds == 0 || adds >= 2499 {
		t.Errorf("%d adds sent before the bad mod was found, want some but fewer than 2499", adds)
	}
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "flow mod 2500 of 3000") || !strings.Contains(err.Error(), "nothing changed") {
		t.Fatalf("Apply error = %v", err)
	}
}

func TestOversizedAndTruncatedFrames(t *testing.T) {
	t.Run("oversized", func(t *testing.T) {
		checkLeaks(t)
		c := newTestController(t, Config{MaxFrame: 100})
		fs := connect(t, c, 5)
		waitEvent[Connected](t, c, 5*time.Second)
		fs.write(newMsg(typeEchoRequest, 1, 200))
		ev := waitEvent[Disconnected](t, c, 5*time.Second)
		if !errors.Is(ev.Err, ErrFrame) || !strings.Contains(ev.Err.Error(), "exceeds the 100-byte limit") {
			t.Fatalf("Disconnected error %v", ev.Err)
		}
		if s := c.Stats(); s.DecodeErrors != 1 {
			t.Errorf("DecodeErrors = %d", s.DecodeErrors)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		checkLeaks(t)
		c := newTestController(t, Config{})
		fs := connect(t, c, 5)
		waitEvent[Connected](t, c, 5*time.Second)
		fs.write(newMsg(typeEchoRequest, 1, 100)[:50])
		fs.nc.Close()
		ev := waitEvent[Disconnected](t, c, 5*time.Second)
		if !errors.Is(ev.Err, ErrFrame) || !strings.Contains(ev.Err.Error(), "truncated") {
			t.Fatalf("Disconnected error %v", ev.Err)
		}
	})
}

// TestHandshakeTimeout: a peer that never answers HELLO/FEATURES is
// dropped after HandshakeTimeout and never reported as connected.
func TestHandshakeTimeout(t *testing.T) {
	for _, stage := range []string{"hello", "features"} {
		t.Run(stage, func(t *testing.T) {
			checkLeaks(t)
			c := newTestController(t, Config{HandshakeTimeout: 50 * time.Millisecond})
			fs := attach(t, c)
			fs.read() // our HELLO
			if stage == "features" {
				fs.write(helloMsg(1))
				if f := fs.read(); f[1] != typeFeaturesRequest {
					t.Fatalf("got %s", msgTypeName(f[1]))
				}
			}
			if _, err := fs.tryRead(5 * time.Second); err == nil {
				t.Fatal("connection still open")
			}
			if s := c.Stats(); s.HandshakeFail != 1 || s.Connections != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// TestDecoderPanicIsRecovered: a panic while decoding a message is
// recovered, logged with the message type, counted, and closes only that
// connection; the pending request fails with ErrDisconnected/ErrDecode.
func TestDecoderPanicIsRecovered(t *testing.T) {
	checkLeaks(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	l := logrus.New()
	l.SetOutput(lockedWriter{&mu, &logs})
	c := newTestController(t, Config{Logger: l})
	c.parse = func(f []byte) (*message, error) {
		if f[1] == typeBarrierReply {
			panic("decoder bug")
		}
		return parseMessage(f)
	}
	fs := connect(t, c, 5)
	sw := mustSwitch(t, c, 5)
	done := make(chan error, 1)
	go func() { done <- sw.Barrier(testCtx(t)) }()
	req := fs.read()
	fs.write(reply(req, typeBarrierReply, nil))
	err := <-done
	if !errors.Is(err, ErrDisconnected) || !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), "decoder panic: decoder bug") {
		t.Fatalf("Barrier = %v, want ErrDisconnected wrapping the decode panic", err)
	}
	if s := c.Stats(); s.DecodeErrors != 1 {
		t.Errorf("DecodeErrors = %d, want 1", s.DecodeErrors)
	}
	waitEvent[Disconnected](t, c, 5*time.Second)
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if !strings.Contains(out, "OFPT_BARRIER_REPLY") || !strings.Contains(out, "decoder bug") {
		t.Errorf("log does not name the message type and panic:\n%s", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestListenManySwitches: one listener serves several switches at once,
// each identified by its datapath id.
func TestListenManySwitches(t *testing.T) {
	checkLeaks(t)
	c := newTestController(t, Config{})
	addr, err := c.Listen(testCtx(t), "tcp:127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	var conns []net.Conn
	for i := 0; i < n; i++ {
		nc, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		conns = append(conns, nc)
	}
	// Handshake them interleaved.
	fss := make([]*fakeSwitch, n)
	for i, nc := range conns {
		fss[i] = &fakeSwitch{t: t, nc: nc, br: bufioReader(nc)}
		fss[i].read()
		fss[i].write(helloMsg(1))
	}
	for i, fs := range fss {
		fr := fs.read()
		fs.write(featuresReply(frameXID(fr), uint64(100+i)))
	}
	seen := map[uint64]bool{}
	for len(seen) < n {
		seen[waitEvent[Connected](t, c, 5*time.Second).DPID] = true
	}
	for i := 0; i < n; i++ {
		if !seen[uint64(100+i)] {
			t.Errorf("switch %d not connected", 100+i)
		}
	}
	if got := c.Connected(); len(got) != n {
		t.Errorf("Connected() = %v", got)
	}
}

// mustSwitch returns the connected switch dpid of c.
func mustSwitch(t *testing.T, c *Controller, dpid uint64) *Switch {
	t.Helper()
	sw, err := c.Switch(testCtx(t), dpid)
	if err != nil {
		t.Fatal(err)
	}
	return sw
}
