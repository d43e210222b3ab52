package flowspan

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/flowspan/flowspan/api"
)

// fakeCompiler is a tiny deterministic compiler: one shared NORMAL flow and
// one flow per mirror selection, matching on the port's ofport.
type fakeCompiler struct{}

var fakeCookies = CookieLayout{App: 0xf5 << 56, AppMask: 0xff << 56, GenShift: 48, GenMask: 0xff, Learned: 0xf5<<56 | 3<<40,
	DropSeeds: 0xf5<<56 | 3<<40 | 1<<23}

func (fakeCompiler) Cookies() CookieLayout { return fakeCookies }

func (fakeCompiler) Restore() []FlowEntry {
	return []FlowEntry{{Table: 0, Priority: 0, Match: "", Flow: fakeFlow{"priority=0 actions=NORMAL", "NORMAL"}}}
}

func (fakeCompiler) Check(s api.MirrorSpec) error {
	for _, f := range s.Match {
		for _, tok := range strings.Split(f, ",") {
			k, _, _ := strings.Cut(tok, "=")
			if !slices.Contains([]string{"tcp", "udp", "ip", "arp", "tp_dst", "tp_src", "nw_src", "nw_dst"}, k) {
				return fmt.Errorf("mirror %q: filter %q: unknown field %q", s.Name, f, k)
			}
		}
	}
	if len(selectedPorts(s)) == 0 && !s.All && len(s.VLANs) == 0 && len(s.Match) == 0 {
		return fmt.Errorf("mirror %q: selects nothing", s.Name)
	}
	return nil
}

func (fakeCompiler) Compile(gen uint8, mirrors []CompileMirror, b Bridge) (Program, error) {
	c := func(id uint32, sel int) uint64 {
		return fakeCookies.App | uint64(gen)<<48 | uint64(id)<<16 | uint64(sel)
	}
	prog := Program{Missing: map[string][]string{}}
	prog.Flows = append(prog.Flows, FlowEntry{Table: 0, Priority: 0, Cookie: c(0, 0), Match: "",
		Flow: fakeFlow{fmt.Sprintf("cookie=%#x, table=0, priority=0 actions=NORMAL", c(0, 0)), "NORMAL"}})
	selOf := map[uint64]fakeSel{}
	for _, m := range mirrors {
		missing := func(p string) bool {
			pf, ok := b.Ports[p]
			if !ok || pf.OFPort == 0 {
				if !slices.Contains(prog.Missing[m.Spec.Name], p) {
					prog.Missing[m.Spec.Name] = append(prog.Missing[m.Spec.Name], p)
				}
				return true
			}
			return false
		}
		out := "output:NONE"
		if p := m.Spec.Output.Port; p != "" {
			if missing(p) {
				continue
			}
			out = fmt.Sprintf("output:%d", b.Ports[p].OFPort)
			if op := b.Ports[p]; op.Tag != 0 && !op.Isolated {
				out = fmt.Sprintf("strip_vlan(access %d),output:%d", op.Tag, op.OFPort)
			}
		} else if m.Spec.Output.VLAN != 0 {
			out = fmt.Sprintf("push_vlan:0x8100,set_field:%d->vlan_vid,NORMAL", m.Spec.Output.VLAN|0x1000)
		}
		type sel struct {
			port string
			dir  api.Direction
		}
		var sels []sel
		for _, p := range m.Spec.Ports {
			sels = append(sels, sel{p, api.DirIngress}, sel{p, api.DirEgress})
		}
		for _, p := range m.Spec.Ingress {
			sels = append(sels, sel{p, api.DirIngress})
		}
		for _, p := range m.Spec.Egress {
			sels = append(sels, sel{p, api.DirEgress})
		}
		for i, s := range sels {
			if missing(s.port) {
				continue
			}
			field := "in_port"
			if s.dir == api.DirEgress {
				field = "reg1"
			}
			match := fmt.Sprintf("reg0=%d,%s=%d", m.ID, field, b.Ports[s.port].OFPort)
			ck := c(m.ID, i+1)
			prog.Flows = append(prog.Flows, FlowEntry{Table: 1, Priority: 100, Cookie: ck, Match: match,
				Flow:   fakeFlow{fmt.Sprintf("cookie=%#x, table=1, priority=100,%s actions=%s", ck, match, out), out},
				Mirror: m.Spec.Name})
			selOf[ck] = fakeSel{m.Spec.Name, s.port, s.dir}
		}
	}
	for k := range prog.Missing {
		sort.Strings(prog.Missing[k])
	}
	flows := prog.Flows
	prog.Count = func(stats []FlowStat) map[string]api.MirrorStats {
		out := map[string]api.MirrorStats{}
		for _, st := range stats {
			for _, f := range flows {
				sel, ok := selOf[f.Cookie]
				if !ok || f.Cookie != st.Cookie || f.Table != st.Table {
					continue
				}
				ms := out[sel.mirror]
				ms.Packets += st.Packets
				ms.Bytes += st.Bytes
				i := slices.IndexFunc(ms.Selections, func(s api.SelectionStats) bool { return s.Port == sel.port && s.Direction == sel.dir })
				if i < 0 {
					ms.Selections = append(ms.Selections, api.SelectionStats{Port: sel.port, Direction: sel.dir})
					i = len(ms.Selections) - 1
				}
				ms.Selections[i].Packets += st.Packets
				ms.Selections[i].Bytes += st.Bytes
				out[sel.mirror] = ms
			}
		}
		for k, ms := range out {
			slices.SortFunc(ms.Selections, func(a, b api.SelectionStats) int {
				return strings.Compare(a.Port+string(a.Direction), b.Port+string(b.Direction))
			})
			out[k] = ms
		}
		return out
	}
	return prog, nil
}

