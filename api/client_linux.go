package api

import (
	"context"
	"errors"
	"io"
	"os"
	"syscall"
)

// dialUnix connects to the unix stream socket at path. It uses the socket
// system calls directly and wraps the descriptor in an *os.File, which the
// runtime's poller serves like a net.Conn (a Close unblocks a pending Read),
// so that the client does not import package net (see client.go).
func dialUnix(ctx context.Context, path string) (io.ReadWriteCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, &dialError{path: path, err: os.NewSyscallError("socket", err)}
	}
	// A unix socket connects at once or fails (EAGAIN when the listener's
	// backlog is full), as with net.Dialer; only a signal interrupts it.
	for {
		err = syscall.Connect(fd, &syscall.SockaddrUnix{Name: path})
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		syscall.Close(fd)
		return nil, &dialError{path: path, err: os.NewSyscallError("connect", err)}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// dialError is a failed dial, worded as net.Dialer words it:
// "dial unix /run/flowspan/api.sock: connect: no such file or directory".
type dialError struct {
	path string
	err  error
}

func (e *dialError) Error() string { return "dial unix " + e.path + ": " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// isDialError reports whether err means the daemon's socket could not be
// reached (missing, refusing, not accessible).
func isDialError(err error) bool {
	var de *dialError
	if errors.As(err, &de) {
		return true
	}
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}
