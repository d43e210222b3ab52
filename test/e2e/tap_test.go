package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowspan/flowspan/test/lab"
)

// tapProc is a running "flowspan tap".
type tapProc struct {
	cmd    *exec.Cmd
	out    *lab.Buffer
	errOut *lab.Buffer
	done   chan error
}

func (e *env) startTap(args ...string) *tapProc {
	e.t.Helper()
	p := &tapProc{out: &lab.Buffer{}, errOut: &lab.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(flowspanBin, append([]string{"tap", "--api", e.api}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.errOut
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	e.t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	lab.Eventually(e.t, 20*time.Second, func() error {
		select {
		case err := <-p.done:
			p.done <- err
			e.t.Fatalf("flowspan tap exited early: %v\nstdout: %s\nstderr: %s", err, p.out, p.errOut)
		default:
		}
		if !strings.Contains(p.errOut.String(), "capturing") {
			return fmt.Errorf("flowspan tap not capturing yet: %q", p.errOut.String())
		}
		return nil
	})
	e.settle()
	return p
}

// wait waits for the tap to exit and returns its exit code.
func (p *tapProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-p.done:
		if err == nil {
			return 0
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		t.Fatalf("flowspan tap: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatalf("flowspan tap did not exit within 20s\nstdout: %s\nstderr: %s", p.out, p.errOut)
	}
	return -1
}

// noTapLeft checks that no tap mirror or port is left on br0.
func (e *env) noTapLeft(what string) {
	e.t.Helper()
	lab.Eventually(e.t, 10*time.Second, func() error {
		for _, m := range e.list() {
			if strings.HasPrefix(m.Spec.Name, "tap-") {
				return fmt.Errorf("%s: mirror %s left behind", what, m.Spec.Name)
			}
		}
		for _, p := range e.ports("br0") {
			if strings.HasPrefix(p, "fstap") {
				return fmt.Errorf("%s: port %s left behind", what, p)
			}
		}
		return nil
	})
}

func icmpCounts(pkts []lab.Packet) (req, rep int) {
	for _, p := range lab.Filter(pkts, lab.ICMPEcho) {
		if p.ICMPType == 8 {
			req++
		} else if p.ICMPType == 0 {
			rep++
		}
	}
	return req, rep
}

// TestTap runs "flowspan tap" the three ways a user does: into a pcap file
// and Ctrl-C, into tcpdump, and killed with -9 (the daemon cleans up).
func TestTap(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hs := e.hosts(3)
	h1, h2, h3 := hs[0], hs[1], hs[2]
	e.learn(hs)
	before := e.ports("br0")

	t.Run("pcap file and Ctrl-C", func(t *testing.T) {
		file := filepath.Join(e.dir, "h1.pcap")
		p := e.startTap("h1", "--bridge", "br0", "-w", file)
		pingExact(t, h1, h2.IPv4(), 4)
		h1.SendUDP(t, h2.IPv4(), 4001, 5001, 200, 3)
		h3.SendUDP(t, h2.IPv4(), 4003, 5003, 200, 3) // not h1's traffic
		// Wait until the file shows the copies (tap flushes when idle).
		lab.Eventually(t, 10*time.Second, func() error {
			if n := len(pcapPackets(t, file)); n < 11 {
				return fmt.Errorf("pcap has %d packets, want 11", n)
			}
			return nil
		})
		_ = p.cmd.Process.Signal(os.Interrupt)
		if code := p.wait(t); code != 0 {
			t.Errorf("tap after Ctrl-C: exit %d\nstderr: %s", code, p.errOut)
		}
		pkts := pcapPackets(t, file)
		req, rep := icmpCounts(pkts)
		if req != 4 || rep != 4 || udpCount(pkts, 5001) != 3 || udpCount(pkts, 5003) != 0 {
			t.Errorf("pcap: %d echo requests, %d replies, %d UDP to 5001, %d to 5003; want 4, 4, 3, 0:\n%s",
				req, rep, udpCount(pkts, 5001), udpCount(pkts, 5003), lab.Summary(pkts))
		}
		if !strings.Contains(p.errOut.String(), "packets written to "+file) {
			t.Errorf("tap stderr: %q", p.errOut)
		}
		e.noTapLeft("after Ctrl-C")
	})

	t.Run("match, no --bridge and SIGTERM", func(t *testing.T) {
		file := filepath.Join(e.dir, "udp.pcap")
		// Without --bridge the daemon finds the bridge that has h1.
		p := e.startTap("h1", "--match", "udp,tp_dst=5002", "-w", file)
		h1.SendUDP(t, h2.IPv4(), 4001, 5001, 100, 3)
		h2.SendUDP(t, h1.IPv4(), 4002, 5002, 100, 5)
		lab.Eventually(t, 10*time.Second, func() error {
			if n := len(pcapPackets(t, file)); n < 5 {
				return fmt.Errorf("pcap has %d packets, want 5", n)
			}
			return nil
		})
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t); code != 0 {
			t.Errorf("tap after SIGTERM: exit %d\nstderr: %s", code, p.errOut)
		}
		pkts := pcapPackets(t, file)
		if len(pkts) != 5 || udpCount(pkts, 5002) != 5 {
			t.Errorf("pcap: want exactly the 5 UDP packets to 5002:\n%s", lab.Summary(pkts))
		}
		e.noTapLeft("after SIGTERM")
	})

	t.Run("tcpdump", func(t *testing.T) {
		if _, err := exec.LookPath("tcpdump"); err != nil {
			t.Fatalf("tcpdump not installed: %v", err)
		}
		p := e.startTap("h1", "--bridge", "br0", "--", "tcpdump", "-n", "-c", "4", "icmp")
		pingExact(t, h1, h2.IPv4(), 2)
		// tcpdump exits after 4 packets; tap then cleans up and exits.
		if code := p.wait(t); code != 0 {
			t.Errorf("tap with tcpdump -c 4: exit %d\nstdout: %s\nstderr: %s", code, p.out, p.errOut)
		}
		out := p.out.String()
		if n := strings.Count(out, "ICMP echo"); n != 4 || !strings.Contains(out, h1.IPv4().String()+" > "+h2.IPv4().String()+": ICMP echo request") ||
			!strings.Contains(out, h2.IPv4().String()+" > "+h1.IPv4().String()+": ICMP echo reply") {
			t.Errorf("tcpdump output: %d ICMP echo lines, want 2 requests and 2 replies:\n%s", n, out)
		}
		e.noTapLeft("after tcpdump exited")
	})

	t.Run("killed", func(t *testing.T) {
		p := e.startTap("h1", "--bridge", "br0", "-w", filepath.Join(e.dir, "killed.pcap"))
		if !slices.ContainsFunc(e.ports("br0"), func(s string) bool { return strings.HasPrefix(s, "fstap") }) {
			t.Errorf("tap running but no fstap port on br0: %v", e.ports("br0"))
		}
		_ = p.cmd.Process.Kill()
		p.wait(t)
		e.noTapLeft("after kill -9 of tap")
	})

	t.Run("daemon killed", func(t *testing.T) {
		p := e.startTap("h1", "--bridge", "br0", "-w", filepath.Join(e.dir, "orphan.pcap"))
		e.d.kill()
		// The tap notices that its session ended and says so.
		if code := p.wait(t); code != 1 || !strings.Contains(p.errOut.String(), "daemon ended the tap session") {
			t.Errorf("tap after its daemon died: exit %d, stderr %q; want 1 and the reason", code, p.errOut)
		}
		// Its mirror and port were left behind; the next daemon removes them.
		e.d.start()
		e.noTapLeft("after the daemon restarted")
	})

	if got := e.ports("br0"); !slices.Equal(got, before) {
		t.Errorf("ports of br0 after the taps: %v, want %v", got, before)
	}
	pingExact(t, h1, h2.IPv4(), 2)
}
