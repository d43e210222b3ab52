package flows

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sort"
	"strconv"

	"github.com/flowspan/flowspan/ofctrl/ofpx"
)

// Config tunes the compiler. The zero value is a standalone pipeline in
// tables 0..NumTables-1 continuing with NORMAL, registers reg0/reg1,
// generation 1.
type Config struct {
	// TableBase is the first table; the pipeline uses TableBase ..
	// TableBase+NumTables-1. Table TableBase is where packets enter.
	TableBase uint8
	// ContinueTable, when not 0, is the host pipeline's table that
	// packets go to after mirroring (goto_table); it must come after the
	// pipeline's last table. 0 means the NORMAL action.
	ContinueTable uint8
	// Registers to use; nil means reg0 (meta) and reg1 (egress).
	Registers *Registers
	// HostEgress, when set, is the register in which the host pipeline
	// has already put the port the packet will leave by (before
	// TableBase), with EgressFlood for floods and EgressNone for drops.
	// Egress is then exact and the MAC-learning tables are not used.
	// It must differ from both flowspan registers (the egress register
	// still carries the selection index, see fields.go).
	HostEgress *int
	// Generation goes into every cookie (1..255); 0 means 1.
	Generation uint8
}

// Direction of a selection.
type Direction uint8

// Directions.
const (
	DirIngress Direction = iota + 1 // packets received on Port
	DirEgress                       // packets NORMAL sends (unicast) to Port
	DirFlood                        // flooded packets reaching any egress port
	DirAll                          // every packet (all, VLAN-only, filter-only)
)

func (d Direction) String() string {
	switch d {
	case DirIngress:
		return "ingress"
	case DirEgress:
		return "egress"
	case DirFlood:
		return "flood"
	case DirAll:
		return "all"
	}
	return "direction(" + strconv.Itoa(int(d)) + ")"
}

// Selection is one counted selection of a mirror; Index is the cookie
// index of its flows.
type Selection struct {
	Index     uint32
	Port      string // empty for DirFlood and DirAll
	Direction Direction
}

// MirrorStatus says what became of one mirror.
type MirrorStatus struct {
	ID uint16
	// Active is true when the mirror's flows are in Result.Flows.
	Active bool
	// Err says why the mirror is not active (e.g. its output port is
	// missing); it wraps ErrPortMissing or ErrConflict.
	Err error
	// Missing lists selected ports that are not on the bridge (or have no
	// OpenFlow port yet); their selections have no flows until they appear.
	Missing []string
	// Selections maps cookie indexes to selections.
	Selections []Selection
	// Flows is how many flows the mirror has (shared pipeline flows not
	// counted).
	Flows int
}

// Errors in MirrorStatus.Err.
var (
	ErrPortMissing = errors.New("port not on bridge")
	ErrConflict    = errors.New("conflicts with another mirror")
	ErrUnsupported = errors.New("not supported")
)

// Result is the compiled pipeline.
type Result struct {
	// Flows in a deterministic order (by table, then as generated).
	Flows []Flow
	// Status per mirror name.
	Status map[string]MirrorStatus
	// Generation used in the cookies.
	Generation uint8
	// Parts are Flows grouped: first the shared pipeline flows in two
	// parts with Mirror 0 (those that depend only on the configuration,
	// the bridge facts and the set of outputs; then the dispatch flow),
	// then the flows of each active mirror in ID order, each part in table
	// order. A Compiler returns the very same Flows slice (same backing
	// array) for the first shared part and for each mirror whose inputs did
	// not change since its previous compile, so callers may keep what they
	// derive from a part while its slice stays the same. Parts and the
	// flows in them are read-only.
	Parts []Part
}

// Part is one group of a Result's flows.
type Part struct {
	// Mirror is the mirror's ID; 0 for the shared pipeline flows.
	Mirror uint16
	Flows  []Flow
}

type compiler struct {
	cfg    Config
	regs   Registers
	egress ofpx.Field
	// egressMask is what select flows match of the egress register:
	// the low 16 bits of flowspan's own (SEL shares it), the host's whole.
	egressMask uint32
	gen        uint8
	facts      BridgeFacts
	tables     [NumTables][]Flow
	toEmit     []Action // shared: resubmit(,emit)
	toCount    ActResubmit
	// outPorts are the active mirrors' output ports (ofport).
	outPorts map[uint32]bool
	// outs are the same ports in OpenFlow port order, outNames their
	// names, outSeen the set of names.
	outs     []PortFacts
	outNames []string
	outSeen  map[string]bool
	vlans    map[string]portVLAN
	filters  map[string]Match
	// keep: the flows generated are kept by a Compiler (with their key).
	keep bool
	// scratch receives one mirror's flows while it is generated.
	scratch [NumTables][]Flow
	// factsVer and outsVer identify the bridge facts and the output set
	// (RSPAN flows depend on both); 0 without a Compiler.
	factsVer, outsVer uint64
}

type mirrorPlan struct {
	m        Mirror
	status   MirrorStatus
	outKey   string
	outPort  PortFacts
	outVLAN  portVLAN
	ingress  []PortFacts
	egress   []PortFacts
	selectsA bool // all (explicit or implied)
	// entry is the Compiler's cache entry for this spec (nil without one).
	entry *mirrorEntry
}

