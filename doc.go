// Package flowspan is the library behind the flowspan daemon: a Manager that
// owns the desired mirrors of every bridge and keeps each switch's flow table
// in line with them.
//
//	API (api.Backend) ──┐                      ┌─▶ Compiler (flows): specs + facts → flows
//	config file ────────┼─▶ Manager ───────────┼─▶ Controller/Switch (ofctrl): one bundle per change
//	state file ◀────────┘   (desired mirrors)  └─▶ OVSDB (ovsdb): facts, watch, ports, take over
//
// Reconciliation. Every change — a mirror added or deleted through the API,
// the config file reloaded, an OVSDB change (port added, removed, renumbered,
// VLAN config changed), a switch (re)connecting — recompiles the whole bridge
// and applies the difference to the switch in one OpenFlow bundle:
//
//   - API changes are validated first (unknown bridge or port, output port
//     also selected or selected by another mirror, bad filter, duplicate
//     name, tunnel without remote). On any error nothing changes: not the
//     desired mirrors, not the state file, not the switch, not OVSDB.
//   - A switch connection gets a full sync: the flows are installed under a
//     new cookie generation and every other flowspan generation is deleted by
//     cookie mask, in the same bundle, so there is no forwarding gap.
//   - Every full sync also seeds the compiler's shadow MAC table from the
//     bridge's own (ovs-appctl fdb/show through ovs-vswitchd's control
//     socket in the run directory of a unix: OVSDB endpoint; Config.MACTable,
//     MACSeeder), in the same bundle after the pipeline, so egress to hosts
//     NORMAL already knows is not predicted as a flood. A remote OVS has no
//     control socket: egress prediction then starts cold (logged once).
//   - A mirror whose port is missing stays defined with status
//     "pending: port X missing" and resumes when the port appears.
//
// Hand-over. A bridge is taken over (ovsdb TakeOver: service mode by
// default, controller mode when NewOVSDB gets ovsdb.ControllerMode) when it
// gets its first mirror, and released when its last mirror is deleted or on
// Release: flowspan's flows are deleted in the same bundle that puts back the
// bridge's default "priority=0 actions=NORMAL" flow they replaced, then the
// previous controllers and fail mode are restored. Output ports that flowspan
// creates (create, tunnels) are isolated from NORMAL forwarding and removed
// with their mirror; an existing output port without an access tag is
// isolated while a mirror uses it and restored afterwards. On start, bridges
// a previous run left handed over without mirrors are cleaned up and
// released, and flowspan-created ports no mirror owns are removed.
//
// First copies. Isolation in OVSDB (the output moved to an unused VLAN)
// takes a reconfiguration of ovs-vswitchd, and on a bridge's first mirror so
// does the controller target flowspan connects through. Neither delays the
// first copy where OpenFlow can do the same at once:
//
//   - A new output port is first isolated over OpenFlow (PortIsolator:
//     OpenFlow 1.0's NO_FLOOD, which 1.3 lacks, and NO_RECV, on a second
//     connection), the flows go in, then the OVSDB isolation, which survives
//     restarts, is applied and the port's OpenFlow config put back as it
//     was. Bridges whose protocols leave out OpenFlow 1.0 get the OVSDB
//     isolation first.
//   - The OpenFlow 1.0 connection is kept per listener, answering echo
//     requests, and dialled again in the background after a take-over or a
//     reconnect, so an add isolates in one round trip; its bundle goes out
//     meanwhile and the commit waits for the isolation (ApplyGated).
//   - The first mirror on a bridge goes in through the bridge's management
//     socket (Management, SessionDialer: <rundir>/<bridge>.mgmt, service
//     mode only) while the take-over transaction is applied; flowspan's own
//     connection then adopts the flows when it finds them all (cold.go).
//     The session is kept for the bridge's next first mirror. When the
//     output cannot be in NORMAL's MAC table (it had received no packet once
//     isolated, a count read with the port-mod, and the table has no static
//     entries, or flowspan created or isolated it) that first pipeline goes
//     in unseeded (a destination the shadow MAC table misses predicts no
//     egress instead of a flood) and the MAC table, whose dump holds
//     ovs-vswitchd's main loop for milliseconds when large, follows in a
//     second bundle, after Config.FirstCopyGrace: that loop also runs the
//     upcalls that turn waiting packets into first copies.
//   - On a bridge that was never handed over the first full sync does not
//     read the flow table first; flows a crashed run left are looked for
//     after it (tidyLocked).
//
// Ids and counters. Mirror ids (cookie bits) are allocated per bridge,
// persisted and stable for a mirror's lifetime, so a change to one mirror
// touches only its flows. Counters come from the flow statistics of the
// current generation: packets and bytes copied per mirror (its emit flows)
// and selected per selection (source port and direction).
//
// Memory. Compiling a bridge allocates far more than the flows it keeps;
// once the Manager has been idle for Config.IdleRelease after a burst of
// changes it returns that memory to the OS (debug.FreeOSMemory, once).
//
// State. Mirror definitions are persisted in Config.StatePath atomically
// (temporary file in the same directory, fsync, rename, fsync of the
// directory) and reloaded by New; Run reconciles them. Flows stay in the
// switch while the Manager is not running. Mirrors from the YAML config
// (LoadConfig, ApplyConfig) are marked with origin "config" and removed when
// the file no longer declares them. Ephemeral (tap) mirrors left by a
// previous run are removed on start.
//
// Wiring. The Manager reaches OVS only through the small interfaces in
// backend.go (BridgeReader, PortManager, Handover, Controller, Switch,
// Compiler); NewOVSDB, NewController and NewFlowsCompiler adapt the real
// packages:
//
//	db, _ := ovsdb.Dial(ctx, "unix:/var/run/openvswitch/db.sock", ovsdb.Config{})
//	ctrl := ofctrl.New(ofctrl.Config{})
//	m, _ := flowspan.New(flowspan.Config{
//		OVSDB:      flowspan.NewOVSDB(db, nil), // nil: service mode
//		Controller: flowspan.NewController(ctrl),
//		Compiler:   flowspan.NewFlowsCompiler(flows.Config{}),
//		StatePath:  "/var/lib/flowspan/state.json",
//	})
//	go m.Run(ctx) // until ctx ends; flows stay installed
//	api.Serve(ctx, ln, api.NewHandler(m, api.HandlerConfig{}))
//
// All Manager methods are safe for concurrent use; changes are serialized
// (one lock is held across a change's OVSDB and OpenFlow round trips).
package flowspan
