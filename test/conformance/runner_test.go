package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowspan/flowspan/api"
	"github.com/flowspan/flowspan/test/lab"
)

// Environment switches (documented in docs/conformance.md).
var (
	// envAll runs the scenarios whose difference from the native table is
	// known and documented; by default they are reported and not run.
	envAll = os.Getenv("FLOWSPAN_CONFORMANCE_ALL") == "1"
	// envNativeOnly runs only the native side of each scenario (no
	// flowspan binary is built): a check of the oracle and of the
	// scenarios' determinism.
	envNativeOnly = os.Getenv("FLOWSPAN_CONFORMANCE_NATIVE_ONLY") == "1"
	// envDump logs every capture of every phase (debugging scenarios).
	envDump = os.Getenv("FLOWSPAN_CONFORMANCE_DUMP") == "1"
)

// flowspanBin is the binary TestMain builds from cmd/flowspan.
var flowspanBin string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	if testing.Short() || envNativeOnly {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "fsconf-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	flowspanBin = filepath.Join(dir, "flowspan")
	cmd := exec.Command("go", "build", "-o", flowspanBin, "github.com/flowspan/flowspan/cmd/flowspan")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "conformance: building cmd/flowspan:", err)
		return 1
	}
	return m.Run()
}

// side is one half of a scenario.
type side string

const (
	native   side = "native"
	flowspan side = "flowspan"
)

// bridge is the bridge every scenario uses.
const bridge = "br0"

// HostSpec is a host of a scenario's topology.
type HostSpec struct {
	Name string
	lab.HostConfig
	// VLANMode sets the port's vlan_mode (e.g. native-untagged).
	VLANMode string
}

// Topology is what both labs of a scenario build on br0.
type Topology struct {
	Hosts []HostSpec
	// Internal ports: name and access tag (0 = no VLAN configuration).
	Internal []InternalSpec
	// Outputs are the mirrors' output ports. They are compared between the
	// sides (the native one post-filtered by Scenario.Post), and not with
	// the no-mirror run (a port that becomes a mirror output stops
	// receiving flooded traffic by design).
	Outputs []string
}

// InternalSpec is an internal port.
type InternalSpec struct {
	Name string
	Tag  int
	// Created: in the flowspan lab the port does not exist until flowspan
	// creates it (`--to NAME --create`); the native lab has it from the
	// start. It is compared in the mirror phase only.
	Created bool
}

// Scenario is one row of the conformance table.
type Scenario struct {
	Name  string
	About string // what it checks (and the OVS test it follows)
	Topo  Topology
	// Native is the oracle: Mirror rows. Flowspan is the same selection
	// through the CLI: the arguments of each `flowspan mirror add` (the
	// framework appends --bridge br0).
	Native   []lab.NativeMirror
	Flowspan [][]string
	// Post, for filter scenarios, keeps the native output copies that the
	// flowspan filter would select (OVS 3.1 has no Mirror filter column).
	Post func(lab.Packet) bool
	// Traffic is sent in each phase, after captures started.
	Traffic func(e *Env)
	// Mirrored, if set, replaces "add mirrors, then Traffic" in the mirror
	// phase (lifecycle scenarios add and delete mirrors during traffic).
	Mirrored func(e *Env)
	// WantCopies is the exact number of packets the native outputs receive
	// (after Post): a check that the oracle did mirror what the scenario
	// means. -1: not checked (timing dependent).
	WantCopies int
	// InOrder adds the flowspan mirrors one after the other, in the order
	// given (by default they are added by concurrent clients).
	InOrder bool
	// NoRelearn skips the warm-up frames sent after the mirrors are added:
	// flowspan's egress prediction then starts from an empty MAC table.
	NoRelearn bool
	// NoBaseline explains why forwarding is not compared with the
	// no-mirror run ("" = it is).
	NoBaseline string
	// OutputsTimed: the output ports' captures depend on timing (lifecycle)
	// and are checked by Verify instead of compared between the sides.
	OutputsTimed bool
	// Verify runs extra checks on each side after the mirror phase.
	Verify func(e *Env, got map[string][]lab.Packet)
	// KnownDiff documents an observed difference from the native table;
	// such a scenario only runs with FLOWSPAN_CONFORMANCE_ALL=1.
	KnownDiff string
}

