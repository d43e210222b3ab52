package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flowspan/flowspan/test/lab"
)

func TestZZExpColdAdd(t *testing.T) {
	l := lab.New(t)
	h1, h2 := twoHosts(t, l)
	os.Setenv("FLOWSPAN_LOG_LEVEL", "debug")
	d, err := startDaemon(t, l, "../bin/flowspan")
	if err != nil {
		t.Fatal(err)
	}
	stop := startTicker(t, h1, h2)
	defer stop()
	for i := 0; i < 5; i++ {
		t0 := time.Now()
		d.cli("mirror", "list")
		fmt.Printf("list took %v\n", time.Since(t0))
		t0 = time.Now()
		l.Vsctl("list", "Bridge")
		fmt.Printf("vsctl took %v\n", time.Since(t0))
		t0 = time.Now()
		d.cli("--help")
		fmt.Printf("help took %v\n", time.Since(t0))
	}
	for i := 0; i < 3; i++ {
		mark := len(d.out.String())
		t0 := time.Now()
		fmt.Printf("T0 %s\n", t0.UTC().Format("15:04:05.000000"))
		if _, err := d.cli("mirror", "add", "fp", "--bridge", "br0", "--port", h1.Port(), "--to", "mirror0"); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("returned after %v\n", time.Since(t0))
		time.Sleep(200 * time.Millisecond)
		for _, ln := range strings.Split(d.out.String()[mark:], "\n") {
			if len(ln) > 200 {
				ln = ln[:200]
			}
			fmt.Println(ln)
		}
		if _, err := d.cli("mirror", "del", "fp"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
