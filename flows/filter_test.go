package flows

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

var filterCases = []struct{ in, want string }{
	{"tcp,tp_dst=443", "tcp,tp_dst=443"},
	{"tp_dst=443,tcp", "tcp,tp_dst=443"},
	{"ip", "ip"},
	{"ipv6", "ipv6"},
	{"tcp6", "tcp6"},
	{"udp6,udp_src=0x1000/0xf000", "udp6,tp_src=0x1000/0xf000"},
	{"sctp6,sctp_dst=9", "sctp6,tp_dst=9"},
	{"sctp,tp_src=1", "sctp,tp_src=1"},
	{"icmp", "icmp"},
	{"icmp,icmp_type=8,icmp_code=0", "icmp,icmp_type=8,icmp_code=0"},
	{"icmp6,icmpv6_type=128", "icmp6,icmp_type=128"},
	{"icmp6,icmp_type=135,nd_target=fe80::1", "icmp6,icmp_type=135,nd_target=fe80::1"},
	{"nd_target=fe80::/64,icmp6,icmp_type=136", "icmp6,icmp_type=136,nd_target=fe80::/64"},
	{"icmp6,icmp_type=135,nd_sll=02:00:00:00:00:01", "icmp6,icmp_type=135,nd_sll=02:00:00:00:00:01"},
	{"arp", "arp"},
	{"arp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/8", "arp,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/8,arp_op=1"},
	{"arp,nw_src=10.0.0.1,nw_proto=2", "arp,arp_spa=10.0.0.1,arp_op=2"},
	{"arp,arp_sha=02:00:00:00:00:01,arp_tha=02:00:00:00:00:00/ff:ff:ff:00:00:00", "arp,arp_sha=02:00:00:00:00:01,arp_tha=02:00:00:00:00:00/ff:ff:ff:00:00:00"},
	{"rarp", "rarp"},
	{"dl_src=aa:bb:cc:00:00:00/ff:ff:ff:00:00:00", "dl_src=aa:bb:cc:00:00:00/ff:ff:ff:00:00:00"},
	{"eth_dst=01:00:00:00:00:00/01:00:00:00:00:00", "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00"},
	{"dl_src=AA:BB:CC:DD:EE:FF/ff:ff:ff:ff:ff:ff", "dl_src=aa:bb:cc:dd:ee:ff"},
	{"dl_type=0x88cc", "dl_type=0x88cc"},
	{"eth_type=0x0800", "ip"},
	{"dl_type=0x800,nw_proto=6,tcp_dst=8", "tcp,tp_dst=8"},
	{"ip,nw_proto=47", "ip,nw_proto=47"},
	{"ipv6,ip_proto=1", "ipv6,nw_proto=1"},
	{"dl_vlan=10", "dl_vlan=10"},
	{"dl_vlan=0xffff", "vlan_tci=0x0000/0x1fff"},
	{"vlan_vid=0x1005/0x1ff0", "vlan_tci=0x1000/0x1ff0"},
	{"vlan_pcp=3,dl_vlan=7", "dl_vlan=7,dl_vlan_pcp=3"},
	{"vlan_tci=0x1000/0x1000", "vlan_tci=0x1000/0x1000"},
	{"ip,nw_src=10.0.0.0/24", "ip,nw_src=10.0.0.0/24"},
	{"ip,nw_src=10.0.0.7/24", "ip,nw_src=10.0.0.0/24"},
	{"ip,ip_dst=10.1.0.0/255.255.0.0", "ip,nw_dst=10.1.0.0/16"},
	{"ip,nw_dst=10.1.0.1/255.0.255.0", "ip,nw_dst=10.0.0.0/255.0.255.0"},
	{"ip,nw_src=10.0.0.1/32", "ip,nw_src=10.0.0.1"},
	{"ipv6,ipv6_dst=2001:db8::/32", "ipv6,ipv6_dst=2001:db8::/32"},
	{"ipv6,ipv6_src=2001:db8::1/ffff:ffff::ff", "ipv6,ipv6_src=2001:db8::1/ffff:ffff::ff"},
	{"ipv6,ipv6_label=0x12345/0xf", "ipv6,ipv6_label=0x00005/0x0000f"},
	{"ipv6,ipv6_label=7", "ipv6,ipv6_label=0x00007"},
	{"ip,nw_tos=4,ip_ecn=1,nw_ttl=3,ip_frag=first", "ip,nw_tos=4,nw_ecn=1,nw_ttl=3,nw_frag=first"},
	{"ip,ip_dscp=10", "ip,nw_tos=40"},
	{"ipv6,ip_frag=not_later", "ipv6,nw_frag=not_later"},
	{"ip,ip_frag=yes", "ip,nw_frag=yes"},
	{"ip,ip_frag=no", "ip,nw_frag=no"},
	{"ip,ip_frag=later", "ip,nw_frag=later"},
	{"tcp,tcp_flags=+syn-ack", "tcp,tcp_flags=+syn-ack"},
	{"tcp,tcp_flags=+syn-ack+fin", "tcp,tcp_flags=+fin+syn-ack"},
	{"tcp,tcp_flags=0x2/0x12", "tcp,tcp_flags=+syn-ack"},
	{"tcp,tcp_flags=0x12", "tcp,tcp_flags=syn|ack"},
	{"tcp,tcp_flags=syn|ack", "tcp,tcp_flags=syn|ack"},
	{"tcp,tcp_flags=0", "tcp,tcp_flags=0"},
	{"tcp6,tcp_flags=+rst", "tcp6,tcp_flags=+rst"},
	{"tcp,tp_src=010", "tcp,tp_src=8"},
	{"tcp, tp_dst=80", "tcp,tp_dst=80"},
	{"tcp,tp_dst=0x50/0xfff0", "tcp,tp_dst=0x50/0xfff0"},
	{"udp,nw_src=192.168.0.0/16,udp_dst=53", "udp,nw_src=192.168.0.0/16,tp_dst=53"},
	{"ip,ip", "ip"},
}

