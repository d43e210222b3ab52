package ovsdb

import (
	"context"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ovn-org/libovsdb/model"
	libovsdb "github.com/ovn-org/libovsdb/ovsdb"

	"github.com/flowspan/flowspan/ovsdb/vswitchd"
)

// Mode selects how TakeOver connects a bridge to flowspan: ServiceMode or
// ControllerMode.
type Mode interface {
	modeName() string
}

// ServiceMode adds a passive (service) controller target that flowspan
// dials. OVS neither flushes the flow table nor changes its fail mode for
// a service connection, so forwarding is never interrupted; the bridge's
// fail_mode and other controllers are left alone.
type ServiceMode struct {
	// Target is the passive target OVS listens on: punix:PATH,
	// ptcp:PORT[:IP] or pssl:PORT[:IP]. Default
	// punix:<RunDir>/<bridge>.flowspan (OVS accepts punix: targets only
	// of the form <its rundir>/<bridge>.*).
	Target string
}

// ControllerMode makes flowspan the bridge's (additional) primary
// controller: an active target the switch connects to, fail_mode secure,
// OpenFlow 1.3 enabled. OVS flushes the bridge's flow table when it gains
// its first primary controller, so forwarding stops until flowspan's
// listener has installed its flows: have the listener ready and the
// pipeline compiled before calling TakeOver.
type ControllerMode struct {
	// Target is flowspan's listener: unix:PATH, tcp:IP:PORT or ssl:IP:PORT.
	Target string
	// MaxBackoff is the switch's maximum reconnect interval
	// (Controller.max_backoff, at least 1s). Default 1s (OVS: 8s).
	MaxBackoff time.Duration
	// InactivityProbe is Controller.inactivity_probe. Default 5s.
	InactivityProbe time.Duration
}

func (ServiceMode) modeName() string    { return "service" }
func (ControllerMode) modeName() string { return "controller" }

// serviceTarget returns the passive target and the address flowspan dials.
func (c *Client) serviceTarget(bridge string, m ServiceMode) (target, dial string, err error) {
	target = m.Target
	if target == "" {
		if c.rundir == "" {
			return "", "", fmt.Errorf("no OVS run directory known for endpoint %s (set Config.RunDir or ServiceMode.Target): %w", c.endpoint, ErrInvalid)
		}
		target = "punix:" + filepath.Join(c.rundir, bridge+".flowspan")
	}
	scheme, rest, _ := strings.Cut(target, ":")
	switch scheme {
	case "punix":
		if !filepath.IsAbs(rest) {
			return "", "", fmt.Errorf("service target %q: path must be absolute: %w", target, ErrInvalid)
		}
		return target, "unix:" + rest, nil
	case "ptcp", "pssl":
		port, ip, _ := strings.Cut(rest, ":")
		n, err := strconv.Atoi(port)
		if err != nil || n <= 0 || n > 65535 || strconv.Itoa(n) != port {
			return "", "", fmt.Errorf("service target %q: want %s:PORT[:IP] with a non-zero port: %w", target, scheme, ErrInvalid)
		}
		ip = strings.Trim(ip, "[]")
		if ip == "" || ip == "0.0.0.0" || ip == "::" {
			ip = "127.0.0.1"
			if s, addr, err := parseEndpoint(c.endpoint); err == nil && s != "unix" {
				ip, _, _ = net.SplitHostPort(addr)
			}
		} else if net.ParseIP(ip) == nil {
			return "", "", fmt.Errorf("service target %q: bad IP %q: %w", target, ip, ErrInvalid)
		}
		return target, strings.TrimPrefix(scheme, "p") + ":" + net.JoinHostPort(ip, port), nil
	default:
		return "", "", fmt.Errorf("service target %q: want punix:PATH, ptcp:PORT[:IP] or pssl:PORT[:IP]: %w", target, ErrInvalid)
	}
}

func checkControllerTarget(t string) error {
	scheme, rest, _ := strings.Cut(t, ":")
	switch scheme {
	case "unix":
		if filepath.IsAbs(rest) {
			return nil
		}
	case "tcp", "ssl":
		host, port, err := net.SplitHostPort(rest)
		ip := net.ParseIP(host)
		if n, perr := strconv.Atoi(port); err == nil && ip != nil && !ip.IsUnspecified() && perr == nil && n > 0 && n <= 65535 {
			return nil
		}
	}
	return fmt.Errorf("controller target %q: want unix:PATH, tcp:IP:PORT or ssl:IP:PORT: %w", t, ErrInvalid)
}

// desiredController is the Controller row TakeOver wants.
type desiredController struct {
	target          string
	maxBackoff      *int
	inactivityProbe *int
	connMode        *vswitchd.ControllerConnectionMode
}

func (d desiredController) matches(ct *vswitchd.Controller) bool {
	eq := func(a, b *int) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	cm := (d.connMode == nil) == (ct.ConnectionMode == nil) && (d.connMode == nil || *d.connMode == *ct.ConnectionMode)
	return ct.Target == d.target && eq(d.maxBackoff, ct.MaxBackoff) && eq(d.inactivityProbe, ct.InactivityProbe) && cm
}

