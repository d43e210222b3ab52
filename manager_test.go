package flowspan

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowspan/flowspan/api"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type testEnv struct {
	t     *testing.T
	db    *fakeOVSDB
	ctl   *fakeController
	state string
	m     *Manager
	stop  func()
	// wrapDB and wrapCtl, when set, wrap db and ctl for the Manager.
	wrapDB  func(*fakeOVSDB) OVSDB
	wrapCtl func(*fakeController) Controller
	viaMgmt bool // !Config.TakeOverFirst
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	e := &testEnv{t: t, db: newFakeOVSDB(), ctl: newFakeController(),
		state: filepath.Join(t.TempDir(), "state", "state.json")}
	e.db.addBridge("br0", 1, "p1", "p2", "p3", "mon")
	e.db.addBridge("br1", 2, "q1", "q2")
	e.ctl.switches[1] = newFakeSwitch()
	e.ctl.switches[2] = newFakeSwitch()
	e.ctl.targets["unix:/run/br0.flowspan"] = 1
	e.ctl.targets["unix:/run/br1.flowspan"] = 2
	return e
}

// start creates the Manager from the state file and runs it until cleanup.
func (e *testEnv) start() *Manager {
	e.t.Helper()
	logger, _ := test.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	var (
		db  OVSDB      = e.db
		ctl Controller = e.ctl
	)
	if e.wrapDB != nil {
		db = e.wrapDB(e.db)
	}
	if e.wrapCtl != nil {
		ctl = e.wrapCtl(e.ctl)
	}
	m, err := New(Config{Logger: logger, OVSDB: db, Controller: ctl, Compiler: fakeCompiler{}, TakeOverFirst: !e.viaMgmt,
		StatePath: e.state, ConnectTimeout: 2 * time.Second, RetryInterval: 50 * time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	e.m = m
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("Run: %v", err)
			}
			m.Close()
		})
	}
	e.stop = stop
	e.t.Cleanup(stop)
	return m
}

// restartManager stops the Manager and starts a new one on the same state.
func (e *testEnv) restartManager() *Manager {
	e.t.Helper()
	e.stop()
	return e.start()
}

func (e *testEnv) readState() []byte {
	b, err := os.ReadFile(e.state)
	if err != nil && !os.IsNotExist(err) {
		e.t.Fatal(err)
	}
	return b
}

func (e *testEnv) add(spec api.MirrorSpec) api.Mirror {
	e.t.Helper()
	m, err := e.m.AddMirror(context.Background(), spec, api.OriginAPI)
	if err != nil {
		e.t.Fatalf("AddMirror(%s): %v", spec.Name, err)
	}
	return m
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func hasFlow(sw *fakeSwitch, substr string) bool {
	for _, f := range sw.texts() {
		if strings.Contains(f, substr) {
			return true
		}
	}
	return false
}

func spec1() api.MirrorSpec {
	return api.MirrorSpec{Name: "m1", Bridge: "br0", Ports: []string{"p1"}, Output: api.Output{Port: "mon"}}
}

func TestAddInstallsAndPersists(t *testing.T) {
	e := newEnv(t)
	e.start()
	m := e.add(spec1())
	if m.Status.State != api.StateActive {
		t.Fatalf("status = %v, want active", m.Status)
	}
	sw := e.ctl.sw(1)
	want := []string{
		"cookie=0xf501000000000000, table=0, priority=0 actions=NORMAL",
		"cookie=0xf501000000010001, table=1, priority=100,reg0=1,in_port=1 actions=output:4",
		"cookie=0xf501000000010002, table=1, priority=100,reg0=1,reg1=1 actions=output:4",
	}
	if got := sw.texts(); !slices.Equal(got, want) {
		t.Fatalf("flows (-want +got):\n-%s\n+%s", strings.Join(want, "\n-"), strings.Join(got, "\n+"))
	}
	if !e.db.isTakenOver("br0") || e.db.isTakenOver("br1") {
		t.Fatalf("take-over: br0 %v br1 %v", e.db.isTakenOver("br0"), e.db.isTakenOver("br1"))
	}
	fl, err := e.m.Flows(context.Background(), "m1")
	if err != nil || len(fl) != 2 || !strings.Contains(fl[0], "in_port=1") {
		t.Fatalf("Flows = %q, %v", fl, err)
	}
	st, err := loadState(e.state)
	if err != nil || len(st.Mirrors) != 1 || st.Mirrors[0].Spec.Name != "m1" || st.Mirrors[0].ID != 1 {
		t.Fatalf("state = %+v, %v", st, err)
	}
	fi, err := os.Stat(e.state)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode: %v %v", fi, err)
	}
}