type fakeFlow struct{ text, actions string }

func (f fakeFlow) String() string      { return f.text }
func (f fakeFlow) ActionsText() string { return f.actions }

type fakeSel struct {
	mirror, port string
	dir          api.Direction
}

// fakeSwitch is a flow table.
type fakeSwitch struct {
	mu      sync.Mutex
	flows   map[flowKey]FlowEntry
	applies []Changes
	failErr error             // next Apply fails with this
	packets map[uint64]uint64 // per cookie
	// resurrect goes back in right after the next Apply that deletes by
	// cookie (a learned flow ovs-vswitchd inserts as the bundle commits).
	resurrect []FlowEntry
	// onStats, if set, runs (without the lock) before FlowStats answers.
	onStats func(cookie, mask uint64)
}

func newFakeSwitch() *fakeSwitch {
	return &fakeSwitch{flows: map[flowKey]FlowEntry{}, packets: map[uint64]uint64{}}
}

func (s *fakeSwitch) Apply(_ context.Context, ch Changes) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		err := s.failErr
		s.failErr = nil
		return err
	}
	s.applies = append(s.applies, ch)
	for _, f := range ch.Delete {
		if old, ok := s.flows[f.key()]; ok && old.Cookie == f.Cookie {
			delete(s.flows, f.key())
		}
	}
	for _, f := range ch.Modify {
		if old, ok := s.flows[f.key()]; ok && old.Cookie == f.Cookie {
			s.flows[f.key()] = f
		}
	}
	for _, f := range ch.Add {
		s.flows[f.key()] = f
	}
	for _, cm := range ch.DeleteCookies {
		for k, f := range s.flows {
			if f.Cookie&cm.Mask == cm.Cookie&cm.Mask {
				delete(s.flows, k)
			}
		}
	}
	if len(ch.DeleteCookies) > 0 {
		for _, f := range s.resurrect {
			s.flows[f.key()] = f
		}
		s.resurrect = nil
	}
	return nil
}