// TakeOver connects a bridge to flowspan (see ServiceMode and
// ControllerMode) and returns the address flowspan must use: the address
// to dial in service mode, the address to listen on in controller mode.
//
// The first TakeOver records the bridge's previous controllers, and the
// previous fail_mode and protocols before changing either, in the bridge's
// external_ids (flowspan-prev-*), so that Release restores them exactly.
// Calling it again with the same mode changes nothing; with another mode
// it switches mode and keeps the original record. Other controllers are
// never modified.
//
// Ports named in isolate are isolated (see IsolatePort) in the same
// transaction, so that ovs-vswitchd reconfigures the bridge once: a
// mirror's output port stops receiving NORMAL's traffic no later than the
// controller target appears.
func (c *Client) TakeOver(ctx context.Context, bridge string, mode Mode, isolate ...string) (string, error) {
	what := fmt.Sprintf("bridge %q: take over", bridge)
	var (
		want       desiredController
		dial       string
		controller bool
	)
	switch m := mode.(type) {
	case ServiceMode:
		t, d, err := c.serviceTarget(bridge, m)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		want, dial = desiredController{target: t}, d
	case ControllerMode:
		if err := checkControllerTarget(m.Target); err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		mb, ip := m.MaxBackoff, m.InactivityProbe
		if mb <= 0 {
			mb = time.Second
		}
		if mb < time.Second {
			return "", fmt.Errorf("%s: max backoff %v below OVS's minimum of 1s: %w", what, mb, ErrInvalid)
		}
		if ip <= 0 {
			ip = 5 * time.Second
		}
		mbms, ipms := int(mb.Milliseconds()), int(ip.Milliseconds())
		oob := vswitchd.ControllerConnectionModeOutOfBand
		want, dial, controller = desiredController{target: m.Target, maxBackoff: &mbms, inactivityProbe: &ipms, connMode: &oob}, m.Target, true
	default:
		return "", fmt.Errorf("%s: unknown mode %T: %w", what, mode, ErrInvalid)
	}
	modeName := mode.modeName()

	v, err := c.read(ctx)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	br := v.bridges[bridge]
	if br == nil {
		return "", fmt.Errorf("bridge %q: %w", bridge, ErrNotFound)
	}

	// External ids: record the original state once.
	ext := maps.Clone(br.ExternalIDs)
	if ext == nil {
		ext = map[string]string{}
	}
	if _, recorded := ext[keyPrevCtrls]; !recorded {
		var prev []string
		for _, u := range br.Controller {
			if ct := v.ctrls[u]; ct != nil {
				if _, ours := ct.ExternalIDs[keyController]; !ours {
					prev = append(prev, ct.Target)
				}
			}
		}
		sort.Strings(prev)
		ext[keyPrevCtrls] = strings.Join(prev, ",")
	}
	ext[keyMode] = modeName

	nb := &vswitchd.Bridge{UUID: br.UUID}
	var updFields []any
	if controller && (br.FailMode == nil || *br.FailMode != vswitchd.BridgeFailModeSecure) {
		if _, ok := ext[keyPrevFailMode]; !ok {
			ext[keyPrevFailMode] = ""
			if br.FailMode != nil {
				ext[keyPrevFailMode] = string(*br.FailMode)
			}
		}
		secure := vswitchd.BridgeFailModeSecure
		nb.FailMode = &secure
		updFields = append(updFields, &nb.FailMode)
	}
	if len(br.Protocols) > 0 && !slices.Contains(br.Protocols, vswitchd.BridgeProtocolsOpenflow13) {
		if _, ok := ext[keyPrevProtocols]; !ok {
			ext[keyPrevProtocols] = joinProtocols(br.Protocols)
		}
		nb.Protocols = append(slices.Clone(br.Protocols), vswitchd.BridgeProtocolsOpenflow13)
		updFields = append(updFields, &nb.Protocols)
	}

	// Controllers: keep a matching row of ours, replace any other of ours.
	var keep string
	var drop []string
	for _, u := range br.Controller {
		ct := v.ctrls[u]
		if ct == nil {
			continue
		}
		if _, ours := ct.ExternalIDs[keyController]; !ours {
			continue
		}
		if keep == "" && ct.ExternalIDs[keyController] == modeName && want.matches(ct) {
			keep = u
			continue
		}
		drop = append(drop, u)
	}

	var ops []libovsdb.Operation
	var check []int
	for _, port := range isolate {
		iops, err := c.isolateOps(v, bridge, port)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		if len(iops) > 0 {
			check = append(check, len(ops))
			ops = append(ops, iops...)
		}
	}
	isolated := len(ops) > 0
	if keep != "" && len(drop) == 0 && len(updFields) == 0 && maps.Equal(ext, br.ExternalIDs) && !isolated {
		return dial, nil // already handed over in this mode
	}
	if keep == "" {
		ct := &vswitchd.Controller{
			UUID:            "flowspan_ctrl",
			Target:          want.target,
			MaxBackoff:      want.maxBackoff,
			InactivityProbe: want.inactivityProbe,
			ConnectionMode:  want.connMode,
			ExternalIDs:     map[string]string{keyController: modeName},
		}
		cops, err := c.ovs.Create(ct)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		ops = append(ops, cops...)
	}
	if len(updFields) > 0 {
		uops, err := c.ovs.Where(nb).Update(nb, updFields...)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		ops = append(ops, uops...)
		check = append(check, len(ops)-1)
	}
	mb := &vswitchd.Bridge{UUID: br.UUID}
	muts := mapMutations(&mb.ExternalIDs, br.ExternalIDs, ext)
	if len(drop) > 0 {
		muts = append(muts, model.Mutation{Field: &mb.Controller, Mutator: libovsdb.MutateOperationDelete, Value: drop})
	}
	if keep == "" {
		muts = append(muts, model.Mutation{Field: &mb.Controller, Mutator: libovsdb.MutateOperationInsert, Value: []string{"flowspan_ctrl"}})
	}
	if len(muts) > 0 {
		mops, err := c.ovs.Where(mb).Mutate(mb, muts...)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		ops = append(ops, mops...)
		check = append(check, len(ops)-1)
	}
	if _, err := c.transact(ctx, what, ops, check...); err != nil {
		return "", err
	}
	if isolated {
		c.log.WithField("bridge", bridge).WithField("ports", isolate).WithField("vlan", c.cfg.IsolationVLAN).Info("ports isolated from NORMAL")
	}
	c.log.WithField("bridge", bridge).WithField("mode", modeName).WithField("target", want.target).
		Info("bridge handed over to flowspan")
	return dial, nil
}