// Compile turns mirror specs and bridge facts into the pipeline's flows.
// Invalid specs or config fail the whole compile (nothing should change);
// mirrors that cannot be installed on this bridge as it is now (missing
// output port, output selected by another mirror) are reported in
// Result.Status and left out. A Compiler gives the same results, reusing
// the work of its earlier compiles.
func Compile(cfg Config, mirrors []Mirror, facts BridgeFacts) (*Result, error) {
	c := &compiler{cfg: cfg, facts: facts, vlans: map[string]portVLAN{}}
	return c.run(nil, mirrors, true)
}

// run compiles mirrors; cc, when not nil, is the cache to reuse and fill
// (its lock held). flat says whether to build Result.Flows.
func (c *compiler) run(cc *Compiler, mirrors []Mirror, flat bool) (*Result, error) {
	if err := c.setup(); err != nil {
		return nil, err
	}
	if cc != nil {
		c.keep = true
		cc.prepare(c)
	}
	plans, err := c.planWith(mirrors, cc)
	if err != nil {
		return nil, err
	}
	c.toEmit = []Action{ActResubmit{c.table(tEmit)}}
	c.toCount = ActResubmit{c.table(tCount)}
	c.outputs(plans)
	var static *mirrorFlows
	if cc != nil {
		cc.outputsChanged(c.outNames)
		c.outsVer = cc.outsVer
		static = cc.cachedStatic()
	}
	if static == nil {
		var err error
		if static, err = c.generate(nil); err != nil {
			return nil, err
		}
		if cc != nil {
			cc.storeStatic(static)
		}
	}
	c.emitDispatch(plans)
	dispatch := c.tables[tDispatch]
	for i := range dispatch {
		if err := c.checkFlow(&dispatch[i]); err != nil {
			return nil, fmt.Errorf("internal error: %w", err)
		}
	}
	res := &Result{Status: make(map[string]MirrorStatus, len(plans)), Generation: c.gen}
	res.Parts = make([]Part, 0, 2+len(plans))
	res.Parts = append(res.Parts, Part{Flows: static.flows}, Part{Flows: dispatch})
	parts := make([]*mirrorFlows, 0, len(plans))
	total := len(static.flows) + len(dispatch)
	for _, p := range plans {
		if !p.status.Active {
			continue
		}
		var mf *mirrorFlows
		if cc != nil {
			mf = cc.cached(p)
		}
		if mf == nil {
			if mf, err = c.generate(p); err != nil {
				return nil, err
			}
			if cc != nil {
				cc.store(p, mf)
			}
		}
		p.status.Flows = len(mf.flows)
		p.status.Selections = mf.selections
		if c.keep {
			p.status.Selections = slices.Clone(mf.selections) // the kept ones stay unchanged
		}
		parts = append(parts, mf)
		res.Parts = append(res.Parts, Part{Mirror: p.m.ID, Flows: mf.flows})
		total += len(mf.flows)
	}
	if flat {
		// By table: the shared flows, then each mirror's in ID order.
		res.Flows = make([]Flow, 0, total)
		for t := range NumTables {
			res.Flows = append(res.Flows, static.flows[static.bounds[t]:static.bounds[t+1]]...)
			res.Flows = append(res.Flows, c.tables[t]...)
			for _, mf := range parts {
				res.Flows = append(res.Flows, mf.flows[mf.bounds[t]:mf.bounds[t+1]]...)
			}
		}
	}
	for _, p := range plans {
		res.Status[p.m.Name] = p.status
	}
	return res, nil
}

// mirrorFlows is what one active mirror compiles to: its flows in table
// order, where each table's flows start, and its selections.
type mirrorFlows struct {
	key        planKey
	flows      []Flow
	bounds     [NumTables + 1]int
	selections []Selection
}

// generate emits p's flows, or the static shared flows when p is nil, on
// their own (not into the shared tables) and checks them.
func (c *compiler) generate(p *mirrorPlan) (*mirrorFlows, error) {
	var filters []string
	if p != nil {
		filters = p.m.Filters
	}
	for i, f := range filters {
		if _, ok := c.filters[f]; ok {
			continue
		}
		// Validated by an earlier compile.
		fm, err := ParseFilter(f)
		if err != nil {
			return nil, &ValidationError{Mirror: p.m.Name, Field: fmt.Sprintf("filters[%d]", i), Err: err}
		}
		c.filters[f] = fm
	}
	shared := c.tables
	for i := range c.scratch {
		c.scratch[i] = c.scratch[i][:0]
	}
	c.tables = c.scratch
	var mf *mirrorFlows
	if p != nil {
		p.status.Selections = nil
		c.emitMirror(p)
		mf = &mirrorFlows{selections: p.status.Selections}
		if c.keep {
			mf.key = c.planKey(p)
		}
	} else {
		c.emitStatic()
		mf = &mirrorFlows{}
	}
	c.scratch, c.tables = c.tables, shared
	n := 0
	for i := range c.scratch {
		n += len(c.scratch[i])
	}
	mf.flows = make([]Flow, 0, n)
	for i := range c.scratch {
		mf.bounds[i] = len(mf.flows)
		mf.flows = append(mf.flows, c.scratch[i]...)
	}
	mf.bounds[NumTables] = len(mf.flows)
	for i := range mf.flows {
		if err := c.checkFlow(&mf.flows[i]); err != nil {
			return nil, fmt.Errorf("internal error: %w", err)
		}
	}
	return mf, nil
}

