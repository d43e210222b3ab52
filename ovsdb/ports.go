package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ovn-org/libovsdb/model"
	libovsdb "github.com/ovn-org/libovsdb/ovsdb"

	"github.com/flowspan/flowspan/ovsdb/vswitchd"
)

// transact runs ops as one transaction and checks every result. what
// names the object for errors. Operations whose index is in wantOne must
// have matched exactly one row (else the row vanished concurrently).
func (c *Client) transact(ctx context.Context, what string, ops []libovsdb.Operation, wantOne ...int) ([]libovsdb.OperationResult, error) {
	if err := c.waitUp(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	res, err := c.ovs.Transact(ctx, ops...)
	if err != nil {
		return nil, fmt.Errorf("%s: transact: %w", what, err)
	}
	opErrs, err := libovsdb.CheckOperationResults(res, ops)
	if err != nil {
		msgs := make([]string, 0, len(opErrs))
		for _, e := range opErrs {
			msgs = append(msgs, e.Error())
		}
		if len(msgs) == 0 {
			return nil, fmt.Errorf("%s: transaction failed: %w", what, err)
		}
		return nil, fmt.Errorf("%s: transaction failed: %s: %w", what, strings.Join(msgs, "; "), err)
	}
	for _, i := range wantOne {
		if i < len(res) && res[i].Count != 1 {
			return nil, fmt.Errorf("%s: %s %s matched %d rows (changed concurrently?): %w",
				what, ops[i].Op, ops[i].Table, res[i].Count, ErrNotFound)
		}
	}
	c.log.WithField("object", what).WithField("ops", len(ops)).Debug("ovsdb transaction committed")
	return res, nil
}

// mapMutations turns old -> new of a string map column into mutations that
// touch only the keys that differ, so that concurrent writers of other keys
// (an admin's external_ids) are never overwritten.
func mapMutations(field *map[string]string, old, new map[string]string) []model.Mutation {
	var del []string
	ins := map[string]string{}
	for k, v := range old {
		if nv, ok := new[k]; !ok || nv != v {
			del = append(del, k)
		}
	}
	for k, v := range new {
		if ov, ok := old[k]; !ok || ov != v {
			ins[k] = v
		}
	}
	sort.Strings(del)
	var muts []model.Mutation
	if len(del) > 0 {
		muts = append(muts, model.Mutation{Field: field, Mutator: libovsdb.MutateOperationDelete, Value: del})
	}
	if len(ins) > 0 {
		muts = append(muts, model.Mutation{Field: field, Mutator: libovsdb.MutateOperationInsert, Value: ins})
	}
	return muts
}

// portOps updates a port's VLAN columns and mutates its external_ids.
func (c *Client) portOps(p *vswitchd.Port, np *vswitchd.Port, ext map[string]string) ([]libovsdb.Operation, error) {
	ops, err := c.ovs.Where(np).Update(np, &np.Tag, &np.VLANMode, &np.Trunks)
	if err != nil {
		return nil, err
	}
	mp := &vswitchd.Port{UUID: p.UUID}
	if muts := mapMutations(&mp.ExternalIDs, p.ExternalIDs, ext); len(muts) > 0 {
		mops, err := c.ovs.Where(mp).Mutate(mp, muts...)
		if err != nil {
			return nil, err
		}
		ops = append(ops, mops...)
	}
	return ops, nil
}

// validName checks a port name: a network device name (1-15 bytes, no
// '/', whitespace, ':' or NUL).
func validName(name string) error {
	if name == "" || len(name) > 15 || strings.ContainsAny(name, "/: \t\n\x00") || name == "." || name == ".." {
		return fmt.Errorf("port name %q: must be 1-15 characters without '/', ':' or whitespace: %w", name, ErrInvalid)
	}
	return nil
}

// bridgeAndPort reads the bridge and, if present, the port of that name.
func (c *Client) bridgeAndPort(ctx context.Context, bridge, port string) (*view, *vswitchd.Bridge, *vswitchd.Port, error) {
	v, err := c.read(ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("bridge %q: port %q: %w", bridge, port, err)
	}
	br := v.bridges[bridge]
	if br == nil {
		return nil, nil, nil, fmt.Errorf("bridge %q: %w", bridge, ErrNotFound)
	}
	return v, br, v.portByName(br, port), nil
}

// createPort inserts Interface + Port and adds the port to the bridge, in
// one transaction, then waits for the ofport and runs ready (if not nil).
// existing decides what to do when a port of that name is already on the
// bridge (nil error = use it). A port this call inserted is removed again
// when waiting or ready fails, so that a failed call changes nothing.
func (c *Client) createPort(ctx context.Context, bridge, name, ifType string, options map[string]string,
	existing func(v *view, p *vswitchd.Port) error, ready func() error) (uint32, error) {
	if err := validName(name); err != nil {
		return 0, fmt.Errorf("bridge %q: %w", bridge, err)
	}
	what := fmt.Sprintf("bridge %q: port %q", bridge, name)
	v, br, p, err := c.bridgeAndPort(ctx, bridge, name)
	if err != nil {
		return 0, err
	}
	if p != nil {
		if err := existing(v, p); err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		ofp, err := c.WaitOFPort(ctx, bridge, name)
		if err == nil && ready != nil {
			err = ready()
		}
		return ofp, err
	}
	if other, ok := v.portAnywhere(name); ok {
		return 0, fmt.Errorf("%s: a port or interface of that name exists on bridge %q: %w", what, other, ErrExists)
	}
	ifc := &vswitchd.Interface{
		UUID:        "flowspan_iface",
		Name:        name,
		Type:        ifType,
		Options:     options,
		ExternalIDs: map[string]string{keyCreated: "true"},
	}
	pt := &vswitchd.Port{
		UUID:        "flowspan_port",
		Name:        name,
		Interfaces:  []string{ifc.UUID},
		ExternalIDs: map[string]string{keyCreated: "true"},
	}
	ops, err := c.ovs.Create(ifc, pt)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	b := &vswitchd.Bridge{UUID: br.UUID}
	mut, err := c.ovs.Where(b).Mutate(b, model.Mutation{Field: &b.Ports, Mutator: libovsdb.MutateOperationInsert, Value: []string{pt.UUID}})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	ops = append(ops, mut...)
	if _, err := c.transact(ctx, what, ops, len(ops)-1); err != nil {
		return 0, err
	}
	log := c.log.WithField("bridge", bridge).WithField("port", name).WithField("type", ifType)
	ofp, err := c.WaitOFPort(ctx, bridge, name)
	if err == nil && ready != nil {
		err = ready()
	}
	if err != nil {
		// Roll back, even when ctx is what ended.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if rerr := c.RemovePort(rctx, bridge, name); rerr != nil {
			log.WithError(rerr).Warn("cannot remove the port after its creation failed")
		}
		return 0, err
	}
	log.WithField("ofport", ofp).Info("port created")
	return ofp, nil
}

