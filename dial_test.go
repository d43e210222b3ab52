package flowspan

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestWaitSocket: waitSocket returns once the socket of a unix: target
// accepts connections (not when it is only bound), and at its bound, when ctx ends, or at once for other targets.
func TestWaitSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "fssock") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "br0.flowspan")
	var listening atomic.Bool
	var ln net.Listener
	var lerr error
	bound := make(chan struct{})
	time.AfterFunc(30*time.Millisecond, func() {
		defer close(bound)
		// Bound but not yet listening: connections are refused.
		fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		if err != nil {
			lerr = err
			return
		}
		if lerr = syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); lerr != nil {
			return
		}
		time.Sleep(30 * time.Millisecond)
		listening.Store(true)
		if lerr = syscall.Listen(fd, 8); lerr != nil {
			return
		}
		f := os.NewFile(uintptr(fd), path)
		ln, lerr = net.FileListener(f)
		f.Close()
	})
	waitSocket(context.Background(), "unix:"+path, time.Minute)
	if !listening.Load() {
		t.Fatal("returned before the socket listened")
	}
	<-bound
	if lerr != nil {
		t.Fatal(lerr)
	}
	ln.Close()

	waitSocket(context.Background(), "unix:"+filepath.Join(t.TempDir(), "never"), 20*time.Millisecond) // bound
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	waitSocket(ctx, "unix:"+filepath.Join(t.TempDir(), "never"), time.Hour) // ctx done
	waitSocket(context.Background(), "tcp:127.0.0.1:6653", time.Hour)       // not a file
}
