package flows

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// ErrInvalid is wrapped by every error that reports a bad mirror spec, bad
// filter or bad compiler configuration. Test for it with errors.Is.
var ErrInvalid = errors.New("invalid")

// Limits enforced by Validate and Compile.
const (
	// MaxFilters is the largest number of filters one mirror may carry.
	MaxFilters = 10000
	// MaxBridgeFilters is the largest number of filters Compile accepts
	// over all mirrors of a bridge.
	MaxBridgeFilters = 65536
	// MaxMirrors is the largest number of mirrors Compile accepts per bridge.
	MaxMirrors = 1024
	// MaxNameLen is the longest mirror name.
	MaxNameLen = 64
)

// Mirror is the specification of one mirror on one bridge: a selection
// (ports by direction, VLANs, or all), optional filters, one output and an
// optional snap length. See DESIGN.md section 2 for the vocabulary.
type Mirror struct {
	// Name identifies the mirror; unique per bridge.
	Name string
	// ID is the mirror's stable identifier (1..65535), carried in flow
	// cookies so that one mirror's flows can be told apart, counted and
	// replaced without touching other mirrors. Zero means "assign one":
	// Compile then numbers mirrors without an ID after the highest given ID
	// in name order, which is deterministic but not stable when mirrors
	// are added, so long-lived callers should persist IDs.
	ID uint16
	// Ingress lists ports whose received packets are selected.
	Ingress []string
	// Egress lists ports whose sent packets are selected (what NORMAL sends
	// out of them, flooded copies included).
	Egress []string
	// Ports lists ports selected in both directions.
	Ports []string
	// VLANs narrows the selection to packets in these VLANs (0..4095; the
	// 802.1Q VID or the access port's tag). With no ports named it selects
	// every port's packets in these VLANs.
	VLANs []uint16
	// All selects every packet received or sent on any port of the bridge
	// except the mirror outputs.
	All bool
	// Filters are ovs-ofctl match expressions (see ParseFilter); a selected
	// packet is mirrored if it matches any of them. With no ports, VLANs or
	// All, filters alone mean All plus the filters.
	Filters []string
	// Output is where copies go.
	Output Output
	// Snaplen truncates each copy to this many bytes: 0 (or 65535) means
	// the whole packet, otherwise 14..65535.
	Snaplen uint16
}

// Output is a mirror's destination: exactly one of Port (a port of the
// bridge: existing, internal or tunnel port created by the caller) or VLAN
// (RSPAN: the copy is flooded in that VLAN).
type Output struct {
	Port string
	VLAN uint16
}

// ValidationError reports what is wrong with a mirror spec. It wraps
// ErrInvalid.
type ValidationError struct {
	Mirror string // mirror name ("" when the name itself is missing)
	Field  string // e.g. "egress", "filters[2]", "output"
	Err    error
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	if e.Mirror != "" || e.Field != "name" {
		fmt.Fprintf(&b, "mirror %q: ", e.Mirror)
	} else {
		b.WriteString("mirror: ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *ValidationError) Unwrap() error { return e.Err }

// Is reports ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func (m Mirror) invalid(field, format string, args ...any) error {
	return &ValidationError{Mirror: m.Name, Field: field, Err: fmt.Errorf(format, args...)}
}

// selectsNothingByPorts reports whether no port is named.
func (m Mirror) namesNoPorts() bool {
	return len(m.Ingress) == 0 && len(m.Egress) == 0 && len(m.Ports) == 0
}

// Validate checks the spec on its own (no bridge facts): name, selection,
// VLAN ranges, duplicates, filters, output and snaplen. The error names the
// mirror, the field and the problem, and wraps ErrInvalid.
func (m Mirror) Validate() error { return m.validate(nil) }

// validate is Validate; parsed filters are stored in cache when not nil.
func (m Mirror) validate(cache map[string]Match) error {
	if m.Name == "" {
		return m.invalid("name", "name is empty")
	}
	if len(m.Name) > MaxNameLen {
		return m.invalid("name", "name is longer than %d bytes", MaxNameLen)
	}
	for _, r := range m.Name {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) || r == '/' {
			return m.invalid("name", "name contains %q; use letters, digits, '-', '_', '.'", r)
		}
	}
	if m.namesNoPorts() && !m.All && len(m.VLANs) == 0 && len(m.Filters) == 0 {
		return m.invalid("selection", "selects nothing: name ports (ingress, egress, ports), VLANs, all, or filters")
	}
	if m.All && !m.namesNoPorts() {
		return m.invalid("selection", "all and a port list are exclusive")
	}
	seen := map[string]string{}
	for _, l := range []struct {
		field string
		ports []string
	}{{"ingress", m.Ingress}, {"egress", m.Egress}, {"ports", m.Ports}} {
		for _, p := range l.ports {
			if p == "" {
				return m.invalid(l.field, "empty port name")
			}
			if prev, ok := seen[p]; ok {
				if prev == l.field {
					return m.invalid(l.field, "port %q listed twice", p)
				}
				return m.invalid(l.field, "port %q also listed in %s", p, prev)
			}
			seen[p] = l.field
		}
	}
	vlans := map[uint16]bool{}
	for _, v := range m.VLANs {
		if v > 4095 {
			return m.invalid("vlans", "VLAN %d out of range 0..4095", v)
		}
		if vlans[v] {
			return m.invalid("vlans", "VLAN %d listed twice", v)
		}
		vlans[v] = true
	}
	if len(m.Filters) > MaxFilters {
		return m.invalid("filters", "%d filters, at most %d", len(m.Filters), MaxFilters)
	}
	for i, f := range m.Filters {
		if _, ok := cache[f]; ok {
			continue
		}
		fm, err := ParseFilter(f)
		if err != nil {
			return &ValidationError{Mirror: m.Name, Field: fmt.Sprintf("filters[%d]", i), Err: err}
		}
		if cache != nil {
			cache[f] = fm
		}
	}
	switch {
	case m.Output.Port == "" && m.Output.VLAN == 0:
		return m.invalid("output", "no output: set a port or a VLAN")
	case m.Output.Port != "" && m.Output.VLAN != 0:
		return m.invalid("output", "port %q and VLAN %d are exclusive", m.Output.Port, m.Output.VLAN)
	case m.Output.VLAN > 4095:
		return m.invalid("output", "VLAN %d out of range 1..4095", m.Output.VLAN)
	}
	if f, ok := seen[m.Output.Port]; ok && m.Output.Port != "" {
		return m.invalid("output", "port %q is also selected (%s); an output port cannot be mirrored", m.Output.Port, f)
	}
	if m.Snaplen != 0 && m.Snaplen < 14 {
		return m.invalid("snaplen", "%d is below 14 (an Ethernet header); use 0 for whole packets", m.Snaplen)
	}
	return nil
}
