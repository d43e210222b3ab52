// Package ofctrl is flowspan's OpenFlow 1.3 controller: it connects to
// switches (dialing their passive targets or accepting their active
// connections), keeps each connection healthy, and sends flow changes
// atomically. Message structs for flows come from
// github.com/contiv/libOpenflow (openflow13.FlowMod with ofpx actions);
// framing, handshake, request/reply matching and decoding of what a switch
// sends are done here, because libOpenflow's stream reorders replies and
// its decoders panic or loop on valid input.
//
//	ctrl := ofctrl.New(ofctrl.Config{Logger: log})     // zero Config = defaults
//	ctrl.Dial(ctx, "unix:/var/run/openvswitch/br0.flowspan") // reconnects forever
//	addr, err := ctrl.Listen(ctx, "tcp:6653", nil)      // or unix:PATH, ssl:IP:PORT
//	for ev := range ctrl.Events() { ... }               // Connected, Disconnected, PortStatus
//	sw, err := ctrl.Switch(ctx, dpid)                   // waits until connected
//	err = sw.Apply(ctx, mods)                           // one atomic bundle
//	stats, err := sw.FlowStats(ctx, ofctrl.FlowFilter{Table: ofctrl.TableAll, Cookie: c, CookieMask: m})
//	ports, err := sw.Ports(ctx)
//	ctrl.Close()                                        // stops every goroutine
//
// Per connection:
//
//	net.Conn ──► reader goroutine: readFrame (length-prefixed, ≤ MaxFrame,
//	  │          in order) → parseMessage (recover) → dispatch:
//	  │            ECHO_REQUEST → echo reply with the same payload
//	  │            ECHO_REPLY   → reset the missed-echo count
//	  │            PORT_STATUS  → PortStatus event
//	  │            other        → the pending request owning the xid
//	  │                           (errors recorded; the final xid completes it;
//	  │                            multipart parts stitched until !MORE)
//	  ◄── writer goroutine: everything queued by concurrent requests is
//	  │          written in one batch (one syscall), each request's bytes
//	  │          contiguous and in order
//	  └── echo goroutine: ECHO_REQUEST every EchoInterval; EchoMisses
//	             unanswered → connection dropped (ErrEchoTimeout)
//
// Handshake: HELLO with a version bitmap offering only 1.3; a peer that
// cannot do 1.3 gets OFPET_HELLO_FAILED/OFPHFC_INCOMPATIBLE with a text
// explaining why, a warning is logged, and the connection is closed. Then
// FEATURES_REQUEST gives the datapath id, which identifies the switch; a
// second connection with the same datapath id replaces the first (a new
// Connected event, no Disconnected for the replaced one). A dialer emits
// Disconnected before it reconnects, so events for one target are ordered.
// Finally SET_ASYNC asks for port-status messages only: OVS sends none to
// service connections (<bridge>.mgmt, punix: targets) otherwise, and
// packet-ins are not wanted.
//
// Apply: bundle OPEN, one BUNDLE_ADD per flow mod (the inner message
// carries the add's xid, which OVS requires), a BARRIER; if the switch
// rejected any message the bundle is DISCARDed, otherwise COMMITted.
// Either way the switch ends up with all or none of the changes, and a
// rejection comes back as a *SwitchError naming the error type/code and
// the failing flow mod ("flow mod 51 of 101 (add table=5 priority=32768
// cookie=0x0/0x0)"), also when OVS only finds the problem at commit (e.g.
// OFPFMFC_TABLE_FULL). The barrier is what makes this atomic: OVS answers
// a bundle add it cannot decode with an error but keeps the bundle open,
// so committing without first knowing every add was accepted would apply
// the rest. It costs one round trip after the switch has parsed the adds.
// Config.NoBundles sends flow mods + barrier instead (not atomic; every
// mod is encoded before anything is sent).
//
// Apply's send path, built to keep the switch busy and the controller
// cheap (BenchmarkApplySink, BenchmarkApplyOVS):
//
//	flow mods ──ofpx.AppendFlowMod──► chunk buffer (8 KiB first, then 64 KiB)
//	    ▲                                   │ queued without copying
//	    │ buffer handed back once written   ▼
//	    └────────────────────────── writer goroutine: one writev per batch
//
// At most three chunk buffers per Apply (pooled across Applies), so memory
// does not grow with the bundle and, when the switch parses slower than we
// encode (the usual case), Apply waits for a buffer instead of queueing
// the whole bundle. Connections ask for a 1 MiB socket send buffer
// (capped by net.core.wmem_max), so the switch has that much queued to
// parse even when the controller is briefly not scheduled. A mod that fails to encode is reported, naming it; the
// adds already sent are discarded with the bundle, so nothing changes.
//
// Decoding: nothing a switch sends goes through libOpenflow's decoders.
// Frames are parsed here with bounds checks (flow stats: table, priority,
// cookie, counters, duration, timeouts, flags decoded; match and
// instructions kept as raw bytes, so no reply is ever dropped for containing
// an action libOpenflow cannot decode), and parsing runs under recover.
// FuzzDecode drives arbitrary bytes through the same path:
//
//	go test -run='^$' -fuzz='^FuzzDecode$' -fuzztime=10s ./ofctrl/
//
// Errors: a switch ERROR always reaches the caller of the request that
// caused it as a *SwitchError (errors.Is matches type and code). ErrClosed,
// ErrNotConnected, ErrDisconnected, ErrVersion, ErrEchoTimeout and
// ErrDecode are sentinels. A malformed or undecodable message, or a
// decoder panic, is logged with the message type, counted in
// Stats.DecodeErrors, and closes that connection (a dialer reconnects).
//
// Listening: Listen returns the bound address (for port 0) and accepts
// until its ctx ends; connections it accepted end with it. Unix sockets
// are created mode 0600 (bound in a private
// directory, chmod-ed, then renamed into place); an existing socket file is
// replaced only if nothing answers on it, and removed on Close if it is
// still ours. tcp: listens on 127.0.0.1 unless an address is named. ssl:
// requires a certificate and ClientCAs; switches must present a valid
// client certificate.
//
// Concurrency: Controller and Switch methods are safe for concurrent use.
// Requests on one switch are pipelined; replies are matched by xid, so they
// may arrive in any order. Every blocking call takes a context. Events are
// queued (bounded by Config.MaxQueuedEvents for PortStatus; Connected and
// Disconnected are never dropped) and the channel is closed by Close.
package ofctrl
