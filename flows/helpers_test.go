package flows

// sampleFacts is a bridge with every VLAN mode: access, trunk with and
// without a list, native-untagged, native-tagged, the local port and two
// output ports (one isolated, one access).
func sampleFacts() BridgeFacts {
	return BridgeFacts{Ports: map[string]PortFacts{
		"a1":   {OFPort: 1, Tag: 10},
		"t1":   {OFPort: 2},
		"t2":   {OFPort: 3, Trunks: []uint16{10, 20}},
		"n1":   {OFPort: 4, Tag: 20, Trunks: []uint16{10, 20}, VLANMode: "native-untagged"},
		"n2":   {OFPort: 5, Tag: 30, VLANMode: "native-tagged"},
		"out":  {OFPort: 6, Tag: 4095, Isolated: true},
		"out2": {OFPort: 7, Tag: 30},
		"br0":  {OFPort: PortLocal},
	}}
}

// sampleMirrors uses every selection kind, VLANs, filters, snaplen, a
// shared output, an access output and RSPAN.
func sampleMirrors() []Mirror {
	return []Mirror{
		{Name: "web", ID: 1, Ports: []string{"a1"}, Filters: []string{"tcp,tp_dst=443", "arp"}, Output: Output{Port: "out"}, Snaplen: 128},
		{Name: "trunks", ID: 2, Egress: []string{"t2", "n1"}, Ingress: []string{"n2"}, VLANs: []uint16{10, 11}, Output: Output{Port: "out"}},
		{Name: "all", ID: 3, All: true, Output: Output{Port: "out2"}},
		{Name: "rspan", ID: 4, Ingress: []string{"t1"}, Output: Output{VLAN: 20}},
	}
}
