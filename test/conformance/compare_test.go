package conformance

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	"github.com/flowspan/flowspan/test/lab"
)

// What the comparison ignores, and why (docs/conformance.md repeats this):
//
//  1. Order. Each port is compared as a multiset of packets. Packets of
//     different senders (a request and the kernel's reply, two hosts) reach
//     a port in an order the scheduler decides, and the mirror copy and the
//     original leave on different ports, so there is no order between them
//     to compare. Counts are exact: a duplicate or a missing copy differs.
//  2. Fields the hosts' kernels choose at random or by the clock: the IPv4
//     identification (and so the header checksum), TCP sequence and
//     acknowledgement numbers, window and options (timestamps), the L4
//     checksum where one of those changed, and ephemeral ports
//     (32768-60999). Raw frames the scenarios craft have none of these;
//     they only appear in what kernels answer (echo replies, RST, SYN-ACK).
//  3. Packets nobody in the scenario sent: warm-up frames (EtherType
//     0x88b5, sent before captures to teach the bridge the hosts' MACs),
//     and IPv6 multicast listener reports and router solicitations, which
//     kernels with IPv6 send on their own timers.
//
// Everything else, every byte of every frame including VLAN tags and the
// truncated length of snaplen copies, must match.

// ignored reports whether a packet is background (rule 3 above).
func ignored(p lab.Packet) bool {
	if p.EtherType == etherWarm {
		return true
	}
	if p.EtherType == lab.EtherTypeIPv6 && p.Proto == 58 {
		switch p.ICMPType {
		case 130, 131, 132, 143, 133: // MLD query/report/done, MLDv2 report, RS
			return true
		}
	}
	return false
}

// clean drops ignored packets.
func clean(pkts []lab.Packet) (kept []lab.Packet, dropped int) {
	for _, p := range pkts {
		if ignored(p) {
			dropped++
			continue
		}
		kept = append(kept, p)
	}
	return kept, dropped
}

func ephemeral(port uint16) bool { return port >= 32768 && port <= 60999 }

// canonical is the comparison key of a packet: its wire length and its
// bytes with the fields of rule 2 zeroed.
func canonical(p lab.Packet) string {
	b := append([]byte(nil), p.Data...)
	if len(b) < 14 {
		return fmt.Sprintf("%d:%x", p.Len, b)
	}
	off := 12
	et := binary.BigEndian.Uint16(b[off:])
	for (et == 0x8100 || et == 0x88a8) && len(b) >= off+6 {
		off += 4
		et = binary.BigEndian.Uint16(b[off:])
	}
	off += 2
	switch et {
	case lab.EtherTypeIPv4:
		canonIPv4(b[off:])
	case lab.EtherTypeIPv6:
		ip := b[off:]
		if len(ip) >= 40 {
			canonL4(ip[6], ip[40:])
		}
	}
	return fmt.Sprintf("%d:%x", p.Len, b)
}

func canonIPv4(ip []byte) {
	if len(ip) < 20 {
		return
	}
	clear(ip[4:6])   // identification
	clear(ip[10:12]) // header checksum
	ihl := int(ip[0]&0x0f) * 4
	if ihl < 20 || len(ip) < ihl || binary.BigEndian.Uint16(ip[6:8])&0x1fff != 0 {
		return
	}
	canonL4(ip[9], ip[ihl:])
}

func canonL4(proto uint8, l4 []byte) {
	switch proto {
	case 6:
		if len(l4) < 20 {
			return
		}
		for _, o := range []int{0, 2} {
			if ephemeral(binary.BigEndian.Uint16(l4[o:])) {
				clear(l4[o : o+2])
			}
		}
		clear(l4[4:12])  // seq, ack
		clear(l4[14:18]) // window, checksum
		doff := int(l4[12]>>4) * 4
		clear(l4[20:min(max(doff, 20), len(l4))]) // options
	case 17:
		if len(l4) < 8 {
			return
		}
		changed := false
		for _, o := range []int{0, 2} {
			if ephemeral(binary.BigEndian.Uint16(l4[o:])) {
				clear(l4[o : o+2])
				changed = true
			}
		}
		if changed {
			clear(l4[6:8])
		}
	case 1:
		if len(l4) < 8 {
			return
		}
		switch l4[0] {
		case 3, 11, 12: // errors quote the offending IPv4 header
			clear(l4[2:4])
			canonIPv4(l4[8:])
		}
	}
}

// bag is a multiset of packets by canonical key.
type bag struct {
	count map[string]int
	first map[string]lab.Packet
	n     int
}

func newBag(pkts []lab.Packet) bag {
	b := bag{count: map[string]int{}, first: map[string]lab.Packet{}}
	for _, p := range pkts {
		k := canonical(p)
		b.count[k]++
		if _, ok := b.first[k]; !ok {
			b.first[k] = p
		}
		b.n++
	}
	return b
}

// portDiff is what two captures of one port disagree on.
type portDiff struct {
	Port           string
	A, B           string // side names
	NA, NB         int    // packets each side saw
	OnlyA, OnlyB   []string
	extraA, extraB int // lines beyond the listing limit
}

const diffListLimit = 12

// diffPackets compares two captures of a port as multisets. It returns nil
// when they are equal.
func diffPackets(port, nameA string, a []lab.Packet, nameB string, b []lab.Packet) *portDiff {
	ba, bb := newBag(a), newBag(b)
	d := &portDiff{Port: port, A: nameA, B: nameB, NA: ba.n, NB: bb.n}
	keys := map[string]bool{}
	for k := range ba.count {
		keys[k] = true
	}
	for k := range bb.count {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		ca, cb := ba.count[k], bb.count[k]
		switch {
		case ca > cb:
			d.OnlyA, d.extraA = addLine(d.OnlyA, d.extraA, ba.first[k], ca-cb)
		case cb > ca:
			d.OnlyB, d.extraB = addLine(d.OnlyB, d.extraB, bb.first[k], cb-ca)
		}
	}
	if len(d.OnlyA) == 0 && len(d.OnlyB) == 0 {
		return nil
	}
	return d
}

func addLine(lines []string, extra int, p lab.Packet, n int) ([]string, int) {
	if len(lines) >= diffListLimit {
		return lines, extra + n
	}
	s := p.String()
	if n > 1 {
		s = fmt.Sprintf("%d x %s", n, s)
	}
	return append(lines, s), extra
}

func (d *portDiff) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "port %s: %s saw %d packets, %s saw %d\n", d.Port, d.A, d.NA, d.B, d.NB)
	for _, side := range []struct {
		name  string
		lines []string
		extra int
	}{{d.A, d.OnlyA, d.extraA}, {d.B, d.OnlyB, d.extraB}} {
		if len(side.lines) == 0 {
			continue
		}
		fmt.Fprintf(&b, "  only %s:\n", side.name)
		for _, l := range side.lines {
			fmt.Fprintf(&b, "    %s\n", l)
		}
		if side.extra > 0 {
			fmt.Fprintf(&b, "    ... and %d more\n", side.extra)
		}
	}
	return b.String()
}
