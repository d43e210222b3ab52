package main

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flowspan/flowspan/test/lab"
)

const (
	secFirstPacket  = "2 first mirrored packet"
	caseEstablished = "established stream: create mirror of h1 → first copy"
	caseNewFlows    = "new flows (fresh source MAC per packet): create mirror of h1 → first copy"
	caseWarm        = "new flows, bridge already mirrored (h2 → mirror1 by the same tool): create mirror of h1 → first copy"
	caseShared      = "new flows, output already in use (idle0 → mirror0 by the same tool): create mirror of h1 → first copy"
	subjFPNative    = "native Mirror (ovs-vsctl)"
	subjFPFlowspan  = "flowspan mirror add"
	fpDstPort       = 7100
	fpFreshPort     = 7101
)

// benchFirstPacket measures section 2: the time from starting the command
// that creates a mirror of h1 to the first copy arriving on the output
// port, for a native Mirror created with ovs-vsctl and for `flowspan mirror
// add`. Both commands are run as processes, as a user would run them. Two
// kinds of traffic: an established stream (h1 sends a UDP datagram to h2
// about every 100 µs, one datapath flow), and new flows (h1 sends a frame to
// h2 every millisecond from a source MAC never used before, so each frame
// is a new datapath flow that OVS translates with its current config).
func benchFirstPacket(t lab.T, cfg *Config, rep *Report) {
	l := lab.New(t)
	h1, h2 := twoHosts(t, l)
	// Fresh source MACs must not evict h2's entry from the MAC table.
	l.MustVsctl(t, "set", "Bridge", "br0", "other_config:mac-table-size=1000000")
	var fsNA string
	d, err := startDaemon(t, l, cfg.Flowspan)
	if err != nil {
		fsNA = err.Error()
	}
	ways := []*fpWay{
		{name: subjFPNative, create: func() error {
			_, err := l.Vsctl("--", "--id=@p", "get", "Port", h1.Port(), "--", "--id=@o", "get", "Port", "mirror0",
				"--", "--id=@m", "create", "Mirror", "name=fp", "select_src_port=@p", "select_dst_port=@p", "output_port=@o",
				"--", "add", "Bridge", "br0", "mirrors", "@m")
			return err
		}, teardown: func() error {
			_, err := l.Vsctl("--", "--id=@m", "get", "Mirror", "fp", "--", "remove", "Bridge", "br0", "mirrors", "@m")
			return err
		}},
		{name: subjFPFlowspan, na: fsNA, create: func() error {
			_, err := d.cli("mirror", "add", "fp", "--bridge", "br0", "--port", h1.Port(), "--to", "mirror0")
			return err
		}, teardown: func() error {
			_, err := d.cli("mirror", "del", "fp")
			return err
		}},
	}
	sock, err := openCopySocket(l.Netns(), "mirror0")
	if err != nil {
		t.Fatalf("%v", err)
	}
	defer unix.Close(sock)
	start, quarter := time.Now(), cfg.budget(2)/4
	stop := once(t, startTicker(t, h1, h2))
	firstPacketCase(t, l, cfg, rep, caseEstablished, ways, sock, fpDstPort, start.Add(quarter))
	stop()
	stop = once(t, startFreshMACs(t, h1, h2))
	firstPacketCase(t, l, cfg, rep, caseNewFlows, ways, sock, fpFreshPort, start.Add(2*quarter))
	// The common case once a bridge is in use: it already has a mirror
	// made by the same tool (h2 to mirror1), so flowspan has taken it over
	// and only isolates mirror0 and adds flows, and OVS adds a Mirror row.
	l.AddInternalPort(t, "br0", "mirror1", 0)
	firstPacketCase(t, l, cfg, rep, caseWarm, withOther(l, d, ways, h2.Port(), "mirror1"), sock, fpFreshPort, start.Add(3*quarter))
	// Another mirror to an analyzer port already in use (mirroring an idle
	// port): flowspan only adds flows; OVS adds a Mirror row.
	l.AddInternalPort(t, "br0", "idle0", 0)
	firstPacketCase(t, l, cfg, rep, caseShared, withOther(l, d, ways, "idle0", "mirror0"), sock, fpFreshPort, start.Add(4*quarter))
	stop()
}

