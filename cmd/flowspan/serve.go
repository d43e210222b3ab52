//go:build !flowspanclient

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/flowspan/flowspan"
	"github.com/flowspan/flowspan/api"
	"github.com/sirupsen/logrus"
)

type serveOptions struct {
	config  string
	ovsdb   string
	listen  string
	sslCert string
	sslKey  string
	sslCA   string
	api     string
	state   string
	metrics string
	// takeOverFirst: flowspan.Config.TakeOverFirst.
	takeOverFirst bool
}

func parseServeArgs(args []string) (*serveOptions, error) {
	fs := newFlagSet("serve")
	o := &serveOptions{}
	fs.StringVar(&o.config, "config", "", "YAML `FILE` declaring mirrors")
	fs.StringVar(&o.ovsdb, "ovsdb", "unix:/var/run/openvswitch/db.sock", "OVSDB `endpoint`")
	fs.StringVar(&o.listen, "listen", "", "controller mode: accept switches at `ADDR`")
	fs.StringVar(&o.sslCert, "ssl-cert", "", "--listen ssl: flowspan's certificate `FILE` (PEM)")
	fs.StringVar(&o.sslKey, "ssl-key", "", "--listen ssl: flowspan's private key `FILE` (PEM)")
	fs.StringVar(&o.sslCA, "ssl-ca", "", "--listen ssl: CA certificate `FILE` (PEM) that switch certificates must chain to")
	fs.StringVar(&o.api, "api", "unix:"+api.DefaultSocket, "API socket `unix:PATH`")
	fs.StringVar(&o.state, "state", "/var/lib/flowspan/state.json", "state `FILE` (mirror definitions)")
	fs.StringVar(&o.metrics, "metrics", "127.0.0.1:9464", "Prometheus metrics `ADDR` (\"\" = off)")
	fs.BoolVar(&o.takeOverFirst, "take-over-first", false, "program a bridge's first mirror only after taking the bridge over, not through its management socket")
	pos, _, _, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, usagef("unexpected arguments: %s", strings.Join(pos, " "))
	}
	if !strings.HasPrefix(o.api, "unix:") && !strings.HasPrefix(o.api, "/") {
		return nil, usagef("--api %q: want unix:PATH", o.api)
	}
	if o.state == "" {
		return nil, usagef("--state: empty path")
	}
	ssl := strings.HasPrefix(o.listen, "ssl:")
	if files := o.sslCert + o.sslKey + o.sslCA; files != "" && !ssl {
		return nil, usagef("--ssl-cert, --ssl-key and --ssl-ca go with --listen ssl:IP:PORT")
	}
	if ssl && (o.sslCert == "" || o.sslKey == "" || o.sslCA == "") {
		return nil, usagef("--listen %s needs --ssl-cert, --ssl-key and --ssl-ca", o.listen)
	}
	return o, nil
}

