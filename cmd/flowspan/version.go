package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = ""

// versionString is the binary's version: the -X value, else the module
// version or VCS revision recorded by the Go toolchain, else "devel".
func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}

const versionUsage = `usage: flowspan version [--api unix:PATH]

Print flowspan's version, and the daemon's if it is running.
`

func runVersion(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("version")
	apiAddr := apiFlag(fs, e)
	pos, _, _, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments: %v", pos)
	}
	fmt.Fprintf(e.stdout, "flowspan %s\n", versionString())
	c := newClient(*apiAddr)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if v, err := c.Version(ctx); err == nil {
		fmt.Fprintf(e.stdout, "daemon %s (api %s) at %s\n", v.Version, v.API, c.addr)
	}
	return nil
}
