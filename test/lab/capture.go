package lab

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Direction says which packets of a port a Capture records.
type Direction int

const (
	// Sent is what the bridge sends out of the port: what a device behind
	// the port receives. Mirror copies on an output port are Sent.
	Sent Direction = iota
	// Received is what the bridge receives on the port.
	Received
	// Both is Sent and Received.
	Both
)

// Capture records packets of one bridge port with tcpdump.
type Capture struct {
	port     string
	file     string
	cmd      *exec.Cmd
	stderr   *Buffer
	once     sync.Once
	waitExit chan error
	pkts     []Packet
	err      error
}

// Capture starts recording what the bridge sends out of port. It returns
// once tcpdump is listening: every packet sent after that is recorded.
func (l *Lab) Capture(t T, port string) *Capture {
	t.Helper()
	return l.CaptureDir(t, port, Sent)
}

// CaptureDir is Capture with a direction.
func (l *Lab) CaptureDir(t T, port string, dir Direction) *Capture {
	t.Helper()
	c, err := l.startCapture(port, dir)
	if err != nil {
		t.Fatalf("lab: capture on %s: %v", port, err)
	}
	l.onCleanup(func() { _, _ = c.stop() })
	return c
}

func (l *Lab) startCapture(port string, dir Direction) (*Capture, error) {
	// -B 16384 (KiB): with offloads on, libpcap sizes each ring slot for
	// 64 KiB frames, so its default 2 MiB ring holds only 32 packets and
	// short bursts would be lost.
	// For a host's port, capture on the host's end of the veth: what the
	// bridge sends there arrives "in". For an internal port (a tap in the
	// vswitchd namespace), what the bridge sends is read by the kernel
	// as received, so it is "in" too.
	ns, iface := l.netns, port
	if h := l.Host(port); h != nil && h.capturePort != "" {
		iface = h.capturePort // the edge bridge's end of a tagged host's trunk
	} else if h != nil {
		ns, iface = h.netns, "eth0"
	}
	q := map[Direction]string{Sent: "in", Received: "out", Both: "inout"}[dir]
	f, err := os.CreateTemp(l.dir, "capture-*.pcap")
	if err != nil {
		return nil, err
	}
	f.Close()
	c := &Capture{port: port, file: f.Name(), stderr: &Buffer{}}
	c.cmd = exec.Command("ip", "netns", "exec", ns, "tcpdump", "-i", iface, "-n", "-U", "-s", "0",
		"--immediate-mode", "-B", "16384", "-Z", "root", "-Q", q, "-w", c.file)
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	c.cmd.Stderr = pw
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			c.stderr.WriteLine(sc.Text())
			if !signalled && strings.Contains(sc.Text(), "listening on") {
				close(listening)
				signalled = true
			}
		}
		if !signalled {
			close(listening)
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- c.cmd.Wait(); pw.Close() }()
	select {
	case <-listening:
	case <-time.After(Timeout):
	}
	select {
	case err := <-exited:
		return nil, fmt.Errorf("tcpdump exited: %v: %s", err, c.stderr.String())
	default:
	}
	if !strings.Contains(c.stderr.String(), "listening on") {
		_ = c.cmd.Process.Kill()
		return nil, fmt.Errorf("tcpdump did not start: %s", c.stderr.String())
	}
	c.waitExit = exited
	return c, nil
}

// Stop waits until the port has been quiet briefly (so packets already on
// their way are recorded), stops the capture and returns the packets
// recorded. It fails the test if tcpdump lost packets. A capture that saw
// nothing says so in the test log.
func (c *Capture) Stop(t T) []Packet {
	t.Helper()
	pkts, err := c.stop()
	if err != nil {
		t.Fatalf("lab: capture on %s: %v", c.port, err)
	}
	if len(pkts) == 0 {
		t.Logf("lab: capture on %s: the interface saw no packets", c.port)
	}
	return pkts
}

// Count returns how many packets were recorded so far, without stopping.
func (c *Capture) Count() int {
	pkts, _ := readPcap(c.file)
	return len(pkts)
}

