package ofctrl

import (
	"strings"
	"testing"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/flowspan/flowspan/ofctrl/ofpx"
)

// TestIntegrationOfpxActionsInstallLikeOvsOfctl installs flows built with
// ofpx through ofctrl into a real OVS and checks that the switch shows
// exactly what it shows when ovs-ofctl installs the same flow text.
func TestIntegrationOfpxActionsInstallLikeOvsOfctl(t *testing.T) {
	l, dpid := newLabBridge(t)
	checkLeaks(t)
	c, ctx := labController(t, Config{Logger: testLogger(t)})
	sw := mgmtSwitch(t, ctx, c, l, dpid)
	apply := func(acts ...openflow13.Action) *openflow13.InstrActions {
		in := openflow13.NewInstrApplyActions()
		for _, a := range acts {
			_ = in.AddAction(a, false)
		}
		return in
	}
	must := func(mf openflow13.MatchField, err error) openflow13.MatchField {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return mf
	}
	vid := ofpx.NXMVlanTCI.Range(0, 12)
	tests := []struct {
		name string
		text string
		fm   func() *openflow13.FlowMod
	}{
		{"output_trunc and masked register match",
			"table=10,priority=100,cookie=0x123,reg0=0x5/0xffff,reg3=0x80000000/0x80000000,actions=output(port=2,max_len=100),resubmit(,11)",
			func() *openflow13.FlowMod {
				fm := ofpx.NewFlowMod(ofpx.FlowAdd, 10)
				fm.Priority, fm.Cookie = 100, 0x123
				fm.Match.AddField(must(ofpx.MatchReg(0, 5, 0xffff)))
				fm.Match.AddField(must(ofpx.MatchRegBits(3, 31, 1, 1)))
				fm.AddInstruction(apply(&ofpx.OutputTrunc{Port: 2, MaxLen: 100}, ofpx.ResubmitTable(11)))
				return fm
			}},
		{"load, move, set_field",
			"table=11,priority=3,in_port=4,actions=load:0x5->NXM_NX_REG0[0..15],load:0x1->NXM_NX_REG2[31],move:NXM_OF_IN_PORT[]->NXM_NX_REG1[0..15],set_field:0x2a->reg4,resubmit(5,12)",
			func() *openflow13.FlowMod {
				fm := ofpx.NewFlowMod(ofpx.FlowAdd, 11)
				fm.Priority = 3
				fm.Match.AddField(ofpx.MatchInPort(4))
				fm.AddInstruction(apply(
					&ofpx.RegLoad{Dst: ofpx.Reg(0).Range(0, 16), Value: 5},
					&ofpx.RegLoad{Dst: ofpx.Reg(2).Range(31, 1), Value: 1},
					&ofpx.RegMove{Src: ofpx.NXMInPort.All(), Dst: ofpx.Reg(1).Range(0, 16)},
					ofpx.SetReg(4, 42),
					&ofpx.Resubmit{InPort: 5, Table: 12}))
				return fm
			}},
		{"learn",
			"table=12,priority=3,actions=learn(table=20,idle_timeout=300,priority=20,cookie=0xabc,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:NXM_OF_IN_PORT[]->NXM_NX_REG1[0..15],load:0x1->NXM_NX_REG2[4]),resubmit(,13)",
			func() *openflow13.FlowMod {
				fm := ofpx.NewFlowMod(ofpx.FlowAdd, 12)
				fm.Priority = 3
				fm.AddInstruction(apply(&ofpx.Learn{Table: 20, IdleTimeout: 300, Priority: 20, Cookie: 0xabc, Specs: []ofpx.LearnSpec{
					ofpx.LearnMatch(vid, vid),
					ofpx.LearnMatch(ofpx.NXMEthDst.All(), ofpx.NXMEthSrc.All()),
					ofpx.LearnLoad(ofpx.NXMInPort.All(), ofpx.Reg(1).Range(0, 16)),
					ofpx.LearnLoadValue(1, ofpx.Reg(2).Range(4, 1)),
				}}, ofpx.ResubmitTable(13)))
				return fm
			}},
		{"vlan push set pop",
			"table=13,priority=5,dl_vlan=10,actions=pop_vlan,push_vlan:0x8100,set_field:4196->vlan_vid,output:3,NORMAL",
			func() *openflow13.FlowMod {
				fm := ofpx.NewFlowMod(ofpx.FlowAdd, 13)
				fm.Priority = 5
				fm.Match.AddField(must(ofpx.MatchVLAN(10)))
				fm.AddInstruction(apply(&ofpx.PopVLAN{}, &ofpx.PushVLAN{}, ofpx.SetVLANVID(100), &ofpx.Output{Port: 3}, &ofpx.Output{Port: ofpx.PortNormal}))
				return fm
			}},
		{"untagged, conjunction",
			"table=14,priority=5,vlan_tci=0x0000/0x1fff,actions=conjunction(7,1/2)",
			func() *openflow13.FlowMod {
				fm := ofpx.NewFlowMod(ofpx.FlowAdd, 14)
				fm.Priority = 5
				fm.Match.AddField(ofpx.MatchNoVLAN())
				fm.AddInstruction(apply(&ofpx.Conjunction{ID: 7, Clause: 1, NClauses: 2}))
				return fm
			}},
	}
	dump := func() string {
		t.Helper()
		out, err := l.Ofctl("-O", "OpenFlow13", "--no-stats", "--sort", "dump-flows", "br0")
		if err != nil {
			t.Fatalf("dump-flows: %v: %s", err, out)
		}
		var keep []string
		for _, line := range strings.Split(out, "\n") {
			if !strings.Contains(line, "actions=NORMAL") || strings.Contains(line, "table=13") {
				keep = append(keep, strings.TrimSpace(line))
			}
		}
		return strings.Join(keep, "\n")
	}
	clear := func() {
		t.Helper()
		for _, tbl := range []string{"10", "11", "12", "13", "14"} {
			if out, err := l.Ofctl("-O", "OpenFlow13", "del-flows", "br0", "table="+tbl); err != nil {
				t.Fatalf("del-flows: %v: %s", err, out)
			}
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clear()
			if out, err := l.Ofctl("-O", "OpenFlow13", "add-flow", "br0", tt.text); err != nil {
				t.Fatalf("ovs-ofctl add-flow: %v: %s", err, out)
			}
			want := dump()
			if n := len(strings.Split(strings.TrimSpace(want), "\n")); n != 1 || !strings.Contains(want, "table=1") {
				t.Fatalf("ovs-ofctl installed %q", want)
			}
			clear()
			if err := sw.Apply(ctx, []*openflow13.FlowMod{tt.fm()}); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if got := dump(); got != want {
				t.Errorf("switch shows\n%s\nwant (as installed by ovs-ofctl)\n%s", got, want)
			}
		})
	}
}