// TestAddInvalidChangesNothing: each invalid input of DESIGN 3.9 is rejected
// with an error naming the problem, and nothing changes anywhere.
func TestAddInvalidChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.add(spec1())
	base := spec1()
	mod := func(f func(*api.MirrorSpec)) api.MirrorSpec {
		s := base
		s.Name = "m2"
		s.Ports = []string{"p2"}
		f(&s)
		return s
	}
	cases := []struct {
		name    string
		spec    api.MirrorSpec
		is      error
		message string
	}{
		{"unknown bridge", mod(func(s *api.MirrorSpec) { s.Bridge = "br9" }), api.ErrInvalid, `mirror "m2": bridge "br9": no such bridge`},
		{"unknown port", mod(func(s *api.MirrorSpec) { s.Ingress = []string{"vnet9"} }), api.ErrInvalid, `mirror "m2": port "vnet9": not on bridge br0`},
		{"output also selected", mod(func(s *api.MirrorSpec) { s.Ports = []string{"p2", "mon"} }), api.ErrInvalid, `mirror "m2": port "mon": both selected and output`},
		{"selects another mirror's output", mod(func(s *api.MirrorSpec) {
			s.Ports = []string{"mon"}
			s.Output = api.Output{Port: "p3"}
		}), api.ErrInvalid, `mirror "m2": port "mon" is the output of mirror "m1"`},
		{"output is selected by another mirror", mod(func(s *api.MirrorSpec) { s.Output = api.Output{Port: "p1"} }), api.ErrInvalid, `mirror "m2": output port "p1" is selected by mirror "m1"`},
		{"bad filter", mod(func(s *api.MirrorSpec) { s.Match = []string{"tcp,tp_dts=443"} }), api.ErrInvalid, `filter "tcp,tp_dts=443": unknown field "tp_dts"`},
		{"duplicate name", mod(func(s *api.MirrorSpec) { s.Name = "m1" }), api.ErrExists, `mirror "m1": already exists`},
		{"tunnel without remote", mod(func(s *api.MirrorSpec) { s.Output = api.Output{Tunnel: &api.Tunnel{Type: "gre"}} }), api.ErrInvalid, `mirror "m2": tunnel gre has no remote IP`},
		{"tunnel remote not an IP", mod(func(s *api.MirrorSpec) {
			s.Output = api.Output{Tunnel: &api.Tunnel{Type: "vxlan", Remote: "collector"}}
		}), api.ErrInvalid, `mirror "m2": tunnel vxlan: remote "collector" is not a unicast IP address`},
		{"unknown tunnel type", mod(func(s *api.MirrorSpec) {
			s.Output = api.Output{Tunnel: &api.Tunnel{Type: "ipsec", Remote: "192.0.2.1"}}
		}), api.ErrInvalid, `tunnel type "ipsec" unknown`},
		{"no output", mod(func(s *api.MirrorSpec) { s.Output = api.Output{} }), api.ErrInvalid, `mirror "m2": no output`},
		{"two outputs", mod(func(s *api.MirrorSpec) { s.Output = api.Output{Port: "mon", VLAN: 10} }), api.ErrInvalid, `more than one output`},
		{"output port missing", mod(func(s *api.MirrorSpec) { s.Output = api.Output{Port: "nope"} }), api.ErrInvalid, `output port "nope": not on bridge br0 (add create to make it)`},
		{"create existing port", mod(func(s *api.MirrorSpec) { s.Output = api.Output{Port: "p3", Create: true} }), api.ErrInvalid, `output port "p3" already exists on bridge br0`},
		{"selects nothing", mod(func(s *api.MirrorSpec) { s.Ports = nil }), api.ErrInvalid, `selects nothing`},
		{"bad name", mod(func(s *api.MirrorSpec) { s.Name = "a b" }), api.ErrInvalid, `bad name`},
		{"create on another bridge's mirror output", mod(func(s *api.MirrorSpec) { s.Output = api.Output{Port: "mon", Create: true} }), api.ErrInvalid, `output port "mon" already belongs to mirror "m1"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			flowsBefore := e.ctl.sw(1).texts()
			applies := e.ctl.sw(1).numApplies()
			stateBefore := e.readState()
			bridgesBefore, takenBefore := e.db.snapshot()
			listBefore, _ := e.m.Mirrors(context.Background())

			_, err := e.m.AddMirror(context.Background(), tc.spec, api.OriginAPI)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.is, tc.message)
			}
			if got := e.ctl.sw(1).texts(); !slices.Equal(got, flowsBefore) || e.ctl.sw(1).numApplies() != applies {
				t.Errorf("switch changed: %q", got)
			}
			if got := e.readState(); !bytes.Equal(got, stateBefore) {
				t.Errorf("state file changed:\n%s", got)
			}
			bridgesAfter, takenAfter := e.db.snapshot()
			if len(bridgesAfter["br0"].Ports) != len(bridgesBefore["br0"].Ports) || len(takenAfter) != len(takenBefore) {
				t.Errorf("OVSDB changed: ports %v taken over %v", bridgesAfter["br0"].Ports, takenAfter)
			}
			if list, _ := e.m.Mirrors(context.Background()); len(list) != len(listBefore) {
				t.Errorf("mirrors changed: %+v", list)
			}
		})
	}
}

// TestAddSwitchFailureChangesNothing: the switch rejects the bundle → the
// created port is removed, the bridge released, nothing persisted.
func TestAddSwitchFailureChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.ctl.sw(1).setFail(errors.New("OFPBFC_MSG_FAILED"))
	s := spec1()
	s.Output = api.Output{Port: "tap0", Create: true}
	_, err := e.m.AddMirror(context.Background(), s, api.OriginAPI)
	if err == nil || !strings.Contains(err.Error(), "OFPBFC_MSG_FAILED") {
		t.Fatalf("err = %v", err)
	}
	bridges, taken := e.db.snapshot()
	if _, ok := bridges["br0"].Ports["tap0"]; ok || taken["br0"] {
		t.Fatalf("OVSDB not rolled back: tap0 present %v, taken over %v", ok, taken["br0"])
	}
	if len(e.readState()) != 0 {
		t.Fatalf("state written: %s", e.readState())
	}
	if l, _ := e.m.Mirrors(context.Background()); len(l) != 0 {
		t.Fatalf("mirror defined: %+v", l)
	}
	// The same add succeeds afterwards.
	if _, err := e.m.AddMirror(context.Background(), s, api.OriginAPI); err != nil {
		t.Fatal(err)
	}
}

// TestAddStateWriteFailureRestoresSwitch: persisting fails → the flows of
// the new mirror are removed again.
func TestAddStateWriteFailureRestoresSwitch(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.add(spec1())
	before := e.ctl.sw(1).texts()
	stateBefore := e.readState()
	// Make the rename fail: the state path's directory becomes read-only
	// for rename purposes by replacing the file with a non-empty directory.
	tmp := e.state + ".bak"
	if err := os.Rename(e.state, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(e.state, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := spec1()
	s.Name, s.Ports = "m2", []string{"p2"}
	if _, err := e.m.AddMirror(context.Background(), s, api.OriginAPI); err == nil {
		t.Fatal("AddMirror succeeded with unwritable state")
	}
	if got := e.ctl.sw(1).texts(); !slices.Equal(got, before) {
		t.Fatalf("switch not restored: %q", got)
	}
	os.RemoveAll(e.state)
	if err := os.Rename(tmp, e.state); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.readState(), stateBefore) {
		t.Fatal("state changed")
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(filepath.Dir(e.state))
	for _, en := range ents {
		if strings.HasSuffix(en.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", en.Name())
		}
	}
}

// TestPortRenumbered: a port deleted and re-added with a new ofport; the
// mirror is pending meanwhile and follows the port by name.
func TestPortRenumbered(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.add(spec1())
	sw := e.ctl.sw(1)

	e.db.setPort("br0", "p1", 0)
	eventually(t, "mirror pending with p1 gone", func() bool {
		m, _ := e.m.Mirror(context.Background(), "m1")
		return m.Status.String() == "pending: port p1 missing" && !hasFlow(sw, "in_port=1")
	})
	if !hasFlow(sw, "actions=NORMAL") {
		t.Fatal("shared flows removed while a mirror is pending")
	}
	e.db.setPort("br0", "p1", 7)
	eventually(t, "mirror active on the new ofport", func() bool {
		m, _ := e.m.Mirror(context.Background(), "m1")
		return m.Status.State == api.StateActive && hasFlow(sw, "in_port=7") && hasFlow(sw, "reg1=7") && !hasFlow(sw, "in_port=1 ")
	})
	// A renumbering without a delete (ofport changes in place).
	e.db.setPort("br0", "p1", 9)
	eventually(t, "flows follow ofport 9", func() bool { return hasFlow(sw, "in_port=9") && !hasFlow(sw, "in_port=7") })
	// The output port renumbered.
	e.db.setPort("br0", "mon", 12)
	eventually(t, "flows follow output ofport 12", func() bool { return hasFlow(sw, "output:12") && !hasFlow(sw, "output:4") })
}

// TestGenerationSync: on start the Manager installs a new generation and
// deletes every other flowspan generation in the same bundle.
func TestGenerationSync(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.add(spec1())
	sw := e.ctl.sw(1)
	gen1 := fakeCookies.Generation(sw.flowsSorted()[0].Cookie)
	// Plant a stale flow of some other generation and a non-flowspan flow.
	stale := FlowEntry{Table: 1, Priority: 5, Cookie: fakeCookies.App | 7<<48, Match: "dl_type=0x88cc", Flow: fakeFlow{"stale", "drop"}}
	foreign := FlowEntry{Table: 0, Priority: 1, Cookie: 0x1, Match: "arp", Flow: fakeFlow{"foreign", "drop"}}
	sw.Apply(context.Background(), Changes{Add: []FlowEntry{stale, foreign}})

	e.restartManager()
	eventually(t, "full sync after restart", func() bool { return !hasFlow(sw, "stale") })
	flows := sw.flowsSorted()
	var gens []uint8
	for _, f := range flows {
		if f.Cookie&fakeCookies.AppMask == fakeCookies.App {
			gens = append(gens, fakeCookies.Generation(f.Cookie))
		}
	}
	gen2 := gens[0]
	for _, g := range gens {
		if g != gen2 {
			t.Fatalf("mixed generations after sync: %v", gens)
		}
	}
	if gen2 == gen1 || gen2 == 7 || gen2 == 0 {
		t.Fatalf("new generation %d (old %d, stale 7)", gen2, gen1)
	}
	if !hasFlow(sw, "foreign") {
		t.Fatal("non-flowspan flow deleted")
	}
	// The sync was one bundle with both the adds and the deletes.
	sw.mu.Lock()
	last := sw.applies[len(sw.applies)-1]
	sw.mu.Unlock()
	if len(last.Add) != 3 || len(last.DeleteCookies) != 2 {
		t.Fatalf("sync bundle: %d adds, %d cookie deletes, want 3 and 2 (gens %d and 7)", len(last.Add), len(last.DeleteCookies), gen1)
	}

	// vswitchd restart: flows lost, reinstalled on reconnect.
	sw2 := e.ctl.restart(1)
	eventually(t, "flows back after vswitchd restart", func() bool { return hasFlow(sw2, "in_port=1") && hasFlow(sw2, "NORMAL") })
	eventually(t, "active after reconnect", func() bool {
		m, _ := e.m.Mirror(context.Background(), "m1")
		return m.Status.State == api.StateActive
	})
}

func (s *fakeSwitch) flowsSorted() []FlowEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []FlowEntry
	for _, f := range s.flows {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b FlowEntry) int { return strings.Compare(a.Flow.String(), b.Flow.String()) })
	return out
}

// TestSwitchDisconnected: mirrors added while the switch is away are pending
// and installed when it comes back.
func TestSwitchDisconnected(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.add(spec1())
	e.ctl.setConnected(1, false)
	eventually(t, "pending while disconnected", func() bool {
		m, _ := e.m.Mirror(context.Background(), "m1")
		return m.Status.String() == "pending: switch br0 not connected"
	})
	s := spec1()
	s.Name, s.Ports = "m2", []string{"p2"}
	m2, err := e.m.AddMirror(context.Background(), s, api.OriginAPI)
	if err != nil || m2.Status.State != api.StatePending {
		t.Fatalf("add while disconnected: %+v, %v", m2, err)
	}
	e.ctl.setConnected(1, true)
	eventually(t, "installed on reconnect", func() bool {
		m, _ := e.m.Mirror(context.Background(), "m2")
		return m.Status.State == api.StateActive && hasFlow(e.ctl.sw(1), "in_port=2")
	})
}

func TestDeleteLastReleases(t *testing.T) {
	e := newEnv(t)
	e.start()
	s := spec1()
	s.Output = api.Output{Port: "tap0", Create: true}
	e.add(s)
	if !e.db.isTakenOver("br0") {
		t.Fatal("not taken over")
	}
	if err := e.m.DeleteMirror(context.Background(), "m1"); err != nil {
		t.Fatal(err)
	}
	if got := e.ctl.sw(1).texts(); !slices.Equal(got, []string{"priority=0 actions=NORMAL"}) {
		t.Fatalf("flows after the last mirror went: %q, want only the restored NORMAL flow", got)
	}
	bridges, taken := e.db.snapshot()
	if _, ok := bridges["br0"].Ports["tap0"]; ok || taken["br0"] {
		t.Fatalf("created port left %v / still taken over %v", ok, taken["br0"])
	}
	if err := e.m.DeleteMirror(context.Background(), "m1"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	st, _ := loadState(e.state)
	if len(st.Mirrors) != 0 {
		t.Fatalf("state: %+v", st)
	}
}

// A learned flow that ovs-vswitchd inserts while the bundle removing all of
// flowspan's flows commits is deleted too.
func TestDeleteLastRemovesLateLearnedFlows(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.add(spec1())
	sw := e.ctl.sw(1)
	sw.mu.Lock()
	sw.resurrect = []FlowEntry{{Table: 9, Priority: 10, Cookie: fakeCookies.Learned | 1, Match: "dl_dst=02:00:00:00:00:01", Flow: fakeFlow{"table=9 learned", "load:1"}}}
	sw.mu.Unlock()
	if err := e.m.DeleteMirror(context.Background(), "m1"); err != nil {
		t.Fatal(err)
	}
	if got := sw.texts(); !slices.Equal(got, []string{"priority=0 actions=NORMAL"}) {
		t.Fatalf("flows after the last mirror went: %q, want only the restored NORMAL flow", got)
	}
}

func TestDeleteSwitchFailureKeepsMirror(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.add(spec1())
	s := spec1()
	s.Name, s.Ports = "m2", []string{"p2"}
	e.add(s)
	before := e.ctl.sw(1).texts()
	e.ctl.sw(1).setFail(errors.New("switch says no"))
	if err := e.m.DeleteMirror(context.Background(), "m2"); err == nil {
		t.Fatal("delete succeeded")
	}
	if _, err := e.m.Mirror(context.Background(), "m2"); err != nil {
		t.Fatal("mirror gone after failed delete")
	}
	if got := e.ctl.sw(1).texts(); !slices.Equal(got, before) {
		t.Fatalf("flows changed: %q", got)
	}
	st, _ := loadState(e.state)
	if len(st.Mirrors) != 2 {
		t.Fatalf("state: %+v", st)
	}
}

func TestReleaseDeletesBridgeMirrors(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.add(spec1())
	e.add(api.MirrorSpec{Name: "q", Bridge: "br1", Ingress: []string{"q1"}, Output: api.Output{VLAN: 15}})
	res, err := e.m.Release(context.Background(), "br0")
	if err != nil || !slices.Equal(res.Deleted, []string{"m1"}) {
		t.Fatalf("Release = %+v, %v", res, err)
	}
	if e.db.isTakenOver("br0") || !e.db.isTakenOver("br1") || len(e.ctl.sw(1).texts()) != 1 || len(e.ctl.sw(2).texts()) < 2 {
		t.Fatal("release touched the wrong bridge")
	}
	if _, err := e.m.Release(context.Background(), "nope"); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("release unknown bridge: %v", err)
	}
}

func TestStatsPerSelection(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.add(api.MirrorSpec{Name: "m1", Bridge: "br0", Ports: []string{"p1"}, Egress: []string{"p2"}, Output: api.Output{Port: "mon"}})
	sw := e.ctl.sw(1)
	for _, f := range sw.flowsSorted() {
		switch text := f.Flow.String(); {
		case strings.Contains(text, "in_port=1"):
			sw.packets[f.Cookie] = 5
		case strings.Contains(text, "reg1=1"):
			sw.packets[f.Cookie] = 2
		case strings.Contains(text, "reg1=2"):
			sw.packets[f.Cookie] = 1
		case strings.Contains(text, "NORMAL"):
			sw.packets[f.Cookie] = 1000
		}
	}
	st, err := e.m.Stats(context.Background(), "m1")
	if err != nil || len(st) != 1 {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
	want := []api.SelectionStats{
		{Port: "p1", Direction: api.DirEgress, Packets: 2, Bytes: 200},
		{Port: "p1", Direction: api.DirIngress, Packets: 5, Bytes: 500},
		{Port: "p2", Direction: api.DirEgress, Packets: 1, Bytes: 100},
	}
	if st[0].Packets != 8 || st[0].Bytes != 800 || !slices.Equal(st[0].Selections, want) {
		t.Fatalf("stats = %+v", st[0])
	}
	if _, err := e.m.Stats(context.Background(), "zz"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("stats of unknown: %v", err)
	}
}

func TestStateReloadedAndEphemeralRemoved(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.add(spec1())
	tap := api.MirrorSpec{Name: "tap1", Bridge: "br0", Ports: []string{"p2"}, Output: api.Output{Port: "tap0", Create: true}}
	if _, err := e.m.AddMirror(context.Background(), tap, api.OriginTap); err != nil {
		t.Fatal(err)
	}
	e.restartManager()
	eventually(t, "tap removed, m1 active after restart", func() bool {
		l, _ := e.m.Mirrors(context.Background())
		return len(l) == 1 && l[0].Spec.Name == "m1" && l[0].Status.State == api.StateActive
	})
	bridges, _ := e.db.snapshot()
	if _, ok := bridges["br0"].Ports["tap0"]; ok {
		t.Fatal("tap port left behind")
	}
	if hasFlow(e.ctl.sw(1), "in_port=2") {
		t.Fatal("tap flows left behind")
	}
}

// TestStateTornTempFile: a crash mid-write leaves a torn temporary file; the
// good state is what loads.
func TestStateTornTempFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	good := stateFile{Mirrors: []stateMirror{{Spec: spec1(), Origin: api.OriginAPI, ID: 1}}}
	if err := saveState(path, good); err != nil {
		t.Fatal(err)
	}
	full, _ := os.ReadFile(path)
	// What a crash before rename leaves behind: half a file under a temp name.
	if err := os.WriteFile(filepath.Join(dir, ".state.json.123.tmp"), full[:len(full)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := loadState(path)
	if err != nil || len(st.Mirrors) != 1 || st.Mirrors[0].Spec.Name != "m1" {
		t.Fatalf("loadState = %+v, %v", st, err)
	}
	// A torn state file itself (never produced by saveState) is an error,
	// not silently an empty state.
	if err := os.WriteFile(path, full[:len(full)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadState(path); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("torn state loaded: %v", err)
	}
	if _, err := New(Config{OVSDB: newFakeOVSDB(), Controller: newFakeController(), Compiler: fakeCompiler{}, StatePath: path}); err == nil {
		t.Fatal("New accepted a corrupt state file")
	}
}

func TestConfigDeclarative(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.add(spec1()) // API mirror: config never touches it
	dir := t.TempDir()
	write := func(s string) ConfigFile {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		cf, err := LoadConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		return cf
	}
	ctx := context.Background()
	cf := write(`
mirrors:
  - name: web
    bridge: br0
    ingress: [p2]
    match: ["tcp,tp_dst=443"]
    output: {port: cap0, create: true}
  - name: later
    bridge: br0
    ports: [vnet7]
    output: {port: mon}
`)
	if err := e.m.ApplyConfig(ctx, cf); err != nil {
		t.Fatal(err)
	}
	l, _ := e.m.Mirrors(ctx)
	if len(l) != 3 || l[0].Spec.Name != "later" || l[0].Origin != api.OriginConfig || l[0].Status.String() != "pending: port vnet7 missing" {
		t.Fatalf("mirrors = %+v", l)
	}
	e.db.setPort("br0", "vnet7", 20)
	eventually(t, "config mirror resumes when its port appears", func() bool {
		m, _ := e.m.Mirror(ctx, "later")
		return m.Status.State == api.StateActive && hasFlow(e.ctl.sw(1), "in_port=20")
	})
	// Reload: web changed, later gone.
	cf = write(`
mirrors:
  - name: web
    bridge: br0
    ingress: [p3]
    output: {port: cap0, create: true}
`)
	if err := e.m.ApplyConfig(ctx, cf); err != nil {
		t.Fatal(err)
	}
	l, _ = e.m.Mirrors(ctx)
	if len(l) != 2 || l[0].Spec.Name != "m1" || l[1].Spec.Name != "web" || l[1].Spec.Ingress[0] != "p3" {
		t.Fatalf("after reload: %+v", l)
	}
	if hasFlow(e.ctl.sw(1), "in_port=20") {
		t.Fatal("removed config mirror's flows remain")
	}
	// A config mirror may not take an API mirror's name; nothing changes.
	cf = write("mirrors:\n  - {name: m1, bridge: br0, ports: [p2], output: {port: mon}}\n")
	if err := e.m.ApplyConfig(ctx, cf); !errors.Is(err, api.ErrExists) {
		t.Fatalf("conflicting config: %v", err)
	}
	if l2, _ := e.m.Mirrors(ctx); len(l2) != 2 {
		t.Fatalf("conflicting config changed mirrors: %+v", l2)
	}
	// Bad YAML is rejected by LoadConfig.
	p := filepath.Join(dir, "bad.yaml")
	os.WriteFile(p, []byte("mirrors:\n  - name: x\n    colour: red\n"), 0o600)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Fatalf("unknown field accepted: %v", err)
	}
}

func TestNextGeneration(t *testing.T) {
	for _, tc := range []struct {
		cur     uint8
		present map[uint8]bool
		want    uint8
	}{
		{1, nil, 2},
		{1, map[uint8]bool{2: true, 3: true}, 4},
		{255, nil, 1},
		{254, map[uint8]bool{255: true}, 1},
	} {
		if got := nextGeneration(tc.cur, tc.present, 0xff); got != tc.want {
			t.Errorf("nextGeneration(%d, %v) = %d, want %d", tc.cur, tc.present, got, tc.want)
		}
	}
}

// TestStateWithoutIDs: a hand-written state file without ids (or with
// duplicates) gets unique ids per bridge.
func TestStateWithoutIDs(t *testing.T) {
	e := newEnv(t)
	s2 := spec1()
	s2.Name, s2.Ports = "m2", []string{"p2"}
	s3 := spec1()
	s3.Name, s3.Ports = "m3", []string{"p3"}
	if err := saveState(e.state, stateFile{Mirrors: []stateMirror{
		{Spec: spec1(), Origin: api.OriginAPI}, {Spec: s2, Origin: api.OriginAPI, ID: 1}, {Spec: s3, Origin: api.OriginAPI, ID: 1},
	}}); err != nil {
		t.Fatal(err)
	}
	m := e.start()
	ids := map[uint32]string{}
	m.mu.Lock()
	for n, mi := range m.mirrors {
		if other, dup := ids[mi.id]; dup || mi.id == 0 {
			t.Errorf("mirror %s id %d (also %s)", n, mi.id, other)
		}
		ids[mi.id] = n
	}
	m.mu.Unlock()
	eventually(t, "all three active", func() bool {
		l, _ := m.Mirrors(context.Background())
		for _, x := range l {
			if x.Status.State != api.StateActive {
				return false
			}
		}
		return len(l) == 3
	})
}

// TestOutputIsolation: an existing output port is isolated from NORMAL
// while a mirror uses it, restored after; a failed add restores it too.
func TestOutputIsolation(t *testing.T) {
	e := newEnv(t)
	e.start()
	isolated := func() bool {
		b, _ := e.db.snapshot()
		return b["br0"].Ports["mon"].Isolated
	}
	e.ctl.sw(1).setFail(errors.New("no"))
	if _, err := e.m.AddMirror(context.Background(), spec1(), api.OriginAPI); err == nil {
		t.Fatal("add succeeded")
	}
	if isolated() {
		t.Fatal("failed add left the output isolated")
	}
	e.db.mu.Lock()
	e.db.log = nil
	e.db.mu.Unlock()
	e.add(spec1())
	e.db.mu.Lock()
	ops := slices.Clone(e.db.log)
	e.db.mu.Unlock()
	// The first mirror on a bridge isolates its output in the take-over's
	// transaction, not in a separate change.
	if !slices.Contains(ops, "takeover br0 isolating mon") || slices.Contains(ops, "isolate mon") {
		t.Fatalf("OVSDB operations of the first add: %q, want the isolation inside the take-over", ops)
	}
	s2 := spec1()
	s2.Name, s2.Ports = "m2", []string{"p2"}
	e.add(s2)
	if !isolated() {
		t.Fatal("output not isolated")
	}
	if err := e.m.DeleteMirror(context.Background(), "m1"); err != nil {
		t.Fatal(err)
	}
	if !isolated() {
		t.Fatal("output un-isolated while m2 still uses it")
	}
	if err := e.m.DeleteMirror(context.Background(), "m2"); err != nil {
		t.Fatal(err)
	}
	if isolated() {
		t.Fatal("output still isolated after its last mirror went")
	}
}

// TestCleanupAfterPreviousRun: a bridge left handed over with flowspan
// flows and a flowspan-created port, but no mirrors in the state file, is
// cleaned up and released on start.
func TestCleanupAfterPreviousRun(t *testing.T) {
	e := newEnv(t)
	e.db.takenOver["br1"] = true
	b := e.db.bridges["br1"]
	b.Ports["fsold"] = Port{Name: "fsold", OFPort: 9, Flowspan: true, Isolated: true}
	sw := e.ctl.sw(2)
	sw.Apply(context.Background(), Changes{Add: []FlowEntry{
		{Table: 0, Priority: 0, Cookie: fakeCookies.App | 3<<48, Match: "", Flow: fakeFlow{"old pipeline", "NORMAL"}},
		{Table: 1, Priority: 9, Cookie: fakeCookies.App | 3<<48 | 1<<16, Match: "in_port=1", Flow: fakeFlow{"old mirror", "output:9"}},
	}})
	e.start()
	eventually(t, "br1 released and cleaned", func() bool {
		bs, taken := e.db.snapshot()
		_, portLeft := bs["br1"].Ports["fsold"]
		got := sw.texts()
		return !taken["br1"] && !portLeft && slices.Equal(got, []string{"priority=0 actions=NORMAL"})
	})
	// br0 was never handed over and is left alone.
	if e.db.isTakenOver("br0") || len(e.ctl.sw(1).texts()) != 0 {
		t.Fatal("br0 touched")
	}
}

// TestBridgeAppearsLater: a config mirror on a bridge that does not exist
// yet is pending; when the bridge appears its output port is created, the
// bridge taken over and the mirror installed. A created port deleted behind
// flowspan's back is created again.
func TestBridgeAppearsLater(t *testing.T) {
	e := newEnv(t)
	e.ctl.switches[9] = newFakeSwitch()
	e.ctl.targets["unix:/run/br9.flowspan"] = 9
	e.start()
	ctx := context.Background()
	cf := ConfigFile{Mirrors: []api.MirrorSpec{{Name: "late", Bridge: "br9", Ports: []string{"x1"}, Output: api.Output{Port: "cap9", Create: true}}}}
	if err := e.m.ApplyConfig(ctx, cf); err != nil {
		t.Fatal(err)
	}
	if m, _ := e.m.Mirror(ctx, "late"); m.Status.String() != "pending: bridge br9 missing" {
		t.Fatalf("status %q", m.Status)
	}
	e.db.addBridge("br9", 9, "x1")
	e.db.mu.Lock()
	e.db.notifyLocked("br9")
	e.db.mu.Unlock()
	eventually(t, "mirror on the new bridge active", func() bool {
		m, _ := e.m.Mirror(ctx, "late")
		return m.Status.State == api.StateActive && hasFlow(e.ctl.sw(9), "in_port=1")
	})
	bs, _ := e.db.snapshot()
	if p, ok := bs["br9"].Ports["cap9"]; !ok || !p.Flowspan {
		t.Fatalf("output port not created: %+v", bs["br9"].Ports)
	}
	st, _ := loadState(e.state)
	if len(st.Mirrors) != 1 || st.Mirrors[0].CreatedPort != "cap9" {
		t.Fatalf("state: %+v", st)
	}
	e.db.setPort("br9", "cap9", 0) // deleted by someone else
	eventually(t, "output port created again", func() bool {
		bs, _ := e.db.snapshot()
		_, ok := bs["br9"].Ports["cap9"]
		m, _ := e.m.Mirror(ctx, "late")
		return ok && m.Status.State == api.StateActive
	})
}

func TestRunLifecycle(t *testing.T) {
	e := newEnv(t)
	m := e.start()
	e.add(spec1()) // returns once Run is running
	if err := m.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
	e.stop()
	s := spec1()
	s.Name, s.Ports = "m2", []string{"p2"}
	if _, err := m.AddMirror(context.Background(), s, api.OriginAPI); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("AddMirror after Run returned: %v", err)
	}
}

// TestAccessOutputIsolated: an access-tagged output port is isolated too,
// but the compiler still sees its access tag (copies tagged as natively);
// the tag is restored when the last mirror goes, also across restarts.
func TestAccessOutputIsolated(t *testing.T) {
	e := newEnv(t)
	b := e.db.bridges["br0"]
	b.Ports["acc"] = Port{Name: "acc", OFPort: 20, Tag: 20}
	e.start()
	s := spec1()
	s.Output = api.Output{Port: "acc"}
	e.add(s)
	bs, _ := e.db.snapshot()
	if !bs["br0"].Ports["acc"].Isolated {
		t.Fatal("access output not isolated")
	}
	if !hasFlow(e.ctl.sw(1), "strip_vlan(access 20),output:20") {
		t.Fatalf("compiler did not see the access tag: %q", e.ctl.sw(1).texts())
	}
	st, _ := loadState(e.state)
	if len(st.Isolated) != 1 || st.Isolated[0].Tag != 20 {
		t.Fatalf("state isolated = %+v", st.Isolated)
	}
	e.restartManager()
	eventually(t, "same flows after restart", func() bool {
		m, _ := e.m.Mirror(context.Background(), "m1")
		return m.Status.State == api.StateActive && hasFlow(e.ctl.sw(1), "strip_vlan(access 20),output:20")
	})
	if err := e.m.DeleteMirror(context.Background(), "m1"); err != nil {
		t.Fatal(err)
	}
	bs, _ = e.db.snapshot()
	if bs["br0"].Ports["acc"].Isolated {
		t.Fatal("not restored")
	}
	if st, _ := loadState(e.state); len(st.Isolated) != 0 {
		t.Fatalf("state isolated = %+v", st.Isolated)
	}
}

// TestBridgeRecreated: a bridge deleted and re-created is taken over again
// and its mirrors reinstalled.
func TestBridgeRecreated(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.add(spec1())
	e.db.delBridge("br0")
	waitStatusFake(t, e.m, "m1", "pending: bridge br0 missing")
	e.ctl.setConnected(1, false)
	e.ctl.restart(1) // the new bridge's switch, empty
	e.ctl.setConnected(1, false)
	e.db.addBridge("br0", 1, "p1", "p2", "p3", "mon")
	e.db.mu.Lock()
	e.db.notifyLocked("br0")
	e.db.mu.Unlock()
	eventually(t, "re-taken over and reinstalled", func() bool {
		m, _ := e.m.Mirror(context.Background(), "m1")
		return e.db.isTakenOver("br0") && m.Status.State == api.StateActive && hasFlow(e.ctl.sw(1), "in_port=1")
	})
}

func waitStatusFake(t *testing.T, m *Manager, name, want string) {
	t.Helper()
	eventually(t, name+" "+want, func() bool {
		mi, err := m.Mirror(context.Background(), name)
		return err == nil && mi.Status.String() == want
	})
}

// TestFreshBridgeLeftovers: the first mirror on a bridge that was not
// handed over goes in without reading the flow table first; flows an
// earlier (crashed) run left are found afterwards and removed.
func TestFreshBridgeLeftovers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cookie  uint64
		bundles int
		gen     string // of the mirror's flows
	}{
		{"other generation", 0xf505000000000009, 2, "1"}, // then deleted by cookie
		{"same generation", 0xf501000000000009, 2, "2"},  // then a full sync with generation 2
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			sw := e.ctl.sw(1)
			left := FlowEntry{Table: 7, Priority: 5, Cookie: tc.cookie, Match: "left"}
			sw.flows[left.key()] = left
			e.start()
			e.add(spec1())
			if _, ok := sw.flows[left.key()]; ok {
				t.Fatal("leftover flowspan flow kept")
			}
			if n := sw.numApplies(); n != tc.bundles {
				t.Fatalf("%d bundles, want %d", n, tc.bundles)
			}
			if !hasFlow(sw, "actions=output:4") {
				t.Fatalf("flows: %q", sw.texts())
			}
			if want := "cookie=0xf50" + tc.gen; !hasFlow(sw, want) {
				t.Fatalf("no flow of generation %s: %q", tc.gen, sw.texts())
			}
		})
	}
}
