package flowspan

import (
	"context"
	"errors"
	"time"

	"github.com/flowspan/flowspan/api"
)

// The Manager talks to OVSDB and to switches only through the small
// interfaces below (defined here, at the consumer). NewOVSDB and
// NewController adapt the real ovsdb and ofctrl packages; tests use fakes.

// ErrNoBridge is returned (wrapped) by BridgeReader.Bridge when OVSDB has no
// such bridge.
var ErrNoBridge = errors.New("no such bridge")

// ErrConflict is wrapped by Program.Inactive errors of mirrors that cannot
// be installed together with the others (e.g. their output is selected by
// another mirror). Adding such a mirror is rejected.
var ErrConflict = errors.New("conflicts with another mirror")

// Bridge is what the Manager needs to know about one OVS bridge.
type Bridge struct {
	Name       string
	DatapathID uint64
	// Ports by name. OFPort 0 means OVS has not assigned one (yet).
	Ports        map[string]Port
	MACAgingTime time.Duration
	// HandedOver is true when OVSDB records that flowspan took the bridge
	// over (possibly a previous run).
	HandedOver bool
	// Unseeded is set by the Manager, not read from OVSDB: compile for a
	// shadow MAC table not seeded yet (flows.BridgeFacts.Unseeded).
	Unseeded bool
}

// Port is one port of a bridge (its single interface).
type Port struct {
	Name     string
	OFPort   uint32
	Type     string // "", "internal", "gre", ...
	Tag      uint16 // access VLAN, 0 = none
	Trunks   []uint16
	VLANMode string
	// Flowspan is true for ports flowspan created.
	Flowspan bool
	// Isolated is true when flowspan set the port's VLAN config to keep
	// NORMAL from forwarding to it (an output port).
	Isolated bool
}

// BridgeReader reads bridge facts from OVSDB and reports changes.
type BridgeReader interface {
	// Bridge returns the facts of bridge name; an error wrapping ErrNoBridge
	// if there is none.
	Bridge(ctx context.Context, name string) (Bridge, error)
	// Watch returns a channel that receives the name of each bridge whose
	// facts (ports, ofports, VLAN config, datapath id) changed, and "" when
	// the connection was re-established (every bridge may have changed). It
	// is closed when ctx ends.
	Watch(ctx context.Context) <-chan string
}

// OutputPort describes a port flowspan creates for a mirror output.
type OutputPort struct {
	Name string
	// Tunnel is nil for an internal port.
	Tunnel *TunnelSpec
}

// TunnelSpec is a tunnel port's type and options.
type TunnelSpec struct {
	Type       string // gre, erspan, vxlan, geneve
	Remote     string
	Key        uint32
	ERSPANVer  uint8
	ERSPANIdx  uint32
	ERSPANDir  uint8
	ERSPANHwID uint8
}

// PortManager creates and removes flowspan's output ports.
type PortManager interface {
	// CreatePort creates p on bridge (marked as flowspan's), isolates it from
	// NORMAL forwarding and waits until OVS assigned its ofport.
	CreatePort(ctx context.Context, bridge string, p OutputPort) (ofport uint32, err error)
	// RemovePort removes a port flowspan created. Removing a port that is
	// already gone is not an error.
	RemovePort(ctx context.Context, bridge, name string) error
	// IsolatePort keeps NORMAL from forwarding or flooding to an existing
	// port used as an output (its VLAN settings are recorded);
	// UnisolatePort restores them.
	IsolatePort(ctx context.Context, bridge, name string) error
	UnisolatePort(ctx context.Context, bridge, name string) error
}

// Handover points a bridge at flowspan and back.
type Handover interface {
	// TakeOver adds flowspan's controller target to bridge and returns the
	// target the controller must dial ("" when the switch connects to
	// flowspan's listener, in controller mode).
	// Ports in isolate are isolated from NORMAL (as by IsolatePort) in the
	// same change, so the switch is reconfigured once.
	TakeOver(ctx context.Context, bridge string, isolate ...string) (dial string, err error)
	// Release restores the bridge's previous controllers and fail mode.
	Release(ctx context.Context, bridge string) error
}

// OVSDB is everything the Manager needs from OVSDB.
type OVSDB interface {
	BridgeReader
	PortManager
	Handover
}

// FlowStat is the counters of one installed flow.
type FlowStat struct {
	Table    uint8
	Priority uint16
	Cookie   uint64
	Packets  uint64
	Bytes    uint64
}

// Switch is a connected switch.
type Switch interface {
	// Apply sends changes in one bundle: all or nothing.
	Apply(ctx context.Context, changes Changes) error
	// FlowStats returns the flows whose cookie matches cookie under mask.
	FlowStats(ctx context.Context, cookie, mask uint64) ([]FlowStat, error)
}

