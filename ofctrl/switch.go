package ofctrl

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/flowspan/flowspan/ofctrl/ofpx"
)

// Switch is a handle to one datapath. It is safe for concurrent use and
// stays valid across reconnects: every request uses the connection current
// at the time of the call and fails with ErrNotConnected if there is none,
// or ErrDisconnected if the connection drops before the reply.
type Switch struct {
	ctrl *Controller
	dpid uint64
	// pinned is a session's connection (DialSession); nil: the switch's
	// current connection.
	pinned *conn
}

// conn returns the connection a request uses.
func (s *Switch) conn() (*conn, error) {
	if s.pinned == nil {
		return s.ctrl.current(s.dpid)
	}
	select {
	case <-s.pinned.done:
		return nil, fmt.Errorf("switch %016x: %w (session ended: %v)", s.dpid, ErrNotConnected, s.pinned.closeCause())
	default:
		return s.pinned, nil
	}
}

// DPID returns the datapath id.
func (s *Switch) DPID() uint64 { return s.dpid }

// Connected reports whether requests can go out now: for a session,
// whether it is still open.
func (s *Switch) Connected() bool {
	_, err := s.conn()
	return err == nil
}

// Barrier sends a barrier request and waits for its reply.
func (s *Switch) Barrier(ctx context.Context) error {
	c, err := s.conn()
	if err != nil {
		return err
	}
	o, err := c.request(ctx, 1, func(int) string { return "barrier request" }, func(lo uint32) ([]byte, error) {
		return newMsg(typeBarrierRequest, lo, 0), nil
	})
	if err != nil {
		return fmt.Errorf("switch %016x: barrier: %w", s.dpid, err)
	}
	return firstError(o)
}

func firstError(o *op) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.errs) == 0 {
		return nil
	}
	if len(o.errs) == 1 {
		return o.errs[0]
	}
	return fmt.Errorf("%w (and %d more errors)", o.errs[0], len(o.errs)-1)
}

var flowCommands = [...]string{"add", "modify", "modify_strict", "delete", "delete_strict"}

func describeFlowMod(i, n int, fm *openflow13.FlowMod) string {
	cmd := fmt.Sprintf("command(%d)", fm.Command)
	if int(fm.Command) < len(flowCommands) {
		cmd = flowCommands[fm.Command]
	}
	return fmt.Sprintf("flow mod %d of %d (%s table=%d priority=%d cookie=0x%x/0x%x)", i+1, n, cmd, fm.TableId, fm.Priority, fm.Cookie, fm.CookieMask)
}

// Apply sends mods to the switch atomically: in one OpenFlow bundle
// (open, add each mod, barrier; commit only if the switch accepted every
// message, otherwise discard), so either all take effect or none do. With
// Config.NoBundles the mods are sent followed by a barrier instead, which
// is not atomic. A mod that fails to encode is reported, naming it, and
// nothing changes (without bundles nothing is sent; with bundles, encoding
// overlaps sending and the bundle is discarded). A switch error names the
// failing flow mod by index and fields. If ctx ends before the commit is
// sent the bundle is discarded; if it ends after, the outcome is unknown
// and the error says so.
func (s *Switch) Apply(ctx context.Context, mods []*openflow13.FlowMod) error {
	return s.ApplyGated(ctx, mods, nil)
}

// ApplyGated is Apply that calls gate, when not nil, once the switch has
// taken every message of the bundle and before the commit: the bundle is
// committed only if gate returns nil, else discarded (nothing changes) and
// gate's error returned. It lets the transfer overlap whatever the commit
// must wait for. With Config.NoBundles gate runs before anything is sent.
func (s *Switch) ApplyGated(ctx context.Context, mods []*openflow13.FlowMod, gate func(context.Context) error) error {
	if len(mods) == 0 {
		return nil
	}
	for i, fm := range mods {
		if fm == nil {
			return fmt.Errorf("apply: flow mod %d of %d is nil", i+1, len(mods))
		}
	}
	c, err := s.conn()
	if err != nil {
		return err
	}
	if s.ctrl.cfg.NoBundles {
		if gate != nil {
			if err := gate(ctx); err != nil {
				return err
			}
		}
		return s.applyPlain(ctx, c, mods)
	}
	return s.applyBundle(ctx, c, mods, gate)
}

