package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/flowspan/flowspan/test/lab"
)

const secProgram = "1 programming"

// installer installs the n flows of one size in one way and returns how
// long it took, as its user sees it.
type installer struct {
	name string
	// na, when set, says why this installer cannot run.
	na      string
	install func(ctx context.Context) (time.Duration, error)
	close   func()
}

const (
	subjFlowspan = "flowspan (ofctrl bundle)"
	subjBundle   = "ovs-ofctl --bundle add-flows"
	subjPlain    = "ovs-ofctl add-flows"
	subjFloor    = "floor: raw pre-encoded bundle"
)

// benchProgramming measures section 1: the same n flows installed by
// flowspan's controller, by ovs-ofctl with and without --bundle, and by a
// minimal raw client (the floor: what OVS itself needs).
//
// flowspan and the floor each keep one connection for all the runs of one
// N, as the daemon does: OVS 3.1 is measurably slower (5–20 %) on a
// connection that already carried a large bundle than on a fresh one, so
// both must be timed in the same regime.
func benchProgramming(t lab.T, cfg *Config, rep *Report) {
	l := lab.New(t)
	l.AddBridge(t, "br0")
	mgmt := filepath.Join(l.RunDir(), "br0.mgmt")
	pid, err := pidFromFile(filepath.Join(l.RunDir(), "ovs-vswitchd.pid"))
	if err != nil {
		t.Fatalf("vswitchd pid: %v", err)
	}
	deadline := time.Now().Add(cfg.budget(1))
	for si, n := range cfg.ProgramSizes {
		cs := "N=" + thousands(int64(n))
		flows := syntheticFlows(n)
		file := filepath.Join(l.Dir(), fmt.Sprintf("flows-%d.txt", n))
		var text strings.Builder
		mods := make([][]byte, n)
		for i, f := range flows {
			text.WriteString(f.text + "\n")
			mods[i] = f.mod
		}
		if err := os.WriteFile(file, []byte(text.String()), 0o600); err != nil {
			t.Fatalf("%v", err)
		}
		ctx := context.Background()
		var commits []float64 // floor: last byte written → commit reply
		ins := []installer{
			flowspanInstaller(ctx, l, "br0", flows),
			{name: subjBundle, install: func(context.Context) (time.Duration, error) {
				start := time.Now()
				_, err := l.Ofctl("-O", "OpenFlow13", "--bundle", "add-flows", "br0", file)
				return time.Since(start), err
			}},
			{name: subjPlain, install: func(context.Context) (time.Duration, error) {
				start := time.Now()
				_, err := l.Ofctl("-O", "OpenFlow13", "add-flows", "br0", file)
				return time.Since(start), err
			}},
			floorInstaller(mgmt, mods, &commits),
		}
		for i := range ins {
			if ins[i].close != nil {
				ins[i].close = once(t, ins[i].close) // also when the section ends early
			}
		}
		rows := map[string]*Row{}
		cpu := map[string][]float64{}
		var alloc []float64 // bytes flowspan's controller allocated per install
		for _, in := range ins {
			rows[in.name] = rep.Add(secProgram, cs, in.name, Duration)
			rows[in.name].NA = in.na
			rows[in.name].Units = float64(n)

		}
		rep.Ratios = append(rep.Ratios,
			Ratio{secProgram, cs, subjFlowspan, subjBundle, subjFlowspan, "ovs-ofctl --bundle ÷ flowspan", Target{">=", 1.3}, false},
			Ratio{secProgram, cs, subjFlowspan, subjFlowspan, subjFloor, "flowspan ÷ floor, medians", Target{}, false},
			Ratio{secProgram, cs, subjFlowspan, subjFlowspan, subjFloor, "flowspan ÷ floor, median of per-round ratios", Target{"<=", 1.2}, true},
			Ratio{secProgram, cs, subjBundle, subjBundle, subjFloor, "÷ floor", Target{}, false},
			Ratio{secProgram, cs, subjPlain, subjPlain, subjBundle, "÷ ovs-ofctl --bundle", Target{}, false},
		)
		for r := 0; r < cfg.ProgramReps[si]; r++ {
			if r > 0 && time.Now().After(deadline) {
				rep.Note("%s %s: stopped after %d runs (time budget)", secProgram, cs, r)
				break
			}
			// Vary the order each run (runOrder) so no tool always goes first.
			for k := range ins {
				in := ins[runOrder(len(ins), r, k)]
				if in.na != "" {
					continue
				}
				clearBenchFlows(t, l)
				c0, err := cpuTime(pid)
				if err != nil {
					t.Fatalf("%v", err)
				}
				var m0, m1 runtime.MemStats
				if in.name == subjFlowspan {
					runtime.GC()
					runtime.ReadMemStats(&m0)
				}
				d, err := in.install(ctx)
				if in.name == subjFlowspan {
					runtime.ReadMemStats(&m1)
					alloc = append(alloc, float64(m1.TotalAlloc-m0.TotalAlloc))
				}
				if err != nil {
					if in.name == subjFlowspan {
						rows[in.name].NA = "failed: " + err.Error()
						ins[runOrder(len(ins), r, k)].na = rows[in.name].NA
						continue
					}
					t.Fatalf("%s, %s: %v", in.name, cs, err)
				}
				c1, _ := cpuTime(pid)
				if got := benchFlowCount(t, l); got != n {
					t.Fatalf("%s, %s: the switch has %d flows after the install, want %d", in.name, cs, got, n)
				}
				rows[in.name].Samples = append(rows[in.name].Samples, d.Seconds())
				cpu[in.name] = append(cpu[in.name], (c1 - c0).Seconds())
				t.Logf("%s %s: %v (vswitchd cpu %v)", in.name, cs, d.Round(time.Microsecond), (c1 - c0).Round(time.Microsecond))
			}
		}
		// The same installs seen as vswitchd CPU time: robust against
		// other load on the machine, which stretches wall times.
		ccs := cs + ", vswitchd CPU time"
		for _, in := range ins {
			cr := rep.Add(secProgram, ccs, in.name, Duration)
			cr.NA = rows[in.name].NA
			if cr.NA == "" {
				cr.Samples = cpu[in.name]
			}
		}
		rep.Ratios = append(rep.Ratios,
			Ratio{secProgram, ccs, subjFlowspan, subjFlowspan, subjFloor, "flowspan ÷ floor, median of per-round ratios", Target{}, true},
			Ratio{secProgram, ccs, subjBundle, subjBundle, subjFloor, "÷ floor", Target{}, false},
			Ratio{secProgram, ccs, subjPlain, subjPlain, subjFloor, "÷ floor", Target{}, false},
		)
		for name, row := range rows {
			if m, ok := median(row.Samples); ok && row.NA == "" {
				c, _ := median(cpu[name])
				row.Extra = fmt.Sprintf("(%.1f µs/flow; vswitchd CPU %s", m*1e6/float64(n), Duration.format(c))
				if a, ok := median(alloc); ok && name == subjFlowspan {
					row.Extra += fmt.Sprintf("; controller allocated %s", Bytes.format(a))
				}
				if c, ok := median(commits); ok && name == subjFloor {
					row.Extra += fmt.Sprintf("; last byte written → commit reply %s", Duration.format(c))
				}
				row.Extra += ")"
			}
		}
		for _, in := range ins {
			if in.close != nil {
				in.close()
			}
		}
		clearBenchFlows(t, l)
	}
}

