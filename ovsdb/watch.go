package ovsdb

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// ChangeKind says what changed about a bridge; several kinds may be set
// in one Change.
type ChangeKind uint32

const (
	// Initial: the bridge existed when Watch was called (or when the
	// first connection came up).
	Initial ChangeKind = 1 << iota
	BridgeAdded
	BridgeRemoved
	// BridgeRecreated: a bridge of the same name replaced the old one
	// (new row; ofports are new too).
	BridgeRecreated
	// BridgeChanged: datapath ID or type, fail mode, protocols,
	// controllers, MAC aging time or hand-over mode changed.
	BridgeChanged
	PortAdded
	PortRemoved
	// PortRenumbered: a port's ofport changed (assigned, or a new number
	// after the port was deleted and re-added).
	PortRenumbered
	// PortVLANChanged: tag, trunks or vlan_mode changed.
	PortVLANChanged
	// PortChanged: interface type, MAC, error, flowspan marks, or the
	// interface row was replaced.
	PortChanged
)

var kindNames = []string{"initial", "bridge-added", "bridge-removed", "bridge-recreated", "bridge-changed",
	"port-added", "port-removed", "port-renumbered", "port-vlan-changed", "port-changed"}

func (k ChangeKind) String() string {
	var s []string
	for i, n := range kindNames {
		if k&(1<<i) != 0 {
			s = append(s, n)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "|")
}

// Change reports that a bridge's facts changed. Read the new facts with
// Client.Bridge (they may have changed again since).
type Change struct {
	Bridge string
	Kind   ChangeKind
	// Ports names the ports concerned by port kinds, sorted.
	Ports []string
}

func (ch *Change) merge(o Change) {
	ch.Kind |= o.Kind
	for _, p := range o.Ports {
		if !slices.Contains(ch.Ports, p) {
			ch.Ports = append(ch.Ports, p)
		}
	}
	sort.Strings(ch.Ports)
}

type watchState struct {
	mu        sync.Mutex
	snap      map[string]Bridge
	valid     bool
	subs      map[*subscriber]struct{}
	notifiers map[chan struct{}]struct{}
	linkTried map[string]time.Time // interface UUID -> last link-up attempt
}

func (w *watchState) init() {
	w.subs = make(map[*subscriber]struct{})
	w.notifiers = make(map[chan struct{}]struct{})
	w.linkTried = make(map[string]time.Time)
}

// notifier returns a channel signalled after every cache change.
func (w *watchState) notifier() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	w.notifiers[ch] = struct{}{}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.notifiers, ch)
		w.mu.Unlock()
	}
}

type subscriber struct {
	mu      sync.Mutex
	pending map[string]Change
	order   []string
	notify  chan struct{}
}

func (s *subscriber) add(ch Change) {
	s.mu.Lock()
	if p, ok := s.pending[ch.Bridge]; ok {
		p.merge(ch)
		s.pending[ch.Bridge] = p
	} else {
		s.pending[ch.Bridge] = ch
		s.order = append(s.order, ch.Bridge)
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *subscriber) take() []Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Change, 0, len(s.order))
	for _, b := range s.order {
		out = append(out, s.pending[b])
	}
	s.pending = make(map[string]Change)
	s.order = nil
	return out
}

// Watch returns a channel of bridge changes: port added, removed or
// renumbered, VLAN configuration changed, bridge added, removed,
// re-created or reconfigured (see ChangeKind). First it reports every
// existing bridge once with Kind Initial, so "for each change, read
// Client.Bridge and recompute" needs no separate initial read. Changes not
// yet received are merged per bridge, so a slow reader never blocks the
// client and never misses the latest state. Changes during an OVSDB outage
// are reported after the reconnect, by comparing the re-read database with
// the last state seen. The channel is closed when ctx ends or the client
// is closed.
func (c *Client) Watch(ctx context.Context) <-chan Change {
	out := make(chan Change)
	s := &subscriber{pending: make(map[string]Change), notify: make(chan struct{}, 1)}
	c.w.mu.Lock()
	if c.w.valid {
		for _, name := range sortedKeys(c.w.snap) {
			s.add(Change{Bridge: name, Kind: Initial})
		}
	}
	c.w.subs[s] = struct{}{}
	c.w.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(out)
		defer func() {
			c.w.mu.Lock()
			delete(c.w.subs, s)
			c.w.mu.Unlock()
		}()
		for {
			select {
			case <-s.notify:
			case <-ctx.Done():
				return
			case <-c.closed:
				return
			}
			for _, ch := range s.take() {
				select {
				case out <- ch:
				case <-ctx.Done():
					return
				case <-c.closed:
					return
				}
			}
		}
	}()
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// watchLoop re-reads the cache after every change notification, diffs it
// against the last state and publishes changes. It also keeps flowspan's
// internal ports up (ovs-vswitchd re-creates them down after a restart).
func (c *Client) watchLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.kick:
		case <-c.closed:
			return
		}
		c.w.mu.Lock()
		for n := range c.w.notifiers {
			select {
			case n <- struct{}{}:
			default:
			}
		}
		c.w.mu.Unlock()
		if !c.Connected() {
			continue
		}
		ctx, cancel := context.WithTimeout(c.bgCtx, 5*time.Second)
		v, err := c.read(ctx)
		cancel()
		if err != nil {
			c.log.WithError(err).Debug("watch: cache read failed")
			continue
		}
		snap := make(map[string]Bridge, len(v.bridges))
		for name, br := range v.bridges {
			snap[name] = v.facts(br)
		}
		c.publish(snap)
		c.keepLinksUp(snap)
	}
}

