// Command demo is what "make demo" runs (through demo/run.sh): it starts a
// private Open vSwitch (its own directory and network namespaces, never the
// system OVS) with three hosts, runs "flowspan serve" against it, adds a
// filtered mirror with the flowspan CLI, generates traffic and shows what
// the mirror captured next to what was sent and what the filter excluded.
// Everything it creates is removed when it ends, also on failure or Ctrl-C.
//
//	go run ./demo --flowspan bin/flowspan
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/flowspan/flowspan/test/lab"
)

func main() {
	bin := flag.String("flowspan", "bin/flowspan", "path of the flowspan binary")
	verbose := flag.Bool("v", false, "show the lab's and the daemon's logs")
	flag.Parse()
	d := &demo{verbose: *verbose}
	os.Exit(d.main(*bin))
}

// demo implements lab.T for a program: Fatalf aborts the demo (through a
// panic that main recovers), Cleanup functions run at the end in reverse
// order, whatever happened.
type demo struct {
	verbose bool
	lab     *lab.Lab // set once the lab exists, to check what cleanup left

	mu          sync.Mutex
	cleanups    []func()
	failed      bool
	cleanOnce   sync.Once
	interrupted bool // Ctrl-C: cleanup runs, the demo's own errors are noise
}

var _ lab.T = (*demo)(nil)

type abort struct{}

func (d *demo) Helper() {}

func (d *demo) Logf(format string, args ...any) {
	if d.verbose {
		fmt.Fprintf(os.Stderr, "    (lab) "+format+"\n", args...)
	}
}

func (d *demo) Fatalf(format string, args ...any) {
	d.mu.Lock()
	d.failed = true
	quiet := d.interrupted
	d.mu.Unlock()
	if !quiet {
		fmt.Fprintf(os.Stderr, "\ndemo FAILED: "+format+"\n", args...)
	}
	panic(abort{})
}

func (d *demo) Skipf(format string, args ...any) { d.Fatalf(format, args...) }

func (d *demo) Cleanup(f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cleanups = append(d.cleanups, f)
}

func (d *demo) Failed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.failed
}

// cleanup runs the registered cleanups once, last first; a second caller
// (Ctrl-C during cleanup) waits until the first one has finished.
func (d *demo) cleanup() {
	d.cleanOnce.Do(func() {
		d.mu.Lock()
		fs := d.cleanups
		d.cleanups = nil
		d.mu.Unlock()
		runCleanups(fs)
	})
}

func runCleanups(fs []func()) {
	for i := len(fs) - 1; i >= 0; i-- {
		func() {
			defer func() {
				if r := recover(); r != nil {
					fmt.Fprintf(os.Stderr, "demo: cleanup step failed: %v\n", r)
				}
			}()
			fs[i]()
		}()
	}
}

func (d *demo) main(bin string) (code int) {
	abs, err := filepath.Abs(bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	if _, err := os.Stat(abs); err != nil {
		fmt.Fprintf(os.Stderr, "demo: flowspan binary: %v (build it with: go build -o bin/flowspan ./cmd/flowspan)\n", err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s, ok := <-sigs
		if !ok {
			return
		}
		d.mu.Lock()
		d.interrupted = true
		d.mu.Unlock()
		fmt.Fprintf(os.Stderr, "\ndemo: %v: cleaning up\n", s)
		d.cleanup()
		os.Exit(130)
	}()
	defer signal.Stop(sigs)
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(abort); !ok {
				fmt.Fprintf(os.Stderr, "demo: %v\n", r)
			}
			code = 1
		}
		step("Cleaning up")
		d.cleanup()
		if d.lab != nil {
			if left := d.lab.Leftovers(); len(left) > 0 {
				fmt.Printf("  LEFT BEHIND: %s\n", strings.Join(left, "; "))
				code = 1
			} else {
				fmt.Println("  removed the daemon, hosts, namespaces, Open vSwitch processes and files: nothing left")
			}
		}
		if code == 0 && d.Failed() {
			code = 1
		}
	}()
	if !d.run(abs) {
		return 1
	}
	return 0
}

func step(s string) { fmt.Printf("\n==> %s\n", s) }