func configErr(format string, args ...any) error {
	return fmt.Errorf("flows config: %w: "+format, append([]any{ErrInvalid}, args...)...)
}

func (c *compiler) setup() error {
	c.regs = Registers{Meta: 0, Egress: 1}
	if c.cfg.Registers != nil {
		c.regs = *c.cfg.Registers
	}
	if c.regs.Meta < 0 || c.regs.Meta > 15 || c.regs.Egress < 0 || c.regs.Egress > 15 || c.regs.Meta == c.regs.Egress {
		return configErr("registers %+v: need two different registers 0..15", c.regs)
	}
	c.egress = c.regs.egress()
	c.egressMask = egressMask
	if c.cfg.HostEgress != nil {
		h := *c.cfg.HostEgress
		if h < 0 || h > 15 || h == c.regs.Meta || h == c.regs.Egress {
			return configErr("host egress register %d: need 0..15 other than flowspan's meta and egress registers %d and %d", h, c.regs.Meta, c.regs.Egress)
		}
		c.egress = ofpx.Reg(h)
		c.egressMask = ^uint32(0)
	}
	last := int(c.cfg.TableBase) + NumTables - 1
	if last > 253 {
		return configErr("table base %d: the pipeline's %d tables must end before table 254", c.cfg.TableBase, NumTables)
	}
	if c.cfg.ContinueTable != 0 && int(c.cfg.ContinueTable) <= last {
		return configErr("continue table %d: must come after the pipeline's last table %d", c.cfg.ContinueTable, last)
	}
	if c.cfg.ContinueTable == 255 {
		return configErr("continue table 255 is not a table")
	}
	c.gen = c.cfg.Generation
	if c.gen == 0 {
		c.gen = 1
	}
	names := make([]string, 0, len(c.facts.Ports))
	for name := range c.facts.Ports {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := c.facts.Ports[name]
		if p.Name != "" && p.Name != name {
			return fmt.Errorf("bridge facts: %w: port key %q holds port %q", ErrInvalid, name, p.Name)
		}
		p.Name = name
		pv, err := resolvePortVLAN(p)
		if err != nil {
			return fmt.Errorf("bridge facts: %w: %v", ErrInvalid, err)
		}
		c.vlans[name] = pv
	}
	return nil
}

func (c *compiler) table(off uint8) uint8 { return c.cfg.TableBase + off }

// byOFPort orders port names by OpenFlow port, then name (facts may, if
// wrongly, give two ports one number: the order stays deterministic).
func (c *compiler) byOFPort(a, b string) bool {
	pa, pb := c.facts.Ports[a].OFPort, c.facts.Ports[b].OFPort
	return pa < pb || pa == pb && a < b
}

func (c *compiler) cookie(kind Kind, mirror uint16, index uint32) uint64 {
	return uint64(MakeCookie(c.gen, kind, mirror, index))
}

func (c *compiler) add(off uint8, prio uint16, cookie uint64, m Match, acts ...Action) {
	c.tables[off] = append(c.tables[off], Flow{Table: c.table(off), Priority: prio, Cookie: cookie, Match: m, Actions: acts})
}

// addActs adds a flow whose action slice may be shared with other flows
// (flows are read-only once built).
func (c *compiler) addActs(off uint8, prio uint16, cookie uint64, m Match, acts []Action) {
	c.tables[off] = append(c.tables[off], Flow{Table: c.table(off), Priority: prio, Cookie: cookie, Match: m, Actions: acts})
}

func (c *compiler) port(name string) (PortFacts, bool) {
	p, ok := c.facts.Ports[name]
	if !ok || p.OFPort == 0 {
		return PortFacts{}, false
	}
	p.Name = name
	return p, true
}

func (c *compiler) plan(mirrors []Mirror) ([]*mirrorPlan, error) { return c.planWith(mirrors, nil) }

