package flows

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// compilerWorld is a random bridge and mirror set that random steps change.
type compilerWorld struct {
	rng     *rand.Rand
	cfg     Config
	facts   BridgeFacts
	mirrors []Mirror
	next    int
}

var worldFilters = []string{
	"tcp,tp_dst=443", "udp", "arp", "ip,nw_src=10.0.0.0/8", "tcp6,tp_src=22", "icmp", "dl_vlan=10",
	"udp,nw_dst=192.168.1.1,tp_dst=53", "ipv6", "tcp,tcp_flags=+syn",
}

func (w *compilerWorld) portNames() []string {
	names := make([]string, 0, len(w.facts.Ports))
	for n := range w.facts.Ports {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (w *compilerWorld) randomPort(name string) PortFacts {
	r := w.rng
	p := PortFacts{OFPort: uint32(1 + r.IntN(40))}
	if name == "br0" {
		p.OFPort = PortLocal
	}
	switch r.IntN(8) {
	case 0:
		p.OFPort = 0 // not assigned yet
	case 1:
		p.Tag = uint16(10 + r.IntN(3)*10)
	case 2:
		p.Trunks = []uint16{10, 20}
	case 3:
		p.Tag, p.Trunks, p.VLANMode = 20, []uint16{10, 20}, "native-untagged"
	case 4:
		p.Tag, p.VLANMode = 30, "native-tagged"
	case 5:
		p.Tag, p.Isolated = 4095, true
	case 6:
		p.VLANMode = "dot1q-tunnel"
		p.Tag = 10
	}
	return p
}

// uniqueOFPorts gives ports distinct ofports (OVS never reuses one on a
// bridge at the same time).
func (w *compilerWorld) uniqueOFPorts() {
	used := map[uint32]bool{}
	for _, n := range w.portNames() {
		p := w.facts.Ports[n]
		if p.OFPort == 0 || p.OFPort == PortLocal {
			continue
		}
		for used[p.OFPort] {
			p.OFPort++
		}
		used[p.OFPort] = true
		w.facts.Ports[n] = p
	}
}

func (w *compilerWorld) pick(names []string, n int) []string {
	var out []string
	for _, i := range w.rng.Perm(len(names))[:min(n, len(names))] {
		out = append(out, names[i])
	}
	return out
}

func (w *compilerWorld) randomMirror(name string) Mirror {
	r := w.rng
	names := w.portNames()
	m := Mirror{Name: name}
	if r.IntN(3) > 0 {
		used := map[uint16]bool{}
		for _, o := range w.mirrors {
			used[o.ID] = true
		}
		for m.ID = uint16(1 + r.IntN(200)); used[m.ID]; m.ID++ {
		}
	}
	sel := w.pick(append(names, "ghost"), 1+r.IntN(4))
	switch r.IntN(6) {
	case 0:
		m.All = true
		sel = nil
	case 1:
		m.VLANs = []uint16{uint16(10 * (1 + r.IntN(3)))}
		sel = nil
	}
	for _, p := range sel {
		switch r.IntN(3) {
		case 0:
			m.Ingress = append(m.Ingress, p)
		case 1:
			m.Egress = append(m.Egress, p)
		default:
			m.Ports = append(m.Ports, p)
		}
	}
	if r.IntN(3) == 0 {
		m.VLANs = append(m.VLANs, 0)
	}
	for range r.IntN(4) {
		f := worldFilters[r.IntN(len(worldFilters))]
		if !slices.Contains(m.Filters, f) {
			m.Filters = append(m.Filters, f)
		}
	}
	if r.IntN(4) == 0 {
		m.Output.VLAN = uint16(10 * (1 + r.IntN(3)))
	} else {
		out := append(w.pick(names, 1), "gone")[0]
		if r.IntN(10) == 0 {
			out = "gone"
		}
		m.Output.Port = out
		m.Ingress = slices.DeleteFunc(m.Ingress, func(s string) bool { return s == out })
		m.Egress = slices.DeleteFunc(m.Egress, func(s string) bool { return s == out })
		m.Ports = slices.DeleteFunc(m.Ports, func(s string) bool { return s == out })
	}
	if m.namesNoPorts() && !m.All && len(m.VLANs) == 0 && len(m.Filters) == 0 {
		m.All = true
	}
	if r.IntN(4) == 0 {
		m.Snaplen = uint16(64 + r.IntN(100))
	}
	return m
}

// step changes the world at random and describes what it did.
func (w *compilerWorld) step() string {
	r := w.rng
	switch k := r.IntN(21); {
	case k == 20: // an invalid spec (taken out again by the caller)
		m := w.randomMirror("bad")
		m.Filters = append(m.Filters, "tcp,bogus=1")
		w.mirrors = append(w.mirrors, m)
		return "invalid"
	case k < 7 || len(w.mirrors) == 0: // add
		w.next++
		m := w.randomMirror(fmt.Sprintf("m%03d", w.next))
		w.mirrors = append(w.mirrors, m)
		return "add " + m.Name
	case k < 10: // delete
		i := r.IntN(len(w.mirrors))
		name := w.mirrors[i].Name
		w.mirrors = slices.Delete(w.mirrors, i, i+1)
		return "delete " + name
	case k < 12: // replace a spec (same name)
		i := r.IntN(len(w.mirrors))
		id := w.mirrors[i].ID
		w.mirrors[i] = w.randomMirror(w.mirrors[i].Name)
		w.mirrors[i].ID = id
		return "change " + w.mirrors[i].Name
	case k < 13: // the caller reuses its slices: change a filter in place
		for _, m := range w.mirrors {
			if len(m.Filters) > 0 {
				m.Filters[0] = worldFilters[r.IntN(len(worldFilters))]
				if slices.Index(m.Filters, m.Filters[0]) != 0 || slices.Index(m.Filters[1:], m.Filters[0]) >= 0 {
					m.Filters = m.Filters[:1]
				}
				return "filter in place " + m.Name
			}
		}
		return "nothing"
	case k < 16: // a port changes
		names := w.portNames()
		n := names[r.IntN(len(names))]
		w.facts.Ports[n] = w.randomPort(n)
		w.uniqueOFPorts()
		return "port " + n
	case k < 17: // a port comes or goes
		n := fmt.Sprintf("p%d", r.IntN(12))
		if _, ok := w.facts.Ports[n]; ok {
			delete(w.facts.Ports, n)
			return "port gone " + n
		}
		w.facts.Ports[n] = w.randomPort(n)
		w.uniqueOFPorts()
		return "port new " + n
	case k < 18: // trunk list changed in place (the caller reuses slices)
		for _, n := range w.portNames() {
			if p := w.facts.Ports[n]; len(p.Trunks) > 0 {
				p.Trunks[0] = uint16(11 + r.IntN(3))
				return "trunks in place " + n
			}
		}
		return "nothing"
	case k < 19: // bridge settings
		w.facts.MACAgingTime = time.Duration(r.IntN(3)*100) * time.Second
		w.facts.ForwardBPDU = r.IntN(2) == 0
		return "bridge settings"
	default: // configuration
		w.cfg.Generation = uint8(1 + r.IntN(3))
		switch r.IntN(4) {
		case 0:
			w.cfg.TableBase = 10
		case 1:
			w.cfg.Registers = &Registers{Meta: 3, Egress: 4}
		case 2:
			h := 5
			w.cfg.HostEgress = &h
		default:
			w.cfg = Config{Generation: w.cfg.Generation}
		}
		return fmt.Sprintf("config %+v", w.cfg)
	}
}

// deepCopy gives Compile inputs that share nothing with the world (so the
// Compiler cannot be helped by aliasing).
func deepCopy(ms []Mirror, facts BridgeFacts) ([]Mirror, BridgeFacts) {
	out := make([]Mirror, len(ms))
	for i, m := range ms {
		out[i] = cloneMirror(m)
	}
	return out, cloneFacts(facts)
}

func statusText(st map[string]MirrorStatus) string {
	names := make([]string, 0, len(st))
	for n := range st {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		s := st[n]
		errText := ""
		if s.Err != nil {
			errText = s.Err.Error()
		}
		fmt.Fprintf(&b, "%s id=%d active=%v err=%q missing=%v flows=%d sels=%+v\n", n, s.ID, s.Active, errText, s.Missing, s.Flows, s.Selections)
	}
	return b.String()
}

// TestCompilerMatchesCompile compiles random sequences of adds, deletes,
// spec, fact and configuration changes with one long-lived Compiler and
// with a fresh Compile each time: flows (values and text), statuses and
// errors must be identical, and the parts must be the flows regrouped.
func TestCompilerMatchesCompile(t *testing.T) {
	seeds := 40
	if testing.Short() || raceEnabled {
		seeds = 10 // it tests no concurrency
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			w := &compilerWorld{rng: rand.New(rand.NewPCG(uint64(seed), 7)), facts: BridgeFacts{Ports: map[string]PortFacts{}}}
			for i := range 8 {
				n := fmt.Sprintf("p%d", i)
				w.facts.Ports[n] = w.randomPort(n)
			}
			w.facts.Ports["br0"] = PortFacts{OFPort: PortLocal}
			w.uniqueOFPorts()
			var cc Compiler
			var log []string
			reused := 0
			var prev *Result
			for range 60 {
				log = append(log, w.step())
				// The Compiler gets the world's own slices; Compile a copy.
				got, gotErr := cc.Compile(w.cfg, w.mirrors, w.facts)
				ms, facts := deepCopy(w.mirrors, w.facts)
				want, wantErr := Compile(w.cfg, ms, facts)
				if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
					t.Fatalf("after %v:\nCompiler error %v\nCompile error  %v", log, gotErr, wantErr)
				}
				if log[len(log)-1] == "invalid" {
					if gotErr == nil {
						t.Fatalf("after %v: an invalid filter compiled", log)
					}
					w.mirrors = w.mirrors[:len(w.mirrors)-1]
				}
				if gotErr != nil {
					t.Logf("after %v: %v", log, gotErr)
					continue
				}
				if !reflect.DeepEqual(got.Flows, want.Flows) {
					t.Fatalf("after %v: flows differ (-want +got):\n%s", log, lineDiff(flowTexts(want.Flows), flowTexts(got.Flows)))
				}
				if g, wn := statusText(got.Status), statusText(want.Status); g != wn || got.Generation != want.Generation {
					t.Fatalf("after %v: status differs:\nwant %s\ngot  %s", log, wn, g)
				}
				checkParts(t, got)
				if prev != nil {
					reused += sharedParts(prev, got)
				}
				prev = got
			}
			if reused == 0 {
				t.Errorf("no mirror's flows were reused in 60 steps: the cache does nothing")
			}
		})
	}
}

func flowTexts(fl []Flow) []string {
	out := make([]string, len(fl))
	for i, f := range fl {
		out[i] = f.String()
	}
	return out
}

// checkParts checks that Parts regroup Flows: the shared part holds the
// flows with mirror 0, each mirror part its flows in table order.
func checkParts(t *testing.T, r *Result) {
	t.Helper()
	if len(r.Parts) < 2 || r.Parts[0].Mirror != 0 || r.Parts[1].Mirror != 0 {
		t.Fatalf("parts: the first two are not the shared parts: %+v", r.Parts)
	}
	byMirror := map[uint16][]string{}
	for _, f := range r.Flows {
		id := Cookie(f.Cookie).Mirror()
		byMirror[id] = append(byMirror[id], f.String())
	}
	got := map[uint16][]string{}
	seen := 0
	for i, p := range r.Parts {
		if i > 1 && p.Mirror <= r.Parts[i-1].Mirror {
			t.Fatalf("parts not in ID order: %d after %d", p.Mirror, r.Parts[i-1].Mirror)
		}
		got[p.Mirror] = append(got[p.Mirror], flowTexts(p.Flows)...)
		seen += len(p.Flows)
	}
	for id, w := range byMirror {
		if g := got[id]; !slices.Equal(g, w) {
			t.Fatalf("part %d (-flows +part):\n%s", id, lineDiff(w, g))
		}
	}
	if seen != len(r.Flows) {
		t.Fatalf("parts hold %d flows, result %d", seen, len(r.Flows))
	}
}

