package ofctrl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// conn is one handshaken OpenFlow 1.3 connection to a switch.
//
//	reader goroutine: frames in order -> parseMessage (recovered) -> dispatch
//	writer goroutine: batched bytes from send() -> one Write per batch
//	echo goroutine:   periodic echo requests, drops the conn after misses
type conn struct {
	ctrl   *Controller
	nc     net.Conn
	br     *bufio.Reader
	log    logrus.FieldLogger
	dpid   uint64
	remote string

	mu      sync.Mutex
	nextXID uint32
	ops     map[*op]struct{}
	cause   error

	wmu   sync.Mutex
	wq    []wseg // queued ahead of wbuf, in order
	wbuf  []byte // small messages from send, coalesced after wq
	wkick chan struct{}

	done     chan struct{}
	closeOne sync.Once
	echoOut  atomic.Int32
	bundleID atomic.Uint32
	wg       sync.WaitGroup
}

// op is a request awaiting replies for the xids lo..final (inclusive).
// Errors for any of its xids are collected; the reply (or error) for final
// completes it. Multipart replies complete it on the last part.
type op struct {
	lo, final uint32
	describe  func(idx int) string // idx = xid - lo

	mu       sync.Mutex
	msgs     []*message
	errs     []*SwitchError
	err      error // connection failure
	done     chan struct{}
	finished bool
}

func (o *op) finish(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.finished {
		return
	}
	o.finished = true
	if err != nil && o.err == nil {
		o.err = err
	}
	close(o.done)
}

