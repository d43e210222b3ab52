package main

import (
	"context"
	"errors"

	"github.com/sirupsen/logrus"
)

// newDaemon connects to OVSDB, starts the OpenFlow controller and builds
// the Manager on them. closeDeps closes the connections.
func newDaemon(ctx context.Context, o *serveOptions, log *logrus.Logger) (d daemon, closeDeps func(), err error) {
	return nil, nil, errors.New("serve: the Manager's OVSDB/OpenFlow adapters have not landed yet")
}
