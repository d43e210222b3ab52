//go:build !linux

package api

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
)

// dialUnix connects to the unix stream socket at path (client_linux.go
// avoids package net on Linux; elsewhere start-up time matters less).
func dialUnix(ctx context.Context, path string) (io.ReadWriteCloser, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", path)
}

// isDialError reports whether err means the daemon's socket could not be
// reached (missing, refusing, not accessible).
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}
