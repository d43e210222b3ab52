package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// HostConfig describes a host: a network namespace joined to a bridge by a
// veth pair.
type HostConfig struct {
	// Port is the name of the bridge-side veth (the OVS port). Default: the
	// host's name.
	Port string
	// MAC of the host's eth0. Default: a random locally administered MAC.
	MAC string
	// IPv4 and IPv6 addresses with prefix length, e.g. "10.0.0.1/24",
	// "fd00::1/64". A host with no IPv6 address has IPv6 disabled.
	IPv4, IPv6 string
	// Tag makes the OVS port an access port of that VLAN.
	Tag int
	// Trunks makes the OVS port a trunk of these VLANs.
	Trunks []int
	// VLAN, when set, makes the host send and expect frames tagged with
	// this VLAN on its bridge port (usually with Trunks). The kernel here
	// has no 802.1Q devices, so the lab puts the host on an access port of
	// a private edge bridge whose trunk is the host's port on the bridge.
	VLAN int
	// MTU of both veth ends; default 1500.
	MTU int
}

// Host is a network namespace with one interface joined to a bridge.
type Host struct {
	lab    *Lab
	name   string
	netns  string
	port   string
	bridge string
	cfg    HostConfig
	// edge and capturePort are set for a host that sends tagged frames:
	// its edge bridge, and the edge bridge's end of the trunk veth.
	edge, capturePort string
	sinks             map[uint16]bool // UDP ports listened on; under lab.mu
	mac               net.HardwareAddr
	ip4               netip.Prefix
	ip6               netip.Prefix
}

// AddHost creates a host attached to bridge.
func (l *Lab) AddHost(t T, bridge, name string, cfg HostConfig) *Host {
	t.Helper()
	h, err := l.addHost(bridge, name, cfg)
	if err != nil {
		t.Fatalf("lab: host %q: %v", name, err)
	}
	return h
}