// planWith is plan; cc, when not nil, validates specs (skipping those it
// validated before) and holds the parsed filters.
func (c *compiler) planWith(mirrors []Mirror, cc *Compiler) ([]*mirrorPlan, error) {
	if len(mirrors) > MaxMirrors {
		return nil, fmt.Errorf("flows: %w: %d mirrors, at most %d per bridge", ErrInvalid, len(mirrors), MaxMirrors)
	}
	plans := make([]*mirrorPlan, 0, len(mirrors))
	names := map[string]bool{}
	ids := map[uint16]string{}
	var maxID uint16
	nFilters := 0
	for _, m := range mirrors {
		nFilters += len(m.Filters)
	}
	if cc == nil {
		c.filters = make(map[string]Match, min(nFilters, MaxBridgeFilters))
	}
	nFilters = 0
	entries := make([]*mirrorEntry, len(mirrors))
	for i, m := range mirrors {
		if cc != nil {
			e, err := cc.validate(m, c.filters)
			if err != nil {
				return nil, err
			}
			entries[i] = e
		} else if err := m.validate(c.filters); err != nil {
			return nil, err
		}
		if names[m.Name] {
			return nil, &ValidationError{Mirror: m.Name, Field: "name", Err: errors.New("duplicate mirror name")}
		}
		names[m.Name] = true
		if m.ID != 0 {
			if other, ok := ids[m.ID]; ok {
				return nil, &ValidationError{Mirror: m.Name, Field: "id", Err: fmt.Errorf("ID %d already used by mirror %q", m.ID, other)}
			}
			ids[m.ID] = m.Name
			maxID = max(maxID, m.ID)
		}
		nFilters += len(m.Filters)
		plans = append(plans, &mirrorPlan{m: m, entry: entries[i]})
	}
	if nFilters > MaxBridgeFilters {
		return nil, fmt.Errorf("flows: %w: %d filters in all, at most %d per bridge", ErrInvalid, nFilters, MaxBridgeFilters)
	}
	sort.Slice(plans, func(i, j int) bool { return plans[i].m.Name < plans[j].m.Name })
	next := maxID
	for _, p := range plans {
		if p.m.ID == 0 {
			if next == 0xffff {
				return nil, fmt.Errorf("flows: %w: no free mirror ID", ErrInvalid)
			}
			next++
			p.m.ID = next
		}
		p.status.ID = p.m.ID
	}
	sort.Slice(plans, func(i, j int) bool { return plans[i].m.ID < plans[j].m.ID })

	// Resolve outputs.
	outputs := map[string]string{} // output port name -> first mirror
	for _, p := range plans {
		p.status.Active = true
		if p.m.Output.Port != "" {
			op, ok := c.port(p.m.Output.Port)
			if !ok {
				p.status.Active = false
				p.status.Err = fmt.Errorf("output port %q: %w", p.m.Output.Port, ErrPortMissing)
				continue
			}
			if op.OFPort >= 0xff00 && p.m.Snaplen != 0 && p.m.Snaplen != 65535 {
				p.status.Active = false
				p.status.Err = fmt.Errorf("output port %q: %w: snaplen on a reserved port (OVS truncates only to ports below 0xff00)", op.Name, ErrUnsupported)
				continue
			}
			p.outPort = op
			p.outVLAN = c.vlans[op.Name]
			if op.Isolated {
				p.outVLAN = portVLAN{mode: modeTrunk}
			}
			p.outKey = "port:" + op.Name
			if _, ok := outputs[op.Name]; !ok {
				outputs[op.Name] = p.m.Name
			}
		} else {
			p.outKey = fmt.Sprintf("vlan:%04d", p.m.Output.VLAN)
		}
	}
	// Resolve selections; a mirror selecting some mirror's output port
	// cannot be installed.
	for _, p := range plans {
		if !p.status.Active {
			continue
		}
		m := p.m
		for _, l := range [][]string{m.Ports, m.Ingress, m.Egress} {
			for _, name := range l {
				if owner, ok := outputs[name]; ok {
					p.status.Active = false
					p.status.Err = fmt.Errorf("selected port %q is the output of mirror %q: %w", name, owner, ErrConflict)
				}
			}
		}
		if !p.status.Active {
			continue
		}
		missing := map[string]bool{}
		resolve := func(lists ...[]string) []PortFacts {
			var out []PortFacts
			for _, l := range lists {
				for _, name := range l {
					pf, ok := c.port(name)
					if !ok {
						if !missing[name] {
							missing[name] = true
							p.status.Missing = append(p.status.Missing, name)
						}
						continue
					}
					out = append(out, pf)
				}
			}
			return out
		}
		p.ingress = resolve(m.Ports, m.Ingress)
		p.egress = resolve(m.Ports, m.Egress)
		p.selectsA = m.All || m.namesNoPorts()
		n := len(p.ingress) + len(p.egress) // + flood and all, as emitMirror adds them
		if len(p.egress) > 0 {
			n++
		}
		if p.selectsA {
			n++
		}
		if n > maxSelections {
			p.status.Active = false
			p.status.Err = fmt.Errorf("%d selections: %w: a mirror has at most %d (one per selected port and direction, flood, all)", n, ErrUnsupported, maxSelections)
		}
	}
	return plans, nil
}

// metaID matches mirror id in the meta register.
func (c *compiler) metaID(m Match, id uint16) Match {
	return m.WithReg(c.regs.Meta, uint32(id)<<metaIDOfs, metaIDMask)
}

func (c *compiler) metaVLAN() ofpx.Subfield { return c.regs.meta().Range(metaVLANOfs, metaVLANBits) }
func (c *compiler) metaDone() ofpx.Subfield { return c.regs.meta().Range(metaDoneBit, 1) }
func (c *compiler) sel() ofpx.Subfield      { return c.regs.egress().Range(selOfs, selBits) }
func (c *compiler) metaIDField() ofpx.Subfield {
	return c.regs.meta().Range(metaIDOfs, metaIDBits)
}

