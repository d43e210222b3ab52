package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowspan/flowspan/api"
	"github.com/flowspan/flowspan/test/lab"
)

// flowspanBin is the binary built once by TestMain.
var flowspanBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "fse2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	flowspanBin = filepath.Join(dir, "flowspan")
	cmd := exec.Command("go", "build", "-o", flowspanBin, "github.com/flowspan/flowspan/cmd/flowspan")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building flowspan:", err)
		return 1
	}
	return m.Run()
}

// result is what one CLI invocation did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// flowspan runs the CLI with --api addr (through FLOWSPAN_API, so that every
// command gets it the way scripts set it) and returns what it did.
func flowspan(t *testing.T, apiAddr string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, flowspanBin, args...)
	cmd.Env = append(os.Environ(), "FLOWSPAN_API="+apiAddr)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := result{stdout: o.String(), stderr: e.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("flowspan %q: %v", args, err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

// mustFlowspan runs the CLI and fails the test unless it exits 0.
func mustFlowspan(t *testing.T, apiAddr string, args ...string) string {
	t.Helper()
	r := flowspan(t, apiAddr, args...)
	if r.code != 0 {
		t.Fatalf("flowspan %s: %v", strings.Join(args, " "), r)
	}
	return r.stdout
}

// daemon is a running "flowspan serve".
type daemon struct {
	t      *testing.T
	lab    *lab.Lab
	dir    string
	api    string
	state  string
	extra  []string
	cmd    *exec.Cmd
	out    *lab.Buffer
	exited chan error
}

// env is a lab with a bridge, hosts and a flowspan daemon.
type env struct {
	t   *testing.T
	lab *lab.Lab
	d   *daemon
	api string
	dir string
}

// newEnv starts a lab with bridge br0 and the daemon (not yet managing any
// bridge: flowspan only takes over bridges that have mirrors).
func newEnv(t *testing.T, serveArgs ...string) *env {
	t.Helper()
	return newEnvFunc(t, func(*lab.Lab) []string { return serveArgs })
}

// newEnvFunc is newEnv with serve arguments that depend on the lab.
func newEnvFunc(t *testing.T, serveArgs func(l *lab.Lab) []string) *env {
	t.Helper()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	// Short path: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "fse2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &env{t: t, lab: l, dir: dir, api: "unix:" + filepath.Join(dir, "api.sock")}
	e.d = &daemon{t: t, lab: l, dir: dir, api: e.api, state: filepath.Join(dir, "state.json"), extra: serveArgs(l)}
	e.d.start()
	t.Cleanup(func() {
		e.d.stop()
		if t.Failed() {
			t.Logf("flowspan serve output:\n%s", e.d.out.String())
		}
	})
	return e
}

func (e *env) fs(args ...string) result { e.t.Helper(); return flowspan(e.t, e.api, args...) }

func (e *env) must(args ...string) string { e.t.Helper(); return mustFlowspan(e.t, e.api, args...) }

// start runs flowspan serve and waits until its API answers.
func (d *daemon) start() {
	t := d.t
	t.Helper()
	args := append([]string{"serve", "--ovsdb", d.lab.DBEndpoint(), "--api", d.api, "--state", d.state,
		"--metrics", ""}, d.extra...)
	d.cmd = exec.Command(flowspanBin, args...)
	d.cmd.Env = os.Environ()
	if d.out == nil {
		d.out = &lab.Buffer{}
	}
	fmt.Fprintf(d.out, "=== flowspan %s\n", strings.Join(args, " "))
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("flowspan serve: %v", err)
	}
	d.exited = make(chan error, 1)
	go func(cmd *exec.Cmd, ch chan error) { ch <- cmd.Wait() }(d.cmd, d.exited)
	c := api.NewClient(d.api)
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Version(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case err := <-d.exited:
			d.exited <- err
			t.Fatalf("flowspan serve exited before its API answered: %v\n%s", err, d.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("flowspan serve: API %s not answering after 20s: %v\n%s", d.api, err, d.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signal sends sig and waits for the daemon to exit; it returns the exit error.
func (d *daemon) signal(sig syscall.Signal) error {
	d.t.Helper()
	if d.cmd == nil {
		return nil
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case err := <-d.exited:
		d.cmd = nil
		return err
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		err := <-d.exited
		d.cmd = nil
		d.t.Errorf("flowspan serve did not exit within 20s of %v", sig)
		return err
	}
}

// stop terminates the daemon cleanly (SIGTERM) and checks it exits 0.
func (d *daemon) stop() {
	d.t.Helper()
	if d.cmd == nil {
		return
	}
	if err := d.signal(syscall.SIGTERM); err != nil {
		d.t.Errorf("flowspan serve after SIGTERM: %v", err)
	}
}

// kill kills the daemon with SIGKILL.
func (d *daemon) kill() {
	d.t.Helper()
	_ = d.signal(syscall.SIGKILL)
}

// host adds a host with a fixed address 10.0.0.N and MAC 02:00:00:00:00:N.
func (e *env) host(name string, n int, cfg lab.HostConfig) *lab.Host {
	e.t.Helper()
	cfg.MAC = fmt.Sprintf("02:00:00:00:00:%02x", n)
	if cfg.IPv4 == "" {
		cfg.IPv4 = fmt.Sprintf("10.0.0.%d/24", n)
	}
	return e.lab.AddHost(e.t, "br0", name, cfg)
}

// hosts adds h1..hn and fills every host's neighbour table, so traffic
// needs no ARP first and counts are exact.
func (e *env) hosts(n int) []*lab.Host {
	e.t.Helper()
	var hs []*lab.Host
	for i := 1; i <= n; i++ {
		hs = append(hs, e.host(fmt.Sprintf("h%d", i), i, lab.HostConfig{}))
	}
	neighbors(e.t, hs)
	return hs
}

func neighbors(t *testing.T, hs []*lab.Host) {
	t.Helper()
	for _, a := range hs {
		for _, b := range hs {
			if a != b && b.IPv4().IsValid() && a.IPv4().IsValid() {
				a.Neighbor(t, b.IPv4(), b.MAC())
			}
		}
	}
}

// learn makes the bridge learn every host's MAC (one broadcast-free round
// of pings), so that later unicast is not flooded.
func (e *env) learn(hs []*lab.Host) {
	e.t.Helper()
	for i := 1; i < len(hs); i++ {
		pingExact(e.t, hs[0], hs[i].IPv4(), 1)
	}
}

// outputPort adds an internal port for mirror copies, up in the vswitchd
// namespace so that captures see what OVS sends to it.
func (e *env) outputPort(name string) {
	e.t.Helper()
	e.lab.AddInternalPort(e.t, "br0", name, 0)
}

// linkUp brings an internal port up again, waiting for the device (after
// vswitchd restarts OVS recreates internal ports as down tap devices).
func (e *env) linkUp(name string) {
	e.t.Helper()
	lab.Eventually(e.t, 10*time.Second, func() error {
		out, err := exec.Command("ip", "netns", "exec", e.lab.Netns(), "ip", "link", "set", "dev", name, "up").CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip link set %s up: %v: %s", name, err, out)
		}
		return nil
	})
}

// stats returns a mirror's counters through the CLI's JSON output.
func (e *env) stats(name string) api.MirrorStats {
	e.t.Helper()
	out := e.must("mirror", "stats", name, "-o", "json")
	var st api.MirrorStats
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		e.t.Fatalf("mirror stats %s -o json: %v: %q", name, err, out)
	}
	return st
}

// list returns the mirrors through the CLI's JSON output.
func (e *env) list() []api.Mirror {
	e.t.Helper()
	out := e.must("mirror", "list", "-o", "json")
	var l api.MirrorList
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		e.t.Fatalf("mirror list -o json: %v: %q", err, out)
	}
	return l.Mirrors
}

// mirror returns one mirror through "mirror show -o json".
func (e *env) mirror(name string) api.Mirror {
	e.t.Helper()
	out := e.must("mirror", "show", name, "-o", "json")
	var m api.Mirror
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		e.t.Fatalf("mirror show %s -o json: %v: %q", name, err, out)
	}
	return m
}

// waitActive waits until mirror name reports state active.
func (e *env) waitActive(name string) {
	e.t.Helper()
	lab.Eventually(e.t, 10*time.Second, func() error {
		if m := e.mirror(name); m.Status.State != api.StateActive {
			return fmt.Errorf("mirror %s: status %s, want active", name, m.Status)
		}
		return nil
	})
}

var (
	flowCounters = regexp.MustCompile(`\s*(duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]+,?`)
	flowCookie   = regexp.MustCompile(`\s*cookie=0x[0-9a-f]+,?`)
)

// flowSet returns br0's flows without counters, ages and cookies (a new
// generation changes cookies), sorted: what "the same flow set" compares.
// Flows the learn action added (they carry hard/idle timeouts that learned
// entries use, and appear with traffic) are left out.
func (e *env) flowSet(bridge string) []string {
	e.t.Helper()
	out := e.lab.DumpFlows(e.t, bridge)
	var flows []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "OFPST_FLOW") {
			continue
		}
		head, _, _ := strings.Cut(line, " actions=")
		if strings.Contains(head, "hard_timeout=") || strings.Contains(head, "idle_timeout=") {
			continue // learned at run time
		}
		line = flowCounters.ReplaceAllString(line, " ")
		line = flowCookie.ReplaceAllString(line, " ")
		flows = append(flows, strings.Join(strings.Fields(line), " "))
	}
	sort.Strings(flows)
	return flows
}

