package flowspan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowspan/flowspan/api"
	"github.com/flowspan/flowspan/flows"
	"github.com/flowspan/flowspan/ofctrl"
	"github.com/flowspan/flowspan/ovsdb"
	"github.com/flowspan/flowspan/test/lab"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// labEnv is a Manager on the real packages against a private OVS.
type labEnv struct {
	l    *lab.Lab
	m    *Manager
	stop func()
	// controllerMode: the switch connects to the controller's listener.
	controllerMode bool
	takeOverFirst  bool // Config.TakeOverFirst
	h1, h2         *lab.Host
	state          string
	logs           *logtest.Hook // every entry the Manager logged
	// wrapMACs, when set, wraps the MAC table reader the Manager gets.
	wrapMACs func(MACTableReader) MACTableReader
	grace    time.Duration // Config.FirstCopyGrace
}

func newLabEnv(t *testing.T) *labEnv {
	t.Helper()
	return newLabEnvMode(t, false)
}

func newLabEnvMode(t *testing.T, controllerMode bool) *labEnv {
	t.Helper()
	return newLabEnvWith(t, controllerMode, false)
}

func newLabEnvWith(t *testing.T, controllerMode, takeOverFirst bool) *labEnv {
	t.Helper()
	return newLabEnvOpts(t, func(e *labEnv) { e.controllerMode, e.takeOverFirst = controllerMode, takeOverFirst })
}

// newLabEnvOpts is newLabEnv with opts applied before the Manager starts.
func newLabEnvOpts(t *testing.T, opts func(*labEnv)) *labEnv {
	t.Helper()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	e := &labEnv{l: l, state: filepath.Join(t.TempDir(), "state.json")}
	opts(e)
	e.h1 = l.AddHost(t, "br0", "h1", lab.HostConfig{MAC: "02:00:00:00:00:01", IPv4: "10.0.0.1/24"})
	e.h2 = l.AddHost(t, "br0", "h2", lab.HostConfig{MAC: "02:00:00:00:00:02", IPv4: "10.0.0.2/24"})
	e.stop = e.start(t)
	return e
}

// start runs a Manager until cleanup (or until the returned stop is called).
func (e *labEnv) start(t *testing.T) (stop func()) {
	t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.DebugLevel)
	log.Out = testWriter{t}
	e.logs = logtest.NewLocal(log)
	ctx, cancel := context.WithCancel(context.Background())
	cl, err := ovsdb.Dial(ctx, e.l.DBEndpoint(), ovsdb.Config{Logger: log.WithField("component", "ovsdb"), Netns: e.l.Netns(), RunDir: e.l.RunDir()})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ctrl := ofctrl.New(ofctrl.Config{Logger: log.WithField("component", "ofctrl")})
	oc := NewController(ctrl)
	var mode ovsdb.Mode
	if e.controllerMode {
		target := "unix:" + filepath.Join(e.l.RunDir(), "flowspan.ctl")
		if _, err := ctrl.Listen(ctx, target, nil); err != nil {
			cancel()
			t.Fatal(err)
		}
		mode = ovsdb.ControllerMode{Target: target}
	}
	db := NewOVSDB(cl, mode)
	var macs MACTableReader
	if e.wrapMACs != nil {
		macs = e.wrapMACs(db.(MACTableReader))
	}
	m, err := New(Config{Logger: log, OVSDB: db, Controller: oc, Compiler: NewFlowsCompiler(flows.Config{}), TakeOverFirst: e.takeOverFirst,
		MACTable: macs, FirstCopyGrace: e.grace, StatePath: e.state, RetryInterval: 200 * time.Millisecond})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	e.m = m
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		m.Close()
		ctrl.Close()
		<-oc.Done()
		cl.Close()
	}
	t.Cleanup(stop)
	return stop
}

// statsRE matches the counters dump-flows prints.
var statsRE = regexp.MustCompile(`(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*, ?`)