var (
	macMulticast   = [6]byte{0x01, 0, 0, 0, 0, 0}
	macReserved    = [6]byte{0x01, 0x80, 0xc2, 0, 0, 0}
	macReservedMsk = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xf0}
)

func (c *compiler) continuation() Action {
	if c.cfg.ContinueTable != 0 {
		return ActGotoTable{c.cfg.ContinueTable}
	}
	return ActNormal{}
}

// outputs finds the active mirrors' output ports.
func (c *compiler) outputs(plans []*mirrorPlan) {
	c.outSeen = map[string]bool{}
	c.outs = c.outs[:0]
	for _, p := range plans {
		if p.status.Active && p.outPort.Name != "" && !c.outSeen[p.outPort.Name] {
			c.outSeen[p.outPort.Name] = true
			c.outs = append(c.outs, p.outPort)
		}
	}
	outs := c.outs
	sort.Slice(outs, func(i, j int) bool {
		return outs[i].OFPort < outs[j].OFPort || outs[i].OFPort == outs[j].OFPort && outs[i].Name < outs[j].Name
	})
	c.outPorts = make(map[uint32]bool, len(outs))
	c.outNames = make([]string, 0, len(outs))
	for _, o := range outs {
		c.outPorts[o.OFPort] = true
		c.outNames = append(c.outNames, o.Name)
	}
}

// emitStatic writes the shared tables that depend only on the
// configuration, the bridge facts and the outputs: classify, learn,
// predict.
func (c *compiler) emitStatic() {
	pipe := c.cookie(KindPipeline, 0, 0)
	seen := c.outSeen
	// classify: drop from active outputs.
	for _, o := range c.outs {
		c.add(tClassify, 1000, c.cookie(KindDropOutput, 0, 0), Match{}.WithInPort(o.OFPort))
	}
	next := ActGotoTable{c.table(tLearn)}
	if c.cfg.HostEgress != nil {
		next = ActGotoTable{c.table(tDispatch)}
	}
	names := make([]string, 0, len(c.facts.Ports))
	for name, pf := range c.facts.Ports {
		if pf.OFPort != 0 && !seen[name] {
			names = append(names, name)
		}
	}
	sort.Slice(names, func(i, j int) bool { return c.byOFPort(names[i], names[j]) })
	vlanTCI := ofpx.NXMVlanTCI.Range(0, 12)
	for _, name := range names {
		pv := c.vlans[name]
		in := Match{}.WithInPort(c.facts.Ports[name].OFPort)
		if pv.mode == modeDot1QTunnel {
			continue // not supported: packets are forwarded but never selected
		}
		if pv.mode == modeTrunk && pv.trunks == nil {
			c.add(tClassify, 100, pipe, in, ActMove{vlanTCI, c.metaVLAN()}, next)
			continue
		}
		// Untagged (or priority-tagged) packets.
		switch {
		case pv.mode == modeAccess || pv.mode == modeNativeTagged || pv.mode == modeNativeUntagged:
			c.add(tClassify, 110, pipe, in.WithVLANTCI(0, VLANVIDMask), ActLoad{c.metaVLAN(), uint64(pv.tag)}, next)
		case pv.trunks.has(0): // trunk with a list that includes 0
			c.add(tClassify, 110, pipe, in.WithVLANTCI(0, VLANVIDMask), ActLoad{c.metaVLAN(), 0}, next)
		}
		if pv.mode == modeAccess {
			continue // tagged packets are dropped by NORMAL and not mirrored
		}
		if pv.trunks == nil || pv.trunks.hasAllTagged() {
			c.add(tClassify, 100, pipe, in.WithVLANTCI(VLANCFI, VLANCFI), ActMove{vlanTCI, c.metaVLAN()}, next)
			continue
		}
		vlanPrefixes(1, 4095, pv.trunks.has, func(v, mask uint16) {
			c.add(tClassify, 100, pipe, in.WithVLANTCI(VLANCFI|v, VLANCFI|mask), ActMove{vlanTCI, c.metaVLAN()}, next)
		})
	}
	c.add(tClassify, 0, pipe, Match{}, c.continuation())

	if c.cfg.HostEgress == nil {
		aging := c.facts.MACAgingTime.Seconds()
		if aging <= 0 {
			aging = 300
		}
		aging = min(max(aging, 1), 65535)
		toPredict := ActGotoTable{c.table(tPredict)}
		if !c.facts.ForwardBPDU {
			c.add(tLearn, 30, pipe, Match{}.WithEthDst(macReserved, macReservedMsk), toPredict)
		}
		c.add(tLearn, 20, pipe, Match{}.WithEthSrc(macMulticast, macMulticast), toPredict)
		// One learn per port, each with its own cookie: when the port's
		// flow goes, OVS deletes what it learned (delete_learned).
		for _, name := range names {
			pf := c.facts.Ports[name]
			if c.vlans[name].mode == modeDot1QTunnel {
				continue
			}
			c.add(tLearn, 10, pipe, Match{}.WithInPort(pf.OFPort), ActLearn{
				Table: c.table(tMACs), Priority: learnedPriority, HardTimeout: uint16(aging), DeleteLearned: true,
				Cookie: uint64(LearnedCookie(pf.OFPort)), Regs: c.regs,
			}, toPredict)
		}
		c.add(tLearn, 0, pipe, Match{}, toPredict)

		toDispatch := ActGotoTable{c.table(tDispatch)}
		egressAll := c.regs.egress().All()
		if !c.facts.ForwardBPDU {
			c.add(tPredict, 30, pipe, Match{}.WithEthDst(macReserved, macReservedMsk),
				ActLoad{egressAll, uint64(EgressNone)}, toDispatch)
		}
		c.add(tPredict, 20, pipe, Match{}.WithEthDst(macMulticast, macMulticast),
			ActLoad{egressAll, uint64(EgressFlood)}, toDispatch)
		miss := EgressFlood // not in the MAC table: NORMAL floods
		if c.facts.Unseeded {
			miss = EgressNone // or NORMAL knows it and the shadow does not yet
		}
		c.add(tPredict, 0, pipe, Match{},
			ActLoad{egressAll, uint64(miss)}, ActResubmit{c.table(tMACs)}, toDispatch)
	}

}

