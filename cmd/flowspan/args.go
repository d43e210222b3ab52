package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// stringList is a repeatable string flag: --port a --port b.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// usageError marks an error that exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...)}
}

// errHelp is returned when the user asked for -h/--help.
var errHelp = errors.New("help requested")

// helpError is errHelp with the command's flags, for the help text.
type helpError struct{ flags string }

func (h *helpError) Error() string        { return errHelp.Error() }
func (h *helpError) Is(target error) bool { return target == errHelp }

// newFlagSet returns a FlagSet that reports errors instead of exiting and
// prints nothing by itself.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseArgs parses flags that may appear before or after positional
// arguments ("mirror add web --bridge br0" and "mirror add --bridge br0 web"
// both work). It returns the positional arguments and, when the command line
// contains "--", everything after it verbatim in rest.
func parseArgs(fs *flag.FlagSet, args []string) (pos, rest []string, dashdash bool, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, nil, false, &helpError{flags: flagDefaults(fs)}
			}
			return nil, nil, false, &usageError{msg: err.Error()}
		}
		remaining := fs.Args()
		consumed := len(args) - len(remaining)
		if consumed > 0 && args[consumed-1] == "--" {
			return pos, remaining, true, nil
		}
		if len(remaining) == 0 {
			return pos, nil, false, nil
		}
		pos = append(pos, remaining[0])
		args = remaining[1:]
	}
}

// flagDefaults renders the flags of fs like flag.PrintDefaults, with "--".
func flagDefaults(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		fmt.Fprintf(&b, "  %s%s", dash, f.Name)
		if name != "" {
			fmt.Fprintf(&b, " %s", name)
		}
		b.WriteString("\n    \t")
		b.WriteString(strings.ReplaceAll(usage, "\n", "\n    \t"))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(&b, " (default %q)", f.DefValue)
		}
		b.WriteString("\n")
	})
	return b.String()
}
