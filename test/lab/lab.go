package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// T is the part of testing.TB a Lab uses. *testing.T and *testing.B
// satisfy it; a program (a demo) can implement it too.
type T interface {
	Helper()
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Cleanup(func())
	Failed() bool
}

// Timeout bounds every OVS command and every wait of the lab.
const Timeout = 20 * time.Second

// SchemaPath is where Debian's openvswitch-common puts the vswitchd schema.
const SchemaPath = "/usr/share/openvswitch/vswitch.ovsschema"

// Lab is one private Open vSwitch with its hosts.
type Lab struct {
	t     T
	dir   string
	netns string
	id    string

	mu       sync.Mutex
	ovsdb    *exec.Cmd
	vswitchd *exec.Cmd
	hosts    map[string]*Host // by port name
	bridges  []string
	cleanups []func()
}

// Require checks that the machine can run labs: root, Open vSwitch,
// tcpdump, iproute2. Outside CI it skips the test when they are missing;
// under CI=true it fails it.
func Require(t T) {
	t.Helper()
	if f := flag.Lookup("test.short"); f != nil && f.Value.String() == "true" {
		t.Skipf("lab: integration test against a real Open vSwitch; skipped by -short (make test-unit)")
	}
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, bin := range []string{"ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl", "ovsdb-tool", "ip", "tcpdump", "ping", "ethtool"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if _, err := os.Stat(SchemaPath); err != nil {
		missing = append(missing, SchemaPath)
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("lab: this test needs a real Open vSwitch; missing: %s (run `make deps` as root)", strings.Join(missing, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s", msg)
	}
	t.Skipf("%s", msg)
}

// New starts a private ovsdb-server and ovs-vswitchd and registers their
// removal with t.Cleanup.
func New(t T) *Lab {
	t.Helper()
	Require(t)
	id := randomHex(4)
	dir, err := os.MkdirTemp("", "fsl")
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	l := &Lab{t: t, dir: dir, netns: "fsl-" + id, id: id, hosts: map[string]*Host{}}
	t.Cleanup(l.cleanup)
	if err := l.start(); err != nil {
		t.Fatalf("lab: %v", err)
	}
	return l
}

func (l *Lab) start() error {
	if _, err := run(context.Background(), nil, "ip", "netns", "add", l.netns); err != nil {
		return err
	}
	// Silence internal ports: no IPv6 (no MLD, no router solicitations).
	for _, k := range []string{"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"} {
		if _, err := l.inNetns(l.netns, "sysctl", "-qw", k); err != nil {
			return err
		}
	}
	if _, err := l.inNetns(l.netns, "ip", "link", "set", "lo", "up"); err != nil {
		return err
	}
	if _, err := run(context.Background(), nil, "ovsdb-tool", "create", l.dbFile(), SchemaPath); err != nil {
		return err
	}
	if err := l.startOvsdb(); err != nil {
		return err
	}
	if _, err := l.Vsctl("--no-wait", "init"); err != nil {
		return err
	}
	return l.startVswitchd()
}

// Dir is the lab's private directory (OVS_RUNDIR, OVS_DBDIR, OVS_LOGDIR and
// OVS_SYSCONFDIR all point at it).
func (l *Lab) Dir() string { return l.dir }

// RunDir is the OVS run directory: <RunDir>/<bridge>.mgmt exists for each
// bridge, and OVS accepts punix: controller targets <RunDir>/<bridge>.*.
func (l *Lab) RunDir() string { return l.dir }

// DBSocket is the path of ovsdb-server's unix socket.
func (l *Lab) DBSocket() string { return filepath.Join(l.dir, "db.sock") }

// DBEndpoint is "unix:" + DBSocket().
func (l *Lab) DBEndpoint() string { return "unix:" + l.DBSocket() }

// Netns is the name of the network namespace ovs-vswitchd runs in.
func (l *Lab) Netns() string { return l.netns }

// Env is the environment OVS tools need to reach this lab.
func (l *Lab) Env() []string {
	return append(os.Environ(),
		"OVS_RUNDIR="+l.dir, "OVS_DBDIR="+l.dir, "OVS_LOGDIR="+l.dir,
		"OVS_SYSCONFDIR="+l.dir, "OVS_PKGDATADIR=/usr/share/openvswitch")
}

func (l *Lab) dbFile() string         { return filepath.Join(l.dir, "conf.db") }
func (l *Lab) vswitchdCtl() string    { return filepath.Join(l.dir, "ovs-vswitchd.ctl") }
func (l *Lab) ovsdbCtl() string       { return filepath.Join(l.dir, "ovsdb-server.ctl") }
func (l *Lab) vswitchdLog() string    { return filepath.Join(l.dir, "ovs-vswitchd.log") }
func (l *Lab) ovsdbLog() string       { return filepath.Join(l.dir, "ovsdb-server.log") }
func (l *Lab) VswitchdLog() string    { return l.vswitchdLog() }
func (l *Lab) OvsdbServerLog() string { return l.ovsdbLog() }

func (l *Lab) startOvsdb() error {
	cmd := exec.Command("ovsdb-server", l.dbFile(),
		"--remote=punix:"+l.DBSocket(),
		"--unixctl="+l.ovsdbCtl(),
		"--log-file="+l.ovsdbLog(),
		"--pidfile="+filepath.Join(l.dir, "ovsdb-server.pid"))
	cmd.Env = l.Env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ovsdb-server: %w", err)
	}
	l.mu.Lock()
	l.ovsdb = cmd
	l.mu.Unlock()
	// The socket file appears at bind(), a moment before listen(): wait
	// until a connection is accepted.
	return waitFor(func() bool {
		c, err := net.Dial("unix", l.DBSocket())
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "ovsdb-server socket "+l.DBSocket())
}

func (l *Lab) startVswitchd() error {
	// `ip netns exec` execs ovs-vswitchd, so cmd.Process is vswitchd itself.
	cmd := exec.Command("ip", "netns", "exec", l.netns, "ovs-vswitchd", l.DBEndpoint(),
		"--unixctl="+l.vswitchdCtl(),
		"--log-file="+l.vswitchdLog(),
		"--pidfile="+filepath.Join(l.dir, "ovs-vswitchd.pid"))
	cmd.Env = l.Env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ovs-vswitchd: %w", err)
	}
	l.mu.Lock()
	l.vswitchd = cmd
	l.mu.Unlock()
	if err := waitFor(func() bool { _, err := l.Appctl("version"); return err == nil }, "ovs-vswitchd control socket"); err != nil {
		return err
	}
	// A no-op transaction without --no-wait returns once vswitchd has
	// caught up with the database.
	_, err := l.Vsctl("set", "Open_vSwitch", ".", "external_ids:lab="+l.id)
	return err
}

func stopProcess(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// StopVswitchd stops ovs-vswitchd (SIGTERM). The datapath goes with it:
// nothing is forwarded until StartVswitchd.
func (l *Lab) StopVswitchd(t T) {
	t.Helper()
	l.mu.Lock()
	cmd := l.vswitchd
	l.vswitchd = nil
	l.mu.Unlock()
	stopProcess(cmd)
}

// StartVswitchd starts ovs-vswitchd again after StopVswitchd.
func (l *Lab) StartVswitchd(t T) {
	t.Helper()
	if err := l.startVswitchd(); err != nil {
		t.Fatalf("lab: %v", err)
	}
}

// RestartVswitchd stops and starts ovs-vswitchd. Its flow tables are
// lost; the database, bridges, ports and hosts stay.
func (l *Lab) RestartVswitchd(t T) {
	t.Helper()
	l.StopVswitchd(t)
	l.StartVswitchd(t)
}

// RestartOvsdb stops and starts ovsdb-server on the same database file
// and socket. Clients see their connection drop.
func (l *Lab) RestartOvsdb(t T) {
	t.Helper()
	l.mu.Lock()
	cmd := l.ovsdb
	l.ovsdb = nil
	l.mu.Unlock()
	stopProcess(cmd)
	_ = os.Remove(l.DBSocket())
	if err := l.startOvsdb(); err != nil {
		t.Fatalf("lab: %v", err)
	}
}

// Vsctl runs ovs-vsctl against this lab's database, with a timeout.
func (l *Lab) Vsctl(args ...string) (string, error) {
	a := append([]string{"--timeout=20", "--db=" + l.DBEndpoint()}, args...)
	return run(context.Background(), l.Env(), "ovs-vsctl", a...)
}

// MustVsctl is Vsctl that fails the test on error.
func (l *Lab) MustVsctl(t T, args ...string) string {
	t.Helper()
	out, err := l.Vsctl(args...)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	return out
}

// Ofctl runs ovs-ofctl against this lab's vswitchd (bridge names resolve
// to <RunDir>/<bridge>.mgmt). Pass "-O", "OpenFlow13" where needed.
func (l *Lab) Ofctl(args ...string) (string, error) {
	a := append([]string{"--timeout=20"}, args...)
	return run(context.Background(), l.Env(), "ovs-ofctl", a...)
}

// DatapathID returns bridge's datapath id as OVSDB reports it.
func (l *Lab) DatapathID(t T, bridge string) uint64 {
	t.Helper()
	out := strings.Trim(strings.TrimSpace(l.MustVsctl(t, "get", "Bridge", bridge, "datapath_id")), `"`)
	dpid, err := strconv.ParseUint(out, 16, 64)
	if err != nil {
		t.Fatalf("bridge %s: datapath_id %q: %v", bridge, out, err)
	}
	return dpid
}

// PortConfig10 returns the "config:" line of port on bridge as
// `ovs-ofctl -O OpenFlow10 show` prints it (OpenFlow 1.0 shows NO_FLOOD,
// which later versions lack), e.g. "config:     NO_RECV NO_FLOOD".
func (l *Lab) PortConfig10(t T, bridge, port string) string {
	t.Helper()
	show, err := l.Ofctl("-O", "OpenFlow10", "show", bridge)
	if err != nil {
		t.Fatalf("ovs-ofctl show %s: %v: %s", bridge, err, show)
	}
	lines := strings.Split(show, "\n")
	for i, ln := range lines {
		if strings.Contains(ln, "("+port+"):") && i+1 < len(lines) {
			return strings.TrimSpace(lines[i+1])
		}
	}
	t.Fatalf("port %s not in:\n%s", port, show)
	return ""
}

// Appctl runs ovs-appctl against this lab's ovs-vswitchd.
func (l *Lab) Appctl(args ...string) (string, error) {
	a := append([]string{"--timeout=20", "-t", l.vswitchdCtl()}, args...)
	return run(context.Background(), l.Env(), "ovs-appctl", a...)
}

// DumpFlows returns `ovs-ofctl -O OpenFlow13 dump-flows BRIDGE`.
func (l *Lab) DumpFlows(t T, bridge string) string {
	t.Helper()
	out, err := l.Ofctl("-O", "OpenFlow13", "dump-flows", bridge)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	return out
}

// AddBridge creates a bridge with datapath_type=netdev, forwarding with
// the default NORMAL flow.
func (l *Lab) AddBridge(t T, name string) {
	t.Helper()
	l.MustVsctl(t, "add-br", name, "--", "set", "Bridge", name, "datapath_type=netdev",
		"other_config:disable-in-band=true")
	l.mu.Lock()
	l.bridges = append(l.bridges, name)
	l.mu.Unlock()
}

// AddInternalPort adds an internal port (a tap device in the vswitchd
// namespace), brings it up, and gives it an access tag when tag > 0.
func (l *Lab) AddInternalPort(t T, bridge, name string, tag int) {
	t.Helper()
	args := []string{"add-port", bridge, name}
	if tag > 0 {
		args = append(args, fmt.Sprintf("tag=%d", tag))
	}
	args = append(args, "--", "set", "Interface", name, "type=internal")
	l.MustVsctl(t, args...)
	if _, err := l.inNetns(l.netns, "ip", "link", "set", "dev", name, "up"); err != nil {
		t.Fatalf("lab: %v", err)
	}
}

// OFPort returns the OpenFlow port number OVS assigned to an interface,
// waiting until it has one.
func (l *Lab) OFPort(t T, iface string) int {
	t.Helper()
	var port int
	err := waitFor(func() bool {
		out, err := l.Vsctl("get", "Interface", iface, "ofport")
		if err != nil {
			return false
		}
		_, err = fmt.Sscanf(out, "%d", &port)
		return err == nil && port > 0
	}, "ofport of "+iface)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	return port
}

// Bridges lists the bridges created with AddBridge.
func (l *Lab) Bridges() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.bridges...)
}

// inNetns runs a command in a network namespace.
func (l *Lab) inNetns(ns string, name string, args ...string) (string, error) {
	a := append([]string{"netns", "exec", ns, name}, args...)
	return run(context.Background(), l.Env(), "ip", a...)
}

func (l *Lab) onCleanup(f func()) {
	l.mu.Lock()
	l.cleanups = append(l.cleanups, f)
	l.mu.Unlock()
}

func (l *Lab) dumpOnFailure() {
	t := l.t
	for _, br := range l.Bridges() {
		out, err := l.Ofctl("-O", "OpenFlow13", "dump-flows", br)
		t.Logf("lab %s: ovs-ofctl -O OpenFlow13 dump-flows %s (err=%v):\n%s", l.id, br, err, out)
	}
	out, err := l.Vsctl("show")
	t.Logf("lab %s: ovs-vsctl show (err=%v):\n%s", l.id, err, out)
	t.Logf("lab %s: ovs-vswitchd log tail:\n%s", l.id, tail(l.vswitchdLog(), 40))
}

func (l *Lab) cleanup() {
	if l.t.Failed() {
		l.dumpOnFailure()
	}
	l.mu.Lock()
	cleanups := l.cleanups
	l.cleanups = nil
	hosts := l.hosts
	l.hosts = map[string]*Host{}
	vsd, db := l.vswitchd, l.ovsdb
	l.vswitchd, l.ovsdb = nil, nil
	l.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	for _, h := range hosts {
		if _, err := run(context.Background(), nil, "ip", "netns", "del", h.netns); err != nil {
			l.t.Logf("lab: %v", err)
		}
	}
	stopProcess(vsd)
	stopProcess(db)
	if _, err := run(context.Background(), nil, "ip", "netns", "del", l.netns); err != nil {
		l.t.Logf("lab: %v", err)
	}
	if err := os.RemoveAll(l.dir); err != nil {
		l.t.Logf("lab: %v", err)
	}
}

// Leftovers reports what a finished lab left behind: its namespaces, its
// directory, and running processes started by it. Empty means clean.
func (l *Lab) Leftovers() []string {
	var left []string
	out, _ := run(context.Background(), nil, "ip", "netns", "list")
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, l.id) {
			left = append(left, "netns "+strings.Fields(line)[0])
		}
	}
	if _, err := os.Stat(l.dir); err == nil {
		left = append(left, "dir "+l.dir)
	}
	procs, _ := run(context.Background(), nil, "pgrep", "-a", "-f", l.dir)
	for _, p := range strings.Split(strings.TrimSpace(procs), "\n") {
		if p != "" {
			left = append(left, "process "+p)
		}
	}
	return left
}

// run executes a command and returns its stdout; the error includes the
// command line and stderr.
func run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout+5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = env
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// waitFor polls cond until it holds or Timeout passes.
func waitFor(cond func() bool, what string) error {
	deadline := time.Now().Add(Timeout)
	for delay := 5 * time.Millisecond; ; delay = min(delay*2, 200*time.Millisecond) {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", Timeout, what)
		}
		time.Sleep(delay)
	}
}

// Eventually polls cond until it returns nil or timeout passes, then fails
// the test with cond's last error.
func Eventually(t T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for delay := 10 * time.Millisecond; ; delay = min(delay*2, 250*time.Millisecond) {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lab: still failing after %v: %v", timeout, err)
		}
		time.Sleep(delay)
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails since Go 1.24
	return hex.EncodeToString(b)
}
