package flows

import (
	"errors"
	"strings"
	"testing"
)

func TestMirrorValidate(t *testing.T) {
	ok := Mirror{Name: "web", Ports: []string{"vnet1"}, Output: Output{Port: "mirror0"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid mirror: %v", err)
	}
	cases := []struct {
		name string
		edit func(m *Mirror)
		want string
	}{
		{"no name", func(m *Mirror) { m.Name = "" }, `mirror: name: name is empty`},
		{"space in name", func(m *Mirror) { m.Name = "a b" }, `mirror "a b": name: name contains ' '`},
		{"long name", func(m *Mirror) { m.Name = strings.Repeat("x", 65) }, `longer than 64`},
		{"selects nothing", func(m *Mirror) { m.Ports = nil }, `mirror "web": selection: selects nothing`},
		{"all and ports", func(m *Mirror) { m.All = true }, `all and a port list are exclusive`},
		{"port twice", func(m *Mirror) { m.Ports = []string{"a", "a"} }, `ports: port "a" listed twice`},
		{"port in two lists", func(m *Mirror) { m.Ingress = []string{"vnet1"} }, `ports: port "vnet1" also listed in ingress`},
		{"empty port", func(m *Mirror) { m.Egress = []string{""} }, `egress: empty port name`},
		{"vlan range", func(m *Mirror) { m.VLANs = []uint16{4096} }, `vlans: VLAN 4096 out of range`},
		{"vlan twice", func(m *Mirror) { m.VLANs = []uint16{5, 5} }, `VLAN 5 listed twice`},
		{"bad filter", func(m *Mirror) { m.Filters = []string{"tcp", "tp_dst=1"} }, `mirror "web": filters[1]: filter "tp_dst=1": column 1`},
		{"no output", func(m *Mirror) { m.Output = Output{} }, `output: no output`},
		{"two outputs", func(m *Mirror) { m.Output.VLAN = 5 }, `are exclusive`},
		{"output vlan range", func(m *Mirror) { m.Output = Output{VLAN: 4096} }, `VLAN 4096 out of range`},
		{"output selected", func(m *Mirror) { m.Output.Port = "vnet1" }, `port "vnet1" is also selected`},
		{"snaplen", func(m *Mirror) { m.Snaplen = 13 }, `snaplen: 13 is below 14`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := ok
			m.Ports = append([]string(nil), ok.Ports...)
			tc.edit(&m)
			err := m.Validate()
			if err == nil {
				t.Fatalf("Validate succeeded, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %q, want it to contain %q", err, tc.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid")
			}
		})
	}
	for _, good := range []Mirror{
		{Name: "v", VLANs: []uint16{10}, Output: Output{Port: "o"}},
		{Name: "f", Filters: []string{"arp"}, Output: Output{Port: "o"}},
		{Name: "a", All: true, Output: Output{VLAN: 100}, Snaplen: 64},
		{Name: "s", Ingress: []string{"a"}, Egress: []string{"b"}, Output: Output{Port: "o"}, Snaplen: 65535},
	} {
		if err := good.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", good, err)
		}
	}
}