func (s *Switch) applyPlain(ctx context.Context, c *conn, mods []*openflow13.FlowMod) error {
	n := len(mods)
	// Encode everything into one buffer first (nothing is sent if any
	// mod fails), then set the xids once they are reserved.
	starts := make([]int, n)
	var buf []byte
	for i, fm := range mods {
		starts[i] = len(buf)
		var err error
		if buf, err = ofpx.AppendFlowMod(buf, fm, 0); err != nil {
			return fmt.Errorf("apply: %s: %w", describeFlowMod(i, n, fm), err)
		}
		if l := len(buf) - starts[i]; l+24 > MaxFrame {
			return fmt.Errorf("apply: %s: %d bytes does not fit a bundle add message", describeFlowMod(i, n, fm), l)
		}
	}
	describe := func(i int) string {
		if i >= 0 && i < n {
			return describeFlowMod(i, n, mods[i])
		}
		return "barrier request"
	}
	o, err := c.reserve(n+1, describe)
	if err != nil {
		return fmt.Errorf("switch %016x: apply %d flow mods (no bundle): %w", s.dpid, n, err)
	}
	for i, st := range starts {
		binary.BigEndian.PutUint32(buf[st+4:], o.lo+uint32(i))
	}
	buf = appendHeader(buf, typeBarrierRequest, o.lo+uint32(n))
	err = c.sendOwned(buf, nil) // the writer owns buf from here
	if err != nil {
		c.forget(o)
	} else {
		err = c.wait(ctx, o)
	}
	if err != nil {
		return fmt.Errorf("switch %016x: apply %d flow mods (no bundle; outcome unknown): %w", s.dpid, n, err)
	}
	if err := firstError(o); err != nil {
		return fmt.Errorf("apply %d flow mods without bundle (others may have been applied): %w", n, err)
	}
	return nil
}

const (
	// applyChunk is how many bytes of bundle messages are encoded into a
	// buffer before it is queued for writing.
	applyChunk = 64 << 10
	// firstChunk is the same for the first buffer, smaller so that the
	// switch starts parsing at once.
	firstChunk = 8 << 10
	// chunkCap is a chunk buffer's capacity: applyChunk plus one message
	// of any size, so encoding never grows it.
	chunkCap = applyChunk + MaxFrame + 1
	// applyChunks is how many chunk buffers one Apply cycles through: one
	// being written, one queued, one being encoded. Memory per Apply stays
	// at applyChunks*chunkCap however many flow mods it sends; when the
	// switch reads slower than we encode (the usual case), Apply waits for
	// a buffer to come back instead of queueing the whole bundle.
	applyChunks = 3
)

// chunkPool keeps chunk buffers for reuse across Applies.
type chunkPool struct{ p sync.Pool }

func (p *chunkPool) get() []byte {
	if b, ok := p.p.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, chunkCap)
}

func (p *chunkPool) put(b []byte) {
	if cap(b) == chunkCap {
		b = b[:0]
		p.p.Put(&b)
	}
}

// chunks is an Apply's set of chunk buffers: each is either with the
// encoder or queued for the writer, which hands it back on free.
type chunks struct {
	pool *chunkPool
	free chan []byte
	out  int // buffers queued and not yet back
}

func newChunks(pool *chunkPool) *chunks {
	return &chunks{pool: pool, free: make(chan []byte, applyChunks)}
}

// next returns an empty buffer: a new one while fewer than applyChunks
// are out, otherwise the next one the writer hands back.
func (cs *chunks) next(ctx context.Context, c *conn) ([]byte, error) {
	select {
	case b := <-cs.free:
		cs.out--
		return b[:0], nil
	default:
	}
	if cs.out < applyChunks-1 {
		return cs.pool.get(), nil
	}
	select {
	case b := <-cs.free:
		cs.out--
		return b[:0], nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, fmt.Errorf("%w: %w", ErrDisconnected, c.closeCause())
	}
}

// send queues b (which the caller gives up until next hands it back).
func (cs *chunks) send(c *conn, b []byte) error {
	if err := c.sendOwned(b, cs.free); err != nil {
		return err
	}
	cs.out++
	return nil
}

// release returns to the pool every buffer the writer has handed back;
// any still queued are left to the garbage collector.
func (cs *chunks) release() {
	for {
		select {
		case b := <-cs.free:
			cs.pool.put(b)
		default:
			return
		}
	}
}

