package flows

import (
	"fmt"
	"strings"
	"testing"
)

func TestDiffTouchesOnlyChangedMirror(t *testing.T) {
	facts := sampleFacts()
	ms := sampleMirrors()
	before := mustCompile(t, Config{}, ms, facts)

	// No change: nothing to do.
	if ch := Diff(before.Flows, before.Flows); !ch.Empty() {
		t.Fatalf("Diff of identical flows = %+v", ch)
	}

	// Change one mirror's filter: only that mirror's filter flow changes.
	changed := sampleMirrors()
	changed[0].Filters = []string{"tcp,tp_dst=8443", "arp"}
	after := mustCompile(t, Config{}, changed, facts)
	ch := Diff(before.Flows, after.Flows)
	if len(ch.Modify) != 0 || len(ch.Add) != 1 || len(ch.Delete) != 1 {
		t.Fatalf("changed filter: %d add, %d modify, %d delete; want 1, 0, 1", len(ch.Add), len(ch.Modify), len(ch.Delete))
	}
	if !strings.Contains(ch.Add[0].String(), "tp_dst=8443") || !strings.Contains(ch.Delete[0].String(), "tp_dst=443") {
		t.Errorf("changed filter: add %s, delete %s", ch.Add[0], ch.Delete[0])
	}

	// Remove a mirror: its flows go, the two dispatch flows (normal and
	// EgressDrop) are modified, nothing else changes.
	removed := mustCompile(t, Config{}, ms[1:], facts)
	ch = Diff(before.Flows, removed.Flows)
	for _, f := range ch.Delete {
		if c := Cookie(f.Cookie); c.Mirror() != 1 && c.Kind() != KindDropOutput {
			t.Errorf("removing mirror 1 deletes %s", f)
		}
	}
	if len(ch.Add) != 0 || len(ch.Modify) != 2 || ch.Modify[0].Table != 4 || ch.Modify[1].Table != 4 {
		t.Errorf("removing mirror 1: add %v modify %v", flowLines(ch.Add), flowLines(ch.Modify))
	}
	nMirror1 := 0
	for _, f := range before.Flows {
		if Cookie(f.Cookie).Mirror() == 1 {
			nMirror1++
		}
	}
	if len(ch.Delete) != nMirror1 {
		t.Errorf("removing mirror 1 deletes %d flows, it had %d", len(ch.Delete), nMirror1)
	}

	// Applying the changes to the installed set gives the desired set.
	if got := apply(before.Flows, ch); strings.Join(sorted(flowLines(got)), "\n") != strings.Join(sorted(flowLines(removed.Flows)), "\n") {
		t.Errorf("applying the diff does not give the desired flows")
	}
}

func TestDiffIgnoresForeignAndLearnedFlows(t *testing.T) {
	desired := mustCompile(t, Config{}, nil, sampleFacts()).Flows
	installed := append([]Flow(nil), desired...)
	installed = append(installed,
		Flow{Table: 3, Priority: 10, Cookie: uint64(MakeCookie(0, KindLearned, 0, 0)), Match: Match{}.WithEthDst([6]byte{2}, allOnesMAC)},
		Flow{Table: 40, Priority: 5, Cookie: 0x1234, Actions: []Action{ActNormal{}}},
	)
	if ch := Diff(installed, desired); !ch.Empty() {
		t.Errorf("Diff touched foreign or learned flows: %+v", ch)
	}
	// A generation change replaces flows (modify would keep the old cookie).
	next := mustCompile(t, Config{Generation: 2}, nil, sampleFacts()).Flows
	ch := Diff(desired, next)
	if len(ch.Add) != len(next) || len(ch.Delete) != len(desired) {
		t.Errorf("generation change: %d adds %d deletes", len(ch.Add), len(ch.Delete))
	}
	r := Replace(next, 1)
	if len(r.Add) != len(next) || len(r.DeleteCookies) != 1 || !r.DeleteCookies[0].Matches(desired[0].Cookie) || r.DeleteCookies[0].Matches(next[0].Cookie) {
		t.Errorf("Replace = %+v", r.DeleteCookies)
	}
	fms, err := r.FlowMods()
	if err != nil || len(fms) != len(next)+1 || fms[len(fms)-1].Command != 3 || fms[len(fms)-1].TableId != 0xff {
		t.Errorf("Replace flow mods: %d, %v", len(fms), err)
	}
}

