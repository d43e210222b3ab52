package conformance

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/flowspan/flowspan/test/lab"
)

// Traffic helpers: everything a scenario sends goes through these, so both
// labs send the same thing.

// MAC of a host.
func (e *Env) MAC(host string) net.HardwareAddr { return e.H(host).MAC() }

// IP4 of a host.
func (e *Env) IP4(host string) netip.Addr { return e.H(host).IPv4() }

// IP6 of a host.
func (e *Env) IP6(host string) netip.Addr { return e.H(host).IPv6() }

// rawBatch frames are sent at once, then the sender pauses rawPause: a
// burst of hundreds of frames would overflow the captures' buffers.
const (
	rawBatch = 16
	rawPause = 2 * time.Millisecond
)

// Raw sends frames out of a host's eth0.
func (e *Env) Raw(host string, frames ...[]byte) {
	h := e.H(host)
	for len(frames) > 0 {
		n := min(rawBatch, len(frames))
		h.SendRaw(e.T, frames[:n]...)
		frames = frames[n:]
		if len(frames) > 0 {
			time.Sleep(rawPause) // pacing the generator, not waiting for a condition
		}
	}
}

// UDP sends count datagrams through the kernel from one host to another's
// IPv4 address (static neighbours: no ARP); the receiver listens.
func (e *Env) UDP(from, to string, sport, dport uint16, size, count int) {
	e.H(from).SendUDP(e.T, e.IP4(to), sport, dport, size, count)
}

// UDP6 is UDP over IPv6; neighbour discovery happens if the sender has no
// entry for the receiver (see Flush6).
func (e *Env) UDP6(from, to string, sport, dport uint16, size, count int) {
	e.H(from).SendUDP(e.T, e.IP6(to), sport, dport, size, count)
}

// Flush6 forgets the IPv6 neighbours of the hosts, so that the traffic
// that follows starts with neighbour discovery in every phase of both labs.
func (e *Env) Flush6(hosts ...string) {
	for _, h := range hosts {
		if _, err := e.H(h).Run(context.Background(), "ip", "-6", "neigh", "flush", "dev", "eth0"); err != nil {
			e.T.Fatalf("flush neighbours of %s: %v", h, err)
		}
	}
}

// RawUDP sends count raw UDP datagrams from a host to dstMAC and dst (any
// address: a foreign one is dropped silently by the receiving kernel).
func (e *Env) RawUDP(from string, vlan uint16, dstMAC net.HardwareAddr, dst netip.Addr, sport, dport uint16, size, count int) {
	src := e.IP4(from)
	if dst.Is6() {
		src = e.IP6(from)
		if !src.IsValid() {
			src = netip.MustParseAddr("fd00::ff")
		}
	}
	if !src.IsValid() {
		src = netip.MustParseAddr("10.0.0.254")
	}
	f := udpFrame(dstMAC, e.MAC(from), vlan, src, dst, sport, dport, size)
	frames := make([][]byte, count)
	for i := range frames {
		frames[i] = f
	}
	e.Raw(from, frames...)
}

// Listen makes a host accept TCP connections on port until the side ends
// (it completes handshakes, nothing more).
func (e *Env) Listen(host string, port uint16) {
	key := fmt.Sprintf("%s:%d", host, port)
	if e.listening[key] {
		return // from an earlier phase
	}
	if e.listening == nil {
		e.listening = map[string]bool{}
	}
	e.listening[key] = true
	h := e.H(host)
	var ln net.Listener
	err := h.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(h.IPv4(), port).String())
		return err
	})
	if err != nil {
		e.T.Fatalf("listen on %s:%d: %v", host, port, err)
	}
	e.T.Cleanup(func() { ln.Close() })
}

// stream sends n numbered UDP datagrams (sequence number in the payload)
// from one host to another, one every interval, in the background.
type stream struct {
	sent  atomic.Int64
	done  chan error
	dport uint16
}

const streamMagic = 0x46535452 // "FSTR"

func (e *Env) Stream(from, to string, dport uint16, n int, interval time.Duration) *stream {
	src, dst := e.H(from), e.H(to)
	var sink, conn *net.UDPConn
	if key := fmt.Sprintf("udp %s:%d", to, dport); !e.listening[key] {
		if e.listening == nil {
			e.listening = map[string]bool{}
		}
		e.listening[key] = true
		if err := dst.Do(func() error {
			var err error
			sink, err = net.ListenUDP("udp", &net.UDPAddr{Port: int(dport)})
			return err
		}); err != nil {
			e.T.Fatalf("stream sink on %s: %v", to, err)
		}
		go func() {
			buf := make([]byte, 2048)
			for {
				if _, _, err := sink.ReadFromUDP(buf); err != nil {
					return
				}
			}
		}()
		e.T.Cleanup(func() { sink.Close() })
	}
	if err := src.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp", &net.UDPAddr{Port: int(dport)})
		return err
	}); err != nil {
		e.T.Fatalf("stream source on %s: %v", from, err)
	}
	s := &stream{done: make(chan error, 1), dport: dport}
	to4 := net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst.IPv4(), dport))
	go func() {
		defer conn.Close()
		payload := make([]byte, 64)
		binary.BigEndian.PutUint32(payload, streamMagic)
		next := time.Now()
		for i := 0; i < n; i++ {
			binary.BigEndian.PutUint32(payload[4:], uint32(i))
			if _, err := conn.WriteToUDP(payload, to4); err != nil {
				s.done <- fmt.Errorf("stream datagram %d: %w", i, err)
				return
			}
			s.sent.Store(int64(i + 1))
			next = next.Add(interval)
			time.Sleep(time.Until(next)) // pacing the generator, not waiting for a condition
		}
		s.done <- nil
	}()
	return s
}

// WaitSent blocks until at least k datagrams have been sent.
func (s *stream) WaitSent(e *Env, k int) {
	lab.Eventually(e.T, lab.Timeout, func() error {
		if got := s.sent.Load(); got < int64(k) {
			return fmt.Errorf("stream sent %d of the %d awaited", got, k)
		}
		return nil
	})
}

// Wait blocks until the stream has been sent completely.
func (s *stream) Wait(e *Env) {
	if err := <-s.done; err != nil {
		e.T.Fatalf("%v", err)
	}
}

// streamSeqs returns how often each sequence number of a stream to dport
// appears in pkts.
func streamSeqs(pkts []lab.Packet, dport uint16) map[uint32]int {
	seen := map[uint32]int{}
	for _, p := range pkts {
		if p.Proto != 17 || p.DstPort != dport || p.EtherType != lab.EtherTypeIPv4 {
			continue
		}
		off := 14 + 4*len(p.VLANs) + 20 + 8
		if len(p.Data) < off+8 || binary.BigEndian.Uint32(p.Data[off:]) != streamMagic {
			continue
		}
		seen[binary.BigEndian.Uint32(p.Data[off+4:])]++
	}
	return seen
}
