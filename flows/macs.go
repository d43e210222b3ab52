package flows

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MACEntry is one entry of the bridge's MAC learning table (ovs-appctl
// fdb/show).
type MACEntry struct {
	Port uint32 // ofport (PortLocal for LOCAL)
	VLAN uint16
	MAC  [6]byte
	Age  time.Duration
}

// ParseFDBShow parses the output of `ovs-appctl fdb/show BRIDGE`. It is
// on the path of a first mirror on a busy bridge (thousands of entries), so
// it parses by hand instead of splitting into strings.
func ParseFDBShow(s string) ([]MACEntry, error) {
	out := make([]MACEntry, 0, strings.Count(s, "\n"))
	for i := 0; s != ""; i++ {
		var line string
		line, s, _ = strings.Cut(s, "\n")
		var f [5]string
		n := 0
		for rest := line; n < len(f); n++ {
			rest = strings.TrimLeft(rest, " \t\r")
			if rest == "" {
				break
			}
			end := strings.IndexAny(rest, " \t\r")
			if end < 0 {
				end = len(rest)
			}
			f[n], rest = rest[:end], rest[end:]
		}
		if n == 0 || (i == 0 && f[0] == "port") {
			continue
		}
		if n != 4 {
			return nil, fmt.Errorf("fdb/show line %d %q: want port, VLAN, MAC, age", i+1, line)
		}
		var e MACEntry
		if f[0] == "LOCAL" {
			e.Port = PortLocal
		} else {
			p, err := strconv.ParseUint(f[0], 10, 16)
			if err != nil {
				return nil, fmt.Errorf("fdb/show line %d: port %q: %w", i+1, f[0], err)
			}
			e.Port = uint32(p)
		}
		v, err := strconv.ParseUint(f[1], 10, 12)
		if err != nil {
			return nil, fmt.Errorf("fdb/show line %d: VLAN %q: %w", i+1, f[1], err)
		}
		e.VLAN = uint16(v)
		mac, ok := parseColonMAC(f[2])
		if !ok {
			return nil, fmt.Errorf("fdb/show line %d: MAC %q: not an Ethernet address", i+1, f[2])
		}
		e.MAC = mac
		if f[3] != "?" { // static entries show "static"; unknown ages "?"
			if age, err := strconv.Atoi(f[3]); err == nil {
				e.Age = time.Duration(age) * time.Second
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// parseColonMAC parses xx:xx:xx:xx:xx:xx (hex digits in either case).
func parseColonMAC(s string) (mac [6]byte, ok bool) {
	if len(s) != 17 {
		return mac, false
	}
	hex := func(c byte) (byte, bool) {
		switch {
		case '0' <= c && c <= '9':
			return c - '0', true
		case 'a' <= c && c <= 'f':
			return c - 'a' + 10, true
		case 'A' <= c && c <= 'F':
			return c - 'A' + 10, true
		}
		return 0, false
	}
	for i := range 6 {
		if i > 0 && s[3*i-1] != ':' {
			return mac, false
		}
		hi, ok1 := hex(s[3*i])
		lo, ok2 := hex(s[3*i+1])
		if !ok1 || !ok2 {
			return mac, false
		}
		mac[i] = hi<<4 | lo
	}
	return mac, true
}

// MACFlows seeds flowspan's shadow MAC table from the bridge's own MAC
// table, so that right after flowspan takes over a bridge that has been
// forwarding, egress is predicted like NORMAL predicts it instead of as a
// flood until every host has sent a packet. The flows have exactly the form
// the learn action writes (same table, priority, match, cookie), so
// relearning refreshes them; each expires when the bridge's entry would
// (mac-aging-time minus its age). Send them once, as plain adds, after the
// pipeline; Diff ignores them like all learned flows. Entries on ports the
// pipeline does not classify (unknown ports, dot1q-tunnel) are skipped, as
// are all entries in HostEgress mode.
//
// An entry on a mirror output port (read before the port was isolated)
// becomes egress := EgressDrop: NORMAL drops packets to a MAC learned on a
// native Mirror's output port until the entry ages out, and so does the
// pipeline (with the copies), where NORMAL itself, having forgotten the MAC
// when the port was isolated, would flood them. A packet from that MAC on
// another port relearns it there, as NORMAL would. These flows carry their
// own cookie (DropSeedCookie), not the port's learned-flow cookie: OVS
// deletes the flows a learn flow learned when that flow goes (the port's
// learn flow goes when it becomes an output). Delete them when the port
// stops being an output.
func MACFlows(cfg Config, mirrors []Mirror, facts BridgeFacts, entries []MACEntry) ([]Flow, error) {
	if cfg.HostEgress != nil {
		return nil, nil
	}
	c, plans, err := planMirrors(cfg, mirrors, facts)
	if err != nil {
		return nil, err
	}
	outputs := map[uint32]bool{}
	for _, p := range plans {
		if p.status.Active && p.outPort.Name != "" {
			outputs[p.outPort.OFPort] = true
		}
	}
	classified := map[uint32]bool{}
	for name, pf := range facts.Ports {
		if pf.OFPort != 0 && !outputs[pf.OFPort] && c.vlans[name].mode != modeDot1QTunnel {
			classified[pf.OFPort] = true
		}
	}
	aging := facts.MACAgingTime
	if aging <= 0 {
		aging = 300 * time.Second
	}
	out := make([]Flow, 0, len(entries))
	for _, e := range entries {
		egress, cookie := uint64(e.Port), LearnedCookie(e.Port)
		switch {
		case e.VLAN > 4095:
			continue
		case outputs[e.Port]:
			egress, cookie = uint64(EgressDrop), DropSeedCookie(e.Port)
		case !classified[e.Port]:
			continue
		}
		left := (aging - e.Age).Seconds()
		left = min(max(left, 1), 65535)
		out = append(out, Flow{
			Table: c.table(tMACs), Priority: seedPriority, HardTimeout: uint16(left),
			Cookie:  uint64(cookie),
			Match:   Match{}.WithReg(c.regs.Meta, uint32(e.VLAN), metaVLANMask).WithEthDst(e.MAC, allOnesMAC),
			Actions: []Action{ActLoad{c.regs.egress().Range(0, 16), egress}},
		})
	}
	return out, nil
}

// Learned MAC flows and seeds share the MAC table at different priorities,
// so that a seed never has the same match and priority as a learned flow: a
// learned flow (newer) wins the lookup, and a seed lasts no longer than one
// learned after it. With equal priorities a bundle that adds seeds while the
// learn actions are live can make ovs-vswitchd abort (seen with 3.1: it
// reads the bundle's version before it takes the lock that learning also
// takes, so a learn in between inserts an identical rule at a later
// version, and the bundle's insert finds it: classifier.c "assertion
// !displaced_rule failed in classifier_insert()").
const (
	learnedPriority = 10
	seedPriority    = 9
)

// LearnedCookie is the cookie of the MAC-table flows learned on (or seeded
// for) ofport.
func LearnedCookie(ofport uint32) Cookie { return MakeCookie(0, KindLearned, 0, ofport) }

// dropSeedBit marks, in the index field, the MAC-table seeds of an output
// port (ofports fit in 16 bits).
const dropSeedBit = 1 << 23

// DropSeedCookie is the cookie of the EgressDrop seeds for output port
// ofport (MACFlows); with all bits as the mask it deletes exactly those.
func DropSeedCookie(ofport uint32) Cookie {
	return MakeCookie(0, KindLearned, 0, dropSeedBit|ofport)
}

// planMirrors sets up a compiler for facts and plans mirrors on it.
func planMirrors(cfg Config, mirrors []Mirror, facts BridgeFacts) (*compiler, []*mirrorPlan, error) {
	c := &compiler{cfg: cfg, facts: facts, vlans: map[string]portVLAN{}, filters: map[string]Match{}}
	if err := c.setup(); err != nil {
		return nil, nil, err
	}
	plans, err := c.plan(mirrors)
	if err != nil {
		return nil, nil, err
	}
	return c, plans, nil
}

// SplitMACEntries divides MAC table entries into those the shadow MAC
// table must hold when the pipeline starts for mirrors' copies to be exact
// (now), and those whose absence changes no copy decision of these mirrors
// (later). Without its entry, a packet to MAC D is predicted as a flood in
// its VLAN v; with it, as sent to D's port X. The two give the same copies
// when, for every mirror with egress selections, the egress ports that
// carry v are X or none, and X is selected only if it carries v: a flood
// from another port is then copied exactly when a packet to X would be, and
// one from X itself (which NORMAL drops) by neither. The only difference
// is the counters: such a copy counts for the mirror's flood selection
// instead of X's egress selection.
//
// Seeding now first and later right after (two bundles) puts a new
// pipeline in place without waiting for a large MAC table to be installed;
// later entries matter again as soon as the mirrors change, so seed them
// before any other change. The split depends only on the mirrors' egress
// ports and VLANs, not on filters.
func SplitMACEntries(cfg Config, mirrors []Mirror, facts BridgeFacts, entries []MACEntry) (now, later []MACEntry, err error) {
	if cfg.HostEgress != nil {
		return nil, nil, nil
	}
	c, plans, err := planMirrors(cfg, mirrors, facts)
	if err != nil {
		return nil, nil, err
	}
	type egressPort struct {
		ofport uint32
		pv     portVLAN
	}
	var egress [][]egressPort
	for _, p := range plans {
		if !p.status.Active || len(p.egress) == 0 {
			continue
		}
		ports := make([]egressPort, len(p.egress))
		for i, eg := range p.egress {
			ports[i] = egressPort{eg.OFPort, c.vlans[eg.Name]}
		}
		egress = append(egress, ports)
	}
	outputs := map[uint32]bool{}
	for _, p := range plans {
		if p.status.Active && p.outPort.Name != "" {
			outputs[p.outPort.OFPort] = true
		}
	}
	deferrable := func(e MACEntry) bool {
		if outputs[e.Port] {
			return false // NORMAL drops these: forwarding, not only copies, depends on them
		}
		for _, ports := range egress {
			for _, eg := range ports {
				carries := eg.pv.includes(e.VLAN)
				if eg.ofport == e.Port && !carries || eg.ofport != e.Port && carries {
					return false
				}
			}
		}
		return true
	}
	for _, e := range entries {
		if deferrable(e) {
			later = append(later, e)
		} else {
			now = append(now, e)
		}
	}
	return now, later, nil
}
