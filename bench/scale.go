package main

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/flowspan/flowspan/api"
	"github.com/flowspan/flowspan/flows"
	"github.com/flowspan/flowspan/test/lab"
)

const (
	secScale       = "4 scale"
	subjCompile    = "flows.Compile (in process)"
	subjCompileMem = "flows.Compile: bytes allocated"
	subjLoad       = "initial load: one API add per mirror, until all active"
	subjReconcile  = "reconcile after vswitchd restart"
	subjRSS        = "daemon RSS at idle"
	scaleFilterFmt = "udp,nw_dst=10.%d.%d.%d,tp_dst=%d"
)

// scaleMirrors returns s.Mirrors mirrors sharing s.Filters filters as
// evenly as possible; even mirrors select h1, odd ones h2, all copy to
// mirror0.
func scaleMirrors(s ScaleSize) []api.MirrorSpec {
	out := make([]api.MirrorSpec, s.Mirrors)
	g := 0
	for k := range out {
		n := s.Filters / s.Mirrors
		if k < s.Filters%s.Mirrors {
			n++
		}
		port := "h1"
		if k%2 == 1 {
			port = "h2"
		}
		m := api.MirrorSpec{Name: fmt.Sprintf("s%04d", k), Bridge: "br0", Ports: []string{port},
			Output: api.Output{Port: "mirror0"}}
		for range n {
			m.Match = append(m.Match, fmt.Sprintf(scaleFilterFmt, byte(g>>16), byte(g>>8), byte(g), 1000+g%1000))
			g++
		}
		out[k] = m
	}
	return out
}

// compileFacts is the bridge twoHosts builds, as the compiler sees it.
func compileFacts() flows.BridgeFacts {
	return flows.BridgeFacts{Ports: map[string]flows.PortFacts{
		"br0":     {Name: "br0", OFPort: 0xfffffffe, Type: "internal"},
		"h1":      {Name: "h1", OFPort: 1},
		"h2":      {Name: "h2", OFPort: 2},
		"mirror0": {Name: "mirror0", OFPort: 3, Type: "internal"},
	}}
}

func toFlowsMirrors(specs []api.MirrorSpec) []flows.Mirror {
	out := make([]flows.Mirror, len(specs))
	for i, s := range specs {
		out[i] = flows.Mirror{Name: s.Name, Ports: s.Ports, Filters: s.Match, Output: flows.Output{Port: s.Output.Port}}
	}
	return out
}

// benchScale measures sections 4 and 5: for each size, the compile time of
// the mirrors, and with the daemon: the initial load, the reconcile time
// after vswitchd restarts and the daemon's RSS at idle. Each size gets its
// own lab and daemon.
func benchScale(t lab.T, cfg *Config, rep *Report) {
	deadline := time.Now().Add(cfg.budget(4))
	for _, s := range cfg.ScaleSizes {
		cs := fmt.Sprintf("%d mirrors / %s filters", s.Mirrors, thousands(int64(s.Filters)))
		specs := scaleMirrors(s)
		// Compile, in process: no lab needed.
		row := rep.Add(secScale, cs, subjCompile, Duration)
		row.Units = float64(s.Filters)
		var nflows int
		var allocs []float64
		for r := 0; r < max(cfg.ScaleReps, 3); r++ {
			ms := toFlowsMirrors(specs)
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			start := time.Now()
			res, err := flows.Compile(flows.Config{}, ms, compileFacts())
			d := time.Since(start)
			runtime.ReadMemStats(&m1)
			if err != nil {
				row.NA = "compile failed: " + err.Error()
				break
			}
			for name, st := range res.Status {
				if !st.Active {
					t.Fatalf("compile %s: mirror %s not active: %v", cs, name, st.Err)
				}
			}
			nflows = len(res.Flows)
			row.Samples = append(row.Samples, d.Seconds())
			allocs = append(allocs, float64(m1.TotalAlloc-m0.TotalAlloc))
		}
		if row.NA == "" {
			row.Extra = fmt.Sprintf("(%s flows)", thousands(int64(nflows)))
		}
		arow := rep.Add(secScale, cs, subjCompileMem, Bytes)
		arow.Units = float64(s.Filters)
		arow.NA = row.NA
		arow.Samples = allocs
		load := rep.Add(secScale, cs, subjLoad, Duration)
		recon := rep.Add(secScale, cs, subjReconcile, Duration)
		recon.Target = Target{"<=", 1.0}
		recon.Units = float64(s.Filters)
		mem := rep.Add(secScale, cs, subjRSS, Bytes)
		mem.Target = Target{"<=", 50 << 20}
		mem.Units = float64(s.Filters)
		if time.Now().After(deadline) {
			for _, r := range []*Row{load, recon, mem} {
				r.NA = "skipped: time budget of the section used up"
			}
			continue
		}
		// Everything else runs against a lab of its own, removed before
		// the next size.
		err := runScenario(secScale+" "+cs, cfg.Log, func(t lab.T) {
			scaleWithDaemon(t, cfg, deadline, specs, load, recon, mem)
		})
		if err != nil {
			rep.Note("%s %s: stopped early: %v", secScale, cs, err)
			for _, r := range []*Row{load, recon, mem} {
				if r.NA == "" && len(r.Samples) == 0 {
					r.NA = "stopped early: " + err.Error()
				}
			}
		}
	}
}