// TestConformance runs every scenario: the same topology and traffic in two
// private labs, one with native Mirror rows and one with flowspan, and
// compares what every port received.
func TestConformance(t *testing.T) {
	rep := &report{}
	t.Run("scenario", func(t *testing.T) {
		for _, sc := range scenarios() {
			t.Run(sc.Name, func(t *testing.T) {
				t.Parallel()
				r := row{name: sc.Name, native: "-", flowspan: "-", verdict: "skipped"}
				defer func() { rep.add(r) }() // also when the scenario skips
				runScenario(t, sc, &r)
			})
		}
	})
	rep.print(os.Stdout)
}

// row is one line of the printed table.
type row struct {
	name, native, flowspan, verdict string
}

type report struct {
	mu   sync.Mutex
	rows []row
}

func (r *report) add(x row) {
	if x.name == "" {
		return
	}
	r.mu.Lock()
	r.rows = append(r.rows, x)
	r.mu.Unlock()
}

func (r *report) print(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ran := false
	for _, x := range r.rows {
		ran = ran || x.native != "-"
	}
	if !ran {
		return // everything skipped (-short, or no root/OVS outside CI)
	}
	order := map[string]int{}
	for i, sc := range scenarios() {
		order[sc.Name] = i
	}
	sort.Slice(r.rows, func(i, j int) bool { return order[r.rows[i].name] < order[r.rows[j].name] })
	rows := append([]row{{"scenario", "packets native", "packets flowspan", "verdict"}}, r.rows...)
	width := [3]int{}
	for _, x := range rows {
		width[0] = max(width[0], len(x.name))
		width[1] = max(width[1], len(x.native))
		width[2] = max(width[2], len(x.flowspan))
	}
	fmt.Fprintln(w, "conformance: packets = mirror copies on the output ports / all packets on all ports (mirror phase)")
	for i, x := range rows {
		fmt.Fprintf(w, "%-*s | %*s | %*s | %s\n", width[0], x.name, width[1], x.native, width[2], x.flowspan, x.verdict)
		if i == 0 {
			fmt.Fprintf(w, "%s-|-%s-|-%s-|-%s\n", strings.Repeat("-", width[0]), strings.Repeat("-", width[1]), strings.Repeat("-", width[2]), "-------")
		}
	}
}

// sideResult is what one lab of a scenario observed.
type sideResult struct {
	side     side
	baseline map[string][]lab.Packet // no mirror
	mirror   map[string][]lab.Packet // with the mirrors
	errs     []string
	skip     string
	daemon   string // flowspan serve's output
}