// CreateInternalPort creates an internal port flowspan owns (marked in
// external_ids), waits for its ofport and brings its network device up
// (see Config.Netns, Config.SkipLinkUp): with the userspace datapath the
// port is a tap device in ovs-vswitchd's namespace that is created down,
// and OVS drops what it outputs to a down tap. Packets output to the port
// can then be captured on that device. Creating a port flowspan already
// created is a no-op; any other existing port of that name is ErrExists.
// When the interface fails (ErrPortFailed), gets no ofport in time or
// cannot be brought up, the new port is removed again and the error
// returned.
func (c *Client) CreateInternalPort(ctx context.Context, bridge, name string) (uint32, error) {
	var up func() error
	if !c.cfg.SkipLinkUp {
		up = func() error {
			if err := setLinkUp(c.cfg.Netns, name); err != nil {
				return fmt.Errorf("bridge %q: port %q: bring up: %w", bridge, name, err)
			}
			return nil
		}
	}
	return c.createPort(ctx, bridge, name, "internal", nil, func(v *view, p *vswitchd.Port) error {
		pf := v.portFacts(p)
		if !pf.Flowspan || pf.Type != "internal" {
			return fmt.Errorf("exists and is not a flowspan internal port: %w", ErrExists)
		}
		return nil
	}, up)
}

// Tunnel types CreateTunnelPort accepts.
const (
	TunnelGRE    = "gre"
	TunnelERSPAN = "erspan"
	TunnelVXLAN  = "vxlan"
	TunnelGeneve = "geneve"
)