func apply(installed []Flow, ch Changes) []Flow {
	key := func(f Flow) flowKey { return flowKey{f.Table, f.Priority, f.Match} }
	m := map[flowKey]Flow{}
	for _, f := range installed {
		m[key(f)] = f
	}
	for _, f := range ch.Delete {
		delete(m, key(f))
	}
	for _, f := range ch.Modify {
		old := m[key(f)]
		old.Actions = f.Actions
		m[key(f)] = old
	}
	for _, f := range ch.Add {
		m[key(f)] = f
	}
	out := make([]Flow, 0, len(m))
	for _, f := range m {
		out = append(out, f)
	}
	return out
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func TestCookies(t *testing.T) {
	c := MakeCookie(7, KindFilter, 0x1234, 0xabcdef)
	if !c.IsFlowspan() || c.Generation() != 7 || c.Kind() != KindFilter || c.Mirror() != 0x1234 || c.Index() != 0xabcdef {
		t.Fatalf("cookie fields of %#x", uint64(c))
	}
	if !MirrorCookies(0x1234).Matches(uint64(c)) || MirrorCookies(0x1235).Matches(uint64(c)) {
		t.Errorf("MirrorCookies")
	}
	if !GenerationCookies(7).Matches(uint64(c)) || GenerationCookies(8).Matches(uint64(c)) {
		t.Errorf("GenerationCookies")
	}
	if GenerationCookies(7).Matches(uint64(MakeCookie(0, KindLearned, 0, 0))) || !AllCookies().Matches(uint64(MakeCookie(0, KindLearned, 0, 0))) {
		t.Errorf("learned flows must survive a generation delete but not a full cleanup")
	}
	if NextGeneration(255) != 1 || NextGeneration(1) != 2 {
		t.Errorf("NextGeneration")
	}
	counts := []FlowCount{
		{uint64(MakeCookie(1, KindEmit, 3, 0)), 6, 600}, // two emit flows (tag variants)
		{uint64(MakeCookie(1, KindEmit, 3, 0)), 4, 400},
		{uint64(MakeCookie(1, KindEmitDup, 3, 0)), 2, 200},
		{uint64(MakeCookie(1, KindEmitNone, 3, 0)), 1, 100},
		{uint64(MakeCookie(1, KindCount, 3, 0)), 7, 700},
		{uint64(MakeCookie(1, KindCount, 3, 2)), 3, 300},
		{uint64(MakeCookie(1, KindSelIngress, 3, 0)), 9, 900},
		{uint64(MakeCookie(1, KindSelFlood, 3, 2)), 5, 500},
		{uint64(MakeCookie(1, KindSelFlood, 3, 2)), 1, 100}, // second flood flow (VLAN-specific)
		{uint64(MakeCookie(1, KindSelExclude, 3, 2)), 8, 800},
		{uint64(MakeCookie(1, KindFilter, 3, 1)), 4, 400},
		{uint64(MakeCookie(2, KindEmit, 3, 0)), 99, 99},    // other generation
		{uint64(MakeCookie(1, KindPipeline, 0, 0)), 50, 5}, // shared
		{0x1, 1, 1}, // not ours
	}
	agg := Aggregate(1, counts)
	mc := agg[3]
	if len(agg) != 1 || mc == nil {
		t.Fatalf("Aggregate = %+v", agg)
	}
	got := fmt.Sprintf("mirrored %v selected %v selections %v selectedBy %v filters %v",
		mc.Mirrored, mc.Selected, mc.Selections, mc.SelectedBy, mc.Filters)
	want := "mirrored {10 1000} selected {13 1300} selections map[0:{7 700} 2:{3 300}] selectedBy map[0:{9 900} 2:{6 600}] filters map[1:{4 400}]"
	if got != want {
		t.Errorf("Aggregate:\n got %s\nwant %s", got, want)
	}
}
