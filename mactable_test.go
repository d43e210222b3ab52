package flowspan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowspan/flowspan/api"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

// seedingCompiler is fakeCompiler with a shadow MAC table: each line
// "PORT VLAN MAC AGE" of the fdb/show text becomes one learned flow.
type seedingCompiler struct{ fakeCompiler }

// MACSeeds puts entries on port 1 in later, the others in now.
func (seedingCompiler) MACSeeds(mirrors []CompileMirror, b Bridge, fdb string) (now []FlowEntry, later func() ([]FlowEntry, error), err error) {
	var rest []FlowEntry
	for _, line := range strings.Split(fdb, "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] == "port" {
			continue
		}
		match := "dl_vlan=" + f[1] + ",dl_dst=" + f[2]
		port, _ := strconv.Atoi(f[0])
		e := FlowEntry{Table: 9, Priority: 10, Cookie: fakeCookies.Learned | uint64(port), Match: match,
			Flow: fakeFlow{"learned," + match + " actions=load:" + f[0], "load:" + f[0]}}
		if f[0] == "1" {
			rest = append(rest, e)
		} else {
			now = append(now, e)
		}
	}
	return now, func() ([]FlowEntry, error) { return rest, nil }, nil
}

// fakeMACTable returns text (or err) and counts calls per bridge.
type fakeMACTable struct {
	mu    sync.Mutex
	text  string
	err   error
	calls map[string]int
}

func (f *fakeMACTable) FDBShow(_ context.Context, bridge string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[bridge]++
	return f.text, f.err
}

func (f *fakeMACTable) numCalls(bridge string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[bridge]
}

const fdbText = ` port  VLAN  MAC                Age
    1     0  02:00:00:00:00:01    3
    2     0  02:00:00:00:00:02    1
`

func (e *testEnv) startSeeding(macs MACTableReader, logger logrus.FieldLogger) *Manager {
	e.t.Helper()
	return e.startSeedingWith(macs, logger, e.ctl)
}

func (e *testEnv) startSeedingWith(macs MACTableReader, logger logrus.FieldLogger, ctl Controller) *Manager {
	e.t.Helper()
	m, err := New(Config{Logger: logger, OVSDB: e.db, Controller: ctl, Compiler: seedingCompiler{},
		MACTable: macs, StatePath: e.state, ConnectTimeout: 2 * time.Second, RetryInterval: 50 * time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	e.m = m
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("Run: %v", err)
			}
			m.Close()
		})
	}
	e.t.Cleanup(e.stop)
	return m
}

func learnedFlows(sw *fakeSwitch) []string {
	var out []string
	for _, f := range sw.texts() {
		if strings.HasPrefix(f, "learned,") {
			out = append(out, f)
		}
	}
	return out
}

