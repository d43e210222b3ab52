package flowspan

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/flowspan/flowspan/api"
)

// mgmtOVSDB gives the fake bridges a management socket.
type mgmtOVSDB struct {
	*fakeOVSDB
	mu          sync.Mutex
	takeOverErr error
}

func (o *mgmtOVSDB) ManagementTarget(bridge string) string { return "unix:/run/" + bridge + ".mgmt" }

func (o *mgmtOVSDB) TakeOver(ctx context.Context, bridge string, isolate ...string) (string, error) {
	o.mu.Lock()
	err := o.takeOverErr
	o.mu.Unlock()
	if err != nil {
		return "", err
	}
	return o.fakeOVSDB.TakeOver(ctx, bridge, isolate...)
}

// mgmtController opens sessions to the fake switches and isolates ports
// "over OpenFlow", recording both.
type mgmtController struct {
	*fakeController
	mu         sync.Mutex
	sessions   []string // targets
	open       int      // sessions not closed
	noFlood    map[uint32]bool
	isolations []string
	// lose, when set, empties the switch between the session's full sync
	// and the take-over (as if vswitchd had restarted).
	lose bool
	// isoErr, when set, is IsolateNow's error.
	isoErr error
	// lost, when set, makes sessions go down at their first change.
	lost bool
}

// lostConn is a session that went down: changes fail, Connected says so.
type lostConn struct{ fakeConn }

func (lostConn) Apply(context.Context, Changes) error {
	return errors.New("write: broken pipe (bundle discarded)")
}

func (lostConn) Connected() bool { return false }

func (c *mgmtController) DialSession(_ context.Context, target string, want uint64) (Switch, func(), error) {
	var dpid uint64
	switch target {
	case "unix:/run/br0.mgmt":
		dpid = 1
	case "unix:/run/br1.mgmt":
		dpid = 2
	default:
		return nil, nil, fmt.Errorf("%s: no such socket", target)
	}
	if dpid != want {
		return nil, nil, fmt.Errorf("%s: datapath id %016x, want %016x", target, dpid, want)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sessions = append(c.sessions, target)
	c.open++
	closed := false
	var conn Switch = fakeConn{c.sw(dpid), -len(c.sessions)}
	if c.lost {
		conn = lostConn{conn.(fakeConn)}
	}
	return conn, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !closed {
			closed = true
			c.open--
		}
	}, nil
}

func (c *mgmtController) IsolateNow(_ context.Context, target string, dpid uint64, ofport uint32, _ bool) (Isolation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isoErr != nil {
		return Isolation{}, c.isoErr
	}
	c.noFlood[ofport] = true
	c.isolations = append(c.isolations, fmt.Sprintf("%s %d", target, ofport))
	return Isolation{Undo: func(context.Context) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.noFlood, ofport)
		return nil
	}}, nil
}

func (c *mgmtController) PrepareIsolation(string, uint64) {}

func (c *mgmtController) Dial(ctx context.Context, target string) error {
	c.mu.Lock()
	lose := c.lose
	c.mu.Unlock()
	if lose {
		if dpid, ok := c.targets[target]; ok {
			c.restart(dpid)
			return nil
		}
	}
	return c.fakeController.Dial(ctx, target)
}

func newMgmtEnv(t *testing.T) (*testEnv, *mgmtOVSDB, *mgmtController) {
	e := newEnv(t)
	db := &mgmtOVSDB{fakeOVSDB: e.db}
	ctl := &mgmtController{fakeController: e.ctl, noFlood: map[uint32]bool{}}
	e.viaMgmt = true
	e.wrapDB = func(*fakeOVSDB) OVSDB { return db }
	e.wrapCtl = func(*fakeController) Controller { return ctl }
	return e, db, ctl
}

// addInOneBundle adds spec1 (output mon, port 4) and fails unless it is
// active and the switch got exactly one bundle (what: which one) with its
// copies.
func addInOneBundle(t *testing.T, e *testEnv, what string) *fakeSwitch {
	t.Helper()
	if m := e.add(spec1()); m.Status.State != api.StateActive {
		t.Fatalf("status = %v", m.Status)
	}
	sw := e.ctl.sw(1)
	if n := sw.numApplies(); n != 1 {
		t.Fatalf("%d bundles committed, want 1 (%s)", n, what)
	}
	if !hasFlow(sw, "actions=output:4") {
		t.Fatalf("flows: %q", sw.texts())
	}
	return sw
}

