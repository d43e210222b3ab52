package flows

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func flowLines(fl []Flow) []string {
	out := make([]string, len(fl))
	for i, f := range fl {
		out[i] = f.String()
	}
	return out
}

func mustCompile(t *testing.T, cfg Config, ms []Mirror, facts BridgeFacts) *Result {
	t.Helper()
	r, err := Compile(cfg, ms, facts)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return r
}

// lineDiff shows lines only in want (-) and only in got (+).
func lineDiff(want, got []string) string {
	n := map[string]int{}
	for _, s := range want {
		n[s]++
	}
	for _, s := range got {
		n[s]--
	}
	var b strings.Builder
	for _, s := range want {
		if n[s] > 0 {
			b.WriteString("-" + s + "\n")
			n[s]--
		}
	}
	for _, s := range got {
		if n[s] < 0 {
			b.WriteString("+" + s + "\n")
			n[s]++
		}
	}
	return b.String()
}

func TestGoldenPipelines(t *testing.T) {
	hostEgress := 7
	cases := []struct {
		name    string
		cfg     Config
		mirrors []Mirror
	}{
		{"empty", Config{}, nil},
		{"sample", Config{}, sampleMirrors()},
		{"embedded", Config{TableBase: 10, ContinueTable: 30, Registers: &Registers{Meta: 5, Egress: 6}, HostEgress: &hostEgress, Generation: 9}, sampleMirrors()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustCompile(t, tc.cfg, tc.mirrors, sampleFacts())
			got := strings.Join(flowLines(r.Flows), "\n") + "\n"
			path := filepath.Join("testdata", "golden", tc.name+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if got != string(want) {
				t.Errorf("pipeline differs from %s (-want +got):\n%s", path,
					lineDiff(strings.Split(string(want), "\n"), strings.Split(got, "\n")))
			}
			// Same inputs, same output, whatever the map order.
			again := mustCompile(t, tc.cfg, tc.mirrors, sampleFacts())
			if strings.Join(flowLines(again.Flows), "\n")+"\n" != got {
				t.Errorf("second compile differs")
			}
		})
	}
}

