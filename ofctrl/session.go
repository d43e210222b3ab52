package ofctrl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
)

// errSessionClosed is the cause of a session's connection closing by its
// close function.
var errSessionClosed = errors.New("session closed")

// DialSession connects to target, a switch's passive listener (such as
// Open vSwitch's <bridge>.mgmt socket), for a private OpenFlow 1.3 session:
// the returned Switch uses that one connection only. The connection is not
// the switch's current connection: Controller.Switch and the Connected and
// Disconnected events ignore it, and a reconnect does not replace it. It
// ends when closeFn is called (which waits for its goroutines), when ctx
// ends or when the Controller is closed; requests then fail with
// ErrNotConnected.
func (c *Controller) DialSession(ctx context.Context, targetStr string) (sw *Switch, closeFn func(), err error) {
	t, err := parseTarget(targetStr, false)
	if err != nil {
		return nil, nil, err
	}
	if t.scheme == "ssl" && c.cfg.TLS == nil {
		return nil, nil, fmt.Errorf("target %q: ssl needs Config.TLS", targetStr)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, nil, ErrClosed
	}
	c.wg.Add(1)
	c.mu.Unlock()
	nc, err := c.dialOnce(ctx, t)
	if err != nil {
		c.wg.Done()
		return nil, nil, fmt.Errorf("session with %s: %w", t, err)
	}
	setWriteBuffer(nc)
	br := bufio.NewReaderSize(nc, 64*1024)
	stopHS := context.AfterFunc(ctx, func() { _ = nc.Close() })
	dpid, err := c.handshakeOpt(nc, br, true)
	if !stopHS() || err != nil {
		_ = nc.Close()
		c.wg.Done()
		if err == nil {
			err = ctx.Err()
		}
		return nil, nil, fmt.Errorf("session with %s: %w", t, err)
	}
	cn := newConn(c, nc, br, dpid, t.String()+" (session)")
	cn.start()
	ended := make(chan struct{})
	go func() {
		defer c.wg.Done()
		defer close(ended)
		select {
		case <-cn.done:
		case <-ctx.Done():
			cn.close(ctx.Err())
		case <-c.ctx.Done():
			cn.close(ErrClosed)
		}
		cn.wg.Wait()
	}()
	cn.log.Debug("session opened")
	return &Switch{ctrl: c, dpid: dpid, pinned: cn}, func() {
		cn.close(errSessionClosed)
		<-ended
	}, nil
}
