package flowspan

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowspan/flowspan/api"
	"github.com/sirupsen/logrus"
)

// Config configures a Manager. OVSDB, Controller and Compiler are required;
// every other zero field means its default.
type Config struct {
	// Logger receives the Manager's logs (fields: bridge, mirror, dpid).
	// nil discards.
	Logger logrus.FieldLogger
	// OVSDB reads bridges, creates output ports and hands bridges over.
	OVSDB OVSDB
	// Controller connects to switches.
	Controller Controller
	// Compiler turns mirrors into flows (NewFlowsCompiler).
	Compiler Compiler
	// StatePath is the state file holding mirror definitions; "" keeps them
	// in memory only.
	StatePath string
	// ConnectTimeout bounds how long AddMirror waits for a switch it has just
	// taken over to connect before answering (the mirror then stays pending
	// and is installed when the switch connects). Default 10 s.
	ConnectTimeout time.Duration
	// RetryInterval is how often bridges whose reconcile failed are retried.
	// Default 2 s.
	RetryInterval time.Duration
	// MACTable reads a bridge's MAC learning table to seed the compiler's
	// shadow MAC table on every full sync (take-over, reconnect), when the
	// Compiler is a MACSeeder. nil: OVSDB's own when it implements
	// MACTableReader (NewOVSDB's does, through ovs-appctl, for a unix:
	// endpoint). Without one egress prediction starts cold.
	MACTable MACTableReader
	// IdleRelease is how long the Manager must have been idle after a
	// burst of changes (adds, deletes, reconciles) before it returns the
	// memory their compiles used to the OS once (debug.FreeOSMemory; the
	// Go runtime alone keeps the high-water mark for minutes). Default 1 s;
	// negative disables it.
	IdleRelease time.Duration
	// TakeOverFirst makes a bridge's first mirror wait for the take-over
	// (flowspan's controller target, a reconfiguration, a connection)
	// instead of going in through the bridge's management socket while the
	// take-over is applied (cold.go), which gives a first copy about as
	// fast as a native Mirror's. The management socket is used only in
	// service mode with a local unix: OVSDB endpoint; this forces the
	// slower order everywhere.
	TakeOverFirst bool
	// FirstCopyGrace is how long a bridge's first mirror, once its flows
	// are in (through the management socket), leaves ovs-vswitchd's main
	// loop to the packets that wait for them before the work that holds
	// that loop up: the take-over's reconfiguration and the dump of a
	// large MAC table (tens of milliseconds for 10,000 entries). On the
	// userspace datapath the same loop handles the upcalls of new flows,
	// so without it the first copies wait for that work. Default 5 ms;
	// negative: none.
	FirstCopyGrace time.Duration
}

// Manager owns the desired mirrors of every bridge and reconciles switches
// with them. It implements api.Backend. All methods are safe for concurrent
// use; changes are serialized.
type Manager struct {
	cfg Config
	log logrus.FieldLogger

	mu      sync.Mutex
	mirrors map[string]*mirror
	bridges map[string]*bridgeState
	// isolated: VLAN settings of output ports before isolation, by
	// bridge+"\x00"+port (persisted).
	isolated map[string]isolatedPort
	runCtx   context.Context // set by Run; dial contexts derive from it
	// coldLogged: bridges for which "MAC table not readable" was logged.
	coldLogged map[string]bool
	// touched receives a value (coalesced) after each change; Run frees
	// memory once IdleRelease after the last one.
	touched      chan struct{}
	freeOSMemory func()

	ready     chan struct{} // closed when Run has started
	readyOnce sync.Once
	stopped   chan struct{} // closed when Run has returned
	started   atomic.Bool
	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

var _ api.Backend = (*Manager)(nil)

// mirror is one desired mirror.
type mirror struct {
	spec        api.MirrorSpec
	origin      api.Origin
	id          uint32
	createdPort string
	status      api.Status
	// enc is the mirror's state-file encoding (made on first save).
	enc *encodedMirror
}

// bridgeState is what the Manager knows about one bridge it manages.
type bridgeState struct {
	name       string
	dpid       uint64
	facts      Bridge
	takenOver  bool
	dialCancel context.CancelFunc
	// target is what flowspan dials to reach the switch ("" when the
	// switch connects to flowspan).
	target string
	gen    uint8
	// synced: a full sync happened on connection sw and installed is what
	// the switch holds; prog is the program installed.
	synced    bool
	sw        Switch
	installed []FlowEntry
	prog      Program
	// failed: the last reconcile failed; retried periodically.
	failed bool
	// seeds are MAC-table flows to install with the next change (entries
	// on an output port read before it was isolated; see MACSeeder).
	seeds []FlowEntry
	// fresh: the bridge was not handed over when its first mirror came
	// (see applyCompiledLocked).
	fresh bool
}

// New returns a Manager with the mirrors of the state file (if any). Nothing
// is touched on OVS until Run.
func New(cfg Config) (*Manager, error) {
	if cfg.OVSDB == nil || cfg.Controller == nil || cfg.Compiler == nil {
		return nil, errors.New("flowspan manager: OVSDB, Controller and Compiler are required")
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 2 * time.Second
	}
	if cfg.IdleRelease == 0 {
		cfg.IdleRelease = time.Second
	}
	if cfg.FirstCopyGrace == 0 {
		cfg.FirstCopyGrace = 5 * time.Millisecond
	}
	if cfg.MACTable == nil {
		cfg.MACTable, _ = cfg.OVSDB.(MACTableReader)
	}
	log := cfg.Logger
	if log == nil {
		l := logrus.New()
		l.Out = io.Discard
		log = l
	}
	m := &Manager{
		cfg:          cfg,
		log:          log,
		mirrors:      map[string]*mirror{},
		bridges:      map[string]*bridgeState{},
		isolated:     map[string]isolatedPort{},
		coldLogged:   map[string]bool{},
		touched:      make(chan struct{}, 1),
		freeOSMemory: debug.FreeOSMemory,
		ready:        make(chan struct{}),
		stopped:      make(chan struct{}),
		closed:       make(chan struct{}),
	}
	if cfg.StatePath != "" {
		st, err := loadState(cfg.StatePath)
		if err != nil {
			return nil, err
		}
		for _, ip := range st.Isolated {
			m.isolated[ip.Bridge+"\x00"+ip.Port] = ip
		}
		for _, sm := range st.Mirrors {
			if _, dup := m.mirrors[sm.Spec.Name]; dup {
				return nil, fmt.Errorf("state file %s: mirror %q defined twice", cfg.StatePath, sm.Spec.Name)
			}
			m.mirrors[sm.Spec.Name] = &mirror{spec: sm.Spec, origin: sm.Origin, id: sm.ID, createdPort: sm.CreatedPort,
				status: api.Status{State: api.StatePending, Detail: "not reconciled yet"}}
			m.bridge(sm.Spec.Bridge)
		}
		// Mirrors without an id (a hand-written state file) get one; ids
		// must be unique per bridge.
		names := make([]string, 0, len(m.mirrors))
		for n := range m.mirrors {
			names = append(names, n)
		}
		sort.Strings(names)
		seen := map[string]map[uint32]bool{}
		for _, n := range names {
			mi := m.mirrors[n]
			if seen[mi.spec.Bridge] == nil {
				seen[mi.spec.Bridge] = map[uint32]bool{}
			}
			if mi.id == 0 || seen[mi.spec.Bridge][mi.id] {
				mi.id = 0
				mi.id = m.allocIDLocked(mi.spec.Bridge)
			}
			seen[mi.spec.Bridge][mi.id] = true
		}
	}
	return m, nil
}

// bridge returns the state of bridge name, creating it.
func (m *Manager) bridge(name string) *bridgeState {
	b := m.bridges[name]
	if b == nil {
		b = &bridgeState{name: name}
		m.bridges[name] = b
	}
	return b
}

func (m *Manager) mirrorsOf(bridge string) []*mirror {
	var out []*mirror
	for _, mi := range m.mirrors {
		if mi.spec.Bridge == bridge {
			out = append(out, mi)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].spec.Name < out[j].spec.Name })
	return out
}

