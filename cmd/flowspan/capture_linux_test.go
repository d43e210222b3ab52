//go:build !flowspanclient

package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flowspan/flowspan/test/lab"
)

// TestPacketSocketInVswitchdNetns checks tap's capture path on a real OVS:
// the internal port lives in the lab vswitchd's network namespace, which
// findInterfaceNetns locates; the socket brings the device up, sees what OVS
// outputs to it (here: native Mirror copies) and restores the VLAN tag the
// kernel moved out of the frame.
func TestPacketSocketInVswitchdNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a real Open vSwitch (lab)")
	}
	l := lab.New(t)
	l.AddBridge(t, "br0")
	h1 := l.AddHost(t, "br0", "h1", lab.HostConfig{MAC: "02:00:00:00:00:01", IPv4: "10.0.0.1/24", Tag: 10})
	h2 := l.AddHost(t, "br0", "h2", lab.HostConfig{MAC: "02:00:00:00:00:02", IPv4: "10.0.0.2/24", Tag: 10})
	// An internal port left down, as flowspan creates it.
	name := fmt.Sprintf("fsc%d", time.Now().UnixNano()%1e9)
	l.MustVsctl(t, "add-port", "br0", name, "--", "set", "Interface", name, "type=internal")
	l.AddNativeMirror(t, "br0", lab.NativeMirror{Name: "m", SelectSrc: []string{"h1"}, Output: name})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns, err := waitInterfaceNetns(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if ns == "" {
		t.Fatalf("interface %s found in the test's own namespace; want vswitchd's", name)
	}
	s, err := openPacketSocket(ns, name)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := exec.Command("ip", "netns", "exec", l.Netns(), "ip", "-o", "link", "show", name).CombinedOutput()
	if err != nil || !upFlag.MatchString(string(out)) {
		t.Errorf("device %s after opening: %s (err %v); want it up", name, out, err)
	}

	var mu sync.Mutex
	var pkts []lab.Packet
	rctx, rcancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Run(rctx, func(_ time.Time, frame []byte, origLen int) error {
			mu.Lock()
			pkts = append(pkts, lab.Decode(append([]byte(nil), frame...), origLen))
			mu.Unlock()
			return nil
		}, nil)
	}()
	h1.Neighbor(t, h2.IPv4(), h2.MAC())
	h2.Neighbor(t, h1.IPv4(), h1.MAC())
	if got := h1.Ping(t, h2.IPv4(), 3); got != 3 {
		t.Fatalf("ping: %d replies", got)
	}
	lab.Eventually(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if n := len(lab.Filter(pkts, lab.ICMPEcho)); n < 3 {
			return fmt.Errorf("%d echo packets read, want 3", n)
		}
		return nil
	})
	rcancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	echo := lab.Filter(pkts, lab.ICMPEcho)
	if len(echo) != 3 {
		t.Errorf("read %d echo packets, want exactly the 3 requests h1 sent:\n%s", len(echo), lab.Summary(pkts))
	}
	for _, p := range echo {
		if p.ICMPType != 8 || !slices.Equal(p.VLANs, []uint16{10}) || p.Src.String() != "02:00:00:00:00:01" {
			t.Errorf("copy %s: want an echo request from h1 tagged with VLAN 10", p)
		}
	}
}

// upFlag matches the UP flag in an "ip -o link" line.
var upFlag = regexp.MustCompile(`[<,]UP[,>]`)

func TestVswitchdNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a real Open vSwitch (lab)")
	}
	l := lab.New(t)
	got, err := vswitchdNetns(runDirOf(l.DBEndpoint()))
	if want := "/run/netns/" + l.Netns(); err != nil || got != want {
		t.Errorf("vswitchdNetns(%s) = %q, %v; want %q", l.RunDir(), got, err, want)
	}
	if got, err := vswitchdNetns(t.TempDir()); got != "" || err != nil {
		t.Errorf("vswitchdNetns(empty dir) = %q, %v; want our own namespace", got, err)
	}
}