// settle drops the datapath's cached flows so that the next packets see the
// current OpenFlow tables and mirrors (as the e2e and conformance suites do).
func (e *labEnv) settle(t *testing.T) {
	t.Helper()
	if out, err := e.l.Appctl("revalidator/purge"); err != nil {
		t.Fatalf("ovs-appctl revalidator/purge: %v: %s", err, out)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (e *labEnv) flowspanFlows(t *testing.T) []string {
	t.Helper()
	out, err := e.tryFlowspanFlows()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tryFlowspanFlows returns flowspan's compiled flows (learned ones left out)
// without counters, as ovs-ofctl prints them.
func (e *labEnv) tryFlowspanFlows() ([]string, error) {
	dump, err := e.l.Ofctl("-O", "OpenFlow13", "dump-flows", "br0")
	if err != nil {
		return nil, fmt.Errorf("dump-flows: %w: %s", err, dump)
	}
	var out []string
	for _, line := range strings.Split(dump, "\n") {
		if strings.Contains(line, "cookie=0xf5") && !strings.Contains(line, "idle_timeout") && !strings.Contains(line, "hard_timeout") {
			out = append(out, strings.TrimSpace(statsRE.ReplaceAllString(line, "")))
		}
	}
	return out, nil
}

// udpCopies sends n UDP packets h1→h2 and returns how many the capture on
// port saw.
func (e *labEnv) udpCopies(t *testing.T, port string, dstPort uint16, n int) int {
	t.Helper()
	e.settle(t)
	c := e.l.Capture(t, port)
	e.h1.SendUDP(t, e.h2.IPv4(), 40000, dstPort, 64, n)
	return len(lab.Filter(c.Stop(t), lab.UDPTo(dstPort)))
}

func waitStatus(t *testing.T, m *Manager, name, want string) {
	t.Helper()
	lab.Eventually(t, 5*time.Second, func() error {
		mi, err := m.Mirror(context.Background(), name)
		if err != nil {
			return err
		}
		if got := mi.Status.String(); got != want {
			return fmt.Errorf("mirror %s status %q, want %q", name, got, want)
		}
		return nil
	})
}

func TestLabMirrorAddDelete(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t)
	ctx := context.Background()
	spec := api.MirrorSpec{Name: "m1", Bridge: "br0", Ports: []string{"h1"}, Output: api.Output{Port: "mon0", Create: true}}
	mi, err := e.m.AddMirror(ctx, spec, api.OriginAPI)
	if err != nil {
		t.Fatal(err)
	}
	if mi.Status.State != api.StateActive {
		t.Fatalf("status %v", mi.Status)
	}
	e.h1.Ping(t, e.h2.IPv4(), 1) // learn MACs
	if got := e.udpCopies(t, "mon0", 5001, 5); got != 5 {
		t.Fatalf("mirror copies: got %d UDP packets on mon0, want 5", got)
	}
	st, err := e.m.Stats(ctx, "m1")
	if err != nil || st[0].Packets < 5 {
		t.Fatalf("stats %+v, %v", st, err)
	}
	fl, err := e.m.Flows(ctx, "m1")
	if err != nil || len(fl) == 0 {
		t.Fatalf("Flows = %v, %v", fl, err)
	}
	// Invalid input changes nothing on the switch.
	before := e.flowspanFlows(t)
	bad := spec
	bad.Name, bad.Ports, bad.Output = "m2", []string{"h2"}, api.Output{Port: "h1"}
	if _, err := e.m.AddMirror(ctx, bad, api.OriginAPI); err == nil {
		t.Fatal("output selected by another mirror accepted")
	}
	if after := e.flowspanFlows(t); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("flows changed by a rejected add")
	}

	if err := e.m.DeleteMirror(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if left := e.flowspanFlows(t); len(left) != 0 {
		t.Fatalf("flows left after delete:\n%s", strings.Join(left, "\n"))
	}
	if out, _ := e.l.Vsctl("list-ports", "br0"); strings.Contains(out, "mon0") {
		t.Fatalf("created port left: %s", out)
	}
	if out := e.l.MustVsctl(t, "get-controller", "br0"); strings.TrimSpace(out) != "" {
		t.Fatalf("bridge not released: controllers %q", out)
	}
	if got := e.h1.Ping(t, e.h2.IPv4(), 3); got != 3 {
		t.Fatalf("forwarding after release: %d/3 pings", got)
	}
}

func TestLabVswitchdRestart(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t)
	ctx := context.Background()
	spec := api.MirrorSpec{Name: "m1", Bridge: "br0", Ingress: []string{"h1"}, Output: api.Output{Port: "mon0", Create: true}}
	if _, err := e.m.AddMirror(ctx, spec, api.OriginAPI); err != nil {
		t.Fatal(err)
	}
	before := len(e.flowspanFlows(t))
	e.l.RestartVswitchd(t)
	restarted := time.Now()
	lab.Eventually(t, 5*time.Second, func() error {
		fl, err := e.tryFlowspanFlows()
		if err != nil {
			return err
		}
		if len(fl) != before {
			return fmt.Errorf("%d flowspan flows, want %d", len(fl), before)
		}
		return nil
	})
	t.Logf("flows back %v after vswitchd restart", time.Since(restarted).Round(time.Millisecond))
	waitStatus(t, e.m, "m1", "active")
	e.h1.Ping(t, e.h2.IPv4(), 1)
	if got := e.udpCopies(t, "mon0", 5002, 4); got != 4 {
		t.Fatalf("after restart: %d copies, want 4", got)
	}
}

func TestLabPortRenumbered(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t)
	ctx := context.Background()
	spec := api.MirrorSpec{Name: "m1", Bridge: "br0", Ingress: []string{"h1"}, Output: api.Output{Port: "mon0", Create: true}}
	if _, err := e.m.AddMirror(ctx, spec, api.OriginAPI); err != nil {
		t.Fatal(err)
	}
	old := e.l.OFPort(t, "h1")
	e.l.MustVsctl(t, "del-port", "br0", "h1")
	waitStatus(t, e.m, "m1", "pending: port h1 missing")
	// Another port takes the old number, so the re-added port gets a new one.
	e.l.AddInternalPort(t, "br0", "filler", 0)
	e.l.MustVsctl(t, "add-port", "br0", "h1")
	if now := e.l.OFPort(t, "h1"); now == old {
		t.Fatalf("h1 kept ofport %d", now)
	}
	waitStatus(t, e.m, "m1", "active")
	e.h1.Ping(t, e.h2.IPv4(), 1)
	if got := e.udpCopies(t, "mon0", 5003, 4); got != 4 {
		t.Fatalf("after renumber: %d copies, want 4", got)
	}
}

// TestLabRestartManager: flows stay while the Manager is down (mirroring
// continues) and are replaced by a new generation when it returns.
func TestLabRestartManager(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t)
	ctx := context.Background()
	spec := api.MirrorSpec{Name: "m1", Bridge: "br0", Ports: []string{"h1"}, Output: api.Output{Port: "mon0", Create: true}}
	if _, err := e.m.AddMirror(ctx, spec, api.OriginAPI); err != nil {
		t.Fatal(err)
	}
	before := e.flowspanFlows(t)
	e.stop()
	if down := e.flowspanFlows(t); strings.Join(down, "\n") != strings.Join(before, "\n") {
		t.Fatalf("flows changed while the manager is down")
	}
	e.h1.Ping(t, e.h2.IPv4(), 1)
	if got := e.udpCopies(t, "mon0", 5004, 3); got != 3 {
		t.Fatalf("while down: %d copies, want 3", got)
	}
	e.stop = e.start(t)
	waitStatus(t, e.m, "m1", "active")
	after := e.flowspanFlows(t)
	if len(after) != len(before) {
		t.Fatalf("%d flows after restart, %d before", len(after), len(before))
	}
	genOf := func(line string) string {
		i := strings.Index(line, "cookie=0xf5")
		return line[i+11 : i+13]
	}
	if genOf(after[0]) == genOf(before[0]) {
		t.Fatalf("generation not renewed: %s", genOf(after[0]))
	}
	for _, f := range after {
		if genOf(f) != genOf(after[0]) {
			t.Fatalf("mixed generations after restart:\n%s", strings.Join(after, "\n"))
		}
	}
	if got := e.udpCopies(t, "mon0", 5005, 3); got != 3 {
		t.Fatalf("after restart: %d copies, want 3", got)
	}
}