// run is the demo itself; it reports whether the mirror did what it should.
func (d *demo) run(bin string) bool {
	step("Starting a private Open vSwitch (own namespaces and run directory; the system OVS is not touched)")
	l := lab.New(d)
	d.lab = l
	l.AddBridge(d, "br0")
	web := l.AddHost(d, "br0", "web", lab.HostConfig{MAC: "02:00:00:00:00:01", IPv4: "10.0.0.1/24"})
	client := l.AddHost(d, "br0", "client", lab.HostConfig{MAC: "02:00:00:00:00:02", IPv4: "10.0.0.2/24"})
	other := l.AddHost(d, "br0", "other", lab.HostConfig{MAC: "02:00:00:00:00:03", IPv4: "10.0.0.3/24"})
	l.AddInternalPort(d, "br0", "mirror0", 0)
	fmt.Printf("  ovs-vswitchd in netns %s, database %s\n", l.Netns(), l.DBSocket())
	fmt.Printf("  bridge br0: web 10.0.0.1, client 10.0.0.2, other 10.0.0.3 (one netns each), mirror0 (internal port for the copies)\n")

	dir := filepath.Join(l.Dir(), "flowspan")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		d.Fatalf("%v", err)
	}
	apiAddr := "unix:" + filepath.Join(dir, "api.sock")
	step("Starting the flowspan daemon")
	serveArgs := []string{"serve", "--ovsdb", l.DBEndpoint(), "--api", apiAddr,
		"--state", filepath.Join(dir, "state.json"), "--metrics", ""}
	fmt.Printf("  $ flowspan %s\n", shellJoin(serveArgs))
	startServe(d, bin, serveArgs, apiAddr)

	quiet := func(args ...string) string {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "FLOWSPAN_API="+apiAddr)
		out, err := cmd.CombinedOutput()
		if err != nil {
			d.Fatalf("flowspan %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	cli := func(args ...string) string {
		fmt.Printf("  $ flowspan %s\n", shellJoin(args))
		return quiet(args...)
	}
	indent := func(s string) {
		fmt.Print("    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n")
	}

	step("Mirroring web's HTTPS traffic (both directions) to mirror0")
	indent(cli("mirror", "add", "web-https", "--bridge", "br0", "--port", "web",
		"--match", "tcp,tp_dst=443", "--match", "tcp,tp_src=443", "--to", "mirror0"))
	lab.Eventually(d, 10*time.Second, func() error {
		if out := quiet("mirror", "list"); !strings.Contains(out, "active") {
			return fmt.Errorf("mirror not active yet:\n%s", out)
		}
		return nil
	})
	indent(cli("mirror", "list"))

	step("Generating traffic")
	for _, h := range []*lab.Host{web, client, other} {
		for _, p := range []*lab.Host{web, client, other} {
			if h != p {
				h.Neighbor(d, p.IPv4(), p.MAC())
			}
		}
	}
	// Every host says hello once, so the bridge (and flowspan's view of
	// it) knows where each MAC lives: a running network's normal state.
	// Until then the bridge floods frames to unknown MACs out of every
	// port, web's included, and the mirror copies those too.
	fmt.Println("  warm-up: each host pings the others once")
	for _, h := range []*lab.Host{client, web} {
		for _, p := range []*lab.Host{web, other} {
			if h != p {
				h.Ping(d, p.IPv4(), 1)
			}
		}
	}
	time.Sleep(time.Second) // let OVS revalidate the flows it cached meanwhile
	onWeb := l.CaptureDir(d, "web", lab.Both)
	copies := l.Capture(d, "mirror0")
	fmt.Println("  client -> web   TCP 443:  8 HTTPS-like connections, 4 kB each")
	for i := 0; i < 8; i++ {
		client.SendTCP(d, web, 443, 4096)
	}
	fmt.Println("  client -> web   TCP 8080: 4 connections, 4 kB each")
	for i := 0; i < 4; i++ {
		client.SendTCP(d, web, 8080, 4096)
	}
	fmt.Println("  client -> web   ping x5, UDP 53 x5")
	client.Ping(d, web.IPv4(), 5)
	client.SendUDP(d, web.IPv4(), 5353, 53, 64, 5)
	fmt.Println("  client -> other TCP 443:  4 connections, 4 kB each (not web's port)")
	for i := 0; i < 4; i++ {
		client.SendTCP(d, other, 443, 4096)
	}
	sentWeb, mirrored := onWeb.Stop(d), copies.Stop(d)

	step("What crossed web's port, next to what the mirror copied to mirror0")
	// The mirror selects web's port in both directions, filtered to TCP
	// port 443: every such packet on web's wire must be copied exactly
	// once, and nothing else. (Packets NORMAL floods out of web, e.g.
	// before it learned a MAC, crossed web's port too.)
	classes := []struct {
		name     string
		keep     func(lab.Packet) bool
		selected bool
	}{
		{"client<->web TCP 443", tcpPort(443, web.IPv4()), true},
		{"client<->web TCP 8080", tcpPort(8080, web.IPv4()), false},
		{"client<->web ICMP echo", lab.ICMPEcho, false},
		{"client->web UDP 53", lab.UDPTo(53), false},
		{"client<->other TCP 443 (not via web)", tcpPort(443, other.IPv4()), true},
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  traffic\ton web's wire\tcopies on mirror0\tverdict")
	ok := true
	accounted := 0
	for _, c := range classes {
		wire, got := len(lab.Filter(sentWeb, c.keep)), len(lab.Filter(mirrored, c.keep))
		accounted += got
		want := 0
		if c.selected {
			want = wire
		}
		var verdict string
		switch {
		case got != want:
			verdict, ok = fmt.Sprintf("WRONG: want %d copies", want), false
		case !c.selected:
			verdict = "excluded by the filter, as asked"
		case wire == 0:
			verdict = "never crossed web's port: nothing to copy"
		default:
			verdict = "each copied once"
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\n", c.name, wire, got, verdict)
	}
	if extra := len(mirrored) - accounted; extra != 0 {
		fmt.Fprintf(tw, "  anything else\t\t%d\tWRONG: want 0\n", extra)
		ok = false
	}
	fmt.Fprintf(tw, "  total on mirror0\t\t%d\t\n", len(mirrored))
	tw.Flush()
	if !ok {
		fmt.Printf("\n  copies on mirror0:\n%s", lab.Summary(mirrored))
	}

	step("flowspan's own counters (per mirror and per selection)")
	// Flow counters reach the controller within a second or so; give them
	// a few seconds to agree with the capture.
	want := fmt.Sprintf(`"packets": %d,`, len(mirrored))
	var statsJSON string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if statsJSON = quiet("mirror", "stats", "web-https", "-o", "json"); strings.Contains(statsJSON, want) {
			break
		}
	}
	indent(cli("mirror", "stats", "web-https"))
	if strings.Contains(statsJSON, want) {
		fmt.Printf("  the mirror's packet counter equals the %d copies captured on mirror0\n", len(mirrored))
	} else {
		fmt.Printf("  MISMATCH: the mirror's packet counter differs from the %d copies captured on mirror0\n", len(mirrored))
		ok = false
	}

	step("The flows behind it (ovs-ofctl syntax)")
	flows := cli("mirror", "show", "web-https", "--flows")
	lines := strings.Split(strings.TrimRight(flows, "\n"), "\n")
	if len(lines) > 24 {
		lines = append(lines[:24], fmt.Sprintf("... (%d more lines)", len(lines)-24))
	}
	indent(strings.Join(lines, "\n"))

	step("Watching a port live with flowspan tap (a temporary mirror into tcpdump)")
	if !runTap(d, bin, apiAddr, client, web) {
		ok = false
	}

	step("Deleting the mirror (the bridge is handed back as it was)")
	indent(cli("mirror", "del", "web-https"))
	if ok {
		fmt.Println("\nResult: OK — the mirror copied exactly web's HTTPS packets, once each, and nothing else.")
	} else {
		fmt.Println("\nResult: FAILED — see the table above.")
	}
	return ok
}

// tcpPort keeps TCP packets to or from port on host ip.
func tcpPort(port uint16, ip netip.Addr) func(lab.Packet) bool {
	return func(p lab.Packet) bool {
		return p.Proto == 6 && ((p.DstPort == port && p.IPDst == ip) || (p.SrcPort == port && p.IPSrc == ip))
	}
}

// startServe runs flowspan serve until the demo's cleanup, and waits until
// its API answers.
func startServe(d *demo, bin string, args []string, apiAddr string) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		if d.verbose {
			os.Stderr.Write(p)
		}
		return logs.Write(p)
	})
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		d.Fatalf("flowspan serve: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	d.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		d.mu.Lock()
		quiet := d.interrupted
		d.mu.Unlock()
		if d.Failed() && !d.verbose && !quiet {
			logMu.Lock()
			fmt.Fprintf(os.Stderr, "flowspan serve log:\n%s\n", logs.String())
			logMu.Unlock()
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := exec.CommandContext(ctx, bin, "mirror", "list", "--api", apiAddr).Run()
		cancel()
		if err == nil {
			return
		}
		select {
		case err := <-done:
			done <- err
			d.Fatalf("flowspan serve exited: %v", errors.Join(err))
		default:
		}
		if time.Now().After(deadline) {
			d.Fatalf("flowspan serve did not answer on %s within 20s", apiAddr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// shellJoin renders arguments as a shell would need them typed.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$*?;&|<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// runTap shows "flowspan tap": tcpdump reads a temporary mirror of client's
// port while client pings web twice; tcpdump stops after 4 packets and tap
// removes its mirror and port.
func runTap(d *demo, bin, apiAddr string, client, web *lab.Host) bool {
	args := []string{"tap", client.Port(), "--bridge", "br0", "--", "-n", "-c", "4", "icmp"}
	fmt.Printf("  $ flowspan %s\n", shellJoin(args))
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "FLOWSPAN_API="+apiAddr)
	var out, errOut lab.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		fmt.Printf("  tap: %v\n", err)
		return false
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(errOut.String(), "capturing") {
		select {
		case err := <-done:
			fmt.Printf("  tap exited early: %v\n%s", err, errOut.String())
			return false
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			fmt.Printf("  tap did not start within 20s:\n%s", errOut.String())
			return false
		}
	}
	time.Sleep(200 * time.Millisecond) // let OVS pick up the new mirror's flows
	fmt.Printf("  (client pings web twice)\n")
	client.Ping(d, web.IPv4(), 2)
	select {
	case err := <-done:
		fmt.Print("    " + strings.ReplaceAll(strings.TrimRight(out.String(), "\n"), "\n", "\n    ") + "\n")
		if err != nil {
			fmt.Printf("  tap: %v\n%s", err, errOut.String())
			return false
		}
		fmt.Println("  tcpdump stopped after 4 packets; tap removed its mirror and port")
		return strings.Count(out.String(), "ICMP echo") == 4
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Signal(os.Interrupt)
		<-done
		fmt.Printf("  tcpdump did not see 4 packets within 20s:\n%s%s", out.String(), errOut.String())
		return false
	}
}
