//go:build !flowspanclient

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// vswitchdNetns returns the network namespace ovs-vswitchd runs in, as a
// path the daemon can enter later, when it differs from ours: internal
// ports (tap devices with the userspace datapath) appear there, and the
// daemon brings the ones it creates up. rundir is OVS's run directory,
// which holds ovs-vswitchd.pid. It returns "" when vswitchd shares our
// namespace or cannot be found (a remote OVS).
//
// A named namespace (/run/netns/NAME, as "ip netns" creates) is preferred
// to /proc/PID/ns/net, which disappears when vswitchd restarts.
func vswitchdNetns(rundir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(rundir, "ovs-vswitchd.pid"))
	if err != nil {
		return "", nil // not local, or not running yet: assume ours
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return "", nil
	}
	procNS := fmt.Sprintf("/proc/%d/ns/net", pid)
	var theirs, ours unix.Stat_t
	if err := unix.Stat(procNS, &theirs); err != nil {
		return "", nil // stale pid file
	}
	if err := unix.Stat("/proc/self/ns/net", &ours); err != nil {
		return "", fmt.Errorf("own network namespace: %w", err)
	}
	if theirs.Dev == ours.Dev && theirs.Ino == ours.Ino {
		return "", nil
	}
	named, _ := filepath.Glob("/run/netns/*")
	for _, p := range named {
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil && st.Dev == theirs.Dev && st.Ino == theirs.Ino {
			return p, nil
		}
	}
	return procNS, nil
}

// runDirOf derives OVS's run directory from a unix: OVSDB endpoint ("" for
// tcp:/ssl: endpoints).
func runDirOf(endpoint string) string {
	path, ok := strings.CutPrefix(endpoint, "unix:")
	if !ok {
		return ""
	}
	return filepath.Dir(path)
}