// TestLabControllerMode: the switch connects to flowspan's listener; mirror
// added, traffic copied, deleted, bridge released with forwarding intact.
func TestLabControllerMode(t *testing.T) {
	t.Parallel()
	e := newLabEnvMode(t, true)
	ctx := context.Background()
	spec := api.MirrorSpec{Name: "m1", Bridge: "br0", Ports: []string{"h1"}, Output: api.Output{Port: "mon0", Create: true}}
	mi, err := e.m.AddMirror(ctx, spec, api.OriginAPI)
	if err != nil {
		t.Fatal(err)
	}
	if mi.Status.State != api.StateActive {
		t.Fatalf("status %v", mi.Status)
	}
	if got := e.h1.Ping(t, e.h2.IPv4(), 2); got != 2 {
		t.Fatalf("forwarding in controller mode: %d/2 pings", got)
	}
	if got := e.udpCopies(t, "mon0", 5006, 4); got != 4 {
		t.Fatalf("controller mode: %d copies, want 4", got)
	}
	if err := e.m.DeleteMirror(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if out := e.l.MustVsctl(t, "get-controller", "br0"); strings.TrimSpace(out) != "" {
		t.Fatalf("bridge not released: controllers %q", out)
	}
	if out := e.l.MustVsctl(t, "get-fail-mode", "br0"); strings.TrimSpace(out) != "" {
		t.Fatalf("fail mode not restored: %q", out)
	}
	lab.Eventually(t, 5*time.Second, func() error {
		if got := e.h1.Ping(t, e.h2.IPv4(), 1); got != 1 {
			return fmt.Errorf("no forwarding after release")
		}
		return nil
	})
}

// TestLabTunnelOutput: a GRE output port is created (isolated) with the
// mirror and removed with it.
func TestLabTunnelOutput(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t)
	ctx := context.Background()
	spec := api.MirrorSpec{Name: "gre1", Bridge: "br0", Ingress: []string{"h1"},
		Output: api.Output{Tunnel: &api.Tunnel{Type: "gre", Remote: "192.0.2.10", Key: 7}}}
	mi, err := e.m.AddMirror(ctx, spec, api.OriginAPI)
	if err != nil {
		t.Fatal(err)
	}
	port := mi.Spec.Output.Port
	if mi.Status.State != api.StateActive || port == "" {
		t.Fatalf("mirror %+v", mi)
	}
	if out := e.l.MustVsctl(t, "get", "Interface", port, "type", "options"); !strings.Contains(out, "gre") || !strings.Contains(out, `remote_ip="192.0.2.10"`) || !strings.Contains(out, `key="7"`) {
		t.Fatalf("tunnel port %s: %s", port, out)
	}
	ofp := e.l.OFPort(t, port)
	fl, _ := e.m.Flows(ctx, "gre1")
	if !strings.Contains(strings.Join(fl, "\n"), fmt.Sprintf("output:%d", ofp)) {
		t.Fatalf("no flow outputs to the tunnel port %d:\n%s", ofp, strings.Join(fl, "\n"))
	}
	bad := spec
	bad.Name, bad.Output = "gre2", api.Output{Tunnel: &api.Tunnel{Type: "gre", Remote: "not-an-ip"}}
	if _, err := e.m.AddMirror(ctx, bad, api.OriginAPI); err == nil || !strings.Contains(err.Error(), "not-an-ip") {
		t.Fatalf("bad remote: %v", err)
	}
	if err := e.m.DeleteMirror(ctx, "gre1"); err != nil {
		t.Fatal(err)
	}
	if out, _ := e.l.Vsctl("list-ports", "br0"); strings.Contains(out, port) {
		t.Fatalf("tunnel port left: %s", out)
	}
}

// TestLabOvsdbRestart: after ovsdb-server restarts, mirrors keep working,
// the watch still follows port changes and new mirrors can be added.
func TestLabOvsdbRestart(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t)
	ctx := context.Background()
	spec := api.MirrorSpec{Name: "m1", Bridge: "br0", Ingress: []string{"h1"}, Output: api.Output{Port: "mon0", Create: true}}
	if _, err := e.m.AddMirror(ctx, spec, api.OriginAPI); err != nil {
		t.Fatal(err)
	}
	e.l.RestartOvsdb(t)
	e.l.MustVsctl(t, "del-port", "br0", "h1")
	waitStatus(t, e.m, "m1", "pending: port h1 missing")
	e.l.MustVsctl(t, "add-port", "br0", "h1")
	waitStatus(t, e.m, "m1", "active")
	spec2 := api.MirrorSpec{Name: "m2", Bridge: "br0", Egress: []string{"h1"}, Output: api.Output{Port: "mon0"}}
	var err error
	lab.Eventually(t, 10*time.Second, func() error {
		_, err = e.m.AddMirror(ctx, spec2, api.OriginAPI)
		return err
	})
	e.h1.Ping(t, e.h2.IPv4(), 1)
	if got := e.udpCopies(t, "mon0", 5007, 4); got != 4 {
		t.Fatalf("after ovsdb restart: %d copies, want 4", got)
	}
}

// TestLabTapSession: a tap created through the API (real Manager, real OVS)
// lives as long as its client connection: closing it removes the mirror, its
// flows and its port.
func TestLabTapSession(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t)
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := api.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- api.Serve(ctx, ln, api.NewHandler(e.m, api.HandlerConfig{})) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	c := api.NewClient(sock)
	defer c.Close()
	ts, err := c.Tap(context.Background(), api.MirrorSpec{Name: "tap-h1", Bridge: "br0", Ports: []string{"h1"},
		Output: api.Output{Port: "tap0", Create: true}})
	if err != nil {
		t.Fatal(err)
	}
	if ts.Mirror.Status.State != api.StateActive || ts.Mirror.Origin != api.OriginTap {
		t.Fatalf("tap mirror %+v", ts.Mirror)
	}
	e.h1.Ping(t, e.h2.IPv4(), 1)
	if got := e.udpCopies(t, "tap0", 5008, 3); got != 3 {
		t.Fatalf("tap copies: %d, want 3", got)
	}
	ts.Close()
	lab.Eventually(t, 5*time.Second, func() error {
		if _, err := e.m.Mirror(context.Background(), "tap-h1"); err == nil {
			return fmt.Errorf("tap mirror still defined")
		}
		if out, _ := e.l.Vsctl("list-ports", "br0"); strings.Contains(out, "tap0") {
			return fmt.Errorf("tap port still there")
		}
		fl, err := e.tryFlowspanFlows()
		if err != nil {
			return err
		}
		if len(fl) != 0 {
			return fmt.Errorf("%d flowspan flows left", len(fl))
		}
		return nil
	})
}