// TestCompileFlows checks the flows of each selection kind, VLAN mode and
// output mode, as ovs-ofctl strings, on a small bridge.
func TestCompileFlows(t *testing.T) {
	facts := sampleFacts()
	out := Output{Port: "out"}
	cases := []struct {
		name   string
		mirror Mirror
		want   []string // flows of the mirror (cookie mirror ID 1), in order
	}{
		{"ingress", Mirror{Name: "m", ID: 1, Ingress: []string{"a1"}, Output: out}, []string{
			"cookie=0xf5010a0001000000, table=5, priority=400,reg0=0x10000/0xffff0000,in_port=1 actions=load:0->NXM_NX_REG1[16..31],resubmit(,8)",
			"cookie=0xf5011f0001000000, table=8, priority=300,reg0=0x14000/0xffff4000 actions=drop",
			"cookie=0xf5011e0001000000, table=8, priority=232,reg0=0x10000/0xffff4fff,dl_vlan_pcp=0 actions=load:0x1->NXM_NX_REG0[14],clone(pop_vlan,output:6),resubmit(,9)",
			"cookie=0xf5011e0001000000, table=8, priority=231,reg0=0x10000/0xffff4fff,vlan_tci=0x1000/0x1000 actions=load:0x1->NXM_NX_REG0[14],output:6,resubmit(,9)",
			"cookie=0xf5011e0001000000, table=8, priority=230,reg0=0x10000/0xffff4fff actions=load:0x1->NXM_NX_REG0[14],output:6,resubmit(,9)",
			"cookie=0xf5011e0001000000, table=8, priority=201,reg0=0x10000/0xffff4000,vlan_tci=0x1000/0x1000 actions=load:0x1->NXM_NX_REG0[14],clone(move:NXM_NX_REG0[0..11]->NXM_OF_VLAN_TCI[0..11],output:6),resubmit(,9)",
			"cookie=0xf5011e0001000000, table=8, priority=200,reg0=0x10000/0xffff4000 actions=load:0x1->NXM_NX_REG0[14],clone(push_vlan:0x8100,move:NXM_NX_REG0[0..11]->NXM_OF_VLAN_TCI[0..11],output:6),resubmit(,9)",
			"cookie=0xf501280001000000, table=9, priority=100,reg0=0x10000/0xffff0000,reg1=0/0xffff0000 actions=drop",
		}},
		{"egress access port: unicast and flood in its VLAN only", Mirror{Name: "m", ID: 1, Egress: []string{"a1"}, Output: Output{Port: "out2"}}, []string{
			"cookie=0xf5010e0001000000, table=5, priority=300,reg0=0x10000/0xffff0000,reg1=0x1/0xffff,in_port=1 actions=drop",
			"cookie=0xf5010b0001000000, table=5, priority=200,reg0=0x10000/0xffff0000,reg1=0x1/0xffff actions=load:0->NXM_NX_REG1[16..31],resubmit(,8)",
			"cookie=0xf5010e0001000001, table=5, priority=140,reg0=0x1000a/0xffff0fff,reg1=0xfffb/0xffff,in_port=1 actions=drop",
			"cookie=0xf5010c0001000001, table=5, priority=135,reg0=0x1000a/0xffff0fff,reg1=0xfffb/0xffff actions=load:0x1->NXM_NX_REG1[16..31],resubmit(,8)",
			"cookie=0xf5011f0001000000, table=8, priority=300,reg0=0x14000/0xffff4000 actions=drop",
			"cookie=0xf5011e0001000000, table=8, priority=201,reg0=0x10000/0xffff4000,vlan_tci=0x1000/0x1000 actions=load:0x1->NXM_NX_REG0[14],clone(pop_vlan,output:7),resubmit(,9)",
			"cookie=0xf5011e0001000000, table=8, priority=200,reg0=0x10000/0xffff4000 actions=load:0x1->NXM_NX_REG0[14],output:7,resubmit(,9)",
			"cookie=0xf501280001000000, table=9, priority=100,reg0=0x10000/0xffff0000,reg1=0/0xffff0000 actions=drop",
			"cookie=0xf501280001000001, table=9, priority=100,reg0=0x10000/0xffff0000,reg1=0x10000/0xffff0000 actions=drop",
		}},
		{"egress on two all-VLAN ports: every flood selects", Mirror{Name: "m", ID: 1, Egress: []string{"t1", "br0"}, Filters: []string{"icmp"}, Output: Output{Port: "out2"}, Snaplen: 64}, []string{
			"cookie=0xf5010e0001000000, table=5, priority=300,reg0=0x10000/0xffff0000,reg1=0x2/0xffff,in_port=2 actions=drop",
			"cookie=0xf5010b0001000000, table=5, priority=200,reg0=0x10000/0xffff0000,reg1=0x2/0xffff actions=load:0->NXM_NX_REG1[16..31],resubmit(,7)",
			"cookie=0xf5010e0001000001, table=5, priority=300,reg0=0x10000/0xffff0000,reg1=0xfffe/0xffff,in_port=LOCAL actions=drop",
			"cookie=0xf5010b0001000001, table=5, priority=200,reg0=0x10000/0xffff0000,reg1=0xfffe/0xffff actions=load:0x1->NXM_NX_REG1[16..31],resubmit(,7)",
			"cookie=0xf5010c0001000002, table=5, priority=120,reg0=0x10000/0xffff0000,reg1=0xfffb/0xffff actions=load:0x2->NXM_NX_REG1[16..31],resubmit(,7)",
			"cookie=0xf501150001000000, table=7, priority=40000,icmp,reg0=0x10000/0xffff0000 actions=resubmit(,8)",
			"cookie=0xf5011f0001000000, table=8, priority=300,reg0=0x14000/0xffff4000 actions=drop",
			"cookie=0xf5011e0001000000, table=8, priority=201,reg0=0x10000/0xffff4000,vlan_tci=0x1000/0x1000 actions=load:0x1->NXM_NX_REG0[14],clone(pop_vlan,output(port=7,max_len=68)),resubmit(,9)",
			"cookie=0xf5011e0001000000, table=8, priority=200,reg0=0x10000/0xffff4000 actions=load:0x1->NXM_NX_REG0[14],output(port=7,max_len=64),resubmit(,9)",
			"cookie=0xf501280001000000, table=9, priority=100,reg0=0x10000/0xffff0000,reg1=0/0xffff0000 actions=drop",
			"cookie=0xf501280001000001, table=9, priority=100,reg0=0x10000/0xffff0000,reg1=0x10000/0xffff0000 actions=drop",
			"cookie=0xf501280001000002, table=9, priority=100,reg0=0x10000/0xffff0000,reg1=0x20000/0xffff0000 actions=drop",
		}},
		{"VLANs only: all ports, VLAN gate", Mirror{Name: "m", ID: 1, VLANs: []uint16{20, 21, 22, 23, 30}, Output: Output{Port: "out2"}}, []string{
			"cookie=0xf5010d0001000000, table=5, priority=100,reg0=0x10000/0xffff0000 actions=load:0->NXM_NX_REG1[16..31],resubmit(,6)",
			"cookie=0xf501140001000000, table=6, priority=100,reg0=0x10014/0xffff0ffc actions=resubmit(,8)",
			"cookie=0xf501140001000000, table=6, priority=100,reg0=0x1001e/0xffff0fff actions=resubmit(,8)",
			"cookie=0xf5011f0001000000, table=8, priority=300,reg0=0x14000/0xffff4000 actions=drop",
			"cookie=0xf5011e0001000000, table=8, priority=201,reg0=0x10000/0xffff4000,vlan_tci=0x1000/0x1000 actions=load:0x1->NXM_NX_REG0[14],clone(pop_vlan,output:7),resubmit(,9)",
			"cookie=0xf5011e0001000000, table=8, priority=200,reg0=0x10000/0xffff4000 actions=load:0x1->NXM_NX_REG0[14],output:7,resubmit(,9)",
			"cookie=0xf501280001000000, table=9, priority=100,reg0=0x10000/0xffff0000,reg1=0/0xffff0000 actions=drop",
		}},
		{"native-untagged output keeps its VLAN untagged", Mirror{Name: "m", ID: 1, Ingress: []string{"a1"}, Output: Output{Port: "n1"}}, []string{
			"cookie=0xf5010a0001000000, table=5, priority=400,reg0=0x10000/0xffff0000,in_port=1 actions=load:0->NXM_NX_REG1[16..31],resubmit(,8)",
			"cookie=0xf5011f0001000000, table=8, priority=300,reg0=0x14000/0xffff4000 actions=drop",
			"cookie=0xf5011e0001000000, table=8, priority=232,reg0=0x10000/0xffff4fff,dl_vlan_pcp=0 actions=load:0x1->NXM_NX_REG0[14],clone(pop_vlan,output:4),resubmit(,9)",
			"cookie=0xf5011e0001000000, table=8, priority=231,reg0=0x10000/0xffff4fff,vlan_tci=0x1000/0x1000 actions=load:0x1->NXM_NX_REG0[14],output:4,resubmit(,9)",
			"cookie=0xf5011e0001000000, table=8, priority=230,reg0=0x10000/0xffff4fff actions=load:0x1->NXM_NX_REG0[14],output:4,resubmit(,9)",
			"cookie=0xf5011e0001000000, table=8, priority=221,reg0=0x10014/0xffff4fff,vlan_tci=0x1000/0x1000 actions=load:0x1->NXM_NX_REG0[14],clone(pop_vlan,output:4),resubmit(,9)",
			"cookie=0xf5011e0001000000, table=8, priority=220,reg0=0x10014/0xffff4fff actions=load:0x1->NXM_NX_REG0[14],output:4,resubmit(,9)",
			"cookie=0xf5011e0001000000, table=8, priority=201,reg0=0x10000/0xffff4000,vlan_tci=0x1000/0x1000 actions=load:0x1->NXM_NX_REG0[14],clone(move:NXM_NX_REG0[0..11]->NXM_OF_VLAN_TCI[0..11],output:4),resubmit(,9)",
			"cookie=0xf5011e0001000000, table=8, priority=200,reg0=0x10000/0xffff4000 actions=load:0x1->NXM_NX_REG0[14],clone(push_vlan:0x8100,move:NXM_NX_REG0[0..11]->NXM_OF_VLAN_TCI[0..11],output:4),resubmit(,9)",
			"cookie=0xf501280001000000, table=9, priority=100,reg0=0x10000/0xffff0000,reg1=0/0xffff0000 actions=drop",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustCompile(t, Config{}, []Mirror{tc.mirror}, facts)
			var got []string
			for _, f := range r.Flows {
				if Cookie(f.Cookie).Mirror() == 1 {
					got = append(got, f.String())
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("flows (-want +got):\n%s", lineDiff(tc.want, got))
			}
			st := r.Status["m"]
			if !st.Active || st.Flows != len(tc.want) {
				t.Errorf("status %+v, want active with %d flows", st, len(tc.want))
			}
		})
	}
}

func TestCompileSharedPipeline(t *testing.T) {
	r := mustCompile(t, Config{}, sampleMirrors(), sampleFacts())
	lines := flowLines(r.Flows)
	want := []string{
		// Output ports are isolated: what they receive is dropped.
		"cookie=0xf501020000000000, priority=1000,in_port=6 actions=drop",
		"cookie=0xf501020000000000, priority=1000,in_port=7 actions=drop",
		// Access port: untagged and priority-tagged frames are in its VLAN;
		// tagged ones are dropped by NORMAL and never selected.
		"cookie=0xf501010000000000, priority=110,in_port=1,vlan_tci=0x0000/0x0fff actions=load:0xa->NXM_NX_REG0[0..11],goto_table:1",
		// Trunk of every VLAN: the VID (0 when untagged).
		"cookie=0xf501010000000000, priority=100,in_port=2 actions=move:NXM_OF_VLAN_TCI[0..11]->NXM_NX_REG0[0..11],goto_table:1",
		// Trunk with a list: only those VLANs; untagged is VLAN 0, not trunked.
		"cookie=0xf501010000000000, priority=100,in_port=3,dl_vlan=10 actions=move:NXM_OF_VLAN_TCI[0..11]->NXM_NX_REG0[0..11],goto_table:1",
		"cookie=0xf501010000000000, priority=100,in_port=3,dl_vlan=20 actions=move:NXM_OF_VLAN_TCI[0..11]->NXM_NX_REG0[0..11],goto_table:1",
		// Native port: untagged is the native VLAN.
		"cookie=0xf501010000000000, priority=110,in_port=4,vlan_tci=0x0000/0x0fff actions=load:0x14->NXM_NX_REG0[0..11],goto_table:1",
		// Native-tagged without trunks: every VLAN but 0.
		"cookie=0xf501010000000000, priority=100,in_port=5,vlan_tci=0x1000/0x1000 actions=move:NXM_OF_VLAN_TCI[0..11]->NXM_NX_REG0[0..11],goto_table:1",
		"cookie=0xf501010000000000, priority=0 actions=NORMAL",
		// NORMAL learns from unicast sources, not for reserved destinations.
		"cookie=0xf501010000000000, table=1, priority=30,dl_dst=01:80:c2:00:00:00/ff:ff:ff:ff:ff:f0 actions=goto_table:2",
		"cookie=0xf501010000000000, table=1, priority=20,dl_src=01:00:00:00:00:00/01:00:00:00:00:00 actions=goto_table:2",
		// One learn per port with its own cookie: deleting the port's flow
		// deletes the MACs learned on it.
		"cookie=0xf501010000000000, table=1, priority=10,in_port=1 actions=learn(table=3,hard_timeout=300,priority=10,delete_learned,cookie=0xf500030000000001,NXM_NX_REG0[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:NXM_OF_IN_PORT[]->NXM_NX_REG1[0..15]),goto_table:2",
		"cookie=0xf501010000000000, table=1, priority=10,in_port=LOCAL actions=learn(table=3,hard_timeout=300,priority=10,delete_learned,cookie=0xf50003000000fffe,NXM_NX_REG0[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:NXM_OF_IN_PORT[]->NXM_NX_REG1[0..15]),goto_table:2",
		"cookie=0xf501010000000000, table=1, priority=0 actions=goto_table:2",
		"cookie=0xf501010000000000, table=2, priority=20,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=load:0xfffb->NXM_NX_REG1[],goto_table:4",
		"cookie=0xf501010000000000, table=2, priority=0 actions=load:0xfffb->NXM_NX_REG1[],resubmit(,3),goto_table:4",
		// One copy per output: DONE is cleared per output, mirrors of the
		// same output share it.
		"cookie=0xf501010000000000, table=4, priority=0 actions=load:0->NXM_NX_REG0[14],load:0x1->NXM_NX_REG0[16..31],resubmit(,5),load:0x2->NXM_NX_REG0[16..31],resubmit(,5),load:0->NXM_NX_REG0[14],load:0x3->NXM_NX_REG0[16..31],resubmit(,5),load:0->NXM_NX_REG0[14],load:0x4->NXM_NX_REG0[16..31],resubmit(,5),NORMAL",
	}
	have := map[string]bool{}
	for _, l := range lines {
		have[l] = true
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("missing flow %s", w)
		}
	}
	for _, l := range lines {
		if strings.Contains(l, "in_port=6,") || strings.Contains(l, "in_port=7,") {
			t.Errorf("output port classified as a source: %s", l)
		}
	}
}