// Controller is the OpenFlow side: it connects to switches.
type Controller interface {
	// Dial connects to target in the background, reconnecting until ctx
	// ends. It fails only for an invalid target.
	Dial(ctx context.Context, target string) error
	// Changed receives a value (coalesced, never blocking the controller)
	// after a switch connected or disconnected.
	Changed() <-chan struct{}
	// Switch returns the current connection to the switch with dpid, or
	// false. Values compare equal (==) only for the same connection: a
	// reconnect yields a different value, which triggers a full sync.
	Switch(dpid uint64) (Switch, bool)
}

// PortIsolator is an optional capability of a Controller: keeping NORMAL
// away from a port at once, over OpenFlow, instead of after ovs-vswitchd
// applied an OVSDB change. The Manager uses it to start a mirror's copies
// to a new output port before the port's OVSDB isolation (which persists
// across restarts) is applied.
type PortIsolator interface {
	// IsolateNow makes the port with number ofport on the switch dpid,
	// reachable at target (the switch's passive listener), stop receiving
	// NORMAL's floods and drop what it receives, and returns once the
	// switch applied that. Isolation.Undo restores the port's previous
	// settings and must be called exactly once. With count, the port's
	// receive count is read too, in the same round trip
	// (Isolation.RxPackets).
	IsolateNow(ctx context.Context, target string, dpid uint64, ofport uint32, count bool) (Isolation, error)
	// PrepareIsolation may set up, in the background, what IsolateNow
	// will need for the switch at target, so that it costs one round trip.
	PrepareIsolation(target string, dpid uint64)
}

// Isolation is a port isolated by PortIsolator.IsolateNow.
type Isolation struct {
	Undo func(context.Context) error
	// RxPackets (when counted) is how many packets the port had received
	// once isolated (NORMAL learns nothing from later ones): none means
	// NORMAL's MAC table has no entry on it but static ones. RxErr says why
	// it is not known.
	RxPackets uint64
	RxErr     error
}

// Syncer is an optional capability of an OVSDB backend whose reads come
// from a cache: Sync returns once the cache holds everything committed
// before the call. The Manager syncs before it reports a bridge or port as
// missing, so that a port added by ovs-vsctl just before a flowspan command
// is found.
type Syncer interface {
	Sync(ctx context.Context) error
}

// Management is an optional capability of an OVSDB backend: the OpenFlow
// target of a bridge's built-in management listener (Open vSwitch's
// <rundir>/<bridge>.mgmt socket, which every bridge has). The Manager
// programs the first mirror on a bridge through it while its own controller
// target is being set up. "" when there is none, or when it cannot be used
// that way (controller mode: gaining a primary controller makes OVS flush
// the flow table).
type Management interface {
	ManagementTarget(bridge string) string
}

// SessionDialer is an optional capability of a Controller: a private
// connection to the switch listening at target, which must have datapath id
// dpid (else it is an error), used only by its caller until it calls
// closeFn (which it must). The dialer may keep the connection for a later
// DialSession; ctx bounds the dial.
type SessionDialer interface {
	DialSession(ctx context.Context, target string, dpid uint64) (sw Switch, closeFn func(), err error)
}

// Liveness is an optional capability of a Switch: whether its connection
// is still up.
type Liveness interface {
	Connected() bool
}

// Compiler turns mirror specs and bridge facts into flows. NewFlowsCompiler
// adapts the flows package. It must be pure and deterministic.
type Compiler interface {
	// Check validates what can be checked without bridge facts: selection,
	// filter syntax, snaplen, output shape. Errors name the problem.
	Check(spec api.MirrorSpec) error
	// Compile returns the flows of all mirrors of one bridge, tagged with
	// generation gen. Mirrors whose ports are missing are compiled without
	// them and reported in Program.Missing.
	Compile(gen uint8, mirrors []CompileMirror, b Bridge) (Program, error)
	// Cookies describes the cookie layout.
	Cookies() CookieLayout
	// Restore returns the flows to install when flowspan leaves a bridge,
	// in the same bundle that deletes its flows: what its flows replaced
	// (the bridge's default "priority=0 actions=NORMAL" in a standalone
	// pipeline). They must not carry a flowspan cookie.
	Restore() []FlowEntry
}

// CompileMirror is one mirror handed to the compiler.
type CompileMirror struct {
	// ID is stable for the mirror's lifetime on its bridge (cookie bits).
	ID   uint32
	Spec api.MirrorSpec
}

// Program is a compiled bridge.
type Program struct {
	Flows []FlowEntry
	// Missing lists, per mirror name, the ports it names that the bridge
	// lacks (or that have no ofport yet).
	Missing map[string][]string
	// Inactive says, per mirror name, why a mirror has no flows at all
	// (output port missing, conflict with another mirror).
	Inactive map[string]error
	// Count turns flow statistics of this program's generation into
	// per-mirror counters, by mirror name.
	Count func(stats []FlowStat) map[string]api.MirrorStats
}

