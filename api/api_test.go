//go:build !flowspanclient

package api

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeBackend is an in-memory Backend.
type fakeBackend struct {
	mu      sync.Mutex
	mirrors map[string]Mirror
	deleted chan string
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{mirrors: map[string]Mirror{}, deleted: make(chan string, 10)}
}

func (f *fakeBackend) AddMirror(_ context.Context, s MirrorSpec, o Origin) (Mirror, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.Bridge != "br0" {
		return Mirror{}, WithCode(CodeInvalid, fmt.Errorf("mirror %q: bridge %q: no such bridge", s.Name, s.Bridge))
	}
	if _, ok := f.mirrors[s.Name]; ok {
		return Mirror{}, fmt.Errorf("mirror %q: %w", s.Name, ErrExists)
	}
	m := Mirror{Spec: s, Origin: o, Status: Status{State: StateActive}}
	f.mirrors[s.Name] = m
	return m, nil
}

func (f *fakeBackend) DeleteMirror(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.mirrors[name]; !ok {
		return fmt.Errorf("mirror %q: %w", name, ErrNotFound)
	}
	delete(f.mirrors, name)
	f.deleted <- name
	return nil
}

func (f *fakeBackend) Mirrors(context.Context) ([]Mirror, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Mirror
	for _, m := range f.mirrors {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out, nil
}

func (f *fakeBackend) Mirror(_ context.Context, name string) (Mirror, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.mirrors[name]
	if !ok {
		return Mirror{}, fmt.Errorf("mirror %q: %w", name, ErrNotFound)
	}
	return m, nil
}

func (f *fakeBackend) Stats(ctx context.Context, name string) ([]MirrorStats, error) {
	ms, _ := f.Mirrors(ctx)
	var out []MirrorStats
	for _, m := range ms {
		if name == "" || m.Spec.Name == name {
			out = append(out, MirrorStats{Name: m.Spec.Name, Bridge: m.Spec.Bridge, Packets: 3, Bytes: 300,
				Selections: []SelectionStats{{Port: "p1", Direction: DirIngress, Packets: 3, Bytes: 300}}})
		}
	}
	if name != "" && len(out) == 0 {
		return nil, fmt.Errorf("mirror %q: %w", name, ErrNotFound)
	}
	return out, nil
}

func (f *fakeBackend) Flows(ctx context.Context, name string) ([]string, error) {
	if _, err := f.Mirror(ctx, name); err != nil {
		return nil, err
	}
	return []string{"table=0, priority=10 actions=NORMAL"}, nil
}

func (f *fakeBackend) Release(_ context.Context, bridge string) (ReleaseResult, error) {
	return ReleaseResult{Bridge: bridge}, nil
}

func newTestServer(t *testing.T, b Backend) (*Client, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, NewHandler(b, HandlerConfig{Version: "test"})) }()
	c := NewClient("unix:" + sock)
	t.Cleanup(func() {
		c.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return c, sock
}

func TestSocketMode(t *testing.T) {
	b := newFakeBackend()
	_, sock := newTestServer(t, b)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode = %v, want socket with 0600", fi.Mode())
	}
	// A second listener on a live socket must fail, not steal it.
	if ln, err := Listen(sock); err == nil {
		ln.Close()
		t.Fatal("Listen on a live socket succeeded")
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	// Simulate a crashed daemon: socket file left behind, nobody listening.
	ln.(*unixListener).UnixListener.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("stale socket should still exist: %v", err)
	}
	ln2, err := Listen(sock)
	if err != nil {
		t.Fatalf("Listen over stale socket: %v", err)
	}
	ln2.Close()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket not removed on Close: %v", err)
	}
}