// TestLabAccessOutputLikeNative: an access-tagged output port gets no
// ordinary traffic of its VLAN while mirrored, and copies carry the same
// VLAN tags as the native Mirror's (the oracle, run first on the same
// traffic).
func TestLabAccessOutputLikeNative(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t)
	v1 := e.l.AddHost(t, "br0", "v1", lab.HostConfig{MAC: "02:00:00:00:00:21", IPv4: "10.0.20.1/24", Tag: 20})
	v2 := e.l.AddHost(t, "br0", "v2", lab.HostConfig{MAC: "02:00:00:00:00:22", IPv4: "10.0.20.2/24", Tag: 20})
	e.l.AddInternalPort(t, "br0", "mon20", 20)
	e.h1.Ping(t, e.h2.IPv4(), 1)
	v1.Ping(t, v2.IPv4(), 1)
	// A destination no port has: NORMAL floods it in VLAN 20, but never to
	// a mirror output.
	ghost := netip.MustParseAddr("10.0.20.99")
	v1.Neighbor(t, ghost, net.HardwareAddr{2, 0, 0, 0, 0, 0x99})
	// run sends the traffic and returns, per UDP destination port, the
	// VLAN tags of what mon20 received.
	run := func() map[uint16][]string {
		e.settle(t)
		c := e.l.Capture(t, "mon20")
		e.h1.SendUDP(t, e.h2.IPv4(), 4001, 5101, 64, 3) // selected (ingress h1), VLAN 0
		v1.SendUDP(t, ghost, 4002, 5102, 64, 3)         // not selected, flooded in VLAN 20
		out := map[uint16][]string{}
		for _, p := range c.Stop(t) {
			if p.DstPort == 5101 || p.DstPort == 5102 {
				out[p.DstPort] = append(out[p.DstPort], fmt.Sprint(p.VLANs))
			}
		}
		return out
	}
	e.l.AddNativeMirror(t, "br0", lab.NativeMirror{Name: "native", SelectSrc: []string{"h1"}, Output: "mon20"})
	native := run()
	e.l.DelNativeMirror(t, "br0", "native")
	if len(native[5101]) != 3 || len(native[5102]) != 0 {
		t.Fatalf("oracle: native mirror gave %v", native)
	}
	ctx := context.Background()
	if _, err := e.m.AddMirror(ctx, api.MirrorSpec{Name: "m1", Bridge: "br0", Ingress: []string{"h1"}, Output: api.Output{Port: "mon20"}}, api.OriginAPI); err != nil {
		t.Fatal(err)
	}
	got := run()
	if fmt.Sprint(got) != fmt.Sprint(native) {
		t.Fatalf("flowspan %v, native %v", got, native)
	}
	if err := e.m.DeleteMirror(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if tag := strings.TrimSpace(e.l.MustVsctl(t, "get", "Port", "mon20", "tag")); tag != "20" {
		t.Fatalf("mon20 tag after delete: %s", tag)
	}
}

// TestLabPortAddedJustBefore: "ovs-vsctl add-port" (or add-br) and, at
// once, a mirror on the new port: the Manager's OVSDB cache may not have
// the update yet, and the add must not fail with "not on bridge".
func TestLabPortAddedJustBefore(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t)
	ctx := context.Background()
	for i := range 8 {
		src, out := fmt.Sprintf("src%d", i), fmt.Sprintf("out%d", i)
		// --no-wait: ovs-vsctl returns as soon as the database committed,
		// before ovs-vswitchd (and the Manager's cache) saw the change.
		e.l.MustVsctl(t, "--no-wait", "add-port", "br0", src, "--", "set", "Interface", src, "type=internal",
			"--", "add-port", "br0", out, "--", "set", "Interface", out, "type=internal")
		name := fmt.Sprintf("m%d", i)
		if _, err := e.m.AddMirror(ctx, api.MirrorSpec{Name: name, Bridge: "br0", Ports: []string{src}, Output: api.Output{Port: out}}, api.OriginAPI); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		// It may start pending (no ofports yet at add time), and goes
		// active once ovs-vswitchd numbered the ports.
		lab.Eventually(t, 5*time.Second, func() error {
			mi, err := e.m.Mirror(ctx, name)
			if err != nil || mi.Status.State != api.StateActive {
				return fmt.Errorf("mirror %s: %v %v", name, mi.Status, err)
			}
			return nil
		})
		if err := e.m.DeleteMirror(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	e.l.AddBridge(t, "br1")
	e.l.AddInternalPort(t, "br1", "s1", 0)
	e.l.AddInternalPort(t, "br1", "o1", 0)
	if _, err := e.m.AddMirror(ctx, api.MirrorSpec{Name: "b1", Bridge: "br1", Ports: []string{"s1"}, Output: api.Output{Port: "o1"}}, api.OriginAPI); err != nil {
		t.Fatalf("new bridge: %v", err)
	}
	// A port that is really missing is still an error, after the sync.
	_, err := e.m.AddMirror(ctx, api.MirrorSpec{Name: "x", Bridge: "br0", Ports: []string{"nope"}, Output: api.Output{Port: "out0"}}, api.OriginAPI)
	if err == nil || !strings.Contains(err.Error(), `port "nope": not on bridge br0`) {
		t.Fatalf("missing port: %v", err)
	}
}

// TestLabSeededMACTable: flowspan takes over a bridge whose MAC table is
// warm. Known unicast h1→h2 is not the egress of the bystander h3 — as for
// the native Mirror — right away, before h2 sends again: the shadow MAC
// table was seeded from fdb/show (an empty one predicts a flood, 5 copies).
// Both ways to a bridge's first mirror: through the management socket (the
// default) and with Config.TakeOverFirst.
func TestLabSeededMACTable(t *testing.T) {
	for _, tc := range []struct {
		name          string
		takeOverFirst bool
	}{{"management socket", false}, {"take over first", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testSeededMACTable(t, newLabEnvWith(t, false, tc.takeOverFirst))
		})
	}
}

