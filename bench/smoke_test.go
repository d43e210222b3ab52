package main

import (
	"bytes"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowspan/flowspan/test/lab"
)

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestSmoke runs every section of the harness once with tiny sizes against
// real private OVS labs. It checks that the harness works and its numbers
// are sane (present, finite, positive, consistent with each other), never
// how fast anything is.
func TestSmoke(t *testing.T) {
	lab.Require(t)
	bin := filepath.Join(t.TempDir(), "flowspan")
	build := exec.Command("go", "build", "-o", bin, "github.com/flowspan/flowspan/cmd/flowspan")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building flowspan: %v\n%s", err, out)
	}
	cfg := smokeConfig()
	cfg.Flowspan = bin
	cfg.Log = testLog{t}
	rep := runAll(t.Context(), &cfg)
	for _, n := range rep.Notes {
		if strings.Contains(n, "stopped early") {
			t.Errorf("%s", n)
		}
	}
	rows := map[string]*Row{}
	for _, r := range rep.Rows {
		rows[r.Subject+" @ "+r.Case] = r
		if r.NA != "" {
			if len(r.Samples) > 0 {
				t.Errorf("%s %s %s: not available (%s) but has samples %v", r.Section, r.Case, r.Subject, r.NA, r.Samples)
			}
			t.Logf("not available: %s %s %s: %s", r.Section, r.Case, r.Subject, r.NA)
			continue
		}
		if len(r.Samples) == 0 {
			t.Errorf("%s %s %s: no samples and no reason", r.Section, r.Case, r.Subject)
		}
		for _, v := range r.Samples {
			if math.IsNaN(v) || v < 0 || (math.IsInf(v, 1) && r.Limit == 0) {
				t.Errorf("%s %s %s: insane sample %v", r.Section, r.Case, r.Subject, v)
			}
		}
	}
	// OVS's own sides never depend on flowspan: they must be measured.
	must := []string{
		subjBundle + " @ N=200", subjPlain + " @ N=200", subjFloor + " @ N=200",
		subjFPNative + " @ " + caseEstablished, subjFPNative + " @ " + caseNewFlows, subjFPNative + " @ " + caseWarm, subjFPNative + " @ " + caseShared,
		subjNoMirror + " @ " + caseTCP, subjNative + " @ " + caseTCP,
		subjNoMirror + " @ " + caseSmall, subjNative + " @ " + caseSmall,
		subjNoMirror + " @ " + caseCopies, subjNative + " @ " + caseCopies,
		subjCompile + " @ 4 mirrors / 40 filters",
		// flowspan's sides: every piece exists now, so each must be measured.
		subjFlowspan + " @ N=200", subjFPFlowspan + " @ " + caseNewFlows, subjFPFlowspan + " @ " + caseWarm, subjFPFlowspan + " @ " + caseShared,
		subjFSMirror + " @ " + caseCopies, subjFSFilter + " @ " + caseCopies,
		subjLoad + " @ 4 mirrors / 40 filters", subjReconcile + " @ 4 mirrors / 40 filters",
		subjRSS + " @ 4 mirrors / 40 filters",
	}
	for _, k := range must {
		r := rows[k]
		if r == nil || r.NA != "" || len(r.Samples) == 0 {
			t.Errorf("%s: not measured (%+v)", k, r)
		}
	}
	positive := []string{subjBundle + " @ N=200", subjFloor + " @ N=200", subjNative + " @ " + caseTCP, subjNative + " @ " + caseSmall}
	for _, k := range positive {
		if r := rows[k]; r != nil && len(r.Samples) > 0 && r.Samples[0] <= 0 {
			t.Errorf("%s: %v, want > 0", k, r.Samples)
		}
	}
	// The copies the output port saw must fit the mirrors: none without a
	// mirror, some with the native Mirror of the sender.
	if r := rows[subjNoMirror+" @ "+caseCopies]; r != nil && len(r.Samples) > 0 && r.Samples[0] != 0 {
		t.Errorf("copies with no mirror = %v, want 0", r.Samples)
	}
	if r := rows[subjNative+" @ "+caseCopies]; r != nil && len(r.Samples) > 0 && r.Samples[0] <= 0 {
		t.Errorf("copies with the native mirror = %v, want > 0", r.Samples)
	}
	if r, b := rows[subjFSFilter+" @ "+caseCopies], rows[subjNative+" @ "+caseCopies]; r != nil && r.NA == "" && len(r.Samples) > 0 && r.Samples[0] >= b.Samples[0] {
		t.Errorf("a 1%% filter copied %v packets, the native mirror of all traffic %v", r.Samples, b.Samples)
	}
	var text, md bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	writeHeader(&md, &cfg, true)
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Open vSwitch: ovs-vswitchd (Open vSwitch)", "| # | case | subject | median |", "ovs-ofctl --bundle add-flows"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	t.Logf("\n%s", text.String())
}
