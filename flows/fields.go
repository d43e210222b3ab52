package flows

import "github.com/flowspan/flowspan/ofctrl/ofpx"

// Register map. flowspan uses two 32-bit registers (configurable with
// Config.Registers; defaults reg0 and reg1):
//
//	meta register (default reg0)
//	  bits  0..11  VLAN of the packet inside the bridge: the access port's
//	               tag, or the 802.1Q VID on trunk and native ports (0 when
//	               untagged on a trunk)
//	  bit   14     DONE: a copy was already sent to the output being
//	               evaluated (cleared before each output's mirrors)
//	  bits 16..31  ID of the mirror being evaluated
//
//	egress register (default reg1)
//	  bits  0..15  where NORMAL will send the packet: an ofport number,
//	               EgressFlood (flood in the packet's VLAN), or EgressNone
//	               (with Config.HostEgress, the host's register says this
//	               instead and these bits are unused)
//	  bits 16..31  SEL: index of the selection whose select flow picked the
//	               packet for the mirror being evaluated (written by that
//	               select flow, read by the count table after a copy)
//
// Registers are per packet and start at zero; flowspan writes every bit it
// later reads, so stale values from a host pipeline do no harm.
const (
	metaVLANOfs  = 0
	metaVLANBits = 12
	metaDoneBit  = 14
	metaIDOfs    = 16
	metaIDBits   = 16

	metaVLANMask uint32 = 0x00000fff
	metaDoneMask uint32 = 1 << metaDoneBit
	metaIDMask   uint32 = 0xffff0000

	selOfs  = 16
	selBits = 16
	// selMask covers SEL in the egress register; egressMask the
	// predicted egress port below it.
	selMask    uint32 = 0xffff0000
	egressMask uint32 = 0x0000ffff
	// maxSelections is how many selections one mirror may have (SEL's
	// range).
	maxSelections = 1 << selBits

	// EgressFlood in the egress register means NORMAL floods the packet
	// (unknown unicast, broadcast, multicast).
	EgressFlood uint32 = 0xfffb
	// EgressNone means NORMAL sends the packet nowhere (e.g. the
	// destination was learned on the input port, or a reserved
	// destination MAC such as an STP BPDU).
	EgressNone uint32 = 0
	// EgressDrop means NORMAL drops the packet because its destination
	// was learned on a port that has become a mirror output (a native
	// Mirror's output port takes no part in forwarding, but NORMAL keeps
	// its MAC entries until they age out). Only MAC-table seeds
	// (MACFlows) write it; the dispatch stage then sends the copies but
	// does not continue to NORMAL, which no longer knows the MAC once the
	// port is isolated and would flood the packet.
	EgressDrop uint32 = 0xfffa
)

// Table offsets from Config.TableBase, in pipeline order. See pipeline.go.
const (
	tClassify uint8 = iota // drop from outputs; VLAN of the packet; continue
	tLearn                 // shadow MAC learning, like NORMAL's
	tPredict               // where NORMAL will send the packet
	tMACs                  // learned (VLAN, MAC) -> port flows (written by learn)
	tDispatch              // loop over outputs and their mirrors, then continue
	tSelect                // does mirror M select this packet? (ports, directions)
	tVLAN                  // mirror M's VLAN list
	tFilter                // mirror M's filters
	tEmit                  // one copy per output: tag, truncate, output
	tCount                 // the copy just sent, counted per selection (SEL)

	// NumTables is how many consecutive tables the pipeline uses.
	NumTables = int(tCount) + 1
)

// Registers names the two registers flowspan uses (NXM_NX_REGn indexes).
type Registers struct {
	Meta   int // 0..15
	Egress int // 0..15
}

func (r Registers) meta() ofpx.Field   { return ofpx.Reg(r.Meta) }
func (r Registers) egress() ofpx.Field { return ofpx.Reg(r.Egress) }
