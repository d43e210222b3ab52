package ovsdb

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/flowspan/flowspan/ovsdb/vswitchd"
)

// waitBridgeRow polls the raw (ovs-vsctl-like) view until ok.
func waitBridgeRow(t *testing.T, m *memDB, name string, ok func(vswitchd.Bridge) bool) vswitchd.Bridge {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b := m.bridgeRow(name)
		if ok(b) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge %s row never satisfied the condition: %+v", name, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTakeOverReleaseInMemory(t *testing.T) {
	for _, tc := range []struct {
		name      string
		protocols []vswitchd.BridgeProtocols
		failMode  *vswitchd.BridgeFailMode
		modes     []Mode
	}{
		{name: "service", modes: []Mode{ServiceMode{}}},
		{name: "controller", modes: []Mode{ControllerMode{Target: "unix:/tmp/fs.sock"}}},
		{name: "controller-of10", protocols: []vswitchd.BridgeProtocols{"OpenFlow10"},
			modes: []Mode{ControllerMode{Target: "tcp:127.0.0.1:6653"}}},
		{name: "service-then-controller", failMode: ptr(vswitchd.BridgeFailModeStandalone),
			modes: []Mode{ServiceMode{}, ControllerMode{Target: "unix:/tmp/fs.sock"}, ServiceMode{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemDB(t)
			m.addBridge("br0", vswitchd.Port{Name: "vm1"})
			// An existing controller of someone else's, and prior settings.
			ct := &vswitchd.Controller{UUID: "other", Target: "tcp:192.0.2.1:6653"}
			ops, _ := m.raw.Create(ct)
			br := &vswitchd.Bridge{Name: "br0", Protocols: tc.protocols, FailMode: tc.failMode,
				ExternalIDs: map[string]string{"owner": "admin"}}
			uops, _ := m.raw.WhereCache(func(b *vswitchd.Bridge) bool { return b.Name == "br0" }).Update(br, &br.Protocols, &br.FailMode, &br.ExternalIDs)
			mops, _ := m.raw.WhereCache(func(b *vswitchd.Bridge) bool { return b.Name == "br0" }).Mutate(br,
				modelMutation(&br.Controller, "insert", []string{"other"}))
			m.transact(append(append(ops, uops...), mops...)...)
			before := waitBridgeRow(t, m, "br0", func(b vswitchd.Bridge) bool { return len(b.Controller) == 1 })

			c := dialMem(t, m, Config{RunDir: "/var/run/ovs-test"})
			ctx := ctxT(t, 20*time.Second)
			for i, mode := range tc.modes {
				dial, err := c.TakeOver(ctx, "br0", mode)
				if err != nil {
					t.Fatal(err)
				}
				switch md := mode.(type) {
				case ServiceMode:
					if dial != "unix:/var/run/ovs-test/br0.flowspan" {
						t.Errorf("service dial target = %q", dial)
					}
				case ControllerMode:
					if dial != md.Target {
						t.Errorf("controller target = %q", dial)
					}
				}
				f := waitFacts(t, c, "br0", func(b Bridge) bool { return b.Mode == mode.modeName() })
				var ours []Controller
				for _, ct := range f.Controllers {
					if ct.Flowspan {
						ours = append(ours, ct)
					}
				}
				if len(f.Controllers) != 2 || len(ours) != 1 {
					t.Fatalf("controllers = %+v, want the admin's and one of ours", f.Controllers)
				}
				if _, ok := mode.(ControllerMode); ok {
					if f.FailMode != "secure" {
						t.Errorf("fail mode = %q, want secure", f.FailMode)
					}
				} else if i == 0 && f.FailMode != string(ptrOr(tc.failMode, "")) {
					t.Errorf("service mode changed fail mode to %q", f.FailMode)
				}
				if len(f.Protocols) > 0 && !contains(f.Protocols, "OpenFlow13") {
					t.Errorf("protocols %v lack OpenFlow13", f.Protocols)
				}
				// Idempotent: a second call writes nothing. A later
				// sentinel write orders the check after any such write.
				row1 := m.bridgeRow("br0")
				if _, err := c.TakeOver(ctx, "br0", mode); err != nil {
					t.Fatal(err)
				}
				m.sentinel(i)
				assert.Equal(t, row1, m.bridgeRow("br0"), "repeated TakeOver changed the bridge")
			}
			row := m.bridgeRow("br0")
			if row.ExternalIDs[keyPrevCtrls] != "tcp:192.0.2.1:6653" || row.ExternalIDs["owner"] != "admin" {
				t.Errorf("external_ids while handed over: %v", row.ExternalIDs)
			}
			for range 2 {
				if err := c.Release(ctx, "br0"); err != nil {
					t.Fatal(err)
				}
			}
			after := waitBridgeRow(t, m, "br0", func(b vswitchd.Bridge) bool { return len(b.Controller) == 1 && b.ExternalIDs[keyMode] == "" })
			assert.Equal(t, before, after, "bridge row after hand-over + release")
			// Our Controller row was garbage-collected; the admin's is intact.
			var cts []vswitchd.Controller
			_ = m.raw.List(ctx, &cts)
			if len(cts) != 1 || cts[0].Target != "tcp:192.0.2.1:6653" {
				t.Errorf("controller rows after release: %+v", cts)
			}
		})
	}
}

func TestTakeOverErrors(t *testing.T) {
	m := newMemDB(t)
	m.addBridge("br0")
	ctx := ctxT(t, 10*time.Second)
	c := dialMem(t, m, Config{})
	for _, tc := range []struct {
		mode Mode
		want string
	}{
		{ControllerMode{Target: "punix:/x"}, "controller target"},
		{ControllerMode{Target: "tcp:localhost:6653"}, "controller target"},
		{ControllerMode{Target: "tcp:0.0.0.0:6653"}, "controller target"},
		{ControllerMode{Target: "tcp:127.0.0.1:99999"}, "controller target"},
		{ControllerMode{Target: "unix:/x", MaxBackoff: time.Millisecond}, "max backoff"},
		{ServiceMode{Target: "unix:/x"}, "service target"},
		{ServiceMode{Target: "ptcp:0"}, "service target"},
		{ServiceMode{Target: "punix:rel"}, "absolute"},
		{nil, "unknown mode"},
	} {
		if _, err := c.TakeOver(ctx, "br0", tc.mode); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"br0"`) {
			t.Errorf("TakeOver(%#v) = %v, want ErrInvalid containing %q", tc.mode, err, tc.want)
		}
	}
	if _, err := c.TakeOver(ctx, "nobr", ServiceMode{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("TakeOver(nobr) = %v", err)
	}
	if err := c.Release(ctx, "nobr"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Release(nobr) = %v", err)
	}
	// Nothing was written.
	if row := m.bridgeRow("br0"); len(row.Controller) != 0 || len(row.ExternalIDs) != 0 {
		t.Errorf("failed TakeOver changed the bridge: %+v", row)
	}
	// ptcp: dial address defaults to loopback for a unix endpoint.
	dial, err := c.TakeOver(ctx, "br0", ServiceMode{Target: "ptcp:6653"})
	if err != nil || dial != "tcp:127.0.0.1:6653" {
		t.Errorf("ptcp service target: dial %q, %v", dial, err)
	}
	dial, err = c.TakeOver(ctx, "br0", ServiceMode{Target: "pssl:6654:[::1]"})
	if err != nil || dial != "ssl:[::1]:6654" {
		t.Errorf("pssl service target: dial %q, %v", dial, err)
	}
	f := waitFacts(t, c, "br0", func(b Bridge) bool { return len(b.Controllers) == 1 && b.Controllers[0].Target == "pssl:6654:[::1]" })
	if !f.Controllers[0].Flowspan {
		t.Errorf("controllers = %+v", f.Controllers)
	}
}

func waitFacts(t *testing.T, c *Client, bridge string, ok func(Bridge) bool) Bridge {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f, err := c.Bridge(ctxT(t, 5*time.Second), bridge)
		if err != nil {
			t.Fatal(err)
		}
		if ok(f) {
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge %s facts never satisfied the condition: %+v", bridge, f)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ptr[T any](v T) *T { return &v }

func ptrOr[T any](p *T, d T) T {
	if p == nil {
		return d
	}
	return *p
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
