package main

import (
	"context"
	"errors"
	"strings"

	"github.com/flowspan/flowspan/api"
)

const serveUsage = `usage: flowspan serve [--config FILE] [--ovsdb unix:/var/run/openvswitch/db.sock]
       [--listen ADDR] [--api unix:/run/flowspan/api.sock]
       [--state /var/lib/flowspan/state.json] [--metrics 127.0.0.1:9464]

Run the flowspan daemon. By default (service mode) it adds a passive
controller target punix:<rundir>/<bridge>.flowspan to each bridge that has
mirrors and dials it; with --listen (unix:PATH, tcp:IP:PORT, ssl:IP:PORT) the
switches connect to it as their controller. Mirror definitions persist in
--state. --config declares mirrors in YAML (same fields as "mirror add");
SIGHUP reloads it. SIGTERM/SIGINT stop the daemon and leave the flows in
place. --metrics "" disables the Prometheus endpoint.
`

type serveOptions struct {
	config  string
	ovsdb   string
	listen  string
	api     string
	state   string
	metrics string
}

func parseServeArgs(args []string) (*serveOptions, error) {
	fs := newFlagSet("serve")
	o := &serveOptions{}
	fs.StringVar(&o.config, "config", "", "YAML `FILE` declaring mirrors")
	fs.StringVar(&o.ovsdb, "ovsdb", "unix:/var/run/openvswitch/db.sock", "OVSDB `endpoint`")
	fs.StringVar(&o.listen, "listen", "", "controller mode: accept switches at `ADDR`")
	fs.StringVar(&o.api, "api", "unix:"+api.DefaultSocket, "API socket `unix:PATH`")
	fs.StringVar(&o.state, "state", "/var/lib/flowspan/state.json", "state `FILE` (mirror definitions)")
	fs.StringVar(&o.metrics, "metrics", "127.0.0.1:9464", "Prometheus metrics `ADDR` (\"\" = off)")
	pos, _, _, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, usagef("unexpected arguments: %s", strings.Join(pos, " "))
	}
	return o, nil
}

func runServe(ctx context.Context, e *env, args []string) error {
	_, err := parseServeArgs(args)
	if err != nil {
		return err
	}
	return errors.New("serve: not wired yet")
}
