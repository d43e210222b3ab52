package flows

import (
	"github.com/contiv/libOpenflow/openflow13"

	"github.com/flowspan/flowspan/ofctrl/ofpx"
)

// Changes is what to send to a switch to go from the installed flows to
// the desired ones, as one bundle.
type Changes struct {
	// Add: flows not installed (FlowAdd).
	Add []Flow
	// Modify: installed with the same table, priority, match and cookie,
	// but other actions (FlowModifyStrict; counters are kept).
	Modify []Flow
	// Delete: installed flows not desired, or whose cookie changed (they
	// are then also in Add) (FlowDeleteStrict, matching the old cookie).
	Delete []Flow
	// DeleteCookies: delete every flow whose cookie matches (non-strict,
	// all tables), after the adds: the old generation on a swap.
	DeleteCookies []CookieMatch
}

// Empty reports whether there is nothing to do.
func (c Changes) Empty() bool {
	return len(c.Add) == 0 && len(c.Modify) == 0 && len(c.Delete) == 0 && len(c.DeleteCookies) == 0
}

type flowKey struct {
	table uint8
	prio  uint16
	match Match
}

// Diff returns the minimal changes from installed to desired. installed is
// what was last applied to the switch (the caller keeps it; flow stats
// carry cookies and counters, not decodable matches). When the switch's
// table is unknown (a restart, a reconnect to a vswitchd that kept its
// flows), use Replace with a new generation instead. Only
// installed flows with a flowspan cookie are considered, and learned MAC
// flows are left alone, so Diff never touches a host pipeline's flows or
// the MAC table. A change to one mirror touches only that mirror's flows
// and the dispatch flow.
func Diff(installed, desired []Flow) Changes {
	var ch Changes
	have := make(map[flowKey]int, len(installed))
	for i, f := range installed {
		c := Cookie(f.Cookie)
		if !c.IsFlowspan() || c.Kind() == KindLearned {
			continue
		}
		have[flowKey{f.Table, f.Priority, f.Match}] = i
	}
	seen := make(map[flowKey]bool, len(desired))
	for _, f := range desired {
		k := flowKey{f.Table, f.Priority, f.Match}
		seen[k] = true
		i, ok := have[k]
		if !ok {
			ch.Add = append(ch.Add, f)
			continue
		}
		old := installed[i]
		switch {
		case old.Cookie != f.Cookie:
			// OpenFlow 1.3 modify keeps the cookie: replace the flow.
			ch.Delete = append(ch.Delete, old)
			ch.Add = append(ch.Add, f)
		case old.ActionsText() != f.ActionsText():
			ch.Modify = append(ch.Modify, f)
		}
	}
	for _, f := range installed {
		k := flowKey{f.Table, f.Priority, f.Match}
		if _, ours := have[k]; ours && !seen[k] {
			ch.Delete = append(ch.Delete, f)
		}
	}
	return ch
}

// Replace installs desired as a new generation over a switch whose flowspan
// flows (of any earlier generation, e.g. left by a previous run that was
// not tracked) should all go: add every desired flow (an add replaces a
// flow with the same table, priority and match in place, so forwarding and
// mirroring never stop), then delete what remains of generation old. All
// desired flows must carry a generation other than old.
func Replace(desired []Flow, old uint8) Changes {
	return Changes{Add: desired, DeleteCookies: []CookieMatch{GenerationCookies(old)}}
}

// FlowMods returns the flow mods for the changes, in bundle order: strict
// deletes, modifies, adds, then cookie deletes.
func (c Changes) FlowMods() ([]*openflow13.FlowMod, error) {
	out := make([]*openflow13.FlowMod, 0, len(c.Add)+len(c.Modify)+len(c.Delete)+len(c.DeleteCookies))
	for _, f := range c.Delete {
		fm, err := f.FlowMod(FlowDeleteStrict)
		if err != nil {
			return nil, err
		}
		fm.CookieMask = ^uint64(0)
		out = append(out, fm)
	}
	for _, f := range c.Modify {
		fm, err := f.FlowMod(FlowModifyStrict)
		if err != nil {
			return nil, err
		}
		out = append(out, fm)
	}
	for _, f := range c.Add {
		fm, err := f.FlowMod(FlowAdd)
		if err != nil {
			return nil, err
		}
		out = append(out, fm)
	}
	for _, cm := range c.DeleteCookies {
		fm := ofpx.NewFlowMod(ofpx.FlowDelete, 0xff)
		fm.Cookie, fm.CookieMask = cm.Value, cm.Mask
		out = append(out, fm)
	}
	return out, nil
}