// emitDispatch writes the dispatch flow: outputs in key order, their
// mirrors in ID order.
func (c *compiler) emitDispatch(plans []*mirrorPlan) {
	pipe := c.cookie(KindPipeline, 0, 0)
	groups := map[string][]*mirrorPlan{}
	var keys []string
	for _, p := range plans {
		if !p.status.Active {
			continue
		}
		if _, ok := groups[p.outKey]; !ok {
			keys = append(keys, p.outKey)
		}
		groups[p.outKey] = append(groups[p.outKey], p)
	}
	sort.Strings(keys)
	var acts []Action
	for _, k := range keys {
		acts = append(acts, ActLoad{c.metaDone(), 0})
		for _, p := range groups[k] {
			acts = append(acts, ActLoad{c.metaIDField(), uint64(p.m.ID)}, ActResubmit{c.table(tSelect)})
		}
	}
	if c.cfg.HostEgress == nil && len(acts) > 0 {
		// Destinations NORMAL drops for good (seeded EgressDrop): the
		// copies, then nothing.
		c.add(tDispatch, 10, pipe, Match{}.WithReg(c.regs.Egress, EgressDrop, egressMask), slices.Clone(acts)...)
	}
	acts = append(acts, c.continuation())
	c.add(tDispatch, 0, pipe, Match{}, acts...)
}

// floodSig is what decides whether a flood in some VLAN selects a mirror:
// how many of its egress ports are in the VLAN (0, 1 or "2 or more") and,
// when one, which.
type floodSig struct {
	n    int // 0, 1, 2 (= 2 or more)
	port uint32
}

func (c *compiler) emitMirror(p *mirrorPlan) {
	m := p.m
	id := m.ID
	base := c.metaID(Match{}, id)
	// Stage after select.
	afterVLAN := c.table(tEmit)
	if len(m.Filters) > 0 {
		afterVLAN = c.table(tFilter)
	}
	afterSelect := afterVLAN
	if len(m.VLANs) > 0 {
		afterSelect = c.table(tVLAN)
	}
	// Each selection's select flows write its index to SEL before going
	// on; a copy sent by the emit stage resubmits to the count table,
	// whose flow for (mirror, SEL) counts it for that selection.
	selField := c.sel()
	sel := func(dir Direction, port string) (uint32, []Action) {
		idx := uint32(len(p.status.Selections))
		p.status.Selections = append(p.status.Selections, Selection{Index: idx, Port: port, Direction: dir})
		c.add(tCount, 100, c.cookie(KindCount, id, idx), base.WithReg(c.regs.Egress, idx<<selOfs, selMask))
		return idx, []Action{ActLoad{selField, uint64(idx)}, ActResubmit{afterSelect}}
	}
	for _, in := range p.ingress {
		idx, next := sel(DirIngress, in.Name)
		c.addActs(tSelect, 400, c.cookie(KindSelIngress, id, idx), base.WithInPort(in.OFPort), next)
	}
	egReg, _ := c.egress.IsReg()
	for _, eg := range p.egress {
		idx, next := sel(DirEgress, eg.Name)
		em := base.WithReg(egReg, eg.OFPort, c.egressMask)
		c.add(tSelect, 300, c.cookie(KindSelExclude, id, idx), em.WithInPort(eg.OFPort))
		c.addActs(tSelect, 200, c.cookie(KindSelEgress, id, idx), em, next)
	}
	if len(p.egress) > 0 {
		idx, next := sel(DirFlood, "")
		c.emitFlood(p, idx, base.WithReg(egReg, EgressFlood, c.egressMask), next)
	}
	if p.selectsA {
		idx, next := sel(DirAll, "")
		c.addActs(tSelect, 100, c.cookie(KindSelAll, id, idx), base, next)
	}
	if len(m.VLANs) > 0 {
		var set vlanSet
		for _, v := range m.VLANs {
			set.set(v)
		}
		vlanPrefixes(0, 4095, set.has, func(v, mask uint16) {
			c.add(tVLAN, 100, c.cookie(KindVLAN, id, 0),
				base.WithReg(c.regs.Meta, uint32(v), uint32(mask)), ActResubmit{afterVLAN})
		})
	}
	for i, f := range m.Filters {
		fm := c.filters[f]
		c.addActs(tFilter, uint16(40000-i), c.cookie(KindFilter, id, uint32(i)),
			c.metaID(fm, id), c.toEmit)
	}
	c.emitCopy(p)
}

