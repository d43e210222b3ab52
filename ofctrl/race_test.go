//go:build race

package ofctrl

// raceEnabled: the race detector changes allocation behaviour (sync.Pool
// drops items at random), so allocation bounds are checked without it.
const raceEnabled = true
