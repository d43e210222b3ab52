package ofctrl

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// Config configures a Controller. The zero value means defaults.
type Config struct {
	// Logger receives structured logs (fields: dpid, remote, target).
	// nil discards them.
	Logger logrus.FieldLogger
	// EchoInterval is how often we send an echo request (default 5s).
	EchoInterval time.Duration
	// EchoMisses is how many unanswered echo requests drop the connection
	// (default 3).
	EchoMisses int
	// HandshakeTimeout bounds HELLO + FEATURES (default 10s).
	HandshakeTimeout time.Duration
	// MaxFrame is the largest message accepted from a switch, in bytes
	// (default and maximum 65535, the OpenFlow limit).
	MaxFrame int
	// ReconnectMin and ReconnectMax bound the dial retry backoff, which
	// doubles after each failure with jitter (defaults 100ms and 5s).
	ReconnectMin, ReconnectMax time.Duration
	// NoBundles makes Apply send flow mods followed by a barrier instead
	// of one atomic bundle (for switches without bundle support).
	NoBundles bool
	// TLS is used for "ssl:" dial targets (and listen targets when
	// Listen gets no tls.Config).
	TLS *tls.Config
	// MaxQueuedEvents bounds events waiting for a reader of Events;
	// beyond it PortStatus events are dropped and counted (default 4096).
	// Connected/Disconnected events are never dropped.
	MaxQueuedEvents int
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		c.Logger = l
	}
	if c.EchoInterval <= 0 {
		c.EchoInterval = 5 * time.Second
	}
	if c.EchoMisses <= 0 {
		c.EchoMisses = 3
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.MaxFrame <= 0 || c.MaxFrame > MaxFrame {
		c.MaxFrame = MaxFrame
	}
	if c.MaxFrame < 64 {
		c.MaxFrame = 64
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = 100 * time.Millisecond
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = 5 * time.Second
		if c.ReconnectMax < c.ReconnectMin {
			c.ReconnectMax = c.ReconnectMin
		}
	}
	if c.MaxQueuedEvents <= 0 {
		c.MaxQueuedEvents = 4096
	}
	return c
}

// Stats are counters since New.
type Stats struct {
	Connections   uint64 // handshakes completed
	Disconnects   uint64
	DecodeErrors  uint64 // malformed frames, undecodable messages, decoder panics
	HandshakeFail uint64
	DroppedEvents uint64
}

type counters struct {
	connections, disconnects, decodeErrors, handshakeFail, droppedEvents atomic.Uint64
}

// Controller is an OpenFlow 1.3 controller for many switches. All methods
// are safe for concurrent use.
type Controller struct {
	cfg    Config
	log    logrus.FieldLogger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stats  counters

	mu      sync.Mutex
	conns   map[uint64]*conn
	changed chan struct{} // closed and replaced whenever conns changes
	closed  bool

	evIn  chan Event
	evOut chan Event

	parse func([]byte) (*message, error) // parseMessage; tests inject panics

	chunks chunkPool // Apply's encode buffers
}

// New returns a controller; it does nothing until Dial or Listen.
func New(cfg Config) *Controller {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Controller{
		cfg:     cfg,
		log:     cfg.Logger,
		ctx:     ctx,
		cancel:  cancel,
		conns:   make(map[uint64]*conn),
		changed: make(chan struct{}),
		evIn:    make(chan Event),
		evOut:   make(chan Event),
		parse:   parseMessage,
	}
	c.wg.Add(1)
	go func() { defer c.wg.Done(); c.pumpEvents() }()
	return c
}

// Events returns the event channel. It is closed by Close. Events queue
// (up to Config.MaxQueuedEvents) when nobody reads.
func (c *Controller) Events() <-chan Event { return c.evOut }

// Stats returns a snapshot of the counters.
func (c *Controller) Stats() Stats {
	return Stats{
		Connections:   c.stats.connections.Load(),
		Disconnects:   c.stats.disconnects.Load(),
		DecodeErrors:  c.stats.decodeErrors.Load(),
		HandshakeFail: c.stats.handshakeFail.Load(),
		DroppedEvents: c.stats.droppedEvents.Load(),
	}
}

func (c *Controller) pumpEvents() {
	defer close(c.evOut)
	var q []Event
	for {
		var out chan Event
		var next Event
		if len(q) > 0 {
			out, next = c.evOut, q[0]
		}
		select {
		case <-c.ctx.Done():
			return
		case ev := <-c.evIn:
			if _, ok := ev.(PortStatus); ok && len(q) >= c.cfg.MaxQueuedEvents {
				c.stats.droppedEvents.Add(1)
				c.log.Warn("event queue full; port status event dropped")
				continue
			}
			q = append(q, ev)
		case out <- next:
			q[0] = nil
			q = q[1:]
		}
	}
}

func (c *Controller) emit(ev Event) {
	select {
	case c.evIn <- ev:
	case <-c.ctx.Done():
	}
}