type finitePort struct {
	port uint32
	pv   portVLAN
}

func (c *compiler) emitFlood(p *mirrorPlan, idx uint32, fm Match, next []Action) {
	id := p.m.ID
	var all []uint32
	var fin []finitePort
	for _, eg := range p.egress {
		pv := c.vlans[eg.Name]
		if pv.mode == modeDot1QTunnel {
			continue
		}
		if pv.includesAll() {
			all = append(all, eg.OFPort)
		} else {
			fin = append(fin, finitePort{eg.OFPort, pv})
		}
	}
	sigOf := func(ports []uint32) floodSig {
		switch len(ports) {
		case 0:
			return floodSig{}
		case 1:
			return floodSig{n: 1, port: ports[0]}
		}
		return floodSig{n: 2}
	}
	sigAt := func(v uint16) floodSig {
		ports := all
		for _, f := range fin {
			if f.pv.includes(v) {
				if len(ports) >= 2 {
					return floodSig{n: 2}
				}
				ports = append(ports[:len(ports):len(ports)], f.port)
			}
		}
		return sigOf(ports)
	}
	// VLANs in no finite port's set have the signature of the all-VLAN
	// ports. The default (VLAN-independent) flows carry the signature most
	// VLANs have; VLAN-specific flows override it where it differs.
	allSig := sigOf(all)
	var union vlanSet
	for _, f := range fin {
		if f.pv.mode == modeAccess {
			union.set(f.pv.tag)
			continue
		}
		for i := range union {
			union[i] |= f.pv.trunks[i]
		}
	}
	sig := func(v uint16) floodSig {
		if !union.has(v) {
			return allSig
		}
		return sigAt(v)
	}
	// The VLANs of finite ports, in order.
	var inUnion []uint16
	for w, bitsw := range union {
		for bitsw != 0 {
			b := bits.TrailingZeros64(bitsw)
			inUnion = append(inUnion, uint16(w*64+b))
			bitsw &^= 1 << b
		}
	}
	type sigCount struct {
		s floodSig
		n int
	}
	counts := []sigCount{{allSig, 4096 - len(inUnion)}}
	sigs := make([]floodSig, len(inUnion))
	for i, v := range inUnion {
		s := sigAt(v)
		sigs[i] = s
		found := false
		for j := range counts {
			if counts[j].s == s {
				counts[j].n++
				found = true
				break
			}
		}
		if !found {
			counts = append(counts, sigCount{s, 1})
		}
	}
	def := counts[0]
	for _, sc := range counts[1:] {
		if sc.n > def.n {
			def = sc
		}
	}
	selCookie := c.cookie(KindSelFlood, id, idx)
	exclCookie := c.cookie(KindSelExclude, id, idx)
	emit := func(m Match, s floodSig, exclPrio, prio uint16) {
		switch s.n {
		case 0:
			c.add(tSelect, prio, exclCookie, m)
		case 1:
			c.add(tSelect, exclPrio, exclCookie, m.WithInPort(s.port))
			c.addActs(tSelect, prio, selCookie, m, next)
		default:
			c.addActs(tSelect, prio, selCookie, m, next)
		}
	}
	emitRun := func(lo, hi uint16, s floodSig) {
		if s != def.s {
			vlanPrefixes(lo, hi, func(uint16) bool { return true }, func(val, mask uint16) {
				emit(fm.WithReg(c.regs.Meta, uint32(val), uint32(mask)), s, 140, 135)
			})
		}
	}
	if def.s == allSig {
		// Only VLANs of finite ports can differ: runs of consecutive
		// union VLANs with equal signatures.
		for i := 0; i < len(inUnion); {
			j := i
			for j+1 < len(inUnion) && inUnion[j+1] == inUnion[j]+1 && sigs[j+1] == sigs[i] {
				j++
			}
			emitRun(inUnion[i], inUnion[j], sigs[i])
			i = j + 1
		}
	} else {
		for v := 0; v < 4096; {
			s := sig(uint16(v))
			end := v
			for end+1 < 4096 && sig(uint16(end+1)) == s {
				end++
			}
			emitRun(uint16(v), uint16(end), s)
			v = end + 1
		}
	}
	if def.s.n > 0 {
		emit(fm, def.s, 125, 120)
	}
}

