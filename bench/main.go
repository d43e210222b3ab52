// Command bench measures flowspan side by side with Open vSwitch's own
// tools on private OVS labs (test/lab) and prints one table of medians and
// ratios; with -out it also writes the table as markdown, with the machine
// and the OVS version. See docs/performance.md.
//
//	go build -o bin/flowspan ./cmd/flowspan
//	go run ./bench -flowspan bin/flowspan -out bench/results.md
//
// Sections run one after another, never in parallel: they measure time.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/flowspan/flowspan/test/lab"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "also write the results as markdown to `FILE`")
	flowspan := fs.String("flowspan", "", "flowspan `BINARY` (for the daemon-based measurements)")
	smoke := fs.Bool("smoke", false, "tiny sizes, one run each: checks the harness, measures nothing")
	sections := fs.String("sections", "", "comma-separated sections to run (1-4); default all")
	verbose := fs.Bool("v", false, "log progress to stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := fullConfig()
	if *smoke {
		cfg = smokeConfig()
	}
	cfg.Flowspan = *flowspan
	if *verbose {
		cfg.Log = stderr
	}
	if *sections != "" {
		for _, s := range strings.Split(*sections, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 || n > 4 {
				fmt.Fprintf(stderr, "bench: -sections: %q is not a section number 1-4\n", s)
				return 2
			}
			cfg.Sections = append(cfg.Sections, n)
		}
	}
	var probe probeT
	lab.Require(&probe)
	if probe.msg != "" {
		fmt.Fprintf(stderr, "bench: %s\n", probe.msg)
		return 1
	}
	start := time.Now()
	rep := runAll(context.Background(), &cfg)
	rep.Note("total wall time of this run: %s", time.Since(start).Round(time.Second))
	if err := rep.WriteText(stdout); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	if *out != "" {
		var b bytes.Buffer
		writeHeader(&b, &cfg, *smoke)
		if err := rep.WriteMarkdown(&b); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
		if err := os.WriteFile(*out, b.Bytes(), 0o644); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
	}
	return 0
}

// section is one numbered part of the benchmark.
type section struct {
	num  int
	name string
	run  func(t lab.T, cfg *Config, rep *Report)
}

func sections() []section {
	return []section{
		{1, secProgram, benchProgramming},
		{2, secFirstPacket, benchFirstPacket},
		{3, secDatapath, benchDatapath},
		{4, secScale, benchScale},
	}
}

// runAll runs the selected sections one after another and returns the
// report. A section that stops early keeps what it measured and adds a note.
func runAll(_ context.Context, cfg *Config) *Report {
	rep := &Report{}
	for _, s := range sections() {
		if !cfg.wants(s.num) {
			continue
		}
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "bench: section %s\n", s.name)
		}
		t0 := time.Now()
		err := runScenario(s.name, cfg.Log, func(t lab.T) { s.run(t, cfg, rep) })
		if err != nil {
			rep.Note("section %s stopped early: %v", s.name, err)
			rep.markUnmeasured(s.name, "section stopped early: "+err.Error())
		}
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "bench: section %s took %s\n", s.name, time.Since(t0).Round(time.Millisecond))
		}
	}
	return rep
}

// probeT records what lab.Require would skip or fail for.
type probeT struct{ msg string }

func (p *probeT) Helper()                   {}
func (p *probeT) Logf(string, ...any)       {}
func (p *probeT) Fatalf(f string, a ...any) { p.msg = fmt.Sprintf(f, a...) }
func (p *probeT) Skipf(f string, a ...any)  { p.msg = fmt.Sprintf(f, a...) }
func (p *probeT) Cleanup(func())            {}
func (p *probeT) Failed() bool              { return p.msg != "" }
