package ofctrl

import (
	"fmt"
	"net"
	"time"
)

// TableAll in FlowFilter.Table selects every table.
const TableAll uint8 = 0xff

// FlowFilter selects flows for FlowStats.
type FlowFilter struct {
	Table      uint8  // a table id, or TableAll
	Cookie     uint64 // flows whose cookie & CookieMask == Cookie & CookieMask
	CookieMask uint64 // 0 = any cookie
	OutPort    uint32 // 0 = any
}

// FlowStat is one flow as the switch reports it. Header fields are decoded
// here; Match (the ofp_match, unpadded) and Instructions are raw OpenFlow
// 1.3 bytes, kept whole whatever actions they contain. They are slices of
// the reply they came in (no copy per flow; capacity capped, so appending
// to one never touches another).
type FlowStat struct {
	Table        uint8
	Priority     uint16
	Cookie       uint64
	Packets      uint64
	Bytes        uint64
	Duration     time.Duration
	IdleTimeout  uint16
	HardTimeout  uint16
	Flags        uint16
	Match        []byte
	Instructions []byte
}

// Port is an OpenFlow port (ofp_port).
type Port struct {
	No        uint32
	Name      string
	HWAddr    net.HardwareAddr
	Config    uint32 // OFPPC_* bits
	State     uint32 // OFPPS_* bits
	CurrSpeed uint32 // kbps
	MaxSpeed  uint32 // kbps
}

// PortReason says why a PortStatus was sent.
type PortReason uint8

// Port status reasons.
const (
	PortAdded    PortReason = 0
	PortDeleted  PortReason = 1
	PortModified PortReason = 2
)

func (r PortReason) String() string {
	switch r {
	case PortAdded:
		return "add"
	case PortDeleted:
		return "delete"
	case PortModified:
		return "modify"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Event is delivered on Controller.Events: Connected, Disconnected or
// PortStatus.
type Event interface{ event() }

// Connected: a switch finished the handshake (a reconnect gives a new one).
type Connected struct {
	DPID   uint64
	Remote string // target dialed or peer address
}

// Disconnected: a switch connection ended; Err says why.
type Disconnected struct {
	DPID uint64
	Err  error
}

// PortStatus: the switch reported a port added, deleted or modified.
type PortStatus struct {
	DPID   uint64
	Reason PortReason
	Port   Port
}

func (Connected) event()    {}
func (Disconnected) event() {}
func (PortStatus) event()   {}