// runScenario runs both sides and fills in r.
func runScenario(t *testing.T, sc Scenario, r *row) {
	if sc.KnownDiff != "" && !envAll {
		r.verdict = "known difference, not run (FLOWSPAN_CONFORMANCE_ALL=1)"
		t.Skipf("known difference from the native Mirror table (docs/conformance.md): %s; FLOWSPAN_CONFORMANCE_ALL=1 runs it", sc.KnownDiff)
	}
	lab.Require(t)
	sides := []side{native, flowspan}
	if envNativeOnly {
		sides = sides[:1]
	}
	res := make([]*sideResult, len(sides))
	var wg sync.WaitGroup
	for i, s := range sides {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = runSide(t, sc, s)
		}()
	}
	wg.Wait()
	failed := false
	for _, sr := range res {
		if sr.skip != "" {
			t.Skipf("%s: %s", sr.side, sr.skip)
		}
		for _, e := range sr.errs {
			t.Errorf("%s: %s", sr.side, e)
			failed = true
		}
	}
	nat := res[0]
	r.native = counts(sc, nat, true)
	r.flowspan = "-"
	if failed {
		r.verdict = "ERROR (see test log)"
		return
	}
	// oracle: what is wrong with the native side alone; diffs: where
	// flowspan differs from it.
	var oracle, diffs []string
	// The oracle did what the scenario means.
	if sc.WantCopies >= 0 {
		if n := len(outputCopies(sc, nat, true)); n != sc.WantCopies {
			oracle = append(oracle, fmt.Sprintf("native oracle: outputs received %d copies, the scenario expects %d:\n%s",
				n, sc.WantCopies, lab.Summary(outputCopies(sc, nat, true))))
		}
	}
	for _, sr := range res {
		// Forwarding with the mirrors equals forwarding without.
		if sc.NoBaseline == "" {
			for _, p := range ports(sc) {
				if isOutput(sc, p) {
					continue
				}
				if d := diffPackets(p, "no mirror", sr.baseline[p], string(sr.side)+" mirror", sr.mirror[p]); d == nil {
					continue
				} else if sr.side == native {
					oracle = append(oracle, "forwarding changed by the native mirror: "+d.String())
				} else {
					diffs = append(diffs, "forwarding changed by the flowspan mirror: "+d.String())
				}
			}
		}
	}
	if len(oracle) > 0 {
		// Comparing with a broken oracle proves nothing.
		r.verdict = "ORACLE CHECK FAILED"
		t.Errorf("scenario %s: the native side does not do what the scenario expects:\n%s", sc.Name, strings.Join(oracle, "\n"))
		return
	}
	if len(res) == 1 {
		r.verdict = "native only"
		return
	}
	fs := res[1]
	r.flowspan = counts(sc, fs, false)
	// The same traffic without mirrors is the same in both labs: otherwise
	// the scenario's traffic is not deterministic (or flowspan's presence
	// alone changed forwarding).
	for _, p := range ports(sc) {
		if created(sc, p) {
			continue // exists only in the native lab before the mirror
		}
		if d := diffPackets(p, "native lab", nat.baseline[p], "flowspan lab", fs.baseline[p]); d != nil {
			diffs = append(diffs, "no-mirror runs differ (daemon running, no mirror yet): "+d.String())
		}
	}
	// The differential: every port, native oracle against flowspan.
	for _, p := range ports(sc) {
		want, got := nat.mirror[p], fs.mirror[p]
		if isOutput(sc, p) {
			if sc.OutputsTimed {
				continue
			}
			if sc.Post != nil {
				want = lab.Filter(want, sc.Post)
			}
		}
		if d := diffPackets(p, "native", want, "flowspan", got); d != nil {
			diffs = append(diffs, d.String())
		}
	}
	if len(diffs) == 0 {
		r.verdict = "equal"
		return
	}
	r.verdict = "DIFFERENT"
	t.Errorf("scenario %s: %s\n%s", sc.Name, sc.About, strings.Join(diffs, "\n"))
	t.Logf("flowspan serve output (tail):\n%s", tailLines(fs.daemon, 40))
}

func ports(sc Scenario) []string {
	var ps []string
	for _, h := range sc.Topo.Hosts {
		ps = append(ps, hostPort(h))
	}
	for _, p := range sc.Topo.Internal {
		ps = append(ps, p.Name)
	}
	return ps
}

func hostPort(h HostSpec) string {
	if h.Port != "" {
		return h.Port
	}
	return h.Name
}

func created(sc Scenario, port string) bool {
	for _, p := range sc.Topo.Internal {
		if p.Name == port && p.Created {
			return true
		}
	}
	return false
}

func isOutput(sc Scenario, port string) bool {
	for _, o := range sc.Topo.Outputs {
		if o == port {
			return true
		}
	}
	return false
}

// outputCopies lists the mirror-phase packets of the output ports; the
// native ones post-filtered.
func outputCopies(sc Scenario, sr *sideResult, isNative bool) []lab.Packet {
	var out []lab.Packet
	for _, o := range sc.Topo.Outputs {
		pk := sr.mirror[o]
		if isNative && sc.Post != nil {
			pk = lab.Filter(pk, sc.Post)
		}
		out = append(out, pk...)
	}
	return out
}

func counts(sc Scenario, sr *sideResult, isNative bool) string {
	total := 0
	for _, p := range ports(sc) {
		pk := sr.mirror[p]
		if isNative && isOutput(sc, p) && sc.Post != nil {
			pk = lab.Filter(pk, sc.Post)
		}
		total += len(pk)
	}
	return fmt.Sprintf("%d/%d", len(outputCopies(sc, sr, isNative)), total)
}

