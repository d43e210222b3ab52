// Package e2e drives the flowspan binary the way a user does, against a real
// private Open vSwitch per test (test/lab): it builds cmd/flowspan once,
// starts "flowspan serve" on the lab's OVSDB socket with its API socket and
// state file in a temporary directory, runs CLI commands and checks packets
// on the wire, the switch's flow table and the daemon's state.
//
// The tests need root and Open vSwitch; without them they skip, except under
// CI=true where they fail (lab.Require).
package e2e