func TestCompileStatus(t *testing.T) {
	facts := sampleFacts()
	ms := []Mirror{
		{Name: "gone-output", Ingress: []string{"a1"}, Output: Output{Port: "nope"}},
		{Name: "missing-source", Ports: []string{"a1", "vnet9"}, Egress: []string{"vnet8"}, Output: Output{Port: "out"}},
		{Name: "selects-output", Ingress: []string{"out2"}, Output: Output{Port: "out"}},
		{Name: "other", All: true, Output: Output{Port: "out2"}},
	}
	r := mustCompile(t, Config{}, ms, facts)
	if st := r.Status["gone-output"]; st.Active || !errors.Is(st.Err, ErrPortMissing) || !strings.Contains(st.Err.Error(), `output port "nope"`) {
		t.Errorf("gone-output: %+v", st)
	}
	if st := r.Status["missing-source"]; !st.Active || strings.Join(st.Missing, ",") != "vnet9,vnet8" {
		t.Errorf("missing-source: %+v", st)
	}
	if st := r.Status["selects-output"]; st.Active || !errors.Is(st.Err, ErrConflict) {
		t.Errorf("selects-output: %+v", st)
	}
	for _, f := range r.Flows {
		c := Cookie(f.Cookie)
		if id := c.Mirror(); id == r.Status["gone-output"].ID || id == r.Status["selects-output"].ID {
			t.Errorf("inactive mirror has flow %s", f)
		}
	}
	// IDs: assigned in name order after the highest given ID.
	if r.Status["gone-output"].ID != 1 || r.Status["other"].ID != 3 {
		t.Errorf("IDs: %+v", r.Status)
	}
}