// withOther returns ways whose runs each start with another mirror (of
// port, both directions, to output) made by the same tool, removed after
// the run: each way's runs see only its own tool's other mirror.
func withOther(l *lab.Lab, d *daemon, ways []*fpWay, port, output string) []*fpWay {
	native, fs := *ways[0], *ways[1]
	native.before = func() error {
		_, err := l.Vsctl("--", "--id=@p", "get", "Port", port, "--", "--id=@o", "get", "Port", output,
			"--", "--id=@m", "create", "Mirror", "name=other", "select_src_port=@p", "select_dst_port=@p", "output_port=@o",
			"--", "add", "Bridge", "br0", "mirrors", "@m")
		return err
	}
	native.after = func() error {
		_, err := l.Vsctl("--", "--id=@m", "get", "Mirror", "other", "--", "remove", "Bridge", "br0", "mirrors", "@m")
		return err
	}
	fs.before = func() error {
		_, err := d.cli("mirror", "add", "other", "--bridge", "br0", "--port", port, "--to", output)
		return err
	}
	fs.after = func() error {
		_, err := d.cli("mirror", "del", "other")
		return err
	}
	return []*fpWay{&native, &fs}
}

// once returns f made idempotent and registers it with t.Cleanup, so a
// traffic generator stops also when the scenario ends early.
func once(t lab.T, f func()) func() {
	var o sync.Once
	g := func() { o.Do(f) }
	t.Cleanup(g)
	return g
}

// fpWay is one way to create (and remove) a mirror of h1 to mirror0.
type fpWay struct {
	name     string
	na       string
	create   func() error
	teardown func() error
	// before and after, when set, run (untimed) around each run: the
	// state the way's runs start from.
	before, after func() error
}

func firstPacketCase(t lab.T, l *lab.Lab, cfg *Config, rep *Report, cs string, ways []*fpWay, sock int, port uint16, deadline time.Time) {
	rows := map[string]*Row{}
	ret := map[string][]float64{}
	for _, w := range ways {
		rows[w.name] = rep.Add(secFirstPacket, cs, w.name, Duration)
		rows[w.name].NA = w.na
		rows[w.name].Limit = cfg.FirstPacketLimit.Seconds()
	}
	stuck := map[string]int{}
	// Both ways run back to back in each round (in alternating order): the
	// target is on the median of the per-round ratios, which cancels load
	// that drifts between rounds.
	rep.Ratios = append(rep.Ratios,
		Ratio{secFirstPacket, cs, subjFPFlowspan, subjFPFlowspan, subjFPNative, "flowspan ÷ native, medians", Target{}, false},
		Ratio{secFirstPacket, cs, subjFPFlowspan, subjFPFlowspan, subjFPNative, "flowspan ÷ native, median of per-round ratios", Target{"<=", 1.0}, true})
	for r := 0; r < cfg.FirstPacketReps; r++ {
		if r > 0 && time.Now().After(deadline) {
			rep.Note("%s, %s: stopped after %d runs (time budget)", secFirstPacket, cs, r)
			break
		}
		for k := range ways {
			w := ways[runOrder(len(ways), r, k)]
			if w.na != "" {
				continue
			}
			if w.before != nil {
				if err := w.before(); err != nil {
					t.Fatalf("%s, %s: preparing: %v", cs, w.name, err)
				}
			}
			// Nothing of the traffic may reach mirror0 before the mirror exists.
			if n := drainCopies(sock, port, 200*time.Millisecond); n > 0 {
				t.Fatalf("%s, %s: %d packets on mirror0 with no mirror", cs, w.name, n)
			}
			start := time.Now()
			errc := make(chan error, 1)
			var returned atomic.Int64
			go func() {
				err := w.create()
				returned.Store(int64(time.Since(start)))
				errc <- err
			}()
			first, err := waitCopy(sock, port, cfg.FirstPacketLimit)
			cerr := <-errc
			if cerr != nil {
				w.na = "failed: " + cerr.Error()
				rows[w.name].NA = w.na
				if w.after != nil {
					_ = w.after()
				}
				continue
			}
			ret[w.name] = append(ret[w.name], time.Duration(returned.Load()).Seconds())
			if err != nil {
				// No copy within the limit. Show that the mirror itself
				// works once OVS drops its cached datapath flows: then
				// the result is a fact about OVS, not a broken setup.
				if _, err := l.Appctl("revalidator/purge"); err != nil {
					t.Fatalf("%v", err)
				}
				if _, err := waitCopy(sock, port, 2*time.Second); err != nil {
					t.Fatalf("%s, %s: no copy on mirror0, not even after revalidator/purge: %v", cs, w.name, err)
				}
				stuck[w.name]++
				rows[w.name].Samples = append(rows[w.name].Samples, math.Inf(1))
				t.Logf("%s, %s: no copy within %v; after revalidator/purge copies arrive", cs, w.name, cfg.FirstPacketLimit)
			} else {
				rows[w.name].Samples = append(rows[w.name].Samples, first.Sub(start).Seconds())
				t.Logf("%s, %s: first copy after %v (command returned after %v)", cs, w.name, first.Sub(start), time.Duration(returned.Load()))
			}
			if err := w.teardown(); err != nil {
				t.Fatalf("%s: removing the mirror: %v", w.name, err)
			}
			if w.after != nil {
				if err := w.after(); err != nil {
					t.Fatalf("%s, %s: cleaning up: %v", cs, w.name, err)
				}
			}
			// OVS keeps a removed native Mirror in datapath flows it
			// cached too: purge them so the next run starts clean.
			if _, err := l.Appctl("revalidator/purge"); err != nil {
				t.Fatalf("%v", err)
			}
			drainCopies(sock, port, 300*time.Millisecond)
		}
	}
	for name, s := range ret {
		if m, ok := median(s); ok {
			rows[name].Extra = "(command returned after " + Duration.format(m) + ")"
		}
	}
	for name, n := range stuck {
		rep.Note("%s, %s, %s: in %d run(s) no copy reached the output port within %s; "+
			"after `ovs-appctl revalidator/purge` copies arrived at once, so the mirror was configured but OVS kept "+
			"using the datapath flow it had cached before the mirror existed", secFirstPacket, cs, name, n, Duration.format(cfg.FirstPacketLimit.Seconds()))
	}
}

