package main

const serveUsage = `usage: flowspan serve [--config FILE] [--ovsdb unix:/var/run/openvswitch/db.sock]
       [--listen ADDR [--ssl-cert FILE --ssl-key FILE --ssl-ca FILE]]
       [--api unix:/run/flowspan/api.sock]
       [--state /var/lib/flowspan/state.json] [--metrics 127.0.0.1:9464]
       [--take-over-first]

Run the flowspan daemon. By default (service mode) it adds a passive
controller target punix:<rundir>/<bridge>.flowspan to each bridge that has
mirrors and dials it; with --listen (unix:PATH, tcp:IP:PORT, ssl:IP:PORT) the
switches connect to it as their controller. ssl: needs --ssl-cert and
--ssl-key (flowspan's certificate, PEM) and --ssl-ca (the CA that signed the
switches' certificates: client certificates are required). Mirror definitions persist in --state.
--config declares mirrors in YAML (same fields as "mirror add"); SIGHUP
reloads it. SIGTERM/SIGINT stop the daemon and leave the flows in place.
--metrics "" disables the Prometheus endpoint (GET /metrics).
In service mode with a local unix: --ovsdb, a bridge's first mirror goes in
through the bridge's management socket (<rundir>/<bridge>.mgmt) while the
controller target is added, for first copies sooner than a native Mirror's;
--take-over-first waits for flowspan's own connection instead.
Log level: FLOWSPAN_LOG_LEVEL (debug, info, warn; default info).
`
