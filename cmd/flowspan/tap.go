package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flowspan/flowspan/api"
)

const tapUsage = `usage: flowspan tap PORT [--bridge BR] [--match FILTER]... [-w FILE.pcap | -- tcpdump ARGS]

Capture the traffic of PORT (both directions) like ovs-tcpdump: flowspan
creates a temporary internal port and a mirror of PORT to it, then either
writes the packets to FILE.pcap (-w, "-" for stdout; tcpdump not needed) or
streams them into "tcpdump -r - ARGS" (default: tcpdump -n). On exit, Ctrl-C
or SIGTERM the mirror and the port are removed; if this process is killed,
the daemon removes them when the connection drops.

Examples:
  flowspan tap vnet2 --bridge br0 -- -nn -e icmp
  flowspan tap vnet2 --bridge br0 --match tcp,tp_dst=443 -w web.pcap
`

// tapOptions is the parsed command line of tap.
type tapOptions struct {
	port     string
	bridge   string
	match    []string
	write    string // -w FILE; "" = tcpdump
	tcpdump  []string
	apiAddr  string
	portName string // internal output port to create
	name     string // mirror name
}

func parseTapArgs(e *env, args []string) (*tapOptions, error) {
	fs := newFlagSet("tap")
	apiAddr := apiFlag(fs, e)
	o := &tapOptions{}
	var match stringList
	fs.StringVar(&o.bridge, "bridge", "", "bridge `BR` that has PORT")
	fs.Var(&match, "match", "only packets matching ovs-ofctl `FILTER` (repeatable, OR-ed)")
	fs.StringVar(&o.write, "w", "", "write packets to `FILE.pcap` (\"-\" = stdout) instead of running tcpdump")
	pos, rest, dashdash, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if o.port, err = oneName(pos, "PORT"); err != nil {
		return nil, err
	}
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "w" {
			set = true
		}
	})
	if set && o.write == "" {
		return nil, usagef("-w: empty file name")
	}
	if dashdash {
		if o.write != "" {
			return nil, usagef("-w and \"-- tcpdump ARGS\" exclude each other")
		}
		if len(rest) > 0 && (rest[0] == "tcpdump" || filepath.Base(rest[0]) == "tcpdump") {
			rest = rest[1:]
		}
		o.tcpdump = rest
	}
	if o.write == "" && len(o.tcpdump) == 0 {
		o.tcpdump = []string{"-n"}
	}
	o.match = match
	o.apiAddr = *apiAddr
	pid := os.Getpid()
	o.portName = fmt.Sprintf("fstap%d", pid) // at most 12 characters: fits IFNAMSIZ
	o.name = tapMirrorName(o.port, pid)
	return o, nil
}

