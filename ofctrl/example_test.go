package ofctrl_test

import (
	"context"
	"fmt"
	"time"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/flowspan/flowspan/ofctrl"
	"github.com/flowspan/flowspan/ofctrl/ofpx"
)

// Example shows the controller's life cycle: dial a bridge's management
// socket, wait for the switch, install flows atomically, read them back.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctrl := ofctrl.New(ofctrl.Config{}) // zero Config: defaults, logs discarded
	defer ctrl.Close()
	if err := ctrl.Dial(ctx, "unix:/var/run/openvswitch/br0.mgmt"); err != nil {
		fmt.Println(err)
		return
	}
	ev, ok := (<-ctrl.Events()).(ofctrl.Connected)
	if !ok {
		return
	}
	sw, err := ctrl.Switch(ctx, ev.DPID)
	if err != nil {
		return
	}
	fm := ofpx.NewFlowMod(ofpx.FlowAdd, 0)
	fm.Cookie = 0x1
	in := openflow13.NewInstrApplyActions()
	_ = in.AddAction(&ofpx.Output{Port: ofpx.PortNormal}, false)
	fm.AddInstruction(in)
	if err := sw.Apply(ctx, []*openflow13.FlowMod{fm}); err != nil {
		fmt.Println(err) // e.g. a *ofctrl.SwitchError naming the failing flow mod
		return
	}
	stats, err := sw.FlowStats(ctx, ofctrl.FlowFilter{Table: ofctrl.TableAll, Cookie: 0x1, CookieMask: ^uint64(0)})
	if err == nil {
		fmt.Println(len(stats), "flow(s), packets:", stats[0].Packets)
	}
}