// Flow is a compiler's flow value.
type Flow interface {
	// String renders the flow in ovs-ofctl -O OpenFlow13 add-flow syntax.
	String() string
	// ActionsText renders only its actions; flows with the same table,
	// priority, match and cookie but other actions are modified in place.
	ActionsText() string
}

// FlowEntry is one flow as the Manager tracks it.
type FlowEntry struct {
	Table    uint8
	Priority uint16
	Cookie   uint64
	// Match is a comparable value identifying the flow's match (the
	// compiler's match value or its text); with Table and Priority it
	// identifies the flow on the switch.
	Match any
	// Mirror names the mirror the flow belongs to ("" for shared flows).
	Mirror string
	// Flow is the compiler's own flow value, for the switch adapter.
	Flow Flow
}

// sameActions compares two flows' actions, through SameActions(Flow) bool
// when the flow type has it (cheaper than rendering text).
func sameActions(a, b Flow) bool {
	if s, ok := a.(interface{ SameActions(Flow) bool }); ok {
		return s.SameActions(b)
	}
	return a.ActionsText() == b.ActionsText()
}

type flowKey struct {
	table uint8
	prio  uint16
	match any
}

func (f FlowEntry) key() flowKey { return flowKey{f.Table, f.Priority, f.Match} }

// CookieLayout says which cookie bits mark flowspan flows and which hold the
// generation.
type CookieLayout struct {
	// App and AppMask match every flowspan flow.
	App, AppMask uint64
	// GenShift and GenMask locate the generation: (cookie>>GenShift)&GenMask.
	GenShift uint
	GenMask  uint64
	// Learned, when not 0, is the cookie of the MAC-table flows learned on
	// port 0 (by the learn action or seeded); with an ofport ORed into its
	// low bits it is exactly that port's (see LearnedMatch).
	Learned uint64
	// DropSeeds, when not 0, is the cookie of the MAC-table seeds of
	// output port 0 (entries NORMAL learned on a port before it became an
	// output: it drops packets to them); with an ofport ORed into its low
	// bits it is exactly that port's (see DropSeedsMatch).
	DropSeeds uint64
}

// LearnedMatch matches exactly the MAC-table flows learned on ofport;
// false when the compiler keeps no MAC table.
func (c CookieLayout) LearnedMatch(ofport uint32) (CookieMatch, bool) {
	if c.Learned == 0 {
		return CookieMatch{}, false
	}
	return CookieMatch{Cookie: c.Learned | uint64(ofport), Mask: ^uint64(0)}, true
}

// DropSeedsMatch matches exactly the MAC-table seeds of output port
// ofport; false when the compiler keeps no MAC table.
func (c CookieLayout) DropSeedsMatch(ofport uint32) (CookieMatch, bool) {
	if c.DropSeeds == 0 {
		return CookieMatch{}, false
	}
	return CookieMatch{Cookie: c.DropSeeds | uint64(ofport), Mask: ^uint64(0)}, true
}

// Generation extracts the generation from cookie.
func (c CookieLayout) Generation(cookie uint64) uint8 {
	return uint8((cookie >> c.GenShift) & c.GenMask)
}

// Generation 0 is never compiled: flows with it (learned MAC flows) survive
// generation swaps.

// GenerationMatch returns the cookie and mask matching every flowspan flow
// of generation gen.
func (c CookieLayout) GenerationMatch(gen uint8) (cookie, mask uint64) {
	return c.App | uint64(gen)<<c.GenShift, c.AppMask | c.GenMask<<c.GenShift
}

// CookieMatch selects flows by cookie under mask.
type CookieMatch struct {
	Cookie, Mask uint64
}

// Changes is one atomic update of a switch's flow table, sent in this
// order: strict deletes, modifies, adds, cookie deletes.
type Changes struct {
	// Delete removes flows strictly (table, priority, match, cookie).
	Delete []FlowEntry
	// Modify changes the actions of installed flows with the same table,
	// priority, match and cookie (counters are kept).
	Modify []FlowEntry
	// Add installs flows (replacing any flow with the same table, priority
	// and match).
	Add []FlowEntry
	// DeleteCookies removes, in every table, the flows matching each cookie.
	DeleteCookies []CookieMatch
}

// Empty reports whether c changes nothing.
func (c Changes) Empty() bool {
	return len(c.Add) == 0 && len(c.Modify) == 0 && len(c.Delete) == 0 && len(c.DeleteCookies) == 0
}

