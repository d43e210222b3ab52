package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/flowspan/flowspan/test/lab"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
		ok   bool
	}{
		{nil, 0, false},
		{[]float64{3}, 3, true},
		{[]float64{5, 1, 3}, 3, true},
		{[]float64{4, 1, 3, 2}, 2.5, true},
		{[]float64{1, math.Inf(1), math.Inf(1)}, math.Inf(1), true},
	}
	for _, tt := range tests {
		got, ok := median(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("median(%v) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	in := []float64{3, 1, 2}
	median(in)
	if in[0] != 3 || in[1] != 1 {
		t.Errorf("median sorted its input: %v", in)
	}
}

func TestTarget(t *testing.T) {
	if !(Target{">=", 1.3}).Met(1.3) || (Target{">=", 1.3}).Met(1.29) {
		t.Error(">= 1.3 wrong")
	}
	if !(Target{"<=", 1.2}).Met(1.2) || (Target{"<=", 1.2}).Met(1.21) {
		t.Error("<= 1.2 wrong")
	}
	if got := (Target{">=", 1.3}).String(); got != "≥ 1.3" {
		t.Errorf("String() = %q", got)
	}
}

func TestKindFormat(t *testing.T) {
	tests := []struct {
		k    Kind
		v    float64
		want string
	}{
		{Duration, 0.0953, "95.3 ms"},
		{Duration, 0.0074, "7.40 ms"},
		{Duration, 0.000250, "250 µs"},
		{Duration, 1.25, "1.25 s"},
		{Duration, math.Inf(1), "∞"},
		{Bitrate, 8.1e8, "810 Mbit/s"},
		{Bitrate, 1.234e9, "1.23 Gbit/s"},
		{PacketRate, 62500, "62.5 kpps"},
		{Count, 1234567, "1,234,567"},
		{Bytes, 50 << 20, "50.0 MiB"},
	}
	for _, tt := range tests {
		if got := tt.k.format(tt.v); got != tt.want {
			t.Errorf("format(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

// A report with a measured pair, a missing subject and a censored one.
func sampleReport() *Report {
	r := &Report{}
	r.Add("1 programming", "N=10", "fast", Duration).Samples = []float64{0.1, 0.3, 0.2}
	r.Add("1 programming", "N=10", "slow", Duration).Samples = []float64{0.5, 0.4, 0.6}
	na := r.Add("1 programming", "N=10", "absent", Duration)
	na.NA = "the controller has not landed"
	stuck := r.Add("2 first", "c", "stuck", Duration)
	stuck.Samples, stuck.Limit = []float64{math.Inf(1), math.Inf(1), 0.2}, 5
	r.Add("2 first", "c", "quick", Duration).Samples = []float64{0.05}
	r.Ratios = []Ratio{
		{"1 programming", "N=10", "fast", "slow", "fast", "slow ÷ fast", Target{">=", 1.3}, false},
		{"1 programming", "N=10", "fast", "fast", "slow", "fast ÷ slow", Target{"<=", 0.3}, false},
		{"1 programming", "N=10", "absent", "slow", "absent", "slow ÷ absent", Target{">=", 1}, false},
		{"2 first", "c", "quick", "quick", "stuck", "quick ÷ stuck", Target{"<=", 1}, false},
	}
	return r
}

// TestPairedRatio: a paired ratio is the median of per-run ratios, and
// says so when the runs do not pair up.
func TestPairedRatio(t *testing.T) {
	r := &Report{}
	r.Add("3 datapath", "tcp", "b", Bitrate).Samples = []float64{100, 50, 80}
	r.Add("3 datapath", "tcp", "c", Bitrate).Samples = []float64{95, 60, 60}
	r.Add("3 datapath", "tcp", "d", Bitrate).Samples = []float64{1, 2}
	r.Ratios = []Ratio{
		{"3 datapath", "tcp", "c", "c", "b", "(c) ÷ (b)", Target{">=", 0.95}, true},
		{"3 datapath", "tcp", "c", "c", "b", "(c) ÷ (b)", Target{}, false},
		{"3 datapath", "tcp", "d", "d", "b", "(d) ÷ (b)", Target{}, true},
	}
	res := r.Evaluate()
	// per run: 0.95, 1.2, 0.75 → median 0.95; medians: 60 / 80 = 0.75
	if !res[0].OK || math.Abs(res[0].Value-0.95) > 1e-9 || !res[0].Target.Met(res[0].Value) {
		t.Errorf("paired = %+v, want 0.95 met", res[0])
	}
	if !res[1].OK || res[1].Value != 0.75 {
		t.Errorf("medians = %+v, want 0.75", res[1])
	}
	if res[2].OK || !strings.Contains(res[2].Why, "do not pair up") {
		t.Errorf("unpaired runs = %+v, want n/a saying why", res[2])
	}
}

func TestEvaluate(t *testing.T) {
	res := sampleReport().Evaluate()
	if !res[0].OK || res[0].Value != 2.5 || !res[0].Target.Met(res[0].Value) {
		t.Errorf("slow ÷ fast = %+v, want 2.5 met", res[0])
	}
	if !res[1].OK || res[1].Value != 0.4 || res[1].Target.Met(res[1].Value) {
		t.Errorf("fast ÷ slow = %+v, want 0.4 not met", res[1])
	}
	if res[2].OK || !strings.Contains(res[2].Why, "absent not available") {
		t.Errorf("ratio with a missing subject = %+v", res[2])
	}
	if res[3].OK || !strings.Contains(res[3].Why, "no result within 5.00 s") {
		t.Errorf("ratio with a censored subject = %+v", res[3])
	}
}

func TestMarkdownNeverInventsNumbers(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| 1 programming | N=10 | fast | 200.0 ms | 100.0 ms – 300.0 ms | 3 | slow ÷ fast = 2.5 (target ≥ 1.3: met); fast ÷ slow = 0.4 (target ≤ 0.3: NOT met) |",
		"| 1 programming | N=10 | absent | not available [1] |  | 0 | slow ÷ absent: n/a (absent not available) |",
		"1. the controller has not landed",
		"| 2 first | c | stuck | > 5.00 s (2 of 3 runs: nothing within 5.00 s) |",
		"— **not met**",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "absent | 0") && strings.Contains(md, "absent | 0.") {
		t.Errorf("a number was shown for an unavailable subject:\n%s", md)
	}
}

func TestGrowth(t *testing.T) {
	r := &Report{}
	for _, c := range []struct {
		n float64
		d float64
	}{{1000, 0.01}, {10000, 0.1}, {50000, 2.0}} {
		row := r.Add("1", thousands(int64(c.n)), "tool", Duration)
		row.Units, row.Samples = c.n, []float64{c.d}
		lin := r.Add("1", thousands(int64(c.n)), "linear", Duration)
		lin.Units, lin.Samples = c.n, []float64{c.n * 1e-5}
	}
	g := r.growth()
	if len(g) != 2 {
		t.Fatalf("growth = %q, want 2 lines", g)
	}
	if !strings.Contains(g[0], "tool") || !strings.Contains(g[0], "worse than linear") {
		t.Errorf("superlinear subject: %q", g[0])
	}
	if !strings.Contains(g[1], "linear") || !strings.Contains(g[1], "about linear") {
		t.Errorf("linear subject: %q", g[1])
	}
}

func TestRunScenarioFatalRunsCleanups(t *testing.T) {
	var order []string
	err := runScenario("x", nil, func(lt lab.T) {
		lt.Cleanup(func() { order = append(order, "first") })
		lt.Cleanup(func() { order = append(order, "second") })
		lt.Fatalf("broke after %d", 2)
		order = append(order, "not reached")
	})
	if err == nil || !strings.Contains(err.Error(), "broke after 2") {
		t.Errorf("err = %v", err)
	}
	if strings.Join(order, ",") != "second,first" {
		t.Errorf("cleanups ran as %v, want second,first", order)
	}
	if err := runScenario("ok", nil, func(lab.T) {}); err != nil {
		t.Errorf("finished scenario: %v", err)
	}
}

func TestConfigsBounded(t *testing.T) {
	for name, c := range map[string]Config{"full": fullConfig(), "smoke": smokeConfig()} {
		if len(c.ProgramSizes) != len(c.ProgramReps) {
			t.Errorf("%s: %d sizes, %d rep counts", name, len(c.ProgramSizes), len(c.ProgramReps))
		}
		var total time.Duration
		for s := 1; s <= 4; s++ {
			if c.budget(s) <= 0 {
				t.Errorf("%s: section %d has no time budget", name, s)
			}
			total += c.budget(s)
		}
		if total > 14*time.Minute {
			t.Errorf("%s: sections may take %v in all, want ≤ 14m", name, total)
		}
	}
}

// TestRunOrder: every round is a permutation; over 2n rounds every subject
// is at every position, and every pair is in each order equally often.
func TestRunOrder(t *testing.T) {
	for n := 2; n <= 5; n++ {
		at := map[[2]int]int{}
		before := map[[2]int]int{}
		for r := 0; r < 2*n; r++ {
			pos := map[int]int{}
			for k := 0; k < n; k++ {
				i := runOrder(n, r, k)
				if _, dup := pos[i]; dup || i < 0 || i >= n {
					t.Fatalf("n=%d round %d: position %d -> %d twice or out of range", n, r, k, i)
				}
				pos[i] = k
				at[[2]int{i, k}]++
			}
			for a := 0; a < n; a++ {
				for b := 0; b < n; b++ {
					if a != b && pos[a] < pos[b] {
						before[[2]int{a, b}]++
					}
				}
			}
		}
		for i := 0; i < n; i++ {
			for k := 0; k < n; k++ {
				if at[[2]int{i, k}] == 0 {
					t.Errorf("n=%d: subject %d never at position %d", n, i, k)
				}
			}
		}
		for a := 0; a < n; a++ {
			for b := a + 1; b < n; b++ {
				if before[[2]int{a, b}] != before[[2]int{b, a}] {
					t.Errorf("n=%d: %d before %d in %d rounds, after it in %d", n, a, b, before[[2]int{a, b}], before[[2]int{b, a}])
				}
			}
		}
	}
}
