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
//   - A mirror whose port is missing stays defined with status
//     "pending: port X missing" and resumes when the port appears.
//
// Hand-over. A bridge is taken over (ovsdb TakeOver: service mode by
// default, controller mode when configured) when it gets its first mirror and
// released when its last mirror is deleted or on Release. Output ports that
// flowspan creates (create, tunnels) are isolated from NORMAL forwarding and
// removed with their mirror.
//
// State. Mirror definitions are persisted in Config.StatePath atomically
// (temporary file in the same directory, fsync, rename, fsync of the
// directory) and reloaded by New; Run reconciles them. Flows stay in the
// switch while the Manager is not running. Mirrors from the YAML config
// (LoadConfig, ApplyConfig) are marked with origin "config" and removed when
// the file no longer declares them. Ephemeral (tap) mirrors left by a
// previous run are removed on start.
//
// The Manager reaches OVS only through the small interfaces in backend.go;
// NewOVSDB, NewController and NewFlowsCompiler adapt the real packages.
// All Manager methods are safe for concurrent use.
package flowspan
