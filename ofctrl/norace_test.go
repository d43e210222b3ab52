//go:build !race

package ofctrl

const raceEnabled = false