func (c *Client) publish(snap map[string]Bridge) {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	var changes []Change
	if !c.w.valid {
		for _, name := range sortedKeys(snap) {
			changes = append(changes, Change{Bridge: name, Kind: Initial})
		}
	} else {
		changes = diffSnapshots(c.w.snap, snap)
	}
	c.w.snap = snap
	c.w.valid = true
	for _, ch := range changes {
		c.log.WithField("bridge", ch.Bridge).WithField("change", ch.Kind.String()).
			WithField("ports", ch.Ports).Debug("bridge facts changed")
		for s := range c.w.subs {
			s.add(ch)
		}
	}
}

// diffSnapshots compares two full snapshots, bridges sorted by name.
func diffSnapshots(old, cur map[string]Bridge) []Change {
	var out []Change
	names := sortedKeys(old)
	for _, n := range sortedKeys(cur) {
		if _, ok := old[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		o, hadOld := old[n]
		b, hasNew := cur[n]
		switch {
		case !hadOld:
			out = append(out, Change{Bridge: n, Kind: BridgeAdded, Ports: sortedKeys(b.Ports)})
		case !hasNew:
			out = append(out, Change{Bridge: n, Kind: BridgeRemoved, Ports: sortedKeys(o.Ports)})
		default:
			if ch := diffBridge(o, b); ch.Kind != 0 {
				out = append(out, ch)
			}
		}
	}
	return out
}

func diffBridge(o, b Bridge) Change {
	ch := Change{Bridge: b.Name}
	if o.UUID != b.UUID {
		ch.Kind |= BridgeRecreated
	}
	if o.DatapathID != b.DatapathID || o.DatapathType != b.DatapathType || o.FailMode != b.FailMode ||
		!slices.Equal(o.Protocols, b.Protocols) || !sameControllers(o.Controllers, b.Controllers) ||
		o.MACAgingTime != b.MACAgingTime || o.Mode != b.Mode {
		ch.Kind |= BridgeChanged
	}
	var ports []string
	for name, op := range o.Ports {
		np, ok := b.Ports[name]
		if !ok {
			ch.Kind |= PortRemoved
			ports = append(ports, name)
			continue
		}
		k := diffPort(op, np)
		if k != 0 {
			ch.Kind |= k
			ports = append(ports, name)
		}
	}
	for name := range b.Ports {
		if _, ok := o.Ports[name]; !ok {
			ch.Kind |= PortAdded
			ports = append(ports, name)
		}
	}
	sort.Strings(ports)
	ch.Ports = ports
	return ch
}

func diffPort(o, n Port) ChangeKind {
	var k ChangeKind
	if o.OFPort != n.OFPort || !slices.Equal(o.Interfaces, n.Interfaces) {
		k |= PortRenumbered
	}
	if o.Tag != n.Tag || o.VLANMode != n.VLANMode || !slices.Equal(o.Trunks, n.Trunks) {
		k |= PortVLANChanged
	}
	if o.Type != n.Type || o.Error != n.Error || o.Flowspan != n.Flowspan || o.Isolated != n.Isolated ||
		o.MAC.String() != n.MAC.String() || o.ifUUID != n.ifUUID {
		k |= PortChanged
	}
	return k
}

// keepLinksUp brings flowspan's internal ports up when ovs-vswitchd reports
// them administratively down (it re-creates them down after a restart).
// Attempts per interface are at most one every 5 seconds.
func (c *Client) keepLinksUp(snap map[string]Bridge) {
	if c.cfg.SkipLinkUp {
		return
	}
	const retry = 5 * time.Second
	var later time.Duration
	for _, br := range snap {
		for _, p := range br.Ports {
			if !p.Flowspan || p.Type != "internal" || p.OFPort == 0 || p.ifUUID == "" {
				continue
			}
			c.w.mu.Lock()
			if p.adminUp {
				delete(c.w.linkTried, p.ifUUID) // a later "down" is handled at once
				c.w.mu.Unlock()
				continue
			}
			last, tried := c.w.linkTried[p.ifUUID]
			if wait := retry - time.Since(last); tried && wait > 0 {
				c.w.mu.Unlock()
				if later == 0 || wait < later {
					later = wait
				}
				continue
			}
			c.w.linkTried[p.ifUUID] = time.Now()
			c.w.mu.Unlock()
			if err := setLinkUp(c.cfg.Netns, p.Name); err != nil {
				c.log.WithError(err).WithField("bridge", br.Name).WithField("port", p.Name).
					Warn("cannot bring internal port up")
			} else {
				c.log.WithField("bridge", br.Name).WithField("port", p.Name).Info("internal port brought up")
			}
			later = retry // until ovs-vswitchd reports it up
		}
	}
	if later > 0 {
		time.AfterFunc(later, c.kickWatch)
	}
}

// sameControllers compares controller targets and ownership; connection
// state changes are not reported as changes.
func sameControllers(a, b []Controller) bool {
	return slices.EqualFunc(a, b, func(x, y Controller) bool { return x.Target == y.Target && x.Flowspan == y.Flowspan })
}
