//go:build !flowspanclient

package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/flowspan/flowspan/api"
)

// portBridges looks up which bridges have a port of a given name.
type portBridges func(ctx context.Context, port string) ([]string, error)

// tapBridgeBackend completes tap requests that name no bridge ("flowspan
// tap PORT" without --bridge) with the bridge that has PORT, then hands
// every call to the daemon.
type tapBridgeBackend struct {
	daemon
	lookup portBridges
}

func (b *tapBridgeBackend) AddMirror(ctx context.Context, spec api.MirrorSpec, origin api.Origin) (api.Mirror, error) {
	if origin == api.OriginTap && spec.Bridge == "" && len(spec.Ports) == 1 {
		brs, err := b.lookup(ctx, spec.Ports[0])
		if err != nil {
			return api.Mirror{}, fmt.Errorf("tap %q: finding the bridge of port %q: %w", spec.Name, spec.Ports[0], err)
		}
		switch len(brs) {
		case 0:
			return api.Mirror{}, api.WithCode(api.CodeInvalid, fmt.Errorf("tap: port %q: on no bridge", spec.Ports[0]))
		case 1:
			spec.Bridge = brs[0]
		default:
			return api.Mirror{}, api.WithCode(api.CodeInvalid, fmt.Errorf("tap: port %q: on several bridges (%s); give --bridge",
				spec.Ports[0], strings.Join(brs, ", ")))
		}
	}
	return b.daemon.AddMirror(ctx, spec, origin)
}