// startFreshMACs makes h1 send a UDP frame to h2:fpFreshPort every
// millisecond, each from a source MAC not used before, until the returned
// function is called.
func startFreshMACs(t lab.T, h1, h2 *lab.Host) (stop func()) {
	t.Helper()
	var rc *net.UDPConn
	if err := h2.Do(func() error {
		var err error
		rc, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(h2.IPv4(), fpFreshPort)))
		return err
	}); err != nil {
		t.Fatalf("udp sink: %v", err)
	}
	fd := -1
	var ifindex int
	if err := h1.Do(func() error {
		ifi, err := net.InterfaceByName(h1.Device())
		if err != nil {
			return err
		}
		ifindex = ifi.Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		return err
	}); err != nil {
		rc.Close()
		t.Fatalf("raw socket in h1: %v", err)
	}
	quit := make(chan struct{})
	done := make(chan struct{}, 2)
	go drainUDP(rc, done)
	go func() {
		to := &unix.SockaddrLinklayer{Ifindex: ifindex, Halen: 6}
		for i := uint32(1); ; i++ {
			select {
			case <-quit:
				done <- struct{}{}
				return
			default:
			}
			_ = unix.Sendto(fd, udpFrame(h1, h2, i), 0, to)
			time.Sleep(time.Millisecond)
		}
	}()
	return func() {
		close(quit)
		rc.Close()
		<-done
		<-done
		unix.Close(fd)
	}
}

