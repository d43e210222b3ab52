package flows

import (
	"maps"
	"slices"
	"sync"
)

// Compiler compiles like Compile and remembers what it parsed and
// generated: each filter's parsed match (by its text) and each active
// mirror's flows, keyed by everything they depend on (the spec and its
// ID, the configuration and generation, the facts of the ports the mirror
// names, its output's VLAN layout; for RSPAN outputs all bridge facts and
// the set of outputs). Compiling again after one mirror was added, changed
// or removed then costs about that mirror's flows plus the shared flows
// and copying the result, instead of the whole bridge. Results are
// identical to Compile's for the same inputs.
//
// Use one Compiler per bridge (mirrors it no longer sees are forgotten).
// The zero value is ready to use; a Compiler is safe for concurrent use
// (compiles are serialized).
type Compiler struct {
	mu  sync.Mutex
	cfg compilerKey
	// entries by mirror name: the last validated spec and its flows.
	entries map[string]*mirrorEntry
	// facts of the previous compile and their version.
	facts    BridgeFacts
	factsVer uint64
	// outs: the active output ports of the previous compile (names in
	// OpenFlow port order), and their version.
	outs    []string
	outsVer uint64
	// static: the shared flows that depend only on the configuration,
	// facts and outputs (classify, learn, predict), for versions
	// staticVer.
	static    *mirrorFlows
	staticVer [2]uint64
}

// compilerKey is the normalized configuration flows depend on.
type compilerKey struct {
	valid         bool
	tableBase     uint8
	continueTable uint8
	regs          Registers
	hostEgress    int // -1: none
	gen           uint8
}

// mirrorEntry is a validated spec and, once generated, its flows.
type mirrorEntry struct {
	spec  Mirror // slices cloned: callers may reuse theirs
	flows *mirrorFlows
}

// planKey is what a mirror's flows depend on besides the spec and the
// configuration.
type planKey struct {
	id       uint16
	outPort  PortFacts
	outVLAN  portVLAN
	ingress  []PortFacts
	egress   []PortFacts
	selectsA bool
	// factsVer and outsVer: RSPAN flows only (0 otherwise).
	factsVer, outsVer uint64
}

// Compile is the package's Compile, reusing earlier work.
func (cc *Compiler) Compile(cfg Config, mirrors []Mirror, facts BridgeFacts) (*Result, error) {
	return cc.compile(cfg, mirrors, facts, true)
}

// CompileParts is Compile without Result.Flows: the flows are only in
// Result.Parts (for callers that consume the parts, saving the copy).
func (cc *Compiler) CompileParts(cfg Config, mirrors []Mirror, facts BridgeFacts) (*Result, error) {
	return cc.compile(cfg, mirrors, facts, false)
}

func (cc *Compiler) compile(cfg Config, mirrors []Mirror, facts BridgeFacts, flat bool) (*Result, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	c := &compiler{cfg: cfg, facts: facts, vlans: map[string]portVLAN{}}
	res, err := c.run(cc, mirrors, flat)
	if err != nil {
		return nil, err
	}
	cc.forget(mirrors)
	return res, nil
}

// prepare is called once c is set up: it drops the generated flows when
// the configuration changed and versions the facts.
func (cc *Compiler) prepare(c *compiler) {
	key := compilerKey{valid: true, tableBase: c.cfg.TableBase, continueTable: c.cfg.ContinueTable, regs: c.regs,
		hostEgress: -1, gen: c.gen}
	if c.cfg.HostEgress != nil {
		key.hostEgress = *c.cfg.HostEgress
	}
	if cc.entries == nil {
		cc.entries = map[string]*mirrorEntry{}
	}
	if key != cc.cfg {
		cc.cfg = key
		for _, e := range cc.entries {
			e.flows = nil
		}
		cc.static = nil
	}
	if cc.factsVer == 0 || !factsEqual(cc.facts, c.facts) {
		cc.factsVer++
		cc.facts = cloneFacts(c.facts)
	}
	c.factsVer = cc.factsVer
	// Parsed filters are kept for this compile only: a spec validated
	// before is not parsed again unless its flows are generated again
	// (keeping them would cost more memory than the flows).
	c.filters = map[string]Match{}
}

// cachedStatic returns the static shared flows if the facts and outputs
// are those they were generated for (a configuration change drops them).
func (cc *Compiler) cachedStatic() *mirrorFlows {
	if cc.static == nil || cc.staticVer != [2]uint64{cc.factsVer, cc.outsVer} {
		return nil
	}
	return cc.static
}

func (cc *Compiler) storeStatic(mf *mirrorFlows) {
	cc.static, cc.staticVer = mf, [2]uint64{cc.factsVer, cc.outsVer}
}

// outputsChanged versions the active output set.
func (cc *Compiler) outputsChanged(outs []string) {
	if cc.outsVer == 0 || !slices.Equal(cc.outs, outs) {
		cc.outsVer++
		cc.outs = slices.Clone(outs)
	}
}

