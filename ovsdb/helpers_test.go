package ovsdb

import (
	"context"
	"fmt"

	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/stdr"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/database/inmemory"
	"github.com/ovn-org/libovsdb/model"
	libovsdb "github.com/ovn-org/libovsdb/ovsdb"
	"github.com/ovn-org/libovsdb/server"
	"github.com/sirupsen/logrus"

	"github.com/flowspan/flowspan/ovsdb/vswitchd"
)

// memDB is libovsdb's in-memory OVSDB server with the vswitchd schema,
// reached through a proxy that the test can cut (the in-memory server
// never closes accepted connections itself).
type memDB struct {
	t      *testing.T
	srv    *server.OvsdbServer
	proxy  *proxy
	Socket string // what clients dial: "unix:" + Socket
	raw    client.Client
}

func newMemDB(t *testing.T) *memDB {
	t.Helper()
	dir, err := os.MkdirTemp("", "fsovsdb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	full, err := vswitchd.FullDatabaseModel()
	if err != nil {
		t.Fatal(err)
	}
	dbModel, errs := model.NewDatabaseModel(vswitchd.Schema(), full)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	db := inmemory.NewDatabase(map[string]model.ClientDBModel{"Open_vSwitch": full})
	srv, err := server.NewOvsdbServer(db, dbModel)
	if err != nil {
		t.Fatal(err)
	}
	stdr.SetVerbosity(0) // NewOvsdbServer turns libovsdb's global stdr logging to 5
	backend := filepath.Join(dir, "backend.sock")
	go func() { _ = srv.Serve("unix", backend) }()
	deadline := time.Now().Add(5 * time.Second)
	for !srv.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("in-memory ovsdb server not ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	m := &memDB{t: t, srv: srv, Socket: filepath.Join(dir, "db.sock")}
	m.proxy = newProxy(t, m.Socket, backend)
	t.Cleanup(func() {
		m.proxy.close()
		srv.Close()
	})
	// A raw libovsdb client (full model) to seed and inspect rows as
	// ovs-vsctl would.
	lr := newLogr(quietLogger())
	raw, err := client.NewOVSDBClient(full, client.WithEndpoint("unix:"+backend), client.WithLogger(&lr))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := raw.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.MonitorAll(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	m.raw = raw
	ops, err := raw.Create(&vswitchd.OpenvSwitch{UUID: "ovs"})
	if err != nil {
		t.Fatal(err)
	}
	m.transact(ops...)
	return m
}

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func (m *memDB) transact(ops ...libovsdb.Operation) []libovsdb.OperationResult {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := m.raw.Transact(ctx, ops...)
	if err != nil {
		m.t.Fatal(err)
	}
	if _, err := libovsdb.CheckOperationResults(res, ops); err != nil {
		m.t.Fatalf("%v: %v", err, res)
	}
	return res
}

// addBridge creates a bridge with the given ports (each with one
// interface) and returns the bridge UUID.
func (m *memDB) addBridge(name string, ports ...vswitchd.Port) string {
	m.t.Helper()
	br := &vswitchd.Bridge{UUID: "br", Name: name, DatapathType: "netdev"}
	var models []model.Model
	for i, p := range ports {
		ifc := &vswitchd.Interface{UUID: "if" + string(rune('a'+i)), Name: p.Name}
		p.UUID = "pt" + string(rune('a'+i))
		p.Interfaces = []string{ifc.UUID}
		pp := p
		models = append(models, ifc, &pp)
		br.Ports = append(br.Ports, p.UUID)
	}
	models = append(models, br)
	ops, err := m.raw.Create(models...)
	if err != nil {
		m.t.Fatal(err)
	}
	ovs := &vswitchd.OpenvSwitch{}
	mut, err := m.raw.WhereCache(func(*vswitchd.OpenvSwitch) bool { return true }).Mutate(ovs,
		model.Mutation{Field: &ovs.Bridges, Mutator: libovsdb.MutateOperationInsert, Value: []string{"br"}})
	if err != nil {
		m.t.Fatal(err)
	}
	res := m.transact(append(ops, mut...)...)
	return res[len(models)-1].UUID.GoUUID
}

// setOFPort plays ovs-vswitchd: gives the named interface an ofport.
func (m *memDB) setOFPort(iface string, ofport int) {
	m.t.Helper()
	ifc := &vswitchd.Interface{Name: iface, Ofport: &ofport}
	ops, err := m.raw.WhereCache(func(i *vswitchd.Interface) bool { return i.Name == iface }).Update(ifc, &ifc.Ofport)
	if err != nil {
		m.t.Fatal(err)
	}
	m.transact(ops...)
}

// fakeVswitchd assigns ofports to interfaces that have none, and catches
// cur_cfg up with next_cfg, until the test ends, like ovs-vswitchd does.
func (m *memDB) fakeVswitchd() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	m.t.Cleanup(func() { cancel(); wg.Wait() })
	go func() {
		defer wg.Done()
		next := 10
		for ctx.Err() == nil {
			var ifs []vswitchd.Interface
			_ = m.raw.List(ctx, &ifs)
			for _, i := range ifs {
				if i.Ofport == nil {
					n := next
					next++
					ifc := &vswitchd.Interface{UUID: i.UUID, Ofport: &n}
					if ops, err := m.raw.Where(ifc).Update(ifc, &ifc.Ofport); err == nil {
						_, _ = m.raw.Transact(ctx, ops...)
					}
				}
			}
			var roots []vswitchd.OpenvSwitch
			_ = m.raw.List(ctx, &roots)
			for _, r := range roots {
				if r.CurCfg < r.NextCfg {
					row := &vswitchd.OpenvSwitch{UUID: r.UUID, CurCfg: r.NextCfg}
					if ops, err := m.raw.Where(row).Update(row, &row.CurCfg); err == nil {
						_, _ = m.raw.Transact(ctx, ops...)
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
}

func (m *memDB) bridgeRow(name string) vswitchd.Bridge {
	m.t.Helper()
	var brs []vswitchd.Bridge
	if err := m.raw.WhereCache(func(b *vswitchd.Bridge) bool { return b.Name == name }).List(context.Background(), &brs); err != nil {
		m.t.Fatal(err)
	}
	if len(brs) != 1 {
		m.t.Fatalf("bridge %q: %d rows", name, len(brs))
	}
	return brs[0]
}

// proxy forwards unix connections to a backend and can cut them all, or
// refuse new ones, to simulate ovsdb-server going away.
type proxy struct {
	t       *testing.T
	path    string
	listen  func() (net.Listener, error) // default: unix at path
	backend string
	mu      sync.Mutex
	ln      net.Listener
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

func newProxy(t *testing.T, path, backend string) *proxy {
	p := &proxy{t: t, path: path, backend: backend, conns: map[net.Conn]struct{}{}}
	p.start()
	return p
}

func (p *proxy) start() {
	listen := p.listen
	if listen == nil {
		listen = func() (net.Listener, error) { return net.Listen("unix", p.path) }
	}
	ln, err := listen()
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("unix", p.backend)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[b] = struct{}{}, struct{}{}
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(b, c); b.Close(); c.Close() }()
			go func() { defer p.wg.Done(); _, _ = io.Copy(c, b); b.Close(); c.Close() }()
		}
	}()
}

// stop closes the listener and every connection (like a server exit).
func (p *proxy) stop() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	p.wg.Wait()
	if p.path != "" {
		_ = os.Remove(p.path)
	}
}

func (p *proxy) close() { p.stop() }

func dialMem(t *testing.T, m *memDB, cfg Config) *Client {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	cfg.SkipLinkUp = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, "unix:"+m.Socket, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testLogger logs through t.Log at debug level.
func testLogger(t *testing.T) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(tWriter{t})
	l.SetLevel(logrus.DebugLevel)
	return l
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // logging after the test ended
	w.t.Log(string(p))
	return len(p), nil
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// nextChange reads one change or fails after 5s.
func nextChange(t *testing.T, ch <-chan Change) Change {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no change within 5s")
	}
	return Change{}
}

// waitChange reads changes until one satisfies ok, failing after 5s.
func waitChange(t *testing.T, ch <-chan Change, what string, ok func(Change) bool) Change {
	t.Helper()
	deadline := time.After(5 * time.Second)
	var seen []Change
	for {
		select {
		case c, open := <-ch:
			if !open {
				t.Fatalf("watch closed waiting for %s (seen %+v)", what, seen)
			}
			if ok(c) {
				return c
			}
			seen = append(seen, c)
		case <-deadline:
			t.Fatalf("no %s within 5s (seen %+v)", what, seen)
		}
	}
}

func modelMutation(field any, mutator string, value any) model.Mutation {
	return model.Mutation{Field: field, Mutator: libovsdb.Mutator(mutator), Value: value}
}

// sentinel writes a marker on the Open_vSwitch row and waits until the
// raw client's cache shows it: every earlier write is then visible too.
func (m *memDB) sentinel(n int) {
	m.t.Helper()
	v := fmt.Sprint(n)
	ovs := &vswitchd.OpenvSwitch{ExternalIDs: map[string]string{"sentinel": v}}
	ops, err := m.raw.WhereCache(func(*vswitchd.OpenvSwitch) bool { return true }).Update(ovs, &ovs.ExternalIDs)
	if err != nil {
		m.t.Fatal(err)
	}
	m.transact(ops...)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var rows []vswitchd.OpenvSwitch
		_ = m.raw.List(context.Background(), &rows)
		if len(rows) == 1 && rows[0].ExternalIDs["sentinel"] == v {
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatal("sentinel never seen")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
