package flowspan

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// AppctlMACTable reads MAC learning tables with ovs-appctl through
// ovs-vswitchd's control socket in an OVS run directory.
type AppctlMACTable struct {
	// RunDir is ovs-vswitchd's run directory (where ovs-vswitchd.pid and
	// ovs-vswitchd.<pid>.ctl, or an ovs-vswitchd.ctl, are).
	RunDir string
	// Appctl is the ovs-appctl program; "" looks it up in PATH.
	Appctl string
	// Timeout bounds one call when ctx has no earlier deadline; default 5 s.
	Timeout time.Duration
}

var _ MACTableReader = AppctlMACTable{}

// runDirOfEndpoint returns the run directory of a unix: OVSDB endpoint (the
// socket's directory, as ovsdb derives the passive controller target), ""
// for tcp: and ssl: endpoints.
func runDirOfEndpoint(endpoint string) string {
	path, ok := strings.CutPrefix(endpoint, "unix:")
	if !ok || path == "" {
		return ""
	}
	return filepath.Dir(path)
}

// controlSocket finds ovs-vswitchd's control socket: the one named by its
// pidfile, else the newest ovs-vswitchd.*.ctl (or ovs-vswitchd.ctl).
func (a AppctlMACTable) controlSocket() (string, error) {
	if a.RunDir == "" {
		return "", fmt.Errorf("no OVS run directory: %w", ErrNoMACTable)
	}
	if b, err := os.ReadFile(filepath.Join(a.RunDir, "ovs-vswitchd.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			ctl := filepath.Join(a.RunDir, fmt.Sprintf("ovs-vswitchd.%d.ctl", pid))
			if _, err := os.Stat(ctl); err == nil {
				return ctl, nil
			}
		}
	}
	// --unixctl may have named it without the pid.
	matches, _ := filepath.Glob(filepath.Join(a.RunDir, "ovs-vswitchd.*.ctl"))
	matches = append(matches, filepath.Join(a.RunDir, "ovs-vswitchd.ctl"))
	var best string
	var bestTime time.Time
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil {
			continue
		}
		if best == "" || fi.ModTime().After(bestTime) {
			best, bestTime = m, fi.ModTime()
		}
	}
	if best == "" {
		return "", fmt.Errorf("no ovs-vswitchd control socket in %s", a.RunDir)
	}
	return best, nil
}

// FDBShow implements MACTableReader.
func (a AppctlMACTable) FDBShow(ctx context.Context, bridge string) (string, error) {
	ctl, err := a.controlSocket()
	if err != nil {
		return "", fmt.Errorf("bridge %s: fdb/show: %w", bridge, err)
	}
	prog := a.Appctl
	if prog == "" {
		if prog, err = exec.LookPath("ovs-appctl"); err != nil {
			return "", fmt.Errorf("bridge %s: fdb/show: %w: %w", bridge, ErrNoMACTable, err)
		}
	}
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, "-t", ctl, "fdb/show", bridge)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return "", fmt.Errorf("bridge %s: ovs-appctl -t %s fdb/show: %w", bridge, ctl, err)
		}
		return "", fmt.Errorf("bridge %s: ovs-appctl -t %s fdb/show: %w: %s", bridge, ctl, err, msg)
	}
	return stdout.String(), nil
}

// errNoRunDir is returned by the ovsdb adapter for remote OVS.
var errNoRunDir = fmt.Errorf("OVSDB endpoint is not a local unix socket: %w", ErrNoMACTable)
