package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/flowspan/flowspan/test/lab"
)

func TestZZExpDatapath(t *testing.T) {
	l := lab.New(t)
	h1, h2 := twoHosts(t, l)
	startIperfServer(t, h2)
	iperf(h1, h2, time.Second)
	d, err := startDaemon(t, l, "../bin/flowspan")
	if err != nil {
		t.Fatal(err)
	}
	dump := func(what string) {
		l.Appctl("revalidator/purge")
		r, _ := iperf(h1, h2, 2*time.Second)
		out, _ := l.Appctl("dpctl/dump-flows", "-m")
		fmt.Printf("=== %s: iperf %v\n%s\n", what, r, out)
	}
	dump("none")
	l.AddNativeMirror(t, "br0", lab.NativeMirror{Name: "native", SelectSrc: []string{h1.Port()}, SelectDst: []string{h1.Port()}, Output: "mirror0"})
	dump("native")
	l.DelNativeMirror(t, "br0", "native")
	if _, err := d.cli("mirror", "add", "m", "--bridge", "br0", "--port", h1.Port(), "--to", "mirror0"); err != nil {
		t.Fatal(err)
	}
	d.waitActive("m")
	dump("flowspan")
}
