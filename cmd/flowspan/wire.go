//go:build !flowspanclient

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/flowspan/flowspan"
	"github.com/flowspan/flowspan/flows"
	"github.com/flowspan/flowspan/ofctrl"
	"github.com/flowspan/flowspan/ovsdb"
	"github.com/sirupsen/logrus"
)

// ovsdbConnectTimeout bounds the first OVSDB connection at start.
const ovsdbConnectTimeout = 20 * time.Second

// newDaemon connects to OVSDB, starts the OpenFlow controller (listening
// with --listen) and builds the Manager on them. closeDeps closes the
// controller and the OVSDB connection; call it after the Manager stopped.
func newDaemon(ctx context.Context, o *serveOptions, log *logrus.Logger) (d daemon, closeDeps func(), err error) {
	rundir := runDirOf(o.ovsdb)
	netns, err := vswitchdNetns(rundir)
	if err != nil {
		return nil, nil, err
	}
	if netns != "" {
		log.WithField("netns", netns).Info("ovs-vswitchd runs in another network namespace; bringing created ports up there")
	}
	dctx, cancel := context.WithTimeout(ctx, ovsdbConnectTimeout)
	db, err := ovsdb.Dial(dctx, o.ovsdb, ovsdb.Config{Logger: log.WithField("component", "ovsdb"), Netns: netns})
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("cannot reach OVSDB at %s (is Open vSwitch running? see --ovsdb): %w", o.ovsdb, err)
	}
	ctrl := ofctrl.New(ofctrl.Config{Logger: log.WithField("component", "ofctrl")})
	closeDeps = func() {
		ctrl.Close()
		db.Close()
	}
	var mode ovsdb.Mode // nil: service mode
	if o.listen != "" {
		tlsConf, err := o.listenTLS()
		if err != nil {
			closeDeps()
			return nil, nil, err
		}
		addr, err := ctrl.Listen(ctx, o.listen, tlsConf)
		if err != nil {
			closeDeps()
			return nil, nil, fmt.Errorf("--listen %s: %w", o.listen, err)
		}
		target := boundTarget(o.listen, addr)
		log.WithField("target", target).Info("controller mode: switches connect to this listener")
		mode = ovsdb.ControllerMode{Target: target}
	}
	mgr, err := flowspan.New(flowspan.Config{
		Logger:        log.WithField("component", "manager"),
		OVSDB:         flowspan.NewOVSDB(db, mode),
		Controller:    flowspan.NewController(ctrl),
		Compiler:      flowspan.NewFlowsCompiler(flows.Config{}),
		StatePath:     o.state,
		TakeOverFirst: o.takeOverFirst,
	})
	if err != nil {
		closeDeps()
		return nil, nil, err
	}
	return &tapBridgeBackend{daemon: mgr, lookup: ovsdbPortBridges(db)}, closeDeps, nil
}

// boundTarget is the controller target switches must use to reach a
// listener: the listen address with the port the kernel chose (tcp:…:0).
func boundTarget(listen string, addr net.Addr) string {
	scheme, _, _ := strings.Cut(listen, ":")
	switch a := addr.(type) {
	case *net.TCPAddr:
		return scheme + ":" + a.String()
	case *net.UnixAddr:
		return "unix:" + a.Name
	}
	return listen
}

// ovsdbPortBridges finds the bridges that have a port, from OVSDB.
func ovsdbPortBridges(db *ovsdb.Client) portBridges {
	return func(ctx context.Context, port string) ([]string, error) {
		names, err := db.Bridges(ctx)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, n := range names {
			br, err := db.Bridge(ctx, n)
			if errors.Is(err, ovsdb.ErrNotFound) {
				continue // deleted meanwhile
			}
			if err != nil {
				return nil, err
			}
			if _, ok := br.Ports[port]; ok {
				out = append(out, n)
			}
		}
		return out, nil
	}
}