// emitCopy writes the emit table: one copy per output, tagged as the
// native mirror tags it on that output, truncated to snaplen.
func (c *compiler) emitCopy(p *mirrorPlan) {
	id := p.m.ID
	base := c.metaID(Match{}, id)
	done := base.WithReg(c.regs.Meta, metaDoneMask, metaDoneMask)
	notDone := base.WithReg(c.regs.Meta, 0, metaDoneMask)
	emit := c.cookie(KindEmit, id, 0)
	c.add(tEmit, 300, c.cookie(KindEmitDup, id, 0), done)
	setDone := ActLoad{c.metaDone(), 1}
	snap := p.m.Snaplen
	if snap == 65535 {
		snap = 0
	}
	tagged := func(m Match) Match { return m.WithVLANTCI(VLANCFI, VLANCFI) }
	vlanIs := func(m Match, v uint16) Match { return m.WithReg(c.regs.Meta, uint32(v), metaVLANMask) }
	tci := ofpx.NXMVlanTCI.Range(0, 12)

	if p.m.Output.Port != "" {
		out := ActOutput{Port: p.outPort.OFPort, MaxLen: snap}
		// OVS truncates before it commits a pushed or popped VLAN header,
		// while the native mirror truncates the tagged copy: compensate
		// so the copy on the wire has snaplen bytes either way.
		adjust := func(o ActOutput, delta int) ActOutput {
			if o.MaxLen != 0 {
				o.MaxLen = uint16(min(max(int(o.MaxLen)+delta, 14), 65535))
			}
			return o
		}
		untag := func(m Match, prio uint16) {
			c.add(tEmit, prio+1, emit, tagged(m), setDone, ActClone{[]Action{ActPopVLAN{}, adjust(out, +4)}}, c.toCount)
			c.add(tEmit, prio, emit, m, setDone, out, c.toCount)
		}
		pv := p.outVLAN
		if pv.mode == modeAccess || pv.mode == modeDot1QTunnel {
			untag(notDone, 200)
			return
		}
		// VLAN 0 (untagged or priority-tagged on a trunk): untagged, except
		// that a priority tag with a nonzero PCP stays, as in OVS's
		// xvlan_put.
		v0 := vlanIs(notDone, 0)
		c.add(tEmit, 232, emit, v0.WithVLANTCI(VLANCFI, VLANCFI|VLANPCPMask), setDone, ActClone{[]Action{ActPopVLAN{}, adjust(out, +4)}}, c.toCount)
		c.add(tEmit, 231, emit, tagged(v0), setDone, out, c.toCount)
		c.add(tEmit, 230, emit, v0, setDone, out, c.toCount)
		if pv.mode == modeNativeUntagged && pv.tag != 0 {
			untag(vlanIs(notDone, pv.tag), 220)
		}
		c.add(tEmit, 201, emit, tagged(notDone), setDone, ActClone{[]Action{ActMove{c.metaVLAN(), tci}, out}}, c.toCount)
		c.add(tEmit, 200, emit, notDone, setDone, ActClone{[]Action{ActPushVLAN{}, ActMove{c.metaVLAN(), tci}, adjust(out, -4)}}, c.toCount)
		return
	}

	// RSPAN: flood the copy in the output VLAN to every port carrying it
	// (the input port included), except mirror outputs; nothing when the
	// packet is already in that VLAN or has a reserved destination.
	V := p.m.Output.VLAN
	none := c.cookie(KindEmitNone, id, 0)
	c.add(tEmit, 250, none, vlanIs(notDone, V), setDone)
	c.add(tEmit, 240, none, notDone.WithEthDst(macReserved, macReservedMsk), setDone)
	var untagged, taggedPorts []uint32
	names := make([]string, 0, len(c.facts.Ports))
	for name := range c.facts.Ports {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return c.byOFPort(names[i], names[j]) })
	for _, name := range names {
		pf := c.facts.Ports[name]
		if pf.OFPort == 0 || c.outPorts[pf.OFPort] {
			continue
		}
		pv := c.vlans[name]
		if !pv.includes(V) {
			continue
		}
		if pv.mode == modeAccess || (pv.mode == modeNativeUntagged && pv.tag == V) {
			untagged = append(untagged, pf.OFPort)
		} else {
			taggedPorts = append(taggedPorts, pf.OFPort)
		}
	}
	outs := func(ports []uint32) []Action {
		acts := make([]Action, 0, len(ports))
		for _, pt := range ports {
			o := ActOutput{Port: pt, MaxLen: snap}
			if pt >= 0xff00 {
				o.MaxLen = 0 // OVS cannot truncate to LOCAL: whole copy
			}
			acts = append(acts, o)
		}
		return acts
	}
	clearIn := ActLoad{ofpx.NXMInPort.All(), 0}
	for _, isTagged := range []bool{true, false} {
		m, prio := notDone, uint16(200)
		if isTagged {
			m, prio = tagged(notDone), 201
		}
		acts := []Action{setDone}
		if len(untagged) > 0 {
			cl := []Action{clearIn}
			if isTagged {
				cl = append(cl, ActPopVLAN{})
			}
			acts = append(acts, ActClone{append(cl, outs(untagged)...)})
		}
		if len(taggedPorts) > 0 {
			cl := []Action{clearIn}
			if !isTagged {
				cl = append(cl, ActPushVLAN{})
			}
			cl = append(cl, ActSetVLANVID{V})
			acts = append(acts, ActClone{append(cl, outs(taggedPorts)...)})
		}
		if len(acts) == 1 {
			c.add(tEmit, prio, none, m, acts...) // no port carries V
			continue
		}
		c.add(tEmit, prio, emit, m, append(acts, c.toCount)...)
	}
}
