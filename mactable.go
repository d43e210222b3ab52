package flowspan

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// AppctlMACTable reads MAC learning tables (`ovs-appctl fdb/show`) through
// ovs-vswitchd's control socket in an OVS run directory.
type AppctlMACTable struct {
	// RunDir is ovs-vswitchd's run directory (where ovs-vswitchd.pid and
	// ovs-vswitchd.<pid>.ctl, or an ovs-vswitchd.ctl, are).
	RunDir string
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

// FDBShow implements MACTableReader. It speaks ovs-appctl's JSON-RPC
// directly on the control socket (no process to start).
func (a AppctlMACTable) FDBShow(ctx context.Context, bridge string) (string, error) {
	ctl, err := a.controlSocket()
	if err != nil {
		return "", fmt.Errorf("bridge %s: fdb/show: %w", bridge, err)
	}
	out, err := unixctl(ctx, ctl, a.timeout(), "fdb/show", bridge)
	if err != nil {
		return "", fmt.Errorf("bridge %s: fdb/show via %s: %w", bridge, ctl, err)
	}
	return out, nil
}

// StaticMACs implements StaticMACCounter from `fdb/stats-show` (an OVS
// without static entries does not show them: 0).
func (a AppctlMACTable) StaticMACs(ctx context.Context, bridge string) (int, error) {
	ctl, err := a.controlSocket()
	if err != nil {
		return 0, fmt.Errorf("bridge %s: fdb/stats-show: %w", bridge, err)
	}
	out, err := unixctl(ctx, ctl, a.timeout(), "fdb/stats-show", bridge)
	if err != nil {
		return 0, fmt.Errorf("bridge %s: fdb/stats-show via %s: %w", bridge, ctl, err)
	}
	return parseStaticMACs(out)
}

// parseStaticMACs reads "Current static MAC entries in the table : N".
func parseStaticMACs(statsShow string) (int, error) {
	for _, line := range strings.Split(statsShow, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !strings.Contains(k, "static MAC entries") {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return 0, fmt.Errorf("fdb/stats-show: static entries %q: %w", strings.TrimSpace(v), err)
		}
		return n, nil
	}
	return 0, nil
}

func (a AppctlMACTable) timeout() time.Duration {
	if a.Timeout <= 0 {
		return 5 * time.Second
	}
	return a.Timeout
}

// unixctl runs one OVS unixctl command (JSON-RPC 1.0 on a unix socket, as
// ovs-appctl does) and returns its text result.
func unixctl(ctx context.Context, socket string, timeout time.Duration, method string, params ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if params == nil {
		params = []string{}
	}
	req := struct {
		Method string   `json:"method"`
		Params []string `json:"params"`
		ID     int      `json:"id"`
	}{method, params, 0}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return "", err
	}
	var resp struct {
		Result *string `json:"result"`
		Error  any     `json:"error"`
		ID     any     `json:"id"`
	}
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return "", fmt.Errorf("reading the reply: %w", err)
	}
	if resp.Error != nil {
		return "", fmt.Errorf("%s: %v", method, resp.Error)
	}
	if resp.Result == nil {
		return "", fmt.Errorf("%s: reply without result", method)
	}
	return *resp.Result, nil
}

// errNoRunDir is returned by the ovsdb adapter for remote OVS.
var errNoRunDir = fmt.Errorf("OVSDB endpoint is not a local unix socket: %w", ErrNoMACTable)
