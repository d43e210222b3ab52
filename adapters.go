package flowspan

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"github.com/flowspan/flowspan/api"
	"github.com/flowspan/flowspan/flows"
	"github.com/flowspan/flowspan/ofctrl"
	"github.com/flowspan/flowspan/ovsdb"
)

// Adapters from the real packages to the Manager's interfaces.

// NewOVSDB adapts an ovsdb client. mode is how bridges are taken over: nil
// means ovsdb.ServiceMode{} (a passive punix:<rundir>/<bridge>.flowspan
// target flowspan dials); ovsdb.ControllerMode{Target: listen} makes the
// switch connect to the controller's listener (serve --listen).
func NewOVSDB(cl *ovsdb.Client, mode ovsdb.Mode) OVSDB {
	if mode == nil {
		mode = ovsdb.ServiceMode{}
	}
	a := &ovsdbAdapter{cl: cl, mode: mode}
	if rundir := runDirOfEndpoint(cl.Endpoint()); rundir != "" {
		a.macs = AppctlMACTable{RunDir: rundir}
	}
	return a
}

type ovsdbAdapter struct {
	cl   *ovsdb.Client
	mode ovsdb.Mode
	macs MACTableReader // nil for a remote OVS
}

// FDBShow implements MACTableReader: through ovs-vswitchd's control socket
// in the run directory of a unix: endpoint; a remote OVS (tcp:, ssl:) has
// none (ErrNoMACTable).
func (a *ovsdbAdapter) FDBShow(ctx context.Context, bridge string) (string, error) {
	if a.macs == nil {
		return "", fmt.Errorf("bridge %s: %w", bridge, errNoRunDir)
	}
	return a.macs.FDBShow(ctx, bridge)
}

// StaticMACs implements StaticMACCounter like FDBShow.
func (a *ovsdbAdapter) StaticMACs(ctx context.Context, bridge string) (int, error) {
	sc, ok := a.macs.(StaticMACCounter)
	if !ok {
		return 0, fmt.Errorf("bridge %s: %w", bridge, errNoRunDir)
	}
	return sc.StaticMACs(ctx, bridge)
}

var (
	_ OVSDB            = (*ovsdbAdapter)(nil)
	_ MACTableReader   = (*ovsdbAdapter)(nil)
	_ StaticMACCounter = (*ovsdbAdapter)(nil)
	_ Management       = (*ovsdbAdapter)(nil)
	_ Syncer           = (*ovsdbAdapter)(nil)
)

// Sync implements Syncer.
func (a *ovsdbAdapter) Sync(ctx context.Context) error { return a.cl.Sync(ctx) }

// ManagementTarget implements Management: the bridge's .mgmt socket in the
// run directory of a unix: endpoint, in service mode, if it exists.
func (a *ovsdbAdapter) ManagementTarget(bridge string) string {
	if _, ok := a.mode.(ovsdb.ServiceMode); !ok {
		return ""
	}
	rundir := runDirOfEndpoint(a.cl.Endpoint())
	if rundir == "" {
		return ""
	}
	path := filepath.Join(rundir, bridge+".mgmt")
	if fi, err := os.Stat(path); err != nil || fi.Mode().Type() != os.ModeSocket {
		return ""
	}
	return "unix:" + path
}

func (a *ovsdbAdapter) Bridge(ctx context.Context, name string) (Bridge, error) {
	b, err := a.cl.Bridge(ctx, name)
	if errors.Is(err, ovsdb.ErrNotFound) {
		return Bridge{}, fmt.Errorf("bridge %q: %w", name, ErrNoBridge)
	}
	if err != nil {
		return Bridge{}, err
	}
	out := Bridge{Name: b.Name, DatapathID: b.DatapathID, MACAgingTime: b.MACAgingTime, Ports: make(map[string]Port, len(b.Ports)),
		HandedOver: b.Mode != ""}
	for n, p := range b.Ports {
		out.Ports[n] = Port{Name: p.Name, OFPort: p.OFPort, Type: p.Type, Tag: p.Tag, Trunks: p.Trunks,
			VLANMode: p.VLANMode, Flowspan: p.Flowspan, Isolated: p.Isolated}
	}
	return out, nil
}