// clearBenchFlows deletes every flow the benchmark installed.
func clearBenchFlows(t lab.T, l *lab.Lab) {
	t.Helper()
	if _, err := l.Ofctl("-O", "OpenFlow13", "del-flows", "br0",
		fmt.Sprintf("cookie=%#x/%#x", uint64(benchCookie), uint64(benchCookieMask))); err != nil {
		t.Fatalf("%v", err)
	}
	if got := benchFlowCount(t, l); got != 0 {
		t.Fatalf("%d benchmark flows left after del-flows", got)
	}
}

var flowCountRE = regexp.MustCompile(`flow_count=(\d+)`)

// benchFlowCount is how many benchmark flows the switch has.
func benchFlowCount(t lab.T, l *lab.Lab) int {
	t.Helper()
	out, err := l.Ofctl("-O", "OpenFlow13", "dump-aggregate", "br0",
		fmt.Sprintf("cookie=%#x/%#x", uint64(benchCookie), uint64(benchCookieMask)))
	if err != nil {
		t.Fatalf("%v", err)
	}
	m := flowCountRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("dump-aggregate: no flow_count in %q", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// floorInstaller installs mods with the raw client over one connection,
// dialed before the first run and kept for the next ones (like flowspan's);
// commits collects each run's last byte written → commit reply.
func floorInstaller(mgmt string, mods [][]byte, commits *[]float64) installer {
	var rc *rawConn
	in := installer{name: subjFloor, close: func() {
		if rc != nil {
			rc.Close()
		}
	}}
	in.install = func(ctx context.Context) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(ctx, lab.Timeout*3)
		defer cancel()
		if rc == nil {
			c, err := dialRaw(ctx, mgmt)
			if err != nil {
				return 0, err
			}
			rc = c
		}
		tm, err := rc.bundle(ctx, mods)
		if err != nil {
			rc.Close()
			rc = nil // a broken connection is not reused
			return 0, err
		}
		*commits = append(*commits, tm.Commit.Seconds())
		return tm.Total, nil
	}
	return in
}
