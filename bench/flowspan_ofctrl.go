package main

import (
	"context"

	"github.com/flowspan/flowspan/test/lab"
)

// flowspanInstaller installs flows with flowspan's own controller (ofctrl),
// as one bundle over a connection opened before the clock starts.
func flowspanInstaller(ctx context.Context, l *lab.Lab, bridge string, flows []flowSpec) installer {
	return installer{name: subjFlowspan, na: "ofctrl (Switch.Apply) has not landed in this tree"}
}