func TestParseFilterCanonical(t *testing.T) {
	for _, tc := range filterCases {
		t.Run(tc.in, func(t *testing.T) {
			m, err := ParseFilter(tc.in)
			if err != nil {
				t.Fatalf("ParseFilter(%q): %v", tc.in, err)
			}
			if got := m.String(); got != tc.want {
				t.Errorf("ParseFilter(%q) = %q, want %q", tc.in, got, tc.want)
			}
			again, err := ParseFilter(m.String())
			if err != nil {
				t.Fatalf("reparse %q: %v", m.String(), err)
			}
			if again != m {
				t.Errorf("round trip of %q changed the match: %q", tc.in, again.String())
			}
		})
	}
}

// TestParseFilterMatchesOVS checks each canonical form against what OVS's
// own parser prints for the same text (ovs-ofctl parse-flow, offline).
func TestParseFilterMatchesOVS(t *testing.T) {
	ofctl := needOfctl(t)
	re := regexp.MustCompile(`ADD (.*) actions=drop`)
	for _, tc := range filterCases {
		out, err := exec.Command(ofctl, "-O", "OpenFlow13", "parse-flow", tc.in+" actions=drop").CombinedOutput()
		if err != nil {
			t.Errorf("ovs-ofctl parse-flow %q: %v: %s", tc.in, err, out)
			continue
		}
		sm := re.FindStringSubmatch(string(out))
		if sm == nil {
			t.Errorf("ovs-ofctl parse-flow %q: unexpected output %s", tc.in, out)
			continue
		}
		if sm[1] != tc.want {
			t.Errorf("OVS prints %q as %q, table says %q", tc.in, sm[1], tc.want)
		}
	}
}

func needOfctl(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("ovs-ofctl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ovs-ofctl not found (CI=true): install openvswitch-switch")
		}
		t.Skip("ovs-ofctl not installed")
	}
	return p
}

