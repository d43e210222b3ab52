package ofctrl

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Listen accepts switches with an active controller target on
// unix:PATH (socket created mode 0600; a stale socket file is replaced,
// a live one or a non-socket file is an error), tcp:[IP:]PORT (loopback
// unless an IP is named) or ssl:[IP:]PORT (tlsConf, or Config.TLS, must
// have a certificate and ClientCAs; client certificates are required).
// It returns the bound address (useful with port 0) and accepts in the
// background, any number of switches at once, until ctx ends or Close.
func (c *Controller) Listen(ctx context.Context, s string, tlsConf *tls.Config) (net.Addr, error) {
	t, err := parseTarget(s, true)
	if err != nil {
		return nil, err
	}
	var ln net.Listener
	var cleanup func()
	switch t.scheme {
	case "unix":
		ln, cleanup, err = listenUnix(t.addr)
	case "tcp":
		ln, err = net.Listen("tcp", t.addr)
	case "ssl":
		if tlsConf == nil {
			tlsConf = c.cfg.TLS
		}
		if tlsConf == nil || (len(tlsConf.Certificates) == 0 && tlsConf.GetCertificate == nil) {
			return nil, fmt.Errorf("listen %q: ssl needs a tls.Config with a certificate", s)
		}
		if tlsConf.ClientCAs == nil {
			return nil, fmt.Errorf("listen %q: ssl needs ClientCAs to verify switch certificates", s)
		}
		conf := tlsConf.Clone()
		conf.ClientAuth = tls.RequireAndVerifyClientCert
		var inner net.Listener
		inner, err = net.Listen("tcp", t.addr)
		if err == nil {
			ln = tls.NewListener(inner, conf)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("listen %q: %w", s, err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = ln.Close()
		if cleanup != nil {
			cleanup()
		}
		return nil, ErrClosed
	}
	c.wg.Add(1)
	c.mu.Unlock()
	lctx, cancel := context.WithCancel(c.ctx)
	stop := context.AfterFunc(ctx, cancel)
	go func() {
		defer c.wg.Done()
		defer stop()
		defer cancel()
		c.acceptLoop(lctx, ln, t)
		if cleanup != nil {
			cleanup()
		}
	}()
	return ln.Addr(), nil
}

func (c *Controller) acceptLoop(ctx context.Context, ln net.Listener, t target) {
	log := c.log.WithField("listen", t.String())
	stopClose := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stopClose()
	defer ln.Close()
	backoff := 5 * time.Millisecond
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			log.WithError(err).Warn("accept failed")
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			if backoff < time.Second {
				backoff *= 2
			}
			continue
		}
		backoff = 5 * time.Millisecond
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if tc, ok := nc.(*tls.Conn); ok {
				hctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
				err := tc.HandshakeContext(hctx)
				cancel()
				if err != nil {
					log.WithError(err).WithField("remote", nc.RemoteAddr().String()).Warn("TLS handshake failed")
					c.stats.handshakeFail.Add(1)
					_ = nc.Close()
					return
				}
			}
			remote := nc.RemoteAddr().String()
			if t.scheme == "unix" || remote == "" || remote == "@" {
				remote = t.String()
			}
			c.serve(ctx, nc, remote)
		}()
	}
}

// listenUnix binds a unix socket at path with mode 0600 without a window
// where it is reachable with wider permissions: it binds inside a fresh
// 0700 directory next to path, chmods, then renames into place. An
// existing socket at path is replaced only if nothing answers on it.
func listenUnix(path string) (net.Listener, func(), error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, nil, fmt.Errorf("%s exists and is not a socket; refusing to replace it", path)
		}
		if nc, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = nc.Close()
			return nil, nil, fmt.Errorf("%s: another process is listening on it", path)
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, nil, fmt.Errorf("%s: probing existing socket: %w", path, err)
		}
		// Stale: replaced by the rename below.
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".ofctrl-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, nil, err
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		_ = ln.Close()
		return nil, nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = ln.Close()
		return nil, nil, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		_ = ln.Close()
		return nil, nil, err
	}
	cleanup := func() {
		// Remove the socket only if it is still ours.
		if cur, err := os.Lstat(path); err == nil && os.SameFile(fi, cur) {
			_ = os.Remove(path)
		}
	}
	return &unixListener{UnixListener: ln, path: path}, cleanup, nil
}

// unixListener reports the final path as its address.
type unixListener struct {
	*net.UnixListener
	path string
}

func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }
