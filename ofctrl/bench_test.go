package ofctrl

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowspan/flowspan/test/lab"
)

// flowText is the ovs-ofctl form of testFlows(n, table, cookie)[i].
func flowText(i int, table uint8, cookie uint64) string {
	out := fmt.Sprintf("output:%d", 1+i%5)
	if i%2 == 1 {
		out = fmt.Sprintf("output(port=%d,max_len=128)", 1+i%5)
	}
	return fmt.Sprintf("table=%d,priority=100,cookie=0x%x,reg0=0x%x,actions=%s,resubmit(,%d)", table, cookie+uint64(i), i, out, table+1)
}

// vswitchdCPU returns the CPU time all ovs-vswitchd threads have used.
func vswitchdCPU(b testing.TB, l *lab.Lab) time.Duration {
	b.Helper()
	pidb, err := os.ReadFile(filepath.Join(l.RunDir(), "ovs-vswitchd.pid"))
	if err != nil {
		b.Fatal(err)
	}
	pid := strings.TrimSpace(string(pidb))
	tasks, err := filepath.Glob("/proc/" + pid + "/task/*/schedstat")
	if err != nil || len(tasks) == 0 {
		b.Fatalf("vswitchd %s threads: %v", pid, err)
	}
	var total time.Duration
	for _, p := range tasks {
		s, err := os.ReadFile(p)
		if err != nil {
			continue // thread exited
		}
		ns, err := strconv.ParseInt(strings.Fields(string(s))[0], 10, 64)
		if err == nil {
			total += time.Duration(ns)
		}
	}
	return total
}

// selfCPU is the CPU time this process has used (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkInstall10kFlows installs 10,000 flows into a real OVS in one
// bundle with ofctrl, and the same flows with `ovs-ofctl --bundle
// add-flows`, and reports ns/op for each plus, for ofctrl, the CPU time
// ovs-vswitchd spent (ovs-cpu-ns/op), wall/ovs-cpu, and the CPU time of
// this process (ctrl-cpu-ns/op: encoding, writing, reading replies, GC). Each iteration starts
// from an empty table (cleared outside the timer).
//
//	go test -run='^$' -bench=BenchmarkInstall10kFlows -benchtime=10x ./ofctrl/
func BenchmarkInstall10kFlows(b *testing.B) {
	const n = 10000
	l := lab.New(b)
	l.AddBridge(b, "br0")
	dpid := l.DatapathID(b, "br0")
	clear := func(b *testing.B) {
		b.Helper()
		if out, err := l.Ofctl("-O", "OpenFlow13", "del-flows", "br0", "table=1"); err != nil {
			b.Fatalf("del-flows: %v: %s", err, out)
		}
	}
	// check verifies the table holds the n flows and that both installers
	// produce exactly the same table (so the comparison is fair).
	var first string
	check := func(b *testing.B) {
		b.Helper()
		out, err := l.Ofctl("-O", "OpenFlow13", "--no-stats", "--sort", "dump-flows", "br0", "table=1")
		if err != nil || strings.Count(out, "priority=") != n {
			b.Fatalf("after install: %v: %d flows", err, strings.Count(out, "priority="))
		}
		if first == "" {
			first = out
		} else if out != first {
			b.Fatalf("installed tables differ between runs/installers")
		}
	}

	b.Run("ofctrl", func(b *testing.B) {
		c := New(Config{})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		sw := mgmtSwitch(b, ctx, c, l, dpid)
		var ovsCPU, ownCPU, wall time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			clear(b)
			mods := testFlows(n, 1, 0x10000)
			cpu0, own0 := vswitchdCPU(b, l), selfCPU()
			b.StartTimer()
			t0 := time.Now()
			if err := sw.Apply(ctx, mods); err != nil {
				b.Fatal(err)
			}
			wall += time.Since(t0)
			b.StopTimer()
			ownCPU += selfCPU() - own0
			ovsCPU += vswitchdCPU(b, l) - cpu0
			check(b)
			b.StartTimer()
		}
		b.ReportMetric(float64(ovsCPU.Nanoseconds())/float64(b.N), "ovs-cpu-ns/op")
		b.ReportMetric(float64(wall)/float64(ovsCPU), "wall/ovs-cpu")
		b.ReportMetric(float64(ownCPU.Nanoseconds())/float64(b.N), "ctrl-cpu-ns/op")
	})

	b.Run("ovs-ofctl-bundle", func(b *testing.B) {
		var sb strings.Builder
		for i := 0; i < n; i++ {
			sb.WriteString(flowText(i, 1, 0x10000))
			sb.WriteByte('\n')
		}
		file := filepath.Join(b.TempDir(), "flows.txt")
		if err := os.WriteFile(file, []byte(sb.String()), 0o600); err != nil {
			b.Fatal(err)
		}
		mgmt := "unix:" + filepath.Join(l.RunDir(), "br0.mgmt")
		var ovsCPU, wall time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			clear(b)
			cpu0 := vswitchdCPU(b, l)
			b.StartTimer()
			t0 := time.Now()
			if out, err := exec.Command("ovs-ofctl", "-O", "OpenFlow13", "--bundle", "add-flows", mgmt, file).CombinedOutput(); err != nil {
				b.Fatalf("ovs-ofctl: %v: %s", err, out)
			}
			wall += time.Since(t0)
			b.StopTimer()
			ovsCPU += vswitchdCPU(b, l) - cpu0
			check(b)
			b.StartTimer()
		}
		b.ReportMetric(float64(ovsCPU.Nanoseconds())/float64(b.N), "ovs-cpu-ns/op")
		b.ReportMetric(float64(wall)/float64(ovsCPU), "wall/ovs-cpu")
	})
}