// pcapPackets decodes a pcap file written by "flowspan tap -w".
func pcapPackets(t *testing.T, path string) []lab.Packet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hdr := make([]byte, 24)
	if _, err := io.ReadFull(f, hdr); err != nil {
		t.Fatalf("pcap %s: header: %v", path, err)
	}
	if binary.LittleEndian.Uint32(hdr) != 0xa1b2c3d4 {
		t.Fatalf("pcap %s: magic %x, want a1b2c3d4 little endian", path, hdr[:4])
	}
	if lt := binary.LittleEndian.Uint32(hdr[20:]); lt != 1 {
		t.Fatalf("pcap %s: link type %d, want 1 (Ethernet)", path, lt)
	}
	var pkts []lab.Packet
	rec := make([]byte, 16)
	for {
		if _, err := io.ReadFull(f, rec); err == io.EOF {
			return pkts
		} else if err != nil {
			t.Fatalf("pcap %s: record %d: %v", path, len(pkts), err)
		}
		incl, orig := binary.LittleEndian.Uint32(rec[8:]), binary.LittleEndian.Uint32(rec[12:])
		data := make([]byte, incl)
		if _, err := io.ReadFull(f, data); err != nil {
			t.Fatalf("pcap %s: record %d: %v", path, len(pkts), err)
		}
		pkts = append(pkts, lab.Decode(data, int(orig)))
	}
}

