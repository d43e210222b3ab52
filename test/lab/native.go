package lab

import (
	"fmt"
	"strconv"
	"strings"
)

// NativeMirror is a row of OVS's own Mirror table: the oracle flowspan is
// compared against.
type NativeMirror struct {
	Name       string
	SelectSrc  []string // select_src_port: packets received on these ports
	SelectDst  []string // select_dst_port: packets sent out of these ports
	SelectAll  bool
	SelectVLAN []int
	Output     string // output_port
	OutputVLAN int    // output_vlan (RSPAN)
	Snaplen    int
}

// AddNativeMirror creates a Mirror row on bridge through OVSDB.
func (l *Lab) AddNativeMirror(t T, bridge string, m NativeMirror) {
	t.Helper()
	args := []string{}
	ref := map[string]string{}
	portRef := func(p string) string {
		if r, ok := ref[p]; ok {
			return r
		}
		r := fmt.Sprintf("@p%d", len(ref))
		ref[p] = r
		args = append(args, "--", "--id="+r, "get", "Port", p)
		return r
	}
	cols := []string{"name=" + m.Name}
	refs := func(ports []string) string {
		var rs []string
		for _, p := range ports {
			rs = append(rs, portRef(p))
		}
		return strings.Join(rs, ",")
	}
	if len(m.SelectSrc) > 0 {
		cols = append(cols, "select_src_port="+refs(m.SelectSrc))
	}
	if len(m.SelectDst) > 0 {
		cols = append(cols, "select_dst_port="+refs(m.SelectDst))
	}
	if m.SelectAll {
		cols = append(cols, "select_all=true")
	}
	if len(m.SelectVLAN) > 0 {
		var vs []string
		for _, v := range m.SelectVLAN {
			vs = append(vs, strconv.Itoa(v))
		}
		cols = append(cols, "select_vlan="+strings.Join(vs, ","))
	}
	if m.Output != "" {
		cols = append(cols, "output_port="+portRef(m.Output))
	}
	if m.OutputVLAN > 0 {
		cols = append(cols, fmt.Sprintf("output_vlan=%d", m.OutputVLAN))
	}
	if m.Snaplen > 0 {
		cols = append(cols, fmt.Sprintf("snaplen=%d", m.Snaplen))
	}
	args = append(args, "--", "--id=@m", "create", "Mirror")
	args = append(args, cols...)
	args = append(args, "--", "add", "Bridge", bridge, "mirrors", "@m")
	l.MustVsctl(t, args...)
	l.purgeDatapathFlows(t)
}

// purgeDatapathFlows drops the datapath's cached flows. OVS 3.1 does not
// revalidate cached datapath flows when a Mirror row changes: traffic that
// is already flowing goes on unmirrored (or mirrored) until the flows
// expire. Purging makes the new Mirror row apply at once, as a user of the
// native table would expect.
func (l *Lab) purgeDatapathFlows(t T) {
	t.Helper()
	if _, err := l.Appctl("revalidator/purge"); err != nil {
		t.Fatalf("lab: %v", err)
	}
}

// DelNativeMirror removes a Mirror row by name.
func (l *Lab) DelNativeMirror(t T, bridge, name string) {
	t.Helper()
	l.MustVsctl(t, "--", "--id=@m", "get", "Mirror", name, "--", "remove", "Bridge", bridge, "mirrors", "@m")
	l.purgeDatapathFlows(t)
}
