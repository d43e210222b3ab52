package flowspan

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flowspan/flowspan/api"
	"github.com/flowspan/flowspan/flows"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

// BenchmarkAddDelete256 measures the Manager's cost of adding and deleting
// one mirror on a bridge that already has 256 (real compiler, fake switch
// and OVSDB, no state file): compile of the whole bridge, diff, apply.
func BenchmarkAddDelete256(b *testing.B) {
	db, ctl := newFakeOVSDB(), newFakeController()
	ports := make([]string, 300)
	for i := range ports {
		ports[i] = fmt.Sprintf("p%d", i)
	}
	db.addBridge("br0", 1, ports...)
	ctl.switches[1] = newFakeSwitch()
	ctl.targets["unix:/run/br0.flowspan"] = 1
	logger, _ := test.NewNullLogger()
	logger.SetLevel(logrus.WarnLevel)
	m, err := New(Config{Logger: logger, OVSDB: db, Controller: ctl, Compiler: NewFlowsCompiler(flows.Config{}), ConnectTimeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done; m.Close() }()
	spec := func(i int) api.MirrorSpec {
		return api.MirrorSpec{Name: fmt.Sprintf("m%d", i), Bridge: "br0", Ingress: []string{ports[i]},
			Match: []string{"tcp,tp_dst=443"}, Output: api.Output{Port: ports[299]}}
	}
	for i := range 256 {
		if _, err := m.AddMirror(ctx, spec(i), api.OriginAPI); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := m.AddMirror(ctx, spec(256), api.OriginAPI); err != nil {
			b.Fatal(err)
		}
		if err := m.DeleteMirror(ctx, "m256"); err != nil {
			b.Fatal(err)
		}
	}
}