func scaleWithDaemon(t lab.T, cfg *Config, deadline time.Time, specs []api.MirrorSpec, load, recon, mem *Row) {
	l := lab.New(t)
	twoHosts(t, l)
	d, err := startDaemon(t, l, cfg.Flowspan)
	if err != nil {
		for _, r := range []*Row{load, recon, mem} {
			r.NA = err.Error()
		}
		return
	}
	c := d.client()
	defer c.Close()
	ctx := context.Background()
	start := time.Now()
	names := make([]string, len(specs))
	for i, s := range specs {
		if time.Now().After(deadline) {
			for _, r := range []*Row{load, recon, mem} {
				r.NA = fmt.Sprintf("loading stopped by the section's time budget after %d of %d mirrors (%v)", i, len(specs), time.Since(start).Round(time.Second))
			}
			return
		}
		actx, cancel := context.WithTimeout(ctx, lab.Timeout)
		_, err := c.AddMirror(actx, s)
		cancel()
		if err != nil {
			for _, r := range []*Row{load, recon, mem} {
				r.NA = fmt.Sprintf("adding mirror %s failed: %v", s.Name, err)
			}
			return
		}
		names[i] = s.Name
	}
	if err := d.waitActive(names...); err != nil {
		for _, r := range []*Row{load, recon, mem} {
			r.NA = err.Error()
		}
		return
	}
	load.Samples = append(load.Samples, time.Since(start).Seconds())
	want := flowCount(t, l)
	mem.Samples = append(mem.Samples, idleRSS(t, d.pid()))
	for r := 0; r < cfg.ScaleReps; r++ {
		l.StopVswitchd(t)
		l.StartVswitchd(t)
		up := time.Now()
		got := 0
		for time.Since(up) < 3*lab.Timeout {
			// Right after the start the bridge may not exist yet
			// (no br0.mgmt): that counts as no flows.
			if n, err := tryFlowCount(l); err == nil {
				if got = n; got == want {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		if got != want {
			recon.NA = fmt.Sprintf("flows not restored: %d of %d after %v", got, want, 3*lab.Timeout)
			return
		}
		recon.Samples = append(recon.Samples, time.Since(up).Seconds())
		t.Logf("reconcile: %d flows back %v after vswitchd was up", want, time.Since(up))
	}
	recon.Extra = fmt.Sprintf("(%s flows on the switch)", thousands(int64(want)))
	mem.Samples = append(mem.Samples, idleRSS(t, d.pid()))
}

// flowCount is the number of flows in every table of br0.
func flowCount(t lab.T, l *lab.Lab) int {
	t.Helper()
	n, err := tryFlowCount(l)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return n
}

// tryFlowCount counts the bridge's flows except those in flowspan's macs
// table: learned and seeded MAC flows come and go with traffic and with
// the bridge's own MAC table (empty after a vswitchd restart), so they are
// not part of what a reconcile restores.
func tryFlowCount(l *lab.Lab) (int, error) {
	all, err := aggregateCount(l)
	if err != nil {
		return 0, err
	}
	macs, err := aggregateCount(l, fmt.Sprintf("table=%d", macsTable()))
	if err != nil {
		return 0, err
	}
	return all - macs, nil
}

func aggregateCount(l *lab.Lab, match ...string) (int, error) {
	out, err := l.Ofctl(append([]string{"-O", "OpenFlow13", "dump-aggregate", "br0"}, match...)...)
	if err != nil {
		return 0, err
	}
	m := flowCountRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("dump-aggregate: no flow_count in %q", out)
	}
	return strconv.Atoi(m[1])
}

// macsTable is the table the daemon's default flows.Config puts learned
// MAC flows in.
func macsTable() int {
	for _, ts := range flows.Pipeline {
		if ts.Name == "macs" {
			return int(flows.Config{}.TableBase) + int(ts.Offset)
		}
	}
	return -1
}

// idleRSS waits until the daemon's RSS has been stable for a second (at
// most 10 s) and returns it.
func idleRSS(t lab.T, pid int) float64 {
	t.Helper()
	var last float64
	stable := 0
	for i := 0; i < 100 && stable < 10; i++ {
		v, err := rss(pid)
		if err != nil {
			t.Fatalf("daemon RSS: %v", err)
		}
		if v == last {
			stable++
		} else {
			stable = 0
		}
		last = v
		time.Sleep(100 * time.Millisecond)
	}
	return last
}
