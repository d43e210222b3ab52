package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/flowspan/flowspan/ofctrl"
	"github.com/flowspan/flowspan/ofctrl/ofpx"
	"github.com/flowspan/flowspan/test/lab"
)

// flowMod is f as the libOpenflow message ofctrl sends; encoded by ofctrl
// it is byte for byte f.mod (TestFlowModEncodingsAgree).
func (f flowSpec) flowMod() *openflow13.FlowMod {
	fm := ofpx.NewFlowMod(openflow13.FC_ADD, benchTable)
	fm.Priority = 1000
	fm.Cookie = f.cookie
	fm.Match.AddField(*openflow13.NewEthTypeField(0x0800))
	fm.Match.AddField(*openflow13.NewIpProtoField(17))
	fm.Match.AddField(*openflow13.NewIpv4DstField(net.IP(f.dst[:]), nil))
	fm.Match.AddField(*openflow13.NewUdpDstField(f.port))
	fm.AddInstruction(openflow13.NewInstrGotoTable(benchTable + 1))
	return fm
}

// flowspanInstaller installs flows with flowspan's own controller (ofctrl):
// one Switch.Apply (one bundle) over a connection to the bridge's
// management socket opened before the clock starts.
func flowspanInstaller(ctx context.Context, l *lab.Lab, bridge string, flows []flowSpec) installer {
	in := installer{name: subjFlowspan}
	out, err := l.Vsctl("get", "Bridge", bridge, "datapath_id")
	if err != nil {
		in.na = err.Error()
		return in
	}
	dpid, err := strconv.ParseUint(strings.Trim(strings.TrimSpace(out), `"`), 16, 64)
	if err != nil {
		in.na = fmt.Sprintf("datapath_id %q: %v", out, err)
		return in
	}
	c := ofctrl.New(ofctrl.Config{})
	in.close = func() { _ = c.Close() }
	if err := c.Dial(ctx, "unix:"+filepath.Join(l.RunDir(), bridge+".mgmt")); err != nil {
		in.na = err.Error()
		return in
	}
	sctx, cancel := context.WithTimeout(ctx, lab.Timeout)
	defer cancel()
	sw, err := c.Switch(sctx, dpid)
	if err != nil {
		in.na = fmt.Sprintf("ofctrl: switch %016x: %v", dpid, err)
		return in
	}
	mods := make([]*openflow13.FlowMod, len(flows))
	for i, f := range flows {
		mods[i] = f.flowMod()
	}
	in.install = func(ctx context.Context) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(ctx, 3*lab.Timeout)
		defer cancel()
		start := time.Now()
		err := sw.Apply(ctx, mods)
		return time.Since(start), err
	}
	return in
}