// sideT is the lab.T of one side: a scenario runs its two labs in
// goroutines of its own, so failures are recorded (and the side's
// goroutine ended) instead of calling t.FailNow off the test goroutine.
type sideT struct {
	t      *testing.T
	prefix string
	// parent, when set, receives everything once adopted (see newLab).
	parent  *sideT
	adopted bool

	mu       sync.Mutex
	errs     []string
	skip     string
	cleanups []func()
}

var _ lab.T = (*sideT)(nil)

func (s *sideT) Helper() {}

func (s *sideT) Logf(format string, args ...any) {
	s.t.Logf(s.prefix+format, args...)
}

func (s *sideT) Errorf(format string, args ...any) {
	if s.isAdopted() {
		s.parent.Errorf(format, args...)
		return
	}
	s.mu.Lock()
	s.errs = append(s.errs, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

func (s *sideT) Fatalf(format string, args ...any) {
	s.Errorf(format, args...)
	runtime.Goexit()
}

func (s *sideT) Skipf(format string, args ...any) {
	s.mu.Lock()
	s.skip = fmt.Sprintf(format, args...)
	s.mu.Unlock()
	runtime.Goexit()
}

func (s *sideT) isAdopted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adopted
}

func (s *sideT) Cleanup(f func()) {
	if s.isAdopted() {
		s.parent.Cleanup(f)
		return
	}
	s.mu.Lock()
	s.cleanups = append(s.cleanups, f)
	s.mu.Unlock()
}

func (s *sideT) Failed() bool {
	if s.isAdopted() {
		return s.parent.Failed()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.errs) > 0
}

// newLab starts a lab, retrying once when ovsdb-server refused the first
// connection: test/lab waits for its socket file to exist, and under load
// a client can connect between ovsdb-server's bind and listen.
func newLab(st *sideT) *lab.Lab {
	for attempt := 1; ; attempt++ {
		probe := &sideT{t: st.t, prefix: st.prefix, parent: st}
		var l *lab.Lab
		done := make(chan struct{})
		go func() {
			defer close(done)
			l = lab.New(probe)
		}()
		<-done
		probe.mu.Lock()
		errs, skip := strings.Join(probe.errs, "; "), probe.skip
		probe.mu.Unlock()
		if skip != "" {
			st.Skipf("%s", skip)
		}
		if errs == "" && l != nil {
			// The lab's cleanup (and any later failure) belongs to the side.
			probe.mu.Lock()
			cleanups := probe.cleanups
			probe.cleanups, probe.adopted = nil, true
			probe.mu.Unlock()
			st.mu.Lock()
			st.cleanups = append(st.cleanups, cleanups...)
			st.mu.Unlock()
			return l
		}
		probe.runCleanups()
		if attempt == 2 || !strings.Contains(errs, "Connection refused") {
			st.Fatalf("%s", errs)
		}
		st.Logf("lab did not start (%s); retrying once", errs)
	}
}

func (s *sideT) runCleanups() {
	for {
		s.mu.Lock()
		if len(s.cleanups) == 0 {
			s.mu.Unlock()
			return
		}
		f := s.cleanups[len(s.cleanups)-1]
		s.cleanups = s.cleanups[:len(s.cleanups)-1]
		s.mu.Unlock()
		f()
	}
}

// parallel runs f(0..n-1) in goroutines; if any of them failed the side,
// the calling goroutine ends too.
func (s *sideT) parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i)
		}()
	}
	wg.Wait()
	if s.Failed() {
		runtime.Goexit()
	}
}

// Env is one side's lab, as the scenario's traffic sees it.
type Env struct {
	T     *sideT
	Lab   *lab.Lab
	Side  side
	sc    Scenario
	hosts map[string]*lab.Host
	d     *daemon // flowspan side only

	listening map[string]bool // host:port of Listen
	warmRound byte            // warm-up rounds so far
}

// H returns a host by name.
func (e *Env) H(name string) *lab.Host {
	h, ok := e.hosts[name]
	if !ok {
		e.T.Fatalf("scenario %s: no host %q", e.sc.Name, name)
	}
	return h
}