// TestMACTableSeededOnFullSync: taking a bridge over and every reconnect
// seed the shadow MAC table from the bridge's: the entries needed at once
// in the full-sync bundle after the pipeline, the others in a second
// bundle right after; incremental changes leave the seeded flows alone.
func TestMACTableSeededOnFullSync(t *testing.T) {
	e := newEnv(t)
	macs := &fakeMACTable{text: fdbText}
	logger, _ := test.NewNullLogger()
	e.startSeeding(macs, logger)
	e.add(spec1())
	sw := e.ctl.sw(1)
	want := []string{
		"learned,dl_vlan=0,dl_dst=02:00:00:00:00:01 actions=load:1",
		"learned,dl_vlan=0,dl_dst=02:00:00:00:00:02 actions=load:2",
	}
	if got := learnedFlows(sw); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("seeded flows after take-over:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	sw.mu.Lock()
	if len(sw.applies) != 2 {
		t.Fatalf("%d bundles for the first mirror, want 2 (pipeline and urgent seeds, then the rest)", len(sw.applies))
	}
	first, second := sw.applies[0], sw.applies[1]
	sw.mu.Unlock()
	if n := len(first.Add); n != 4 || !strings.Contains(first.Add[3].Flow.String(), "learned,dl_vlan=0,dl_dst=02:00:00:00:00:02") ||
		strings.HasPrefix(first.Add[2].Flow.String(), "learned,") {
		t.Fatalf("full-sync bundle adds %d flows, want the 3 pipeline flows then the urgent seed (port 2)", n)
	}
	if len(second.Add) != 1 || !strings.Contains(second.Add[0].Flow.String(), "02:00:00:00:00:01") || len(second.Delete)+len(second.DeleteCookies)+len(second.Modify) != 0 {
		t.Fatalf("second bundle %+v, want only the deferred seed (port 1)", second)
	}
	if macs.numCalls("br0") != 1 || macs.numCalls("br1") != 0 {
		t.Fatalf("fdb/show calls: %v", macs.calls)
	}
	// An incremental change neither re-reads nor deletes the seeded flows.
	s2 := spec1()
	s2.Name, s2.Ports = "m2", []string{"p2"}
	e.add(s2)
	if got := learnedFlows(sw); len(got) != 2 {
		t.Fatalf("seeded flows after an incremental add: %q", got)
	}
	if macs.numCalls("br0") != 1 {
		t.Fatalf("fdb/show read %d times, want once (no full sync)", macs.numCalls("br0"))
	}
	fl, err := e.m.Flows(context.Background(), "m1")
	if err != nil || len(fl) != 2 {
		t.Fatalf("Flows(m1) = %q, %v (seeded flows are not the mirror's)", fl, err)
	}
	// vswitchd restart: seeded again on reconnect.
	macs.mu.Lock()
	macs.text = " port  VLAN  MAC                Age\n    3     0  02:00:00:00:00:03    0\n"
	macs.mu.Unlock()
	sw2 := e.ctl.restart(1)
	eventually(t, "re-seeded after reconnect", func() bool {
		got := learnedFlows(sw2)
		return len(got) == 1 && strings.Contains(got[0], "02:00:00:00:00:03")
	})
	if macs.numCalls("br0") != 2 {
		t.Fatalf("fdb/show read %d times, want 2", macs.numCalls("br0"))
	}
}

// TestMACTableUnreadable: a remote OVS has no MAC table to read: the mirror
// is installed all the same, cold, and that is logged once per bridge; other
// read failures are warnings and do not fail the sync either.
func TestMACTableUnreadable(t *testing.T) {
	e := newEnv(t)
	macs := &fakeMACTable{err: fmt.Errorf("bridge br0: %w", ErrNoMACTable)}
	logger, hook := test.NewNullLogger()
	e.startSeeding(macs, logger)
	if m := e.add(spec1()); m.Status.State != api.StateActive {
		t.Fatalf("status %v", m.Status)
	}
	sw := e.ctl.sw(1)
	if got := learnedFlows(sw); len(got) != 0 {
		t.Fatalf("seeded flows without a MAC table: %q", got)
	}
	sw2 := e.ctl.restart(1)
	eventually(t, "full sync after reconnect", func() bool { return hasFlow(sw2, "in_port=1") })
	eventually(t, "second read", func() bool { return macs.numCalls("br0") == 2 })
	cold := 0
	for _, en := range hook.AllEntries() {
		if strings.Contains(en.Message, "starts cold") {
			cold++
			if en.Level != logrus.InfoLevel || en.Data["bridge"] != "br0" {
				t.Errorf("cold log entry: level %v fields %v", en.Level, en.Data)
			}
		}
	}
	if cold != 1 {
		t.Fatalf("%d 'starts cold' log entries over two full syncs, want 1", cold)
	}

	macs.mu.Lock()
	macs.err = errors.New("ovs-appctl: connection refused")
	macs.mu.Unlock()
	sw3 := e.ctl.restart(1)
	eventually(t, "full sync despite a failing read", func() bool { return hasFlow(sw3, "in_port=1") })
	eventually(t, "warning logged", func() bool {
		for _, en := range hook.AllEntries() {
			if en.Level == logrus.WarnLevel && strings.Contains(en.Message, "reading the bridge MAC table failed") {
				return true
			}
		}
		return false
	})
}

func TestAppctlControlSocket(t *testing.T) {
	if got := runDirOfEndpoint("unix:/var/run/openvswitch/db.sock"); got != "/var/run/openvswitch" {
		t.Errorf("run dir of unix endpoint = %q", got)
	}
	for _, ep := range []string{"tcp:10.0.0.1:6640", "ssl:host:6640", "unix:"} {
		if got := runDirOfEndpoint(ep); got != "" {
			t.Errorf("run dir of %q = %q, want none", ep, got)
		}
	}
	if _, err := (AppctlMACTable{}).FDBShow(context.Background(), "br0"); !errors.Is(err, ErrNoMACTable) {
		t.Errorf("no run dir: err %v, want ErrNoMACTable", err)
	}

	dir := t.TempDir()
	a := AppctlMACTable{RunDir: dir}
	if _, err := a.controlSocket(); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("empty run dir: err %v", err)
	}
	touch := func(name string, age time.Duration) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(-age)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	// Without a pidfile: the newest control socket.
	touch("ovs-vswitchd.ctl", 2*time.Hour)
	if got, err := a.controlSocket(); err != nil || got != filepath.Join(dir, "ovs-vswitchd.ctl") {
		t.Fatalf("socket without pid: %q, %v", got, err)
	}
	touch("ovs-vswitchd.100.ctl", time.Hour)
	touch("ovs-vswitchd.200.ctl", time.Minute)
	touch("ovsdb-server.300.ctl", 0)
	if got, err := a.controlSocket(); err != nil || got != filepath.Join(dir, "ovs-vswitchd.200.ctl") {
		t.Fatalf("newest socket: %q, %v", got, err)
	}
	// The pidfile wins.
	if err := os.WriteFile(filepath.Join(dir, "ovs-vswitchd.pid"), []byte("100\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := a.controlSocket(); err != nil || got != filepath.Join(dir, "ovs-vswitchd.100.ctl") {
		t.Fatalf("pidfile socket: %q, %v", got, err)
	}
	os.Remove(filepath.Join(dir, "ovs-vswitchd.100.ctl"))
	// The pidfile names a socket that is gone: the newest other one.
	if got, err := a.controlSocket(); err != nil || got != filepath.Join(dir, "ovs-vswitchd.200.ctl") {
		t.Fatalf("stale pidfile: %q, %v", got, err)
	}
}

// fakeUnixctl serves one unixctl JSON-RPC connection at a time on a socket
// in dir: reply is called with the method and params.
func fakeUnixctl(t *testing.T, path string, reply func(method string, params []string) map[string]any) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var req struct {
				Method string   `json:"method"`
				Params []string `json:"params"`
				ID     any      `json:"id"`
			}
			if err := json.NewDecoder(c).Decode(&req); err == nil {
				resp := reply(req.Method, req.Params)
				resp["id"] = req.ID
				json.NewEncoder(c).Encode(resp)
			}
			c.Close()
		}
	}()
}

