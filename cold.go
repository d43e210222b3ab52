package flowspan

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// The first mirror on a bridge.
//
// flowspan's own way to a bridge is a controller target it adds in OVSDB;
// ovs-vswitchd must apply that (a reconfiguration) before flowspan can
// connect, and only then could the mirror's flows go in. Every bridge also
// has a management socket (<rundir>/<bridge>.mgmt, what ovs-ofctl uses). A
// first mirror is programmed through it, in a session, while the take-over
// is applied:
//
//  1. session to the management socket; a new output port is isolated over
//     OpenFlow (PortIsolator: no floods from NORMAL, nothing received);
//  2. the take-over transaction (controller target and the output's OVSDB
//     isolation) goes to OVSDB, in the background;
//  3. the MAC table is read (after 1: the output learns nothing more) and
//     the full sync goes in through the session: the first copies flow;
//  4. once the take-over is applied, the OpenFlow isolation is undone (the
//     VLAN isolation holds now) and flowspan's own connection takes over
//     from the session, without a second full sync when it finds every
//     flow of the generation the session installed.
//
// Only in service mode: a primary controller (controller mode) makes OVS
// flush the flow table when it appears.

// coldSession is a private connection to a bridge's management socket.
type coldSession struct {
	sw      Switch
	dpid    uint64
	target  string
	closeFn func()
	// iso is closed once the output's isolation over OpenFlow, started
	// with the session, is over: isoUndo undoes it, isoErr is why it was
	// not done. The session's first bundle goes out meanwhile; its commit
	// waits for it (isolated).
	iso     <-chan struct{}
	isoUndo func(context.Context) error
	isoErr  error
	isoRx   uint64 // packets the output had received once isolated
	isoRxOK bool   // isoRx is known
}

// sessionLost says whether s's connection went down (when its Switch can
// tell: Liveness).
func sessionLost(s *coldSession) bool {
	l, ok := s.sw.(Liveness)
	return ok && !l.Connected()
}

// isolated waits for the output's isolation over OpenFlow and reports
// whether it was done.
func (s *coldSession) isolated() bool {
	<-s.iso
	return s.isoUndo != nil
}

// undoIsolation undoes the output's isolation over OpenFlow, if done.
func (s *coldSession) undoIsolation(ctx context.Context) error {
	if !s.isolated() {
		return nil
	}
	return s.isoUndo(ctx)
}

func (s *coldSession) close() {
	if s.closeFn != nil {
		s.closeFn()
		s.closeFn = nil
	}
}

// managementTargetLocked returns the management socket through which a
// first mirror on bridge can be programmed, or "".
func (m *Manager) managementTargetLocked(bridge string) string {
	if m.cfg.TakeOverFirst {
		return ""
	}
	mg, ok := m.cfg.OVSDB.(Management)
	if !ok {
		return ""
	}
	if _, ok := m.cfg.Controller.(SessionDialer); !ok {
		return ""
	}
	return mg.ManagementTarget(bridge)
}

// openColdSessionLocked opens a session to target for bridge b (datapath
// id dpid) and starts isolating port isolate over OpenFlow when it is not
// 0 (coldSession.isolated). It returns nil (logged) when the session fails:
// the add then takes the bridge over first.
func (m *Manager) openColdSessionLocked(ctx context.Context, b *bridgeState, target string, dpid uint64, isolate uint32) *coldSession {
	iso := make(chan struct{})
	s := &coldSession{dpid: dpid, target: target, iso: iso}
	go func() {
		defer close(iso)
		pi, ok := m.cfg.Controller.(PortIsolator)
		switch {
		case isolate == 0:
		case !ok:
			s.isoErr = errors.New("the controller cannot isolate ports over OpenFlow")
		default:
			var i Isolation
			if i, s.isoErr = pi.IsolateNow(ctx, target, dpid, isolate, true); s.isoErr == nil {
				s.isoUndo, s.isoRx, s.isoRxOK = i.Undo, i.RxPackets, i.RxErr == nil
			}
		}
	}()
	sw, closeFn, err := m.cfg.Controller.(SessionDialer).DialSession(ctx, target, dpid)
	if err != nil {
		if uerr := s.undoIsolation(ctx); uerr != nil {
			m.log.WithError(uerr).WithField("bridge", b.name).Warn("restoring the output port's OpenFlow port config failed")
		}
		m.log.WithError(err).WithFields(logrus.Fields{"bridge": b.name, "target": target}).
			Debug("no session through the management socket: taking the bridge over first")
		return nil
	}
	s.sw, s.closeFn = sw, closeFn
	return s
}

