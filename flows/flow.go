package flows

import "strconv"

// Flow is one OpenFlow flow: where it lives, what it matches and what it
// does. Flows are plain values; Compile returns them, ofctrl sends them.
type Flow struct {
	Table    uint8
	Priority uint16
	Cookie   uint64
	// HardTimeout in seconds (0 = none); only seeded MAC flows have one.
	HardTimeout uint16
	Match       Match
	Actions     []Action // empty: drop
}

// MarshalText renders the flow as `ovs-ofctl -O OpenFlow13 dump-flows
// --no-stats` prints it, which `ovs-ofctl add-flow(s)` also accepts:
//
//	cookie=0xf5010a0001000000, table=5, priority=400,reg0=0x10000/0xffff0000,in_port=1 actions=resubmit(,8)
//
// cookie and table are left out when zero, priority when it is the
// OpenFlow default 32768, as OVS does.
func (f Flow) MarshalText() ([]byte, error) {
	return f.appendText(make([]byte, 0, 128)), nil
}

// String is MarshalText as a string.
func (f Flow) String() string { return string(f.appendText(nil)) }

func (f Flow) appendText(b []byte) []byte {
	if f.Cookie != 0 {
		b = append(b, "cookie="...)
		b = append(b, hexC(f.Cookie)...)
		b = append(b, ", "...)
	}
	if f.Table != 0 {
		b = append(b, "table="...)
		b = strconv.AppendUint(b, uint64(f.Table), 10)
		b = append(b, ", "...)
	}
	if f.HardTimeout != 0 {
		b = append(b, "hard_timeout="...)
		b = strconv.AppendUint(b, uint64(f.HardTimeout), 10)
		b = append(b, ", "...)
	}
	m := f.Match.String()
	if f.Priority != 0x8000 {
		b = append(b, "priority="...)
		b = strconv.AppendUint(b, uint64(f.Priority), 10)
		if m != "" {
			b = append(b, ',')
		}
	}
	b = append(b, m...)
	b = append(b, " actions="...)
	return appendActions(b, f.Actions)
}

// ActionsText renders only the actions, as ovs-ofctl prints them.
func (f Flow) ActionsText() string { return string(appendActions(nil, f.Actions)) }
