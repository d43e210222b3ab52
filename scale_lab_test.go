package flowspan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowspan/flowspan/api"
	"github.com/flowspan/flowspan/flows"
	"github.com/flowspan/flowspan/ofctrl"
	"github.com/flowspan/flowspan/ovsdb"
	"github.com/flowspan/flowspan/test/lab"
	"github.com/sirupsen/logrus"
)

// TestLabScaleMeasure adds 256 mirrors with 10,000 filters in all (the
// shape of bench's scale section) one AddMirror at a time through a Manager
// on the real packages against a private OVS, and logs the time per add and
// this process's VmRSS and Go heap at idle. It asserts only that every
// mirror is active and the switch holds the flows (measurements are
// reported, not asserted). It runs with FLOWSPAN_MEASURE=1.
func TestLabScaleMeasure(t *testing.T) {
	if os.Getenv("FLOWSPAN_MEASURE") != "1" {
		t.Skip("measurement: runs with FLOWSPAN_MEASURE=1")
	}
	const mirrors, filters = 256, 10000
	l := lab.New(t)
	l.AddBridge(t, "br0")
	l.AddHost(t, "br0", "h1", lab.HostConfig{MAC: "02:00:00:00:00:01", IPv4: "10.0.0.1/24"})
	l.AddHost(t, "br0", "h2", lab.HostConfig{MAC: "02:00:00:00:00:02", IPv4: "10.0.0.2/24"})
	l.AddInternalPort(t, "br0", "mirror0", 0)
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	log.Out = testWriter{t}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl, err := ovsdb.Dial(ctx, l.DBEndpoint(), ovsdb.Config{Logger: log, Netns: l.Netns()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctrl := ofctrl.New(ofctrl.Config{Logger: log})
	defer ctrl.Close()
	m, err := New(Config{Logger: log, OVSDB: NewOVSDB(cl, nil), Controller: NewController(ctrl),
		Compiler: NewFlowsCompiler(flows.Config{}), StatePath: filepath.Join(t.TempDir(), "state.json")})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done; m.Close() }()

	rss0 := vmRSS(t)
	start := time.Now()
	var per []time.Duration
	g := 0
	for k := range mirrors {
		n := filters / mirrors
		if k < filters%mirrors {
			n++
		}
		port := []string{"h1", "h2"}[k%2]
		spec := api.MirrorSpec{Name: fmt.Sprintf("s%04d", k), Bridge: "br0", Ports: []string{port}, Output: api.Output{Port: "mirror0"}}
		for range n {
			spec.Match = append(spec.Match, fmt.Sprintf("udp,nw_dst=10.%d.%d.%d,tp_dst=%d", byte(g>>16), byte(g>>8), byte(g), 1000+g%1000))
			g++
		}
		t0 := time.Now()
		mi, err := m.AddMirror(ctx, spec, api.OriginAPI)
		if err != nil {
			t.Fatal(err)
		}
		if mi.Status.State != api.StateActive {
			t.Fatalf("mirror %s: %v", spec.Name, mi.Status)
		}
		per = append(per, time.Since(t0))
	}
	total := time.Since(start)
	out, err := l.Ofctl("-O", "OpenFlow13", "dump-aggregate", "br0")
	if err != nil || !strings.Contains(out, "flow_count=") {
		t.Fatalf("dump-aggregate: %v %s", err, out)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	busy := vmRSS(t)
	time.Sleep(2 * time.Second) // idle: let the scavenger and any idle release run
	idle := vmRSS(t)
	var ms2 runtime.MemStats
	runtime.ReadMemStats(&ms2)
	runtime.GC()
	var live runtime.MemStats
	runtime.ReadMemStats(&live)
	if p := os.Getenv("FLOWSPAN_HEAPPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		pprof.WriteHeapProfile(f)
		f.Close()
	}
	t.Logf("MEASURE live heap after GC %.1f MiB (%d objects)", mib(live.HeapAlloc), live.HeapObjects)
	t.Logf("MEASURE adds: %d mirrors in %v; add #1 %v, #64 %v, #128 %v, #256 %v",
		mirrors, total.Round(time.Millisecond), per[0].Round(time.Microsecond), per[63].Round(time.Microsecond),
		per[127].Round(time.Microsecond), per[255].Round(time.Microsecond))
	t.Logf("MEASURE %s", strings.TrimSpace(out))
	t.Logf("MEASURE VmRSS: before %.1f MiB, after adds %.1f MiB, idle %.1f MiB; heap in use %.1f → %.1f MiB, heap released %.1f MiB, total alloc %.0f MiB",
		rss0, busy, idle, mib(ms.HeapInuse), mib(ms2.HeapInuse), mib(ms2.HeapReleased), mib(ms2.TotalAlloc))
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func vmRSS(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