func (l *Lab) addHost(bridge, name string, cfg HostConfig) (*Host, error) {
	if cfg.Port == "" {
		cfg.Port = name
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	h := &Host{lab: l, name: name, netns: "fsh-" + l.id + "-" + name, port: cfg.Port, bridge: bridge, cfg: cfg}
	var err error
	if cfg.MAC == "" {
		mac := make(net.HardwareAddr, 6)
		for i := range mac {
			mac[i] = byte(rand.IntN(256))
		}
		mac[0] = mac[0]&0xfe | 0x02
		cfg.MAC = mac.String()
	}
	if h.mac, err = net.ParseMAC(cfg.MAC); err != nil {
		return nil, fmt.Errorf("mac: %w", err)
	}
	if cfg.IPv4 != "" {
		if h.ip4, err = netip.ParsePrefix(cfg.IPv4); err != nil || !h.ip4.Addr().Is4() {
			return nil, fmt.Errorf("ipv4 %q: not an IPv4 prefix", cfg.IPv4)
		}
	}
	if cfg.IPv6 != "" {
		if h.ip6, err = netip.ParsePrefix(cfg.IPv6); err != nil || !h.ip6.Addr().Is6() {
			return nil, fmt.Errorf("ipv6 %q: not an IPv6 prefix", cfg.IPv6)
		}
	}
	l.mu.Lock()
	if _, dup := l.hosts[cfg.Port]; dup {
		l.mu.Unlock()
		return nil, fmt.Errorf("port %q already used", cfg.Port)
	}
	l.hosts[cfg.Port] = h
	l.mu.Unlock()

	if _, err := run(context.Background(), nil, "ip", "netns", "add", h.netns); err != nil {
		return nil, err
	}
	// Settings for interfaces created from now on in the host namespace:
	// no DAD delay, no router solicitations; no IPv6 at all without an
	// IPv6 address, so the host sends only what the test asks for.
	sysctls := []string{"net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.default.router_solicitations=0",
		"net.ipv6.conf.default.dad_transmits=0"}
	if cfg.IPv6 == "" {
		sysctls = []string{"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"}
	}
	for _, s := range sysctls {
		if _, err := h.run("sysctl", "-qw", s); err != nil {
			return nil, err
		}
	}
	mtu := strconv.Itoa(cfg.MTU)
	// The bridge-side end is cfg.Port on bridge, except for a host that
	// sends tagged frames: the kernel here has no 802.1Q devices, so such
	// a host sits on an access port of an edge bridge whose trunk (a veth
	// pair: cfg.Port on bridge, "x"+cfg.Port on the edge bridge) carries
	// its frames tagged to bridge.
	hostPeer := cfg.Port
	if cfg.VLAN > 0 {
		hostPeer = "e" + cfg.Port
		h.edge = "eb" + cfg.Port
		h.capturePort = "x" + cfg.Port
	}
	steps := [][]string{
		{"ip", "link", "add", "name", hostPeer, "mtu", mtu, "netns", l.netns, "type", "veth", "peer", "name", "eth0", "mtu", mtu, "netns", h.netns},
		{"ip", "netns", "exec", l.netns, "ethtool", "-K", hostPeer, "tx", "off"},
		{"ip", "netns", "exec", l.netns, "ip", "link", "set", "dev", hostPeer, "up"},
		{"ip", "netns", "exec", h.netns, "ip", "link", "set", "lo", "up"},
		{"ip", "netns", "exec", h.netns, "ip", "link", "set", "dev", "eth0", "address", cfg.MAC},
		{"ip", "netns", "exec", h.netns, "ethtool", "-K", "eth0", "tx", "off"},
		{"ip", "netns", "exec", h.netns, "ip", "link", "set", "dev", "eth0", "up"},
	}
	if cfg.VLAN > 0 {
		steps = append(steps,
			[]string{"ip", "link", "add", "name", cfg.Port, "mtu", mtu, "netns", l.netns, "type", "veth", "peer", "name", h.capturePort, "mtu", mtu, "netns", l.netns},
			[]string{"ip", "netns", "exec", l.netns, "ethtool", "-K", cfg.Port, "tx", "off"},
			[]string{"ip", "netns", "exec", l.netns, "ethtool", "-K", h.capturePort, "tx", "off"},
			[]string{"ip", "netns", "exec", l.netns, "ip", "link", "set", "dev", cfg.Port, "up"},
			[]string{"ip", "netns", "exec", l.netns, "ip", "link", "set", "dev", h.capturePort, "up"})
	}
	dev := "eth0"
	if cfg.IPv4 != "" {
		steps = append(steps, []string{"ip", "netns", "exec", h.netns, "ip", "addr", "add", cfg.IPv4, "dev", dev})
	}
	if cfg.IPv6 != "" {
		steps = append(steps, []string{"ip", "netns", "exec", h.netns, "ip", "-6", "addr", "add", cfg.IPv6, "dev", dev, "nodad"})
	}
	for _, s := range steps {
		if _, err := run(context.Background(), nil, s[0], s[1:]...); err != nil {
			return nil, err
		}
	}
	args := []string{"add-port", bridge, cfg.Port}
	if cfg.Tag > 0 {
		args = append(args, fmt.Sprintf("tag=%d", cfg.Tag))
	}
	if len(cfg.Trunks) > 0 {
		var ts []string
		for _, v := range cfg.Trunks {
			ts = append(ts, strconv.Itoa(v))
		}
		args = append(args, "trunks="+strings.Join(ts, ","))
	}
	if cfg.VLAN > 0 {
		args = append(args, "--", "add-br", h.edge, "--", "set", "Bridge", h.edge, "datapath_type=netdev",
			"--", "add-port", h.edge, hostPeer, fmt.Sprintf("tag=%d", cfg.VLAN),
			"--", "add-port", h.edge, h.capturePort, fmt.Sprintf("trunks=%d", cfg.VLAN))
	}
	if _, err := l.Vsctl(args...); err != nil {
		return nil, err
	}
	return h, nil
}

// Host returns the host behind a bridge port, or nil.
func (l *Lab) Host(port string) *Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hosts[port]
}

func (l *Lab) hostByAddr(a netip.Addr) *Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.hosts {
		if h.IPv4() == a || h.IPv6() == a {
			return h
		}
	}
	return nil
}

// Name is the host's name.
func (h *Host) Name() string { return h.name }

