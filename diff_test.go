package flowspan

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func diffFlow(i int, actions string, cookie uint64) FlowEntry {
	m := fmt.Sprintf("reg0=%d", i)
	return FlowEntry{Table: uint8(i % 3), Priority: 100, Cookie: cookie, Match: m,
		Flow: fakeFlow{fmt.Sprintf("cookie=%#x,table=%d,%s actions=%s", cookie, i%3, m, actions), actions}}
}

// applyTo applies ch to a fake switch holding installed and returns what it
// holds then, sorted.
func applyTo(t *testing.T, installed []FlowEntry, ch Changes) []string {
	t.Helper()
	sw := newFakeSwitch()
	if err := sw.Apply(context.Background(), Changes{Add: installed}); err != nil {
		t.Fatal(err)
	}
	if err := sw.Apply(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	return sw.texts()
}

func texts(fl []FlowEntry) []string {
	out := make([]string, len(fl))
	for i, f := range fl {
		out[i] = f.Flow.String()
	}
	slices.Sort(out)
	return out
}

// TestDiffMinimal: diff turns installed into desired with the fewest
// changes, whatever changed where (prefix and suffix skipping included).
func TestDiffMinimal(t *testing.T) {
	base := make([]FlowEntry, 50)
	for i := range base {
		base[i] = diffFlow(i, "output:1", 0xf5<<56|uint64(i))
	}
	ins := slices.Insert(slices.Clone(base), 20, diffFlow(100, "output:2", 0xf5<<56|100))
	del := slices.Delete(slices.Clone(base), 20, 21)
	mod := slices.Clone(base)
	mod[20] = diffFlow(20, "output:9", mod[20].Cookie)
	ck := slices.Clone(base)
	ck[49] = diffFlow(49, "output:1", 0xf5<<56|0x1_0000_0000)
	swap := slices.Clone(base)
	swap[3], swap[40] = swap[40], swap[3]
	for _, c := range []struct {
		name                string
		from, to            []FlowEntry
		add, modify, delete int
	}{
		{"same", base, base, 0, 0, 0},
		{"insert in the middle", base, ins, 1, 0, 0},
		{"delete in the middle", base, del, 0, 0, 1},
		{"actions changed", base, mod, 0, 1, 0},
		{"cookie changed at the end", base, ck, 1, 0, 1},
		{"reordered", base, swap, 0, 0, 0},
		{"from nothing", nil, base, 50, 0, 0},
		{"to nothing", base, nil, 0, 0, 50},
		{"insert at the front", base, append([]FlowEntry{diffFlow(100, "drop", 7)}, base...), 1, 0, 0},
	} {
		ch := diff(c.from, c.to)
		if len(ch.Add) != c.add || len(ch.Modify) != c.modify || len(ch.Delete) != c.delete {
			t.Errorf("%s: %d adds, %d modifies, %d deletes; want %d, %d, %d", c.name,
				len(ch.Add), len(ch.Modify), len(ch.Delete), c.add, c.modify, c.delete)
		}
		if got, want := applyTo(t, c.from, ch), texts(c.to); !slices.Equal(got, want) {
			t.Errorf("%s: switch holds\n%q\nwant\n%q", c.name, got, want)
		}
	}
	// Random edits.
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 200 {
		from := slices.Clone(base)
		to := slices.Clone(base)
		for range r.IntN(6) {
			switch i := r.IntN(len(to)); r.IntN(4) {
			case 0:
				to = slices.Delete(to, i, i+1)
			case 1:
				to = slices.Insert(to, i, diffFlow(200+r.IntN(50), "output:3", 0xf5<<56|uint64(r.IntN(3))))
			case 2:
				to[i] = diffFlow(i, "output:4", to[i].Cookie)
			case 3:
				j := r.IntN(len(to))
				to[i], to[j] = to[j], to[i]
			}
		}
		// Keys must stay unique in a flow table.
		seen := map[flowKey]bool{}
		uniq := to[:0]
		for _, f := range to {
			if !seen[f.key()] {
				seen[f.key()] = true
				uniq = append(uniq, f)
			}
		}
		to = uniq
		if got, want := applyTo(t, from, diff(from, to)), texts(to); !slices.Equal(got, want) {
			t.Fatalf("random edit %d: switch holds\n%q\nwant\n%q", n, got, want)
		}
	}
}
