package main

import (
	"bytes"
	"testing"

	"github.com/flowspan/flowspan/ofctrl/ofpx"
)

// The floor client and flowspan's controller must send the same flows:
// ofctrl's encoding of flowSpec.flowMod() is byte for byte flowSpec.mod.
func TestFlowModEncodingsAgree(t *testing.T) {
	for i, f := range syntheticFlows(70000) {
		if i%997 != 0 && i != 69999 {
			continue
		}
		got, err := ofpx.MarshalFlowMod(f.flowMod(), 0)
		if err != nil {
			t.Fatalf("flow %d: %v", i, err)
		}
		if !bytes.Equal(got, f.mod) {
			t.Fatalf("flow %d (%s):\nofctrl %x\nraw    %x", i, f.text, got, f.mod)
		}
	}
}

func TestSyntheticFlowsDistinct(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range syntheticFlows(50000) {
		if seen[f.text] {
			t.Fatalf("duplicate flow %s", f.text)
		}
		seen[f.text] = true
	}
	if got, want := syntheticFlows(1)[0].text, "table=2,priority=1000,cookie=0xb500000000000000,udp,nw_dst=10.0.0.0,tp_dst=1000,actions=goto_table:3"; got != want {
		t.Errorf("flow 0 = %q, want %q", got, want)
	}
}