func runSide(t *testing.T, sc Scenario, s side) *sideResult {
	st := &sideT{t: t, prefix: "[" + string(s) + "] "}
	res := &sideResult{side: s}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer st.runCleanups()
		e := setup(st, sc, s)
		if e.d != nil {
			defer func() { res.daemon = e.d.out.String() }()
		}
		res.baseline = e.phase(false)
		res.mirror = e.phase(true)
		if sc.Verify != nil {
			sc.Verify(e, res.mirror)
		}
	}()
	<-done
	st.mu.Lock()
	res.errs, res.skip = st.errs, st.skip
	st.mu.Unlock()
	return res
}

func setup(st *sideT, sc Scenario, s side) *Env {
	l := newLab(st)
	e := &Env{T: st, Lab: l, Side: s, sc: sc, hosts: map[string]*lab.Host{}}
	l.AddBridge(st, bridge)
	for _, hs := range sc.Topo.Hosts {
		h := l.AddHost(st, bridge, hs.Name, hs.HostConfig)
		if hs.VLANMode != "" {
			l.MustVsctl(st, "set", "Port", h.Port(), "vlan_mode="+hs.VLANMode)
		}
		e.hosts[hs.Name] = h
	}
	for _, p := range sc.Topo.Internal {
		if p.Created && s == flowspan {
			continue
		}
		l.AddInternalPort(st, bridge, p.Name, p.Tag)
	}
	e.quietOffloads()
	// Static IPv4 neighbours: no ARP during the measurements (scenarios
	// about ARP send it themselves). IPv6 neighbours stay dynamic: the ND
	// scenarios flush and resolve them inside the measured window.
	for _, a := range e.hosts {
		for _, b := range e.hosts {
			if a != b && a.IPv4().IsValid() && b.IPv4().IsValid() {
				a.Neighbor(st, b.IPv4(), b.MAC())
			}
		}
	}
	if s == flowspan {
		e.d = startDaemon(st, l)
	}
	e.warm(true)
	return e
}

// quietOffloads turns segmentation and receive offloads off on every
// interface a capture listens on. With them on, libpcap sizes each slot of
// its capture ring for 64 KiB packets, so the 2 MiB ring holds only 32
// packets and a short burst on a busy machine makes tcpdump drop (and the
// lab fail the capture). The wire traffic does not change: TX checksum
// offload, which TCP segmentation needs, is already off on lab veths.
func (e *Env) quietOffloads() {
	off := []string{"-K", "", "gso", "off", "tso", "off", "gro", "off"}
	run := func(ns, dev string) {
		args := append([]string{"netns", "exec", ns, "ethtool"}, off...)
		args[5] = dev
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			e.T.Fatalf("ethtool %s in %s: %v: %s", dev, ns, err, out)
		}
	}
	for _, hs := range e.sc.Topo.Hosts {
		h := e.hosts[hs.Name]
		if hs.VLAN > 0 {
			run(e.Lab.Netns(), "x"+h.Port()) // the lab captures a tagged host on its edge bridge's trunk end
		} else {
			run(h.Netns(), "eth0")
		}
	}
	for _, p := range e.sc.Topo.Internal {
		if p.Created && e.Side == flowspan {
			continue // see quietCreated
		}
		run(e.Lab.Netns(), p.Name)
	}
}

// quietCreated does what quietOffloads does for the ports flowspan created.
func (e *Env) quietCreated() {
	for _, p := range e.sc.Topo.Internal {
		if !p.Created {
			continue
		}
		var out []byte
		lab.Eventually(e.T, lab.Timeout, func() error {
			var err error
			out, err = exec.Command("ip", "netns", "exec", e.Lab.Netns(), "ethtool", "-K", p.Name, "gso", "off", "tso", "off", "gro", "off").CombinedOutput()
			if err != nil {
				return fmt.Errorf("port %s that flowspan created: ethtool: %v: %s", p.Name, err, out)
			}
			return nil
		})
	}
}

