package ovsdb

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flowspan/flowspan/ovsdb/vswitchd"
)

// external_ids keys flowspan writes. Port and Interface rows flowspan
// created carry keyCreated; Controller rows flowspan added carry
// keyController; bridges handed over carry keyMode and the keyPrev* keys.
const (
	keyCreated       = "flowspan-created"
	keyIsolated      = "flowspan-isolated"
	keyPrevTag       = "flowspan-prev-tag"
	keyPrevVLANMode  = "flowspan-prev-vlan-mode"
	keyPrevTrunks    = "flowspan-prev-trunks"
	keyController    = "flowspan"
	keyMode          = "flowspan-mode"
	keyPrevFailMode  = "flowspan-prev-fail-mode"
	keyPrevProtocols = "flowspan-prev-protocols"
	keyPrevCtrls     = "flowspan-prev-controllers"
)

// DefaultMACAgingTime is OVS's MAC aging time when the bridge's
// other_config:mac-aging-time is unset.
const DefaultMACAgingTime = 300 * time.Second

// Bridge is what flowspan needs to know about one bridge.
type Bridge struct {
	Name string
	// UUID of the Bridge row; it changes when the bridge is re-created.
	UUID string
	// DatapathID is 0 until ovs-vswitchd has assigned it.
	DatapathID   uint64
	DatapathType string // "" (system) or "netdev"
	FailMode     string // "", "standalone" or "secure"
	Protocols    []string
	Controllers  []Controller
	// MACAgingTime is other_config:mac-aging-time, DefaultMACAgingTime
	// when unset.
	MACAgingTime time.Duration
	// Ports by name, the bridge's local port included.
	Ports map[string]Port
	// Mode is the hand-over mode recorded by TakeOver ("service",
	// "controller") or "" when the bridge is not handed over.
	Mode string
}

// Controller is one row of the bridge's controller column.
type Controller struct {
	Target    string
	Connected bool
	// Flowspan is true for the controller TakeOver added.
	Flowspan bool
}

// Port is one port of a bridge.
type Port struct {
	Name string
	// OFPort is the OpenFlow port number of the port's interface; 0 while
	// ovs-vswitchd has not assigned one, and for bonds (see Interfaces).
	OFPort uint32
	// Error is Interface.error when ovs-vswitchd failed to create the
	// interface (its ofport is then -1 and OFPort 0).
	Error string
	// Type is the interface type: "" (system), internal, gre, vxlan, ...
	Type     string
	Tag      uint16 // access VLAN; 0 = none
	Trunks   []uint16
	VLANMode string // "" (implicit), access, trunk, native-tagged, native-untagged, ...
	// MAC is the interface's external_ids:attached-mac, nil when unset.
	MAC net.HardwareAddr
	// Flowspan is true for ports flowspan created (RemovePort removes only those).
	Flowspan bool
	// Isolated is true when IsolatePort changed this port.
	Isolated bool
	// Interfaces lists every interface of the port (one, except bonds).
	Interfaces []Interface

	adminUp bool
	ifUUID  string
}

// Interface is one interface of a port.
type Interface struct {
	Name   string
	OFPort uint32 // 0 = not assigned (yet)
	Type   string
}

// view is one read of the cached tables.
type view struct {
	bridges map[string]*vswitchd.Bridge // by name
	ports   map[string]*vswitchd.Port   // by UUID
	ifaces  map[string]*vswitchd.Interface
	ctrls   map[string]*vswitchd.Controller
}

