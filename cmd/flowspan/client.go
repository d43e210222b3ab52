package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/flowspan/flowspan/api"
)

// apiFlag registers --api on fs; its default comes from FLOWSPAN_API.
func apiFlag(fs *flag.FlagSet, e *env) *string {
	def := e.getenv("FLOWSPAN_API")
	if def == "" {
		def = "unix:" + api.DefaultSocket
	}
	return fs.String("api", def, "daemon API socket `unix:PATH` (env FLOWSPAN_API)")
}

// notRunningError says the daemon is not reachable and how to start it.
type notRunningError struct {
	addr string
	err  error
}

func (e *notRunningError) Error() string {
	return fmt.Sprintf("daemon not running at %s; start it with: flowspan serve --api %s", e.addr, e.addr)
}

func (e *notRunningError) Unwrap() error { return e.err }

// apiClient wraps api.Client to turn "cannot connect" into notRunningError.
type apiClient struct {
	*api.Client
	addr string
}

func newClient(addr string) *apiClient {
	path := strings.TrimPrefix(addr, "unix:")
	return &apiClient{Client: api.NewClient(path), addr: "unix:" + path}
}

func (c *apiClient) check(err error) error {
	if err != nil && errors.Is(err, api.ErrDaemonNotRunning) {
		return &notRunningError{addr: c.addr, err: err}
	}
	return err
}

// outputFormat validates -o.
func outputFormat(o string) error {
	if o != "table" && o != "json" {
		return usagef("-o %q: want table or json", o)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

const mirrorUsage = `usage: flowspan mirror add|del|list|show|stats ...

  mirror add NAME --bridge BR [--port P]... [--ingress P]... [--egress P]...
             [--vlan V]... [--all] [--match FILTER]... [--snaplen N]
             (--to PORT [--create] | --to-vlan V | --to-tunnel TYPE:REMOTE_IP[:KEY])
  mirror del NAME
  mirror list  [-o table|json]
  mirror show  NAME [--flows]
  mirror stats [NAME] [-o table|json]
`

const mirrorAddUsage = `usage: flowspan mirror add NAME --bridge BR [--port P]... [--ingress P]... [--egress P]...
           [--vlan V]... [--all] [--match FILTER]... [--snaplen N]
           (--to PORT [--create] | --to-vlan V | --to-tunnel TYPE:REMOTE_IP[:KEY])

Define mirror NAME on bridge BR. Selection: --port (both directions),
--ingress (packets the bridge receives on P), --egress (packets it sends out
of P), --all; --vlan narrows to VLANs (alone: every port in them). --match
takes an ovs-ofctl match (tcp,tp_dst=443); a packet is mirrored if it matches
any. Output: an existing port (--to), a port flowspan creates as an internal
port (--to P --create), an RSPAN VLAN (--to-vlan), or a tunnel flowspan
creates (--to-tunnel gre:192.0.2.10:7; types gre, erspan, vxlan, geneve).
Flags may come before or after NAME.

Examples:
  flowspan mirror add web --bridge br0 --port vnet2 --match tcp,tp_dst=443 --to mirror0 --create
  flowspan mirror add v10 --bridge br0 --vlan 10 --to-vlan 999
`

const mirrorDelUsage = `usage: flowspan mirror del NAME [--api unix:PATH]

Delete mirror NAME (and the output port flowspan created for it).
`

const mirrorListUsage = `usage: flowspan mirror list [-o table|json] [--api unix:PATH]
`

const mirrorShowUsage = `usage: flowspan mirror show NAME [--flows] [-o table|json] [--api unix:PATH]

Show mirror NAME; --flows adds its installed flows in ovs-ofctl syntax.
`

const mirrorStatsUsage = `usage: flowspan mirror stats [NAME] [-o table|json] [--api unix:PATH]

Packets and bytes mirrored, per mirror and per selection (port, direction).
`

const releaseUsage = `usage: flowspan release --bridge BR [--api unix:PATH]

Delete every mirror of BR and remove flowspan from it, restoring the bridge's
previous controller and fail-mode settings.
`

// oneName returns the single positional NAME.
func oneName(pos []string, what string) (string, error) {
	switch len(pos) {
	case 0:
		return "", usagef("missing %s", what)
	case 1:
		if pos[0] == "" {
			return "", usagef("empty %s", what)
		}
		return pos[0], nil
	}
	return "", usagef("unexpected arguments after %s: %s", what, strings.Join(pos[1:], " "))
}

// vlanList is a repeatable --vlan flag.
type vlanList []uint16

func (v *vlanList) String() string {
	s := make([]string, len(*v))
	for i, x := range *v {
		s[i] = strconv.Itoa(int(x))
	}
	return strings.Join(s, ",")
}

func (v *vlanList) Set(s string) error {
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
		if err != nil {
			return fmt.Errorf("VLAN %q: not a number 0-4095", f)
		}
		*v = append(*v, uint16(n))
	}
	return nil
}

// parseTunnel parses TYPE:REMOTE_IP[:KEY]; the remote may be an IPv6
// address, bracketed when a key follows ([2001:db8::1]:7).
func parseTunnel(s string) (*api.Tunnel, error) {
	typ, rest, _ := strings.Cut(s, ":")
	t := &api.Tunnel{Type: typ}
	if typ == "" {
		return nil, fmt.Errorf("--to-tunnel %q: want TYPE:REMOTE_IP[:KEY]", s)
	}
	if rest == "" {
		return t, nil // the daemon reports the missing remote
	}
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 {
			return nil, fmt.Errorf("--to-tunnel %q: unclosed [", s)
		}
		t.Remote = rest[1:end]
		rest = rest[end+1:]
		if rest == "" {
			return t, nil
		}
		if !strings.HasPrefix(rest, ":") {
			return nil, fmt.Errorf("--to-tunnel %q: want TYPE:[IPV6]:KEY", s)
		}
		return t, setKey(t, s, rest[1:])
	}
	if _, err := netip.ParseAddr(rest); err == nil || !strings.Contains(rest, ":") {
		t.Remote = rest
		return t, nil
	}
	i := strings.LastIndex(rest, ":")
	t.Remote = rest[:i]
	return t, setKey(t, s, rest[i+1:])
}

