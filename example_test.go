package flowspan_test

import (
	"context"
	"log"
	"net"

	"github.com/flowspan/flowspan"
	"github.com/flowspan/flowspan/api"
	"github.com/flowspan/flowspan/flows"
	"github.com/flowspan/flowspan/ofctrl"
	"github.com/flowspan/flowspan/ovsdb"
)

// Example wires a Manager to a local Open vSwitch and serves the API, as
// `flowspan serve` does.
func Example() {
	ctx := context.Background()
	db, err := ovsdb.Dial(ctx, "unix:/var/run/openvswitch/db.sock", ovsdb.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctrl := ofctrl.New(ofctrl.Config{})
	defer ctrl.Close()
	m, err := flowspan.New(flowspan.Config{
		OVSDB:      flowspan.NewOVSDB(db, nil), // service mode
		Controller: flowspan.NewController(ctrl),
		Compiler:   flowspan.NewFlowsCompiler(flows.Config{}),
		StatePath:  "/var/lib/flowspan/state.json",
	})
	if err != nil {
		log.Fatal(err)
	}
	go m.Run(ctx)
	var ln net.Listener
	if ln, err = api.Listen("/run/flowspan/api.sock"); err != nil {
		log.Fatal(err)
	}
	log.Fatal(api.Serve(ctx, ln, api.NewHandler(m, api.HandlerConfig{})))
}

// ExampleManager_AddMirror mirrors both directions of vnet2 to a new
// internal port, keeping only HTTPS.
func ExampleManager_AddMirror() {
	var m *flowspan.Manager // from flowspan.New, running
	mi, err := m.AddMirror(context.Background(), api.MirrorSpec{
		Name:   "web",
		Bridge: "br0",
		Ports:  []string{"vnet2"},
		Match:  []string{"tcp,tp_dst=443"},
		Output: api.Output{Port: "mirror0", Create: true},
	}, api.OriginAPI)
	if err != nil {
		log.Fatal(err) // e.g. mirror "web": port "vnet2": not on bridge br0
	}
	log.Println(mi.Status) // active, or pending: port vnet2 missing
}
