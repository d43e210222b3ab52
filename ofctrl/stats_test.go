package ofctrl

import (
	"bytes"
	"testing"
)

// TestFlowStatsSlicesIndependent: Match and Instructions share the reply's
// buffer, but appending to one never overwrites another flow's bytes or
// the same flow's instructions.
func TestFlowStatsSlicesIndependent(t *testing.T) {
	m, err := parseMessage(flowStatsReply(9, false, 3, 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.flows) != 2 {
		t.Fatalf("%d flows, want 2", len(m.flows))
	}
	instr0 := bytes.Clone(m.flows[0].Instructions)
	match1 := bytes.Clone(m.flows[1].Match)
	_ = append(m.flows[0].Match, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11, 0x22)
	_ = append(m.flows[0].Instructions, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11, 0x22)
	if !bytes.Equal(m.flows[0].Instructions, instr0) {
		t.Errorf("appending to flow 0's match changed its instructions: %x, was %x", m.flows[0].Instructions, instr0)
	}
	if !bytes.Equal(m.flows[1].Match, match1) || m.flows[1].Cookie != 2 {
		t.Errorf("appending to flow 0 changed flow 1: match %x (was %x), cookie %d", m.flows[1].Match, match1, m.flows[1].Cookie)
	}
}

// TestStitchFlowStats: multipart parts are joined in order; no flows is nil.
func TestStitchFlowStats(t *testing.T) {
	var msgs []*message
	for i, ck := range [][]uint64{{1, 2}, {}, {3}} {
		m, err := parseMessage(flowStatsReply(9, i < 2, 0, ck...))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	out, err := stitchFlowStats(msgs)
	if err != nil || len(out) != 3 || out[0].Cookie != 1 || out[1].Cookie != 2 || out[2].Cookie != 3 {
		t.Fatalf("stitched %+v, %v; want cookies 1, 2, 3", out, err)
	}
	if out, err := stitchFlowStats(msgs[1:2]); out != nil || err != nil {
		t.Fatalf("no flows: %v, %v; want nil, nil", out, err)
	}
	msgs[1].mpType = mpPortDesc
	if _, err := stitchFlowStats(msgs); err == nil {
		t.Fatalf("a port description part was accepted")
	}
}