func (a *ovsdbAdapter) Watch(ctx context.Context) <-chan string {
	in := a.cl.Watch(ctx)
	out := make(chan string)
	go func() {
		defer close(out)
		for ch := range in {
			select {
			case out <- ch.Bridge:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func (a *ovsdbAdapter) CreatePort(ctx context.Context, bridge string, p OutputPort) (uint32, error) {
	var (
		ofport uint32
		err    error
	)
	if p.Tunnel == nil {
		ofport, err = a.cl.CreateInternalPort(ctx, bridge, p.Name)
	} else {
		t := p.Tunnel
		remote, perr := netip.ParseAddr(t.Remote)
		if perr != nil {
			return 0, api.WithCode(api.CodeInvalid, fmt.Errorf("tunnel %s: remote %q: not an IP address", t.Type, t.Remote))
		}
		ofport, err = a.cl.CreateTunnelPort(ctx, bridge, p.Name, ovsdb.Tunnel{Type: t.Type, Remote: remote, Key: t.Key,
			ERSPANVersion: t.ERSPANVer, ERSPANIndex: t.ERSPANIdx, ERSPANDir: t.ERSPANDir, ERSPANHwID: t.ERSPANHwID})
	}
	if errors.Is(err, ovsdb.ErrInvalid) || errors.Is(err, ovsdb.ErrExists) {
		return 0, api.WithCode(api.CodeInvalid, err)
	}
	if err != nil {
		return 0, err
	}
	if err := a.cl.IsolatePort(ctx, bridge, p.Name); err != nil {
		if rerr := a.cl.RemovePort(context.WithoutCancel(ctx), bridge, p.Name); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return 0, err
	}
	return ofport, nil
}

func (a *ovsdbAdapter) RemovePort(ctx context.Context, bridge, name string) error {
	err := a.cl.RemovePort(ctx, bridge, name)
	if errors.Is(err, ovsdb.ErrNotFound) {
		return nil
	}
	return err
}

func (a *ovsdbAdapter) IsolatePort(ctx context.Context, bridge, name string) error {
	return a.cl.IsolatePort(ctx, bridge, name)
}

func (a *ovsdbAdapter) UnisolatePort(ctx context.Context, bridge, name string) error {
	err := a.cl.UnisolatePort(ctx, bridge, name)
	if errors.Is(err, ovsdb.ErrNotFound) {
		return nil
	}
	return err
}

// TakeOver implements Handover. A passive unix: target is returned once
// ovs-vswitchd created its socket (bounded wait), so the first dial
// succeeds instead of costing the controller's reconnect backoff.
func (a *ovsdbAdapter) TakeOver(ctx context.Context, bridge string, isolate ...string) (string, error) {
	target, err := a.cl.TakeOver(ctx, bridge, a.mode, isolate...)
	if err == nil {
		waitSocket(ctx, target, socketWait)
	}
	return target, err
}

func (a *ovsdbAdapter) Release(ctx context.Context, bridge string) error {
	err := a.cl.Release(ctx, bridge)
	if errors.Is(err, ovsdb.ErrNotFound) {
		return fmt.Errorf("bridge %q: %w", bridge, ErrNoBridge)
	}
	return err
}

// OFController adapts an ofctrl.Controller. It consumes the controller's
// Events (nobody else may read them) until the controller is closed; its
// goroutine ends then.
type OFController struct {
	c       *ofctrl.Controller
	changed chan struct{}
	done    chan struct{}

	mu      sync.Mutex
	epoch   map[uint64]uint64 // dpid → connection number (0 = not connected)
	next    uint64
	handles map[uint64]*ofctrl.Switch // valid across reconnects

	pmu       sync.Mutex
	portConns map[string]*ofctrl.PortConn // OpenFlow 1.0, by target
	sessions  map[string]*session         // idle sessions, by target
	pclosed   bool
	pwg       sync.WaitGroup // PrepareIsolation's dials
}

// session is a session DialSession opened; it outlives the context of the
// add that opened it, so that the next add through the same socket (after
// the bridge was released, say) need not open one again.
type session struct {
	sw      *ofctrl.Switch
	closeFn func()
	cancel  context.CancelFunc
}

func (s *session) close() {
	s.closeFn()
	s.cancel()
}

var (
	_ Controller    = (*OFController)(nil)
	_ PortIsolator  = (*OFController)(nil)
	_ SessionDialer = (*OFController)(nil)
)

// DialSession implements SessionDialer with ofctrl's sessions. closeFn
// keeps the session for the next DialSession to the same target while it
// stays open (ofctrl keeps it alive with echo requests, and notices when
// the switch closes it); ctx bounds the dial only.
func (a *OFController) DialSession(ctx context.Context, target string, dpid uint64) (Switch, func(), error) {
	a.pmu.Lock()
	s := a.sessions[target]
	delete(a.sessions, target)
	a.pmu.Unlock()
	if s != nil && (!s.sw.Connected() || s.sw.DPID() != dpid) {
		s.close()
		s = nil
	}
	if s == nil {
		dctx, cancel := context.WithCancel(context.Background())
		stop := context.AfterFunc(ctx, cancel)
		sw, closeFn, err := a.c.DialSession(dctx, target)
		if !stop() && err == nil { // ctx ended while dialling
			closeFn()
			err = ctx.Err()
		}
		if err != nil {
			cancel()
			return nil, nil, err
		}
		s = &session{sw: sw, closeFn: closeFn, cancel: cancel}
		if got := sw.DPID(); got != dpid {
			s.close()
			return nil, nil, fmt.Errorf("session with %s: datapath id %016x, OVSDB says %016x", target, got, dpid)
		}
	}
	a.mu.Lock()
	a.next++ // a value no connection has
	ep := a.next
	a.mu.Unlock()
	return ofSwitch{sw: s.sw, epoch: ep}, sync.OnceFunc(func() { a.keepSession(target, s) }), nil
}

// keepSession keeps s, done with, for the next DialSession to target, or
// closes it.
func (a *OFController) keepSession(target string, s *session) {
	a.pmu.Lock()
	if !a.pclosed && a.sessions[target] == nil && s.sw.Connected() {
		if a.sessions == nil {
			a.sessions = map[string]*session{}
		}
		a.sessions[target] = s
		a.pmu.Unlock()
		return
	}
	a.pmu.Unlock()
	s.close()
}

// NewController adapts c. Call c.Listen yourself for controller mode.
func NewController(c *ofctrl.Controller) *OFController {
	a := &OFController{c: c, changed: make(chan struct{}, 1), done: make(chan struct{}), epoch: map[uint64]uint64{},
		handles: map[uint64]*ofctrl.Switch{}}
	go a.run()
	return a
}

// Done is closed when the adapter's goroutine ended (the controller was
// closed).
func (a *OFController) Done() <-chan struct{} { return a.done }

func (a *OFController) run() {
	defer close(a.done)
	defer a.closePortConns()
	for ev := range a.c.Events() {
		a.mu.Lock()
		switch ev := ev.(type) {
		case ofctrl.Connected:
			a.next++
			a.epoch[ev.DPID] = a.next
		case ofctrl.Disconnected:
			delete(a.epoch, ev.DPID)
		default:
			a.mu.Unlock()
			continue
		}
		a.mu.Unlock()
		select {
		case a.changed <- struct{}{}:
		default:
		}
	}
}

// Dial implements Controller.
func (a *OFController) Dial(ctx context.Context, target string) error { return a.c.Dial(ctx, target) }

// Changed implements Controller.
func (a *OFController) Changed() <-chan struct{} { return a.changed }

// Switch implements Controller: the value identifies the connection.
func (a *OFController) Switch(dpid uint64) (Switch, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ep := a.epoch[dpid]
	if ep == 0 {
		return nil, false
	}
	sw := a.handles[dpid]
	if sw == nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // only take a switch that is connected now
		var err error
		if sw, err = a.c.Switch(ctx, dpid); err != nil {
			return nil, false
		}
		a.handles[dpid] = sw
	}
	return ofSwitch{sw: sw, epoch: ep}, true
}

// IsolateNow implements PortIsolator with OpenFlow 1.0's NO_FLOOD and
// NO_RECV port config bits (OpenFlow 1.3 has no NO_FLOOD), on a second,
// OpenFlow 1.0 connection to target.
// The port's receive count comes in the same round trip (ModPortCounting).
func (a *OFController) IsolateNow(ctx context.Context, target string, dpid uint64, ofport uint32, count bool) (Isolation, error) {
	const bits = ofctrl.PortConfigNoFlood | ofctrl.PortConfigNoRecv
	r, err := a.modPort(ctx, target, dpid, ofport, bits, bits, count)
	if err != nil {
		return Isolation{}, err
	}
	return Isolation{RxPackets: r.RxPackets, RxErr: r.RxErr, Undo: func(ctx context.Context) error {
		if r.Prev == bits {
			return nil
		}
		_, err := a.modPort(ctx, target, dpid, ofport, r.Prev, bits, false)
		return err
	}}, nil
}

// modPort sets port config bits over the OpenFlow 1.0 connection kept per
// target (a new one when there is none or it went down: the switch closed
// it, e.g. with the listener of a released bridge).
func (a *OFController) modPort(ctx context.Context, target string, dpid uint64, ofport, config, mask uint32, count bool) (ofctrl.PortMod, error) {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	if a.portConns == nil {
		a.portConns = map[string]*ofctrl.PortConn{}
	}
	for attempt := 0; ; attempt++ {
		pc := a.portConns[target]
		if pc == nil || pc.DPID() != dpid || isDown(pc) {
			if pc != nil {
				_ = pc.Close()
			}
			var err error
			if pc, err = a.c.DialPortConn(ctx, target, dpid); err != nil {
				delete(a.portConns, target)
				return ofctrl.PortMod{}, err
			}
			a.portConns[target] = pc
			attempt++ // a fresh connection gets no second try
		}
		var (
			r   ofctrl.PortMod
			err error
		)
		if count {
			r, err = pc.ModPortCounting(ctx, ofport, config, mask)
		} else {
			r.Prev, err = pc.ModPort(ctx, ofport, config, mask)
		}
		if err == nil {
			return r, nil
		}
		_ = pc.Close()
		delete(a.portConns, target)
		if attempt > 0 || ctx.Err() != nil || errors.Is(err, ofctrl.ErrRefused) {
			return ofctrl.PortMod{}, err
		}
	}
}

// PrepareIsolation implements PortIsolator: it opens the OpenFlow 1.0
// connection to target in the background unless there is one.
func (a *OFController) PrepareIsolation(target string, dpid uint64) {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	if pc := a.portConns[target]; a.pclosed || (pc != nil && !isDown(pc)) {
		return
	}
	a.pwg.Add(1)
	go func() {
		defer a.pwg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), prepareTimeout)
		defer cancel()
		pc, err := a.c.DialPortConn(ctx, target, dpid)
		if err != nil {
			return // IsolateNow dials again
		}
		a.pmu.Lock()
		defer a.pmu.Unlock()
		if old := a.portConns[target]; a.pclosed || (old != nil && !isDown(old)) {
			_ = pc.Close()
			return
		} else if old != nil {
			_ = old.Close()
		}
		if a.portConns == nil {
			a.portConns = map[string]*ofctrl.PortConn{}
		}
		a.portConns[target] = pc
	}()
}

// isDown says whether pc's connection is down.
func isDown(pc *ofctrl.PortConn) bool {
	select {
	case <-pc.Done():
		return true
	default:
		return false
	}
}

// prepareTimeout bounds PrepareIsolation's dial.
const prepareTimeout = 5 * time.Second

// closePortConns closes the OpenFlow 1.0 connections once the dials
// PrepareIsolation started are over, and the idle sessions.
func (a *OFController) closePortConns() {
	a.pmu.Lock()
	a.pclosed = true
	a.pmu.Unlock()
	a.pwg.Wait()
	a.pmu.Lock()
	defer a.pmu.Unlock()
	for t, pc := range a.portConns {
		_ = pc.Close()
		delete(a.portConns, t)
	}
	for t, s := range a.sessions {
		s.close()
		delete(a.sessions, t)
	}
}

// ofSwitch is one connection to a switch.
type ofSwitch struct {
	sw    *ofctrl.Switch
	epoch uint64
}

func (s ofSwitch) Apply(ctx context.Context, ch Changes) error {
	return s.ApplyGated(ctx, ch, nil)
}

// ApplyGated implements GatedApplier.
func (s ofSwitch) ApplyGated(ctx context.Context, ch Changes, gate func(context.Context) error) error {
	fc := flows.Changes{}
	conv := func(in []FlowEntry) ([]flows.Flow, error) {
		out := make([]flows.Flow, 0, len(in))
		for _, f := range in {
			ff, ok := flowsFlow(f.Flow)
			if !ok {
				return nil, fmt.Errorf("flow %s: not compiled by package flows", f.Flow)
			}
			out = append(out, *ff)
		}
		return out, nil
	}
	var err error
	if fc.Delete, err = conv(ch.Delete); err != nil {
		return err
	}
	if fc.Modify, err = conv(ch.Modify); err != nil {
		return err
	}
	if fc.Add, err = conv(ch.Add); err != nil {
		return err
	}
	for _, cm := range ch.DeleteCookies {
		fc.DeleteCookies = append(fc.DeleteCookies, flows.CookieMatch{Value: cm.Cookie, Mask: cm.Mask})
	}
	mods, err := fc.FlowMods()
	if err != nil {
		return err
	}
	return s.sw.ApplyGated(ctx, mods, gate)
}

// Connected implements Liveness.
func (s ofSwitch) Connected() bool { return s.sw.Connected() }

func (s ofSwitch) FlowStats(ctx context.Context, cookie, mask uint64) ([]FlowStat, error) {
	st, err := s.sw.FlowStats(ctx, ofctrl.FlowFilter{Table: ofctrl.TableAll, Cookie: cookie, CookieMask: mask})
	if err != nil {
		return nil, err
	}
	out := make([]FlowStat, len(st))
	for i, f := range st {
		out[i] = FlowStat{Table: f.Table, Priority: f.Priority, Cookie: f.Cookie, Packets: f.Packets, Bytes: f.Bytes}
	}
	return out, nil
}

// compiledFlow is a flows.Flow as the Manager tracks it.
type compiledFlow struct{ flows.Flow }

// SameActions compares actions without rendering them.
func (f compiledFlow) SameActions(o Flow) bool { return sameFlowsActions(&f.Flow, o) }

// cachedFlow is a flows.Flow of a flows.Compiler's cached part (read-only,
// shared by every program that has it): pointer-sized, so tracking it
// neither allocates nor copies the flow.
type cachedFlow struct{ *flows.Flow }

// SameActions compares actions without rendering them.
func (f cachedFlow) SameActions(o Flow) bool { return sameFlowsActions(f.Flow, o) }

// flowsFlow returns the flows.Flow behind a compiled flow.
func flowsFlow(f Flow) (*flows.Flow, bool) {
	switch f := f.(type) {
	case cachedFlow:
		return f.Flow, true
	case compiledFlow:
		return &f.Flow, true
	}
	return nil, false
}

// sameFlowsActions compares f's actions with o's: the same flow or action
// slice (flows reused from an earlier compile share them) or equal values.
func sameFlowsActions(f *flows.Flow, o Flow) bool {
	g, ok := flowsFlow(o)
	if !ok || len(f.Actions) != len(g.Actions) {
		return false
	}
	return f == g || len(f.Actions) == 0 || &f.Actions[0] == &g.Actions[0] || reflect.DeepEqual(f.Actions, g.Actions)
}

// NewFlowsCompiler adapts package flows. cfg.Generation is ignored (the
// Manager picks generations). It keeps a flows.Compiler per bridge, so a
// compile after one mirror changed costs about that mirror's flows.
func NewFlowsCompiler(cfg flows.Config) Compiler {
	return flowsCompiler{cfg: cfg, cache: newCompileCache()}
}

// flowsCompiler adapts package flows; without a cache (the zero value's)
// every compile starts from scratch.
type flowsCompiler struct {
	cfg   flows.Config
	cache *compileCache
}

var _ Compiler = flowsCompiler{}

func toFlowsMirror(spec api.MirrorSpec, id uint32) flows.Mirror {
	return flows.Mirror{Name: spec.Name, ID: uint16(id), Ingress: spec.Ingress, Egress: spec.Egress, Ports: spec.Ports,
		VLANs: spec.VLANs, All: spec.All, Filters: spec.Match, Snaplen: spec.Snaplen,
		Output: flows.Output{Port: spec.Output.Port, VLAN: spec.Output.VLAN}}
}

func (c flowsCompiler) Cookies() CookieLayout {
	return CookieLayout{App: uint64(flows.CookieApp) << 56, AppMask: flows.CookieMaskApp, GenShift: 48, GenMask: 0xff,
		Learned: uint64(flows.LearnedCookie(0)), DropSeeds: uint64(flows.DropSeedCookie(0))}
}

func (c flowsCompiler) Restore() []FlowEntry {
	if c.cfg.TableBase != 0 || c.cfg.ContinueTable != 0 {
		return nil // embedded in a host pipeline: the host owns table 0
	}
	f := flows.Flow{Table: 0, Priority: 0, Actions: []flows.Action{flows.ActNormal{}}}
	return []FlowEntry{{Table: f.Table, Priority: f.Priority, Match: f.Match, Flow: compiledFlow{f}}}
}

func (c flowsCompiler) Check(spec api.MirrorSpec) error {
	return toFlowsMirror(spec, 0).Validate()
}

var apiDirection = map[flows.Direction]api.Direction{
	flows.DirIngress: api.DirIngress, flows.DirEgress: api.DirEgress,
	flows.DirFlood: api.DirFlood, flows.DirAll: api.DirAll,
}

func (c flowsCompiler) Compile(gen uint8, mirrors []CompileMirror, b Bridge) (Program, error) {
	cfg := c.cfg
	cfg.Generation = gen
	in := make([]flows.Mirror, len(mirrors))
	names := make(map[uint16]string, len(mirrors))
	for i, m := range mirrors {
		if m.ID == 0 || m.ID > 0xffff {
			return Program{}, fmt.Errorf("mirror %q: id %d out of range 1-65535", m.Spec.Name, m.ID)
		}
		in[i] = toFlowsMirror(m.Spec, m.ID)
		names[uint16(m.ID)] = m.Spec.Name
	}
	prog := Program{Missing: map[string][]string{}, Inactive: map[string]error{}}
	var res *flows.Result
	if c.cache != nil {
		var err error
		if res, prog.Flows, err = c.cache.compile(b.Name, cfg, in, flowsFacts(b), names); err != nil {
			return Program{}, err
		}
	} else {
		var err error
		if res, err = flows.Compile(cfg, in, flowsFacts(b)); err != nil {
			return Program{}, err
		}
		prog.Flows = make([]FlowEntry, len(res.Flows))
		for i, f := range res.Flows {
			prog.Flows[i] = FlowEntry{Table: f.Table, Priority: f.Priority, Cookie: f.Cookie, Match: f.Match,
				Mirror: names[flows.Cookie(f.Cookie).Mirror()], Flow: compiledFlow{f}}
		}
	}
	status := res.Status
	for name, st := range status {
		if len(st.Missing) > 0 {
			prog.Missing[name] = st.Missing
		}
		if !st.Active {
			err := st.Err
			if err == nil {
				err = errors.New("not installed")
			}
			if errors.Is(err, flows.ErrConflict) {
				err = fmt.Errorf("%w: %w", ErrConflict, err)
			}
			prog.Inactive[name] = err
		}
	}
	resGen := res.Generation
	prog.Count = func(stats []FlowStat) map[string]api.MirrorStats {
		counts := make([]flows.FlowCount, len(stats))
		for i, s := range stats {
			counts[i] = flows.FlowCount{Cookie: s.Cookie, Packets: s.Packets, Bytes: s.Bytes}
		}
		agg := flows.Aggregate(resGen, counts)
		out := map[string]api.MirrorStats{}
		for name, st := range status {
			ms := api.MirrorStats{Name: name, Selections: []api.SelectionStats{}}
			mc := agg[st.ID]
			if mc != nil {
				ms.Packets, ms.Bytes = mc.Mirrored.Packets, mc.Mirrored.Bytes
			}
			for _, sel := range st.Selections {
				ss := api.SelectionStats{Port: sel.Port, Direction: apiDirection[sel.Direction]}
				if mc != nil {
					c := mc.Selections[sel.Index]
					ss.Packets, ss.Bytes = c.Packets, c.Bytes
				}
				ms.Selections = append(ms.Selections, ss)
			}
			out[name] = ms
		}
		return out
	}
	return prog, nil
}

func flowsFacts(b Bridge) flows.BridgeFacts {
	facts := flows.BridgeFacts{Ports: make(map[string]flows.PortFacts, len(b.Ports)), MACAgingTime: b.MACAgingTime, Unseeded: b.Unseeded}
	for n, p := range b.Ports {
		facts.Ports[n] = flows.PortFacts{Name: p.Name, OFPort: p.OFPort, Tag: p.Tag, Trunks: p.Trunks,
			VLANMode: p.VLANMode, Type: p.Type, Isolated: p.Isolated}
	}
	return facts
}
