// Package conformance is flowspan's differential conformance suite against
// Open vSwitch's own Mirror table (docs/conformance.md).
//
// Each scenario builds the same topology in two private labs (test/lab),
// sends the same traffic through both, once without any mirror and once
// with the scenario's mirrors, and captures what every bridge port sends:
//
//	native lab:   Mirror rows (lab.AddNativeMirror)      ─┐
//	                                                     ├─ compare port by port,
//	flowspan lab: `flowspan serve` + `flowspan mirror add` ┘   packet for packet
//
// The native table is the oracle. Where it lacks a feature (filters, more
// than 32 mirrors) the oracle is a native mirror that selects more,
// post-filtered by the test with the same match. Forwarding is checked
// too: every port that is not a mirror output receives exactly what it
// receives without mirrors.
//
// The suite is tests only (runner_test.go, scenarios_test.go and helpers); this file
// exists to document the package. Run it with `make conformance`, or
//
//	cd test/conformance && go test -count=1 -parallel 4
//
// which prints the table "scenario | packets native | packets flowspan |
// verdict". FLOWSPAN_CONFORMANCE_ALL=1 also runs the scenarios with a
// known, documented difference; FLOWSPAN_CONFORMANCE_NATIVE_ONLY=1 runs
// only the native half (the oracle's self-check, no flowspan binary);
// FLOWSPAN_CONFORMANCE_DUMP=1 logs every capture.
package conformance