func TestParseFilterErrors(t *testing.T) {
	cases := []struct {
		in      string
		col     int
		token   string
		message string
	}{
		{"", 0, "", "empty filter"},
		{"tp_dst=443", 1, "tp_dst=443", "requires tcp, udp or sctp"},
		{"udp,tcp_dst=8", 5, "tcp_dst=8", "requires tcp"},
		{"in_port=1", 1, "in_port=1", "selection"},
		{"tcp,foo=1", 5, "foo=1", "unknown field"},
		{"tcpx", 1, "tcpx", "unknown protocol"},
		{"ip,nw_src=10.0.0.300", 4, "nw_src=10.0.0.300", "not an IPv4 address"},
		{"ip,nw_src=10.0.0.0/33", 4, "nw_src=10.0.0.0/33", "prefix length 33"},
		{"nw_src=10.0.0.1", 1, "nw_src=10.0.0.1", "requires ip"},
		{"ip,ipv6_src=::1", 4, "ipv6_src=::1", "requires ipv6"},
		{"ipv6,ipv6_src=10.0.0.1", 6, "ipv6_src=10.0.0.1", "not an IPv6 address"},
		{"ip,ipv6", 4, "ipv6", "conflicts"},
		{"tcp,tp_dst=80,tp_dst=81", 15, "tp_dst=81", "conflicts"},
		{"tcp,tp_dst=65536", 5, "tp_dst=65536", "16 bits"},
		{"tcp,tp_dst=", 5, "tp_dst=", "empty value"},
		{"tcp,tp_dst", 5, "tp_dst", "needs a value"},
		{"dl_src=aa:bb:cc", 1, "dl_src=aa:bb:cc", "not an Ethernet address"},
		{"dl_vlan=4096", 1, "dl_vlan=4096", "out of range"},
		{"ip,nw_tos=5", 4, "nw_tos=5", "ECN"},
		{"tcp,tcp_flags=+bogus", 5, "tcp_flags=+bogus", "unknown TCP flag"},
		{"icmp6,nd_target=::1", 7, "nd_target=::1", "icmp_type=135 or 136"},
		{"icmp,icmpv6_type=1", 6, "icmpv6_type=1", "requires icmp6"},
		{"ip,arp_op=1", 4, "arp_op=1", "requires arp"},
		{"nw_proto=6", 1, "nw_proto=6", "requires ip, ipv6 or arp"},
		{"ip,ip_frag=maybe", 4, "ip_frag=maybe", "not one of"},
		{"tcp,tp_dst=1_000", 5, "tp_dst=1_000", "not a number"},
		{"tcp actions=drop", 5, "actions=drop", "not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseFilter(tc.in)
			if err == nil {
				t.Fatalf("ParseFilter(%q) succeeded, want error", tc.in)
			}
			var fe *FilterError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is %T, want *FilterError", err, err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if fe.Column != tc.col || fe.Token != tc.token {
				t.Errorf("error at column %d token %q, want %d %q (%v)", fe.Column, fe.Token, tc.col, tc.token, err)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not mention %q", err, tc.message)
			}
		})
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, tc := range filterCases {
		f.Add(tc.in)
	}
	f.Add("tcp,tcp_flags=+syn-ack-fin+rst")
	f.Add("icmp6,icmp_type=136,nd_tll=02:00:00:00:00:01,nd_target=::/0")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseFilter(s)
		if err != nil {
			var fe *FilterError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is %T, want *FilterError", err, err)
			}
			return
		}
		text := m.String()
		again, err := ParseFilter(text)
		if text == "" {
			// Everything was masked away (e.g. "ip,nw_src=1.2.3.4/0"
			// keeps ip); an empty canonical form only arises from
			// all-zero masks and is rejected on reparse.
			if err == nil {
				t.Fatalf("empty text reparsed")
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseFilter(%q) = %q, which does not parse: %v", s, text, err)
		}
		if again != m {
			t.Fatalf("ParseFilter(%q) = %q, reparsed as %q", s, text, again.String())
		}
	})
}