func testSeededMACTable(t *testing.T, e *labEnv) {
	ctx := context.Background()
	e.l.AddHost(t, "br0", "h3", lab.HostConfig{MAC: "02:00:00:00:00:03", IPv4: "10.0.0.3/24"})
	e.l.AddInternalPort(t, "br0", "mirror0", 0)
	mac2, _ := net.ParseMAC("02:00:00:00:00:02")
	e.h1.Neighbor(t, e.h2.IPv4(), mac2)
	if got := e.h2.Ping(t, e.h1.IPv4(), 1); got != 1 { // NORMAL learns h1 and h2
		t.Fatalf("warm-up ping: %d/1", got)
	}
	lab.Eventually(t, 5*time.Second, func() error {
		out, err := e.l.Appctl("fdb/show", "br0")
		if err != nil || !strings.Contains(out, "02:00:00:00:00:02") {
			return fmt.Errorf("h2 not learned: %v\n%s", err, out)
		}
		return nil
	})
	spec := api.MirrorSpec{Name: "m", Bridge: "br0", Egress: []string{"h3"}, Output: api.Output{Port: "mirror0"}}
	if _, err := e.m.AddMirror(ctx, spec, api.OriginAPI); err != nil {
		t.Fatal(err)
	}
	if via := e.addedEntry(t, "m").Data["via_management_socket"]; via != !e.takeOverFirst {
		t.Errorf("via_management_socket = %v, want %v", via, !e.takeOverFirst)
	}
	if got := e.udpCopies(t, "mirror0", 5002, 5); got != 0 {
		t.Fatalf("h1→h2 (known unicast) copied %d times as h3's egress, want 0 (as the native mirror)", got)
	}
	// Unknown unicast is still a flood, so h3's egress.
	mac9, _ := net.ParseMAC("02:00:00:00:00:09")
	ip9 := netip.MustParseAddr("10.0.0.9")
	e.h1.Neighbor(t, ip9, mac9)
	e.settle(t)
	c := e.l.Capture(t, "mirror0")
	e.h1.SendUDP(t, ip9, 40000, 5003, 64, 2)
	if got := len(lab.Filter(c.Stop(t), lab.UDPTo(5003))); got != 2 {
		t.Fatalf("unknown unicast copied %d times as h3's egress, want 2", got)
	}
}

// TestLabTakeOverSocketReady: the OVSDB adapter's TakeOver returns the
// passive target only once ovs-vswitchd listens on it, so the controller's
// first dial connects (an early dial fails and waits out its backoff).
func TestLabTakeOverSocketReady(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	ctx := context.Background()
	cl, err := ovsdb.Dial(ctx, l.DBEndpoint(), ovsdb.Config{Netns: l.Netns()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	a := NewOVSDB(cl, nil)
	for i := range 5 {
		br := fmt.Sprintf("br%d", i)
		l.AddBridge(t, br)
		lab.Eventually(t, 5*time.Second, func() error { _, err := a.Bridge(ctx, br); return err })
		target, err := a.TakeOver(ctx, br)
		if err != nil {
			t.Fatal(err)
		}
		path, ok := strings.CutPrefix(target, "unix:")
		if !ok {
			t.Fatalf("target %q: not unix:", target)
		}
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("%s: dialing %s right after TakeOver: %v", br, target, err)
		}
		c.Close()
		if err := a.Release(ctx, br); err != nil {
			t.Fatal(err)
		}
	}
}

// addedEntry returns the "mirror added" log entry of mirror name.
func (e *labEnv) addedEntry(t *testing.T, name string) *logrus.Entry {
	t.Helper()
	for _, en := range e.logs.AllEntries() {
		if en.Message == "mirror added" && en.Data["mirror"] == name {
			return en
		}
	}
	t.Fatalf("no \"mirror added\" entry for %s", name)
	return nil
}

// wantViaManagement fails unless mirror name was added (first logged add)
// through the management socket.
func (e *labEnv) wantViaManagement(t *testing.T, name string) {
	t.Helper()
	if en := e.addedEntry(t, name); en.Data["via_management_socket"] != true {
		t.Fatalf("%s: via_management_socket = %v, want true", name, en.Data["via_management_socket"])
	}
}

// wantCopies has h1 ping h2 once and fails unless output gets n copies of
// the UDP probes to dport.
func (e *labEnv) wantCopies(t *testing.T, output string, dport uint16, n int) {
	t.Helper()
	e.h1.Ping(t, e.h2.IPv4(), 1)
	if got := e.udpCopies(t, output, dport, n); got != n {
		t.Fatalf("copies on %s: %d, want %d", output, got, n)
	}
}

// The first mirror on a bridge goes in through the management socket. On a
// bridge already taken over, a new output port is isolated over
// OpenFlow (NO_FLOOD, NO_RECV) so the flows go in before the OVSDB
// isolation; once that is applied the port's OpenFlow config is back as it
// was. Where OpenFlow 1.0 is not allowed the OVSDB isolation comes first.
func TestLabWarmAddIsolatesOverOpenFlowFirst(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t)
	ctx := context.Background()
	for _, p := range []string{"mon", "mon2", "mon3"} {
		e.l.AddInternalPort(t, "br0", p, 0)
	}
	if _, err := e.m.AddMirror(ctx, api.MirrorSpec{Name: "other", Bridge: "br0", Ports: []string{"h2"}, Output: api.Output{Port: "mon2"}}, api.OriginAPI); err != nil {
		t.Fatal(err)
	}
	// The first mirror goes in through the management socket, isolated
	// over OpenFlow until the take-over isolated it in OVSDB; flowspan's
	// own connection then took over without another full sync.
	if en := e.addedEntry(t, "other"); en.Data["via_management_socket"] != true {
		t.Fatalf("first mirror: via_management_socket = %v, want true", en.Data["via_management_socket"])
	}
	if got := e.l.PortConfig10(t, "br0", "mon2"); got != "config:     0" {
		t.Fatalf("mon2's OpenFlow port config after the first add: %q, want 0 (restored)", got)
	}
	syncs, twoPhase := 0, false
	for _, en := range e.logs.AllEntries() {
		if en.Message == "full sync done" {
			syncs++
		}
		// mon2 never received a packet: the pipeline went in before the
		// MAC table was read.
		twoPhase = twoPhase || en.Message == "shadow MAC table seeded after the first copies"
	}
	if !twoPhase {
		t.Fatal("first mirror to a port that never received a packet: the pipeline waited for the MAC table")
	}
	if syncs != 1 {
		t.Fatalf("%d full syncs for the first mirror, want 1", syncs)
	}
	mi, err := e.m.AddMirror(ctx, api.MirrorSpec{Name: "m1", Bridge: "br0", Ports: []string{"h1"}, Output: api.Output{Port: "mon"}}, api.OriginAPI)
	if err != nil {
		t.Fatal(err)
	}
	if mi.Status.State != api.StateActive {
		t.Fatalf("status %v", mi.Status)
	}
	if en := e.addedEntry(t, "m1"); en.Data["isolated_over_openflow"] != true {
		t.Fatalf("warm add: isolated_over_openflow = %v, want true", en.Data["isolated_over_openflow"])
	}
	if got := e.l.PortConfig10(t, "br0", "mon"); got != "config:     0" {
		t.Fatalf("mon's OpenFlow port config after the add: %q, want 0 (restored)", got)
	}
	if tag := strings.TrimSpace(e.l.MustVsctl(t, "get", "Port", "mon", "tag")); tag != "4095" {
		t.Fatalf("mon's tag = %s, want the isolation VLAN 4095", tag)
	}
	e.wantCopies(t, "mon", 5002, 5)

	// Without OpenFlow 1.0 the add still works, isolating in OVSDB first.
	// The protocols change makes OVS re-initialize its connections: wait
	// for flowspan's full sync on the new one.
	mark := len(e.logs.AllEntries())
	e.l.MustVsctl(t, "set", "Bridge", "br0", "protocols=OpenFlow13")
	lab.Eventually(t, 10*time.Second, func() error {
		for _, en := range e.logs.AllEntries()[mark:] {
			if en.Message == "full sync done" {
				return nil
			}
		}
		return errors.New("no full sync after the protocols change")
	})
	if _, err := e.m.AddMirror(ctx, api.MirrorSpec{Name: "m3", Bridge: "br0", Egress: []string{"h2"}, Output: api.Output{Port: "mon3"}}, api.OriginAPI); err != nil {
		t.Fatal(err)
	}
	if en := e.addedEntry(t, "m3"); en.Data["isolated_over_openflow"] != false || en.Data["status"] != "active" {
		t.Fatalf("add without OpenFlow 1.0: isolated_over_openflow = %v, status %v; want false, active", en.Data["isolated_over_openflow"], en.Data["status"])
	}
	refused := false
	for _, en := range e.logs.AllEntries()[mark:] {
		if err, ok := en.Data[logrus.ErrorKey].(error); ok && errors.Is(err, ofctrl.ErrNoOpenFlow10) {
			refused = true
		}
	}
	if !refused {
		t.Fatal("the OpenFlow 1.0 isolation was not tried and refused")
	}
	if got := e.udpCopies(t, "mon3", 5003, 5); got != 5 {
		t.Fatalf("copies on mon3: %d, want 5", got)
	}
}

