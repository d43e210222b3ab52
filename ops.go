package flowspan

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/flowspan/flowspan/api"
	"github.com/sirupsen/logrus"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

var tunnelTypes = []string{"gre", "erspan", "vxlan", "geneve"}

func invalidf(format string, args ...any) error {
	return api.WithCode(api.CodeInvalid, fmt.Errorf(format, args...))
}

// normalize fills defaults into spec.
func normalize(spec api.MirrorSpec, origin api.Origin) api.MirrorSpec {
	spec.Ephemeral = origin == api.OriginTap
	if spec.Output.Tunnel != nil {
		t := *spec.Output.Tunnel
		spec.Output.Tunnel = &t
		if spec.Output.Port == "" {
			spec.Output.Port = outputPortName(spec.Bridge, spec.Name)
		}
	}
	return spec
}

// checkSpec validates what needs no bridge facts.
func (m *Manager) checkSpec(spec api.MirrorSpec) error {
	if !nameRE.MatchString(spec.Name) {
		return invalidf("mirror %q: bad name (use letters, digits, '.', '_', '-'; at most 64)", spec.Name)
	}
	if spec.Bridge == "" {
		return invalidf("mirror %q: no bridge given", spec.Name)
	}
	o := spec.Output
	kinds := 0
	if o.Tunnel != nil {
		kinds++
	}
	if o.VLAN != 0 {
		kinds++
	}
	if o.Port != "" && o.Tunnel == nil {
		kinds++
	}
	switch {
	case kinds == 0:
		return invalidf("mirror %q: no output (give a port, a VLAN or a tunnel)", spec.Name)
	case kinds > 1:
		return invalidf("mirror %q: more than one output (give exactly one of port, VLAN, tunnel)", spec.Name)
	}
	if o.VLAN > 4095 {
		return invalidf("mirror %q: output VLAN %d out of range 1-4095", spec.Name, o.VLAN)
	}
	if o.Create && o.Port == "" {
		return invalidf("mirror %q: create needs an output port name", spec.Name)
	}
	if t := o.Tunnel; t != nil {
		if !slices.Contains(tunnelTypes, t.Type) {
			return invalidf("mirror %q: tunnel type %q unknown (want gre, erspan, vxlan or geneve)", spec.Name, t.Type)
		}
		if t.Remote == "" {
			return invalidf("mirror %q: tunnel %s has no remote IP", spec.Name, t.Type)
		}
		if a, err := netip.ParseAddr(t.Remote); err != nil || a.IsUnspecified() || a.IsMulticast() {
			return invalidf("mirror %q: tunnel %s: remote %q is not a unicast IP address", spec.Name, t.Type, t.Remote)
		}
	}
	if len(o.Port) > 15 && (o.Create || o.Tunnel != nil) {
		return invalidf("mirror %q: output port name %q longer than 15 characters", spec.Name, o.Port)
	}
	if o.Port != "" {
		for _, lst := range [][]string{spec.Ports, spec.Ingress, spec.Egress} {
			if slices.Contains(lst, o.Port) {
				return invalidf("mirror %q: port %q: both selected and output", spec.Name, o.Port)
			}
		}
	}
	if err := m.cfg.Compiler.Check(spec); err != nil {
		if api.CodeOf(err) == api.CodeInternal {
			err = api.WithCode(api.CodeInvalid, err)
		}
		return err
	}
	return nil
}