func (s *fakeSwitch) FlowStats(_ context.Context, cookie, mask uint64) ([]FlowStat, error) {
	s.mu.Lock()
	hook := s.onStats
	s.mu.Unlock()
	if hook != nil {
		hook(cookie, mask)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []FlowStat
	for _, f := range s.flows {
		if f.Cookie&mask == cookie&mask {
			out = append(out, FlowStat{Table: f.Table, Priority: f.Priority, Cookie: f.Cookie,
				Packets: s.packets[f.Cookie], Bytes: 100 * s.packets[f.Cookie]})
		}
	}
	return out, nil
}

// texts returns the installed flows' text, sorted.
func (s *fakeSwitch) texts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, f := range s.flows {
		out = append(out, f.Flow.String())
	}
	sort.Strings(out)
	return out
}

func (s *fakeSwitch) numApplies() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.applies)
}

func (s *fakeSwitch) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failErr = err
}

// fakeConn is one connection to a fake switch; a reconnect is a new epoch.
type fakeConn struct {
	*fakeSwitch
	epoch int
}

// fakeController connects a fakeSwitch per dpid when a target is dialed.
type fakeController struct {
	mu        sync.Mutex
	switches  map[uint64]*fakeSwitch // all switches, by dpid
	connected map[uint64]int         // dpid → connection epoch (0 = down)
	epoch     int
	targets   map[string]uint64 // dial target → dpid
	dialed    []string
	changed   chan struct{}
}

func newFakeController() *fakeController {
	return &fakeController{switches: map[uint64]*fakeSwitch{}, connected: map[uint64]int{},
		targets: map[string]uint64{}, changed: make(chan struct{}, 1)}
}

func (c *fakeController) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *fakeController) Dial(ctx context.Context, target string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dialed = append(c.dialed, target)
	if dpid, ok := c.targets[target]; ok && c.connected[dpid] == 0 {
		c.epoch++
		c.connected[dpid] = c.epoch
		c.signal()
	}
	return nil
}

func (c *fakeController) Changed() <-chan struct{} { return c.changed }

func (c *fakeController) Switch(dpid uint64) (Switch, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.connected[dpid] == 0 {
		return nil, false
	}
	return fakeConn{c.switches[dpid], c.connected[dpid]}, true
}

// restart simulates a vswitchd restart: flows lost, a new connection.
func (c *fakeController) restart(dpid uint64) *fakeSwitch {
	c.mu.Lock()
	defer c.mu.Unlock()
	sw := newFakeSwitch()
	c.switches[dpid] = sw
	c.epoch++
	c.connected[dpid] = c.epoch
	c.signal()
	return sw
}

func (c *fakeController) setConnected(dpid uint64, up bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.connected[dpid] = 0
	if up {
		c.epoch++
		c.connected[dpid] = c.epoch
	}
	c.signal()
}

func (c *fakeController) sw(dpid uint64) *fakeSwitch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.switches[dpid]
}

// fakeOVSDB holds bridges.
type fakeOVSDB struct {
	mu         sync.Mutex
	bridges    map[string]Bridge
	takenOver  map[string]bool
	nextOF     uint32
	failCreate error
	watchers   []chan string
	log        []string // operations
}

func newFakeOVSDB() *fakeOVSDB {
	return &fakeOVSDB{bridges: map[string]Bridge{}, takenOver: map[string]bool{}, nextOF: 100}
}

func (o *fakeOVSDB) addBridge(name string, dpid uint64, ports ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := Bridge{Name: name, DatapathID: dpid, Ports: map[string]Port{}}
	for i, p := range ports {
		b.Ports[p] = Port{Name: p, OFPort: uint32(i + 1)}
	}
	o.bridges[name] = b
}

func (o *fakeOVSDB) Bridge(_ context.Context, name string) (Bridge, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b, ok := o.bridges[name]
	if !ok {
		return Bridge{}, fmt.Errorf("bridge %q: %w", name, ErrNoBridge)
	}
	b.Ports = maps.Clone(b.Ports)
	b.HandedOver = o.takenOver[name]
	return b, nil
}