// udpFrame is an Ethernet/IPv4/UDP frame from h1's IP to h2 on
// fpFreshPort, with source MAC 02:aa:xx:xx:xx:xx (xx = n).
func udpFrame(h1, h2 *lab.Host, n uint32) []byte {
	f := make([]byte, 0, 64)
	f = append(f, h2.MAC()...)
	f = append(f, 0x02, 0xaa, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	f = append(f, 0x08, 0x00)
	ip := []byte{0x45, 0, 0, 46, byte(n >> 8), byte(n), 0, 0, 64, 17, 0, 0}
	ip = append(ip, h1.IPv4().AsSlice()...)
	ip = append(ip, h2.IPv4().AsSlice()...)
	var sum uint32
	for i := 0; i < len(ip); i += 2 {
		sum += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	ip[10], ip[11] = byte(^sum>>8), byte(^sum)
	f = append(f, ip...)
	f = append(f, 0xa0, 0x28, byte(fpFreshPort>>8), byte(fpFreshPort&0xff), 0, 26, 0, 0) // UDP, no checksum
	return append(f, make([]byte, 18)...)
}

// startTicker makes h1 send a UDP datagram to h2:fpDstPort about every
// 100 µs until the returned function is called.
func startTicker(t lab.T, h1, h2 *lab.Host) (stop func()) {
	t.Helper()
	var rc, sc *net.UDPConn
	dst := netip.AddrPortFrom(h2.IPv4(), fpDstPort)
	if err := h2.Do(func() error {
		var err error
		rc, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(dst))
		return err
	}); err != nil {
		t.Fatalf("udp sink: %v", err)
	}
	if err := h1.Do(func() error {
		var err error
		sc, err = net.ListenUDP("udp", &net.UDPAddr{IP: h1.IPv4().AsSlice()})
		return err
	}); err != nil {
		rc.Close()
		t.Fatalf("udp source: %v", err)
	}
	quit := make(chan struct{})
	done := make(chan struct{}, 2)
	go drainUDP(rc, done)
	go func() {
		to := net.UDPAddrFromAddrPort(dst)
		payload := make([]byte, 32)
		for {
			select {
			case <-quit:
				done <- struct{}{}
				return
			default:
			}
			_, _ = sc.WriteToUDP(payload, to)
			time.Sleep(100 * time.Microsecond)
		}
	}()
	return func() {
		close(quit)
		sc.Close()
		rc.Close()
		<-done
		<-done
	}
}

// openCopySocket opens an AF_PACKET socket on iface in netns that sees what
// the bridge sends to the port (the tap's incoming packets).
func openCopySocket(netns, iface string) (int, error) {
	fd := -1
	err := lab.InNetns(netns, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		s, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, proto)
		if err != nil {
			return err
		}
		if err := unix.Bind(s, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(s)
			return err
		}
		fd = s
		return nil
	})
	if err != nil {
		return -1, fmt.Errorf("packet socket on %s: %w", iface, err)
	}
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// isCopy says whether frame is a UDP datagram to port (the traffic of
// the case being measured).
func isCopy(frame []byte, port uint16) bool {
	p := lab.Decode(frame, len(frame))
	return p.Proto == 17 && p.DstPort == port
}

// waitCopy returns the time the first stream copy arrived.
func waitCopy(fd int, port uint16, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 2048)
	tv := unix.NsecToTimeval((20 * time.Millisecond).Nanoseconds())
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	for time.Now().Before(deadline) {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		now := time.Now()
		if err != nil {
			continue // timeout: poll the deadline
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if isCopy(buf[:n], port) {
			return now, nil
		}
	}
	return time.Time{}, fmt.Errorf("no copy on the output port within %v", timeout)
}

// drainCopies reads until no stream copy arrived for quiet (at most 3 s)
// and returns how many it read.
func drainCopies(fd int, port uint16, quiet time.Duration) int {
	buf := make([]byte, 2048)
	tv := unix.NsecToTimeval((10 * time.Millisecond).Nanoseconds())
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	n, start, last := 0, time.Now(), time.Now()
	for time.Since(last) < quiet && time.Since(start) < 3*time.Second {
		m, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			continue
		}
		if isCopy(buf[:m], port) {
			n++
			last = time.Now()
		}
	}
	return n
}

// drainUDP reads and discards datagrams until conn is closed, then signals
// done.
func drainUDP(conn *net.UDPConn, done chan<- struct{}) {
	buf := make([]byte, 2048)
	for {
		if _, _, err := conn.ReadFromUDP(buf); err != nil {
			done <- struct{}{}
			return
		}
	}
}
