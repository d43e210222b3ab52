package flowspan

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowspan/flowspan/api"
	"github.com/flowspan/flowspan/flows"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

// loadSpecs returns n mirrors with perMirror filters each, as make bench's
// section 4 builds them: even mirrors select h1, odd ones h2, all copy to
// mirror0.
func loadSpecs(n, perMirror int) []api.MirrorSpec {
	out := make([]api.MirrorSpec, n)
	g := 0
	for k := range out {
		port := "h1"
		if k%2 == 1 {
			port = "h2"
		}
		s := api.MirrorSpec{Name: fmt.Sprintf("s%04d", k), Bridge: "br0", Ports: []string{port},
			Output: api.Output{Port: "mirror0"}}
		for range perMirror {
			s.Match = append(s.Match, fmt.Sprintf("udp,nw_dst=10.%d.%d.%d,tp_dst=%d", byte(g>>16), byte(g>>8), byte(g), 1000+g%1000))
			g++
		}
		out[k] = s
	}
	return out
}

// BenchmarkInitialLoad measures the Manager adding mirrors one API call at
// a time until a bridge has 64, 128 and 256 (40 filters each), in process:
// real compiler, fake switch and OVSDB, with and without a state file
// (each save is fsynced twice). Linear cost keeps ns/op growing with the
// mirror count, not its square.
func BenchmarkInitialLoad(b *testing.B) {
	for _, state := range []bool{true, false} {
		for _, n := range []int{64, 128, 256} {
			b.Run(fmt.Sprintf("state=%v/mirrors=%d", state, n), func(b *testing.B) { benchLoad(b, n, state) })
		}
	}
}

func benchLoad(b *testing.B, n int, state bool) {
	specs := loadSpecs(n, 40)
	for b.Loop() {
		b.StopTimer()
		m, ctx, stop := newLoadManager(b, state)
		b.StartTimer()
		for _, s := range specs {
			if _, err := m.AddMirror(ctx, s, api.OriginAPI); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		for _, s := range specs {
			mi, err := m.Mirror(ctx, s.Name)
			if err != nil || mi.Status.State != api.StateActive {
				b.Fatalf("mirror %s: %v %+v", s.Name, err, mi.Status)
			}
		}
		stop()
		b.StartTimer()
	}
}

func newLoadManager(b *testing.B, state bool) (*Manager, context.Context, func()) {
	b.Helper()
	db, ctl := newFakeOVSDB(), newFakeController()
	db.addBridge("br0", 1, "h1", "h2", "mirror0")
	ctl.switches[1] = newFakeSwitch()
	ctl.targets["unix:/run/br0.flowspan"] = 1
	logger, _ := test.NewNullLogger()
	logger.SetLevel(logrus.WarnLevel)
	cfg := Config{Logger: logger, OVSDB: db, Controller: ctl, Compiler: NewFlowsCompiler(flows.Config{}), ConnectTimeout: time.Second}
	if state {
		cfg.StatePath = filepath.Join(b.TempDir(), "state.json")
	}
	m, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	return m, ctx, func() { cancel(); <-done; m.Close() }
}
