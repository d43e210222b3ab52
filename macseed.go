package flowspan

import (
	"fmt"

	"github.com/flowspan/flowspan/flows"
)

var _ MACSeeder = flowsCompiler{}

// MACSeeds implements MACSeeder with flows.ParseFDBShow,
// flows.SplitMACEntries and flows.MACFlows.
func (c flowsCompiler) MACSeeds(mirrors []CompileMirror, b Bridge, fdbShow string) (now []FlowEntry, later func() ([]FlowEntry, error), err error) {
	entries, err := flows.ParseFDBShow(fdbShow)
	if err != nil {
		return nil, nil, fmt.Errorf("bridge %s: %w", b.Name, err)
	}
	if len(entries) == 0 {
		return nil, nil, nil
	}
	in := make([]flows.Mirror, len(mirrors))
	for i, m := range mirrors {
		in[i] = toFlowsMirror(m.Spec, m.ID)
	}
	facts := flowsFacts(b)
	nowE, laterE, err := flows.SplitMACEntries(c.cfg, in, facts, entries)
	if err != nil {
		return nil, nil, fmt.Errorf("bridge %s: seeding MAC table: %w", b.Name, err)
	}
	conv := func(es []flows.MACEntry) ([]FlowEntry, error) {
		if len(es) == 0 {
			return nil, nil
		}
		fl, err := flows.MACFlows(c.cfg, in, facts, es)
		if err != nil {
			return nil, fmt.Errorf("bridge %s: seeding MAC table: %w", b.Name, err)
		}
		out := make([]FlowEntry, len(fl))
		for i, f := range fl {
			out[i] = FlowEntry{Table: f.Table, Priority: f.Priority, Cookie: f.Cookie, Match: f.Match, Flow: compiledFlow{f}}
		}
		return out, nil
	}
	if now, err = conv(nowE); err != nil {
		return nil, nil, err
	}
	return now, func() ([]FlowEntry, error) { return conv(laterE) }, nil
}
