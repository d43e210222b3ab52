package ovsdb_test

import (
	"context"
	"log"
	"net/netip"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/flowspan/flowspan/ovsdb"
)

// Hand a bridge to flowspan in service mode, follow its facts, create a
// tunnel output port, and give the bridge back.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ovsdb.Dial(ctx, "unix:/var/run/openvswitch/db.sock", ovsdb.Config{Logger: logrus.StandardLogger()})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	watch := c.Watch(ctx) // first: every bridge once, Kind Initial

	dial, err := c.TakeOver(ctx, "br0", ovsdb.ServiceMode{})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("dial the switch at %s", dial) // unix:/var/run/openvswitch/br0.flowspan

	ofport, err := c.CreateTunnelPort(ctx, "br0", "fs-erspan0", ovsdb.Tunnel{
		Type: ovsdb.TunnelERSPAN, Remote: netip.MustParseAddr("192.0.2.10"),
		Key: 1, ERSPANVersion: 2, ERSPANDir: 0, ERSPANHwID: 4,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.IsolatePort(ctx, "br0", "fs-erspan0"); err != nil {
		log.Fatal(err)
	}
	log.Printf("mirror output ofport %d", ofport)

	for ch := range watch {
		facts, err := c.Bridge(ctx, ch.Bridge)
		if err != nil {
			continue // e.g. removed
		}
		log.Printf("%s: %v %v; %d ports", ch.Bridge, ch.Kind, ch.Ports, len(facts.Ports))
		break
	}

	if err := c.RemovePort(ctx, "br0", "fs-erspan0"); err != nil {
		log.Fatal(err)
	}
	if err := c.Release(ctx, "br0"); err != nil {
		log.Fatal(err)
	}
}