// Run reconciles until ctx ends or Close is called: it removes ephemeral
// mirrors left by a previous run, takes over the bridges that have mirrors,
// then follows OVSDB changes and switch connections. It leaves flows in place
// when it returns, so forwarding and mirroring continue.
func (m *Manager) Run(ctx context.Context) error {
	if !m.started.CompareAndSwap(false, true) {
		return errors.New("flowspan manager: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.wg.Add(1)
	defer m.wg.Done()
	defer close(m.stopped)
	go func() {
		select {
		case <-m.closed:
			cancel()
		case <-ctx.Done():
		}
	}()

	watch := m.cfg.OVSDB.Watch(ctx)
	changed := m.cfg.Controller.Changed()

	m.mu.Lock()
	m.runCtx = ctx
	m.removeEphemeralLocked(ctx)
	for _, name := range m.bridgeNamesLocked() {
		m.reconcileLocked(ctx, m.bridges[name])
	}
	m.mu.Unlock()
	m.readyOnce.Do(func() { close(m.ready) })

	tick := time.NewTicker(m.cfg.RetryInterval)
	defer tick.Stop()
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	defer idle.Stop()
	for {
		select {
		case <-m.touched:
			if m.cfg.IdleRelease > 0 {
				idle.Reset(m.cfg.IdleRelease)
			}
		case <-idle.C:
			start := time.Now()
			m.freeOSMemory()
			m.log.WithField("ms", ms(time.Since(start))).Debug("idle: memory returned to the OS")
		case <-ctx.Done():
			m.mu.Lock()
			for _, b := range m.bridges {
				if b.dialCancel != nil {
					b.dialCancel()
					b.dialCancel = nil
				}
			}
			m.mu.Unlock()
			return nil
		case name, ok := <-watch:
			if !ok {
				watch = nil
				continue
			}
			m.mu.Lock()
			if name == "" {
				for _, n := range m.bridgeNamesLocked() {
					m.reconcileLocked(ctx, m.bridges[n])
				}
			} else if b := m.bridges[name]; b != nil {
				m.reconcileLocked(ctx, b)
			} else {
				m.adoptLocked(ctx, name)
			}
			m.mu.Unlock()
		case <-changed:
			m.switchesChanged(ctx)
		case <-tick.C:
			m.mu.Lock()
			for _, n := range m.bridgeNamesLocked() {
				if b := m.bridges[n]; b.failed {
					m.reconcileLocked(ctx, b)
				}
			}
			m.mu.Unlock()
		}
	}
}

// switchesChanged reacts to switches connecting and disconnecting: a new
// connection gets a full sync, a lost one leaves the mirrors pending.
func (m *Manager) switchesChanged(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.bridgeNamesLocked() {
		b := m.bridges[n]
		if !b.takenOver {
			continue
		}
		if b.dpid == 0 {
			m.reconcileLocked(ctx, b) // facts not known yet
			continue
		}
		sw, ok := m.cfg.Controller.Switch(b.dpid)
		log := m.log.WithFields(logrus.Fields{"bridge": b.name, "dpid": fmt.Sprintf("%016x", b.dpid)})
		switch {
		case ok && (sw != b.sw || !b.synced):
			log.Info("switch connected: full sync")
			m.reconcileLocked(ctx, b)
			m.prepareIsolationLocked(b) // the old OpenFlow 1.0 connection went down with the switch
		case !ok && b.sw != nil:
			log.Warn("switch disconnected")
			b.synced, b.sw = false, nil
			for _, mi := range m.mirrorsOf(b.name) {
				mi.status = api.Status{State: api.StatePending, Detail: fmt.Sprintf("switch %s not connected", b.name)}
			}
			if len(m.mirrorsOf(b.name)) == 0 {
				b.failed = true // still to drain
			}
		}
	}
}

func (m *Manager) bridgeNamesLocked() []string {
	names := make([]string, 0, len(m.bridges))
	for n := range m.bridges {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Close stops Run and waits for it. It does not touch OVS: flows stay.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() { close(m.closed) })
	m.wg.Wait()
	return nil
}

// waitReady waits until Run has started.
func (m *Manager) waitReady(ctx context.Context) error {
	select {
	case <-m.stopped:
		return api.WithCode(api.CodeUnavailable, errors.New("flowspan manager stopped"))
	default:
	}
	select {
	case <-m.ready:
		return nil
	case <-m.closed:
		return api.WithCode(api.CodeUnavailable, errors.New("flowspan manager is closed"))
	case <-ctx.Done():
		return ctx.Err()
	}
}

// removeEphemeralLocked deletes tap mirrors left behind by a previous run.
func (m *Manager) removeEphemeralLocked(ctx context.Context) {
	var gone []*mirror
	for name, mi := range m.mirrors {
		if mi.spec.Ephemeral {
			delete(m.mirrors, name)
			gone = append(gone, mi)
		}
	}
	if len(gone) == 0 {
		return
	}
	if err := m.saveLocked(); err != nil {
		m.log.WithError(err).Warn("removing stale taps: saving state failed")
	}
	for _, mi := range gone {
		m.log.WithFields(logrus.Fields{"mirror": mi.spec.Name, "bridge": mi.spec.Bridge}).Info("removing tap left by a previous run")
		if mi.createdPort != "" {
			if err := m.cfg.OVSDB.RemovePort(ctx, mi.spec.Bridge, mi.createdPort); err != nil {
				m.log.WithError(err).WithField("port", mi.createdPort).Warn("removing stale tap port failed")
			}
		}
	}
}

// saveLocked persists the desired mirrors.
func (m *Manager) saveLocked() error {
	return m.saveMirrorsLocked(m.mirrors)
}

func (m *Manager) saveMirrorsLocked(mirrors map[string]*mirror) error {
	if m.cfg.StatePath == "" {
		return nil
	}
	keys := make([]string, 0, len(m.isolated))
	for k := range m.isolated {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var isolated []isolatedPort
	for _, k := range keys {
		isolated = append(isolated, m.isolated[k])
	}
	enc := make([]encodedMirror, 0, len(mirrors))
	for _, mi := range mirrors {
		if mi.enc == nil {
			e, err := encodeMirror(stateMirror{Spec: mi.spec, Origin: mi.origin, ID: mi.id, CreatedPort: mi.createdPort})
			if err != nil {
				return fmt.Errorf("state file %s: %w", m.cfg.StatePath, err)
			}
			mi.enc = &e
		}
		enc = append(enc, *mi.enc)
	}
	return saveStateParts(m.cfg.StatePath, isolated, enc)
}

// reconcileLocked brings bridge b in line with its desired mirrors. Errors
// are recorded in mirror statuses and b.failed (retried later).
func (m *Manager) reconcileLocked(ctx context.Context, b *bridgeState) {
	defer m.touch()
	err := m.syncLocked(ctx, b, m.mirrorsOf(b.name))
	b.failed = err != nil
	if err != nil {
		m.log.WithError(err).WithField("bridge", b.name).Warn("reconcile failed")
	}
}

// errNotConnected marks a switch that is not connected (yet).
var errNotConnected = errors.New("switch not connected")

// syncLocked makes the switch of b hold exactly the flows of mirrors (its
// desired set) and updates statuses. It takes b over when it has mirrors and
// releases it when it has none.
func (m *Manager) syncLocked(ctx context.Context, b *bridgeState, mirrors []*mirror) error {
	log := m.log.WithField("bridge", b.name)
	setAll := func(st api.Status) {
		for _, mi := range mirrors {
			mi.status = st
		}
	}
	facts, err := m.cfg.OVSDB.Bridge(ctx, b.name)
	if errors.Is(err, ErrNoBridge) {
		// The bridge is gone (with its controllers): when it comes back it
		// is taken over afresh.
		b.synced, b.sw, b.installed, b.dpid = false, nil, nil, 0
		if b.dialCancel != nil {
			b.dialCancel()
			b.dialCancel = nil
		}
		b.takenOver = false
		setAll(api.Status{State: api.StatePending, Detail: fmt.Sprintf("bridge %s missing", b.name)})
		if len(mirrors) == 0 {
			m.forgetBridgeLocked(b)
		}
		return nil
	}
	if err != nil {
		setAll(api.Status{State: api.StateError, Detail: err.Error()})
		return err
	}
	if b.dpid != 0 && facts.DatapathID != b.dpid {
		b.synced = false
	}
	b.facts, b.dpid = facts, facts.DatapathID

	if m.ensureOutputPortsLocked(ctx, b, mirrors) {
		if f, err := m.cfg.OVSDB.Bridge(ctx, b.name); err == nil {
			facts, b.facts = f, f
		}
	}
	m.removeOrphanPortsLocked(ctx, b)
	if len(mirrors) == 0 {
		if facts.HandedOver && !b.takenOver {
			// Left handed over by a previous run: take it back to remove
			// its flows, then release it.
			if err := m.takeOverLocked(ctx, b); err != nil {
				return err
			}
		}
		return m.drainLocked(ctx, b)
	}
	// Outputs that are existing ports stay isolated from NORMAL (a port
	// re-created or re-configured since is isolated again).
	for _, mi := range mirrors {
		out := mi.spec.Output.Port
		if out == "" || mi.createdPort != "" || !needsIsolation(facts.Ports[out]) {
			continue
		}
		if err := m.isolateLocked(ctx, b.name, facts.Ports[out]); err != nil {
			log.WithError(err).WithField("port", out).Warn("isolating output port failed")
			continue
		}
		if err := m.saveLocked(); err != nil {
			log.WithError(err).Warn("saving state failed")
		}
		log.WithField("port", out).Info("output port isolated from NORMAL")
		if f, err := m.cfg.OVSDB.Bridge(ctx, b.name); err == nil {
			facts = f
			b.facts = f
		}
	}
	if err := m.takeOverLocked(ctx, b); err != nil {
		setAll(api.Status{State: api.StateError, Detail: err.Error()})
		return err
	}
	sw, ok := m.cfg.Controller.Switch(b.dpid)
	if !ok {
		b.synced = false
		setAll(api.Status{State: api.StatePending, Detail: fmt.Sprintf("switch %s not connected", b.name)})
		return nil
	}
	if sw != b.sw {
		b.synced = false // a new connection: full sync
	}
	prog, err := m.applyLocked(ctx, b, sw, mirrors)
	if err != nil {
		setAll(api.Status{State: api.StateError, Detail: err.Error()})
		return err
	}
	for _, mi := range mirrors {
		mi.status = statusFor(prog, mi.spec.Name)
	}
	log.WithField("flows", len(prog.Flows)).Debug("bridge reconciled")
	return nil
}

func statusFor(prog Program, name string) api.Status {
	if err := prog.Inactive[name]; err != nil {
		return api.Status{State: api.StatePending, Detail: err.Error(), MissingPorts: slices.Clone(prog.Missing[name])}
	}
	miss := prog.Missing[name]
	if len(miss) == 0 {
		return api.Status{State: api.StateActive}
	}
	word := "port"
	if len(miss) > 1 {
		word = "ports"
	}
	return api.Status{State: api.StatePending, Detail: fmt.Sprintf("%s %s missing", word, strings.Join(miss, ", ")),
		MissingPorts: slices.Clone(miss)}
}

// compileLocked compiles mirrors for b at generation gen.
func (m *Manager) compileLocked(b *bridgeState, gen uint8, mirrors []*mirror) (Program, error) {
	in := make([]CompileMirror, len(mirrors))
	for i, mi := range mirrors {
		in[i] = CompileMirror{ID: mi.id, Spec: mi.spec}
	}
	prog, err := m.cfg.Compiler.Compile(gen, in, m.compileFacts(b))
	if err != nil {
		return Program{}, fmt.Errorf("bridge %s: compile: %w", b.name, err)
	}
	return prog, nil
}

// compileFacts is b.facts as the compiler must see it: isolated output
// ports that had VLAN settings before isolation show those settings (and
// not Isolated), so copies are tagged as the native Mirror would tag them.
func (m *Manager) compileFacts(b *bridgeState) Bridge {
	facts := b.facts
	var ports map[string]Port
	for name, p := range facts.Ports {
		ip, ok := m.isolated[b.name+"\x00"+name]
		if !ok || !p.Isolated {
			continue
		}
		if ports == nil {
			ports = maps.Clone(facts.Ports)
		}
		p.Tag, p.Trunks, p.VLANMode, p.Isolated = ip.Tag, ip.Trunks, ip.VLANMode, false
		ports[name] = p
	}
	if ports != nil {
		facts.Ports = ports
	}
	return facts
}

// isolateNow keeps NORMAL away from output port p of bridge over OpenFlow
// (PortIsolator), so that a mirror's flows may go in before the port's
// OVSDB isolation is applied: that takes ovs-vswitchd a reconfiguration,
// ~10 ms on a busy bridge, which would otherwise delay the first copy.
// Call it only when canIsolateNowLocked; it needs a bridge that accepts
// OpenFlow 1.0 too. ok is false otherwise and nothing changed. It touches
// no Manager state (it runs beside the add that holds the lock).
func (m *Manager) isolateNow(ctx context.Context, bridge, target string, dpid uint64, p Port) (undo func(context.Context) error, ok bool) {
	iso, err := m.cfg.Controller.(PortIsolator).IsolateNow(ctx, target, dpid, p.OFPort, false) // a warm add needs no count
	if err != nil {
		m.log.WithError(err).WithFields(logrus.Fields{"bridge": bridge, "port": p.Name}).
			Debug("isolating the output over OpenFlow failed: flows wait for the OVSDB isolation")
		return nil, false
	}
	return iso.Undo, true
}

// canIsolateNowLocked says whether isolateNow may work: a connected,
// synced switch that flowspan dials over a unix socket (its passive
// service listener).
func (m *Manager) canIsolateNowLocked(b *bridgeState, p Port) bool {
	if _, isPI := m.cfg.Controller.(PortIsolator); !isPI || !b.synced || p.OFPort == 0 || !strings.HasPrefix(b.target, "unix:") {
		return false
	}
	_, connected := m.cfg.Controller.Switch(b.dpid)
	return connected
}

// isolateLocked isolates an existing output port from NORMAL, recording its
// VLAN settings first when it has any.
func (m *Manager) isolateLocked(ctx context.Context, bridge string, p Port) error {
	forget := m.recordIsolationLocked(bridge, p)
	if err := m.cfg.OVSDB.IsolatePort(ctx, bridge, p.Name); err != nil {
		forget()
		return err
	}
	return nil
}

// recordIsolationLocked records the VLAN settings of a port about to be
// isolated (when it has any and they are not recorded yet); forget undoes
// that when the isolation fails.
func (m *Manager) recordIsolationLocked(bridge string, p Port) (forget func()) {
	key := bridge + "\x00" + p.Name
	if _, had := m.isolated[key]; had || (p.Tag == 0 && len(p.Trunks) == 0 && p.VLANMode == "") {
		return func() {}
	}
	m.isolated[key] = isolatedPort{Bridge: bridge, Port: p.Name, Tag: p.Tag, Trunks: slices.Clone(p.Trunks), VLANMode: p.VLANMode}
	return func() { delete(m.isolated, key) }
}

// applyLocked compiles mirrors and applies them to sw in one bundle: a
// full sync with a new generation if b is not synced, else the diff against
// the installed flows. On error the switch is unchanged and so is b.
func (m *Manager) applyLocked(ctx context.Context, b *bridgeState, sw Switch, mirrors []*mirror) (Program, error) {
	return m.applyCompiledLocked(ctx, b, sw, mirrors, nil, 0, nil)
}

// applyCompiledLocked is applyLocked reusing pre when it was compiled for
// generation preGen and no full sync is needed, and, for a full sync, the
// MAC table read started by readMACTable (nil: read it now).
func (m *Manager) applyCompiledLocked(ctx context.Context, b *bridgeState, sw Switch, mirrors []*mirror, pre *Program, preGen uint8,
	fdb <-chan fdbResult) (Program, error) {
	if b.synced {
		var prog Program
		if pre != nil && preGen == b.gen {
			prog = *pre
		} else {
			var err error
			if prog, err = m.compileLocked(b, b.gen, mirrors); err != nil {
				return prog, err
			}
		}
		ch := diff(b.installed, prog.Flows)
		ch.Add = append(ch.Add, b.seeds...) // learned flows: not tracked
		if !ch.Empty() {
			if err := sw.Apply(ctx, ch); err != nil {
				return prog, fmt.Errorf("bridge %s: apply: %w", b.name, err)
			}
		}
		b.installed, b.prog, b.seeds = prog.Flows, prog, nil
		return prog, nil
	}
	// Full sync: install a new generation, delete every other flowspan
	// generation, all in one bundle (no gap: new flows replace old ones with
	// the same match in place).
	cl := m.cfg.Compiler.Cookies()
	start := time.Now()
	if fdb == nil {
		fdb = m.readMACTable(ctx, b.name) // in parallel with the flow stats and the compile
	}
	// A bridge that was never handed over holds flowspan flows only if a
	// run crashed: they are looked for after the first bundle (tidyLocked)
	// instead of before.
	fresh := b.fresh
	b.fresh = false
	var stats []FlowStat
	if !fresh {
		var err error
		if stats, err = sw.FlowStats(ctx, cl.App, cl.AppMask); err != nil {
			<-fdb
			return Program{}, fmt.Errorf("bridge %s: reading installed flows: %w", b.name, err)
		}
	}
	tStats := time.Since(start)
	present := map[uint8]bool{}
	for _, st := range stats {
		present[cl.Generation(st.Cookie)] = true
	}
	gen := nextGeneration(b.gen, present, uint8(cl.GenMask))
	prog, err := m.compileLocked(b, gen, mirrors)
	if err != nil {
		<-fdb
		return prog, err
	}
	tCompile := time.Since(start)
	ch := Changes{Add: prog.Flows}
	fdbRes := <-fdb
	tMACs := time.Since(start)
	seedNow, seedLater := m.macFlowsLocked(b, mirrors, fdbRes)
	seedNow = append(seedNow, b.seeds...)
	if len(seedNow) > 0 {
		// After the pipeline in the same bundle; not tracked (learned flows).
		ch.Add = append(slices.Clip(prog.Flows), seedNow...)
	}
	var old []uint8
	for g := range present {
		if g != gen && g != 0 {
			old = append(old, g)
		}
	}
	slices.Sort(old)
	for _, g := range old {
		c, mask := cl.GenerationMatch(g)
		ch.DeleteCookies = append(ch.DeleteCookies, CookieMatch{Cookie: c, Mask: mask})
	}
	if err := sw.Apply(ctx, ch); err != nil {
		return prog, fmt.Errorf("bridge %s: full sync: %w", b.name, err)
	}
	tApplied := time.Since(start)
	b.gen, b.synced, b.installed, b.sw, b.prog, b.seeds = gen, true, prog.Flows, sw, prog, nil
	nLater := m.seedLaterLocked(ctx, b, sw, seedLater)
	if fresh {
		if err := m.tidyLocked(ctx, b, sw); err != nil {
			m.log.WithError(err).WithField("bridge", b.name).Info("flows left by an earlier run: syncing again")
			b.synced = false
			return m.applyLocked(ctx, b, sw, mirrors)
		}
	}
	m.log.WithFields(logrus.Fields{"bridge": b.name, "generation": gen, "flows": len(prog.Flows), "old_generations": old,
		"macs_now": len(seedNow), "macs_later": nLater,
		"ms_stats": ms(tStats), "ms_compiled": ms(tCompile), "ms_mac_table": ms(tMACs), "ms_applied": ms(tApplied),
		"ms_seeded": ms(time.Since(start))}).Info("full sync done")
	return prog, nil
}

// seedLaterLocked installs the rest of the MAC table (see MACSeeder): until
// it is in, only counters differ; it must be in before any other change.
// Failures are logged. It returns how many entries went in.
func (m *Manager) seedLaterLocked(ctx context.Context, b *bridgeState, sw Switch, seedLater func() ([]FlowEntry, error)) int {
	if seedLater == nil {
		return 0
	}
	later, err := seedLater()
	if err == nil && len(later) > 0 {
		err = sw.Apply(ctx, Changes{Add: later})
	}
	if err != nil {
		m.log.WithError(err).WithField("bridge", b.name).Warn("seeding the rest of the shadow MAC table failed: egress to those hosts is predicted as a flood until they send")
		return 0
	}
	return len(later)
}

// tidyLocked deletes the flowspan flows of other generations a crashed run
// left on a bridge that was not handed over, after b's first full sync on
// it (learned flows, generation 0, age out). It fails when b's own
// generation holds flows b did not install, which only a new full sync
// (with another generation) removes.
func (m *Manager) tidyLocked(ctx context.Context, b *bridgeState, sw Switch) error {
	cl := m.cfg.Compiler.Cookies()
	stats, err := sw.FlowStats(ctx, cl.App, cl.AppMask)
	if err != nil {
		return fmt.Errorf("reading installed flows: %w", err)
	}
	own := 0
	var ch Changes
	seen := map[uint8]bool{}
	for _, st := range stats {
		switch g := cl.Generation(st.Cookie); {
		case g == b.gen:
			own++
		case g != 0 && !seen[g]:
			seen[g] = true
			c, mask := cl.GenerationMatch(g)
			ch.DeleteCookies = append(ch.DeleteCookies, CookieMatch{Cookie: c, Mask: mask})
		}
	}
	if own != len(b.installed) {
		return fmt.Errorf("generation %d has %d flows, %d installed", b.gen, own, len(b.installed))
	}
	if ch.Empty() {
		return nil
	}
	m.log.WithFields(logrus.Fields{"bridge": b.name, "generations": len(ch.DeleteCookies)}).Info("deleting flows an earlier run left")
	return sw.Apply(ctx, ch)
}

// removeAllChanges removes every flowspan flow (learned ones included) and
// puts back what flowspan's flows replaced, in one bundle: the restored
// flows replace flowspan's in place, so forwarding never stops.
func (m *Manager) removeAllChanges() Changes {
	cl := m.cfg.Compiler.Cookies()
	return Changes{Add: m.cfg.Compiler.Restore(), DeleteCookies: []CookieMatch{{Cookie: cl.App, Mask: cl.AppMask}}}
}

// nextGeneration picks the generation after cur that no installed flow uses
// (0 is never used: it is what a cookie-less flow has).
func nextGeneration(cur uint8, present map[uint8]bool, mask uint8) uint8 {
	if mask == 0 {
		return 0
	}
	g := cur
	for range int(mask) + 1 {
		g = (g + 1) & mask
		if g != 0 && !present[g] {
			return g
		}
	}
	// Every generation is in use (cannot happen with a few flows); take
	// the next one, its flows are replaced anyway.
	g = (cur + 1) & mask
	if g == 0 {
		g = 1
	}
	return g
}

// takeOverLocked points b at flowspan and dials it (once), isolating the
// ports in isolate in the same OVSDB change.
func (m *Manager) takeOverLocked(ctx context.Context, b *bridgeState, isolate ...string) error {
	if b.takenOver {
		return nil
	}
	target, err := m.cfg.OVSDB.TakeOver(ctx, b.name, isolate...)
	if err != nil {
		return fmt.Errorf("bridge %s: take over: %w", b.name, err)
	}
	b.synced = false
	return m.tookOverLocked(b, target)
}

// tookOverLocked records that b was taken over and dials target (once).
func (m *Manager) tookOverLocked(b *bridgeState, target string) error {
	b.takenOver = true
	m.log.WithFields(logrus.Fields{"bridge": b.name, "target": target}).Info("bridge taken over")
	if target != "" && m.runCtx != nil {
		dctx, cancel := context.WithCancel(m.runCtx)
		if err := m.cfg.Controller.Dial(dctx, target); err != nil {
			cancel()
			return fmt.Errorf("bridge %s: dial %s: %w", b.name, target, err)
		}
		b.dialCancel, b.target = cancel, target
		m.prepareIsolationLocked(b)
	}
	return nil
}

// prepareIsolationLocked has the controller connect, in the background, what
// isolateNow uses for the next mirror's output on b (PortIsolator), unless
// that is connected already.
func (m *Manager) prepareIsolationLocked(b *bridgeState) {
	if pi, ok := m.cfg.Controller.(PortIsolator); ok && strings.HasPrefix(b.target, "unix:") {
		pi.PrepareIsolation(b.target, b.dpid)
	}
}

// drainLocked removes flowspan's flows from a bridge without mirrors and
// releases it. If the switch is not connected the bridge stays taken over
// until it connects (its flows are removed then).
func (m *Manager) drainLocked(ctx context.Context, b *bridgeState) error {
	if !b.takenOver {
		m.forgetBridgeLocked(b)
		return nil
	}
	sw, ok := m.cfg.Controller.Switch(b.dpid)
	if !ok {
		return fmt.Errorf("bridge %s: releasing: %w", b.name, errNotConnected)
	}
	if err := m.removeAllLocked(ctx, b.name, sw); err != nil {
		return fmt.Errorf("bridge %s: removing flows: %w", b.name, err)
	}
	b.installed, b.synced = nil, false
	return m.releaseLocked(ctx, b)
}

// removeAllLocked removes every flowspan flow from sw (removeAllChanges),
// then looks for flowspan flows that are still there and deletes them
// again. ovs-vswitchd can miss a learned flow that a learn action inserts
// while the bundle waits for its lock (it reads the bundle's version
// before taking the lock), and 3.1 before 3.1.3 can put back a learned
// flow just deleted (its xlate cache refreshes it).
func (m *Manager) removeAllLocked(ctx context.Context, bridge string, sw Switch) error {
	if err := sw.Apply(ctx, m.removeAllChanges()); err != nil {
		return err
	}
	cl := m.cfg.Compiler.Cookies()
	left, err := sw.FlowStats(ctx, cl.App, cl.AppMask)
	if err != nil || len(left) == 0 {
		return err
	}
	m.log.WithFields(logrus.Fields{"bridge": bridge, "flows": len(left)}).Info("flowspan flows left after removing them all: deleting them again")
	return sw.Apply(ctx, Changes{DeleteCookies: []CookieMatch{{Cookie: cl.App, Mask: cl.AppMask}}})
}

func (m *Manager) releaseLocked(ctx context.Context, b *bridgeState) error {
	if b.dialCancel != nil {
		b.dialCancel()
		b.dialCancel, b.target = nil, ""
	}
	if err := m.cfg.OVSDB.Release(ctx, b.name); err != nil {
		return fmt.Errorf("bridge %s: release: %w", b.name, err)
	}
	b.takenOver = false
	m.log.WithField("bridge", b.name).Info("bridge released")
	m.forgetBridgeLocked(b)
	return nil
}

// adoptLocked looks at a bridge the Manager has no mirrors on: if a previous
// run left it handed over, or left ports it created, it is cleaned up.
func (m *Manager) adoptLocked(ctx context.Context, name string) {
	facts, err := m.cfg.OVSDB.Bridge(ctx, name)
	if err != nil {
		return
	}
	orphans := false
	for _, p := range facts.Ports {
		orphans = orphans || p.Flowspan
	}
	if !facts.HandedOver && !orphans {
		return
	}
	m.log.WithFields(logrus.Fields{"bridge": name, "handed_over": facts.HandedOver, "flowspan_ports": orphans}).Info("cleaning up after a previous run")
	m.reconcileLocked(ctx, m.bridge(name))
}

// ensureOutputPortsLocked creates the output ports flowspan owes mirrors
// (create, tunnels) that are missing — a mirror defined while its bridge was
// missing, or whose port was deleted behind flowspan's back — and adopts
// flowspan-created ports of the right name. It reports whether it created
// any.
func (m *Manager) ensureOutputPortsLocked(ctx context.Context, b *bridgeState, mirrors []*mirror) (created bool) {
	dirty := false
	for _, mi := range mirrors {
		out := mi.spec.Output.Port
		if !createsPort(mi.spec) || out == "" {
			continue
		}
		log := m.log.WithFields(logrus.Fields{"bridge": b.name, "mirror": mi.spec.Name, "port": out})
		if p, ok := b.facts.Ports[out]; ok {
			if p.Flowspan && mi.createdPort != out {
				mi.createdPort, mi.enc, dirty = out, nil, true
			}
			continue
		}
		if _, err := m.cfg.OVSDB.CreatePort(ctx, b.name, OutputPort{Name: out, Tunnel: tunnelSpec(mi.spec.Output.Tunnel)}); err != nil {
			log.WithError(err).Warn("creating output port failed")
			continue
		}
		log.Info("output port created")
		created = true
		if mi.createdPort != out {
			mi.createdPort, mi.enc, dirty = out, nil, true
		}
	}
	if dirty {
		if err := m.saveLocked(); err != nil {
			m.log.WithError(err).Warn("saving state failed")
		}
	}
	return created
}

// removeOrphanPortsLocked removes ports flowspan created that no mirror
// owns (left by a crash between creating a port and saving the state, or by
// a tap whose daemon died).
func (m *Manager) removeOrphanPortsLocked(ctx context.Context, b *bridgeState) {
	owned := map[string]bool{}
	for _, mi := range m.mirrorsOf(b.name) {
		owned[mi.createdPort] = true
	}
	for name, p := range b.facts.Ports {
		if !p.Flowspan || owned[name] {
			continue
		}
		log := m.log.WithFields(logrus.Fields{"bridge": b.name, "port": name})
		if err := m.cfg.OVSDB.RemovePort(ctx, b.name, name); err != nil {
			log.WithError(err).Warn("removing orphaned flowspan port failed")
			continue
		}
		log.Info("removed orphaned flowspan port")
	}
}

func (m *Manager) forgetBridgeLocked(b *bridgeState) {
	if len(m.mirrorsOf(b.name)) == 0 && !b.takenOver {
		delete(m.bridges, b.name)
	}
}

// outputPortName returns the name of the port flowspan creates for a tunnel
// output without a port name: "fs" and 8 hex digits of a hash of the bridge
// and mirror names (interface names are limited to 15 characters).
func outputPortName(bridge, mirror string) string {
	h := fnv.New32a()
	h.Write([]byte(bridge + "\x00" + mirror))
	return fmt.Sprintf("fs%08x", h.Sum32())
}

// fdbResult is the outcome of reading a bridge's MAC learning table.
type fdbResult struct {
	text string
	err  error
}

// readMACTable starts reading bridge's MAC learning table (for seeding the
// shadow MAC table) and returns the channel that delivers the result
// exactly once; a nil text when seeding does not apply.
func (m *Manager) readMACTable(ctx context.Context, bridge string) <-chan fdbResult {
	out := make(chan fdbResult, 1)
	if _, ok := m.cfg.Compiler.(MACSeeder); !ok || m.cfg.MACTable == nil {
		out <- fdbResult{}
		return out
	}
	go func() {
		text, err := m.cfg.MACTable.FDBShow(ctx, bridge)
		out <- fdbResult{text, err}
	}()
	return out
}

// macFlowsLocked turns a MAC table read by readMACTable into seed flows,
// split as MACSeeder.MACSeeds splits them; failures only cost egress
// prediction accuracy and are logged.
func (m *Manager) macFlowsLocked(b *bridgeState, mirrors []*mirror, r fdbResult) (now []FlowEntry, later func() ([]FlowEntry, error)) {
	seeder, ok := m.cfg.Compiler.(MACSeeder)
	if !ok {
		return nil, nil
	}
	log := m.log.WithField("bridge", b.name)
	if r.err != nil {
		if errors.Is(r.err, ErrNoMACTable) {
			if !m.coldLogged[b.name] {
				m.coldLogged[b.name] = true
				log.WithError(r.err).Info("bridge MAC table not readable: egress prediction starts cold (hosts count as unknown until they send)")
			}
			return nil, nil
		}
		log.WithError(r.err).Warn("reading the bridge MAC table failed: egress prediction starts cold")
		return nil, nil
	}
	if r.text == "" {
		return nil, nil
	}
	in := make([]CompileMirror, len(mirrors))
	for i, mi := range mirrors {
		in[i] = CompileMirror{ID: mi.id, Spec: mi.spec}
	}
	now, later, err := seeder.MACSeeds(in, m.compileFacts(b), r.text)
	if err != nil {
		log.WithError(err).Warn("seeding the shadow MAC table failed: egress prediction starts cold")
		return nil, nil
	}
	log.WithField("macs_now", len(now)).Debug("shadow MAC table seeded from the bridge's")
	return now, later
}

// portMACsLocked returns the bridge's MAC table entries on ofport, as
// fdb/show text ("" when there are none or the table cannot be read: the
// port then starts with no seeds, as after a restart).
func (m *Manager) portMACsLocked(ctx context.Context, bridge string, ofport uint32) string {
	if _, ok := m.cfg.Compiler.(MACSeeder); !ok || m.cfg.MACTable == nil || ofport == 0 {
		return ""
	}
	text, err := m.cfg.MACTable.FDBShow(ctx, bridge)
	if err != nil {
		m.log.WithError(err).WithField("bridge", bridge).Debug("reading the MAC table before isolating an output failed")
		return ""
	}
	want := strconv.FormatUint(uint64(ofport), 10)
	var sb strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == want {
			sb.WriteString(line)
			sb.WriteByte('\n')
		}
	}
	return sb.String()
}

// learnedOn reports whether flowspan's shadow MAC table on the switch dpid
// (synced: flowspan's flows are in) holds entries learned on ofport (so
// NORMAL's table probably does too); true when it cannot tell. It touches
// no Manager state.
func (m *Manager) learnedOn(ctx context.Context, dpid uint64, synced bool, ofport uint32) bool {
	cm, ok := m.cfg.Compiler.Cookies().LearnedMatch(ofport)
	if !ok || ofport == 0 {
		return false
	}
	sw, ok := m.cfg.Controller.Switch(dpid)
	if !ok || !synced {
		return true
	}
	stats, err := sw.FlowStats(ctx, cm.Cookie, cm.Mask)
	return err != nil || len(stats) > 0
}

// dropPortSeedsLocked removes the MAC-table flows seeded for a port that
// stops being an output (NORMAL forwards to it again; the entries it had
// were flushed when it was isolated). Failures are logged: the flows
// expire with the bridge's MAC aging anyway.
func (m *Manager) dropPortSeedsLocked(ctx context.Context, bridge, port string) {
	b, ok := m.bridges[bridge]
	if !ok {
		return
	}
	cm, ok := m.cfg.Compiler.Cookies().DropSeedsMatch(b.facts.Ports[port].OFPort)
	if !ok || b.facts.Ports[port].OFPort == 0 {
		return
	}
	sw, ok := m.cfg.Controller.Switch(b.dpid)
	if !ok {
		return
	}
	if err := sw.Apply(ctx, Changes{DeleteCookies: []CookieMatch{cm}}); err != nil {
		m.log.WithError(err).WithFields(logrus.Fields{"bridge": bridge, "port": port}).Warn("removing the MAC seeds of a former output failed")
	}
}

// ms renders d in milliseconds for log fields.
func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

// socketWait bounds how long a take-over waits for ovs-vswitchd to create
// the passive unix: controller socket before dialing it.
const socketWait = 500 * time.Millisecond

// waitSocket waits (polling every millisecond, at most max) until the
// socket of a unix: target accepts connections. ovs-vswitchd creates and
// listens on it shortly after the take-over's OVSDB transaction; dialing
// earlier fails and the controller's reconnect backoff (100 ms and more)
// would delay the switch. The probe connection is closed at once (the
// switch sees a controller that went away before its hello). Other targets
// return at once; on timeout the caller dials anyway.
func waitSocket(ctx context.Context, target string, max time.Duration) {
	path, ok := strings.CutPrefix(target, "unix:")
	if !ok || path == "" {
		return
	}
	deadline := time.Now().Add(max)
	for {
		if _, err := os.Stat(path); err == nil {
			if c, err := net.DialTimeout("unix", path, max); err == nil {
				c.Close()
				return
			}
		}
		if time.Now().After(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Millisecond):
		}
	}
}

// touch records a change for the idle memory release (never blocks).
func (m *Manager) touch() {
	select {
	case m.touched <- struct{}{}:
	default:
	}
}