// warm makes every host send a warm-up frame in each VLAN it can send in,
// so the bridge (and flowspan's shadow MAC table) knows where each MAC
// is. wait: poll the bridge's MAC table until every host is in it.
func (e *Env) warm(wait bool) {
	e.warmRound++
	var macs []string
	for _, hs := range e.sc.Topo.Hosts {
		if !wait && isOutput(e.sc, hostPort(hs)) {
			continue // a mirror output: what it sends is dropped anyway
		}
		h := e.hosts[hs.Name]
		var frames [][]byte
		if hs.VLAN == 0 && len(hs.Trunks) > 0 {
			// A raw trunk host: tagged in each of its VLANs.
			for _, v := range hs.Trunks {
				frames = append(frames, warmFrame(h.MAC(), uint16(v), e.warmRound))
			}
			if hs.Tag > 0 && strings.HasPrefix(hs.VLANMode, "native") {
				frames = append(frames, warmFrame(h.MAC(), 0, e.warmRound))
			}
		} else {
			frames = append(frames, warmFrame(h.MAC(), 0, e.warmRound))
		}
		h.SendRaw(e.T, frames...)
		macs = append(macs, h.MAC().String())
	}
	if !wait {
		return
	}
	lab.Eventually(e.T, lab.Timeout, func() error {
		out, err := e.Lab.Appctl("fdb/show", bridge)
		if err != nil {
			return err
		}
		for _, m := range macs {
			if !strings.Contains(out, m) {
				return fmt.Errorf("bridge has not learned %s yet:\n%s", m, out)
			}
		}
		return nil
	})
}

// phase captures every port while the traffic runs; with mirror, after
// adding the scenario's mirrors (or running its Mirrored function).
func (e *Env) phase(mirror bool) map[string][]lab.Packet {
	if mirror && e.sc.Mirrored == nil {
		e.AddMirrors()
		if !e.sc.NoRelearn {
			e.warm(false)
		}
		if envDump {
			e.T.Logf("flows after adding the mirrors:\n%s", e.Lab.DumpFlows(e.T, bridge))
		}
	}
	var ps []string
	for _, p := range ports(e.sc) {
		if !mirror && e.Side == flowspan && created(e.sc, p) {
			continue // flowspan creates it with the mirror
		}
		ps = append(ps, p)
	}
	caps := make([]*lab.Capture, len(ps))
	e.T.parallel(len(ps), func(i int) { caps[i] = e.Lab.Capture(e.T, ps[i]) })
	if mirror && e.sc.Mirrored != nil {
		e.sc.Mirrored(e)
	} else {
		e.sc.Traffic(e)
	}
	got := make([][]lab.Packet, len(ps))
	e.T.parallel(len(ps), func(i int) { got[i] = caps[i].Stop(e.T) })
	out := map[string][]lab.Packet{}
	for i, p := range ps {
		out[p], _ = clean(got[i])
		if envDump {
			e.T.Logf("mirror phase %v: port %s received %d:\n%s", mirror, p, len(out[p]), lab.Summary(out[p]))
		}
	}
	return out
}

// AddMirrors installs the scenario's mirrors on this side and returns once
// they are in effect.
func (e *Env) AddMirrors() {
	if e.Side == native {
		for _, m := range e.sc.Native {
			e.Lab.AddNativeMirror(e.T, bridge, m) // purges cached datapath flows
		}
		return
	}
	// Many mirrors are added by concurrent CLI clients, as scripts would.
	var names []string
	for _, args := range e.sc.Flowspan {
		names = append(names, args[0])
	}
	add := func(i int) {
		args := e.sc.Flowspan[i]
		a := append([]string{"mirror", "add"}, args...)
		if !contains(args, "--bridge") {
			a = append(a, "--bridge", bridge)
		}
		e.d.must(e.T, a...)
	}
	if e.sc.InOrder {
		for i := range e.sc.Flowspan {
			add(i)
		}
	} else {
		sem := make(chan struct{}, addWorkers)
		e.T.parallel(len(e.sc.Flowspan), func(i int) {
			sem <- struct{}{}
			defer func() { <-sem }()
			add(i)
		})
	}
	e.d.waitActive(e.T, names)
	e.quietCreated()
}

// addWorkers is how many `flowspan mirror add` run at once.
const addWorkers = 4