// read waits until connected and reads the cached tables.
func (c *Client) read(ctx context.Context) (*view, error) {
	if err := c.waitUp(ctx); err != nil {
		return nil, err
	}
	var (
		brs []vswitchd.Bridge
		pts []vswitchd.Port
		ifs []vswitchd.Interface
		cts []vswitchd.Controller
	)
	for _, l := range []any{&brs, &pts, &ifs, &cts} {
		if err := c.ovs.List(ctx, l); err != nil {
			return nil, fmt.Errorf("ovsdb %s: read cache: %w", c.endpoint, err)
		}
	}
	v := &view{
		bridges: make(map[string]*vswitchd.Bridge, len(brs)),
		ports:   make(map[string]*vswitchd.Port, len(pts)),
		ifaces:  make(map[string]*vswitchd.Interface, len(ifs)),
		ctrls:   make(map[string]*vswitchd.Controller, len(cts)),
	}
	for i := range brs {
		v.bridges[brs[i].Name] = &brs[i]
	}
	for i := range pts {
		v.ports[pts[i].UUID] = &pts[i]
	}
	for i := range ifs {
		v.ifaces[ifs[i].UUID] = &ifs[i]
	}
	for i := range cts {
		v.ctrls[cts[i].UUID] = &cts[i]
	}
	return v, nil
}

// portByName finds a port of bridge br by name.
func (v *view) portByName(br *vswitchd.Bridge, name string) *vswitchd.Port {
	for _, u := range br.Ports {
		if p := v.ports[u]; p != nil && p.Name == name {
			return p
		}
	}
	return nil
}

// portAnywhere reports the bridge holding a port or interface named name.
func (v *view) portAnywhere(name string) (bridge string, ok bool) {
	for _, br := range v.bridges {
		for _, u := range br.Ports {
			p := v.ports[u]
			if p == nil {
				continue
			}
			if p.Name == name {
				return br.Name, true
			}
			for _, iu := range p.Interfaces {
				if i := v.ifaces[iu]; i != nil && i.Name == name {
					return br.Name, true
				}
			}
		}
	}
	return "", false
}

func (v *view) facts(br *vswitchd.Bridge) Bridge {
	b := Bridge{
		Name:         br.Name,
		UUID:         br.UUID,
		DatapathType: br.DatapathType,
		MACAgingTime: DefaultMACAgingTime,
		Ports:        make(map[string]Port, len(br.Ports)),
		Mode:         br.ExternalIDs[keyMode],
	}
	if br.DatapathID != nil {
		if id, err := strconv.ParseUint(*br.DatapathID, 16, 64); err == nil {
			b.DatapathID = id
		}
	}
	if br.FailMode != nil {
		b.FailMode = string(*br.FailMode)
	}
	for _, p := range br.Protocols {
		b.Protocols = append(b.Protocols, string(p))
	}
	sort.Strings(b.Protocols)
	if s, ok := br.OtherConfig["mac-aging-time"]; ok {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			b.MACAgingTime = time.Duration(n) * time.Second
		}
	}
	for _, u := range br.Controller {
		if ct := v.ctrls[u]; ct != nil {
			_, ours := ct.ExternalIDs[keyController]
			b.Controllers = append(b.Controllers, Controller{Target: ct.Target, Connected: ct.IsConnected, Flowspan: ours})
		}
	}
	sort.Slice(b.Controllers, func(i, j int) bool { return b.Controllers[i].Target < b.Controllers[j].Target })
	for _, u := range br.Ports {
		p := v.ports[u]
		if p == nil {
			continue
		}
		b.Ports[p.Name] = v.portFacts(p)
	}
	return b
}

