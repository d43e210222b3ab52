package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flowspan/flowspan/test/lab"
)

const secDatapath = "3 datapath"

const (
	subjNoMirror  = "(a) no mirror"
	subjNative    = "(b) native Mirror of h1"
	subjFSMirror  = "(c) flowspan mirror of h1"
	subjFSFilter  = "(d) flowspan mirror of h1, 1% filter"
	caseTCP       = "TCP h1→h2 (iperf3)"
	caseSmall     = "UDP 18-byte payload h1→h2"
	caseCopies    = "copies on output port (UDP run)"
	iperfPort     = 5201
	streamDstPort = 7000
	streamSrcBase = 40000
	streamSources = 100 // source ports: a filter on one of them selects 1%
)

// mirrorVariant is one datapath configuration of section 3.
type mirrorVariant struct {
	name     string
	na       string
	setup    func() error
	teardown func() error
}

// benchDatapath measures section 3: TCP throughput and small-packet rate
// between two hosts, and the copies on the output port, with no mirror, a
// native Mirror of h1, a flowspan mirror of h1, and a flowspan mirror of h1
// whose filter selects 1% of the small-packet stream.
func benchDatapath(t lab.T, cfg *Config, rep *Report) {
	l := lab.New(t)
	h1, h2 := twoHosts(t, l)
	startIperfServer(t, h2)
	// Warm up (and wait for the server): one short untimed run.
	if _, err := iperf(h1, h2, time.Second); err != nil {
		t.Fatalf("iperf3 warm-up: %v", err)
	}
	var fsNA string
	d, err := startDaemon(t, l, cfg.Flowspan)
	if err != nil {
		fsNA = err.Error()
	}
	fsVariant := func(name, mirror string, extra ...string) mirrorVariant {
		v := mirrorVariant{name: name, na: fsNA}
		v.setup = func() error {
			args := append([]string{"mirror", "add", mirror, "--bridge", "br0", "--port", h1.Port(), "--to", "mirror0"}, extra...)
			if _, err := d.cli(args...); err != nil {
				return err
			}
			return d.waitActive(mirror)
		}
		v.teardown = func() error { _, err := d.cli("mirror", "del", mirror); return err }
		return v
	}
	variants := []mirrorVariant{
		{name: subjNoMirror, setup: func() error { return nil }, teardown: func() error { return nil }},
		{name: subjNative, setup: func() error {
			l.AddNativeMirror(t, "br0", lab.NativeMirror{Name: "native", SelectSrc: []string{h1.Port()}, SelectDst: []string{h1.Port()}, Output: "mirror0"})
			return nil
		}, teardown: func() error { l.DelNativeMirror(t, "br0", "native"); return nil }},
		fsVariant(subjFSMirror, "dp-all"),
		fsVariant(subjFSFilter, "dp-one", "--match", fmt.Sprintf("udp,tp_src=%d", streamSrcBase)),
	}
	rows := map[string][3]*Row{}
	share := map[string][]float64{}
	for _, v := range variants {
		r := [3]*Row{
			rep.Add(secDatapath, caseTCP, v.name, Bitrate),
			rep.Add(secDatapath, caseSmall, v.name, PacketRate),
			rep.Add(secDatapath, caseCopies, v.name, Count),
		}
		for _, x := range r {
			x.NA = v.na
		}
		rows[v.name] = r
	}
	for _, cs := range []string{caseTCP, caseSmall} {
		rep.Ratios = append(rep.Ratios,
			Ratio{secDatapath, cs, subjNative, subjNative, subjNoMirror, "÷ no mirror", Target{}, false},
			Ratio{secDatapath, cs, subjFSMirror, subjFSMirror, subjNative, "(c) ÷ (b), medians", Target{}, false},
			Ratio{secDatapath, cs, subjFSMirror, subjFSMirror, subjNative, "(c) ÷ (b), median of per-round ratios", Target{">=", 0.95}, true},
			Ratio{secDatapath, cs, subjFSFilter, subjFSFilter, subjNative, "(d) ÷ (b)", Target{}, false},
		)
	}
	rep.Ratios = append(rep.Ratios,
		Ratio{secDatapath, caseCopies, subjFSMirror, subjFSMirror, subjNative, "(c) ÷ (b)", Target{}, false},
		Ratio{secDatapath, caseCopies, subjFSFilter, subjNative, subjFSFilter, "(b) ÷ (d)", Target{">=", 50}, false})
	deadline := time.Now().Add(cfg.budget(3))
	for r := 0; r < cfg.DatapathReps; r++ {
		if r > 0 && time.Now().After(deadline) {
			rep.Note("%s: stopped after %d runs (time budget)", secDatapath, r)
			break
		}
		for k := range variants {
			v := &variants[runOrder(len(variants), r, k)]
			if v.na != "" {
				continue
			}
			if err := v.setup(); err != nil {
				v.na = "failed: " + err.Error()
				for _, x := range rows[v.name] {
					x.NA = v.na
				}
				continue
			}
			// Start every variant from an empty datapath flow cache: OVS
			// does not apply a new native Mirror to datapath flows it
			// cached before (see section 2), and all variants must pay
			// the same upcalls.
			if _, err := l.Appctl("revalidator/purge"); err != nil {
				t.Fatalf("%v", err)
			}
			bps, err := iperf(h1, h2, cfg.IperfTime)
			if err != nil {
				t.Fatalf("%s: iperf3: %v", v.name, err)
			}
			tx0 := txPackets(t, l, "mirror0")
			sent, recv, err := udpStream(h1, h2, cfg.SmallPktTime)
			if err != nil {
				t.Fatalf("%s: udp stream: %v", v.name, err)
			}
			// Copies still in flight are counted: wait until the counter settles.
			var copies int64
			for prev, i := int64(-1), 0; i < 50; i++ {
				copies = txPackets(t, l, "mirror0") - tx0
				if copies == prev {
					break
				}
				prev = copies
				time.Sleep(50 * time.Millisecond)
			}
			if err := v.teardown(); err != nil {
				t.Fatalf("%s: removing the mirror: %v", v.name, err)
			}
			x := rows[v.name]
			x[0].Samples = append(x[0].Samples, bps)
			x[1].Samples = append(x[1].Samples, float64(recv)/cfg.SmallPktTime.Seconds())
			x[2].Samples = append(x[2].Samples, float64(copies))
			if sent > 0 {
				share[v.name] = append(share[v.name], 100*float64(copies)/float64(sent))
			}
			t.Logf("%s: tcp %.0f Mbit/s; udp sent %d received %d; copies %d", v.name, bps/1e6, sent, recv, copies)
		}
	}
	for name, s := range share {
		if m, ok := median(s); ok {
			rows[name][2].Extra = fmt.Sprintf("(%.2f%% of datagrams sent)", m)
		}
	}
}