// ports lists br0's ports.
func (e *env) ports(bridge string) []string {
	e.t.Helper()
	return strings.Fields(e.lab.MustVsctl(e.t, "list-ports", bridge))
}

// settle makes the datapath forget its cached flows, so the next packets are
// translated with the flow table as it is now. Without it, packets that hit
// a megaflow cached before a mirror was added or deleted may be handled the
// old way until OVS's revalidators catch up (the native Mirror table
// behaves the same); exact packet counts need that window closed.
func (e *env) settle() {
	e.t.Helper()
	if out, err := e.lab.Appctl("revalidator/purge"); err != nil {
		e.t.Fatalf("ovs-appctl revalidator/purge: %v: %s", err, out)
	}
}

// pingExact pings dst n times from h and fails the test, showing ping's
// output, unless exactly n replies came back (no loss, no duplicates).
func pingExact(t *testing.T, h *lab.Host, dst netip.Addr, n int) {
	t.Helper()
	out, err := h.Run(context.Background(), "ping", "-n", "-q", "-c", strconv.Itoa(n), "-i", "0.01", "-W", "1", dst.String())
	want := fmt.Sprintf("%d packets transmitted, %d received, 0%% packet loss", n, n)
	if err != nil || !strings.Contains(out, want) || strings.Contains(out, "duplicates") {
		t.Fatalf("ping %s -> %s: want %q: %v\n%s", h.Name(), dst, want, err, out)
	}
}