func setKey(t *api.Tunnel, s, key string) error {
	k, err := strconv.ParseUint(key, 0, 32)
	if err != nil {
		return fmt.Errorf("--to-tunnel %q: key %q: want a number (GRE key, VNI or ERSPAN session id)", s, key)
	}
	t.Key = uint32(k)
	return nil
}

// mirrorAddSpec parses the arguments of "mirror add" into a spec.
func mirrorAddSpec(e *env, args []string) (api.MirrorSpec, string, error) {
	fs := newFlagSet("mirror add")
	apiAddr := apiFlag(fs, e)
	var spec api.MirrorSpec
	var ports, ingress, egress, match stringList
	var vlans vlanList
	var to, toTunnel string
	var toVLAN uint
	var snaplen uint
	var create bool
	fs.StringVar(&spec.Bridge, "bridge", "", "bridge `BR` (required)")
	fs.Var(&ports, "port", "select port `P` in both directions (repeatable)")
	fs.Var(&ingress, "ingress", "select packets received on port `P` (repeatable)")
	fs.Var(&egress, "egress", "select packets sent out of port `P` (repeatable)")
	fs.Var(&vlans, "vlan", "narrow to VLAN `V`; alone: all ports in it (repeatable)")
	fs.BoolVar(&spec.All, "all", false, "select every port")
	fs.Var(&match, "match", "ovs-ofctl match `FILTER`, e.g. tcp,tp_dst=443 (repeatable, OR-ed)")
	fs.UintVar(&snaplen, "snaplen", 0, "truncate copies to `N` bytes (14-65535; 0 = whole packet)")
	fs.StringVar(&to, "to", "", "output to port `PORT`")
	fs.BoolVar(&create, "create", false, "create the --to port as an internal port")
	fs.UintVar(&toVLAN, "to-vlan", 0, "output to RSPAN VLAN `V`")
	fs.StringVar(&toTunnel, "to-tunnel", "", "output to a tunnel `TYPE:REMOTE_IP[:KEY]` flowspan creates")
	pos, _, dd, err := parseArgs(fs, args)
	if err != nil {
		return spec, "", err
	}
	if dd {
		return spec, "", usagef("unexpected \"--\"")
	}
	if spec.Name, err = oneName(pos, "mirror NAME"); err != nil {
		return spec, "", err
	}
	if spec.Bridge == "" {
		return spec, "", usagef("missing --bridge")
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	outputs := 0
	for _, n := range []string{"to", "to-vlan", "to-tunnel"} {
		if set[n] {
			outputs++
		}
	}
	if outputs != 1 {
		return spec, "", usagef("give exactly one output: --to PORT [--create], --to-vlan V or --to-tunnel TYPE:REMOTE_IP[:KEY]")
	}
	if create && !set["to"] {
		return spec, "", usagef("--create needs --to PORT")
	}
	switch {
	case set["to"]:
		if to == "" {
			return spec, "", usagef("--to: empty port name")
		}
		spec.Output = api.Output{Port: to, Create: create}
	case set["to-vlan"]:
		if toVLAN > 0xffff {
			return spec, "", usagef("--to-vlan %d: not a VLAN id", toVLAN)
		}
		spec.Output = api.Output{VLAN: uint16(toVLAN)}
	default:
		t, err := parseTunnel(toTunnel)
		if err != nil {
			return spec, "", usagef("%v", err)
		}
		spec.Output = api.Output{Tunnel: t}
	}
	if snaplen > 0xffff {
		return spec, "", usagef("--snaplen %d: at most 65535", snaplen)
	}
	spec.Snaplen = uint16(snaplen)
	spec.Ports, spec.Ingress, spec.Egress, spec.Match = ports, ingress, egress, match
	spec.VLANs = vlans
	return spec, *apiAddr, nil
}

func runMirrorAdd(ctx context.Context, e *env, args []string) error {
	spec, addr, err := mirrorAddSpec(e, args)
	if err != nil {
		return err
	}
	c := newClient(addr)
	defer c.Close()
	m, err := c.AddMirror(ctx, spec)
	if err != nil {
		return c.check(err)
	}
	fmt.Fprintf(e.stdout, "mirror %s added on %s: %s -> %s (%s)\n", m.Spec.Name, m.Spec.Bridge,
		m.Spec.SelectionString(), m.Spec.Output, m.Status)
	return nil
}

func runMirrorDel(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("mirror del")
	apiAddr := apiFlag(fs, e)
	pos, _, dd, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if dd {
		return usagef("unexpected \"--\"")
	}
	name, err := oneName(pos, "mirror NAME")
	if err != nil {
		return err
	}
	c := newClient(*apiAddr)
	defer c.Close()
	if err := c.DeleteMirror(ctx, name); err != nil {
		return c.check(err)
	}
	fmt.Fprintf(e.stdout, "mirror %s deleted\n", name)
	return nil
}

func runMirrorList(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("mirror list")
	apiAddr := apiFlag(fs, e)
	format := fs.String("o", "table", "output format: `table` or json")
	pos, _, _, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments: %s", strings.Join(pos, " "))
	}
	if err := outputFormat(*format); err != nil {
		return err
	}
	c := newClient(*apiAddr)
	defer c.Close()
	ms, err := c.Mirrors(ctx)
	if err != nil {
		return c.check(err)
	}
	if ms == nil {
		ms = []api.Mirror{}
	}
	if *format == "json" {
		return writeJSON(e.stdout, api.MirrorList{Mirrors: ms})
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tBRIDGE\tSELECTION\tOUTPUT\tSTATUS")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Spec.Name, m.Spec.Bridge, orDash(m.Spec.SelectionString()),
			orDash(m.Spec.Output.String()), m.Status)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runMirrorShow(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("mirror show")
	apiAddr := apiFlag(fs, e)
	withFlows := fs.Bool("flows", false, "also print the installed flows (ovs-ofctl syntax)")
	format := fs.String("o", "table", "output format: `table` or json")
	pos, _, _, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	name, err := oneName(pos, "mirror NAME")
	if err != nil {
		return err
	}
	if err := outputFormat(*format); err != nil {
		return err
	}
	c := newClient(*apiAddr)
	defer c.Close()
	m, err := c.Mirror(ctx, name)
	if err != nil {
		return c.check(err)
	}
	var flows []string
	if *withFlows {
		if flows, err = c.Flows(ctx, name); err != nil {
			return c.check(err)
		}
	}
	if *format == "json" {
		out := struct {
			api.Mirror
			Flows []string `json:"flows,omitempty"`
		}{m, flows}
		if *withFlows && flows == nil {
			out.Flows = []string{}
		}
		return writeJSON(e.stdout, out)
	}
	s := m.Spec
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 1, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
	row("name", s.Name)
	row("bridge", s.Bridge)
	list := func(k string, v []string) {
		if len(v) > 0 {
			row(k, strings.Join(v, ", "))
		}
	}
	list("ports", s.Ports)
	list("ingress", s.Ingress)
	list("egress", s.Egress)
	if len(s.VLANs) > 0 {
		v := vlanList(s.VLANs)
		row("vlans", v.String())
	}
	if s.All {
		row("all", "yes")
	}
	for _, f := range s.Match {
		row("match", f)
	}
	if s.Snaplen != 0 {
		row("snaplen", s.Snaplen)
	}
	row("output", s.Output)
	row("origin", m.Origin)
	row("status", m.Status)
	if len(m.Status.MissingPorts) > 0 {
		row("missing ports", strings.Join(m.Status.MissingPorts, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if *withFlows {
		fmt.Fprintf(e.stdout, "flows (%d):\n", len(flows))
		for _, f := range flows {
			fmt.Fprintf(e.stdout, "  %s\n", f)
		}
	}
	return nil
}

func runMirrorStats(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("mirror stats")
	apiAddr := apiFlag(fs, e)
	format := fs.String("o", "table", "output format: `table` or json")
	pos, _, _, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("unexpected arguments after NAME: %s", strings.Join(pos[1:], " "))
	}
	if err := outputFormat(*format); err != nil {
		return err
	}
	c := newClient(*apiAddr)
	defer c.Close()
	var stats []api.MirrorStats
	if len(pos) == 1 {
		st, err := c.Stats(ctx, pos[0])
		if err != nil {
			return c.check(err)
		}
		if *format == "json" {
			return writeJSON(e.stdout, st)
		}
		stats = []api.MirrorStats{st}
	} else {
		if stats, err = c.AllStats(ctx); err != nil {
			return c.check(err)
		}
		if stats == nil {
			stats = []api.MirrorStats{}
		}
		if *format == "json" {
			return writeJSON(e.stdout, api.StatsList{Mirrors: stats})
		}
	}
	sort.SliceStable(stats, func(i, j int) bool { return stats[i].Name < stats[j].Name })
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "MIRROR\tBRIDGE\tSELECTION\tPACKETS\tBYTES\t")
	for _, m := range stats {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t\n", m.Name, m.Bridge, "total", m.Packets, m.Bytes)
		for _, s := range m.Selections {
			sel := string(s.Direction)
			if s.Port != "" {
				sel = s.Port + " " + sel
			}
			fmt.Fprintf(tw, "\t\t%s\t%d\t%d\t\n", orDash(strings.TrimSpace(sel)), s.Packets, s.Bytes)
		}
	}
	return tw.Flush()
}

func runRelease(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("release")
	apiAddr := apiFlag(fs, e)
	bridge := fs.String("bridge", "", "bridge `BR` to release (required)")
	pos, _, _, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments: %s", strings.Join(pos, " "))
	}
	if *bridge == "" {
		return usagef("missing --bridge")
	}
	c := newClient(*apiAddr)
	defer c.Close()
	res, err := c.Release(ctx, *bridge)
	if err != nil {
		return c.check(err)
	}
	fmt.Fprintf(e.stdout, "bridge %s released", res.Bridge)
	if len(res.Deleted) > 0 {
		fmt.Fprintf(e.stdout, "; deleted mirrors: %s", strings.Join(res.Deleted, ", "))
	}
	fmt.Fprintln(e.stdout)
	return nil
}

// stderrf prints a warning line.
func stderrf(e *env, format string, a ...any) {
	fmt.Fprintf(e.stderr, format+"\n", a...)
}
