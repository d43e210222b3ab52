package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowspan/flowspan/test/lab"
)

// TestControllerMode runs serve --listen: the bridge connects to flowspan
// as its controller; mirroring works, and releasing the bridge restores its
// previous controller settings and forwarding.
func TestControllerMode(t *testing.T) {
	t.Parallel()
	e := newEnvFunc(t, func(l *lab.Lab) []string {
		return []string{"--listen", "unix:" + filepath.Join(l.RunDir(), "flowspan.ctl")}
	})
	hs := e.hosts(2)
	h1, h2 := hs[0], hs[1]
	e.outputPort("m0")
	e.learn(hs)
	failMode := e.lab.MustVsctl(t, "get", "Bridge", "br0", "fail_mode")
	e.must("mirror", "add", "web", "--bridge", "br0", "--port", "h1", "--to", "m0")
	e.waitActive("web")
	if got := e.lab.MustVsctl(t, "get-controller", "br0"); !strings.Contains(got, "unix:"+filepath.Join(e.lab.RunDir(), "flowspan.ctl")) {
		t.Errorf("br0 controllers in controller mode: %q", got)
	}
	e.settle()
	e.checkForwardAndMirror(h1, h2, 5001, 5, "controller mode")
	e.must("mirror", "del", "web")
	lab.Eventually(t, 10*time.Second, func() error {
		if got := strings.TrimSpace(e.lab.MustVsctl(t, "get-controller", "br0")); got != "" {
			return fmt.Errorf("br0 controllers after release: %q, want none", got)
		}
		if got := e.lab.MustVsctl(t, "get", "Bridge", "br0", "fail_mode"); got != failMode {
			return fmt.Errorf("br0 fail_mode after release: %q, want %q", got, failMode)
		}
		return nil
	})
	pingExact(t, h1, h2.IPv4(), 3)
}

var metricsAddr = regexp.MustCompile(`msg="metrics listening" addr="?([0-9.:]+)`)

// TestMetrics reads the Prometheus endpoint of serve --metrics.
func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "--metrics", "127.0.0.1:0")
	hs := e.hosts(2)
	e.outputPort("m0")
	e.learn(hs)
	e.must("mirror", "add", "web", "--bridge", "br0", "--ingress", "h1", "--to", "m0")
	e.waitActive("web")
	e.settle()
	hs[0].SendUDP(t, hs[1].IPv4(), 4000, 5001, 64, 5)
	m := metricsAddr.FindStringSubmatch(e.d.out.String())
	if m == nil {
		t.Fatalf("serve log does not say where metrics listen:\n%s", e.d.out.String())
	}
	lab.Eventually(t, 10*time.Second, func() error {
		resp, err := http.Get("http://" + m[1] + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var lines []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		body := strings.Join(lines, "\n")
		for _, want := range []string{
			`flowspan_mirror_up{mirror="web",bridge="br0",state="active"} 1`,
			`flowspan_mirror_packets_total{mirror="web",bridge="br0"} 5`,
			`flowspan_selection_packets_total{mirror="web",bridge="br0",port="h1",direction="ingress"} 5`,
		} {
			if !strings.Contains(body, want) {
				return fmt.Errorf("metrics lack %q:\n%s", want, body)
			}
		}
		return nil
	})
}
