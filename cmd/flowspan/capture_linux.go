package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// packetSocket reads every frame the kernel receives on one interface
// (AF_PACKET, SOCK_RAW). A tap's output port is an OVS internal port: with
// the userspace datapath it is a kernel tap device in ovs-vswitchd's network
// namespace, and what OVS outputs to it arrives as frames received by that
// device. The socket is opened inside that namespace and keeps reading from
// it afterwards, whatever namespace the reading thread is in.
type packetSocket struct {
	fd int
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// findInterfaceNetns returns the path of the network namespace that holds
// interface name: "" for our own namespace, else /proc/PID/ns/net of an
// ovs-vswitchd process whose namespace has it. A user's OVS usually runs in
// the host namespace (found directly); a lab or container OVS runs in its own.
func findInterfaceNetns(name string) (string, error) {
	if hasInterface("/proc/self/net/dev", name) {
		return "", nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return "", fmt.Errorf("interface %q: list processes: %w", name, err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "ovs-vswitchd" {
			continue
		}
		if hasInterface(filepath.Join("/proc", e.Name(), "net/dev"), name) {
			return fmt.Sprintf("/proc/%d/ns/net", pid), nil
		}
	}
	return "", fmt.Errorf("interface %q: not found in this network namespace or in any ovs-vswitchd's", name)
}

// hasInterface reports whether a /proc/.../net/dev file lists name.
func hasInterface(devFile, name string) bool {
	f, err := os.Open(devFile)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ifname, _, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(ifname) == name {
			return true
		}
	}
	return false
}

// waitInterfaceNetns polls findInterfaceNetns until the interface appears.
func waitInterfaceNetns(ctx context.Context, name string) (string, error) {
	for {
		ns, err := findInterfaceNetns(name)
		if err == nil {
			return ns, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w (waited: %v)", err, context.Cause(ctx))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// openPacketSocket opens a capture socket on ifname inside the network
// namespace nsPath ("" = ours) and brings the interface up.
func openPacketSocket(nsPath, ifname string) (*packetSocket, error) {
	if nsPath == "" {
		return openPacketSocketHere(ifname)
	}
	type result struct {
		s   *packetSocket
		err error
	}
	ch := make(chan result, 1)
	// A dedicated, locked thread enters the namespace. If it cannot get
	// back, it stays locked and exits with the goroutine, so no other
	// goroutine ever runs in the wrong namespace.
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open own network namespace: %w", err)}
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open network namespace %s: %w", nsPath, err)}
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("enter network namespace %s: %w", nsPath, err)}
			return
		}
		s, err := openPacketSocketHere(ifname)
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it is discarded when we return.
			if s != nil {
				s.Close()
			}
			ch <- result{err: fmt.Errorf("return from network namespace %s: %w", nsPath, err)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{s: s, err: err}
	}()
	r := <-ch
	return r.s, r.err
}

func openPacketSocketHere(ifname string) (*packetSocket, error) {
	ifr, err := unix.NewIfreq(ifname)
	if err != nil {
		return nil, fmt.Errorf("interface %q: %w", ifname, err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, fmt.Errorf("interface %q: open packet socket: %w", ifname, err)
	}
	fail := func(what string, err error) (*packetSocket, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("interface %q: %s: %w", ifname, what, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return fail("get index", err)
	}
	index := int(ifr.Uint32())
	// Bring the device up: a tap device only accepts frames from OVS when up.
	flags, err := unix.NewIfreq(ifname)
	if err != nil {
		return fail("flags", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, flags); err != nil {
		return fail("get flags", err)
	}
	if flags.Uint16()&unix.IFF_UP == 0 {
		flags.SetUint16(flags.Uint16() | unix.IFF_UP)
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, flags); err != nil {
			return fail("set up", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return fail("enable auxdata", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20); err != nil {
		return fail("set receive buffer", err)
	}
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail("set receive timeout", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: index}); err != nil {
		return fail("bind", err)
	}
	return &packetSocket{fd: fd}, nil
}

// Close closes the socket.
func (s *packetSocket) Close() error { return unix.Close(s.fd) }

// Run reads frames until ctx ends and hands each received one (frames the
// kernel itself sends out of the device are skipped) to fn, with the VLAN
// tag the kernel moved out of the frame put back in place. When ctx ends it
// still delivers the frames already queued on the socket. idle, if not nil,
// is called when no frame arrived for a short while.
func (s *packetSocket) Run(ctx context.Context, fn func(ts time.Time, frame []byte, origLen int) error, idle func() error) error {
	buf := make([]byte, 256<<10)
	oob := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.TpacketAuxdata{}))))
	draining := false
	for {
		flags := unix.MSG_TRUNC
		if !draining && ctx.Err() != nil {
			draining = true
		}
		if draining {
			flags |= unix.MSG_DONTWAIT
		}
		n, oobn, _, from, err := unix.Recvmsg(s.fd, buf[4:], oob, flags)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.EAGAIN) {
				if draining {
					return nil
				}
				if idle != nil {
					if err := idle(); err != nil {
						return err
					}
				}
				continue
			}
			return fmt.Errorf("read packet: %w", err)
		}
		ts := time.Now()
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		origLen := n // with MSG_TRUNC, n is the frame's full length
		n = min(n, len(buf)-4)
		frame := buf[4 : 4+n]
		if tci, tpid, ok := vlanFromAux(oob[:oobn]); ok && n >= 12 {
			// Re-insert the 802.1Q header after the two MAC addresses.
			copy(buf[0:12], buf[4:16])
			binary.BigEndian.PutUint16(buf[12:], tpid)
			binary.BigEndian.PutUint16(buf[14:], tci)
			frame = buf[:n+4]
			origLen += 4
		}
		if err := fn(ts, frame, origLen); err != nil {
			return err
		}
	}
}

func vlanFromAux(oob []byte) (tci, tpid uint16, ok bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, 0, false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA {
			continue
		}
		if len(m.Data) < int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
			continue
		}
		aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
		if aux.Status&unix.TP_STATUS_VLAN_VALID == 0 && aux.Vlan_tci == 0 {
			return 0, 0, false
		}
		tpid = 0x8100
		if aux.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 && aux.Vlan_tpid != 0 {
			tpid = aux.Vlan_tpid
		}
		return aux.Vlan_tci, tpid, true
	}
	return 0, 0, false
}