// Tunnel describes a tunnel output port.
type Tunnel struct {
	// Type is gre, erspan, vxlan or geneve.
	Type string
	// Remote is the tunnel's remote_ip (required; IPv4 or IPv6).
	Remote netip.Addr
	// Local is the optional local_ip.
	Local netip.Addr
	// Key is the GRE key, VXLAN/Geneve VNI (24 bits) or ERSPAN session ID
	// (10 bits); 0 = none / 0.
	Key uint32
	// ERSPANVersion is 1 (default) or 2; erspan only.
	ERSPANVersion uint8
	// ERSPANIndex is the 20-bit v1 index.
	ERSPANIndex uint32
	// ERSPANDir is the v2 direction: 0 ingress, 1 egress.
	ERSPANDir uint8
	// ERSPANHwID is the 6-bit v2 hardware ID.
	ERSPANHwID uint8
	// DstPort is the optional UDP destination port (vxlan, geneve).
	DstPort uint16
}

// Options validates the tunnel and returns its Interface options.
func (t Tunnel) Options() (map[string]string, error) {
	bad := func(format string, a ...any) (map[string]string, error) {
		return nil, fmt.Errorf("tunnel %s: %s: %w", t.Type, fmt.Sprintf(format, a...), ErrInvalid)
	}
	switch t.Type {
	case TunnelGRE, TunnelERSPAN, TunnelVXLAN, TunnelGeneve:
	default:
		return bad("unknown type %q (want gre, erspan, vxlan or geneve)", t.Type)
	}
	if !t.Remote.IsValid() || t.Remote.IsUnspecified() || t.Remote.IsMulticast() {
		return bad("remote IP %q must be a unicast address", t.Remote)
	}
	opt := map[string]string{"remote_ip": t.Remote.Unmap().String()}
	if t.Local.IsValid() {
		if t.Local.Unmap().Is4() != t.Remote.Unmap().Is4() {
			return bad("local IP %s and remote IP %s are of different families", t.Local, t.Remote)
		}
		opt["local_ip"] = t.Local.Unmap().String()
	}
	switch t.Type {
	case TunnelVXLAN, TunnelGeneve:
		if t.Key > 1<<24-1 {
			return bad("VNI %d exceeds 24 bits", t.Key)
		}
	case TunnelERSPAN:
		if t.Key > 1023 {
			return bad("session ID %d exceeds 10 bits", t.Key)
		}
	}
	if t.Key != 0 {
		opt["key"] = strconv.FormatUint(uint64(t.Key), 10)
	}
	if t.DstPort != 0 {
		if t.Type != TunnelVXLAN && t.Type != TunnelGeneve {
			return bad("dst_port applies to vxlan and geneve only")
		}
		opt["dst_port"] = strconv.Itoa(int(t.DstPort))
	}
	if t.Type != TunnelERSPAN {
		if t.ERSPANVersion != 0 || t.ERSPANIndex != 0 || t.ERSPANDir != 0 || t.ERSPANHwID != 0 {
			return bad("ERSPAN fields set on a non-erspan tunnel")
		}
		return opt, nil
	}
	ver := t.ERSPANVersion
	if ver == 0 {
		ver = 1
	}
	switch ver {
	case 1:
		if t.ERSPANDir != 0 || t.ERSPANHwID != 0 {
			return bad("erspan v1 takes an index, not dir/hwid")
		}
		if t.ERSPANIndex > 1<<20-1 {
			return bad("erspan index %d exceeds 20 bits", t.ERSPANIndex)
		}
		opt["erspan_ver"] = "1"
		// OVS parses erspan_idx as hexadecimal.
		opt["erspan_idx"] = "0x" + strconv.FormatUint(uint64(t.ERSPANIndex), 16)
	case 2:
		if t.ERSPANIndex != 0 {
			return bad("erspan v2 takes dir/hwid, not an index")
		}
		if t.ERSPANDir > 1 {
			return bad("erspan dir %d must be 0 (ingress) or 1 (egress)", t.ERSPANDir)
		}
		if t.ERSPANHwID > 63 {
			return bad("erspan hwid %d exceeds 6 bits", t.ERSPANHwID)
		}
		opt["erspan_ver"] = "2"
		opt["erspan_dir"] = strconv.Itoa(int(t.ERSPANDir))
		// OVS parses erspan_hwid as hexadecimal.
		opt["erspan_hwid"] = "0x" + strconv.FormatUint(uint64(t.ERSPANHwID), 16)
	default:
		return bad("erspan version %d (want 1 or 2)", ver)
	}
	return opt, nil
}

