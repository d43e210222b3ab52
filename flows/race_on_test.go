//go:build race

package flows

// raceEnabled: the race detector slows the big-bridge tests tenfold; they
// test no concurrency.
const raceEnabled = true
