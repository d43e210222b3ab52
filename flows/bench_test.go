package flows

import (
	"fmt"
	"syscall"
	"testing"
)

// benchInput is a 500-port bridge (access ports in 20 VLANs, trunks, 64
// output ports) and 256 mirrors, each selecting two ports in both
// directions with 40 filters (10,240 filters).
func benchInput() ([]Mirror, BridgeFacts) {
	facts := BridgeFacts{Ports: map[string]PortFacts{}}
	for i := 1; i <= 500; i++ {
		p := PortFacts{OFPort: uint32(i)}
		switch {
		case i > 436:
			p.Tag, p.Isolated = 4095, true // outputs
		case i%10 == 0:
			p.Trunks = []uint16{10, 11, 12, 13}
		case i%10 == 5:
			// trunk of all VLANs
		default:
			p.Tag = uint16(10 + i%20)
		}
		facts.Ports[fmt.Sprintf("p%d", i)] = p
	}
	mirrors := make([]Mirror, 256)
	for i := range mirrors {
		m := Mirror{
			Name:   fmt.Sprintf("m%03d", i),
			ID:     uint16(i + 1),
			Ports:  []string{fmt.Sprintf("p%d", 1+i), fmt.Sprintf("p%d", 200+i%200)},
			Output: Output{Port: fmt.Sprintf("p%d", 437+i%64)},
		}
		for j := 0; j < 40; j++ {
			m.Filters = append(m.Filters, fmt.Sprintf("tcp,nw_dst=10.%d.%d.0/24,tp_dst=%d", i, j, 1000+j))
		}
		mirrors[i] = m
	}
	return mirrors, facts
}

// BenchmarkCompile256x40 also reports the process CPU time per compile
// (cpu-ns/op, GC included): on a loaded shared machine wall time (ns/op)
// mostly measures waiting for a core.
func BenchmarkCompile256x40(b *testing.B) {
	mirrors, facts := benchInput()
	b.ReportAllocs()
	var n int
	start := cpuTime()
	for b.Loop() {
		r, err := Compile(Config{}, mirrors, facts)
		if err != nil {
			b.Fatal(err)
		}
		n = len(r.Flows)
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(n), "flows")
}

func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func BenchmarkDiff256x40(b *testing.B) {
	mirrors, facts := benchInput()
	before, err := Compile(Config{}, mirrors, facts)
	if err != nil {
		b.Fatal(err)
	}
	mirrors[7].Filters = append([]string(nil), mirrors[7].Filters...)
	mirrors[7].Filters[3] = "udp"
	after, err := Compile(Config{}, mirrors, facts)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ch := Diff(before.Flows, after.Flows)
		if len(ch.Add) != 1 {
			b.Fatalf("diff: %d adds", len(ch.Add))
		}
	}
}

// TestBenchInputCompiles keeps the benchmark input honest: every mirror is
// active and the flow count is what the design predicts.
func TestBenchInputCompiles(t *testing.T) {
	mirrors, facts := benchInput()
	r := mustCompile(t, Config{}, mirrors, facts)
	for name, st := range r.Status {
		if !st.Active {
			t.Fatalf("%s inactive: %v", name, st.Err)
		}
	}
	if len(r.Flows) < 256*40 {
		t.Errorf("%d flows, fewer than the filters alone", len(r.Flows))
	}
}
