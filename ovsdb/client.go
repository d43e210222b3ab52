package ovsdb

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ovn-org/libovsdb/cache"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	"github.com/sirupsen/logrus"

	"github.com/flowspan/flowspan/ovsdb/vswitchd"
)

// Config configures a Client. The zero value is usable: every field has a
// documented default.
type Config struct {
	// Logger receives this package's and libovsdb's log output, with
	// fields. Default: discard.
	Logger logrus.FieldLogger
	// TLS is required for ssl: endpoints and ignored otherwise.
	TLS *tls.Config
	// RunDir is Open vSwitch's run directory (OVS_RUNDIR), where
	// ovs-vswitchd creates punix: controller sockets. Default: the
	// directory of a unix: endpoint's socket. Service-mode TakeOver with
	// a default target fails when it is unknown (tcp:/ssl: endpoints).
	RunDir string
	// ConnectTimeout bounds one connection attempt (connect, schema,
	// initial monitor). Default 5s.
	ConnectTimeout time.Duration
	// MinBackoff and MaxBackoff bound the delay between reconnection
	// attempts; the delay doubles (with jitter) from Min to Max and the
	// client never gives up. Defaults 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// ProbeInterval is how often an idle connection is checked with an
	// OVSDB echo; a failed echo forces a reconnect. Default 5s; negative
	// disables probing.
	ProbeInterval time.Duration
	// IsolationVLAN is the access tag IsolatePort gives an output port so
	// that NORMAL never floods or forwards to it. It must be a VLAN no
	// host uses. Default 4095 (802.1Q reserved).
	IsolationVLAN uint16
	// Netns names the network namespace in which ovs-vswitchd creates
	// internal ports (a name under /run/netns or a path). Default: this
	// process's namespace. Used to bring internal ports up.
	Netns string
	// SkipLinkUp disables bringing flowspan's internal ports up (set it
	// when ovs-vswitchd runs on another host).
	SkipLinkUp bool
	// OFPortTimeout bounds WaitOFPort (and port creation, which waits for
	// the ofport) when the context has no earlier deadline. Default 10s.
	OFPortTimeout time.Duration
	// ApplyTimeout bounds how long IsolatePort waits for ovs-vswitchd to
	// apply the change (like ovs-vsctl --wait=vswitchd). Default 10s.
	ApplyTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		c.Logger = l
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = 5 * time.Second
	}
	if c.IsolationVLAN == 0 {
		c.IsolationVLAN = 4095
	}
	if c.ApplyTimeout <= 0 {
		c.ApplyTimeout = 10 * time.Second
	}
	if c.OFPortTimeout <= 0 {
		c.OFPortTimeout = 10 * time.Second
	}
	return c
}

// Client is a connection to one OVSDB server's Open_vSwitch database. It
// reconnects forever until Close. All methods are safe for concurrent use.
type Client struct {
	cfg      Config
	log      logrus.FieldLogger
	endpoint string
	rundir   string
	ovs      client.Client

	closed    chan struct{}
	closeOnce sync.Once
	bgCtx     context.Context
	bgCancel  context.CancelFunc
	wg        sync.WaitGroup

	// disc receives libovsdb's disconnect notifications (see forwardDisconnects).
	disc chan struct{}
	// kick asks the watch engine to re-read the cache.
	kick chan struct{}

	mu      sync.Mutex
	up      chan struct{} // closed while connected
	lastErr error

	w watchState
}

// clientModel lists the only tables this package reads or writes.
func clientModel() (model.ClientDBModel, error) {
	return model.NewClientDBModel("Open_vSwitch", map[string]model.Model{
		vswitchd.BridgeTable:      &vswitchd.Bridge{},
		vswitchd.PortTable:        &vswitchd.Port{},
		vswitchd.InterfaceTable:   &vswitchd.Interface{},
		vswitchd.ControllerTable:  &vswitchd.Controller{},
		vswitchd.OpenvSwitchTable: &vswitchd.OpenvSwitch{},
	})
}

// parseEndpoint validates an OVSDB active connection method: unix:PATH,
// tcp:HOST:PORT or ssl:HOST:PORT.
func parseEndpoint(ep string) (scheme, addr string, err error) {
	scheme, addr, ok := strings.Cut(ep, ":")
	if !ok || addr == "" {
		return "", "", fmt.Errorf("ovsdb endpoint %q: want unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT: %w", ep, ErrInvalid)
	}
	switch scheme {
	case "unix":
		if !filepath.IsAbs(addr) {
			return "", "", fmt.Errorf("ovsdb endpoint %q: unix socket path must be absolute: %w", ep, ErrInvalid)
		}
	case "tcp", "ssl":
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" || port == "" {
			return "", "", fmt.Errorf("ovsdb endpoint %q: want %s:HOST:PORT: %w", ep, scheme, ErrInvalid)
		}
	default:
		return "", "", fmt.Errorf("ovsdb endpoint %q: unknown scheme %q (want unix, tcp or ssl): %w", ep, scheme, ErrInvalid)
	}
	return scheme, addr, nil
}