// listenTLS loads the certificate, key and CA for --listen ssl:. Switches
// must present a certificate signed by the CA.
func (o *serveOptions) listenTLS() (*tls.Config, error) {
	if !strings.HasPrefix(o.listen, "ssl:") {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(o.sslCert, o.sslKey)
	if err != nil {
		return nil, fmt.Errorf("--ssl-cert %s / --ssl-key %s: %w", o.sslCert, o.sslKey, err)
	}
	pem, err := os.ReadFile(o.sslCA)
	if err != nil {
		return nil, fmt.Errorf("--ssl-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ssl-ca %s: no PEM certificate in it", o.sslCA)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// daemon is what serve runs: the Manager, seen through what serve uses.
type daemon interface {
	api.Backend
	Run(ctx context.Context) error
	Close() error
	ApplyConfig(ctx context.Context, cf flowspan.ConfigFile) error
}

func newLogger(e *env) (*logrus.Logger, error) {
	log := logrus.New()
	log.Out = e.stderr
	log.Formatter = &logrus.TextFormatter{FullTimestamp: true, TimestampFormat: time.RFC3339Nano}
	if lv := e.getenv("FLOWSPAN_LOG_LEVEL"); lv != "" {
		l, err := logrus.ParseLevel(lv)
		if err != nil {
			return nil, usagef("FLOWSPAN_LOG_LEVEL=%q: %v", lv, err)
		}
		log.SetLevel(l)
	}
	return log, nil
}

func runServe(ctx context.Context, e *env, args []string) error {
	o, err := parseServeArgs(args)
	if err != nil {
		return err
	}
	log, err := newLogger(e)
	if err != nil {
		return err
	}
	// A broken config file is an error at start (later, on SIGHUP, it is
	// logged and the running mirrors stay).
	var cf flowspan.ConfigFile
	if o.config != "" {
		if cf, err = flowspan.LoadConfig(o.config); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(o.state), 0o755); err != nil {
		return fmt.Errorf("state file %s: %w", o.state, err)
	}

	// SIGTERM/SIGINT end runCtx; everything winds down in order below.
	runCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// The manager and its connections live on mgrCtx, which outlives the API
	// server: tap sessions still delete their mirrors while the API shuts down.
	mgrCtx, cancelMgr := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelMgr()
	// The API socket first: a second daemon on the same socket stops here,
	// before it touches OVSDB.
	ln, err := api.Listen(o.api)
	if err != nil {
		return err
	}
	mgr, closeDeps, err := newDaemon(mgrCtx, o, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer closeDeps()
	mgrErr := make(chan error, 1)
	go func() { mgrErr <- mgr.Run(mgrCtx) }()

	apiCtx, cancelAPI := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelAPI()
	apiErr := make(chan error, 1)
	go func() {
		apiErr <- api.Serve(apiCtx, ln, api.NewHandler(mgr, api.HandlerConfig{Logger: log.WithField("component", "api"), Version: versionString()}))
	}()
	metricsErr := make(chan error, 1)
	metricsCtx, cancelMetrics := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelMetrics()
	if o.metrics != "" {
		go func() { metricsErr <- serveMetrics(metricsCtx, o.metrics, mgr, log.WithField("component", "metrics")) }()
	}
	log.WithFields(logrus.Fields{"version": versionString(), "ovsdb": o.ovsdb, "api": o.api, "state": o.state,
		"listen": o.listen, "config": o.config}).Info("flowspan serve started")

	if o.config != "" {
		go func() {
			if err := mgr.ApplyConfig(runCtx, cf); err != nil && runCtx.Err() == nil {
				log.WithError(err).WithField("config", o.config).Error("applying config failed")
			}
		}()
	}

	var runErr error
loop:
	for {
		select {
		case <-runCtx.Done():
			log.Info("shutting down; flows stay installed")
			break loop
		case <-hup:
			if o.config == "" {
				log.Info("SIGHUP: no --config to reload")
				continue
			}
			ncf, err := flowspan.LoadConfig(o.config)
			if err != nil {
				log.WithError(err).WithField("config", o.config).Error("SIGHUP: config not reloaded; mirrors unchanged")
				continue
			}
			if err := mgr.ApplyConfig(runCtx, ncf); err != nil {
				log.WithError(err).WithField("config", o.config).Error("SIGHUP: applying config failed")
				continue
			}
			log.WithField("config", o.config).Info("SIGHUP: config reloaded")
		case err := <-mgrErr:
			runErr = fmt.Errorf("manager stopped: %w", err)
			if err == nil {
				runErr = errors.New("manager stopped")
			}
			mgrErr <- err
			break loop
		case err := <-apiErr:
			runErr = err
			apiErr <- err
			break loop
		case err := <-metricsErr:
			runErr = err
			metricsErr <- err
			break loop
		}
	}
	cancelMetrics()
	cancelAPI()
	if err := <-apiErr; err != nil && runErr == nil {
		runErr = err
	}
	cancelMgr()
	mgr.Close()
	select {
	case <-mgrErr:
	case <-time.After(10 * time.Second):
		log.Warn("manager did not stop within 10s")
	}
	if o.metrics != "" {
		<-metricsErr
	}
	return runErr
}