func (o *fakeOVSDB) Watch(ctx context.Context) <-chan string {
	o.mu.Lock()
	defer o.mu.Unlock()
	ch := make(chan string, 100)
	o.watchers = append(o.watchers, ch)
	names := slices.Sorted(maps.Keys(o.bridges))
	for _, n := range names {
		ch <- n // like ovsdb's Initial changes
	}
	return ch
}

func (o *fakeOVSDB) notifyLocked(bridge string) {
	for _, w := range o.watchers {
		w <- bridge
	}
}

// setPort adds or renumbers a port (ofport 0 deletes it) and notifies.
func (o *fakeOVSDB) setPort(bridge, port string, ofport uint32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.bridges[bridge]
	if ofport == 0 {
		delete(b.Ports, port)
	} else {
		b.Ports[port] = Port{Name: port, OFPort: ofport}
	}
	o.notifyLocked(bridge)
}

func (o *fakeOVSDB) CreatePort(_ context.Context, bridge string, p OutputPort) (uint32, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failCreate != nil {
		return 0, o.failCreate
	}
	b, ok := o.bridges[bridge]
	if !ok {
		return 0, fmt.Errorf("bridge %q: %w", bridge, ErrNoBridge)
	}
	if _, ok := b.Ports[p.Name]; ok {
		return 0, fmt.Errorf("port %q exists", p.Name)
	}
	o.nextOF++
	typ := "internal"
	if p.Tunnel != nil {
		typ = p.Tunnel.Type
	}
	b.Ports[p.Name] = Port{Name: p.Name, OFPort: o.nextOF, Type: typ, Flowspan: true, Isolated: true}
	o.log = append(o.log, "create "+p.Name)
	return o.nextOF, nil
}

func (o *fakeOVSDB) RemovePort(_ context.Context, bridge, name string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	b, ok := o.bridges[bridge]
	if !ok {
		return nil
	}
	if p, ok := b.Ports[name]; ok && !p.Flowspan {
		return errors.New("not a flowspan port")
	}
	delete(b.Ports, name)
	o.log = append(o.log, "remove "+name)
	return nil
}

func (o *fakeOVSDB) IsolatePort(_ context.Context, bridge, name string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	p, ok := o.bridges[bridge].Ports[name]
	if !ok {
		return fmt.Errorf("port %q: not found", name)
	}
	p.Isolated = true
	o.bridges[bridge].Ports[name] = p
	o.log = append(o.log, "isolate "+name)
	return nil
}

func (o *fakeOVSDB) UnisolatePort(_ context.Context, bridge, name string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	p, ok := o.bridges[bridge].Ports[name]
	if !ok || !p.Isolated {
		return nil
	}
	p.Isolated = false
	o.bridges[bridge].Ports[name] = p
	o.log = append(o.log, "unisolate "+name)
	return nil
}

func (o *fakeOVSDB) TakeOver(_ context.Context, bridge string, isolate ...string) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, name := range isolate { // all or nothing, like one transaction
		if _, ok := o.bridges[bridge].Ports[name]; !ok {
			return "", fmt.Errorf("port %q: not found", name)
		}
	}
	entry := "takeover " + bridge
	for _, name := range isolate {
		p := o.bridges[bridge].Ports[name]
		p.Isolated = true
		o.bridges[bridge].Ports[name] = p
		entry += " isolating " + name
	}
	o.takenOver[bridge] = true
	o.log = append(o.log, entry)
	return "unix:/run/" + bridge + ".flowspan", nil
}

func (o *fakeOVSDB) Release(_ context.Context, bridge string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.takenOver, bridge)
	o.log = append(o.log, "release "+bridge)
	return nil
}

func (o *fakeOVSDB) snapshot() (map[string]Bridge, map[string]bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	bs := map[string]Bridge{}
	for k, b := range o.bridges {
		b.Ports = maps.Clone(b.Ports)
		bs[k] = b
	}
	return bs, maps.Clone(o.takenOver)
}

func (o *fakeOVSDB) isTakenOver(b string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.takenOver[b]
}

func (o *fakeOVSDB) delBridge(name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.bridges, name)
	delete(o.takenOver, name)
	o.notifyLocked(name)
}