func selectedPorts(spec api.MirrorSpec) []string {
	var out []string
	for _, lst := range [][]string{spec.Ports, spec.Ingress, spec.Egress} {
		for _, p := range lst {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// createsPort reports whether flowspan creates spec's output port.
func createsPort(spec api.MirrorSpec) bool {
	return spec.Output.Create || spec.Output.Tunnel != nil
}

// checkAgainstLocked validates spec against the bridge facts and the other
// mirrors of the bridge. strict requires named ports to exist (API adds);
// otherwise missing ports leave the mirror pending (state reload, config).
func (m *Manager) checkAgainstLocked(spec api.MirrorSpec, facts Bridge, strict bool) error {
	if strict {
		for _, p := range selectedPorts(spec) {
			if _, ok := facts.Ports[p]; !ok {
				return invalidf("mirror %q: port %q: not on bridge %s", spec.Name, p, spec.Bridge)
			}
		}
	}
	out := spec.Output.Port
	for _, other := range m.mirrorsOf(spec.Bridge) {
		if other.spec.Name == spec.Name {
			continue
		}
		if out != "" && slices.Contains(selectedPorts(other.spec), out) {
			return invalidf("mirror %q: output port %q is selected by mirror %q", spec.Name, out, other.spec.Name)
		}
		if op := other.spec.Output.Port; op != "" && slices.Contains(selectedPorts(spec), op) {
			return invalidf("mirror %q: port %q is the output of mirror %q", spec.Name, op, other.spec.Name)
		}
		if createsPort(spec) && other.spec.Output.Port == out {
			return invalidf("mirror %q: output port %q already belongs to mirror %q (drop create to share it)", spec.Name, out, other.spec.Name)
		}
	}
	if out == "" {
		return nil
	}
	p, exists := facts.Ports[out]
	switch {
	case createsPort(spec) && exists && !p.Flowspan:
		return invalidf("mirror %q: output port %q already exists on bridge %s (drop create to use it)", spec.Name, out, spec.Bridge)
	case !createsPort(spec) && !exists && strict:
		return invalidf("mirror %q: output port %q: not on bridge %s (add create to make it)", spec.Name, out, spec.Bridge)
	}
	return nil
}

// bridgeFacts reads the facts of bridge. When the bridge or one of the
// ports in need is missing, or has no OpenFlow port number yet, it syncs
// the OVSDB cache (Syncer) and reads again: a user who just ran
// "ovs-vsctl add-port" expects the next flowspan command to see the port.
func (m *Manager) bridgeFacts(ctx context.Context, bridge string, need []string) (Bridge, error) {
	facts, err := m.cfg.OVSDB.Bridge(ctx, bridge)
	sy, ok := m.cfg.OVSDB.(Syncer)
	if !ok || (err != nil && !errors.Is(err, ErrNoBridge)) {
		return facts, err
	}
	stale := err != nil
	for _, p := range need {
		if facts.Ports[p].OFPort == 0 {
			stale = true
		}
	}
	if !stale {
		return facts, nil
	}
	if err := sy.Sync(ctx); err != nil {
		return Bridge{}, err
	}
	return m.cfg.OVSDB.Bridge(ctx, bridge)
}

func (m *Manager) allocIDLocked(bridge string) uint32 {
	used := map[uint32]bool{}
	for _, mi := range m.mirrorsOf(bridge) {
		used[mi.id] = true
	}
	id := uint32(1)
	for used[id] {
		id++
	}
	return id
}

func view(mi *mirror) api.Mirror {
	spec := mi.spec
	return api.Mirror{Spec: spec, Origin: mi.origin, Status: mi.status}
}

// AddMirror validates spec and installs it. On any error nothing changes: not
// the desired mirrors, not the state file, not the switch, not OVSDB. A
// bridge gets taken over with its first mirror; if its switch does not
// connect within Config.ConnectTimeout the mirror stays defined and pending.
func (m *Manager) AddMirror(ctx context.Context, spec api.MirrorSpec, origin api.Origin) (api.Mirror, error) {
	if err := m.waitReady(ctx); err != nil {
		return api.Mirror{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mi, err := m.addLocked(ctx, spec, origin, true)
	if err != nil {
		return api.Mirror{}, err
	}
	return view(mi), nil
}

func (m *Manager) addLocked(ctx context.Context, spec api.MirrorSpec, origin api.Origin, strict bool) (*mirror, error) {
	return m.addLockedVia(ctx, spec, origin, strict, true)
}

// addLockedVia is addLocked; viaMgmt false keeps a first mirror from going
// in through the management socket.
func (m *Manager) addLockedVia(ctx context.Context, spec api.MirrorSpec, origin api.Origin, strict, viaMgmt bool) (*mirror, error) {
	defer m.touch()
	start := time.Now()
	spec = normalize(spec, origin)
	if err := m.checkSpec(spec); err != nil {
		return nil, err
	}
	if _, dup := m.mirrors[spec.Name]; dup {
		return nil, api.WithCode(api.CodeExists, fmt.Errorf("mirror %q: already exists", spec.Name))
	}
	log := m.log.WithFields(logrus.Fields{"mirror": spec.Name, "bridge": spec.Bridge})
	var need []string
	if strict {
		need = selectedPorts(spec)
		if !createsPort(spec) && spec.Output.Port != "" {
			need = append(need, spec.Output.Port)
		}
	}
	facts, err := m.bridgeFacts(ctx, spec.Bridge, need)
	bridgeMissing := errors.Is(err, ErrNoBridge)
	switch {
	case bridgeMissing && strict:
		return nil, invalidf("mirror %q: bridge %q: no such bridge", spec.Name, spec.Bridge)
	case bridgeMissing:
	case err != nil:
		return nil, fmt.Errorf("mirror %q: %w", spec.Name, err)
	}
	if err := m.checkAgainstLocked(spec, facts, strict); err != nil {
		return nil, err
	}

	b := m.bridge(spec.Bridge)
	wasTakenOver := b.takenOver
	b.fresh = !b.takenOver && !facts.HandedOver
	// The first mirror on a bridge is programmed through the bridge's
	// management socket, when there is one, while flowspan's controller
	// target is set up (coldSession).
	mgmt := ""
	if !b.takenOver && !bridgeMissing && viaMgmt {
		mgmt = m.managementTargetLocked(spec.Bridge)
	}
	coldIsolate := spec.Output.Port != "" && !createsPort(spec) && needsIsolation(facts.Ports[spec.Output.Port])
	var fdb <-chan fdbResult
	if !b.synced && !bridgeMissing && !(mgmt != "" && coldIsolate) {
		// A full sync follows: read the bridge's MAC table meanwhile.
		fdb = m.readMACTable(ctx, spec.Bridge)
	}
	mi := &mirror{spec: spec, origin: origin, id: m.allocIDLocked(spec.Bridge),
		status: api.Status{State: api.StatePending, Detail: "not reconciled yet"}}
	if bridgeMissing {
		mi.status.Detail = fmt.Sprintf("bridge %s missing", spec.Bridge)
		m.mirrors[spec.Name] = mi
		if err := m.saveLocked(); err != nil {
			delete(m.mirrors, spec.Name)
			m.forgetBridgeLocked(b)
			return nil, err
		}
		return mi, nil
	}

	// Everything below is undone on error.
	var undo []func()
	rollback := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		m.forgetBridgeLocked(b)
	}
	bg := context.WithoutCancel(ctx)
	if createsPort(spec) {
		if p, ok := facts.Ports[spec.Output.Port]; ok && p.Flowspan {
			log.WithField("port", p.Name).Info("adopting output port left by flowspan")
		} else {
			if _, err := m.cfg.OVSDB.CreatePort(ctx, spec.Bridge, OutputPort{Name: spec.Output.Port, Tunnel: tunnelSpec(spec.Output.Tunnel)}); err != nil {
				return nil, fmt.Errorf("mirror %q: creating output port %q: %w", spec.Name, spec.Output.Port, err)
			}
		}
		mi.createdPort = spec.Output.Port
		undo = append(undo, func() {
			if err := m.cfg.OVSDB.RemovePort(bg, spec.Bridge, spec.Output.Port); err != nil {
				log.WithError(err).Warn("rollback: removing output port failed")
			}
		})
		if facts, err = m.cfg.OVSDB.Bridge(ctx, spec.Bridge); err != nil {
			rollback()
			return nil, fmt.Errorf("mirror %q: %w", spec.Name, err)
		}
	}
	// fastUndo ends an isolation over OpenFlow (isolateNowLocked) of the
	// output port; lateIsolate is that port when it is isolated in OVSDB
	// after the flows (warm adds).
	var (
		fastUndo    func(context.Context) error
		lateIsolate string
	)
	endFast := func(ctx context.Context) {
		if fastUndo == nil {
			return
		}
		if err := fastUndo(ctx); err != nil {
			log.WithError(err).WithField("port", spec.Output.Port).Warn("restoring the output port's OpenFlow port config failed")
		}
		fastUndo = nil
	}
	// isoGate, on a warm add isolating its output over OpenFlow, says
	// whether that isolation is done (errNotIsolated: it failed, and
	// isolateOVSDB must isolate the port first), and, when outputSeeds is
	// set, whether NORMAL may have learned MACs on the output
	// (errOutputLearned: outputSeeds reads them into b.seeds).
	var (
		isoGate      func(context.Context) error
		outputSeeds  func(mirrors []*mirror)
		isolateOVSDB func() error
		// waitDBIsolation waits for the warm add's OVSDB isolation of the
		// output (started early, so ovs-vswitchd reconfigures while the
		// flows go in) and records it for rollback.
		waitDBIsolation func() error
	)
	var (
		sess     *coldSession
		noStatic <-chan bool
	)
	if mgmt != "" {
		var iso uint32
		if coldIsolate {
			iso = facts.Ports[spec.Output.Port].OFPort
			noStatic = m.staticCheck(ctx, spec.Bridge) // for unlearnedCheck
		}
		if sess = m.openColdSessionLocked(ctx, b, mgmt, facts.DatapathID, iso); sess != nil {
			defer sess.close()
		}
	}
	// An existing output port is isolated from NORMAL: in the take-over's
	// OVSDB transaction when the bridge is not taken over yet (one
	// reconfiguration of ovs-vswitchd instead of two), else now.
	var isolate []string
	outMACs := ""
	if out := spec.Output.Port; out != "" && !createsPort(spec) && needsIsolation(facts.Ports[out]) {
		if !b.takenOver {
			forget := m.recordIsolationLocked(spec.Bridge, facts.Ports[out])
			undo = append(undo, forget)
			isolate = []string{out}
			if sess != nil {
				// Isolated over OpenFlow now (the first commit waits for
				// it; addColdLocked fails with errNotIsolated, nothing
				// changed, if it was not done), in OVSDB with the take-over;
				// the MAC table is read once the port learns no more.
				fastUndo = sess.undoIsolation
				undo = append(undo, func() { endFast(bg) })
				facts = withIsolated(facts, out)
			}
			if fdb == nil && sess == nil {
				fdb = m.readMACTable(ctx, spec.Bridge)
			}
			if sess == nil {
				// The full sync seeds what NORMAL learned on the output
				// port: read the MAC table before isolation flushes it.
				r := <-fdb
				done := make(chan fdbResult, 1)
				done <- r
				fdb = done
			}
		} else {
			// Isolated over OpenFlow at once if possible: the flows then
			// go in first and the OVSDB isolation (which survives
			// restarts) follows. The port also drops what it receives
			// from here on, so NORMAL learns nothing more on it. The
			// isolation runs while the shadow table is asked about the
			// port and, unless it has entries there, while the bundle
			// goes out: its commit waits for it (isoGate).
			p := facts.Ports[out]
			learned := make(chan bool, 1)
			dpid, synced, target := b.dpid, b.synced, b.target
			go func() { learned <- m.learnedOn(ctx, dpid, synced, p.OFPort) }()
			var isoc chan func(context.Context) error
			if m.canIsolateNowLocked(b, p) {
				isoc = make(chan func(context.Context) error, 1)
				go func() {
					u, _ := m.isolateNow(ctx, spec.Bridge, target, dpid, p)
					isoc <- u
				}()
			}
			awaitIso := func() bool {
				if isoc != nil {
					if u := <-isoc; u != nil {
						fastUndo, lateIsolate = u, out
					}
					isoc = nil
				}
				return lateIsolate != ""
			}
			undo = append(undo, func() { awaitIso(); endFast(bg) })
			undo = append(undo, m.recordIsolationLocked(spec.Bridge, p))
			undo = append(undo, func() { b.seeds = nil })
			facts = withIsolated(facts, out) // compile as for the isolated port
			// The OVSDB isolation (it flushes the port's entries from the
			// MAC table) starts once the flows are in: ovs-vswitchd's
			// reconfiguration then does not compete with the bundle.
			// Started any earlier, it made the first copy later.
			var (
				dbc               chan error
				dbErr             error
				dbDone, dbHandled bool
			)
			startDB := func() {
				if dbc == nil {
					dbc = make(chan error, 1)
					go func(ch chan error) { ch <- m.cfg.OVSDB.IsolatePort(ctx, spec.Bridge, out) }(dbc)
				}
			}
			waitDB := func() error {
				startDB()
				if !dbDone {
					dbErr, dbDone = <-dbc, true
				}
				return dbErr
			}
			undo = append(undo, func() {
				if dbc != nil && !dbHandled && waitDB() == nil {
					m.unisolateUndo(bg, spec.Bridge, out, log)()
				}
			})
			waitDBIsolation = func() error {
				if err := waitDB(); err != nil {
					return fmt.Errorf("isolating output port %q: %w", out, err)
				}
				dbHandled = true
				return nil
			}
			// isolateOVSDB isolates the port in OVSDB before the flows
			// (no isolation over OpenFlow).
			isolateOVSDB = func() error {
				if err := waitDBIsolation(); err != nil {
					return err
				}
				undo = append(undo, m.unisolateUndo(bg, spec.Bridge, out, log))
				f, err := m.cfg.OVSDB.Bridge(ctx, spec.Bridge)
				if err != nil {
					return err
				}
				b.facts, b.dpid = f, f.DatapathID
				return nil
			}
			// What NORMAL learned on the port, read before isolation
			// flushes it, is seeded with the mirror's flows (MACSeeder).
			// The shadow table says whether there is anything to read (a
			// large MAC table takes milliseconds to dump). Unless it has
			// answered already, the bundle goes out meanwhile, assuming
			// nothing, and its commit waits for the answer: when there is
			// something after all, the bundle is discarded and sent again
			// with the port's entries (outputSeeds).
			var (
				lrn        bool
				lrnPending = true
			)
			awaitLearned := func() bool {
				if lrnPending {
					lrn, lrnPending = <-learned, false
				}
				return lrn
			}
			select {
			case lrn = <-learned:
				lrnPending = false
			default:
			}
			if !lrnPending && lrn {
				awaitIso()
				outMACs = m.portMACsLocked(ctx, spec.Bridge, p.OFPort)
			} else if lrnPending {
				outputSeeds = func(mirrors []*mirror) {
					awaitIso()
					if text := m.portMACsLocked(ctx, spec.Bridge, p.OFPort); text != "" {
						b.seeds, _ = m.macFlowsLocked(b, mirrors, fdbResult{text: text})
					}
				}
			}
			isoGate = func(context.Context) error {
				if outputSeeds != nil && awaitLearned() {
					return errOutputLearned
				}
				if !awaitIso() {
					return errNotIsolated
				}
				return nil
			}
			if isoc == nil && lateIsolate == "" {
				// Known already: no isolation over OpenFlow. What NORMAL
				// learned on the port is read before the OVSDB isolation
				// flushes it.
				if outputSeeds != nil {
					if awaitLearned() {
						outMACs = m.portMACsLocked(ctx, spec.Bridge, p.OFPort)
					}
					outputSeeds = nil
				}
				if err := isolateOVSDB(); err != nil {
					rollback()
					return nil, fmt.Errorf("mirror %q: %w", spec.Name, err)
				}
				facts, isoGate = b.facts, nil
			}
		}
	}
	b.facts, b.dpid = facts, facts.DatapathID
	mirrors := append(m.mirrorsOf(spec.Bridge), mi)
	sort.Slice(mirrors, func(i, j int) bool { return mirrors[i].spec.Name < mirrors[j].spec.Name })
	if outMACs != "" {
		now, _ := m.macFlowsLocked(b, mirrors, fdbResult{text: outMACs})
		b.seeds = now // entries on an output are all needed now
		log.WithField("port", spec.Output.Port).WithField("macs", len(now)).Debug("MAC entries on the output seeded as dropped (as NORMAL drops them)")
	}
	preGen := b.gen
	prog, err := m.compileLocked(b, preGen, mirrors)
	if err != nil {
		rollback()
		return nil, api.WithCode(api.CodeInvalid, fmt.Errorf("mirror %q: %w", spec.Name, err))
	}
	if err := prog.Inactive[spec.Name]; strict && errors.Is(err, ErrConflict) {
		rollback()
		return nil, invalidf("mirror %q: %w", spec.Name, err)
	}

	var (
		tPrepared time.Duration
		sw        Switch
		ok        bool
		flowsUndo int
	)
	viaSession := sess != nil
	if sess != nil {
		ca := coldAdd{b: b, sess: sess, mirrors: mirrors, pre: prog, preGen: preGen,
			fdb: fdb, isolate: isolate, start: start, undo: &undo, endFast: endFast, log: log}
		if out := spec.Output.Port; out == "" || createsPort(spec) || !coldIsolate {
			ca.unlearned = true
		} else {
			ca.noStatic, ca.isolated = noStatic, sess.isolated
		}
		prog, tPrepared, err = m.addColdLocked(ctx, ca)
		if lost := sessionLost(sess); errors.Is(err, errNotIsolated) || (err != nil && lost) {
			// Again, taking the bridge over first: nothing changed, or the
			// session (kept from an earlier add, say) went down under the
			// add, and the take-over's full sync finds whatever it left.
			rollback()
			if lost {
				log.WithError(err).Debug("the management session went down: taking the bridge over first")
			} else {
				log.WithError(sess.isoErr).Debug("isolating the output over OpenFlow failed: taking the bridge over first")
			}
			sess.close()
			return m.addLockedVia(ctx, spec, origin, strict, false)
		}
		if err != nil {
			rollback()
			return nil, fmt.Errorf("mirror %q: %w", spec.Name, err)
		}
		sw, ok = b.sw, true
	} else {
		if err := m.takeOverLocked(ctx, b, isolate...); err != nil {
			rollback()
			if len(isolate) > 0 {
				return nil, fmt.Errorf("mirror %q: isolating output port %q: %w", spec.Name, isolate[0], err)
			}
			return nil, err
		}
		if !wasTakenOver {
			undo = append(undo, m.releaseUndo(bg, b, log))
		}
		if len(isolate) > 0 {
			undo = append(undo, m.unisolateUndo(bg, spec.Bridge, isolate[0], log))
			if facts, err = m.cfg.OVSDB.Bridge(ctx, spec.Bridge); err != nil {
				rollback()
				return nil, fmt.Errorf("mirror %q: %w", spec.Name, err)
			}
			b.facts, b.dpid = facts, facts.DatapathID
		}
		tPrepared = time.Since(start) // the OVSDB part is done
		sw, ok = m.cfg.Controller.Switch(b.dpid)
		if !ok && !wasTakenOver {
			sw, ok = m.waitSwitch(ctx, b.dpid)
		}
		if isoGate != nil && (!ok || sw != b.sw || !b.synced) {
			// No diff bundle to overlap the isolation with.
			err := isoGate(ctx)
			if errors.Is(err, errOutputLearned) {
				outputSeeds(mirrors)
				outputSeeds = nil
				err = isoGate(ctx)
			}
			if err != nil {
				if err := isolateOVSDB(); err != nil {
					rollback()
					return nil, fmt.Errorf("mirror %q: %w", spec.Name, err)
				}
			}
			isoGate = nil
		}
		flowsUndo = len(undo) // undone flows first, then the port rejoins NORMAL
		if ok {
			oldInstalled, oldSynced, oldGen, oldSw := b.installed, b.synced, b.gen, b.sw
			if sw != b.sw {
				b.synced = false
			}
			asw := sw
			if isoGate != nil {
				asw = gatedSwitch{sw, isoGate}
			}
			pre := prog
			prog, err = m.applyCompiledLocked(ctx, b, asw, mirrors, &pre, preGen, fdb)
			if errors.Is(err, errOutputLearned) {
				// Nothing changed: again, with what NORMAL learned on the
				// output seeded as dropped.
				b.installed, b.synced, b.gen, b.sw = oldInstalled, oldSynced, oldGen, oldSw
				outputSeeds(mirrors)
				outputSeeds = nil
				prog, err = m.applyCompiledLocked(ctx, b, gatedSwitch{sw, isoGate}, mirrors, &pre, preGen, fdb)
			}
			if errors.Is(err, errNotIsolated) {
				// Nothing changed: isolate in OVSDB, then the flows.
				b.installed, b.synced, b.gen, b.sw = oldInstalled, oldSynced, oldGen, oldSw
				if err = isolateOVSDB(); err == nil {
					flowsUndo = len(undo)
					prog, err = m.applyCompiledLocked(ctx, b, sw, mirrors, nil, 0, fdb)
				}
			}
			if err != nil {
				b.installed, b.synced, b.gen, b.sw = oldInstalled, oldSynced, oldGen, oldSw
				rollback()
				return nil, fmt.Errorf("mirror %q: %w", spec.Name, err)
			}
			undo = append(undo, func() {
				ch := diff(b.installed, oldInstalled)
				if err := sw.Apply(bg, ch); err != nil {
					log.WithError(err).Warn("rollback: restoring flows failed")
					b.synced = false
					return
				}
				b.installed = oldInstalled
			})
		}
	}
	tApplied := time.Since(start) // the flows are in the switch
	if isoGate != nil && errors.Is(isoGate(ctx), errOutputLearned) {
		// No bundle was needed, so none waited for the answer.
		outputSeeds(mirrors)
		if len(b.seeds) > 0 {
			if err := sw.Apply(ctx, Changes{Add: b.seeds}); err != nil {
				log.WithError(err).Warn("seeding the output's MAC entries failed")
			}
			b.seeds = nil
		}
	}
	if lateIsolate != "" {
		if err := waitDBIsolation(); err != nil {
			rollback()
			return nil, fmt.Errorf("mirror %q: %w", spec.Name, err)
		}
		undo = slices.Insert(undo, flowsUndo, m.unisolateUndo(bg, spec.Bridge, lateIsolate, log))
		if facts, err = m.cfg.OVSDB.Bridge(ctx, spec.Bridge); err != nil {
			rollback()
			return nil, fmt.Errorf("mirror %q: %w", spec.Name, err)
		}
		b.facts, b.dpid = facts, facts.DatapathID
		endFast(ctx) // NORMAL keeps away from the port by its VLAN now
	}
	m.mirrors[spec.Name] = mi
	if err := m.saveLocked(); err != nil {
		delete(m.mirrors, spec.Name)
		rollback()
		return nil, err
	}
	if ok {
		for _, x := range mirrors {
			x.status = statusFor(prog, x.spec.Name)
		}
	} else {
		mi.status = api.Status{State: api.StatePending, Detail: fmt.Sprintf("switch %s not connected", b.name)}
	}
	log.WithFields(logrus.Fields{"selection": spec.SelectionString(), "output": spec.Output.String(), "status": mi.status.String(),
		"ms_ovsdb": ms(tPrepared), "ms_flows": ms(tApplied), "ms_saved": ms(time.Since(start)),
		"isolated_over_openflow": lateIsolate != "", "via_management_socket": viaSession}).Info("mirror added")
	return mi, nil
}

// errNotIsolated: a warm add's isolation over OpenFlow did not happen.
var errNotIsolated = errors.New("output port not isolated over OpenFlow")

// withIsolated returns facts with port marked isolated: what the compiler
// will see once its OVSDB isolation is applied (see compileFacts).
func withIsolated(facts Bridge, port string) Bridge {
	p := facts.Ports[port]
	p.Isolated = true
	facts.Ports = maps.Clone(facts.Ports)
	facts.Ports[port] = p
	return facts
}

func tunnelSpec(t *api.Tunnel) *TunnelSpec {
	if t == nil {
		return nil
	}
	return &TunnelSpec{Type: t.Type, Remote: t.Remote, Key: t.Key, ERSPANVer: t.ERSPANVer,
		ERSPANIdx: t.ERSPANIdx, ERSPANDir: t.ERSPANDir, ERSPANHwID: t.ERSPANHwID}
}

// unisolateUndo returns a rollback step that puts an isolated output port
// back in NORMAL's VLANs.
func (m *Manager) unisolateUndo(ctx context.Context, bridge, port string, log logrus.FieldLogger) func() {
	return func() {
		m.dropPortSeedsLocked(ctx, bridge, port)
		delete(m.isolated, bridge+"\x00"+port)
		if err := m.cfg.OVSDB.UnisolatePort(ctx, bridge, port); err != nil {
			log.WithError(err).Warn("rollback: un-isolating output port failed")
		}
	}
}

// waitSwitch polls the controller for the switch until it connects,
// Config.ConnectTimeout passes or ctx ends.
func (m *Manager) waitSwitch(ctx context.Context, dpid uint64) (Switch, bool) {
	deadline := time.NewTimer(m.cfg.ConnectTimeout)
	defer deadline.Stop()
	// The switch usually connects within a few milliseconds of the
	// take-over: poll every millisecond for 100 ms, then every 20 ms.
	const fast = 100
	polls := 0
	interval := time.Millisecond
	for {
		if sw, ok := m.cfg.Controller.Switch(dpid); ok {
			return sw, true
		}
		poll := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			poll.Stop()
			return nil, false
		case <-deadline.C:
			poll.Stop()
			return nil, false
		case <-poll.C:
		}
		if polls++; polls >= fast {
			interval = 20 * time.Millisecond
		}
	}
}

// DeleteMirror removes a mirror, its flows and the output port it created.
// The bridge is released when its last mirror goes. If the switch rejects
// the change nothing changes; if it is not connected the flows are removed
// when it connects.
func (m *Manager) DeleteMirror(ctx context.Context, name string) error {
	if err := m.waitReady(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.deleteLocked(ctx, name)
}

func (m *Manager) deleteLocked(ctx context.Context, name string) error {
	defer m.touch()
	mi, ok := m.mirrors[name]
	if !ok {
		return api.WithCode(api.CodeNotFound, fmt.Errorf("mirror %q: not found", name))
	}
	b := m.bridge(mi.spec.Bridge)
	delete(m.mirrors, name)
	if err := m.syncLocked(ctx, b, m.mirrorsOf(b.name)); err != nil && !errors.Is(err, errNotConnected) {
		m.mirrors[name] = mi
		m.reconcileLocked(context.WithoutCancel(ctx), b)
		return fmt.Errorf("mirror %q: %w", name, err)
	}
	if err := m.saveLocked(); err != nil {
		m.mirrors[name] = mi
		m.reconcileLocked(context.WithoutCancel(ctx), b)
		return err
	}
	m.removeCreatedPortLocked(ctx, mi)
	m.unisolateLocked(ctx, mi)
	m.log.WithFields(logrus.Fields{"mirror": name, "bridge": b.name}).Info("mirror deleted")
	return nil
}

// needsIsolation reports whether an existing output port must be kept from
// NORMAL forwarding (as the native Mirror reserves its output port). Its
// VLAN settings are recorded first (isolateLocked) so copies are still
// tagged as on that port.
func needsIsolation(p Port) bool {
	return p.Name != "" && !p.Isolated
}

// unisolateLocked restores an existing output port of a deleted mirror when
// no other mirror outputs to it.
func (m *Manager) unisolateLocked(ctx context.Context, mi *mirror) {
	out := mi.spec.Output.Port
	if out == "" || mi.createdPort != "" {
		return
	}
	for _, other := range m.mirrorsOf(mi.spec.Bridge) {
		if other.spec.Output.Port == out {
			return
		}
	}
	m.dropPortSeedsLocked(ctx, mi.spec.Bridge, out)
	if err := m.cfg.OVSDB.UnisolatePort(ctx, mi.spec.Bridge, out); err != nil {
		m.log.WithError(err).WithFields(logrus.Fields{"mirror": mi.spec.Name, "port": out}).Warn("restoring output port's VLAN settings failed")
		return
	}
	key := mi.spec.Bridge + "\x00" + out
	if _, ok := m.isolated[key]; ok {
		delete(m.isolated, key)
		if err := m.saveLocked(); err != nil {
			m.log.WithError(err).Warn("saving state failed")
		}
	}
}

func (m *Manager) removeCreatedPortLocked(ctx context.Context, mi *mirror) {
	if mi.createdPort == "" {
		return
	}
	if err := m.cfg.OVSDB.RemovePort(ctx, mi.spec.Bridge, mi.createdPort); err != nil {
		m.log.WithError(err).WithFields(logrus.Fields{"mirror": mi.spec.Name, "port": mi.createdPort}).Warn("removing output port failed")
	}
}

// Mirrors lists every mirror, sorted by name.
func (m *Manager) Mirrors(ctx context.Context) ([]api.Mirror, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]api.Mirror, 0, len(m.mirrors))
	for _, mi := range m.mirrors {
		out = append(out, view(mi))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out, nil
}

// Mirror returns one mirror.
func (m *Manager) Mirror(ctx context.Context, name string) (api.Mirror, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mi, ok := m.mirrors[name]
	if !ok {
		return api.Mirror{}, api.WithCode(api.CodeNotFound, fmt.Errorf("mirror %q: not found", name))
	}
	return view(mi), nil
}

// Flows returns the flows installed for a mirror in ovs-ofctl syntax, in
// table and priority order. A mirror not installed (pending) has none.
func (m *Manager) Flows(ctx context.Context, name string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mi, ok := m.mirrors[name]
	if !ok {
		return nil, api.WithCode(api.CodeNotFound, fmt.Errorf("mirror %q: not found", name))
	}
	b := m.bridges[mi.spec.Bridge]
	var out []string
	if b == nil || !b.synced {
		return out, nil
	}
	for _, f := range b.installed {
		if f.Mirror == name {
			out = append(out, f.Flow.String())
		}
	}
	return out, nil
}

// Stats returns packet and byte counters of one mirror (name) or all ("").
// Counters of mirrors whose switch is not connected are zero.
func (m *Manager) Stats(ctx context.Context, name string) ([]api.MirrorStats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	if name != "" {
		if _, ok := m.mirrors[name]; !ok {
			return nil, api.WithCode(api.CodeNotFound, fmt.Errorf("mirror %q: not found", name))
		}
		names = []string{name}
	} else {
		for n := range m.mirrors {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	perBridge := map[string][]FlowStat{}
	cl := m.cfg.Compiler.Cookies()
	for _, n := range names {
		br := m.mirrors[n].spec.Bridge
		if _, done := perBridge[br]; done {
			continue
		}
		perBridge[br] = nil
		b := m.bridges[br]
		if b == nil || !b.synced || b.sw == nil {
			continue
		}
		c, mask := cl.GenerationMatch(b.gen)
		st, err := b.sw.FlowStats(ctx, c, mask)
		if err != nil {
			return nil, fmt.Errorf("bridge %s: flow stats: %w", br, err)
		}
		perBridge[br] = st
	}
	counts := map[string]map[string]api.MirrorStats{}
	for br, st := range perBridge {
		if b := m.bridges[br]; b != nil && b.synced && b.prog.Count != nil {
			counts[br] = b.prog.Count(st)
		}
	}
	out := make([]api.MirrorStats, 0, len(names))
	for _, n := range names {
		mi := m.mirrors[n]
		ms, ok := counts[mi.spec.Bridge][n]
		if !ok {
			ms = api.MirrorStats{}
		}
		ms.Name, ms.Bridge = n, mi.spec.Bridge
		if ms.Selections == nil {
			ms.Selections = []api.SelectionStats{}
		}
		out = append(out, ms)
	}
	return out, nil
}

// Release deletes every mirror of bridge (and the ports flowspan created
// for them), removes flowspan's flows and restores the bridge's previous
// controllers and fail mode.
func (m *Manager) Release(ctx context.Context, bridge string) (api.ReleaseResult, error) {
	if err := m.waitReady(ctx); err != nil {
		return api.ReleaseResult{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	res := api.ReleaseResult{Bridge: bridge, Deleted: []string{}}
	facts, err := m.bridgeFacts(ctx, bridge, nil)
	if errors.Is(err, ErrNoBridge) {
		return res, invalidf("bridge %q: no such bridge", bridge)
	} else if err != nil {
		return res, err
	}
	gone := m.mirrorsOf(bridge)
	for _, mi := range gone {
		delete(m.mirrors, mi.spec.Name)
	}
	if err := m.saveLocked(); err != nil {
		for _, mi := range gone {
			m.mirrors[mi.spec.Name] = mi
		}
		return res, err
	}
	b := m.bridge(bridge)
	b.facts, b.dpid = facts, facts.DatapathID
	if facts.HandedOver && !b.takenOver {
		// Handed over by a previous run: connect to remove its flows.
		if err := m.takeOverLocked(ctx, b); err != nil {
			m.log.WithError(err).WithField("bridge", bridge).Warn("release: reconnecting failed")
		}
	}
	if b.takenOver {
		sw, ok := m.cfg.Controller.Switch(b.dpid)
		if !ok {
			sw, ok = m.waitSwitch(ctx, b.dpid)
		}
		if !ok {
			m.log.WithField("bridge", bridge).Warn("release: switch not connected; flowspan's flows stay until the bridge is taken over again")
		} else if err := m.removeAllLocked(ctx, bridge, sw); err != nil {
			m.log.WithError(err).WithField("bridge", bridge).Warn("release: removing flows failed")
		}
	}
	b.installed, b.synced, b.sw = nil, false, nil
	for _, mi := range gone {
		m.removeCreatedPortLocked(ctx, mi)
		m.unisolateLocked(ctx, mi)
		res.Deleted = append(res.Deleted, mi.spec.Name)
	}
	// Release even if we never took it over in this run: a previous run may have.
	if b.dialCancel != nil {
		b.dialCancel()
		b.dialCancel = nil
	}
	if err := m.cfg.OVSDB.Release(ctx, bridge); err != nil {
		return res, fmt.Errorf("bridge %s: release: %w", bridge, err)
	}
	b.takenOver = false
	m.forgetBridgeLocked(b)
	m.log.WithFields(logrus.Fields{"bridge": bridge, "deleted": res.Deleted}).Info("bridge released")
	return res, nil
}
