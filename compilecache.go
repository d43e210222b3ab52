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
	// compile, by mirror ID.
	parts map[uint16]convertedPart
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
	for _, p := range res.Parts {
		if p.Mirror == 0 || len(p.Flows) == 0 {
			continue
		}
		name := names[p.Mirror]
		cp, ok := b.parts[p.Mirror]
		if !ok || cp.first != &p.Flows[0] || cp.n != len(p.Flows) || cp.name != name {
			cp = convertedPart{first: &p.Flows[0], n: len(p.Flows), name: name, entries: toEntries(p.Flows, name)}
		}
		parts[p.Mirror] = cp
		out = append(out, cp.entries...)
	}
	b.parts = parts
	if len(res.Parts) > 0 && res.Parts[0].Mirror == 0 {
		out = append(out, toEntries(res.Parts[0].Flows, "")...)
	}
	return res, out, nil
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