// PrepareIsolation opens the OpenFlow 1.0 connection ahead of time; the
// isolation then uses it, and closing the controller closes it.
func TestLabPrepareIsolation(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	l.AddInternalPort(t, "br0", "mon", 0)
	dpid := l.DatapathID(t, "br0")
	ctrl := ofctrl.New(ofctrl.Config{})
	oc := NewController(ctrl)
	defer func() { ctrl.Close(); <-oc.Done() }()
	target := "unix:" + filepath.Join(l.RunDir(), "br0.mgmt")
	oc.PrepareIsolation(target, dpid)
	lab.Eventually(t, 5*time.Second, func() error {
		oc.pmu.Lock()
		defer oc.pmu.Unlock()
		if oc.portConns[target] == nil {
			return errors.New("no prepared connection")
		}
		return nil
	})
	oc.pmu.Lock()
	prepared := oc.portConns[target]
	oc.pmu.Unlock()
	iso, err := oc.IsolateNow(context.Background(), target, dpid, uint32(l.OFPort(t, "mon")), true)
	if err != nil {
		t.Fatal(err)
	}
	if iso.RxErr != nil {
		t.Fatalf("receive count: %v", iso.RxErr)
	}
	// The count is the port's: at most what ovs-ofctl reports afterwards.
	out, err := l.Ofctl("dump-ports", "br0", "mon")
	if err != nil {
		t.Fatalf("dump-ports: %v: %s", err, out)
	}
	mm := regexp.MustCompile(`rx pkts=(\d+)`).FindStringSubmatch(out)
	if mm == nil {
		t.Fatalf("no rx count in %q", out)
	}
	if after, _ := strconv.ParseUint(mm[1], 10, 64); iso.RxPackets > after {
		t.Fatalf("IsolateNow's receive count %d, later ovs-ofctl dump-ports %d", iso.RxPackets, after)
	}
	oc.pmu.Lock()
	same := oc.portConns[target] == prepared
	oc.pmu.Unlock()
	if !same {
		t.Fatal("IsolateNow dialed again instead of using the prepared connection")
	}
	if got := l.PortConfig10(t, "br0", "mon"); !strings.Contains(got, "NO_FLOOD") {
		t.Fatalf("mon not isolated: %q", got)
	}
	if err := iso.Undo(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := l.PortConfig10(t, "br0", "mon"); strings.Contains(got, "NO_FLOOD") {
		t.Fatalf("mon still isolated after undo: %q", got)
	}
}

// A first mirror whose output port has received packets (so NORMAL may
// have learned MACs on it) waits for the MAC table: the unseeded first
// bundle is discarded unsent, and the seeded one goes in.
func TestLabColdAddOutputThatReceived(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t)
	h3 := e.l.AddHost(t, "br0", "h3", lab.HostConfig{MAC: "02:00:00:00:00:03", IPv4: "10.0.0.3/24"})
	if got := h3.Ping(t, e.h1.IPv4(), 1); got != 1 {
		t.Fatalf("h3 ping: %d replies", got)
	}
	if _, err := e.m.AddMirror(context.Background(), api.MirrorSpec{Name: "m", Bridge: "br0", Ports: []string{"h1"}, Output: api.Output{Port: "h3"}}, api.OriginAPI); err != nil {
		t.Fatal(err)
	}
	var waited, early bool
	syncs := 0
	for _, en := range e.logs.AllEntries() {
		waited = waited || en.Message == "the output may be in the bridge's MAC table: the pipeline waits for it"
		early = early || en.Message == "shadow MAC table seeded after the first copies"
		if en.Message == "full sync done" {
			syncs++
		}
	}
	if !waited || early || syncs != 1 {
		t.Fatalf("waited for the MAC table %v, unseeded first %v, %d full syncs; want true, false, 1", waited, early, syncs)
	}
	e.wantViaManagement(t, "m")
	e.wantCopies(t, "h3", 5004, 5)
}

