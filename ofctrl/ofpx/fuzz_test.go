package ofpx

import (
	"reflect"
	"testing"

	"github.com/contiv/libOpenflow/openflow13"
)

// FuzzDecodeAction feeds arbitrary bytes to every action decoder of this
// package: none may panic, and whatever decodes must re-encode to a valid
// action or fail validation with an error.
//
//	go test -run='^$' -fuzz='^FuzzDecodeAction$' -fuzztime=10s ./ofctrl/ofpx/
func FuzzDecodeAction(f *testing.F) {
	seeds := []openflow13.Action{
		&OutputTrunc{Port: 2, MaxLen: 100}, ResubmitTable(3), &RegLoad{Dst: Reg(1).Range(0, 8), Value: 7},
		&RegMove{Src: NXMInPort.All(), Dst: Reg(2).Range(0, 16)}, &Conjunction{ID: 1, Clause: 1, NClauses: 2},
		&Output{Port: 1}, &PushVLAN{}, &PopVLAN{}, SetVLANVID(5),
		&Learn{Table: 1, Specs: []LearnSpec{LearnMatch(NXMEthDst.All(), NXMEthSrc.All()), LearnLoadValue(3, Reg(0).Range(0, 4))}},
	}
	for _, a := range seeds {
		b, err := a.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	types := make([]reflect.Type, len(seeds))
	for i, a := range seeds {
		types[i] = reflect.TypeOf(a).Elem()
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range types {
			a := reflect.New(typ).Interface().(openflow13.Action)
			if err := a.UnmarshalBinary(data); err != nil {
				continue
			}
			b, err := a.MarshalBinary()
			if err != nil {
				continue // decoded but invalid: rejected on encode, fine
			}
			if len(b) != int(a.Len()) || len(b)%8 != 0 {
				t.Fatalf("%T re-encodes to %d bytes, Len %d", a, len(b), a.Len())
			}
		}
	})
}
