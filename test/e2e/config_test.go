package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowspan/flowspan/api"
	"github.com/flowspan/flowspan/test/lab"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// names returns the names of mirrors with their origins, "name/origin".
func names(ms []api.Mirror) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Spec.Name+"/"+string(m.Origin))
	}
	slices.Sort(out)
	return out
}

// TestConfigReload declares mirrors in --config, reloads it with SIGHUP
// (mirrors gone from the file are removed, API mirrors stay) and checks a
// broken file changes nothing.
func TestConfigReload(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "flowspan.yaml")
	writeFile(t, cfg, `mirrors:
  - name: cfg1
    bridge: br0
    ports: [h1]
    output: {port: m0}
`)
	e := newEnv(t, "--config", cfg)
	hs := e.hosts(2)
	h1, h2 := hs[0], hs[1]
	e.outputPort("m0")
	e.outputPort("m1")
	e.learn(hs)
	e.waitActive("cfg1")
	e.must("mirror", "add", "api1", "--bridge", "br0", "--ingress", "h2", "--to", "m1")
	e.settle()
	if got := names(e.list()); !slices.Equal(got, []string{"api1/api", "cfg1/config"}) {
		t.Fatalf("mirrors: %v", got)
	}
	c := e.lab.Capture(t, "m0")
	h2.SendUDP(t, h1.IPv4(), 4000, 5001, 64, 3) // egress h1: cfg1 selects it
	expectUDP(t, "m0 with cfg1", c.Stop(t), map[uint16]int{5001: 3})

	writeFile(t, cfg, `mirrors:
  - name: cfg2
    bridge: br0
    ingress: [h1]
    match: ["udp,tp_dst=5002"]
    output: {port: m0}
`)
	if err := e.d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	lab.Eventually(t, 10*time.Second, func() error {
		if got := names(e.list()); !slices.Equal(got, []string{"api1/api", "cfg2/config"}) {
			return fmt.Errorf("mirrors after SIGHUP: %v, want api1 and cfg2", got)
		}
		return nil
	})
	e.waitActive("cfg2")
	e.settle()
	c = e.lab.Capture(t, "m0")
	h2.SendUDP(t, h1.IPv4(), 4000, 5001, 64, 3) // no longer selected
	h1.SendUDP(t, h2.IPv4(), 4000, 5002, 64, 4)
	h1.SendUDP(t, h2.IPv4(), 4000, 5003, 64, 2) // filtered out
	expectUDP(t, "m0 with cfg2", c.Stop(t), map[uint16]int{5001: 0, 5002: 4, 5003: 0})

	// A broken file is reported and changes nothing; the daemon keeps running.
	writeFile(t, cfg, "mirrors:\n  - name: [oops\n")
	flows := e.flowSet("br0")
	logBefore := len(e.d.out.String())
	if err := e.d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	lab.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(e.d.out.String()[logBefore:], cfg) {
			return fmt.Errorf("daemon log does not mention the broken config %s yet", cfg)
		}
		return nil
	})
	if got := names(e.list()); !slices.Equal(got, []string{"api1/api", "cfg2/config"}) {
		t.Errorf("mirrors after a broken config: %v", got)
	}
	if got := e.flowSet("br0"); !slices.Equal(got, flows) {
		t.Errorf("flows after a broken config (-want +got):\n%s", lineDiff(flows, got))
	}
}