// WaitFor waits until at least n packets were recorded, or Timeout.
func (c *Capture) WaitFor(t T, n int) {
	t.Helper()
	if err := waitFor(func() bool { return c.Count() >= n }, fmt.Sprintf("%d packets on %s", n, c.port)); err != nil {
		t.Fatalf("lab: %v (have %d)", err, c.Count())
	}
}

var droppedByKernel = regexp.MustCompile(`(\d+) packets? dropped by kernel`)

func (c *Capture) stop() ([]Packet, error) {
	c.once.Do(func() {
		// Wait for quiet: the file has not grown for 150 ms.
		var last int64 = -1
		quiet := 0
		deadline := time.Now().Add(Timeout)
		for quiet < 3 && time.Now().Before(deadline) {
			st, err := os.Stat(c.file)
			if err == nil && st.Size() == last {
				quiet++
			} else {
				quiet = 0
				if err == nil {
					last = st.Size()
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = syscall.Kill(c.cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-c.waitExit:
		case <-time.After(Timeout):
			_ = syscall.Kill(c.cmd.Process.Pid, syscall.SIGKILL)
			<-c.waitExit
		}
		// Let the stderr reader see the final statistics.
		_ = waitFor(func() bool { return strings.Contains(c.stderr.String(), "dropped by kernel") }, "tcpdump statistics")
		if m := droppedByKernel.FindStringSubmatch(c.stderr.String()); m != nil && m[1] != "0" {
			c.err = fmt.Errorf("tcpdump lost %s packets: %s", m[1], c.stderr.String())
		}
		pkts, err := readPcap(c.file)
		if err != nil && c.err == nil {
			c.err = err
		}
		c.pkts = pkts
		_ = os.Remove(c.file)
	})
	return c.pkts, c.err
}

// Buffer is a bytes.Buffer safe for concurrent use: give it to a process
// as its stdout/stderr and read it while the process runs.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// WriteLine appends s and a newline.
func (b *Buffer) WriteLine(s string) { _, _ = b.Write([]byte(s + "\n")) }

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Packet is one captured frame, decoded.
type Packet struct {
	Len       int              // length on the wire
	Src, Dst  net.HardwareAddr // Ethernet addresses
	VLANs     []uint16         // 802.1Q/802.1ad VIDs, outermost first
	EtherType uint16           // after the VLAN tags
	IPSrc     netip.Addr       // IPv4/IPv6 source; ARP sender address
	IPDst     netip.Addr       // IPv4/IPv6 destination; ARP target address
	Proto     uint8            // IP protocol / IPv6 next header
	SrcPort   uint16           // TCP/UDP/SCTP
	DstPort   uint16           // TCP/UDP/SCTP
	ICMPType  uint8            // ICMP or ICMPv6 type
	ARPOp     uint16           // ARP operation
	Data      []byte           // the captured bytes
}

// EtherTypes of interest.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeIPv6 = 0x86dd
)

// String summarises a packet on one line, for logs and diffs.
func (p Packet) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s>%s", p.Src, p.Dst)
	for _, v := range p.VLANs {
		fmt.Fprintf(&b, " vlan %d", v)
	}
	switch p.EtherType {
	case EtherTypeARP:
		fmt.Fprintf(&b, " arp op %d %s>%s", p.ARPOp, p.IPSrc, p.IPDst)
	case EtherTypeIPv4, EtherTypeIPv6:
		fmt.Fprintf(&b, " %s>%s proto %d", p.IPSrc, p.IPDst, p.Proto)
		switch p.Proto {
		case 1, 58:
			fmt.Fprintf(&b, " type %d", p.ICMPType)
		case 6, 17, 132:
			fmt.Fprintf(&b, " ports %d>%d", p.SrcPort, p.DstPort)
		}
	default:
		fmt.Fprintf(&b, " ethertype 0x%04x", p.EtherType)
	}
	fmt.Fprintf(&b, " len %d", p.Len)
	return b.String()
}

// Decode decodes an Ethernet frame.
func Decode(data []byte, wireLen int) Packet {
	p := Packet{Len: wireLen, Data: data}
	if len(data) < 14 {
		return p
	}
	p.Dst = net.HardwareAddr(append([]byte(nil), data[0:6]...))
	p.Src = net.HardwareAddr(append([]byte(nil), data[6:12]...))
	et := binary.BigEndian.Uint16(data[12:14])
	off := 14
	for (et == 0x8100 || et == 0x88a8) && len(data) >= off+4 {
		p.VLANs = append(p.VLANs, binary.BigEndian.Uint16(data[off:])&0x0fff)
		et = binary.BigEndian.Uint16(data[off+2:])
		off += 4
	}
	p.EtherType = et
	b := data[off:]
	var l4 []byte
	switch et {
	case EtherTypeIPv4:
		if len(b) < 20 {
			return p
		}
		p.IPSrc, _ = netip.AddrFromSlice(b[12:16])
		p.IPDst, _ = netip.AddrFromSlice(b[16:20])
		p.Proto = b[9]
		ihl := int(b[0]&0x0f) * 4
		if ihl >= 20 && len(b) >= ihl && binary.BigEndian.Uint16(b[6:8])&0x1fff == 0 {
			l4 = b[ihl:]
		}
	case EtherTypeIPv6:
		if len(b) < 40 {
			return p
		}
		p.IPSrc, _ = netip.AddrFromSlice(b[8:24])
		p.IPDst, _ = netip.AddrFromSlice(b[24:40])
		p.Proto = b[6]
		l4 = b[40:]
		// Skip hop-by-hop, routing and destination options headers.
		for (p.Proto == 0 || p.Proto == 43 || p.Proto == 60) && len(l4) >= 8 {
			p.Proto = l4[0]
			l4 = l4[(int(l4[1])+1)*8:]
		}
	case EtherTypeARP:
		if len(b) >= 28 {
			p.ARPOp = binary.BigEndian.Uint16(b[6:8])
			p.IPSrc, _ = netip.AddrFromSlice(b[14:18])
			p.IPDst, _ = netip.AddrFromSlice(b[24:28])
		}
		return p
	}
	switch p.Proto {
	case 6, 17, 132:
		if len(l4) >= 4 {
			p.SrcPort = binary.BigEndian.Uint16(l4[0:2])
			p.DstPort = binary.BigEndian.Uint16(l4[2:4])
		}
	case 1, 58:
		if len(l4) >= 1 {
			p.ICMPType = l4[0]
		}
	}
	return p
}

// readPcap reads a classic pcap file of Ethernet frames. A record cut
// short (tcpdump still writing) ends the list without error.
func readPcap(path string) ([]Packet, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) < 24 {
		return nil, nil // tcpdump has not written the header yet
	}
	var order binary.ByteOrder
	switch binary.LittleEndian.Uint32(data) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		order = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		order = binary.BigEndian
	default:
		return nil, fmt.Errorf("%s: not a pcap file", filepath.Base(path))
	}
	if lt := order.Uint32(data[20:24]); lt != 1 {
		return nil, fmt.Errorf("%s: link type %d, want Ethernet", filepath.Base(path), lt)
	}
	var pkts []Packet
	for off := 24; off+16 <= len(data); {
		incl := int(order.Uint32(data[off+8:]))
		orig := int(order.Uint32(data[off+12:]))
		if off+16+incl > len(data) {
			break
		}
		pkts = append(pkts, Decode(append([]byte(nil), data[off+16:off+16+incl]...), orig))
		off += 16 + incl
	}
	return pkts, nil
}

// Filter returns the packets for which keep returns true.
func Filter(pkts []Packet, keep func(Packet) bool) []Packet {
	var out []Packet
	for _, p := range pkts {
		if keep(p) {
			out = append(out, p)
		}
	}
	return out
}

// UDPTo keeps UDP packets to dstPort.
func UDPTo(dstPort uint16) func(Packet) bool {
	return func(p Packet) bool { return p.Proto == 17 && p.DstPort == dstPort }
}

// ICMPEcho keeps ICMP and ICMPv6 echo requests and replies.
func ICMPEcho(p Packet) bool {
	return (p.Proto == 1 && (p.ICMPType == 8 || p.ICMPType == 0)) ||
		(p.Proto == 58 && (p.ICMPType == 128 || p.ICMPType == 129))
}

// Summary lists packets one a line.
func Summary(pkts []Packet) string {
	var b strings.Builder
	for i, p := range pkts {
		b.WriteString(strconv.Itoa(i) + ": " + p.String() + "\n")
	}
	return b.String()
}
