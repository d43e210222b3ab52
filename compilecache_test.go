package flowspan

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/flowspan/flowspan/api"
	"github.com/flowspan/flowspan/flows"
)

// TestFlowsCompilerCacheMatchesUncached drives NewFlowsCompiler (cached,
// two bridges interleaved) and an uncached flowsCompiler through random
// adds, deletes, spec changes, port changes and generations: the programs
// must hold the same flows (each mirror's in the same order), the same
// Missing and Inactive, and count the same statistics. The cached
// program lists each mirror's flows together in ID order, shared flows
// last.
func TestFlowsCompilerCacheMatchesUncached(t *testing.T) {
	cached := NewFlowsCompiler(flows.Config{})
	plain := flowsCompiler{}
	filters := []string{"tcp,tp_dst=443", "udp", "arp", "ip,nw_src=10.0.0.0/8", "icmp"}
	type world struct {
		bridge  Bridge
		mirrors []CompileMirror
		gen     uint8
	}
	worlds := []*world{}
	for _, name := range []string{"br0", "br1"} {
		w := &world{bridge: Bridge{Name: name, Ports: map[string]Port{}}, gen: 1}
		for i := range 6 {
			p := fmt.Sprintf("p%d", i)
			w.bridge.Ports[p] = Port{Name: p, OFPort: uint32(i + 1)}
		}
		w.bridge.Ports["out"] = Port{Name: "out", OFPort: 20, Tag: 4095, Isolated: true}
		worlds = append(worlds, w)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	nextID := uint32(0)
	randomSpec := func(name string) api.MirrorSpec {
		s := api.MirrorSpec{Name: name, Output: api.Output{Port: "out"}}
		if rng.IntN(4) == 0 {
			s.Output = api.Output{VLAN: uint16(10 + rng.IntN(2)*10)}
		}
		for _, i := range rng.Perm(6)[:1+rng.IntN(3)] {
			p := fmt.Sprintf("p%d", i)
			switch rng.IntN(3) {
			case 0:
				s.Ingress = append(s.Ingress, p)
			case 1:
				s.Egress = append(s.Egress, p)
			default:
				s.Ports = append(s.Ports, p)
			}
		}
		for _, i := range rng.Perm(len(filters))[:rng.IntN(3)] {
			s.Match = append(s.Match, filters[i])
		}
		return s
	}
	reused := 0
	prevFlows := map[string][]FlowEntry{}
	for step := range 300 {
		w := worlds[rng.IntN(len(worlds))]
		switch k := rng.IntN(10); {
		case k < 4 || len(w.mirrors) == 0:
			nextID++
			w.mirrors = append(w.mirrors, CompileMirror{ID: nextID, Spec: randomSpec(fmt.Sprintf("m%d", nextID))})
		case k < 6:
			i := rng.IntN(len(w.mirrors))
			w.mirrors = slices.Delete(w.mirrors, i, i+1)
		case k < 7:
			i := rng.IntN(len(w.mirrors))
			w.mirrors[i].Spec = randomSpec(w.mirrors[i].Spec.Name)
		case k < 9:
			p := fmt.Sprintf("p%d", rng.IntN(8))
			port := Port{Name: p, OFPort: uint32(1 + rng.IntN(8))}
			switch rng.IntN(4) {
			case 0:
				port.OFPort = 0
			case 1:
				port.Tag = 10
			case 2:
				port.Trunks = []uint16{10, 20}
			}
			w.bridge.Ports[p] = port
		default:
			w.gen = w.gen%3 + 1
		}
		got, err := cached.Compile(w.gen, w.mirrors, w.bridge)
		if err != nil {
			t.Fatalf("step %d: cached: %v", step, err)
		}
		want, err := plain.Compile(w.gen, w.mirrors, w.bridge)
		if err != nil {
			t.Fatalf("step %d: uncached: %v", step, err)
		}
		if g, wn := flowsByMirror(got.Flows), flowsByMirror(want.Flows); !reflect.DeepEqual(g, wn) {
			t.Fatalf("step %d: flows differ:\ncached   %v\nuncached %v", step, g, wn)
		}
		checkCachedOrder(t, w.mirrors, got.Flows)
		if !reflect.DeepEqual(got.Missing, want.Missing) {
			t.Fatalf("step %d: missing %v, want %v", step, got.Missing, want.Missing)
		}
		if g, wn := errTexts(got.Inactive), errTexts(want.Inactive); !reflect.DeepEqual(g, wn) {
			t.Fatalf("step %d: inactive %v, want %v", step, g, wn)
		}
		var stats []FlowStat
		for i, f := range want.Flows {
			stats = append(stats, FlowStat{Table: f.Table, Priority: f.Priority, Cookie: f.Cookie, Packets: uint64(i + 1), Bytes: uint64(100 * (i + 1))})
		}
		if g, wn := got.Count(stats), want.Count(stats); !reflect.DeepEqual(g, wn) {
			t.Fatalf("step %d: counters %+v, want %+v", step, g, wn)
		}
		// Entries of unchanged mirrors are reused: same flow behind them.
		prev := prevFlows[w.bridge.Name]
		for _, f := range got.Flows {
			if f.Mirror == "" {
				continue
			}
			for _, p := range prev {
				if p.Mirror == f.Mirror && p.Flow == f.Flow {
					reused++
					break
				}
			}
			break
		}
		prevFlows[w.bridge.Name] = got.Flows
	}
	if reused == 0 {
		t.Errorf("no entry was reused between compiles: the cache does nothing")
	}
}

// flowsByMirror renders flows grouped by mirror ("" for shared flows),
// each group in order, with the key the Manager tracks them by.
func flowsByMirror(fl []FlowEntry) map[string][]string {
	out := map[string][]string{}
	for _, f := range fl {
		out[f.Mirror] = append(out[f.Mirror], fmt.Sprintf("%s | %d %d %v", f.Flow, f.Table, f.Priority, f.Match))
	}
	return out
}

func checkCachedOrder(t *testing.T, mirrors []CompileMirror, fl []FlowEntry) {
	t.Helper()
	ids := map[string]uint32{}
	for _, m := range mirrors {
		ids[m.Spec.Name] = m.ID
	}
	var last uint32
	sharedSeen := false
	for i, f := range fl {
		if f.Mirror == "" {
			sharedSeen = true
			continue
		}
		if sharedSeen {
			t.Fatalf("flow %d (%s) of mirror %s after shared flows", i, f.Flow, f.Mirror)
		}
		if id := ids[f.Mirror]; id < last {
			t.Fatalf("flow %d of mirror %s (ID %d) after ID %d", i, f.Mirror, id, last)
		} else {
			last = id
		}
	}
}

func errTexts(m map[string]error) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v.Error()
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// TestCachedFlowSameActions: flows of either kind compare by their actions.
func TestCachedFlowSameActions(t *testing.T) {
	a := flows.Flow{Actions: []flows.Action{flows.ActNormal{}}}
	b := flows.Flow{Actions: []flows.Action{flows.ActNormal{}}}
	c := flows.Flow{Actions: []flows.Action{flows.ActOutput{Port: 3}}}
	for _, tc := range []struct {
		x, y Flow
		want bool
	}{
		{cachedFlow{&a}, cachedFlow{&a}, true},
		{cachedFlow{&a}, compiledFlow{b}, true},
		{compiledFlow{b}, cachedFlow{&a}, true},
		{cachedFlow{&a}, cachedFlow{&c}, false},
		{compiledFlow{c}, cachedFlow{&b}, false},
		{cachedFlow{&a}, fakeFlow{"NORMAL", "NORMAL"}, false},
	} {
		if got := sameActions(tc.x, tc.y); got != tc.want {
			t.Errorf("sameActions(%s, %s) = %v, want %v", tc.x, tc.y, got, tc.want)
		}
	}
	if !strings.Contains(cachedFlow{&c}.String(), "output:3") {
		t.Errorf("cachedFlow text %q", cachedFlow{&c}.String())
	}
}