// wait blocks until the op completes or ctx ends.
func (o *op) wait(ctx context.Context) error {
	select {
	case <-o.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newConn(ctrl *Controller, nc net.Conn, br *bufio.Reader, dpid uint64, remote string) *conn {
	return &conn{
		ctrl:    ctrl,
		nc:      nc,
		br:      br,
		dpid:    dpid,
		remote:  remote,
		log:     ctrl.log.WithFields(logrus.Fields{"dpid": fmt.Sprintf("%016x", dpid), "remote": remote}),
		nextXID: 0x1000,
		ops:     make(map[*op]struct{}),
		wkick:   make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
}

// start runs the reader, writer and echo goroutines.
func (c *conn) start() {
	c.wg.Add(3)
	go func() { defer c.wg.Done(); c.readLoop() }()
	go func() { defer c.wg.Done(); c.writeLoop() }()
	go func() { defer c.wg.Done(); c.echoLoop() }()
}

// close shuts the connection down once, failing every pending request.
func (c *conn) close(cause error) {
	c.closeOne.Do(func() {
		c.mu.Lock()
		c.cause = cause
		ops := c.ops
		c.ops = nil
		c.mu.Unlock()
		_ = c.nc.Close()
		close(c.done)
		for o := range ops {
			o.finish(fmt.Errorf("%w: %w", ErrDisconnected, cause))
		}
	})
}

func (c *conn) closeCause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// reserve allocates n consecutive xids and registers an op for them.
func (c *conn) reserve(n int, describe func(int) string) (*op, error) {
	return c.reserveUntil(n, n-1, describe)
}

// reserveUntil is reserve with the op completing on xid lo+final.
func (c *conn) reserveUntil(n, final int, describe func(int) string) (*op, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n <= 0 || final < 0 || final >= n {
		return nil, fmt.Errorf("reserve %d xids (final %d)", n, final)
	}
	if c.ops == nil {
		return nil, fmt.Errorf("%w: %w", ErrDisconnected, c.cause)
	}
	if uint64(c.nextXID)+uint64(n) >= 1<<32 {
		c.nextXID = 0x1000
	}
	o := &op{lo: c.nextXID, final: c.nextXID + uint32(final), describe: describe, done: make(chan struct{})}
	c.nextXID += uint32(n)
	c.ops[o] = struct{}{}
	return o, nil
}

// forget unregisters an op (after completion or abandonment).
func (c *conn) forget(o *op) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ops != nil {
		delete(c.ops, o)
	}
}

func (c *conn) lookup(xid uint32) *op {
	c.mu.Lock()
	defer c.mu.Unlock()
	for o := range c.ops {
		if xid >= o.lo && xid <= o.final {
			return o
		}
	}
	return nil
}

// wseg is a buffer queued for the writer. A buffer with ret belongs to its
// sender: the writer hands it back on ret once written (never blocking; ret
// must have room), so the sender can refill it. One without ret is the
// writer's.
type wseg struct {
	b   []byte
	ret chan<- []byte
}

// send queues a copy of b for the writer; concurrent senders are batched
// into one write. Messages queued by one call are written contiguously.
func (c *conn) send(b []byte) error {
	select {
	case <-c.done:
		return fmt.Errorf("%w: %w", ErrDisconnected, c.closeCause())
	default:
	}
	c.wmu.Lock()
	c.wbuf = append(c.wbuf, b...)
	c.wmu.Unlock()
	c.kick()
	return nil
}

// sendOwned queues b without copying it, after everything queued so far;
// once written, b is handed back on ret. The caller must not touch b until
// then (if the connection closes first, b is never handed back).
func (c *conn) sendOwned(b []byte, ret chan<- []byte) error {
	select {
	case <-c.done:
		return fmt.Errorf("%w: %w", ErrDisconnected, c.closeCause())
	default:
	}
	c.wmu.Lock()
	if len(c.wbuf) > 0 {
		c.wq = append(c.wq, wseg{b: c.wbuf})
		c.wbuf = nil
	}
	c.wq = append(c.wq, wseg{b: b, ret: ret})
	c.wmu.Unlock()
	c.kick()
	return nil
}

func (c *conn) kick() {
	select {
	case c.wkick <- struct{}{}:
	default:
	}
}

// writeLoop writes whatever is queued, in order, with one (vectored)
// write per batch.
func (c *conn) writeLoop() {
	var (
		spare []byte // a written buffer of ours, reused for wbuf
		segs  []wseg
		bufs  net.Buffers
	)
	for {
		select {
		case <-c.done:
			return
		case <-c.wkick:
		}
		c.wmu.Lock()
		segs = append(segs[:0], c.wq...)
		clear(c.wq)
		c.wq = c.wq[:0]
		if len(c.wbuf) > 0 { // a stale kick leaves an empty wbuf in place: never alias spare
			segs = append(segs, wseg{b: c.wbuf})
			c.wbuf, spare = spare[:0], nil
		}
		c.wmu.Unlock()
		if len(segs) == 0 {
			continue
		}
		bufs = bufs[:0]
		for _, s := range segs {
			bufs = append(bufs, s.b)
		}
		w := bufs // WriteTo consumes its receiver
		if _, err := w.WriteTo(c.nc); err != nil {
			c.close(fmt.Errorf("write: %w", err))
			return
		}
		for _, s := range segs {
			switch {
			case s.ret != nil:
				select {
				case s.ret <- s.b:
				default:
				}
			case cap(s.b) <= 1<<20: // keep small buffers for reuse
				spare = s.b
			}
		}
		clear(segs)
		clear(bufs)
	}
}

func (c *conn) echoLoop() {
	cfg := &c.ctrl.cfg
	t := time.NewTicker(cfg.EchoInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		if n := c.echoOut.Load(); int(n) >= cfg.EchoMisses {
			c.log.WithField("missed", n).Warn("switch did not answer echo requests; dropping connection")
			c.close(fmt.Errorf("%w: %d missed", ErrEchoTimeout, n))
			return
		}
		c.echoOut.Add(1)
		c.mu.Lock()
		xid := c.nextXID
		c.nextXID++
		c.mu.Unlock()
		_ = c.send(newMsg(typeEchoRequest, xid, 0))
	}
}

func (c *conn) readLoop() {
	max := c.ctrl.cfg.MaxFrame
	for {
		f, err := readFrame(c.br, max)
		if err != nil {
			select {
			case <-c.done:
				return
			default:
			}
			if errors.Is(err, ErrFrame) {
				c.ctrl.stats.decodeErrors.Add(1)
				c.log.WithError(err).Error("malformed frame from switch; dropping connection")
			}
			c.close(fmt.Errorf("read: %w", err))
			return
		}
		if err := c.handle(f); err != nil {
			c.close(err)
			return
		}
	}
}

// handle decodes and dispatches one frame. A decode error or panic closes
// the connection (the switch sent something we cannot trust to skip).
func (c *conn) handle(f []byte) error {
	m, err := safeParse(c.ctrl.parse, f)
	if err != nil {
		c.ctrl.stats.decodeErrors.Add(1)
		c.log.WithError(err).WithField("type", msgTypeName(f[1])).Error("cannot decode message from switch; dropping connection")
		return fmt.Errorf("%w: %s: %w", ErrDecode, msgTypeName(f[1]), err)
	}
	switch m.typ {
	case typeEchoRequest:
		r := append([]byte(nil), f...)
		r[1] = typeEchoReply
		_ = c.send(r)
		return nil
	case typeEchoReply:
		c.echoOut.Store(0)
		return nil
	case typePortStatus:
		ps := *m.portSt
		ps.DPID = c.dpid
		c.ctrl.emit(ps)
		return nil
	}
	o := c.lookup(m.xid)
	if o == nil {
		if m.err != nil {
			m.err.DPID = c.dpid
			c.log.WithError(m.err).WithField("xid", m.xid).Warn("error from switch for no pending request")
		} else {
			c.log.WithFields(logrus.Fields{"type": msgTypeName(m.typ), "xid": m.xid}).Debug("unsolicited message ignored")
		}
		return nil
	}
	o.mu.Lock()
	complete := m.xid == o.final
	if m.err != nil {
		m.err.DPID = c.dpid
		if o.describe != nil {
			m.err.Request = o.describe(int(m.xid - o.lo))
		}
		o.errs = append(o.errs, m.err)
	} else {
		o.msgs = append(o.msgs, m)
		if m.typ == typeMultipartReply && m.mpMore {
			complete = false
		}
	}
	o.mu.Unlock()
	if complete {
		c.forget(o)
		o.finish(nil)
	}
	return nil
}

// safeParse runs parse (parseMessage), turning a panic into an error.
func safeParse(parse func([]byte) (*message, error), f []byte) (m *message, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("decoder panic: %v", r)
		}
	}()
	return parse(f)
}

