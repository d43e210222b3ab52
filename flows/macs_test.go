package flows

import (
	"strings"
	"testing"
	"time"
)

func TestParseFDBShowAndMACFlows(t *testing.T) {
	out := ` port  VLAN  MAC                Age
    1    10  02:00:00:00:00:a1    3
    2     0  02:00:00:00:00:02  299
LOCAL     0  02:00:00:00:00:ff    ?
    6     0  02:00:00:00:00:06    1
`
	es, err := ParseFDBShow(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 4 || es[0].Port != 1 || es[0].VLAN != 10 || es[0].Age != 3*time.Second || es[2].Port != PortLocal || es[1].MAC != [6]byte{2, 0, 0, 0, 0, 2} {
		t.Fatalf("ParseFDBShow = %+v", es)
	}
	fl, err := MACFlows(Config{}, sampleMirrors(), sampleFacts(), es)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"cookie=0xf500030000000001, table=3, hard_timeout=297, priority=9,reg0=0xa/0xfff,dl_dst=02:00:00:00:00:a1 actions=load:0x1->NXM_NX_REG1[0..15]",
		"cookie=0xf500030000000002, table=3, hard_timeout=1, priority=9,reg0=0/0xfff,dl_dst=02:00:00:00:00:02 actions=load:0x2->NXM_NX_REG1[0..15]",
		"cookie=0xf50003000000fffe, table=3, hard_timeout=300, priority=9,reg0=0/0xfff,dl_dst=02:00:00:00:00:ff actions=load:0xfffe->NXM_NX_REG1[0..15]",
		// port 6 is an output: NORMAL drops what goes to its MACs (EgressDrop)
		"cookie=0xf500030000800006, table=3, hard_timeout=299, priority=9,reg0=0/0xfff,dl_dst=02:00:00:00:00:06 actions=load:0xfffa->NXM_NX_REG1[0..15]",
	}
	if got := flowLines(fl); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("MACFlows (-want +got):\n%s", lineDiff(want, got))
	}
	if _, err := ParseFDBShow("1 2 3"); err == nil {
		t.Errorf("bad fdb/show line accepted")
	}
}

func TestParseFDBShowForms(t *testing.T) {
	es, err := ParseFDBShow(" port  VLAN  MAC                Age\r\n\t7\t4095\t0A:bC:00:00:00:FF\tstatic\n\n    2  1  02:00:00:00:00:02  ?")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0] != (MACEntry{Port: 7, VLAN: 4095, MAC: [6]byte{0x0a, 0xbc, 0, 0, 0, 0xff}}) ||
		es[1] != (MACEntry{Port: 2, VLAN: 1, MAC: [6]byte{2, 0, 0, 0, 0, 2}}) {
		t.Fatalf("ParseFDBShow = %+v", es)
	}
	for _, bad := range []string{
		"1 0 02:00:00:00:00 3",      // short MAC
		"1 0 02:00:00:00:00:0g 3",   // not hex
		"1 0 02-00-00-00-00-01 3",   // wrong separator
		"1 0 02:00:00:00:00:01 3 x", // extra field
		"1 4096 02:00:00:00:00:01 3",
		"x 0 02:00:00:00:00:01 3",
		"1 0 02:00:00:00:00:01",
	} {
		if _, err := ParseFDBShow(bad); err == nil {
			t.Errorf("ParseFDBShow(%q) accepted", bad)
		} else if !strings.Contains(err.Error(), "line 1") {
			t.Errorf("ParseFDBShow(%q): %v, want the line named", bad, err)
		}
	}
}

// Seeds never have the table and priority of the flows the learn actions
// write: OVS 3.1 can abort when a bundle inserts a flow identical to one a
// learn action inserts at the same moment (see seedPriority).
func TestSeedsNeverShadowLearnedFlows(t *testing.T) {
	res, err := Compile(Config{}, sampleMirrors(), sampleFacts())
	if err != nil {
		t.Fatal(err)
	}
	learned := map[[2]int]bool{}
	for _, f := range res.Flows {
		for _, a := range f.Actions {
			if l, ok := a.(ActLearn); ok {
				learned[[2]int{int(l.Table), int(l.Priority)}] = true
			}
		}
	}
	if len(learned) == 0 {
		t.Fatal("no learn action in the sample pipeline")
	}
	es := []MACEntry{{Port: 1, VLAN: 10, MAC: [6]byte{2, 0, 0, 0, 0, 1}}, {Port: 6, MAC: [6]byte{2, 0, 0, 0, 0, 6}}}
	seeds, err := MACFlows(Config{}, sampleMirrors(), sampleFacts(), es)
	if err != nil {
		t.Fatal(err)
	}
	if len(seeds) != 2 {
		t.Fatalf("%d seeds, want 2", len(seeds))
	}
	for _, f := range seeds {
		if learned[[2]int{int(f.Table), int(f.Priority)}] {
			t.Errorf("seed %s has the table and priority of learned flows", flowLines([]Flow{f})[0])
		}
	}
}