// validate validates m unless the same spec was validated before, and
// returns its entry.
func (cc *Compiler) validate(m Mirror, filters map[string]Match) (*mirrorEntry, error) {
	if e := cc.entries[m.Name]; e != nil && mirrorEqual(e.spec, m) {
		return e, nil
	}
	if err := m.validate(filters); err != nil {
		return nil, err
	}
	e := &mirrorEntry{spec: cloneMirror(m)}
	cc.entries[m.Name] = e
	return e, nil
}

// cached returns p's flows if they were generated for the same plan.
func (cc *Compiler) cached(p *mirrorPlan) *mirrorFlows {
	if p.entry == nil || p.entry.flows == nil {
		return nil
	}
	mf := p.entry.flows
	if !planKeyEqual(mf.key, cc.planKeyOf(p)) {
		return nil
	}
	return mf
}

func (cc *Compiler) store(p *mirrorPlan, mf *mirrorFlows) {
	if p.entry != nil {
		p.entry.flows = mf
	}
}

func (cc *Compiler) planKeyOf(p *mirrorPlan) planKey {
	k := planKey{id: p.m.ID, outPort: p.outPort, outVLAN: p.outVLAN, ingress: p.ingress, egress: p.egress, selectsA: p.selectsA}
	if p.m.Output.Port == "" {
		k.factsVer, k.outsVer = cc.factsVer, cc.outsVer
	}
	return k
}

// planKey is the key generate stores: planKeyOf with c's versions, its
// slices owned by the key.
func (c *compiler) planKey(p *mirrorPlan) planKey {
	k := planKey{id: p.m.ID, outPort: clonePort(p.outPort), outVLAN: p.outVLAN, selectsA: p.selectsA}
	for _, pf := range p.ingress {
		k.ingress = append(k.ingress, clonePort(pf))
	}
	for _, pf := range p.egress {
		k.egress = append(k.egress, clonePort(pf))
	}
	if k.outVLAN.trunks != nil {
		t := *k.outVLAN.trunks
		k.outVLAN.trunks = &t
	}
	if p.m.Output.Port == "" {
		k.factsVer, k.outsVer = c.factsVer, c.outsVer
	}
	return k
}

// forget drops the entries of mirrors not compiled this time.
func (cc *Compiler) forget(mirrors []Mirror) {
	if len(cc.entries) <= len(mirrors) {
		return
	}
	names := make(map[string]bool, len(mirrors))
	for _, m := range mirrors {
		names[m.Name] = true
	}
	maps.DeleteFunc(cc.entries, func(name string, _ *mirrorEntry) bool { return !names[name] })
}

func mirrorEqual(a, b Mirror) bool {
	return a.Name == b.Name && a.ID == b.ID && a.All == b.All && a.Output == b.Output && a.Snaplen == b.Snaplen &&
		slices.Equal(a.Ingress, b.Ingress) && slices.Equal(a.Egress, b.Egress) && slices.Equal(a.Ports, b.Ports) &&
		slices.Equal(a.VLANs, b.VLANs) && slices.Equal(a.Filters, b.Filters)
}

func cloneMirror(m Mirror) Mirror {
	m.Ingress, m.Egress, m.Ports = slices.Clone(m.Ingress), slices.Clone(m.Egress), slices.Clone(m.Ports)
	m.VLANs, m.Filters = slices.Clone(m.VLANs), slices.Clone(m.Filters)
	return m
}

func portEqual(a, b PortFacts) bool {
	return a.Name == b.Name && a.OFPort == b.OFPort && a.Tag == b.Tag && a.VLANMode == b.VLANMode &&
		a.Type == b.Type && a.Isolated == b.Isolated && slices.Equal(a.Trunks, b.Trunks)
}

func clonePort(p PortFacts) PortFacts {
	p.Trunks = slices.Clone(p.Trunks)
	return p
}

func portVLANEqual(a, b portVLAN) bool {
	if a.mode != b.mode || a.tag != b.tag || (a.trunks == nil) != (b.trunks == nil) {
		return false
	}
	return a.trunks == nil || *a.trunks == *b.trunks
}

func planKeyEqual(a, b planKey) bool {
	return a.id == b.id && a.selectsA == b.selectsA && a.factsVer == b.factsVer && a.outsVer == b.outsVer &&
		portEqual(a.outPort, b.outPort) && portVLANEqual(a.outVLAN, b.outVLAN) &&
		slices.EqualFunc(a.ingress, b.ingress, portEqual) && slices.EqualFunc(a.egress, b.egress, portEqual)
}

func factsEqual(a, b BridgeFacts) bool {
	if a.MACAgingTime != b.MACAgingTime || a.ForwardBPDU != b.ForwardBPDU || a.Unseeded != b.Unseeded || len(a.Ports) != len(b.Ports) {
		return false
	}
	for name, p := range a.Ports {
		q, ok := b.Ports[name]
		if !ok || !portEqual(p, q) {
			return false
		}
	}
	return true
}

func cloneFacts(f BridgeFacts) BridgeFacts {
	out := f
	out.Ports = make(map[string]PortFacts, len(f.Ports))
	for name, p := range f.Ports {
		out.Ports[name] = clonePort(p)
	}
	return out
}