// DelMirrors removes the scenario's mirrors on this side.
func (e *Env) DelMirrors() {
	if e.Side == native {
		for _, m := range e.sc.Native {
			e.Lab.DelNativeMirror(e.T, bridge, m.Name) // purges cached datapath flows
		}
		return
	}
	for _, args := range e.sc.Flowspan {
		e.d.must(e.T, "mirror", "del", args[0])
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// daemon is one `flowspan serve` driven through the CLI.
type daemon struct {
	lab      *lab.Lab
	dir, api string
	cmd      *exec.Cmd
	out      *lab.Buffer
	exited   chan struct{}
}

// startDaemon runs `flowspan serve` against the lab's OVSDB, with its API
// socket and state file in a private directory, and waits until its API
// answers.
func startDaemon(st *sideT, l *lab.Lab) *daemon {
	dir, err := os.MkdirTemp("", "fsconf")
	if err != nil {
		st.Fatalf("flowspan: %v", err)
	}
	d := &daemon{dir: dir, api: "unix:" + filepath.Join(dir, "api.sock"), out: &lab.Buffer{}, lab: l}
	st.Cleanup(func() {
		d.stop()
		if st.Failed() {
			st.Logf("flowspan serve output (tail):\n%s", tailLines(d.out.String(), 60))
		}
		_ = os.RemoveAll(dir)
	})
	d.start(st)
	return d
}

// start runs `flowspan serve` and waits until its API answers.
func (d *daemon) start(st *sideT) {
	d.exited = make(chan struct{})
	d.cmd = exec.Command(flowspanBin, "serve", "--ovsdb", d.lab.DBEndpoint(), "--api", d.api,
		"--state", filepath.Join(d.dir, "state.json"), "--metrics", "")
	d.cmd.Env = append(d.lab.Env(), "FLOWSPAN_API="+d.api)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		close(d.exited)
		st.Fatalf("flowspan serve: %v", err)
	}
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(d.cmd, d.exited)
	lab.Eventually(st, lab.Timeout, func() error {
		select {
		case <-d.exited:
			st.Fatalf("flowspan serve exited (%v):\n%s", d.cmd.ProcessState, tailLines(d.out.String(), 40))
		default:
		}
		_, stderr, code := d.cli("mirror", "list")
		if code != 0 {
			return fmt.Errorf("flowspan serve not answering: %s", stderr)
		}
		return nil
	})
}

// restart stops serve with SIGTERM (its flows stay in the switch) and
// starts it again on the same state file.
func (d *daemon) restart(st *sideT) {
	d.stop()
	fmt.Fprintf(d.out, "--- conformance: flowspan serve restarted ---\n")
	d.start(st)
}

func (d *daemon) stop() {
	if d.cmd == nil {
		return
	}
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

// cli runs one flowspan client command against this daemon.
func (d *daemon) cli(args ...string) (stdout, stderr string, code int) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, flowspanBin, args...)
	cmd.Env = append(os.Environ(), "FLOWSPAN_API="+d.api)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		return o.String(), err.Error(), -1
	}
	return o.String(), e.String(), code
}

// must runs a client command and fails the side unless it exits 0.
func (d *daemon) must(st *sideT, args ...string) string {
	out, stderr, code := d.cli(args...)
	if code != 0 {
		st.Fatalf("flowspan %s: exit %d: %s", strings.Join(args, " "), code, strings.TrimSpace(stderr))
	}
	return out
}

// waitActive polls `flowspan mirror list -o json` until every named
// mirror is active (its flows installed); an error state fails at once.
func (d *daemon) waitActive(st *sideT, names []string) {
	lab.Eventually(st, lab.Timeout, func() error {
		var ml api.MirrorList
		if err := json.Unmarshal([]byte(d.must(st, "mirror", "list", "-o", "json")), &ml); err != nil {
			return fmt.Errorf("mirror list -o json: %w", err)
		}
		state := map[string]api.Status{}
		for _, m := range ml.Mirrors {
			state[m.Spec.Name] = m.Status
		}
		for _, n := range names {
			s, ok := state[n]
			switch {
			case !ok:
				return fmt.Errorf("mirror %s not listed", n)
			case s.State == api.StateError:
				st.Fatalf("mirror %s: %s", n, s)
			case s.State != api.StateActive:
				return fmt.Errorf("mirror %s: %s", n, s)
			}
		}
		return nil
	})
}

// stats reads `flowspan mirror stats -o json`.
func (d *daemon) stats(st *sideT) api.StatsList {
	var sl api.StatsList
	if err := json.Unmarshal([]byte(d.must(st, "mirror", "stats", "-o", "json")), &sl); err != nil {
		st.Fatalf("mirror stats -o json: %v", err)
	}
	return sl
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