// The first mirror on a bridge goes in through the management socket; the
// bridge's own connection then takes over without a second full sync.
func TestColdAddThroughManagementSocket(t *testing.T) {
	e, _, ctl := newMgmtEnv(t)
	e.start()
	sw := addInOneBundle(t, e, "the session's full sync, adopted by the connection")
	ctl.mu.Lock()
	sessions, open, isolations, noFlood := slices.Clone(ctl.sessions), ctl.open, slices.Clone(ctl.isolations), len(ctl.noFlood)
	ctl.mu.Unlock()
	if !slices.Equal(sessions, []string{"unix:/run/br0.mgmt"}) || open != 0 {
		t.Fatalf("sessions %q, %d left open", sessions, open)
	}
	if !slices.Equal(isolations, []string{"unix:/run/br0.mgmt 4"}) || noFlood != 0 {
		t.Fatalf("OpenFlow isolations %q, %d not undone", isolations, noFlood)
	}
	bs, taken := e.db.snapshot()
	if !taken["br0"] || !bs["br0"].Ports["mon"].Isolated {
		t.Fatalf("after the add: taken over %v, mon isolated in OVSDB %v", taken["br0"], bs["br0"].Ports["mon"].Isolated)
	}
	// The Manager uses the adopted connection: a second mirror is a diff.
	s2 := spec1()
	s2.Name, s2.Ports = "m2", []string{"p2"}
	e.add(s2)
	if n := sw.numApplies(); n != 2 {
		t.Fatalf("%d bundles after a second add, want 2", n)
	}
	if last := sw.applies[1]; len(last.DeleteCookies) != 0 {
		t.Fatalf("second add was a full sync: %+v", last)
	}
}

// The add starts again, taking the bridge over first (isolating the output
// in OVSDB), when the output cannot be isolated over OpenFlow (the session's
// bundle, sent while that was tried, is not committed) and when the session
// goes down under the add (one kept from an earlier add whose switch
// restarted, say).
func TestColdAddFallsBackToTakeOverFirst(t *testing.T) {
	for name, setup := range map[string]func(*mgmtController){
		"isolation fails": func(c *mgmtController) { c.isoErr = errors.New("no OpenFlow 1.0 here") },
		"session lost":    func(c *mgmtController) { c.lost = true },
	} {
		t.Run(name, func(t *testing.T) {
			e, _, ctl := newMgmtEnv(t)
			setup(ctl)
			e.start()
			addInOneBundle(t, e, "the full sync after the take-over")
			ctl.mu.Lock()
			sessions, open := slices.Clone(ctl.sessions), ctl.open
			ctl.mu.Unlock()
			if !slices.Equal(sessions, []string{"unix:/run/br0.mgmt"}) || open != 0 {
				t.Fatalf("sessions %q, %d left open", sessions, open)
			}
			bs, taken := e.db.snapshot()
			if !taken["br0"] || !bs["br0"].Ports["mon"].Isolated {
				t.Fatalf("after the add: taken over %v, mon isolated in OVSDB %v", taken["br0"], bs["br0"].Ports["mon"].Isolated)
			}
			if got, err := e.m.Mirrors(context.Background()); err != nil || len(got) != 1 {
				t.Fatalf("mirrors after the add: %d, %v; want 1", len(got), err)
			}
		})
	}
}

// A failed take-over undoes everything the session did.
func TestColdAddTakeOverFailureChangesNothing(t *testing.T) {
	e, db, ctl := newMgmtEnv(t)
	e.start()
	db.mu.Lock()
	db.takeOverErr = errors.New("ovsdb says no")
	db.mu.Unlock()
	_, err := e.m.AddMirror(context.Background(), spec1(), api.OriginAPI)
	if err == nil || !strings.Contains(err.Error(), "ovsdb says no") {
		t.Fatalf("err = %v", err)
	}
	if got := e.ctl.sw(1).texts(); len(got) != 0 {
		t.Fatalf("flows left: %q", got)
	}
	ctl.mu.Lock()
	open, noFlood := ctl.open, len(ctl.noFlood)
	ctl.mu.Unlock()
	if open != 0 || noFlood != 0 {
		t.Fatalf("%d sessions open, %d ports still isolated over OpenFlow", open, noFlood)
	}
	bs, taken := e.db.snapshot()
	if taken["br0"] || bs["br0"].Ports["mon"].Isolated {
		t.Fatalf("taken over %v, mon isolated %v", taken["br0"], bs["br0"].Ports["mon"].Isolated)
	}
	if ms, _ := e.m.Mirrors(context.Background()); len(ms) != 0 {
		t.Fatalf("mirrors: %+v", ms)
	}
	// It works once OVSDB does.
	db.mu.Lock()
	db.takeOverErr = nil
	db.mu.Unlock()
	e.add(spec1())
}

// When the bridge's own connection does not find the session's flows (the
// switch lost them), the add syncs again over it.
func TestColdAddResyncsWhenFlowsAreGone(t *testing.T) {
	e, _, ctl := newMgmtEnv(t)
	ctl.lose = true
	e.start()
	m := e.add(spec1())
	if m.Status.State != api.StateActive {
		t.Fatalf("status = %v", m.Status)
	}
	if !hasFlow(e.ctl.sw(1), "actions=output:4") {
		t.Fatalf("flows after the resync: %q", e.ctl.sw(1).texts())
	}
}