// Port is the name of the host's OVS port.
func (h *Host) Port() string { return h.port }

// Bridge is the bridge the host is attached to.
func (h *Host) Bridge() string { return h.bridge }

// Netns is the host's network namespace.
func (h *Host) Netns() string { return h.netns }

// MAC is the host's MAC address.
func (h *Host) MAC() net.HardwareAddr { return h.mac }

// IPv4 is the host's IPv4 address (invalid if it has none).
func (h *Host) IPv4() netip.Addr { return h.ip4.Addr() }

// IPv6 is the host's IPv6 address (invalid if it has none).
func (h *Host) IPv6() netip.Addr { return h.ip6.Addr() }

// Device is the interface carrying the host's addresses.
func (h *Host) Device() string { return "eth0" }

func (h *Host) run(name string, args ...string) (string, error) {
	a := append([]string{"netns", "exec", h.netns, name}, args...)
	return run(context.Background(), nil, "ip", a...)
}

// Run runs a command inside the host's namespace and returns its stdout.
func (h *Host) Run(ctx context.Context, name string, args ...string) (string, error) {
	a := append([]string{"netns", "exec", h.netns, name}, args...)
	return run(ctx, nil, "ip", a...)
}

// Do runs fn on an OS thread switched into the host's network namespace.
// Sockets fn creates belong to the host namespace and stay usable after
// Do returns.
func (h *Host) Do(fn func() error) error { return InNetns(h.netns, fn) }

// InNetns runs fn on an OS thread switched into the named network
// namespace (/run/netns/NAME). Sockets fn creates stay in that namespace.
func InNetns(netns string, fn func() error) error {
	target, err := os.Open("/run/netns/" + netns)
	if err != nil {
		return fmt.Errorf("netns %s: %w", netns, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is left locked (and so discarded when this goroutine
		// ends) unless it is switched back to its own namespace.
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer self.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", netns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns back: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

var pingReceived = regexp.MustCompile(`(\d+) received`)

// Ping sends count echo requests 10 ms apart and returns how many replies
// came back.
func (h *Host) Ping(t T, dst netip.Addr, count int) int {
	t.Helper()
	n, err := h.ping(dst, count, 10*time.Millisecond)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	return n
}

func (h *Host) ping(dst netip.Addr, count int, interval time.Duration) (int, error) {
	// No -w deadline: with one, ping keeps sending probes past count
	// until count replies came back, so a slow first reply (an upcall on a
	// loaded machine) turns "-c 1" into several probes and replies. -W
	// bounds the wait for the replies to the count probes sent.
	args := []string{"-n", "-q", "-c", strconv.Itoa(count), "-i", fmt.Sprintf("%.3f", interval.Seconds()), "-W", "2"}
	if dst.Is6() {
		args = append(args, "-6")
	}
	args = append(args, dst.String())
	out, err := h.run("ping", args...)
	m := pingReceived.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("ping %s from %s: %v: %s", dst, h.name, err, out)
	}
	n, err := strconv.Atoi(m[1])
	if err == nil && n > count {
		err = fmt.Errorf("ping %s from %s: %d replies to %d probes: %s", dst, h.name, n, count, out)
	}
	return n, err
}

// Neighbor adds a permanent ARP/NDP entry so that traffic to ip needs no
// resolution first.
func (h *Host) Neighbor(t T, ip netip.Addr, mac net.HardwareAddr) {
	t.Helper()
	if _, err := h.run("ip", "neigh", "replace", ip.String(), "lladdr", mac.String(), "dev", h.Device(), "nud", "permanent"); err != nil {
		t.Fatalf("lab: %v", err)
	}
}

// SendUDP sends count UDP datagrams of payloadLen bytes from srcPort to
// dst:dstPort.
func (h *Host) SendUDP(t T, dst netip.Addr, srcPort, dstPort uint16, payloadLen, count int) {
	t.Helper()
	if err := h.sendUDP(dst, srcPort, dstPort, payloadLen, count); err != nil {
		t.Fatalf("lab: host %s: %v", h.name, err)
	}
}

func (h *Host) sendUDP(dst netip.Addr, srcPort, dstPort uint16, payloadLen, count int) error {
	// A lab host that is the destination listens on dstPort, so it sends
	// no ICMP port-unreachable errors that would disturb counts.
	if d := h.lab.hostByAddr(dst); d != nil {
		if err := d.udpSink(dstPort); err != nil {
			return err
		}
	}
	var conn *net.UDPConn
	err := h.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp", &net.UDPAddr{Port: int(srcPort)})
		return err
	})
	if err != nil {
		return fmt.Errorf("udp from port %d: %w", srcPort, err)
	}
	defer conn.Close()
	payload := bytes.Repeat([]byte{0xa5}, payloadLen)
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, dstPort))
	for i := 0; i < count; i++ {
		if _, err := conn.WriteToUDP(payload, to); err != nil {
			return fmt.Errorf("udp to %s:%d: %w", dst, dstPort, err)
		}
	}
	return nil
}