func (v *view) portFacts(p *vswitchd.Port) Port {
	pf := Port{Name: p.Name}
	if p.Tag != nil && *p.Tag > 0 && *p.Tag < 4096 {
		pf.Tag = uint16(*p.Tag)
	}
	for _, t := range p.Trunks {
		if t >= 0 && t < 4096 {
			pf.Trunks = append(pf.Trunks, uint16(t))
		}
	}
	slices.Sort(pf.Trunks)
	if p.VLANMode != nil {
		pf.VLANMode = string(*p.VLANMode)
	}
	_, pf.Flowspan = p.ExternalIDs[keyCreated]
	_, pf.Isolated = p.ExternalIDs[keyIsolated]
	for _, iu := range p.Interfaces {
		ifc := v.ifaces[iu]
		if ifc == nil {
			continue
		}
		in := Interface{Name: ifc.Name, Type: ifc.Type}
		if ifc.Ofport != nil && *ifc.Ofport > 0 {
			in.OFPort = uint32(*ifc.Ofport)
		}
		pf.Interfaces = append(pf.Interfaces, in)
		if len(p.Interfaces) == 1 {
			pf.OFPort = in.OFPort
			pf.Type = ifc.Type
			pf.ifUUID = ifc.UUID
			if ifc.Error != nil {
				pf.Error = *ifc.Error
			}
			if s := ifc.ExternalIDs["attached-mac"]; s != "" {
				if mac, err := net.ParseMAC(s); err == nil {
					pf.MAC = mac
				}
			}
			pf.adminUp = ifc.AdminState != nil && *ifc.AdminState == vswitchd.InterfaceAdminStateUp
		}
	}
	sort.Slice(pf.Interfaces, func(i, j int) bool { return pf.Interfaces[i].Name < pf.Interfaces[j].Name })
	return pf
}

// Bridge returns the facts of one bridge from the client's cache (waiting
// for a connection if there is none).
func (c *Client) Bridge(ctx context.Context, name string) (Bridge, error) {
	v, err := c.read(ctx)
	if err != nil {
		return Bridge{}, fmt.Errorf("bridge %q: %w", name, err)
	}
	br := v.bridges[name]
	if br == nil {
		return Bridge{}, fmt.Errorf("bridge %q: %w", name, ErrNotFound)
	}
	return v.facts(br), nil
}

// Bridges returns the names of all bridges, sorted.
func (c *Client) Bridges(ctx context.Context) ([]string, error) {
	v, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(v.bridges)), nil
}

// Sync returns once the client's cache holds every change committed to the
// database before the call, e.g. a port that ovs-vsctl added a moment ago
// and whose update is still on its way. ovsdb-server sends a session's
// pending monitor updates before it reads the session's next request, and
// libovsdb applies updates in the order they arrive, so the reply to an
// echo comes after them.
func (c *Client) Sync(ctx context.Context) error {
	if err := c.waitUp(ctx); err != nil {
		return err
	}
	if err := c.ovs.Echo(ctx); err != nil {
		return fmt.Errorf("ovsdb %s: sync: %w", c.endpoint, err)
	}
	return nil
}

// WaitOFPort waits until ovs-vswitchd has assigned an OpenFlow port number
// to the port's interface and returns it. It fails when the interface
// failed (ErrPortFailed, with Interface.error), when the port does not
// exist on the bridge (ErrNotFound), or at the earlier of ctx's deadline
// and Config.OFPortTimeout.
func (c *Client) WaitOFPort(ctx context.Context, bridge, port string) (uint32, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.OFPortTimeout)
	defer cancel()
	ch, unsub := c.w.notifier()
	defer unsub()
	for {
		v, err := c.read(ctx)
		if err != nil {
			return 0, fmt.Errorf("bridge %q: port %q: %w", bridge, port, err)
		}
		br := v.bridges[bridge]
		if br == nil {
			return 0, fmt.Errorf("bridge %q: %w", bridge, ErrNotFound)
		}
		p := v.portByName(br, port)
		if p == nil {
			return 0, fmt.Errorf("bridge %q: port %q: %w", bridge, port, ErrNotFound)
		}
		pf := v.portFacts(p)
		if len(p.Interfaces) != 1 {
			return 0, fmt.Errorf("bridge %q: port %q: has %d interfaces, want 1: %w", bridge, port, len(p.Interfaces), ErrInvalid)
		}
		if pf.OFPort > 0 {
			return pf.OFPort, nil
		}
		if pf.Error != "" {
			return 0, fmt.Errorf("bridge %q: port %q: %w: %s", bridge, port, ErrPortFailed, pf.Error)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, fmt.Errorf("bridge %q: port %q: no ofport assigned: %w", bridge, port, ctx.Err())
		case <-c.closed:
			return 0, fmt.Errorf("bridge %q: port %q: %w", bridge, port, ErrClosed)
		}
	}
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

func splitInts(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}
