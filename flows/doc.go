// Package flows compiles flowspan mirror specs into OpenFlow 1.3 flows.
//
// It is pure: no I/O, no clock, no globals that change; the same inputs
// give the same flows in the same order. Everything that depends on a
// running switch lives in package ofctrl and in the daemon.
//
// Filters use the ovs-ofctl / ovs-fields(7) match syntax (ParseFilter):
// protocol shorthands ip ipv6 icmp icmp6 tcp tcp6 udp udp6 sctp sctp6 arp
// rarp; dl_src dl_dst eth_src eth_dst (masks), dl_type eth_type, dl_vlan
// vlan_vid vlan_pcp dl_vlan_pcp vlan_tci, nw_src nw_dst ip_src ip_dst (CIDR
// or dotted masks; on ARP they mean arp_spa/arp_tpa as in OVS), ipv6_src
// ipv6_dst (prefixes or masks), ipv6_label, nw_proto ip_proto, nw_tos ip_dscp
// ip_ecn nw_ecn nw_ttl ip_frag nw_frag, tp_src tp_dst tcp_src tcp_dst udp_src
// udp_dst sctp_src sctp_dst (masks), tcp_flags (+syn-ack, syn|ack or
// value/mask), icmp_type icmp_code icmpv6_type icmpv6_code, arp_op arp_spa
// arp_tpa arp_sha arp_tha, nd_target nd_sll nd_tll. Prerequisites are
// checked as OVS checks them, but strictly: where OVS silently drops a field
// whose prerequisite is missing, ParseFilter returns an error naming it.
// in_port is rejected: ports are the mirror's selection.
//
// All types are values; none is safe for concurrent mutation, all are safe
// for concurrent reads.
package flows