// Close stops every goroutine: dialers, listeners (removing unix socket
// files they created), connections and the event pump. Pending requests
// fail with ErrDisconnected. Close is idempotent.
func (c *Controller) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return nil
}

// Switch returns a handle for the switch with datapath id dpid, waiting
// until it is connected or ctx ends. The handle stays valid across
// reconnects: each request uses the current connection.
func (c *Controller) Switch(ctx context.Context, dpid uint64) (*Switch, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		_, ok := c.conns[dpid]
		ch := c.changed
		c.mu.Unlock()
		if ok {
			return &Switch{ctrl: c, dpid: dpid}, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("switch %016x: %w", dpid, ctx.Err())
		case <-c.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// Connected returns the datapath ids of connected switches.
func (c *Controller) Connected() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]uint64, 0, len(c.conns))
	for d := range c.conns {
		out = append(out, d)
	}
	return out
}

func (c *Controller) current(dpid uint64) (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if cn, ok := c.conns[dpid]; ok {
		return cn, nil
	}
	return nil, fmt.Errorf("switch %016x: %w", dpid, ErrNotConnected)
}

func (c *Controller) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// target is a parsed "unix:PATH", "tcp:HOST:PORT" or "ssl:HOST:PORT".
type target struct {
	scheme, addr string
}

func (t target) String() string { return t.scheme + ":" + t.addr }

func parseTarget(s string, listen bool) (target, error) {
	scheme, addr, ok := strings.Cut(s, ":")
	if !ok || addr == "" {
		return target{}, fmt.Errorf("target %q: want unix:PATH, tcp:IP:PORT or ssl:IP:PORT", s)
	}
	switch scheme {
	case "unix":
		return target{scheme, addr}, nil
	case "tcp", "ssl":
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			if !listen {
				return target{}, fmt.Errorf("target %q: %w", s, err)
			}
			host, port = "", addr // listen "tcp:6653"
		}
		if listen && host == "" {
			host = "127.0.0.1" // loopback unless an address is named
		}
		if !listen && host == "" {
			return target{}, fmt.Errorf("target %q: missing host", s)
		}
		return target{scheme, net.JoinHostPort(host, port)}, nil
	}
	return target{}, fmt.Errorf("target %q: unknown scheme %q (want unix, tcp or ssl)", s, scheme)
}

// Dial connects to a switch's passive OpenFlow target (unix:PATH,
// tcp:HOST:PORT, ssl:HOST:PORT) in the background and keeps reconnecting
// with backoff until ctx ends or the controller is closed. It returns an
// error only for an invalid target.
func (c *Controller) Dial(ctx context.Context, s string) error {
	t, err := parseTarget(s, false)
	if err != nil {
		return err
	}
	if t.scheme == "ssl" && c.cfg.TLS == nil {
		return fmt.Errorf("target %q: ssl needs Config.TLS", s)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.wg.Add(1)
	c.mu.Unlock()
	lctx, cancel := context.WithCancel(c.ctx)
	stop := context.AfterFunc(ctx, cancel)
	go func() {
		defer c.wg.Done()
		defer stop()
		defer cancel()
		c.dialLoop(lctx, t)
	}()
	return nil
}

func (c *Controller) dialLoop(ctx context.Context, t target) {
	log := c.log.WithField("target", t.String())
	backoff := c.cfg.ReconnectMin
	for ctx.Err() == nil {
		nc, err := c.dialOnce(ctx, t)
		if err != nil {
			log.WithError(err).WithField("retry_in", backoff).Debug("dial failed")
		} else {
			start := time.Now()
			c.serve(ctx, nc, t.String())
			if time.Since(start) > c.cfg.ReconnectMax {
				backoff = c.cfg.ReconnectMin
			}
		}
		if ctx.Err() != nil {
			return
		}
		jitter := time.Duration(rand.Int64N(int64(backoff)/4 + 1))
		tm := time.NewTimer(backoff + jitter)
		select {
		case <-ctx.Done():
			tm.Stop()
			return
		case <-tm.C:
		}
		backoff *= 2
		if backoff > c.cfg.ReconnectMax {
			backoff = c.cfg.ReconnectMax
		}
	}
}

// dialOnce connects to t (TLS handshake included for ssl).
func (c *Controller) dialOnce(ctx context.Context, t target) (net.Conn, error) {
	d := net.Dialer{Timeout: c.cfg.HandshakeTimeout}
	network := "tcp"
	if t.scheme == "unix" {
		network = "unix"
	}
	nc, err := d.DialContext(ctx, network, t.addr)
	if err != nil || t.scheme != "ssl" {
		return nc, err
	}
	tc := tls.Client(nc, c.cfg.TLS.Clone())
	hctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		_ = nc.Close()
		return nil, err
	}
	return tc, nil
}

