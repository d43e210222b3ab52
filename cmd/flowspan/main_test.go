//go:build !flowspanclient

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowspan/flowspan/api"
)

// runCLI runs one command line with a fixed environment.
func runCLI(t *testing.T, envs map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	en := &env{stdin: strings.NewReader(""), stdout: &o, stderr: &e, getenv: func(k string) string { return envs[k] }}
	code = en.run(context.Background(), args)
	return code, o.String(), e.String()
}

func TestMirrorAddSpec(t *testing.T) {
	noenv := &env{getenv: func(string) string { return "" }}
	tests := []struct {
		name string
		args []string
		want api.MirrorSpec
	}{
		{
			name: "flags after name, repeated",
			args: []string{"web", "--bridge", "br0", "--port", "vnet2", "--port", "vnet3", "--match", "tcp,tp_dst=443", "--match", "arp", "--to", "mirror0", "--create"},
			want: api.MirrorSpec{Name: "web", Bridge: "br0", Ports: []string{"vnet2", "vnet3"}, Match: []string{"tcp,tp_dst=443", "arp"}, Output: api.Output{Port: "mirror0", Create: true}},
		},
		{
			name: "flags before name",
			args: []string{"--bridge=br0", "--ingress", "a", "--egress", "b", "--snaplen", "64", "m", "--to-vlan", "999"},
			want: api.MirrorSpec{Name: "m", Bridge: "br0", Ingress: []string{"a"}, Egress: []string{"b"}, Snaplen: 64, Output: api.Output{VLAN: 999}},
		},
		{
			name: "vlans and all",
			args: []string{"v", "--bridge", "br0", "--vlan", "10", "--vlan", "20,30", "--all", "--to", "out"},
			want: api.MirrorSpec{Name: "v", Bridge: "br0", VLANs: []uint16{10, 20, 30}, All: true, Output: api.Output{Port: "out"}},
		},
		{
			name: "tunnel with key",
			args: []string{"t", "--bridge", "br0", "--all", "--to-tunnel", "gre:192.0.2.10:7"},
			want: api.MirrorSpec{Name: "t", Bridge: "br0", All: true, Output: api.Output{Tunnel: &api.Tunnel{Type: "gre", Remote: "192.0.2.10", Key: 7}}},
		},
		{
			name: "tunnel ipv6 bare",
			args: []string{"t", "--bridge", "br0", "--all", "--to-tunnel", "vxlan:2001:db8::1"},
			want: api.MirrorSpec{Name: "t", Bridge: "br0", All: true, Output: api.Output{Tunnel: &api.Tunnel{Type: "vxlan", Remote: "2001:db8::1"}}},
		},
		{
			name: "tunnel ipv6 bracketed with key",
			args: []string{"t", "--bridge", "br0", "--all", "--to-tunnel", "geneve:[2001:db8::1]:0x10"},
			want: api.MirrorSpec{Name: "t", Bridge: "br0", All: true, Output: api.Output{Tunnel: &api.Tunnel{Type: "geneve", Remote: "2001:db8::1", Key: 16}}},
		},
		{
			name: "tunnel without remote reaches the daemon",
			args: []string{"t", "--bridge", "br0", "--all", "--to-tunnel", "gre"},
			want: api.MirrorSpec{Name: "t", Bridge: "br0", All: true, Output: api.Output{Tunnel: &api.Tunnel{Type: "gre"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, addr, err := mirrorAddSpec(noenv, tt.args)
			if err != nil {
				t.Fatalf("mirrorAddSpec(%q): %v", tt.args, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("mirrorAddSpec(%q):\n got  %+v\n want %+v", tt.args, got, tt.want)
			}
			if addr != "unix:/run/flowspan/api.sock" {
				t.Errorf("api address = %q, want the default", addr)
			}
		})
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{nil, "usage: flowspan COMMAND"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"mirror"}, "missing subcommand"},
		{[]string{"mirror", "zap"}, `unknown subcommand "zap"`},
		{[]string{"mirror", "add", "--bridge", "br0", "--all", "--to", "x"}, "missing mirror NAME"},
		{[]string{"mirror", "add", "a", "b", "--bridge", "br0", "--all", "--to", "x"}, "unexpected arguments after mirror NAME: b"},
		{[]string{"mirror", "add", "a", "--all", "--to", "x"}, "missing --bridge"},
		{[]string{"mirror", "add", "a", "--bridge", "br0", "--all"}, "give exactly one output"},
		{[]string{"mirror", "add", "a", "--bridge", "br0", "--all", "--to", "x", "--to-vlan", "5"}, "give exactly one output"},
		{[]string{"mirror", "add", "a", "--bridge", "br0", "--all", "--to-vlan", "5", "--create"}, "--create needs --to PORT"},
		{[]string{"mirror", "add", "a", "--bridge", "br0", "--vlan", "x", "--to", "o"}, `VLAN "x"`},
		{[]string{"mirror", "add", "a", "--bridge", "br0", "--all", "--to-tunnel", "gre:1.2.3.4:k"}, `key "k"`},
		{[]string{"mirror", "add", "a", "--bridge", "br0", "--all", "--snaplen", "70000", "--to", "o"}, "--snaplen 70000"},
		{[]string{"mirror", "add", "a", "--bridge", "br0", "--nope", "--to", "o"}, "flag provided but not defined: -nope"},
		{[]string{"mirror", "del"}, "missing mirror NAME"},
		{[]string{"mirror", "list", "-o", "yaml"}, `-o "yaml": want table or json`},
		{[]string{"mirror", "show"}, "missing mirror NAME"},
		{[]string{"mirror", "stats", "a", "b"}, "unexpected arguments after NAME: b"},
		{[]string{"release"}, "missing --bridge"},
		{[]string{"tap"}, "missing PORT"},
		{[]string{"tap", "p", "-w", "x.pcap", "--", "-n"}, "exclude each other"},
		{[]string{"version", "x"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runCLI(t, nil, tt.args...)
		if code != 2 {
			t.Errorf("flowspan %q: exit %d, want 2 (stderr %q)", tt.args, code, stderr)
		}
		if !strings.Contains(stderr, tt.wantErr) {
			t.Errorf("flowspan %q: stderr %q does not contain %q", tt.args, stderr, tt.wantErr)
		}
		if stdout != "" {
			t.Errorf("flowspan %q: stdout %q, want nothing", tt.args, stdout)
		}
	}
}

func TestHelpExit0(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"help", "tap"}, {"mirror", "add", "--help"}, {"mirror", "--help"}, {"tap", "-h"}, {"serve", "--help"}} {
		code, stdout, stderr := runCLI(t, nil, args...)
		if code != 0 || !strings.Contains(stdout, "usage:") || stderr != "" {
			t.Errorf("flowspan %q: exit %d stdout %q stderr %q; want 0 and usage on stdout", args, code, stdout, stderr)
		}
	}
}

func TestDaemonNotRunning(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	for _, args := range [][]string{
		{"mirror", "list"},
		{"mirror", "del", "x"},
		{"mirror", "stats"},
		{"release", "--bridge", "br0"},
		{"mirror", "add", "x", "--bridge", "br0", "--all", "--to", "o"},
	} {
		code, _, stderr := runCLI(t, map[string]string{"FLOWSPAN_API": "unix:" + sock}, args...)
		want := "daemon not running at unix:" + sock + "; start it with: flowspan serve --api unix:" + sock
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("flowspan %q: exit %d stderr %q; want 1 and %q", args, code, stderr, want)
		}
	}
}

// fakeBackend records what the CLI sends and answers like the daemon.
type fakeBackend struct {
	mu      sync.Mutex
	mirrors map[string]api.Mirror
}

func (f *fakeBackend) AddMirror(_ context.Context, spec api.MirrorSpec, origin api.Origin) (api.Mirror, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if spec.Output.Tunnel != nil && spec.Output.Tunnel.Remote == "" {
		return api.Mirror{}, api.WithCode(api.CodeInvalid, errFake(`mirror "`+spec.Name+`": tunnel output: remote IP required`))
	}
	if _, ok := f.mirrors[spec.Name]; ok {
		return api.Mirror{}, api.WithCode(api.CodeExists, errFake(`mirror "`+spec.Name+`": already exists`))
	}
	m := api.Mirror{Spec: spec, Origin: origin, Status: api.Status{State: api.StateActive}}
	f.mirrors[spec.Name] = m
	return m, nil
}

type errFake string

func (e errFake) Error() string { return string(e) }

func (f *fakeBackend) DeleteMirror(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.mirrors[name]; !ok {
		return api.WithCode(api.CodeNotFound, errFake(`mirror "`+name+`": not found`))
	}
	delete(f.mirrors, name)
	return nil
}

func (f *fakeBackend) Mirrors(context.Context) ([]api.Mirror, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Mirror
	for _, m := range f.mirrors {
		out = append(out, m)
	}
	return out, nil
}

func (f *fakeBackend) Mirror(_ context.Context, name string) (api.Mirror, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.mirrors[name]
	if !ok {
		return m, api.WithCode(api.CodeNotFound, errFake(`mirror "`+name+`": not found`))
	}
	return m, nil
}

func (f *fakeBackend) Stats(_ context.Context, name string) ([]api.MirrorStats, error) {
	st := api.MirrorStats{Name: name, Bridge: "br0", Packets: 3, Bytes: 300,
		Selections: []api.SelectionStats{{Port: "vnet2", Direction: api.DirIngress, Packets: 2, Bytes: 200}, {Port: "vnet2", Direction: api.DirEgress, Packets: 1, Bytes: 100}}}
	return []api.MirrorStats{st}, nil
}

func (f *fakeBackend) Flows(context.Context, string) ([]string, error) {
	return []string{"table=0, priority=100,in_port=1 actions=goto_table:1"}, nil
}

func (f *fakeBackend) Release(_ context.Context, bridge string) (api.ReleaseResult, error) {
	return api.ReleaseResult{Bridge: bridge, Deleted: []string{"web"}}, nil
}

// serveFake runs the real api handler on a fake backend.
func serveFake(t *testing.T) (string, *fakeBackend) {
	t.Helper()
	dir, err := os.MkdirTemp("", "fscli")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBackend{mirrors: map[string]api.Mirror{}}
	srv := &http.Server{Handler: api.NewHandler(b, api.HandlerConfig{Version: "test"}), ReadHeaderTimeout: time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "unix:" + sock, b
}

func TestClientCommands(t *testing.T) {
	addr, b := serveFake(t)
	envs := map[string]string{"FLOWSPAN_API": addr}
	code, out, errOut := runCLI(t, envs, "mirror", "add", "web", "--bridge", "br0", "--port", "vnet2", "--match", "tcp,tp_dst=443", "--to", "mirror0", "--create")
	if code != 0 || !strings.Contains(out, "mirror web added on br0") {
		t.Fatalf("mirror add: exit %d stdout %q stderr %q", code, out, errOut)
	}
	if got := b.mirrors["web"].Spec; !reflect.DeepEqual(got.Ports, []string{"vnet2"}) || !got.Output.Create || got.Output.Port != "mirror0" {
		t.Errorf("daemon received %+v", got)
	}
	// Validation errors come back as the daemon said them, exit 1.
	code, _, errOut = runCLI(t, envs, "mirror", "add", "web", "--bridge", "br0", "--all", "--to", "x")
	if code != 1 || errOut != "flowspan mirror add: mirror \"web\": already exists\n" {
		t.Errorf("duplicate add: exit %d stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, envs, "mirror", "add", "t", "--bridge", "br0", "--all", "--to-tunnel", "gre")
	if code != 1 || !strings.Contains(errOut, "tunnel output: remote IP required") {
		t.Errorf("tunnel without remote: exit %d stderr %q", code, errOut)
	}
	// --api on the command line beats FLOWSPAN_API.
	code, out, errOut = runCLI(t, map[string]string{"FLOWSPAN_API": "unix:/nonexistent/x.sock"}, "mirror", "list", "--api", addr, "-o", "json")
	if code != 0 {
		t.Fatalf("mirror list -o json: exit %d stderr %q", code, errOut)
	}
	var l api.MirrorList
	if err := json.Unmarshal([]byte(out), &l); err != nil || len(l.Mirrors) != 1 || l.Mirrors[0].Spec.Name != "web" {
		t.Errorf("mirror list -o json = %q (err %v)", out, err)
	}
	code, out, _ = runCLI(t, envs, "mirror", "list")
	if code != 0 || !strings.Contains(out, "NAME") || !strings.Contains(out, "ports=vnet2 match=tcp,tp_dst=443") || !strings.Contains(out, "mirror0 (created)") {
		t.Errorf("mirror list: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, envs, "mirror", "show", "--flows", "web")
	if code != 0 || !strings.Contains(out, "status:") || !strings.Contains(out, "  table=0, priority=100,in_port=1 actions=goto_table:1") {
		t.Errorf("mirror show --flows: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, envs, "mirror", "stats", "web", "-o", "json")
	var st api.MirrorStats
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.Packets != 3 || len(st.Selections) != 2 {
		t.Errorf("mirror stats -o json: exit %d %q", code, out)
	}
	code, out, _ = runCLI(t, envs, "mirror", "stats")
	if code != 0 || !strings.Contains(out, "vnet2 ingress") {
		t.Errorf("mirror stats: exit %d\n%s", code, out)
	}
	code, _, errOut = runCLI(t, envs, "mirror", "del", "nope")
	if code != 1 || errOut != "flowspan mirror del: mirror \"nope\": not found\n" {
		t.Errorf("del unknown: exit %d stderr %q", code, errOut)
	}
	code, out, _ = runCLI(t, envs, "mirror", "del", "web")
	if code != 0 || out != "mirror web deleted\n" || len(b.mirrors) != 0 {
		t.Errorf("del: exit %d %q, mirrors left %v", code, out, b.mirrors)
	}
	code, out, _ = runCLI(t, envs, "release", "--bridge", "br0")
	if code != 0 || out != "bridge br0 released; deleted mirrors: web\n" {
		t.Errorf("release: exit %d %q", code, out)
	}
	code, out, _ = runCLI(t, envs, "version")
	if code != 0 || !strings.HasPrefix(out, "flowspan ") || !strings.Contains(out, "daemon test (api v1)") {
		t.Errorf("version: exit %d %q", code, out)
	}
}

func TestPcapRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := newPcapWriter(&buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 123456000)
	frames := [][]byte{bytes.Repeat([]byte{1}, 60), bytes.Repeat([]byte{2}, 1514)}
	for _, f := range frames {
		if err := w.WritePacket(ts, f, len(f)); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := readPcap(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || !bytes.Equal(recs[1].Data, frames[1]) || recs[0].OrigLen != 60 || !recs[0].Time.Equal(ts) {
		t.Errorf("read back %d records: %+v", len(recs), recs)
	}
}

func TestWriteMetrics(t *testing.T) {
	var b bytes.Buffer
	writeMetrics(&b,
		[]api.Mirror{{Spec: api.MirrorSpec{Name: `we"b`, Bridge: "br0"}, Status: api.Status{State: api.StateActive}}},
		[]api.MirrorStats{{Name: `we"b`, Bridge: "br0", Packets: 3, Bytes: 300,
			Selections: []api.SelectionStats{{Port: "vnet2", Direction: api.DirIngress, Packets: 3, Bytes: 300}}}})
	for _, want := range []string{
		`flowspan_mirror_up{mirror="we\"b",bridge="br0",state="active"} 1`,
		`flowspan_mirror_packets_total{mirror="we\"b",bridge="br0"} 3`,
		`flowspan_mirror_bytes_total{mirror="we\"b",bridge="br0"} 300`,
		`flowspan_selection_packets_total{mirror="we\"b",bridge="br0",port="vnet2",direction="ingress"} 3`,
		"# TYPE flowspan_selection_bytes_total counter",
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
}

func TestTapMirrorName(t *testing.T) {
	for _, tt := range []struct {
		port string
		want string
	}{
		{"vnet2", "tap-vnet2-42"},
		{"eth0:1/x", "tap-eth0_1_x-42"},
		{strings.Repeat("p", 80), "tap-" + strings.Repeat("p", 57) + "-42"},
	} {
		if got := tapMirrorName(tt.port, 42); got != tt.want || len(got) > 64 {
			t.Errorf("tapMirrorName(%q) = %q, want %q", tt.port, got, tt.want)
		}
	}
}

type addRecorder struct {
	daemon
	got api.MirrorSpec
}

func (a *addRecorder) AddMirror(_ context.Context, spec api.MirrorSpec, origin api.Origin) (api.Mirror, error) {
	a.got = spec
	return api.Mirror{Spec: spec, Origin: origin}, nil
}

func TestTapBridgeBackend(t *testing.T) {
	lookup := func(_ context.Context, port string) ([]string, error) {
		return map[string][]string{"vnet2": {"br0"}, "dup": {"br0", "br1"}}[port], nil
	}
	rec := &addRecorder{}
	b := &tapBridgeBackend{daemon: rec, lookup: lookup}
	ctx := context.Background()
	if _, err := b.AddMirror(ctx, api.MirrorSpec{Name: "t", Ports: []string{"vnet2"}}, api.OriginTap); err != nil || rec.got.Bridge != "br0" {
		t.Errorf("tap of vnet2: bridge %q, err %v; want br0", rec.got.Bridge, err)
	}
	if _, err := b.AddMirror(ctx, api.MirrorSpec{Name: "t", Ports: []string{"dup"}}, api.OriginTap); err == nil || !strings.Contains(err.Error(), "br0, br1") || api.CodeOf(err) != api.CodeInvalid {
		t.Errorf("tap of a port on two bridges: %v", err)
	}
	if _, err := b.AddMirror(ctx, api.MirrorSpec{Name: "t", Ports: []string{"nope"}}, api.OriginTap); err == nil || !strings.Contains(err.Error(), `"nope": on no bridge`) {
		t.Errorf("tap of an unknown port: %v", err)
	}
	// Mirrors from the API pass through untouched (the daemon rejects them).
	rec.got = api.MirrorSpec{}
	if _, err := b.AddMirror(ctx, api.MirrorSpec{Name: "m", Ports: []string{"vnet2"}}, api.OriginAPI); err != nil || rec.got.Bridge != "" {
		t.Errorf("API mirror without bridge: got %+v, %v", rec.got, err)
	}
}

func TestParseTapArgs(t *testing.T) {
	noenv := &env{getenv: func(string) string { return "" }}
	tests := []struct {
		args    []string
		tcpdump []string
		write   string
		bridge  string
		match   []string
	}{
		{[]string{"vnet2"}, []string{"-n"}, "", "", nil},
		{[]string{"vnet2", "--bridge", "br0", "--", "tcpdump", "-nn", "-e", "icmp"}, []string{"-nn", "-e", "icmp"}, "", "br0", nil},
		{[]string{"--match", "tcp", "vnet2", "--", "-c", "3"}, []string{"-c", "3"}, "", "", []string{"tcp"}},
		{[]string{"vnet2", "-w", "x.pcap", "--match", "udp", "--match", "arp"}, nil, "x.pcap", "", []string{"udp", "arp"}},
	}
	for _, tt := range tests {
		o, err := parseTapArgs(noenv, tt.args)
		if err != nil {
			t.Errorf("parseTapArgs(%q): %v", tt.args, err)
			continue
		}
		if o.port != "vnet2" || !reflect.DeepEqual(o.tcpdump, tt.tcpdump) || o.write != tt.write || o.bridge != tt.bridge ||
			!reflect.DeepEqual([]string(o.match), tt.match) || !strings.HasPrefix(o.portName, "fstap") || len(o.portName) > 15 {
			t.Errorf("parseTapArgs(%q) = %+v", tt.args, o)
		}
	}
}
