// Package flows compiles flowspan mirror specs into OpenFlow 1.3 flows.
//
// It is pure: no I/O, no clock, no mutable package state; the same inputs
// give the same flows in the same order. Everything that depends on a
// running switch lives in package ofctrl and in the daemon.
//
// # Using it
//
//	res, err := flows.Compile(flows.Config{}, mirrors, facts) // specs + OVSDB facts
//	ch := flows.Diff(installed, res.Flows)                   // minimal adds/modifies/deletes
//	mods, err := ch.FlowMods()                               // libOpenflow flow mods, bundle order
//	text, _ := res.Flows[0].MarshalText()                    // ovs-ofctl dump-flows --no-stats syntax
//	counters := flows.Aggregate(res.Generation, flowStats)   // per mirror / selection / filter (see Counters)
//
// A long-lived caller that compiles the same bridge again and again (one
// mirror added, changed or removed at a time) uses a Compiler instead:
// same results, but filters are not parsed again and mirrors whose inputs
// did not change keep their flows (Result.Parts hands them out as the same
// slices), so a compile costs about the change plus the shared flows.
//
// When taking over a bridge that has been forwarding, seed the shadow MAC
// table from `ovs-appctl fdb/show` (ParseFDBShow, MACFlows); otherwise
// known unicast is predicted as a flood, and copied as egress of bystander
// ports, until each host has sent a packet. SplitMACEntries says which
// entries must go in with the pipeline and which may follow. Read the
// entries of a port before isolating it as an output: MACFlows turns them
// into EgressDrop seeds (NORMAL drops packets to a MAC learned on a mirror
// output until the entry ages out; isolating the port makes NORMAL forget
// it); delete them by DropSeedCookie when the port stops being an output.
//
// On a restart with unknown installed state, compile with
// NextGeneration(old) and send Replace(res.Flows, old): every flow is added
// (replacing the old one in place) and then what is left of the old
// generation is deleted by cookie, with no gap.
//
// # The pipeline
//
// Ten consecutive tables from Config.TableBase (declared as data in
// Pipeline; every flow is checked against the declaration). Registers are
// described in fields.go: a meta register (packet VLAN, DONE bit, mirror ID)
// and an egress register (where NORMAL will send the packet; SEL, the
// index of the selection that selected the packet).
//
//	packet ──▶ 0 classify ── in_port is an output ─▶ drop
//	             │ valid VLAN for the port: meta.vlan := tag or VID
//	             │ (invalid VLAN, unknown port ─▶ NORMAL, never mirrored)
//	             ▼
//	           1 learn      learn (vlan, eth_src) -> in_port into table 3,
//	             │          aged like the bridge MAC table (not for multicast
//	             ▼          sources or reserved destinations, like NORMAL)
//	           2 predict    egress := none (reserved dst) | flood (multicast,
//	             │          or no entry in 3 macs) | learned port | drop
//	             │          (seeded: learned on a port now an output)
//	             ▼
//	           4 dispatch   for each output O:   DONE := 0
//	             │            for each mirror M with output O:
//	             │              meta.id := M; resubmit(,5 select)
//	             │          then NORMAL (or goto Config.ContinueTable),
//	             │          except when egress is EgressDrop
//	             ▼
//	           5 select     M + in_port (ingress) | M + egress port, unless it
//	                        is the in_port (egress) | M + flood + VLAN where an
//	                        egress port other than in_port is in the VLAN |
//	                        M (all): SEL := selection index
//	                        ─▶ 6 vlan ─▶ 7 filter ─▶ 8 emit
//	           8 emit       M, DONE set ─▶ nothing (the output has its copy)
//	                        M, DONE clear ─▶ DONE := 1, copy tagged as the
//	                        native mirror tags it on O, truncated to snaplen,
//	                        resubmit(,9 count)
//	           9 count      M + SEL ─▶ nothing (its counters are the copies
//	                        of that selection)
//
// One lookup per stage picks one flow, so a mirror's selections and filters
// are OR-ed without cross products (filters and selections are separate
// stages), and the DONE bit gives exactly one copy per output however many
// selections and mirrors select a packet. A packet costs at most five
// resubmits per mirror (1,280 for 256 mirrors; OVS allows 4,096) and a
// nesting depth of seven.
//
// Egress is what NORMAL sends: the learned port for known unicast, and for
// floods every port in the packet's VLAN except the input port and mirror
// outputs (a mirror with one egress port in the VLAN does not select floods
// that came in on that port). Outputs are isolated: packets received on
// them are dropped here, and the caller must keep NORMAL from flooding to
// them (ovsdb.IsolatePort; mark such ports PortFacts.Isolated so their VLAN
// settings are not taken for the copy's tagging). With Config.HostEgress
// the host pipeline's register says where the packet goes, and tables 1-3
// are unused.
//
// Cookies (cookie.go) carry generation, kind, mirror ID and selection or
// filter index, so one mirror's flows can be counted, diffed and deleted
// alone.
//
// # Counters
//
// Aggregate turns flow statistics into MirrorCounters, per mirror:
//
//	Mirrored     copies sent to the output (KindEmit flows)
//	Selections   the same copies, per selection (KindCount flows): each
//	             copy is counted once, for the selection whose select flow
//	             picked the packet; they sum exactly to Mirrored
//	SelectedBy   per selection, packets picked before the VLAN list,
//	             filters and de-duplication (select flows' own counters)
//	Selected     packets that passed VLANs and filters, copied or not
//	Filters      per filter, the packets it was the first to match
//
// A mirror evaluates a packet with one lookup in the select table, so a
// packet that several of its selections select (a1 -> a2 with ports a1 and
// a2: ingress a1 and egress a2) is attributed to one: ingress before egress
// before flood before all (priorities 400, 200, 135..120, 100). The flood
// selection counts flooded packets (broadcast, multicast, unknown unicast)
// copied because some of the mirror's egress ports are in the packet's
// VLAN; the all selection counts everything selected by All, by VLANs
// alone or by filters alone. A copy suppressed because another mirror
// with the same output already sent this packet's copy (the DONE bit) is
// not mirrored by this mirror and counted in no selection (only in
// Selected); a filtered-out packet is counted only in SelectedBy. For RSPAN
// outputs, packets already in the output VLAN or with reserved
// destinations are not copied (KindEmitNone) and not mirrored. The cost
// is one count flow per selection and, per copy sent, one resubmit.
//
// # Filters
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
// whose prerequisite is missing (or accepts udp,tcp_dst=1), ParseFilter
// returns an error naming the token and its column. in_port is rejected:
// ports are the mirror's selection. Filters match the packet as received
// (dl_vlan is the 802.1Q tag on the wire, not the access port's VLAN).
//
// # Differences from the native Mirror table
//
// Tested equal to the native table (test/flows) for ingress, egress, both,
// VLAN, all, filtered (native has no filters in OVS 3.1: compared with the
// native packets that match), shared outputs, access/trunk/native ports,
// access and trunk outputs, snaplen, RSPAN and embedding. Known differences:
// dot1q-tunnel ports are forwarded but never selected; NORMAL's
// gratuitous-ARP lock, MAC table size limit, multicast snooping and bonds
// are not modelled in the egress prediction (floods are assumed); learned
// entries expire mac-aging-time after the last time the source was seen
// (hard_timeout refreshed by re-learning); packet-outs from controllers are
// not mirrored; RSPAN copies to the LOCAL port are not truncated.
//
// # Concurrency
//
// Mirror, Match, Flow, Result and Changes are values: safe for concurrent
// reads, not for concurrent mutation. Compile and the other functions keep
// no state between calls and may run concurrently. A Compiler keeps state
// (no I/O) and is safe for concurrent use; the flows it returns are shared
// between its results and must not be modified.
package flows