// The OpenFlow 1.0 connection a warm add isolates its output on is ready
// before the add, also after the bridge was released and taken over again
// (its listener, and the connection with it, went away) and after
// ovs-vswitchd restarted: the add never dials, nor writes into a dead
// connection, while the first copy waits.
func TestLabIsolationConnectionFollowsTakeOver(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t)
	ctx := context.Background()
	oc := e.m.cfg.Controller.(*OFController)
	for _, p := range []string{"mon", "mon2"} {
		e.l.AddInternalPort(t, "br0", p, 0)
	}
	other := api.MirrorSpec{Name: "other", Bridge: "br0", Ports: []string{"h2"}, Output: api.Output{Port: "mon2"}}
	target := func() string {
		e.m.mu.Lock()
		defer e.m.mu.Unlock()
		return e.m.bridges["br0"].target
	}
	conn := func(tg string) *ofctrl.PortConn {
		oc.pmu.Lock()
		defer oc.pmu.Unlock()
		return oc.portConns[tg]
	}
	live := func(tg string) *ofctrl.PortConn {
		t.Helper()
		var pc *ofctrl.PortConn
		lab.Eventually(t, 5*time.Second, func() error {
			if pc = conn(tg); pc == nil || isDown(pc) {
				return fmt.Errorf("no live OpenFlow 1.0 connection to %s", tg)
			}
			return nil
		})
		return pc
	}
	if _, err := e.m.AddMirror(ctx, other, api.OriginAPI); err != nil {
		t.Fatal(err)
	}
	tg := target()
	first := live(tg)
	if err := e.m.DeleteMirror(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	select { // the bridge was released: its listener is gone
	case <-first.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the OpenFlow 1.0 connection to a released bridge's listener is still up")
	}
	if _, err := e.m.AddMirror(ctx, other, api.OriginAPI); err != nil {
		t.Fatal(err)
	}
	if target() != tg {
		t.Fatalf("listener %s after the second take-over, was %s", target(), tg)
	}
	warmAdd := func(name, port string) {
		t.Helper()
		pc := live(tg)
		if pc == first {
			t.Fatal("the connection to the released listener was kept")
		}
		if _, err := e.m.AddMirror(ctx, api.MirrorSpec{Name: name, Bridge: "br0", Ports: []string{port}, Output: api.Output{Port: "mon"}}, api.OriginAPI); err != nil {
			t.Fatal(err)
		}
		if en := e.addedEntry(t, name); en.Data["isolated_over_openflow"] != true {
			t.Fatalf("%s: isolated_over_openflow = %v, want true", name, en.Data["isolated_over_openflow"])
		}
		if conn(tg) != pc {
			t.Fatalf("%s: the add dialled a new OpenFlow 1.0 connection instead of using the one ready", name)
		}
	}
	warmAdd("m1", "h1")
	if err := e.m.DeleteMirror(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	e.l.RestartVswitchd(t)
	lab.Eventually(t, 10*time.Second, func() error {
		if _, err := e.m.cfg.Controller.Switch(e.l.DatapathID(t, "br0")); !err {
			return errors.New("switch not connected again")
		}
		return nil
	})
	waitStatus(t, e.m, "other", "active")
	warmAdd("m2", "h1")
	e.wantCopies(t, "mon", 5002, 5)
}

// A first mirror whose output never received a packet still waits for the
// MAC table when the table has static entries (one could be on the
// output): the check asks ovs-vswitchd's control socket, started before the
// management session opens.
func TestLabColdAddWithStaticMACs(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t)
	e.l.AddInternalPort(t, "br0", "mon", 0)
	if out, err := e.l.Appctl("fdb/add", "br0", "mon", "0", "02:00:00:00:00:99"); err != nil {
		t.Fatalf("fdb/add: %v: %s", err, out)
	}
	if _, err := e.m.AddMirror(context.Background(), api.MirrorSpec{Name: "m", Bridge: "br0", Ports: []string{"h1"}, Output: api.Output{Port: "mon"}}, api.OriginAPI); err != nil {
		t.Fatal(err)
	}
	waited := false
	for _, en := range e.logs.AllEntries() {
		waited = waited || en.Message == "the output may be in the bridge's MAC table: the pipeline waits for it"
	}
	if !waited {
		t.Fatal("bridge with a static MAC entry on the output: the unseeded pipeline went in first")
	}
	e.wantViaManagement(t, "m")
	e.wantCopies(t, "mon", 5004, 5)
}