func TestClientServer(t *testing.T) {
	ctx := context.Background()
	b := newFakeBackend()
	c, _ := newTestServer(t, b)

	v, err := c.Version(ctx)
	if err != nil || v.Version != "test" || v.API != "v1" {
		t.Fatalf("Version = %+v, %v", v, err)
	}
	spec := MirrorSpec{Name: "m1", Bridge: "br0", Ports: []string{"p1"}, Match: []string{"tcp,tp_dst=443"},
		Output: Output{Port: "mirror0", Create: true}}
	m, err := c.AddMirror(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if m.Spec.Name != "m1" || m.Origin != OriginAPI || m.Status.State != StateActive {
		t.Fatalf("AddMirror = %+v", m)
	}
	_, err = c.AddMirror(ctx, spec)
	var ae *Error
	if !errors.Is(err, ErrExists) || !errors.As(err, &ae) || ae.Status != 409 || ae.Code != CodeExists {
		t.Fatalf("duplicate: err = %#v", err)
	}
	bad := spec
	bad.Name, bad.Bridge = "m2", "nope"
	_, err = c.AddMirror(ctx, bad)
	if !errors.Is(err, ErrInvalid) || err.Error() != `mirror "m2": bridge "nope": no such bridge` {
		t.Fatalf("invalid: err = %v", err)
	}
	eph := spec
	eph.Name, eph.Ephemeral = "m3", true
	if _, err = c.AddMirror(ctx, eph); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ephemeral via /v1/mirrors: err = %v", err)
	}
	if _, err := c.Mirror(ctx, "zz"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Mirror(zz): err = %v", err)
	}
	ms, err := c.Mirrors(ctx)
	if err != nil || len(ms) != 1 || ms[0].Spec.Match[0] != "tcp,tp_dst=443" || !ms[0].Spec.Output.Create {
		t.Fatalf("Mirrors = %+v, %v", ms, err)
	}
	st, err := c.Stats(ctx, "m1")
	if err != nil || st.Packets != 3 || len(st.Selections) != 1 || st.Selections[0].Direction != DirIngress {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
	all, err := c.AllStats(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("AllStats = %+v, %v", all, err)
	}
	fl, err := c.Flows(ctx, "m1")
	if err != nil || len(fl) != 1 {
		t.Fatalf("Flows = %v, %v", fl, err)
	}
	rr, err := c.Release(ctx, "br0")
	if err != nil || rr.Bridge != "br0" || rr.Deleted == nil {
		t.Fatalf("Release = %+v, %v", rr, err)
	}
	if err := c.DeleteMirror(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteMirror(ctx, "m1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: err = %v", err)
	}
	if _, err := c.send(ctx, "GET", "/v2/mirrors", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown path: err = %v", err)
	}
}

func TestDaemonNotRunning(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "none.sock"))
	defer c.Close()
	_, err := c.Mirrors(context.Background())
	if !errors.Is(err, ErrDaemonNotRunning) {
		t.Fatalf("err = %v, want ErrDaemonNotRunning", err)
	}
	t.Log(err)
}

func TestTapDeletedOnClose(t *testing.T) {
	ctx := context.Background()
	b := newFakeBackend()
	c, _ := newTestServer(t, b)
	ts, err := c.Tap(ctx, MirrorSpec{Name: "tap1", Bridge: "br0", Ports: []string{"p1"}, Output: Output{Port: "tap0", Create: true}})
	if err != nil {
		t.Fatal(err)
	}
	if !ts.Mirror.Spec.Ephemeral || ts.Mirror.Origin != OriginTap {
		t.Fatalf("tap mirror = %+v", ts.Mirror)
	}
	if _, err := c.Mirror(ctx, "tap1"); err != nil {
		t.Fatalf("tap mirror not listed: %v", err)
	}
	ts.Close()
	select {
	case name := <-b.deleted:
		if name != "tap1" {
			t.Fatalf("deleted %q", name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tap mirror not deleted after session closed")
	}
}

func TestTapEndsOnShutdown(t *testing.T) {
	ctx := context.Background()
	b := newFakeBackend()
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Serve(sctx, ln, NewHandler(b, HandlerConfig{})) }()
	c := NewClient(sock)
	defer c.Close()
	ts, err := c.Tap(ctx, MirrorSpec{Name: "tap1", Bridge: "br0", Ports: []string{"p1"}, Output: Output{Port: "tap0", Create: true}})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	select {
	case <-ts.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("tap session not ended by shutdown")
	}
	ts.Close()
	if len(b.deleted) != 1 {
		t.Fatalf("tap mirror not deleted on shutdown")
	}
}