// coldAdd is what addColdLocked needs from addLocked.
type coldAdd struct {
	b       *bridgeState
	sess    *coldSession
	mirrors []*mirror
	pre     Program // compiled for generation preGen
	preGen  uint8
	fdb     <-chan fdbResult // nil: addColdLocked reads the MAC table
	isolate []string         // output ports the take-over isolates in OVSDB
	// unlearned: NORMAL's MAC table can have no entry on the output (no
	// output port, a port flowspan created or isolated before); else
	// it is checked (see unlearnedCheck), with noStatic, the answer of
	// staticCheck started before the session was opened.
	unlearned bool
	noStatic  <-chan bool
	// isolated, when the output is isolated over OpenFlow, waits for that
	// and says whether it was done (the first commit waits for it; when it
	// was not, addColdLocked returns errNotIsolated, nothing changed).
	isolated func() bool
	start    time.Time
	undo     *[]func()
	endFast  func(context.Context) // undoes the output's OpenFlow isolation
	log      logrus.FieldLogger
}

type takeOverResult struct {
	target string
	err    error
}

// addColdLocked takes b over while installing its flows through the
// session (see above). It returns the installed program and when the flows
// started going in. Everything it did is in *a.undo.
func (m *Manager) addColdLocked(ctx context.Context, a coldAdd) (Program, time.Duration, error) {
	b := a.b
	bg := context.WithoutCancel(ctx)
	// The MAC table is read when needed: once the output learns nothing
	// more (isolated), and, when the first bundle can go in unseeded
	// (below), after it (a large table's dump takes ovs-vswitchd's main
	// loop milliseconds, which would delay that bundle).
	fdb := sync.OnceValue(func() fdbResult {
		if a.fdb != nil {
			return <-a.fdb
		}
		if a.isolated != nil {
			a.isolated()
		}
		return <-m.readMACTable(ctx, b.name)
	})
	// Can the output be in NORMAL's MAC table? Asked now, answered while
	// the first bundle goes out (see below).
	unlearned := func() bool { return a.unlearned }
	checked := a.unlearned
	if !a.unlearned {
		unlearned, checked = unlearnedCheck(a.sess, a.noStatic)
	}
	// The take-over starts once the first bundle is in: its
	// reconfiguration of ovs-vswitchd would otherwise compete with the
	// bundle. It isolates the output in OVSDB, which flushes what NORMAL
	// learned on the output; if it may have learned anything, the MAC
	// table was read for that bundle.
	tch := make(chan takeOverResult, 1)
	startc := make(chan bool, 1)
	var startOnce sync.Once
	start := func(ok bool) { startOnce.Do(func() { startc <- ok }) }
	defer start(false)
	go func() {
		if !<-startc {
			tch <- takeOverResult{err: errors.New("not started")}
			return
		}
		if !unlearned() {
			fdb()
		}
		target, err := m.cfg.OVSDB.TakeOver(ctx, b.name, a.isolate...)
		tch <- takeOverResult{target, err}
	}()
	var (
		res     *takeOverResult
		handled bool
	)
	result := func() takeOverResult {
		if res == nil {
			r := <-tch
			res = &r
		}
		return *res
	}
	*a.undo = append(*a.undo, func() {
		// A take-over that succeeded but was not taken into account.
		if r := result(); r.err == nil && !handled {
			for _, p := range a.isolate {
				if err := m.cfg.OVSDB.UnisolatePort(bg, b.name, p); err != nil {
					a.log.WithError(err).Warn("rollback: un-isolating output port failed")
				}
			}
			if err := m.cfg.OVSDB.Release(bg, b.name); err != nil {
				a.log.WithError(err).Warn("rollback: releasing bridge failed")
			}
		}
	})

	tPrepared := time.Since(a.start)
	b.synced = false
	var (
		prog Program
		err  error
	)
	// The first copies need not wait for the MAC table (a dump of
	// thousands of entries takes ovs-vswitchd milliseconds) when the output
	// cannot be in it: the pipeline goes in unseeded, copying what it is
	// sure of, then the seeds and the seeded pipeline. Whether the output
	// is in it is checked while that first bundle goes out (its commit
	// waits for the answer).
	isoGate := func(context.Context) error {
		if a.isolated != nil && !a.isolated() {
			return errNotIsolated
		}
		return nil
	}
	var sw Switch = gatedSwitch{a.sess.sw, isoGate}
	early := checked
	if early && !a.unlearned {
		sw = gatedSwitch{a.sess.sw, func(ctx context.Context) error {
			if err := isoGate(ctx); err != nil {
				return err
			}
			if !unlearned() {
				return errOutputLearned
			}
			return nil
		}}
	}
	if early {
		b.facts.Unseeded = true
		none := make(chan fdbResult, 1)
		none <- fdbResult{}
		prog, err = m.applyCompiledLocked(ctx, b, sw, a.mirrors, nil, 0, none)
		b.facts.Unseeded = false
		b.sw = a.sess.sw
		if err == nil {
			m.firstCopyGrace(ctx)
			start(true)
			prog, err = m.seedLocked(ctx, b, a.sess.sw, a.mirrors, fdb())
		} else if errors.Is(err, errOutputLearned) {
			a.log.Debug("the output may be in the bridge's MAC table: the pipeline waits for it")
			b.installed, b.synced, b.fresh = nil, false, true // nothing changed
			early = false
		}
	}
	if !early {
		pre := a.pre
		read := make(chan fdbResult, 1)
		go func() { read <- fdb() }()
		prog, err = m.applyCompiledLocked(ctx, b, gatedSwitch{a.sess.sw, isoGate}, a.mirrors, &pre, a.preGen, read)
		if err == nil {
			m.firstCopyGrace(ctx)
		}
		start(err == nil)
	}
	if err != nil {
		b.installed, b.sw, b.synced = nil, nil, false
		return Program{}, tPrepared, err
	}
	flowsUndo := len(*a.undo)
	*a.undo = append(*a.undo, func() {
		// Through flowspan's connection once it took over.
		if err := b.sw.Apply(bg, diff(b.installed, nil)); err != nil {
			a.log.WithError(err).Warn("rollback: removing flows failed")
			b.synced = false
			return
		}
		b.installed = nil
	})

	r := result()
	if r.err != nil {
		if len(a.isolate) > 0 {
			return prog, tPrepared, fmt.Errorf("isolating output port %q: bridge %s: take over: %w", a.isolate[0], b.name, r.err)
		}
		return prog, tPrepared, fmt.Errorf("bridge %s: take over: %w", b.name, r.err)
	}
	handled = true
	if err := m.tookOverLocked(b, r.target); err != nil {
		b.takenOver = true // so that the rollback releases it
		*a.undo = append(*a.undo, m.releaseUndo(bg, b, a.log))
		return prog, tPrepared, err
	}
	*a.undo = append(*a.undo, m.releaseUndo(bg, b, a.log))
	if len(a.isolate) > 0 {
		*a.undo = slices.Insert(*a.undo, flowsUndo, m.unisolateUndo(bg, b.name, a.isolate[0], a.log))
	}
	facts, err := m.cfg.OVSDB.Bridge(ctx, b.name)
	if err != nil {
		return prog, tPrepared, err
	}
	b.facts, b.dpid = facts, facts.DatapathID
	a.endFast(ctx) // the take-over isolated the output in OVSDB

	// flowspan's own connection takes over from the session.
	sw, ok := m.cfg.Controller.Switch(b.dpid)
	if !ok {
		sw, ok = m.waitSwitch(ctx, b.dpid)
	}
	if !ok {
		return prog, tPrepared, nil // it syncs when it connects
	}
	if m.holdsLocked(ctx, b, sw) {
		b.sw = sw
		return prog, tPrepared, nil
	}
	a.log.Info("flows installed through the management socket not all found over flowspan's connection: syncing again")
	b.synced = false
	if prog, err = m.applyLocked(ctx, b, sw, a.mirrors); err != nil {
		return prog, tPrepared, err
	}
	return prog, tPrepared, nil
}