func joinProtocols(ps []vswitchd.BridgeProtocols) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

// Release undoes TakeOver: it removes flowspan's controller, restores the
// recorded fail_mode and protocols (only those TakeOver changed) and
// deletes flowspan's external_ids keys, in one transaction. Releasing a
// bridge that is not handed over is a no-op. It does not touch flows:
// remove flowspan's flows first (in controller mode OVS flushes the table
// and, in standalone fail mode, restores the NORMAL flow itself when its
// last primary controller goes).
func (c *Client) Release(ctx context.Context, bridge string) error {
	what := fmt.Sprintf("bridge %q: release", bridge)
	v, err := c.read(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	br := v.bridges[bridge]
	if br == nil {
		return fmt.Errorf("bridge %q: %w", bridge, ErrNotFound)
	}
	var drop []string
	for _, u := range br.Controller {
		if ct := v.ctrls[u]; ct != nil {
			if _, ours := ct.ExternalIDs[keyController]; ours {
				drop = append(drop, u)
			}
		}
	}
	keys := []string{keyMode, keyPrevCtrls, keyPrevFailMode, keyPrevProtocols}
	ext := maps.Clone(br.ExternalIDs)
	for _, k := range keys {
		delete(ext, k)
	}
	if len(drop) == 0 && len(ext) == len(br.ExternalIDs) {
		return nil
	}
	nb := &vswitchd.Bridge{UUID: br.UUID}
	var fields []any
	if s, ok := br.ExternalIDs[keyPrevFailMode]; ok {
		if s != "" {
			fm := vswitchd.BridgeFailMode(s)
			nb.FailMode = &fm
		}
		fields = append(fields, &nb.FailMode)
	}
	if s, ok := br.ExternalIDs[keyPrevProtocols]; ok {
		nb.Protocols = []vswitchd.BridgeProtocols{}
		if s != "" {
			for _, p := range strings.Split(s, ",") {
				nb.Protocols = append(nb.Protocols, vswitchd.BridgeProtocols(p))
			}
		}
		fields = append(fields, &nb.Protocols)
	}
	if prev := br.ExternalIDs[keyPrevCtrls]; prev != "" {
		// Other controllers are never touched; report if they changed.
		var now []string
		for _, u := range br.Controller {
			if ct := v.ctrls[u]; ct != nil {
				if _, ours := ct.ExternalIDs[keyController]; !ours {
					now = append(now, ct.Target)
				}
			}
		}
		sort.Strings(now)
		if strings.Join(now, ",") != prev {
			c.log.WithField("bridge", bridge).WithField("recorded", prev).WithField("now", now).
				Warn("bridge's other controllers changed while handed over; leaving them as they are")
		}
	}
	var ops []libovsdb.Operation
	var check []int
	if len(fields) > 0 {
		uops, err := c.ovs.Where(nb).Update(nb, fields...)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		ops = append(ops, uops...)
		check = append(check, len(ops)-1)
	}
	mb := &vswitchd.Bridge{UUID: br.UUID}
	muts := mapMutations(&mb.ExternalIDs, br.ExternalIDs, ext)
	if len(drop) > 0 {
		muts = append(muts, model.Mutation{Field: &mb.Controller, Mutator: libovsdb.MutateOperationDelete, Value: drop})
	}
	mops, err := c.ovs.Where(mb).Mutate(mb, muts...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	ops = append(ops, mops...)
	check = append(check, len(ops)-1)
	if _, err := c.transact(ctx, what, ops, check...); err != nil {
		return err
	}
	c.log.WithField("bridge", bridge).Info("bridge released by flowspan")
	return nil
}
