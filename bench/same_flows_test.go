package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flowspan/flowspan/test/lab"
)

// TestInstallersInstallTheSameFlows checks, on a real OVS, that the four
// subjects of section 1 leave exactly the same flow table behind: what
// `ovs-ofctl dump-flows --no-stats` prints after each is identical.
func TestInstallersInstallTheSameFlows(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	l.AddBridge(t, "br0")
	const n = 50
	flows := syntheticFlows(n)
	file := filepath.Join(l.Dir(), "flows.txt")
	var text strings.Builder
	mods := make([][]byte, n)
	for i, f := range flows {
		text.WriteString(f.text + "\n")
		mods[i] = f.mod
	}
	if err := os.WriteFile(file, []byte(text.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fs := flowspanInstaller(ctx, l, "br0", flows)
	if fs.na != "" {
		t.Fatalf("flowspan installer: %s", fs.na)
	}
	defer fs.close()
	install := map[string]func() error{
		subjFlowspan: func() error { _, err := fs.install(ctx); return err },
		subjBundle: func() error {
			_, err := l.Ofctl("-O", "OpenFlow13", "--bundle", "add-flows", "br0", file)
			return err
		},
		subjPlain: func() error { _, err := l.Ofctl("-O", "OpenFlow13", "add-flows", "br0", file); return err },
		subjFloor: func() error { _, err := rawBundle(ctx, filepath.Join(l.RunDir(), "br0.mgmt"), mods); return err },
	}
	var want []string
	for _, name := range []string{subjBundle, subjPlain, subjFloor, subjFlowspan} {
		clearBenchFlows(t, l)
		if err := install[name](); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out, err := l.Ofctl("-O", "OpenFlow13", "--no-stats", "dump-flows", "br0",
			fmt.Sprintf("cookie=%#x/%#x", uint64(benchCookie), uint64(benchCookieMask)))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "priority=") {
				got = append(got, strings.TrimSpace(line))
			}
		}
		slices.Sort(got)
		if len(got) != n {
			t.Fatalf("%s: %d flows, want %d:\n%s", name, len(got), n, out)
		}
		if want == nil {
			want = got
			t.Logf("e.g. %s", got[0])
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s installed different flows than %s:\n got %q\nwant %q", name, subjBundle, got[:3], want[:3])
		}
	}
}