// diff returns the minimal changes turning installed into desired: new flows
// are added, flows whose actions changed modified (counters kept), flows
// whose cookie changed replaced (OpenFlow 1.3 modify keeps the cookie),
// vanished ones deleted.
//
// The compiler is deterministic, so a change to one mirror leaves the other
// flows in the same order: pairs with the same key at the same position,
// from the front and from the back, are compared directly (a changed shared
// flow is modified in place) and only the rest goes through the maps. Keys
// are unique within each list, so a flow paired on one side cannot
// reappear in the other side's rest.
func diff(installed, desired []FlowEntry) Changes {
	var ch Changes
	pair := func(old, f FlowEntry) bool {
		if old.Table != f.Table || old.Priority != f.Priority || old.Match != f.Match {
			return false
		}
		switch {
		case old.Cookie != f.Cookie:
			ch.Delete = append(ch.Delete, old)
			ch.Add = append(ch.Add, f)
		case !sameActions(old.Flow, f.Flow):
			ch.Modify = append(ch.Modify, f)
		}
		return true
	}
	for len(installed) > 0 && len(desired) > 0 && pair(installed[0], desired[0]) {
		installed, desired = installed[1:], desired[1:]
	}
	for len(installed) > 0 && len(desired) > 0 && pair(installed[len(installed)-1], desired[len(desired)-1]) {
		installed, desired = installed[:len(installed)-1], desired[:len(desired)-1]
	}
	if len(installed) == 0 {
		ch.Add = append(ch.Add, desired...)
		return ch
	}
	have := make(map[flowKey]FlowEntry, len(installed))
	for _, f := range installed {
		have[f.key()] = f
	}
	want := make(map[flowKey]bool, len(desired))
	for _, f := range desired {
		k := f.key()
		want[k] = true
		old, ok := have[k]
		switch {
		case !ok:
			ch.Add = append(ch.Add, f)
		case old.Cookie != f.Cookie:
			ch.Delete = append(ch.Delete, old)
			ch.Add = append(ch.Add, f)
		case !sameActions(old.Flow, f.Flow):
			ch.Modify = append(ch.Modify, f)
		}
	}
	for _, f := range installed {
		if !want[f.key()] {
			ch.Delete = append(ch.Delete, f)
		}
	}
	return ch
}

// ErrNoMACTable is wrapped by MACTableReader errors when the bridge's MAC
// learning table cannot be read at all from here (a remote OVS: no
// ovs-appctl control socket).
var ErrNoMACTable = errors.New("MAC learning table not readable")

// MACTableReader reads the MAC learning table of a bridge's NORMAL action.
// NewOVSDB's adapter implements it for a local unix: endpoint
// (AppctlMACTable); tests use fakes.
type MACTableReader interface {
	// FDBShow returns the output of `ovs-appctl fdb/show bridge`.
	FDBShow(ctx context.Context, bridge string) (string, error)
}

// StaticMACCounter is an optional capability of a MACTableReader: how many
// static entries (`ovs-appctl fdb/add`) the bridge's MAC table holds. Such
// entries do not come from packets a port received.
type StaticMACCounter interface {
	StaticMACs(ctx context.Context, bridge string) (int, error)
}

// GatedApplier is an optional capability of a Switch: Apply whose commit
// waits for gate (called once the switch took the whole bundle); when gate
// fails nothing changes and its error is returned.
type GatedApplier interface {
	ApplyGated(ctx context.Context, changes Changes, gate func(context.Context) error) error
}

// gatedSwitch is a Switch whose changes commit only once gate allows:
// overlapping the transfer with the gate where the switch can
// (GatedApplier), else waiting for the gate first.
type gatedSwitch struct {
	Switch
	gate func(context.Context) error
}

func (g gatedSwitch) Apply(ctx context.Context, ch Changes) error {
	if ga, ok := g.Switch.(GatedApplier); ok {
		return ga.ApplyGated(ctx, ch, g.gate)
	}
	if err := g.gate(ctx); err != nil {
		return err
	}
	return g.Switch.Apply(ctx, ch)
}

// MACSeeder is implemented by compilers whose pipeline keeps a shadow MAC
// table (NewFlowsCompiler). At a full sync the Manager seeds it from the
// bridge's own MAC table so that egress to hosts NORMAL already knows is
// not predicted as a flood until they send again.
type MACSeeder interface {
	// MACSeeds returns the flows seeding the shadow MAC table from fdbShow
	// (ovs-appctl fdb/show output) for mirrors on b, in two parts: now,
	// the entries without which some copy would differ from NORMAL's
	// forwarding (installed with the pipeline, in its bundle), and later,
	// which makes the rest (installed right after, before any other
	// change; made only then, to keep it off the pipeline's path). They
	// are learned-flow entries (generation 0, expiring like the bridge's
	// entries): the Manager installs them once and does not track them.
	MACSeeds(mirrors []CompileMirror, b Bridge, fdbShow string) (now []FlowEntry, later func() ([]FlowEntry, error), err error)
}
