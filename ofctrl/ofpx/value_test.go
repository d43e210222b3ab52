package ofpx

import (
	"bytes"
	"net"
	"testing"

	"github.com/contiv/libOpenflow/openflow13"
	"github.com/contiv/libOpenflow/util"
)

// TestAppendValueMatchesMarshalBinary: the allocation-free encoding of
// libOpenflow match values is byte for byte their own MarshalBinary, also
// for addresses of the wrong length (truncated or zero-padded).
func TestAppendValueMatchesMarshalBinary(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 0xab}
	v4 := net.IPv4(10, 1, 2, 3)
	v6 := net.ParseIP("fd00::1:2")
	values := map[string]util.Message{
		"eth_type":        &openflow13.EthTypeField{EthType: 0x86dd},
		"vlan_vid":        &openflow13.VlanIdField{VlanId: 0x1005},
		"arp_op":          &openflow13.ArpOperField{ArpOper: 2},
		"tcp_flags":       &openflow13.TcpFlagsField{TcpFlags: 0x012},
		"in_port":         &openflow13.InPortField{InPort: 0xfffffffe},
		"mpls_label":      &openflow13.MplsLabelField{MplsLabel: 0xfffff},
		"mpls_bos":        &openflow13.MplsBosField{MplsBos: 1},
		"tunnel_id":       &openflow13.TunnelIdField{TunnelId: 0x0102030405060708},
		"metadata":        &openflow13.MetadataField{Metadata: 0xf0e0d0c0b0a09080},
		"eth_dst":         &openflow13.EthDstField{EthDst: mac},
		"eth_src":         &openflow13.EthSrcField{EthSrc: mac},
		"eth_src short":   &openflow13.EthSrcField{EthSrc: mac[:3]},
		"eth_dst long":    &openflow13.EthDstField{EthDst: append(mac[:6:6], 9, 9)},
		"ipv4_src":        &openflow13.Ipv4SrcField{Ipv4Src: v4},
		"ipv4_dst 4-byte": &openflow13.Ipv4DstField{Ipv4Dst: v4.To4()},
		"ipv4_dst nil":    &openflow13.Ipv4DstField{},
		"ipv4_dst v6":     &openflow13.Ipv4DstField{Ipv4Dst: v6},
		"tun_src":         &openflow13.TunnelIpv4SrcField{TunnelIpv4Src: v4},
		"tun_dst":         &openflow13.TunnelIpv4DstField{TunnelIpv4Dst: v4},
		"ipv6_src":        &openflow13.Ipv6SrcField{Ipv6Src: v6},
		"ipv6_dst":        &openflow13.Ipv6DstField{Ipv6Dst: v6},
		"ipv6_dst short":  &openflow13.Ipv6DstField{Ipv6Dst: v6[:5]},
		"ip_proto (fallback)": func() util.Message {
			return openflow13.NewIpProtoField(17).Value
		}(),
		"udp_dst (fallback)": func() util.Message {
			return openflow13.NewUdpDstField(4789).Value
		}(),
		"ofpx bytes": &Bytes{1, 2, 3},
	}
	for name, v := range values {
		want, err := v.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: MarshalBinary: %v", name, err)
		}
		prefix := []byte{0xee, 0xee}
		got, err := appendValue(prefix, v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got[:2], prefix) || !bytes.Equal(got[2:], want) {
			t.Errorf("%s: appendValue = %x, want ee ee + %x", name, got, want)
		}
	}
}

// TestGotoTableEncoding: goto_table is encoded without MarshalBinary but to
// the same bytes, and a wrong header length is still rejected.
func TestGotoTableEncoding(t *testing.T) {
	in := openflow13.NewInstrGotoTable(7)
	want, err := in.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := MarshalInstructions([]openflow13.Instruction{in})
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("MarshalInstructions(goto_table:7) = %x, %v; want %x", got, err, want)
	}
	bad := &openflow13.InstrGotoTable{TableId: 7}
	bad.Type = openflow13.InstrType_GOTO_TABLE
	if _, err := MarshalInstructions([]openflow13.Instruction{bad}); err == nil {
		t.Fatalf("goto_table with header length 0 encoded without error")
	}
}

// TestAppendFlowModAllocations: a flow mod of libOpenflow match fields
// (other than those whose value is unexported) and goto_table encodes into
// a buffer with room without allocating.
func TestAppendFlowModAllocations(t *testing.T) {
	fm := NewFlowMod(FlowAdd, 2)
	fm.Match.AddField(*openflow13.NewEthTypeField(0x0800))
	fm.Match.AddField(*openflow13.NewIpv4DstField(net.IPv4(10, 0, 0, 1), nil))
	fm.Match.AddField(*openflow13.NewEthSrcField(net.HardwareAddr{2, 0, 0, 0, 0, 1}, nil))
	fm.Match.AddField(*openflow13.NewMetadataField(5, nil))
	fm.AddInstruction(openflow13.NewInstrGotoTable(3))
	buf := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		if buf, err = AppendFlowMod(buf[:0], fm, 1); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("AppendFlowMod allocated %v times per flow mod, want 0", allocs)
	}
}
