//go:build flowspanclient

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// daemonBinary is the full build of this command, which "serve" runs.
const daemonBinary = "flowspan-daemon"

// runServe, in the client-only build (go build -tags flowspanclient, what
// make build installs as bin/flowspan), replaces this process with the
// full build, flowspan-daemon, found next to this binary or else in PATH.
// The client-only build leaves the daemon's packages (OVSDB, OpenFlow, the
// compiler) out, which halves the start-up time of every client command.
func runServe(_ context.Context, e *env, args []string) error {
	path, err := findDaemon()
	if err != nil {
		return err
	}
	argv := append([]string{path, "serve"}, args...)
	if err := syscall.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("running %s: %w", path, err)
	}
	return nil // not reached
}

func findDaemon() (string, error) {
	var tried []string
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), daemonBinary)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
		tried = append(tried, p)
	}
	if p, err := exec.LookPath(daemonBinary); err == nil {
		return p, nil
	}
	tried = append(tried, "PATH")
	return "", errors.New("this flowspan is the client-only build; the daemon, " + daemonBinary +
		", was not found (looked in " + fmt.Sprint(tried) + "); make build builds both")
}