// A bridge's management session outlives the add that opened it: the next
// first mirror on the bridge (after a release) goes in through the same
// session, without opening one; a session that ended (ovs-vswitchd
// restarted) or whose bridge changed its datapath id is not used again.
func TestLabColdSessionKept(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t)
	ctx := context.Background()
	e.l.AddInternalPort(t, "br0", "mon", 0)
	opened := func() int {
		n := 0
		for _, en := range e.logs.AllEntries() {
			if en.Message == "session opened" {
				n++
			}
		}
		return n
	}
	round := func(name string, wantOpened int) {
		t.Helper()
		if _, err := e.m.AddMirror(ctx, api.MirrorSpec{Name: name, Bridge: "br0", Ports: []string{"h1"}, Output: api.Output{Port: "mon"}}, api.OriginAPI); err != nil {
			t.Fatal(err)
		}
		e.wantViaManagement(t, name)
		if got := opened(); got != wantOpened {
			t.Fatalf("%s: %d sessions opened so far, want %d", name, got, wantOpened)
		}
		e.wantCopies(t, "mon", 5002, 3)
		if err := e.m.DeleteMirror(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	round("m1", 1)
	round("m2", 1) // the same session
	mgmt := "unix:" + filepath.Join(e.l.RunDir(), "br0.mgmt")
	oc := e.m.cfg.Controller.(*OFController)
	e.l.RestartVswitchd(t)
	lab.Eventually(t, 10*time.Second, func() error {
		// The add looks for the socket; the kept session must have seen
		// its end (an add racing that falls back to taking the bridge
		// over first: TestColdAddSessionLostTakesOverFirst).
		if fi, err := os.Stat(filepath.Join(e.l.RunDir(), "br0.mgmt")); err != nil || fi.Mode().Type() != os.ModeSocket {
			return errors.New("no management socket yet")
		}
		oc.pmu.Lock()
		defer oc.pmu.Unlock()
		if s := oc.sessions[mgmt]; s != nil && s.sw.Connected() {
			return errors.New("kept session still up")
		}
		return nil
	})
	round("m3", 2) // the old session ended with ovs-vswitchd
	e.l.MustVsctl(t, "set", "Bridge", "br0", "other_config:datapath-id=00000000000000aa")
	lab.Eventually(t, 10*time.Second, func() error { // as the Manager sees it
		if f, err := e.m.cfg.OVSDB.Bridge(ctx, "br0"); err != nil || f.DatapathID != 0xaa {
			return fmt.Errorf("datapath id %x (%v)", f.DatapathID, err)
		}
		return nil
	})
	round("m4", 3) // OVS dropped the session with the datapath id change (DialSession would not reuse it either)
}

// A first mirror on a bridge that refuses OpenFlow 1.0 (no isolation over
// OpenFlow) takes the bridge over first: the session's bundle, sent while
// the isolation was tried, is never committed.
func TestLabColdAddWithoutOpenFlow10(t *testing.T) {
	t.Parallel()
	e := newLabEnv(t)
	e.l.AddInternalPort(t, "br0", "mon", 0)
	e.l.MustVsctl(t, "set", "Bridge", "br0", "protocols=OpenFlow13")
	if _, err := e.m.AddMirror(context.Background(), api.MirrorSpec{Name: "m", Bridge: "br0", Ports: []string{"h1"}, Output: api.Output{Port: "mon"}}, api.OriginAPI); err != nil {
		t.Fatal(err)
	}
	if en := e.addedEntry(t, "m"); en.Data["via_management_socket"] != false || en.Data["status"] != "active" {
		t.Fatalf("via_management_socket = %v, status %v; want false, active", en.Data["via_management_socket"], en.Data["status"])
	}
	fellBack := false
	for _, en := range e.logs.AllEntries() {
		fellBack = fellBack || en.Message == "isolating the output over OpenFlow failed: taking the bridge over first"
	}
	if !fellBack {
		t.Fatal("no fallback logged")
	}
	e.wantCopies(t, "mon", 5004, 5)
}

// macProbe is a MAC table reader that runs probe before each read.
type macProbe struct {
	MACTableReader
	probe func()
}

func (p macProbe) FDBShow(ctx context.Context, bridge string) (string, error) {
	p.probe()
	return p.MACTableReader.FDBShow(ctx, bridge)
}

func (p macProbe) StaticMACs(ctx context.Context, bridge string) (int, error) {
	return p.MACTableReader.(StaticMACCounter).StaticMACs(ctx, bridge)
}

// A first mirror to an output that never received a packet reads the MAC
// table only after its first bundle is in and Config.FirstCopyGrace has
// passed (a large table's dump holds up ovs-vswitchd's main loop, which
// also turns the packets waiting for the new flows into first copies), and
// after the output is isolated (it learns nothing later). The take-over
// waits for the grace too.
func TestLabColdAddReadsMACTableAfterFirstCopies(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		reads []time.Time
	)
	const grace = 40 * time.Millisecond
	e := newLabEnvOpts(t, func(e *labEnv) {
		e.grace = grace
		e.wrapMACs = func(r MACTableReader) MACTableReader {
			return macProbe{r, func() {
				mu.Lock()
				defer mu.Unlock()
				reads = append(reads, time.Now())
			}}
		}
	})
	e.l.AddInternalPort(t, "br0", "mon", 0)
	if _, err := e.m.AddMirror(context.Background(), api.MirrorSpec{Name: "m", Bridge: "br0", Ports: []string{"h1"}, Output: api.Output{Port: "mon"}}, api.OriginAPI); err != nil {
		t.Fatal(err)
	}
	e.wantViaManagement(t, "m")
	var isolated, synced, tookOver time.Time
	for _, en := range e.logs.AllEntries() {
		switch {
		case en.Message == "port config set (OpenFlow 1.0)" && en.Data["config"] == "0x14" && isolated.IsZero():
			isolated = en.Time
		case en.Message == "full sync done" && synced.IsZero():
			synced = en.Time // the unseeded pipeline is in
		case en.Message == "bridge handed over to flowspan" && tookOver.IsZero():
			tookOver = en.Time
		}
	}
	if tookOver.Sub(synced) < grace {
		t.Fatalf("take-over done %v after the first bundle, want at least the grace %v", tookOver.Sub(synced), grace)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reads) == 0 || isolated.IsZero() || synced.IsZero() {
		t.Fatalf("%d MAC table reads, isolated at %v, first full sync at %v", len(reads), isolated, synced)
	}
	if reads[0].Before(isolated) || reads[0].Sub(synced) < grace {
		t.Fatalf("MAC table read at %s, output isolated at %s, first bundle in at %s: the read must come last",
			reads[0].Format("15:04:05.000000"), isolated.Format("15:04:05.000000"), synced.Format("15:04:05.000000"))
	}
}