// sharedParts counts mirror parts of b whose flows are a's same slice.
func sharedParts(a, b *Result) int {
	n := 0
	for _, pb := range b.Parts[2:] {
		for _, pa := range a.Parts[2:] {
			if pa.Mirror == pb.Mirror && len(pa.Flows) > 0 && len(pa.Flows) == len(pb.Flows) && &pa.Flows[0] == &pb.Flows[0] {
				n++
			}
		}
	}
	return n
}

// TestCompilerAddOneRegeneratesOne: adding a mirror to 50 generates only
// its flows; the others' parts are the same slices.
func TestCompilerAddOneRegeneratesOne(t *testing.T) {
	facts := sampleFacts()
	var ms []Mirror
	for i := range 50 {
		ms = append(ms, Mirror{Name: fmt.Sprintf("m%02d", i), ID: uint16(i + 1), Ingress: []string{"a1"},
			Filters: []string{fmt.Sprintf("tcp,tp_dst=%d", 1000+i)}, Output: Output{Port: "out"}})
	}
	var cc Compiler
	first, err := cc.Compile(Config{}, ms[:49], facts)
	if err != nil {
		t.Fatal(err)
	}
	second, err := cc.CompileParts(Config{}, ms, facts)
	if err != nil {
		t.Fatal(err)
	}
	if second.Flows != nil {
		t.Errorf("CompileParts returned flat flows")
	}
	if n := sharedParts(first, second); n != 49 {
		t.Errorf("%d of 49 unchanged mirrors reused their flows", n)
	}
	if a, b := first.Parts[0].Flows, second.Parts[0].Flows; len(a) == 0 || len(a) != len(b) || &a[0] != &b[0] {
		t.Errorf("the static shared flows were generated again")
	}
	// A new generation regenerates everything.
	third, err := cc.Compile(Config{Generation: 2}, ms, facts)
	if err != nil {
		t.Fatal(err)
	}
	if n := sharedParts(second, third); n != 0 {
		t.Errorf("%d mirrors reused flows of another generation", n)
	}
}

func BenchmarkCompilerAddOne256x40(b *testing.B) {
	mirrors, facts := benchInput()
	var cc Compiler
	if _, err := cc.Compile(Config{}, mirrors[:255], facts); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cc.CompileParts(Config{}, mirrors, facts); err != nil {
			b.Fatal(err)
		}
		if _, err := cc.Compile(Config{}, mirrors[:255], facts); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCompilerConcurrent compiles on one Compiler from several goroutines
// (run with -race): each result equals Compile's.
func TestCompilerConcurrent(t *testing.T) {
	facts := sampleFacts()
	all := sampleMirrors()
	var cc Compiler
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := range 20 {
				ms := all[:1+(g+i)%len(all)]
				got, err := cc.Compile(Config{}, ms, facts)
				if err != nil {
					errs <- err
					return
				}
				want, err := Compile(Config{}, ms, facts)
				if err != nil {
					errs <- err
					return
				}
				if !reflect.DeepEqual(got.Flows, want.Flows) {
					errs <- fmt.Errorf("goroutine %d, compile %d: flows differ", g, i)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
