package flows_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/flowspan/flowspan/flows"
	"github.com/flowspan/flowspan/test/lab"
)

// bigInput is 256 mirrors x 40 filters on a 500-port bridge, the size the
// design promises (10,240 filters): every mirror selects all packets and
// has a last filter matching the test packet, and the mirrors share 64
// outputs.
func bigInput() ([]flows.Mirror, flows.BridgeFacts) {
	facts := flows.BridgeFacts{Ports: map[string]flows.PortFacts{}}
	for i := 1; i <= 500; i++ {
		p := flows.PortFacts{OFPort: uint32(i)}
		switch {
		case i > 436:
			p.Tag, p.Isolated = 4095, true
		case i%10 == 0:
			p.Trunks = []uint16{10, 11, 12, 13}
		case i%10 == 5:
		default:
			p.Tag = uint16(10 + i%20)
		}
		facts.Ports[fmt.Sprintf("p%d", i)] = p
	}
	mirrors := make([]flows.Mirror, 256)
	for i := range mirrors {
		m := flows.Mirror{Name: fmt.Sprintf("m%03d", i), ID: uint16(i + 1), All: true,
			Output: flows.Output{Port: fmt.Sprintf("p%d", 437+i%64)}, Snaplen: uint16(100 + i)}
		for j := 0; j < 39; j++ {
			m.Filters = append(m.Filters, fmt.Sprintf("tcp,nw_dst=10.%d.%d.0/24,tp_dst=%d", i, j, 1000+j))
		}
		m.Filters = append(m.Filters, "udp,udp_dst=53")
		mirrors[i] = m
	}
	return mirrors, facts
}

// TestOfctlAcceptsEveryFlow installs whole compiled pipelines (standalone,
// embedded, and 256 mirrors x 40 filters) with ovs-ofctl --bundle
// add-flows and checks the switch shows exactly the text MarshalText
// printed.
func TestOfctlAcceptsEveryFlow(t *testing.T) {
	t.Parallel()
	facts := flows.BridgeFacts{Ports: map[string]flows.PortFacts{
		"a1": {OFPort: 1, Tag: 10}, "t1": {OFPort: 2}, "t2": {OFPort: 3, Trunks: []uint16{10, 20}},
		"n1": {OFPort: 4, Tag: 20, Trunks: []uint16{10, 20}, VLANMode: "native-untagged"},
		"n2": {OFPort: 5, Tag: 30, VLANMode: "native-tagged"}, "out": {OFPort: 6, Tag: 4095, Isolated: true},
		"out2": {OFPort: 7, Tag: 30}, "br0": {OFPort: flows.PortLocal},
	}}
	sample := []flows.Mirror{
		{Name: "web", Ports: []string{"a1"}, Filters: []string{"tcp,tp_dst=443", "arp,arp_op=1", "ipv6,ipv6_dst=2001:db8::/32",
			"icmp6,icmp_type=135,nd_target=fe80::1", "tcp,tcp_flags=+syn-ack", "ip,ip_dscp=46,nw_ttl=1,ip_frag=first",
			"dl_src=aa:bb:cc:00:00:00/ff:ff:ff:00:00:00", "udp6,udp_src=0x1000/0xf000", "dl_vlan=10,dl_vlan_pcp=5"},
			Output: flows.Output{Port: "out"}, Snaplen: 128},
		{Name: "trunks", Egress: []string{"t2", "n1"}, Ingress: []string{"n2"}, VLANs: []uint16{10, 11}, Output: flows.Output{Port: "out"}},
		{Name: "all", All: true, Output: flows.Output{Port: "out2"}},
		{Name: "rspan", Ingress: []string{"t1"}, Output: flows.Output{VLAN: 20}},
	}
	hostEgress := 7
	big, bigFacts := bigInput()
	cases := []struct {
		name    string
		cfg     flows.Config
		mirrors []flows.Mirror
		facts   flows.BridgeFacts
	}{
		{"standalone", flows.Config{}, sample, facts},
		{"embedded", flows.Config{TableBase: 10, ContinueTable: 30, Registers: &flows.Registers{Meta: 5, Egress: 6}, HostEgress: &hostEgress, Generation: 3}, sample, facts},
		{"256x40", flows.Config{}, big, bigFacts},
	}
	l := lab.New(t)
	l.AddBridge(t, "br0")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := flows.Compile(tc.cfg, tc.mirrors, tc.facts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Ofctl("-O", "OpenFlow13", "del-flows", "br0"); err != nil {
				t.Fatal(err)
			}
			installFlows(t, l, res.Flows)
		})
	}
}

// TestManyMirrorsWithinOVSLimits sends a packet that all 256 mirrors select
// through ofproto/trace: OVS must translate it without hitting its resubmit
// or depth limits, send one copy to each of the 64 outputs, and forward it.
func TestManyMirrorsWithinOVSLimits(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	mirrors, facts := bigInput()
	// Real ports for the outputs and one source, so the datapath actions
	// name them.
	l.MustVsctl(t, "add-port", "br0", "src", "--", "set", "Interface", "src", "type=internal", "ofport_request=1")
	real := flows.BridgeFacts{Ports: map[string]flows.PortFacts{"src": {OFPort: 1}}}
	for i := 437; i <= 500; i++ {
		name := fmt.Sprintf("p%d", i)
		l.MustVsctl(t, "add-port", "br0", name, "tag=4095", "--", "set", "Interface", name, "type=internal", fmt.Sprintf("ofport_request=%d", i))
		real.Ports[name] = facts.Ports[name]
	}
	for i := 437; i <= 500; i++ {
		l.OFPort(t, fmt.Sprintf("p%d", i))
	}
	res, err := flows.Compile(flows.Config{}, mirrors, real)
	if err != nil {
		t.Fatal(err)
	}
	installFlows(t, l, res.Flows)
	out, err := l.Appctl("ofproto/trace", "br0", "udp,in_port=1,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,nw_src=10.0.0.1,nw_dst=10.0.0.2,udp_dst=53")
	if err != nil {
		t.Fatalf("trace: %v\n%s", err, out)
	}
	for _, bad := range []string{"over 4096 resubmit", "over max translation depth", "too many resubmits", "Translation failed"} {
		if strings.Contains(out, bad) {
			t.Fatalf("trace hit an OVS limit (%q):\n%s", bad, out)
		}
	}
	var dp string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "Datapath actions: ") {
			dp = strings.TrimPrefix(line, "Datapath actions: ")
		}
	}
	if dp == "" {
		t.Fatalf("no datapath actions in trace:\n%s", out)
	}
	truncs := strings.Count(dp, "trunc(")
	if truncs != 64 {
		t.Errorf("%d truncated copies in datapath actions, want one per output (64): %s", truncs, dp)
	}
}
