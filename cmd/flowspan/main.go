// Command flowspan mirrors Open vSwitch traffic with OpenFlow flows.
//
// "flowspan serve" is the daemon; every other command is a client that talks
// to it over its API socket (--api, or FLOWSPAN_API). See "flowspan help".
//
// Exit status: 0 success, 1 error, 2 usage error. Errors go to stderr.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// env is what a command sees of the world; tests replace it.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

type command struct {
	name  string
	usage string
	run   func(ctx context.Context, e *env, args []string) error
}

const mainUsage = `usage: flowspan COMMAND [ARGS]

Mirror Open vSwitch traffic with OpenFlow flows.

Commands:
  serve                 run the daemon
  mirror add NAME ...   define a mirror
  mirror del NAME       delete a mirror
  mirror list           list mirrors
  mirror show NAME      show a mirror (--flows: its installed flows)
  mirror stats [NAME]   packets and bytes mirrored, per mirror and selection
  tap PORT              capture a port's traffic (tcpdump or a pcap file)
  release --bridge BR   remove flowspan from a bridge, restore its settings
  version               print the version

Client commands reach the daemon at --api (default $FLOWSPAN_API, else
unix:/run/flowspan/api.sock). Run "flowspan COMMAND --help" for details.
`

func commands() []command {
	return []command{
		{"serve", serveUsage, runServe},
		{"mirror add", mirrorAddUsage, runMirrorAdd},
		{"mirror del", mirrorDelUsage, runMirrorDel},
		{"mirror list", mirrorListUsage, runMirrorList},
		{"mirror show", mirrorShowUsage, runMirrorShow},
		{"mirror stats", mirrorStatsUsage, runMirrorStats},
		{"tap", tapUsage, runTap},
		{"release", releaseUsage, runRelease},
		{"version", versionUsage, runVersion},
	}
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	return e.run(ctx, args)
}

func (e *env) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, mainUsage)
		return 2
	}
	switch args[0] {
	case "help", "-h", "--help", "-help":
		if len(args) > 1 {
			return e.run(ctx, append(args[1:], "--help"))
		}
		fmt.Fprint(e.stdout, mainUsage)
		return 0
	case "--version", "-version":
		args = []string{"version"}
	}
	var cmd *command
	rest := args[1:]
	for _, c := range commands() {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			cmd = &c
			rest = args[len(words):]
			break
		}
	}
	if cmd == nil {
		if args[0] == "mirror" {
			if len(args) == 1 {
				fmt.Fprint(e.stderr, "flowspan mirror: missing subcommand (add, del, list, show, stats)\n")
			} else if h := args[1]; h == "-h" || h == "--help" || h == "help" {
				fmt.Fprint(e.stdout, mirrorUsage)
				return 0
			} else {
				fmt.Fprintf(e.stderr, "flowspan mirror: unknown subcommand %q (want add, del, list, show, stats)\n", args[1])
			}
			fmt.Fprint(e.stderr, mirrorUsage)
			return 2
		}
		fmt.Fprintf(e.stderr, "flowspan: unknown command %q\n\n%s", args[0], mainUsage)
		return 2
	}
	err := cmd.run(ctx, e, rest)
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errHelp):
		fmt.Fprint(e.stdout, cmd.usage)
		var he *helpError
		if errors.As(err, &he) && he.flags != "" {
			fmt.Fprintf(e.stdout, "\nFlags:\n%s", he.flags)
		}
		return 0
	case errors.As(err, &ue):
		synopsis, _, _ := strings.Cut(cmd.usage, "\n\n")
		fmt.Fprintf(e.stderr, "flowspan %s: %s\n%s\nRun \"flowspan %s --help\" for details.\n", cmd.name, ue.msg, synopsis, cmd.name)
		return 2
	default:
		fmt.Fprintf(e.stderr, "flowspan %s: %s\n", cmd.name, clientMessage(err))
		return 1
	}
}

// clientMessage renders an error for people: daemon errors are shown as
// the daemon worded them (api.Error's text), and "not running" without the
// dial error underneath.
func clientMessage(err error) error {
	var nr *notRunningError
	if errors.As(err, &nr) {
		return nr
	}
	return err
}
