package flows

import "fmt"

// TableSpec declares one table of the pipeline: what its flows may match,
// where they may go next, and what happens on a miss. The compiler checks
// every flow it emits against this declaration (checkFlow).
type TableSpec struct {
	Offset uint8    // from Config.TableBase
	Name   string   // short name, used in docs and errors
	Doc    string   // what the table decides
	Match  fieldSet // field groups flows may match
	Next   []uint8  // offsets flows may resubmit to or goto
	// Continue: flows may goto the continuation table / run NORMAL.
	Continue bool
	// Miss is what a lookup that matches no flow does.
	Miss string
}

// Pipeline is the pipeline declaration, in table order.
var Pipeline = []TableSpec{
	{tClassify, "classify", "drop packets received on output ports; load the packet's VLAN for ports with a valid VLAN",
		fInPort | fVLAN, []uint8{tLearn, tDispatch}, true, "priority-0 flow: continue (NORMAL or the host table)"},
	{tLearn, "learn", "per port: learn (VLAN, eth_src) -> in_port like NORMAL's MAC table (not for multicast sources or reserved destinations)",
		fInPort | fEthAddr, []uint8{tPredict}, false, "priority-0 flow: goto predict"},
	{tPredict, "predict", "egress register := where NORMAL sends the packet: none, flood, or the learned port",
		fEthAddr, []uint8{tMACs, tDispatch}, false, "priority-0 flow: flood unless learned, goto dispatch"},
	{tMACs, "macs", "learned MAC flows (priority 10, written by the learn action) and MAC table seeds from fdb/show (priority 9, outlived by any flow learned later)",
		fReg | fEthAddr, nil, false, "no change (resubmit miss)"},
	{tDispatch, "dispatch", "for each output: clear DONE; for each of its mirrors: load mirror ID, resubmit(,select); then continue (not when egress is EgressDrop)",
		fReg, []uint8{tSelect}, true, "priority-0 flow always matches"},
	{tSelect, "select", "mirror ID + ports/directions: selected -> next stage; not selected -> nothing",
		fReg | fInPort, []uint8{tVLAN, tFilter, tEmit}, false, "not selected"},
	{tVLAN, "vlan", "mirror ID + VLAN prefix: in the mirror's VLANs -> next stage",
		fReg, []uint8{tFilter, tEmit}, false, "not in the mirror's VLANs"},
	{tFilter, "filter", "mirror ID + filter match: any filter matches -> emit",
		fReg | fVLAN | fEthAddr | fPacket, []uint8{tEmit}, false, "no filter matched"},
	{tEmit, "emit", "mirror ID + DONE clear: copy to the output with the native VLAN tag and snaplen, set DONE, resubmit(,count)",
		fReg | fVLAN | fEthAddr, []uint8{tCount}, false, "nothing"},
	{tCount, "count", "mirror ID + SEL: counts the copy just sent for the selection that selected the packet",
		fReg, nil, false, "nothing (not reached without a count flow)"},
}

func (c *compiler) checkFlow(f *Flow) error {
	off := int(f.Table) - int(c.cfg.TableBase)
	if off < 0 || off >= len(Pipeline) {
		return fmt.Errorf("flow %s: table %d outside the pipeline", f, f.Table)
	}
	spec := &Pipeline[off]
	if extra := f.Match.fields() &^ spec.Match; extra != 0 {
		return fmt.Errorf("flow %s: table %s may not match field group %#x", f, spec.Name, extra)
	}
	if f.Priority == 0x8000 {
		return fmt.Errorf("flow %s: priority 32768 is reserved (ambiguous in ovs-ofctl text)", f)
	}
	return c.checkActions(f, spec, f.Actions, true)
}

func (c *compiler) checkActions(f *Flow, spec *TableSpec, acts []Action, top bool) error {
	allowed := func(off uint8) bool {
		for _, n := range spec.Next {
			if n == off {
				return true
			}
		}
		return false
	}
	for i, a := range acts {
		switch a := a.(type) {
		case ActResubmit:
			if !allowed(a.Table - c.cfg.TableBase) {
				return fmt.Errorf("flow %s: table %s may not resubmit to table %d", f, spec.Name, a.Table)
			}
		case ActGotoTable:
			if !top || i != len(acts)-1 {
				return fmt.Errorf("flow %s: goto_table must be the last action", f)
			}
			if a.Table <= f.Table {
				return fmt.Errorf("flow %s: goto_table must go forward", f)
			}
			cont := c.cfg.ContinueTable != 0 && a.Table == c.cfg.ContinueTable
			if !(cont && spec.Continue) && !allowed(a.Table-c.cfg.TableBase) {
				return fmt.Errorf("flow %s: table %s may not goto table %d", f, spec.Name, a.Table)
			}
		case ActNormal:
			if !spec.Continue {
				return fmt.Errorf("flow %s: table %s may not run NORMAL", f, spec.Name)
			}
		case ActClone:
			if err := c.checkActions(f, spec, a.Actions, false); err != nil {
				return err
			}
		}
	}
	return nil
}