// startIperfServer runs iperf3 -s in h's namespace until the lab is gone.
func startIperfServer(t lab.T, h *lab.Host) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", h.Netns(), "iperf3", "-s", "-p", fmt.Sprint(iperfPort), "-B", h.IPv4().String())
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("iperf3 -s: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

// iperf runs an iperf3 TCP test from src to dst and returns the bits per
// second the receiver got. It retries while the server is not listening yet.
func iperf(src, dst *lab.Host, d time.Duration) (float64, error) {
	deadline := time.Now().Add(lab.Timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), d+lab.Timeout)
		out, err := src.Run(ctx, "iperf3", "-c", dst.IPv4().String(), "-p", fmt.Sprint(iperfPort),
			"-t", fmt.Sprintf("%.1f", d.Seconds()), "-J")
		cancel()
		var res struct {
			Error string `json:"error"`
			End   struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if jerr := json.Unmarshal([]byte(out), &res); jerr == nil && res.Error == "" && res.End.SumReceived.BitsPerSecond > 0 {
			return res.End.SumReceived.BitsPerSecond, nil
		}
		msg := res.Error
		if msg == "" && err != nil {
			msg = err.Error()
		}
		if msg == "" {
			msg = "no result in iperf3 output"
		}
		retry := strings.Contains(msg, "refused") || strings.Contains(msg, "busy")
		if !retry || time.Now().After(deadline) {
			return 0, errors.New(msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// udpStream sends datagrams with an 18-byte payload (64-byte frames) from
// src to dst as fast as it can for d, round robin over streamSources source
// ports, and returns how many were sent and how many dst received.
func udpStream(src, dst *lab.Host, d time.Duration) (sent, received int64, err error) {
	var rc *net.UDPConn
	dstAddr := netip.AddrPortFrom(dst.IPv4(), streamDstPort)
	if err := dst.Do(func() error {
		var err error
		rc, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(dstAddr))
		return err
	}); err != nil {
		return 0, 0, fmt.Errorf("receiver: %w", err)
	}
	_ = rc.SetReadBuffer(8 << 20)
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := rc.ReadFromUDP(buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	defer func() { rc.Close(); <-done }()
	conns := make([]*net.UDPConn, streamSources)
	if err := src.Do(func() error {
		for i := range conns {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: src.IPv4().AsSlice(), Port: streamSrcBase + i})
			if err != nil {
				return err
			}
			conns[i] = c
		}
		return nil
	}); err != nil {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		return 0, 0, fmt.Errorf("sender: %w", err)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	payload := make([]byte, 18)
	to := net.UDPAddrFromAddrPort(dstAddr)
	start := time.Now()
	for i := 0; ; i++ {
		if i%256 == 0 && time.Since(start) >= d {
			break
		}
		if _, err := conns[i%streamSources].WriteToUDP(payload, to); err == nil {
			sent++
		}
	}
	// Let the last datagrams arrive: wait until the count stops growing.
	for prev := int64(-1); got.Load() != prev; {
		prev = got.Load()
		time.Sleep(50 * time.Millisecond)
	}
	return sent, got.Load(), nil
}
