package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestExitCodes checks 0 ok, 1 error, 2 usage, and the daemon-not-running
// message, without a daemon.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	sock := "unix:" + filepath.Join(t.TempDir(), "api.sock")
	tests := []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"version"}, 0, ""},
		{[]string{"mirror", "add", "--help"}, 0, ""},
		{[]string{}, 2, "usage: flowspan COMMAND"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"mirror", "add", "web", "--port", "p1", "--to", "m0"}, 2, "missing --bridge"},
		{[]string{"mirror", "add", "web", "--bridge", "br0", "--port", "p1"}, 2, "give exactly one output"},
		{[]string{"mirror", "add", "web", "--bridge", "br0", "--bogus"}, 2, "-bogus"},
		{[]string{"mirror", "list", "-o", "xml"}, 2, "want table or json"},
		{[]string{"tap"}, 2, "missing PORT"},
		{[]string{"mirror", "list"}, 1, "daemon not running at " + sock + "; start it with: flowspan serve --api " + sock},
		{[]string{"mirror", "add", "web", "--bridge", "br0", "--port", "p1", "--to", "m0"}, 1, "daemon not running at " + sock},
		{[]string{"release", "--bridge", "br0"}, 1, "daemon not running at " + sock},
		{[]string{"tap", "p1", "--bridge", "br0", "-w", filepath.Join(t.TempDir(), "x.pcap")}, 1, "daemon not running at " + sock},
	}
	for _, tt := range tests {
		r := flowspan(t, sock, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.inStderr) {
			t.Errorf("flowspan %s: %v\nwant exit %d and stderr containing %q", strings.Join(tt.args, " "), r, tt.code, tt.inStderr)
		}
		if r.code != 0 && r.stdout != "" {
			t.Errorf("flowspan %s: failed but wrote to stdout: %q", strings.Join(tt.args, " "), r.stdout)
		}
	}
	if r := flowspan(t, sock, "version"); !strings.HasPrefix(r.stdout, "flowspan ") {
		t.Errorf("version: %v", r)
	}
}