func (s *Switch) applyBundle(ctx context.Context, c *conn, mods []*openflow13.FlowMod, gate func(context.Context) error) error {
	n := len(mods)
	id := c.bundleID.Add(1)
	// xids: lo = open, lo+1..lo+n = adds (inner xid equal), lo+n+1 =
	// barrier, lo+n+2 = commit. One op covers them all so that an error
	// the switch reports for an inner message at commit time is kept.
	describe := func(i int) string {
		switch {
		case i == 0:
			return fmt.Sprintf("bundle %d open", id)
		case i >= 1 && i <= n:
			return describeFlowMod(i-1, n, mods[i-1])
		case i == n+1:
			return fmt.Sprintf("bundle %d barrier", id)
		}
		return fmt.Sprintf("bundle %d commit", id)
	}
	o, err := c.reserveUntil(n+3, n+1, describe) // first phase ends with the barrier
	if err != nil {
		return fmt.Errorf("switch %016x: apply %d flow mods: %w", s.dpid, n, err)
	}
	lo := o.lo
	cs := newChunks(&s.ctrl.chunks)
	defer cs.release()
	sent := false
	abort := func(err error) error {
		if sent {
			s.discard(c, id)
		}
		c.forget(o)
		return fmt.Errorf("%w (bundle discarded, nothing changed)", err)
	}
	// Encode straight into chunk buffers and queue each as it fills, so
	// the switch parses while we encode; no message is copied after
	// encoding.
	buf := cs.pool.get()
	buf = appendBundleControl(buf, lo, id, bundleOpen)
	limit := firstChunk
	for i := range mods {
		xid := lo + 1 + uint32(i)
		var err error
		// inner xid == bundle add xid
		if buf, err = appendBundleAddFlowMod(buf, xid, id, mods[i]); err != nil {
			cs.pool.put(buf)
			return abort(fmt.Errorf("apply: %s: %w", describeFlowMod(i, n, mods[i]), err))
		}
		if len(buf) >= limit {
			limit = applyChunk
			if err := ctx.Err(); err != nil {
				cs.pool.put(buf)
				return abort(fmt.Errorf("switch %016x: apply %d flow mods: %w", s.dpid, n, err))
			}
			if err := cs.send(c, buf); err != nil {
				c.forget(o)
				return fmt.Errorf("switch %016x: apply %d flow mods: nothing changed: %w", s.dpid, n, err)
			}
			sent = true
			if buf, err = cs.next(ctx, c); err != nil {
				if errors.Is(err, ErrDisconnected) {
					c.forget(o)
					return fmt.Errorf("switch %016x: apply %d flow mods: nothing changed: %w", s.dpid, n, err)
				}
				return abort(fmt.Errorf("switch %016x: apply %d flow mods: %w", s.dpid, n, err))
			}
		}
	}
	buf = appendHeader(buf, typeBarrierRequest, lo+uint32(n)+1)
	if err := cs.send(c, buf); err != nil {
		c.forget(o)
		return fmt.Errorf("switch %016x: apply %d flow mods: bundle discarded, nothing changed: %w", s.dpid, n, err)
	}
	if err := c.wait(ctx, o); err != nil {
		if !errors.Is(err, ErrDisconnected) {
			s.discard(c, id)
		}
		return fmt.Errorf("switch %016x: apply %d flow mods: bundle discarded, nothing changed: %w", s.dpid, n, err)
	}
	if err := firstError(o); err != nil {
		s.discard(c, id)
		return fmt.Errorf("apply %d flow mods: bundle discarded, nothing changed: %w", n, err)
	}
	if gate != nil {
		if err := gate(ctx); err != nil {
			s.discard(c, id)
			c.forget(o)
			return fmt.Errorf("apply %d flow mods: not committed, bundle discarded, nothing changed: %w", n, err)
		}
	}
	if err := c.rearm(o, lo+uint32(n)+2); err != nil {
		return fmt.Errorf("switch %016x: apply %d flow mods: nothing changed: %w", s.dpid, n, err)
	}
	if err := c.sendWait(ctx, o, bundleControlMsg(lo+uint32(n)+2, id, bundleCommit)); err != nil {
		return fmt.Errorf("switch %016x: apply %d flow mods: commit sent, outcome unknown: %w", s.dpid, n, err)
	}
	if err := firstError(o); err != nil {
		return fmt.Errorf("apply %d flow mods: commit failed, nothing changed: %w", n, err)
	}
	return nil
}