// CreateTunnelPort creates a tunnel port flowspan owns, in one transaction,
// and waits for its ofport. Creating the same tunnel again is a no-op; an
// existing port of that name with other settings is ErrExists. When
// ovs-vswitchd rejects the interface (ErrPortFailed) or assigns no ofport
// in time, the new port is removed again and the error returned.
func (c *Client) CreateTunnelPort(ctx context.Context, bridge, name string, t Tunnel) (uint32, error) {
	opt, err := t.Options()
	if err != nil {
		return 0, fmt.Errorf("bridge %q: port %q: %w", bridge, name, err)
	}
	return c.createPort(ctx, bridge, name, t.Type, opt, func(v *view, p *vswitchd.Port) error {
		pf := v.portFacts(p)
		if !pf.Flowspan || pf.Type != t.Type || len(p.Interfaces) != 1 {
			return fmt.Errorf("exists and is not a flowspan %s port: %w", t.Type, ErrExists)
		}
		if ifc := v.ifaces[p.Interfaces[0]]; ifc == nil || !maps.Equal(ifc.Options, opt) {
			return fmt.Errorf("exists with other tunnel options: %w", ErrExists)
		}
		return nil
	}, nil)
}

// RemovePort removes a port flowspan created (ErrNotOwned for any other
// port). Removing a port that does not exist is a no-op.
func (c *Client) RemovePort(ctx context.Context, bridge, name string) error {
	what := fmt.Sprintf("bridge %q: port %q", bridge, name)
	_, br, p, err := c.bridgeAndPort(ctx, bridge, name)
	if err != nil {
		return err
	}
	if p == nil {
		return nil
	}
	if _, ok := p.ExternalIDs[keyCreated]; !ok {
		return fmt.Errorf("%s: %w", what, ErrNotOwned)
	}
	b := &vswitchd.Bridge{UUID: br.UUID}
	ops, err := c.ovs.Where(b).Mutate(b, model.Mutation{Field: &b.Ports, Mutator: libovsdb.MutateOperationDelete, Value: []string{p.UUID}})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if _, err := c.transact(ctx, what, ops, 0); err != nil {
		return err
	}
	c.log.WithField("bridge", bridge).WithField("port", name).Info("port removed")
	return nil
}

