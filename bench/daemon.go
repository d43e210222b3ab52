package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/flowspan/flowspan/api"
	"github.com/flowspan/flowspan/test/lab"
)

// daemon is a "flowspan serve" for one lab.
type daemon struct {
	bin    string
	lab    *lab.Lab
	dir    string
	api    string
	cmd    *exec.Cmd
	out    *lab.Buffer
	exited chan error
}

// startDaemon starts flowspan serve against the lab's OVSDB and waits until
// its API answers. On failure it returns why, for a "not available" cell;
// the daemon is stopped in t.Cleanup.
func startDaemon(t lab.T, l *lab.Lab, bin string) (*daemon, error) {
	t.Helper()
	if bin == "" {
		return nil, fmt.Errorf("no flowspan binary given (-flowspan)")
	}
	// Short path: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "fsb")
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &daemon{bin: bin, lab: l, dir: dir, api: "unix:" + filepath.Join(dir, "api.sock"), out: &lab.Buffer{}}
	if err := d.start(); err != nil {
		return nil, err
	}
	t.Cleanup(d.stop)
	return d, nil
}

func (d *daemon) start() error {
	d.cmd = exec.Command(d.bin, "serve", "--ovsdb", d.lab.DBEndpoint(), "--api", d.api,
		"--state", filepath.Join(d.dir, "state.json"), "--metrics", "")
	d.cmd.Env = d.lab.Env()
	if lvl := os.Getenv("FLOWSPAN_LOG_LEVEL"); lvl != "" {
		d.cmd.Env = append(d.cmd.Env, "FLOWSPAN_LOG_LEVEL="+lvl)
	}
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("flowspan serve: %w", err)
	}
	d.exited = make(chan error, 1)
	go func(cmd *exec.Cmd, ch chan error) { ch <- cmd.Wait() }(d.cmd, d.exited)
	c := api.NewClient(d.api)
	defer c.Close()
	deadline := time.Now().Add(lab.Timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Version(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case err := <-d.exited:
			d.exited <- err
			return fmt.Errorf("flowspan serve exited (%v): %s", err, lastLine(d.out.String()))
		default:
		}
		if time.Now().After(deadline) {
			d.stop()
			return fmt.Errorf("flowspan serve: API not answering after %v: %v", lab.Timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits (SIGKILL after a while).
func (d *daemon) stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	select {
	case err := <-d.exited:
		d.exited <- err
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		d.exited <- err
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		d.exited <- <-d.exited
	}
	// FLOWSPAN_BENCH_DAEMON_LOG=FILE appends the daemon's log there, to see
	// where a measured operation spent its time.
	if f := os.Getenv("FLOWSPAN_BENCH_DAEMON_LOG"); f != "" {
		if w, err := os.OpenFile(f, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			_, _ = w.WriteString(d.out.String())
			w.Close()
		}
	}
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) client() *api.Client { return api.NewClient(d.api) }

// cli runs a flowspan client command against this daemon.
func (d *daemon) cli(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), lab.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.bin, args...)
	cmd.Env = append(os.Environ(), "FLOWSPAN_API="+d.api)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		return o.String(), fmt.Errorf("flowspan %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(e.String()))
	}
	return o.String(), nil
}

// waitActive waits until every named mirror is active.
func (d *daemon) waitActive(names ...string) error {
	c := d.client()
	defer c.Close()
	deadline := time.Now().Add(lab.Timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ms, err := c.Mirrors(ctx)
		cancel()
		pending := ""
		if err == nil {
			state := map[string]api.Status{}
			for _, m := range ms {
				state[m.Spec.Name] = m.Status
			}
			for _, n := range names {
				if s := state[n]; s.State != api.StateActive {
					pending = fmt.Sprintf("mirror %s: %v", n, s)
					break
				}
			}
			if pending == "" {
				return nil
			}
		} else {
			pending = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not active after %v: %s", lab.Timeout, pending)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