func runTap(ctx context.Context, e *env, args []string) error {
	o, err := parseTapArgs(e, args)
	if err != nil {
		return err
	}
	var tcpdumpPath string
	if o.write == "" {
		if tcpdumpPath, err = exec.LookPath("tcpdump"); err != nil {
			return fmt.Errorf("tcpdump not found in PATH: install it, or write a pcap file with -w FILE.pcap")
		}
	}
	// The tap session lives on parent until we close it, so that a signal
	// does not end it before the capture has drained.
	parent := ctx
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	c := newClient(o.apiAddr)
	defer c.Close()
	spec := api.MirrorSpec{
		Name:   o.name,
		Bridge: o.bridge,
		Ports:  []string{o.port},
		Match:  o.match,
		Output: api.Output{Port: o.portName, Create: true},
	}
	sess, err := c.Tap(parent, spec)
	if err != nil {
		return c.check(err)
	}
	m := sess.Mirror
	defer func() {
		// Ending the session makes the daemon delete the mirror and port;
		// wait for it so that nothing is left when tap exits.
		sess.Close()
		waitMirrorGone(c, m.Spec.Name, 10*time.Second, e)
	}()
	// The daemon may have picked or completed names (bridge).
	outPort := m.Spec.Output.Port
	if outPort == "" {
		outPort = o.portName
	}

	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	nsPath, err := waitInterfaceNetns(wctx, outPort)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("tap output port: %w", err)
	}
	sock, err := openPacketSocket(nsPath, outPort)
	if err != nil {
		return fmt.Errorf("tap output port: %w", err)
	}
	defer sock.Close()

	var (
		out     io.WriteCloser
		tcpdump *exec.Cmd
		dumpErr = make(chan error, 1)
		bufw    *bufio.Writer
	)
	switch {
	case o.write == "-":
		bufw = bufio.NewWriter(e.stdout)
		out = nopCloser{bufw}
	case o.write != "":
		f, err := os.Create(o.write)
		if err != nil {
			return fmt.Errorf("pcap file: %w", err)
		}
		bufw = bufio.NewWriter(f)
		out = &fileWriter{w: bufw, f: f}
	default:
		tcpdump = exec.Command(tcpdumpPath, append([]string{"-r", "-"}, o.tcpdump...)...)
		tcpdump.Stdout, tcpdump.Stderr = e.stdout, e.stderr
		stdin, err := tcpdump.StdinPipe()
		if err != nil {
			return fmt.Errorf("tcpdump: %w", err)
		}
		if err := tcpdump.Start(); err != nil {
			return fmt.Errorf("tcpdump: %w", err)
		}
		out = stdin
		go func() { dumpErr <- tcpdump.Wait() }()
	}
	pw, err := newPcapWriter(out, 0)
	if err != nil {
		out.Close()
		return err
	}
	if bufw != nil {
		if err := bufw.Flush(); err != nil {
			out.Close()
			return fmt.Errorf("pcap: %w", err)
		}
	}
	bridge := m.Spec.Bridge
	stderrf(e, "flowspan tap: capturing %s on bridge %s through port %s (mirror %s); Ctrl-C to stop",
		o.port, bridge, outPort, m.Spec.Name)

	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	var ended atomic.Value // why the capture stopped, if not a signal
	go func() {
		select {
		case <-sess.Done():
			ended.Store("the daemon ended the tap session")
			rcancel()
		case err := <-dumpErr:
			dumpErr <- err
			ended.Store("tcpdump exited")
			rcancel()
		case <-rctx.Done():
		}
	}()
	var count int
	lastFlush := time.Now()
	flush := func() error {
		if bufw == nil || bufw.Buffered() == 0 {
			return nil
		}
		lastFlush = time.Now()
		return bufw.Flush()
	}
	runErr := sock.Run(rctx, func(ts time.Time, frame []byte, origLen int) error {
		if err := pw.WritePacket(ts, frame, origLen); err != nil {
			return err
		}
		count++
		if time.Since(lastFlush) > 200*time.Millisecond {
			return flush()
		}
		return nil
	}, flush)
	closeErr := out.Close()
	if tcpdump != nil {
		select {
		case err := <-dumpErr:
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("tcpdump: %w", err)
			}
		case <-time.After(5 * time.Second):
			_ = tcpdump.Process.Kill()
			<-dumpErr
		}
	}
	// Once tcpdump exits, writes to its stdin fail (EPIPE, or ErrClosed
	// after Wait closed our end): that is the normal end of a "-c N" run.
	if runErr != nil && !(tcpdump != nil && (errors.Is(runErr, syscall.EPIPE) || errors.Is(runErr, os.ErrClosed))) {
		return runErr
	}
	if closeErr != nil && tcpdump == nil {
		return fmt.Errorf("pcap: %w", closeErr)
	}
	if o.write != "" && o.write != "-" {
		stderrf(e, "flowspan tap: %d packets written to %s", count, o.write)
	}
	if why, ok := ended.Load().(string); ok && why == "the daemon ended the tap session" && ctx.Err() == nil {
		return errors.New(why)
	}
	return nil
}

// waitMirrorGone polls until the daemon no longer lists mirror name.
func waitMirrorGone(c *apiClient, name string, timeout time.Duration, e *env) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		_, err := c.Mirror(ctx, name)
		if errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrDaemonNotRunning) {
			return
		}
		select {
		case <-ctx.Done():
			stderrf(e, "flowspan tap: mirror %s still present after %v; the daemon removes it", name, timeout)
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type nopCloser struct{ w *bufio.Writer }

func (n nopCloser) Write(p []byte) (int, error) { return n.w.Write(p) }
func (n nopCloser) Close() error                { return n.w.Flush() }

type fileWriter struct {
	w *bufio.Writer
	f *os.File
}

func (f *fileWriter) Write(p []byte) (int, error) { return f.w.Write(p) }
func (f *fileWriter) Close() error {
	err := f.w.Flush()
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// tapMirrorName names a tap's mirror "tap-PORT-PID", with characters a
// mirror name cannot hold replaced and PORT shortened to fit 64 characters.
func tapMirrorName(port string, pid int) string {
	clean := []byte(port)
	for i, c := range clean {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			clean[i] = '_'
		}
	}
	suffix := fmt.Sprintf("-%d", pid)
	if max := 64 - len("tap-") - len(suffix); len(clean) > max {
		clean = clean[:max]
	}
	return "tap-" + string(clean) + suffix
}