// discard asks the switch to drop bundle id, waiting briefly for the reply
// (errors are logged: the bundle dies with the connection anyway).
func (s *Switch) discard(c *conn, id uint32) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o, err := c.request(ctx, 1, func(int) string { return fmt.Sprintf("bundle %d discard", id) }, func(l uint32) ([]byte, error) {
		return bundleControlMsg(l, id, bundleDiscard), nil
	})
	if err == nil {
		err = firstError(o)
	}
	if err != nil {
		c.log.WithError(err).WithField("bundle", id).Warn("bundle discard failed")
	}
}

// FlowStats returns the flows matching f, stitching multipart replies.
func (s *Switch) FlowStats(ctx context.Context, f FlowFilter) ([]FlowStat, error) {
	c, err := s.conn()
	if err != nil {
		return nil, err
	}
	o, err := c.request(ctx, 1, func(int) string { return fmt.Sprintf("flow stats request (table %d)", f.Table) }, func(l uint32) ([]byte, error) {
		return flowStatsRequest(l, f), nil
	})
	if err != nil {
		return nil, fmt.Errorf("switch %016x: flow stats: %w", s.dpid, err)
	}
	if err := firstError(o); err != nil {
		return nil, fmt.Errorf("flow stats: %w", err)
	}
	out, err := stitchFlowStats(o.msgs)
	if err != nil {
		return nil, fmt.Errorf("switch %016x: flow stats: %w", s.dpid, err)
	}
	return out, nil
}

// stitchFlowStats joins the flows of multipart replies into one slice.
func stitchFlowStats(msgs []*message) ([]FlowStat, error) {
	n := 0
	for _, m := range msgs {
		if m.typ != typeMultipartReply || m.mpType != mpFlow {
			return nil, fmt.Errorf("unexpected %s reply", msgTypeName(m.typ))
		}
		n += len(m.flows)
	}
	if n == 0 {
		return nil, nil
	}
	if len(msgs) == 1 {
		return msgs[0].flows, nil
	}
	out := make([]FlowStat, 0, n)
	for _, m := range msgs {
		out = append(out, m.flows...)
	}
	return out, nil
}

// Ports returns the switch's ports (OFPMP_PORT_DESC).
func (s *Switch) Ports(ctx context.Context) ([]Port, error) {
	c, err := s.conn()
	if err != nil {
		return nil, err
	}
	o, err := c.request(ctx, 1, func(int) string { return "port description request" }, func(l uint32) ([]byte, error) {
		return portDescRequest(l), nil
	})
	if err != nil {
		return nil, fmt.Errorf("switch %016x: ports: %w", s.dpid, err)
	}
	if err := firstError(o); err != nil {
		return nil, fmt.Errorf("ports: %w", err)
	}
	var out []Port
	for _, m := range o.msgs {
		if m.typ != typeMultipartReply || m.mpType != mpPortDesc {
			return nil, fmt.Errorf("switch %016x: ports: unexpected %s reply", s.dpid, msgTypeName(m.typ))
		}
		out = append(out, m.ports...)
	}
	return out, nil
}

// PortCounters are a port's packet and byte counters.
type PortCounters struct {
	Port                 uint32
	RxPackets, TxPackets uint64
	RxBytes, TxBytes     uint64
}

// PortStats returns the counters of port (OFPP_ANY, 0xffffffff: all ports).
func (s *Switch) PortStats(ctx context.Context, port uint32) ([]PortCounters, error) {
	c, err := s.conn()
	if err != nil {
		return nil, err
	}
	o, err := c.request(ctx, 1, func(int) string { return "port stats request" }, func(l uint32) ([]byte, error) {
		return portStatsRequest(l, port), nil
	})
	if err != nil {
		return nil, fmt.Errorf("switch %016x: port stats: %w", s.dpid, err)
	}
	if err := firstError(o); err != nil {
		return nil, fmt.Errorf("switch %016x: port stats: %w", s.dpid, err)
	}
	var out []PortCounters
	for _, m := range o.msgs {
		if m.typ != typeMultipartReply || m.mpType != mpPortStats {
			return nil, fmt.Errorf("switch %016x: port stats: unexpected %s reply", s.dpid, msgTypeName(m.typ))
		}
		out = append(out, m.pstats...)
	}
	return out, nil
}