// serve runs one connection from handshake to close. It returns when the
// connection is gone and all its goroutines have stopped.
func (c *Controller) serve(ctx context.Context, nc net.Conn, remote string) {
	stopClose := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stopClose()
	setWriteBuffer(nc)
	br := bufio.NewReaderSize(nc, 64*1024)
	dpid, err := c.handshake(nc, br)
	if err != nil {
		c.stats.handshakeFail.Add(1)
		_ = nc.Close()
		lvl := c.log.WithError(err).WithField("remote", remote)
		if errors.Is(err, ErrVersion) {
			lvl.Warn("switch does not speak OpenFlow 1.3; sent HELLO_FAILED")
		} else if ctx.Err() == nil {
			lvl.Info("OpenFlow handshake failed")
		}
		return
	}
	cn := newConn(c, nc, br, dpid, remote)
	c.mu.Lock()
	if c.closed || ctx.Err() != nil {
		c.mu.Unlock()
		_ = nc.Close()
		return
	}
	old := c.conns[dpid]
	c.conns[dpid] = cn
	c.notifyLocked()
	c.mu.Unlock()
	if old != nil {
		old.close(errors.New("replaced by a new connection from the same datapath"))
	}
	c.stats.connections.Add(1)
	cn.log.Info("switch connected")
	cn.start()
	c.emit(Connected{DPID: dpid, Remote: remote})
	stopConn := context.AfterFunc(ctx, func() { cn.close(ctx.Err()) })
	<-cn.done
	stopConn()
	cn.wg.Wait()
	cause := cn.closeCause()
	c.mu.Lock()
	current := c.conns[dpid] == cn
	if current {
		delete(c.conns, dpid)
		c.notifyLocked()
	}
	c.mu.Unlock()
	c.stats.disconnects.Add(1)
	cn.log.WithError(cause).Info("switch disconnected")
	if current {
		c.emit(Disconnected{DPID: dpid, Err: cause})
	}
}

// handshake exchanges HELLO (1.3 only) and FEATURES and returns the DPID.
func (c *Controller) handshake(nc net.Conn, br *bufio.Reader) (uint64, error) {
	return c.handshakeOpt(nc, br, false)
}

// handshakeOpt is handshake; pipelined sends the features request with the
// hello, saving a round trip (a switch that does not speak 1.3 answers the
// hello with an error and never processes it).
func (c *Controller) handshakeOpt(nc net.Conn, br *bufio.Reader, pipelined bool) (uint64, error) {
	_ = nc.SetDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	defer func() { _ = nc.SetDeadline(time.Time{}) }()
	first := helloMsg(1)
	if pipelined {
		first = append(first, newMsg(typeFeaturesRequest, 2, 0)...)
	}
	if _, err := nc.Write(first); err != nil {
		return 0, fmt.Errorf("send hello: %w", err)
	}
	f, err := readFrame(br, c.cfg.MaxFrame)
	if err != nil {
		return 0, fmt.Errorf("read hello: %w", err)
	}
	if f[1] != typeHello {
		return 0, fmt.Errorf("expected HELLO, got %s (version 0x%02x)", msgTypeName(f[1]), f[0])
	}
	if ok, offered := helloSupports13(f); !ok {
		text := fmt.Sprintf("flowspan supports OpenFlow 1.3 (0x04) only; peer offers %s", offered)
		_, _ = nc.Write(errorMsg(frameXID(f), 0, 0, []byte(text))) // OFPET_HELLO_FAILED/OFPHFC_INCOMPATIBLE
		return 0, fmt.Errorf("%w: %s", ErrVersion, text)
	}
	if !pipelined {
		if _, err := nc.Write(newMsg(typeFeaturesRequest, 2, 0)); err != nil {
			return 0, fmt.Errorf("send features request: %w", err)
		}
	}
	for {
		f, err := readFrame(br, c.cfg.MaxFrame)
		if err != nil {
			return 0, fmt.Errorf("read features reply: %w", err)
		}
		m, err := safeParse(c.parse, f)
		if err != nil {
			c.stats.decodeErrors.Add(1)
			return 0, fmt.Errorf("%w during handshake: %s: %w", ErrDecode, msgTypeName(f[1]), err)
		}
		switch m.typ {
		case typeFeaturesReply:
			if _, err := nc.Write(setAsyncMsg(3)); err != nil {
				return 0, fmt.Errorf("send set async: %w", err)
			}
			return m.dpid, nil
		case typeError:
			return 0, fmt.Errorf("features request: %w", m.err)
		case typeEchoRequest:
			r := append([]byte(nil), f...)
			r[1] = typeEchoReply
			if _, err := nc.Write(r); err != nil {
				return 0, fmt.Errorf("send echo reply: %w", err)
			}
		}
	}
}

// sockWriteBuffer is the socket send buffer asked for (the kernel caps it
// at net.core.wmem_max). With a large bundle in flight the switch then
// has this much queued to parse, so a moment in which the controller is
// not scheduled (2 CPUs shared with ovs-vswitchd) does not leave it idle.
const sockWriteBuffer = 1 << 20

// setWriteBuffer enlarges nc's socket send buffer (best effort).
func setWriteBuffer(nc net.Conn) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if wb, ok := nc.(interface{ SetWriteBuffer(int) error }); ok {
		_ = wb.SetWriteBuffer(sockWriteBuffer)
	}
}
