package ovsdb

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// setLinkUp sets IFF_UP on the network device name in the network
// namespace netns ("" = this process's namespace; a bare name means
// /run/netns/NAME). With the userspace datapath an internal port is a tap
// device that ovs-vswitchd creates down in its own namespace; packets
// output to it are dropped until it is up.
func setLinkUp(netns, name string) error {
	fd, err := inetSocket(netns)
	if err != nil {
		return fmt.Errorf("link %q: %w", name, err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("link %q: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("link %q: get flags: %w", name, err)
	}
	flags := ifr.Uint16()
	if flags&unix.IFF_UP != 0 {
		return nil
	}
	ifr.SetUint16(flags | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("link %q: set up: %w", name, err)
	}
	return nil
}

// inetSocket opens an AF_INET datagram socket in the given namespace; the
// socket stays bound to that namespace for its ioctls. The namespace switch
// happens on a locked OS thread of a throwaway goroutine; if switching back
// fails, the thread is left locked so the runtime discards it.
func inetSocket(netns string) (int, error) {
	if netns == "" {
		return unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	}
	path := netns
	if filepath.Base(path) == path {
		path = filepath.Join("/run/netns", netns)
	}
	type result struct {
		fd  int
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{-1, fmt.Errorf("current netns: %w", err)}
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{-1, fmt.Errorf("netns %q: %w", netns, err)}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			res <- result{-1, fmt.Errorf("enter netns %q: %w", netns, err)}
			return
		}
		fd, serr := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Thread stays in the wrong namespace: keep it locked so it
			// dies with this goroutine.
			if serr == nil {
				unix.Close(fd)
			}
			res <- result{-1, fmt.Errorf("leave netns %q: %w", netns, err)}
			return
		}
		runtime.UnlockOSThread()
		if serr != nil {
			res <- result{-1, fmt.Errorf("socket in netns %q: %w", netns, serr)}
			return
		}
		res <- result{fd, nil}
	}()
	r := <-res
	return r.fd, r.err
}