// Dial connects to the OVSDB server at endpoint (unix:PATH, tcp:HOST:PORT,
// ssl:HOST:PORT) and monitors the Bridge, Port, Interface and Controller
// columns flowspan uses. It returns once the first connection is up and
// the cache populated, or with an error when ctx ends first. After that the
// client reconnects by itself, forever, until Close; ctx only bounds Dial.
func Dial(ctx context.Context, endpoint string, cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	scheme, addr, err := parseEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	if scheme == "ssl" && cfg.TLS == nil {
		return nil, fmt.Errorf("ovsdb endpoint %q: ssl needs Config.TLS: %w", endpoint, ErrInvalid)
	}
	rundir := cfg.RunDir
	if rundir == "" && scheme == "unix" {
		rundir = filepath.Dir(addr)
	}
	dbModel, err := clientModel()
	if err != nil {
		return nil, fmt.Errorf("ovsdb: client model: %w", err)
	}
	log := cfg.Logger.WithField("ovsdb", endpoint)
	lr := newLogr(log)
	opts := []client.Option{client.WithEndpoint(endpoint), client.WithLogger(&lr)}
	if cfg.TLS != nil {
		opts = append(opts, client.WithTLSConfig(cfg.TLS))
	}
	// No client.WithReconnect: libovsdb panics when its backoff gives up
	// and cannot be stopped while reconnecting. This package runs its own
	// reconnect loop (run) instead.
	ovs, err := client.NewOVSDBClient(dbModel, opts...)
	if err != nil {
		return nil, fmt.Errorf("ovsdb %s: %w", endpoint, err)
	}
	c := &Client{
		cfg:      cfg,
		log:      log,
		endpoint: endpoint,
		rundir:   rundir,
		ovs:      ovs,
		closed:   make(chan struct{}),
		disc:     make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
		up:       make(chan struct{}),
	}
	c.w.init()
	c.bgCtx, c.bgCancel = context.WithCancel(context.Background())
	c.wg.Add(3)
	go c.forwardDisconnects()
	go c.run()
	go c.watchLoop()

	if err := c.waitUp(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close stops the client and every goroutine it started. It is safe to
// call more than once. Watch channels are closed.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.bgCancel()
	})
	c.wg.Wait()
	return nil
}

// Endpoint returns the endpoint the client was dialed with.
func (c *Client) Endpoint() string { return c.endpoint }

// Connected reports whether the client is connected with a populated cache.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.up:
		return true
	default:
		return false
	}
}

// waitUp blocks until the client is connected, ctx ends or the client is
// closed.
func (c *Client) waitUp(ctx context.Context) error {
	c.mu.Lock()
	up := c.up
	c.mu.Unlock()
	select {
	case <-up:
		return nil
	default:
	}
	select {
	case <-up:
		return nil
	case <-c.closed:
		return fmt.Errorf("ovsdb %s: %w", c.endpoint, ErrClosed)
	case <-ctx.Done():
		c.mu.Lock()
		last := c.lastErr
		c.mu.Unlock()
		if last != nil {
			return fmt.Errorf("ovsdb %s: not connected (last error: %v): %w", c.endpoint, last, ctx.Err())
		}
		return fmt.Errorf("ovsdb %s: not connected: %w", c.endpoint, ctx.Err())
	}
}

func (c *Client) setUp(up bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastErr = err
	select {
	case <-c.up:
		if !up {
			c.up = make(chan struct{})
		}
	default:
		if up {
			close(c.up)
		}
	}
}

// forwardDisconnects relays libovsdb's disconnect notifications, which it
// sends without blocking and drops when nobody is receiving, into c.disc.
// libovsdb sends one only after it has torn the old connection and cache
// down, so a reconnect started after receiving it cannot race that teardown.
func (c *Client) forwardDisconnects() {
	defer c.wg.Done()
	notify := c.ovs.DisconnectNotify()
	for {
		select {
		case <-notify:
			select {
			case c.disc <- struct{}{}:
			default:
			}
		case <-c.closed:
			return
		}
	}
}

