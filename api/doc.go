// Package api is flowspan's control API: JSON over HTTP/1.1 on a unix socket
// (mode 0600, default /run/flowspan/api.sock), the types it carries, the
// server handler the daemon mounts and the Go client the CLI uses.
//
//	flowspan CLI ──Client──▶ unix socket ──NewHandler──▶ Backend (flowspan.Manager)
//
// # Routes (all under /v1; bodies are JSON)
//
//	GET    /v1/version                   → VersionInfo
//	GET    /v1/mirrors                   → MirrorList
//	POST   /v1/mirrors        MirrorSpec → 201 Mirror
//	GET    /v1/mirrors/{name}            → Mirror
//	DELETE /v1/mirrors/{name}            → 204
//	GET    /v1/mirrors/{name}/stats      → MirrorStats
//	GET    /v1/mirrors/{name}/flows      → FlowList (ovs-ofctl -O OpenFlow13 syntax)
//	GET    /v1/stats                     → StatsList (every mirror)
//	POST   /v1/bridges/{bridge}/release  → ReleaseResult (deletes the bridge's
//	                                        mirrors, restores its controllers)
//	POST   /v1/taps           MirrorSpec → 201 Mirror as one JSON line, then the
//	                                        response stays open; when the client
//	                                        disconnects (or dies) the daemon deletes
//	                                        the mirror and the port it created.
//
// A MirrorSpec has the fields of `flowspan mirror add` (and of the YAML config
// file): name, bridge, ingress, egress, ports, vlans, all, match, snaplen and
// output {port, create, vlan, tunnel {type, remote, key, erspan_ver,
// erspan_idx, erspan_dir, erspan_hwid}}. Unknown JSON fields are rejected.
// A Mirror is {spec, origin (api|config|tap), status {state, detail,
// missing_ports}} with state active, pending (detail "port vnet2 missing",
// "switch br0 not connected", "bridge br0 missing") or error. For a tunnel
// output without a port name the daemon picks one (spec.output.port of the
// reply).
//
// MirrorStats is {name, bridge, packets, bytes, selections: [{port,
// direction, packets, bytes}]}: packets and bytes count the copies the
// mirror sent to its output; each selection counts the copies it caused
// (after filters; the selections add up to the total), direction ingress
// or egress of port, or flood / all
// (port "") for flooded packets reaching the mirror's egress ports and for
// all / VLAN-only / filter-only mirrors.
//
// # Errors
//
// Every error reply is ErrorBody {"error": message, "code": code}:
//
//	400 invalid      validation: unknown bridge/port, output also selected,
//	                 bad filter, tunnel without remote, bad JSON
//	404 not_found    no such mirror or endpoint
//	409 exists       duplicate mirror name
//	503 unavailable  the daemon cannot do it now
//	500 internal     anything else
//
// The message is the daemon's error text unchanged, e.g.
// `mirror "web": port "vnet9": not on bridge br0`. The client returns it as
// *Error; errors.Is(err, ErrNotFound / ErrInvalid / ErrExists) works on it.
// When the socket is missing or refuses connections the client returns an
// error wrapping ErrDaemonNotRunning that says how to start the daemon.
// Backends mark their errors with WithCode (or wrap the sentinels with %w).
//
// # Client-only builds
//
// The Client speaks HTTP/1.1 itself (one connection per request) and imports
// neither net/http nor, on Linux, package net, so that a program that only
// talks to the daemon stays small and starts fast. The server half
// (NewHandler, Listen, Serve; server.go) needs net/http and is left out of
// builds with the tag flowspanclient, which is how the flowspan CLI is built
// (go build -tags flowspanclient ./cmd/flowspan).
//
// Client, the handler returned by NewHandler and Serve are safe for
// concurrent use.
package api
