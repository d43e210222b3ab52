package ofpx

import (
	"testing"

	"github.com/contiv/libOpenflow/openflow13"
)

// BenchmarkAppendFlowMod encodes a typical mirror flow (register match,
// output_trunc, load, resubmit) into a reused buffer.
func BenchmarkAppendFlowMod(b *testing.B) {
	fm := NewFlowMod(FlowAdd, 3)
	mf, _ := MatchRegBits(0, 0, 16, 5)
	fm.Match.AddField(mf)
	fm.Match.AddField(MatchInPort(4))
	in := openflow13.NewInstrApplyActions()
	_ = in.AddAction(&OutputTrunc{Port: 2, MaxLen: 128}, false)
	_ = in.AddAction(&RegLoad{Dst: Reg(1).Range(0, 8), Value: 3}, false)
	_ = in.AddAction(ResubmitTable(4), false)
	fm.AddInstruction(in)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		if buf, err = AppendFlowMod(buf[:0], fm, uint32(i)); err != nil {
			b.Fatal(err)
		}
	}
}