func TestAppctlFDBShow(t *testing.T) {
	dir, err := os.MkdirTemp("", "fsctl") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	fakeUnixctl(t, filepath.Join(dir, "ovs-vswitchd.ctl"), func(method string, params []string) map[string]any {
		if method != "fdb/show" || len(params) != 1 {
			return map[string]any{"result": nil, "error": fmt.Sprintf("unknown command %s %v", method, params)}
		}
		if params[0] != "br0" {
			return map[string]any{"result": nil, "error": "no such bridge"}
		}
		return map[string]any{"result": fdbText, "error": nil}
	})
	a := AppctlMACTable{RunDir: dir}
	got, err := a.FDBShow(context.Background(), "br0")
	if err != nil || got != fdbText {
		t.Fatalf("FDBShow(br0) = %q, %v", got, err)
	}
	// An error reply is an error naming the bridge and the reason.
	if _, err := a.FDBShow(context.Background(), "br7"); err == nil || errors.Is(err, ErrNoMACTable) ||
		!strings.Contains(err.Error(), "br7") || !strings.Contains(err.Error(), "no such bridge") {
		t.Fatalf("FDBShow(br7): %v", err)
	}
	// A socket that accepts and never answers: bounded by the timeout.
	ln, err := net.Listen("unix", filepath.Join(dir, "ovs-vswitchd.9.ctl"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.WriteFile(filepath.Join(dir, "ovs-vswitchd.pid"), []byte("9"), 0o600)
	a.Timeout = 100 * time.Millisecond
	if _, err := a.FDBShow(context.Background(), "br0"); err == nil {
		t.Fatal("silent control socket: no error")
	}
}

// TestOutputPortMACsSeededAndRemoved: isolating an existing output port on
// a bridge already taken over first reads what NORMAL learned on it and
// installs those entries with the mirror's flows (NORMAL drops packets to
// them, and forgets them when the port is isolated); when the port stops
// being an output its seeds are deleted by their cookie.
func TestOutputPortMACsSeededAndRemoved(t *testing.T) {
	e := newEnv(t)
	macs := &fakeMACTable{text: " port  VLAN  MAC                Age\n    1     0  02:00:00:00:00:01    3\n    3     0  02:00:00:00:00:03    5\n"}
	logger, _ := test.NewNullLogger()
	e.startSeeding(macs, logger)
	e.add(spec1()) // takes br0 over
	sw := e.ctl.sw(1)
	sw.mu.Lock()
	before := len(sw.applies)
	sw.mu.Unlock()
	addToP3SeedsP3(t, e, sw, before)
	if err := e.m.DeleteMirror(context.Background(), "m2"); err != nil {
		t.Fatal(err)
	}
	want, _ := fakeCookies.DropSeedsMatch(3)
	sw.mu.Lock()
	found := false
	for _, ch := range sw.applies {
		if slices.Contains(ch.DeleteCookies, want) {
			found = true
		}
	}
	sw.mu.Unlock()
	if !found {
		t.Fatalf("p3's seeds were not deleted when it stopped being an output (want DeleteCookies %+v)", want)
	}
	// An output on which nothing was learned (the shadow table has no
	// entry for p2): the MAC table is not read again.
	calls := macs.numCalls("br0")
	s3 := spec1()
	s3.Name, s3.Ports, s3.Output = "m3", []string{"p3"}, api.Output{Port: "p2"}
	e.add(s3)
	if n := macs.numCalls("br0"); n != calls {
		t.Fatalf("MAC table read %d more times for an output with nothing learned on it", n-calls)
	}
}

func TestParseStaticMACs(t *testing.T) {
	// As OVS 3.1 prints it.
	const out = `Statistics for bridge "br0":
  Current/maximum MAC entries in the table: 2/8192
  Current static MAC entries in the table : 3
  Total number of learned MAC entries     : 2
`
	if n, err := parseStaticMACs(out); err != nil || n != 3 {
		t.Fatalf("parseStaticMACs = %d, %v; want 3", n, err)
	}
	// An OVS without static entries does not mention them.
	if n, err := parseStaticMACs("Statistics for bridge \"br0\":\n  Current/maximum MAC entries in the table: 2/8192\n"); err != nil || n != 0 {
		t.Fatalf("without the line: %d, %v", n, err)
	}
	if _, err := parseStaticMACs("  Current static MAC entries in the table : many\n"); err == nil || !strings.Contains(err.Error(), "many") {
		t.Fatalf("garbage count: %v", err)
	}
}

// A warm add isolating its output over OpenFlow does not wait for the
// shadow table to say whether NORMAL learned MACs on the output: the bundle
// goes out, its commit waits for the answer, and when the answer is yes the
// bundle is sent again with those entries seeded.
func TestWarmAddOutputLearnedAnswersLate(t *testing.T) {
	e := newEnv(t)
	ctl := &mgmtController{fakeController: e.ctl, noFlood: map[uint32]bool{}}
	macs := &fakeMACTable{text: " port  VLAN  MAC                Age\n    1     0  02:00:00:00:00:01    3\n    3     0  02:00:00:00:00:03    5\n"}
	logger, _ := test.NewNullLogger()
	e.startSeedingWith(macs, logger, ctl)
	e.add(spec1()) // takes br0 over, seeds p3's entry as learned there
	sw := e.ctl.sw(1)
	sw.mu.Lock()
	before := len(sw.applies)
	sw.onStats = func(_, mask uint64) {
		if mask == ^uint64(0) { // the shadow table's entries of one port
			time.Sleep(50 * time.Millisecond)
		}
	}
	sw.mu.Unlock()
	addToP3SeedsP3(t, e, sw, before)
	ctl.mu.Lock()
	isolations := slices.Clone(ctl.isolations)
	ctl.mu.Unlock()
	if len(isolations) != 1 {
		t.Fatalf("isolations over OpenFlow: %q, want p3's", isolations)
	}
}

// addToP3SeedsP3 adds mirror m2 (p2 to output p3, on which the shadow
// table has learned p3's MAC) and checks that it took one bundle (after
// the before-th) seeding p3's entry and no other.
func addToP3SeedsP3(t *testing.T, e *testEnv, sw *fakeSwitch, before int) {
	t.Helper()
	s2 := spec1()
	s2.Name, s2.Ports, s2.Output = "m2", []string{"p2"}, api.Output{Port: "p3"}
	e.add(s2)
	sw.mu.Lock()
	added := slices.Clone(sw.applies[before:])
	sw.mu.Unlock()
	if len(added) != 1 {
		t.Fatalf("%d bundles for the second mirror, want 1", len(added))
	}
	var seeded []string
	for _, f := range added[0].Add {
		if strings.HasPrefix(f.Flow.String(), "learned,") {
			seeded = append(seeded, f.Flow.String())
		}
	}
	if len(seeded) != 1 || !strings.Contains(seeded[0], "02:00:00:00:00:03") {
		t.Fatalf("seeds in the second mirror's bundle: %q, want p3's entry only", seeded)
	}
}