// IsolatePort makes port an access port in Config.IsolationVLAN, a VLAN no
// host uses, so that NORMAL never floods or forwards packets to it; flows
// that output to it by number are unaffected. The port's previous tag,
// vlan_mode and trunks are recorded in its external_ids for
// UnisolatePort. Isolating an isolated port is a no-op.
func (c *Client) IsolatePort(ctx context.Context, bridge, port string) error {
	what := fmt.Sprintf("bridge %q: port %q", bridge, port)
	v, err := c.read(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	ops, err := c.isolateOps(v, bridge, port)
	if err != nil || len(ops) == 0 {
		return err
	}
	if err := c.transactApplied(ctx, what, ops, 0); err != nil {
		return err
	}
	c.log.WithField("bridge", bridge).WithField("port", port).WithField("vlan", c.cfg.IsolationVLAN).Info("port isolated from NORMAL")
	return nil
}

// transactApplied is transact followed by a wait until ovs-vswitchd has
// applied the transaction, as ovs-vsctl --wait=vswitchd does: the
// transaction also increments Open_vSwitch next_cfg and reads it back,
// and ovs-vswitchd sets cur_cfg to it once its configuration reflects the
// database. A mirror's flows must not start copying to an output port
// before NORMAL has stopped sending to it. The wait is bounded by the
// earlier of ctx and Config.ApplyTimeout; the transaction stays committed
// when the wait fails.
func (c *Client) transactApplied(ctx context.Context, what string, ops []libovsdb.Operation, wantOne ...int) error {
	var roots []vswitchd.OpenvSwitch
	if err := c.ovs.List(ctx, &roots); err != nil || len(roots) != 1 {
		return fmt.Errorf("%s: reading the Open_vSwitch row: %d rows, %v", what, len(roots), err)
	}
	root := &vswitchd.OpenvSwitch{UUID: roots[0].UUID}
	mops, err := c.ovs.Where(root).Mutate(root, model.Mutation{Field: &root.NextCfg, Mutator: libovsdb.MutateOperationAdd, Value: 1})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	ops = append(append(ops, mops...), libovsdb.Operation{Op: libovsdb.OperationSelect, Table: vswitchd.OpenvSwitchTable,
		Where:   []libovsdb.Condition{{Column: "_uuid", Function: libovsdb.ConditionEqual, Value: libovsdb.UUID{GoUUID: root.UUID}}},
		Columns: []string{"next_cfg"}})
	res, err := c.transact(ctx, what, ops, wantOne...)
	if err != nil {
		return err
	}
	sel := res[len(res)-1]
	if len(sel.Rows) != 1 {
		return fmt.Errorf("%s: reading next_cfg back: %d rows", what, len(sel.Rows))
	}
	var want int
	switch n := sel.Rows[0]["next_cfg"].(type) {
	case float64:
		want = int(n)
	case int:
		want = n
	default:
		return fmt.Errorf("%s: next_cfg read back as %T", what, n)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	ch, unsub := c.w.notifier()
	defer unsub()
	for {
		var cur []vswitchd.OpenvSwitch
		if err := c.ovs.List(ctx, &cur); err == nil && len(cur) == 1 && cur[0].CurCfg >= want {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%s: committed, but ovs-vswitchd has not applied it (cur_cfg < %d): %w", what, want, ctx.Err())
		}
	}
}

// isolateOps returns the operations that isolate port (see IsolatePort),
// none when it is isolated already. The first operation updates the port
// row (its count must be 1).
func (c *Client) isolateOps(v *view, bridge, port string) ([]libovsdb.Operation, error) {
	what := fmt.Sprintf("bridge %q: port %q", bridge, port)
	br := v.bridges[bridge]
	if br == nil {
		return nil, fmt.Errorf("bridge %q: %w", bridge, ErrNotFound)
	}
	p := v.portByName(br, port)
	if p == nil {
		return nil, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	tag := int(c.cfg.IsolationVLAN)
	mode := vswitchd.PortVLANModeAccess
	_, isolated := p.ExternalIDs[keyIsolated]
	if isolated && p.Tag != nil && *p.Tag == tag && p.VLANMode != nil && *p.VLANMode == mode && len(p.Trunks) == 0 {
		return nil, nil
	}
	ext := maps.Clone(p.ExternalIDs)
	if ext == nil {
		ext = map[string]string{}
	}
	if !isolated {
		ext[keyIsolated] = "true"
		ext[keyPrevTag] = ""
		if p.Tag != nil {
			ext[keyPrevTag] = strconv.Itoa(*p.Tag)
		}
		ext[keyPrevVLANMode] = ""
		if p.VLANMode != nil {
			ext[keyPrevVLANMode] = string(*p.VLANMode)
		}
		ext[keyPrevTrunks] = joinInts(p.Trunks)
	}
	np := &vswitchd.Port{UUID: p.UUID, Tag: &tag, VLANMode: &mode, Trunks: []int{}}
	ops, err := c.portOps(p, np, ext)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return ops, nil
}

// UnisolatePort restores the tag, vlan_mode and trunks IsolatePort
// recorded. A port that is not isolated is left alone.
func (c *Client) UnisolatePort(ctx context.Context, bridge, port string) error {
	what := fmt.Sprintf("bridge %q: port %q", bridge, port)
	_, _, p, err := c.bridgeAndPort(ctx, bridge, port)
	if err != nil {
		return err
	}
	if p == nil {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	if _, ok := p.ExternalIDs[keyIsolated]; !ok {
		return nil
	}
	np := &vswitchd.Port{UUID: p.UUID, Trunks: []int{}}
	if s := p.ExternalIDs[keyPrevTag]; s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%s: external_ids:%s=%q: %w", what, keyPrevTag, s, ErrInvalid)
		}
		np.Tag = &n
	}
	if s := p.ExternalIDs[keyPrevVLANMode]; s != "" {
		m := vswitchd.PortVLANMode(s)
		np.VLANMode = &m
	}
	tr, err := splitInts(p.ExternalIDs[keyPrevTrunks])
	if err != nil {
		return fmt.Errorf("%s: external_ids:%s: %w", what, keyPrevTrunks, errors.Join(err, ErrInvalid))
	}
	if tr != nil {
		np.Trunks = tr
	}
	ext := maps.Clone(p.ExternalIDs)
	for _, k := range []string{keyIsolated, keyPrevTag, keyPrevVLANMode, keyPrevTrunks} {
		delete(ext, k)
	}
	ops, err := c.portOps(p, np, ext)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if _, err := c.transact(ctx, what, ops, 0); err != nil {
		return err
	}
	c.log.WithField("bridge", bridge).WithField("port", port).Info("port isolation removed")
	return nil
}
