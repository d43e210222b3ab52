package flowspan

import (
	"sync"

	"github.com/flowspan/flowspan/flows"
)

// compileCache keeps, per bridge, a flows.Compiler (parsed filters and each
// mirror's flows) and the FlowEntries made from each mirror's flows, so
// that compiling a bridge after one mirror changed converts only that
// mirror's flows. It is safe for concurrent use.
type compileCache struct {
	mu      sync.Mutex
	bridges map[string]*bridgeCache
}

type bridgeCache struct {
	mu sync.Mutex
	fc flows.Compiler
	// parts: the entries made from each mirror's part of the previous
	// compile, by mirror ID; static: those of its first shared part.
	parts  map[uint16]convertedPart
	static convertedPart
}

// convertedPart is a mirror's flows (identified by their slice, which
// flows.Compiler keeps while they do not change) and their entries.
type convertedPart struct {
	first   *flows.Flow
	n       int
	name    string
	entries []FlowEntry
}

func newCompileCache() *compileCache { return &compileCache{bridges: map[string]*bridgeCache{}} }

func (cc *compileCache) bridge(name string) *bridgeCache {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	b := cc.bridges[name]
	if b == nil {
		b = &bridgeCache{parts: map[uint16]convertedPart{}}
		cc.bridges[name] = b
	}
	return b
}

// compile compiles in for bridge and returns the result with its flows as
// entries: each mirror's (in ID order, each in table order), then the
// shared pipeline flows. This order keeps the flows of unchanged mirrors
// at the same place relative to each other and to the shared flows, so
// the Manager's diff pairs them in place.
func (cc *compileCache) compile(bridge string, cfg flows.Config, in []flows.Mirror, facts flows.BridgeFacts,
	names map[uint16]string) (*flows.Result, []FlowEntry, error) {
	b := cc.bridge(bridge)
	b.mu.Lock()
	defer b.mu.Unlock()
	res, err := b.fc.CompileParts(cfg, in, facts)
	if err != nil {
		return nil, nil, err
	}
	total := 0
	for _, p := range res.Parts {
		total += len(p.Flows)
	}
	out := make([]FlowEntry, 0, total)
	parts := make(map[uint16]convertedPart, len(res.Parts))
	var shared []flows.Part
	for _, p := range res.Parts {
		if p.Mirror == 0 {
			shared = append(shared, p)
			continue
		}
		name := names[p.Mirror]
		cp := b.parts[p.Mirror].reuse(p.Flows, name)
		parts[p.Mirror] = cp
		out = append(out, cp.entries...)
	}
	b.parts = parts
	for i, p := range shared {
		if i == 0 {
			// Static shared flows: the same slice while facts and outputs
			// stay the same.
			b.static = b.static.reuse(p.Flows, "")
			out = append(out, b.static.entries...)
			continue
		}
		out = append(out, toEntries(p.Flows, "")...)
	}
	return res, out, nil
}

// reuse returns cp if it was made from fl for mirror, else entries made
// from fl.
func (cp convertedPart) reuse(fl []flows.Flow, mirror string) convertedPart {
	if len(fl) == 0 {
		return convertedPart{name: mirror}
	}
	if cp.first == &fl[0] && cp.n == len(fl) && cp.name == mirror {
		return cp
	}
	return convertedPart{first: &fl[0], n: len(fl), name: mirror, entries: toEntries(fl, mirror)}
}

// toEntries makes entries of fl, which must stay unchanged (a part of a
// flows.Compiler's result).
func toEntries(fl []flows.Flow, mirror string) []FlowEntry {
	out := make([]FlowEntry, len(fl))
	for i := range fl {
		f := &fl[i]
		out[i] = FlowEntry{Table: f.Table, Priority: f.Priority, Cookie: f.Cookie, Match: f.Match, Mirror: mirror, Flow: cachedFlow{f}}
	}
	return out
}