// firstCopyGrace waits Config.FirstCopyGrace (see there), or until ctx
// ends.
func (m *Manager) firstCopyGrace(ctx context.Context) {
	if m.cfg.FirstCopyGrace <= 0 {
		return
	}
	t := time.NewTimer(m.cfg.FirstCopyGrace)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// errOutputLearned: the output may have entries in NORMAL's MAC table.
var errOutputLearned = errors.New("the output port may be in the bridge's MAC table")

// staticCheck starts asking whether bridge's MAC table has no static
// entries; nil when the MAC table cannot say. It is the slowest part of
// unlearnedCheck (a request to ovs-vswitchd's control socket), so a cold
// add starts it first.
func (m *Manager) staticCheck(ctx context.Context, bridge string) <-chan bool {
	sc, ok := m.cfg.MACTable.(StaticMACCounter)
	if !ok {
		return nil
	}
	res := make(chan bool, 1)
	go func() {
		n, err := sc.StaticMACs(ctx, bridge)
		res <- err == nil && n == 0
	}()
	return res
}

// unlearnedCheck checks whether NORMAL's MAC table can have no entry on
// the output the session isolated over OpenFlow (so it learns nothing
// more): the port had received no packet once isolated (the isolation's
// count) and the table has no static entries (noStatic, from
// staticCheck); NORMAL then sends the port nothing but floods, which it no
// longer does. unlearned waits for the answer (it may be called more than
// once, from any goroutine); ok is false when this cannot be checked
// (unlearned then says false).
func unlearnedCheck(sess *coldSession, noStatic <-chan bool) (unlearned func() bool, ok bool) {
	if noStatic == nil {
		return func() bool { return false }, false
	}
	return sync.OnceValue(func() bool {
		none := <-noStatic
		return sess.isolated() && sess.isoRxOK && sess.isoRx == 0 && none
	}), true
}

// seedLocked seeds b's shadow MAC table from the MAC table read r and
// installs the seeded pipeline (b is synced on sw, unseeded).
func (m *Manager) seedLocked(ctx context.Context, b *bridgeState, sw Switch, mirrors []*mirror, r fdbResult) (Program, error) {
	now, later := m.macFlowsLocked(b, mirrors, r)
	b.seeds = append(now, b.seeds...)
	prog, err := m.applyLocked(ctx, b, sw, mirrors)
	if err != nil {
		return prog, err
	}
	n := m.seedLaterLocked(ctx, b, sw, later)
	m.log.WithFields(logrus.Fields{"bridge": b.name, "macs_now": len(now), "macs_later": n}).Debug("shadow MAC table seeded after the first copies")
	return prog, nil
}

// holdsLocked reports whether sw holds exactly as many flows of b's
// generation as b installed (learned MAC flows have generation 0).
func (m *Manager) holdsLocked(ctx context.Context, b *bridgeState, sw Switch) bool {
	c, mask := m.cfg.Compiler.Cookies().GenerationMatch(b.gen)
	st, err := sw.FlowStats(ctx, c, mask)
	return err == nil && len(st) == len(b.installed)
}

// releaseUndo returns a rollback step that releases b.
func (m *Manager) releaseUndo(ctx context.Context, b *bridgeState, log logrus.FieldLogger) func() {
	return func() {
		if err := m.releaseLocked(ctx, b); err != nil {
			log.WithError(err).Warn("rollback: releasing bridge failed")
		}
	}
}