// request sends msg (n consecutive xids starting at the op's lo, built by
// build) and waits for completion. On ctx end the op is abandoned.
func (c *conn) request(ctx context.Context, n int, describe func(int) string, build func(lo uint32) ([]byte, error)) (*op, error) {
	o, err := c.reserve(n, describe)
	if err != nil {
		return nil, err
	}
	b, err := build(o.lo)
	if err != nil {
		c.forget(o)
		return nil, err
	}
	return o, c.sendWait(ctx, o, b)
}

// sendWait sends b and waits for o to complete; on ctx end o is abandoned.
func (c *conn) sendWait(ctx context.Context, o *op, b []byte) error {
	if err := c.send(b); err != nil {
		c.forget(o)
		return err
	}
	return c.wait(ctx, o)
}

// wait waits for o (already sent) to complete; on ctx end o is abandoned.
func (c *conn) wait(ctx context.Context, o *op) error {
	if err := o.wait(ctx); err != nil {
		c.forget(o)
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// rearm re-registers a completed op with a later final xid inside its
// reserved range, so replies for all its xids keep reaching it.
func (c *conn) rearm(o *op, final uint32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ops == nil {
		return fmt.Errorf("%w: %w", ErrDisconnected, c.cause)
	}
	o.mu.Lock()
	o.final = final
	o.finished = false
	o.done = make(chan struct{})
	o.mu.Unlock()
	c.ops[o] = struct{}{}
	return nil
}