// run is the connection loop: connect, monitor, wait for a disconnect,
// back off, repeat; forever until Close.
func (c *Client) run() {
	defer c.wg.Done()
	backoff := c.cfg.MinBackoff
	failures := 0
	for {
		select {
		case <-c.closed:
			return
		default:
		}
		err := c.connectOnce()
		if err != nil {
			failures++
			c.setUp(false, err)
			l := c.log.WithError(err).WithField("attempt", failures)
			if failures <= 3 || failures%20 == 0 {
				l.Warn("ovsdb connection failed, retrying")
			} else {
				l.Debug("ovsdb connection failed, retrying")
			}
			// full jitter between backoff/2 and backoff
			d := backoff/2 + time.Duration(rand.Int64N(int64(backoff/2)+1))
			backoff = min(backoff*2, c.cfg.MaxBackoff)
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-c.closed:
				t.Stop()
				return
			}
			continue
		}
		if failures > 0 {
			c.log.WithField("attempts", failures+1).Info("ovsdb reconnected, cache re-read")
		} else {
			c.log.Debug("ovsdb connected")
		}
		failures = 0
		backoff = c.cfg.MinBackoff
		c.setUp(true, nil)
		c.kickWatch()
		if closing := c.waitDisconnect(); closing {
			return
		}
		c.setUp(false, errors.New("connection lost"))
		c.log.Warn("ovsdb connection lost, reconnecting")
	}
}

// waitDisconnect returns false when the connection dropped and true when
// the client is closing (after closing the connection).
func (c *Client) waitDisconnect() bool {
	var probe <-chan time.Time
	if c.cfg.ProbeInterval > 0 {
		t := time.NewTicker(c.cfg.ProbeInterval)
		defer t.Stop()
		probe = t.C
	}
	for {
		select {
		case <-c.disc:
			return false
		case <-probe:
			ctx, cancel := context.WithTimeout(c.bgCtx, c.cfg.ProbeInterval)
			err := c.ovs.Echo(ctx)
			cancel()
			if err != nil && c.bgCtx.Err() == nil {
				c.log.WithError(err).Warn("ovsdb echo failed, reconnecting")
				c.ovs.Disconnect()
			}
		case <-c.closed:
			c.closeConn()
			return true
		}
	}
}

// closeConn closes an established libovsdb connection and waits (bounded)
// for libovsdb to finish tearing it down, so that none of its goroutines
// outlive Close.
func (c *Client) closeConn() {
	c.ovs.Close()
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	notify := c.ovs.DisconnectNotify()
	select {
	case <-c.disc:
	case <-notify:
	case <-t.C:
		c.log.Debug("ovsdb: timed out waiting for libovsdb teardown")
	}
}

// connectOnce makes one connection attempt: connect, hook the cache, start
// the monitor (which fills a fresh cache). On a monitor failure the
// connection is torn down before returning.
func (c *Client) connectOnce() error {
	// A notification still pending here belongs to a connection already
	// torn down.
	select {
	case <-c.disc:
	default:
	}
	ctx, cancel := context.WithTimeout(c.bgCtx, c.cfg.ConnectTimeout)
	defer cancel()
	if err := c.ovs.Connect(ctx); err != nil {
		return err
	}
	c.ovs.Cache().AddEventHandler(&cache.EventHandlerFuncs{
		AddFunc:    func(string, model.Model) { c.kickWatch() },
		UpdateFunc: func(string, model.Model, model.Model) { c.kickWatch() },
		DeleteFunc: func(string, model.Model) { c.kickWatch() },
	})
	var (
		br  vswitchd.Bridge
		pt  vswitchd.Port
		ifc vswitchd.Interface
		ct  vswitchd.Controller
		ovs vswitchd.OpenvSwitch
	)
	mon := c.ovs.NewMonitor(
		client.WithTable(&ovs, &ovs.CurCfg, &ovs.NextCfg),
		client.WithTable(&br, &br.Name, &br.Ports, &br.Controller, &br.FailMode, &br.DatapathID,
			&br.DatapathType, &br.OtherConfig, &br.ExternalIDs, &br.Protocols),
		client.WithTable(&pt, &pt.Name, &pt.Interfaces, &pt.Tag, &pt.Trunks, &pt.VLANMode, &pt.ExternalIDs),
		client.WithTable(&ifc, &ifc.Name, &ifc.Type, &ifc.Ofport, &ifc.Error, &ifc.ExternalIDs,
			&ifc.Options, &ifc.AdminState),
		client.WithTable(&ct, &ct.Target, &ct.ExternalIDs, &ct.IsConnected, &ct.MaxBackoff,
			&ct.InactivityProbe, &ct.ConnectionMode),
	)
	if _, err := c.ovs.Monitor(ctx, mon); err != nil {
		c.closeConnForRetry()
		return fmt.Errorf("monitor: %w", err)
	}
	return nil
}

// closeConnForRetry drops a half-set-up connection and waits for libovsdb's
// teardown before the next attempt.
func (c *Client) closeConnForRetry() {
	c.ovs.Disconnect()
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case <-c.disc:
	case <-c.ovs.DisconnectNotify(): // forwardDisconnects may have stopped (Close)
	case <-t.C:
	}
}

func (c *Client) kickWatch() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}