func TestCompileErrors(t *testing.T) {
	facts := sampleFacts()
	ok := Mirror{Name: "m", Ingress: []string{"a1"}, Output: Output{Port: "out"}}
	reg, one := 0, 1
	cases := []struct {
		name    string
		cfg     Config
		mirrors []Mirror
		facts   BridgeFacts
		want    string
	}{
		{"invalid mirror", Config{}, []Mirror{{Name: "x", Output: Output{Port: "out"}}}, facts, `mirror "x": selection: selects nothing`},
		{"duplicate name", Config{}, []Mirror{ok, ok}, facts, `mirror "m": name: duplicate mirror name`},
		{"duplicate id", Config{}, []Mirror{{Name: "a", ID: 3, All: true, Output: Output{Port: "out"}}, {Name: "b", ID: 3, All: true, Output: Output{Port: "out"}}}, facts, `ID 3 already used by mirror "a"`},
		{"same registers", Config{Registers: &Registers{Meta: 2, Egress: 2}}, nil, facts, "need two different registers"},
		{"host egress is meta", Config{HostEgress: &reg}, nil, facts, "host egress register 0"},
		{"host egress is flowspan's egress register", Config{HostEgress: &one}, nil, facts, "host egress register 1: need 0..15 other than flowspan's meta and egress registers 0 and 1"},
		{"continue inside pipeline", Config{ContinueTable: 4}, nil, facts, "continue table 4: must come after the pipeline's last table 9"},
		{"table base too high", Config{TableBase: 250}, nil, facts, "table base 250"},
		{"bad vlan mode", Config{}, nil, BridgeFacts{Ports: map[string]PortFacts{"p": {OFPort: 1, VLANMode: "weird"}}}, `port "p": unknown vlan_mode "weird"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.cfg, tc.mirrors, tc.facts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Compile error = %v, want it to contain %q", err, tc.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
	tooMany := make([]Mirror, 0, 7)
	for i := 0; i < 7; i++ {
		m := ok
		m.Name = string(rune('a' + i))
		m.Filters = make([]string, 10000)
		for j := range m.Filters {
			m.Filters[j] = "tcp"
		}
		tooMany = append(tooMany, m)
	}
	if _, err := Compile(Config{}, tooMany, facts); err == nil || !strings.Contains(err.Error(), "70000 filters") {
		t.Errorf("70000 filters: err = %v", err)
	}
}

func TestVLANPrefixes(t *testing.T) {
	for _, tc := range []struct {
		lo, hi uint16
		in     []uint16
	}{
		{0, 4095, []uint16{10, 11, 12, 13, 14, 15, 16, 100}},
		{1, 4095, nil},
		{5, 4000, []uint16{5, 4000}},
	} {
		set := map[uint16]bool{}
		for _, v := range tc.in {
			set[v] = true
		}
		if tc.in == nil {
			for v := tc.lo; ; v++ {
				set[v] = true
				if v == tc.hi {
					break
				}
			}
		}
		covered := map[uint16]int{}
		vlanPrefixes(tc.lo, tc.hi, func(v uint16) bool { return set[v] }, func(v, mask uint16) {
			for x := 0; x < 4096; x++ {
				if uint16(x)&mask == v {
					covered[uint16(x)]++
				}
			}
		})
		for x := 0; x < 4096; x++ {
			if want := set[uint16(x)]; (covered[uint16(x)] == 1) != want || covered[uint16(x)] > 1 {
				t.Fatalf("%v: VLAN %d covered %d times, in set %v", tc, x, covered[uint16(x)], want)
			}
		}
	}
}

// TestCountFlowsAttribution checks the wiring that makes per-selection
// counters count copies: every select flow that goes on writes its own
// selection index to SEL, every selection has exactly one count flow
// matching that index, every emit flow that sends a copy resubmits to the
// count table once, and flows that send nothing do not.
func TestCountFlowsAttribution(t *testing.T) {
	hostEgress := 7
	benchMirrors, benchFacts := benchInput()
	for _, tc := range []struct {
		name    string
		cfg     Config
		mirrors []Mirror
		facts   BridgeFacts
	}{
		{"sample", Config{}, sampleMirrors(), sampleFacts()},
		{"embedded", Config{TableBase: 10, ContinueTable: 30, Registers: &Registers{Meta: 5, Egress: 6}, HostEgress: &hostEgress}, sampleMirrors(), sampleFacts()},
		{"bench", Config{}, benchMirrors, benchFacts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustCompile(t, tc.cfg, tc.mirrors, tc.facts)
			regs := Registers{Meta: 0, Egress: 1}
			if tc.cfg.Registers != nil {
				regs = *tc.cfg.Registers
			}
			sel := regs.egress().Range(selOfs, selBits)
			countTable := tc.cfg.TableBase + tCount
			counted := map[uint16]map[uint32]int{}
			for _, f := range r.Flows {
				c := Cookie(f.Cookie)
				id := c.Mirror()
				if counted[id] == nil {
					counted[id] = map[uint32]int{}
				}
				resubmits := 0
				var loads []uint64
				for _, a := range f.Actions {
					switch a := a.(type) {
					case ActResubmit:
						if a.Table == countTable {
							resubmits++
						}
					case ActLoad:
						if a.Dst == sel {
							loads = append(loads, a.Value)
						}
					}
				}
				switch c.Kind() {
				case KindSelIngress, KindSelEgress, KindSelFlood, KindSelAll:
					if len(loads) != 1 || loads[0] != uint64(c.Index()) {
						t.Errorf("select flow %s: SEL loads %v, want exactly [%d]", f, loads, c.Index())
					}
				case KindCount:
					if f.Table != countTable || len(f.Actions) != 0 {
						t.Errorf("count flow %s: want an action-less flow in table %d", f, countTable)
					}
					v, m := f.Match.regs[regs.Egress].v, f.Match.regs[regs.Egress].m
					if m != selMask || v>>selOfs != c.Index() {
						t.Errorf("count flow %s: matches SEL %#x/%#x, want index %d", f, v, m, c.Index())
					}
					counted[id][c.Index()]++
				case KindEmit:
					if resubmits != 1 {
						t.Errorf("emit flow %s: %d resubmits to the count table, want 1", f, resubmits)
					}
				default:
					if resubmits != 0 || len(loads) != 0 {
						t.Errorf("flow %s (kind %d) touches SEL or the count table", f, c.Kind())
					}
				}
			}
			for name, st := range r.Status {
				if !st.Active {
					continue
				}
				if len(counted[st.ID]) != len(st.Selections) {
					t.Errorf("mirror %s: %d selections, count flows for %d", name, len(st.Selections), len(counted[st.ID]))
				}
				for _, s := range st.Selections {
					if counted[st.ID][s.Index] != 1 {
						t.Errorf("mirror %s selection %+v: %d count flows, want 1", name, s, counted[st.ID][s.Index])
					}
				}
			}
		})
	}
}

// TestSelectionLimit: selection indexes must fit SEL (16 bits); a mirror
// with more selections is left out with ErrUnsupported, not miscounted.
func TestSelectionLimit(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("compiles a 32,768-port bridge (skipped with -short and -race)")
	}
	facts := BridgeFacts{Ports: map[string]PortFacts{
		"out":  {OFPort: 40000, Tag: 4095, Isolated: true},
		"out2": {OFPort: 40001, Tag: 4095, Isolated: true},
	}}
	var ports []string
	for i := 1; i <= 32768; i++ {
		name := fmt.Sprintf("p%d", i)
		facts.Ports[name] = PortFacts{OFPort: uint32(i)}
		ports = append(ports, name)
	}
	// 65,535 port selections + flood = 65,536: the last index is 0xffff.
	ok := Mirror{Name: "ok", Ports: ports[1:], Ingress: ports[:1], Output: Output{Port: "out"}}
	// 65,536 + flood: one too many.
	big := Mirror{Name: "big", Ports: ports, Output: Output{Port: "out2"}}
	r := mustCompile(t, Config{}, []Mirror{ok, big}, facts)
	if st := r.Status["ok"]; !st.Active || len(st.Selections) != 65536 || st.Selections[65535].Index != 0xffff {
		t.Errorf("ok: active %v, %d selections, err %v", st.Active, len(st.Selections), st.Err)
	}
	st := r.Status["big"]
	if st.Active || !errors.Is(st.Err, ErrUnsupported) || !strings.Contains(st.Err.Error(), "65537 selections") {
		t.Fatalf("big: active %v, err %v", st.Active, st.Err)
	}
	for _, f := range r.Flows {
		if Cookie(f.Cookie).Mirror() == st.ID {
			t.Fatalf("inactive mirror has flow %s", f)
		}
	}
}

// TestUnseededPredictsNoEgress: before the shadow MAC table is seeded, a
// destination it does not know is predicted to go nowhere (it may be one
// NORMAL knows elsewhere), not flooded; that is the only difference, and a
// Compiler notices the change of facts.
func TestUnseededPredictsNoEgress(t *testing.T) {
	facts := BridgeFacts{Ports: map[string]PortFacts{
		"h1": {OFPort: 1}, "h2": {OFPort: 2}, "mon": {OFPort: 3, Tag: 4095, Isolated: true},
	}}
	ms := []Mirror{{Name: "m", Ports: []string{"h1"}, Output: Output{Port: "mon"}}}
	seeded := mustCompile(t, Config{}, ms, facts)
	unseeded := facts
	unseeded.Unseeded = true
	cold := mustCompile(t, Config{}, ms, unseeded)
	text := func(r *Result) map[string]bool {
		out := map[string]bool{}
		for _, f := range r.Flows {
			out[f.String()] = true
		}
		return out
	}
	a, b := text(seeded), text(cold)
	var onlySeeded, onlyCold []string
	for s := range a {
		if !b[s] {
			onlySeeded = append(onlySeeded, s)
		}
	}
	for s := range b {
		if !a[s] {
			onlyCold = append(onlyCold, s)
		}
	}
	if len(onlySeeded) != 1 || len(onlyCold) != 1 {
		t.Fatalf("flows differing: seeded only %q, unseeded only %q; want one each", onlySeeded, onlyCold)
	}
	flood, none := fmt.Sprintf("0x%x", EgressFlood), "load:0->"
	if !strings.Contains(onlySeeded[0], "priority=0") || !strings.Contains(onlySeeded[0], flood) ||
		!strings.Contains(onlyCold[0], "priority=0") || !strings.Contains(onlyCold[0], none) {
		t.Fatalf("miss prediction: seeded %q, unseeded %q", onlySeeded[0], onlyCold[0])
	}
	var cc Compiler
	r1, err := cc.Compile(Config{}, ms, unseeded)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := cc.Compile(Config{}, ms, facts)
	if err != nil {
		t.Fatal(err)
	}
	if got := text(r1); len(got) != len(b) {
		t.Fatalf("Compiler, unseeded: %d flows, want %d", len(got), len(b))
	}
	for s := range text(r2) {
		if !a[s] {
			t.Fatalf("Compiler after seeding kept %q", s)
		}
	}
}