// udpSink makes the host listen on a UDP port, discarding what arrives,
// until the lab is cleaned up.
func (h *Host) udpSink(port uint16) error {
	h.lab.mu.Lock()
	if h.sinks == nil {
		h.sinks = map[uint16]bool{}
	}
	if h.sinks[port] {
		h.lab.mu.Unlock()
		return nil
	}
	h.sinks[port] = true
	h.lab.mu.Unlock()
	var conn *net.UDPConn
	if err := h.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp", &net.UDPAddr{Port: int(port)})
		return err
	}); err != nil {
		return fmt.Errorf("udp sink on %s port %d: %w", h.name, port, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			if _, _, err := conn.ReadFromUDP(buf); err != nil {
				return
			}
		}
	}()
	h.lab.onCleanup(func() { conn.Close(); <-done })
	return nil
}

// SendRaw sends Ethernet frames as they are out of the host's eth0 (an
// AF_PACKET socket): tagged frames, odd EtherTypes, anything.
func (h *Host) SendRaw(t T, frames ...[]byte) {
	t.Helper()
	err := h.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		for _, f := range frames {
			if err := unix.Sendto(fd, f, 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("lab: host %s: raw send: %v", h.name, err)
	}
}

// SendTCP transfers nbytes of pseudo-random data over one TCP connection
// from h to dst's IPv4 address (IPv6 if h has no IPv4) on dstPort, and
// fails the test unless dst receives exactly those bytes.
func (h *Host) SendTCP(t T, dst *Host, dstPort uint16, nbytes int) {
	t.Helper()
	if err := h.sendTCP(dst, dstPort, nbytes); err != nil {
		t.Fatalf("lab: tcp %s -> %s: %v", h.name, dst.name, err)
	}
}

func (h *Host) sendTCP(dst *Host, dstPort uint16, nbytes int) error {
	addr := dst.IPv4()
	if !addr.IsValid() {
		addr = dst.IPv6()
	}
	ap := netip.AddrPortFrom(addr, dstPort)
	var ln net.Listener
	if err := dst.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", ap.String())
		return err
	}); err != nil {
		return err
	}
	defer ln.Close()
	type result struct {
		n   int64
		sum [32]byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(Timeout))
		hash := sha256.New()
		n, err := io.Copy(hash, c)
		var r result
		r.n, r.err = n, err
		copy(r.sum[:], hash.Sum(nil))
		got <- r
	}()
	var conn net.Conn
	if err := h.Do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", ap.String(), Timeout)
		return err
	}); err != nil {
		return err
	}
	data := make([]byte, nbytes)
	rng := rand.NewChaCha8([32]byte{byte(nbytes), byte(dstPort)})
	_, _ = rng.Read(data)
	_ = conn.SetDeadline(time.Now().Add(Timeout))
	_, werr := conn.Write(data)
	cerr := conn.Close()
	if werr != nil || cerr != nil {
		return fmt.Errorf("send: %v %v", werr, cerr)
	}
	r := <-got
	if r.err != nil {
		return fmt.Errorf("receive: %w", r.err)
	}
	if r.n != int64(nbytes) || r.sum != sha256.Sum256(data) {
		return fmt.Errorf("received %d bytes (checksum match %v), sent %d", r.n, r.sum == sha256.Sum256(data), nbytes)
	}
	return nil
}
