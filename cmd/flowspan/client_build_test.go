//go:build !flowspanclient

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestClientOnlyBuild: the client-only build (make build's bin/flowspan)
// links none of the daemon's packages, and its "serve" runs the
// flowspan-daemon next to it with the same arguments, or says it is missing.
func TestClientOnlyBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	out, err := exec.Command("go", "list", "-deps", "-tags", "flowspanclient", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, heavy := range []string{"github.com/flowspan/flowspan", "github.com/flowspan/flowspan/ovsdb",
		"github.com/flowspan/flowspan/ofctrl", "github.com/ovn-org/libovsdb/client", "github.com/contiv/libOpenflow/openflow15"} {
		if slices.Contains(deps, heavy) {
			t.Errorf("the client-only build links %s", heavy)
		}
	}
	// Every client command pays the binary's start-up (docs/performance.md,
	// "Client start-up"): api.Client speaks HTTP itself so that the CLI links
	// no net/http (which brings crypto/tls, crypto/x509, mime/multipart...),
	// and on Linux not even package net, whose cgo resolver makes the binary
	// dynamically linked (loading libc costs about a millisecond per run).
	for _, slow := range []string{"net/http", "crypto/tls", "crypto/x509", "net", "runtime/cgo", "github.com/sirupsen/logrus"} {
		if slices.Contains(deps, slow) {
			t.Errorf("the client-only build links %s, which slows every client command's start-up", slow)
		}
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "flowspan")
	if out, err := exec.Command("go", "build", "-tags", "flowspanclient", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags flowspanclient: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "serve", "--api", "unix:/x").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "flowspan-daemon, was not found") {
		t.Fatalf("serve without the daemon: %v: %s", err, out)
	}
	// A stand-in daemon that prints how it was started.
	fake := "#!/bin/sh\necho \"daemon: $0 $*\"\n"
	if err := os.WriteFile(filepath.Join(dir, "flowspan-daemon"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(bin, "serve", "--api", "unix:/x").CombinedOutput()
	want := "daemon: " + filepath.Join(dir, "flowspan-daemon") + " serve --api unix:/x\n"
	if err != nil || string(out) != want {
		t.Fatalf("serve ran %q (%v), want %q", out, err, want)
	}
	if out, err := exec.Command(bin, "mirror", "add", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "usage: flowspan mirror add") {
		t.Fatalf("client command in the client-only build: %v: %s", err, out)
	}
}
