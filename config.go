package flowspan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"sort"

	"github.com/flowspan/flowspan/api"
	"gopkg.in/yaml.v3"
)

// ConfigFile is the YAML config file (serve --config): mirrors with the
// fields of `flowspan mirror add`, e.g.
//
//	mirrors:
//	  - name: web
//	    bridge: br0
//	    ports: [vnet2]
//	    match: ["tcp,tp_dst=443"]
//	    output: {port: mirror0, create: true}
type ConfigFile struct {
	Mirrors []api.MirrorSpec `yaml:"mirrors"`
}

// LoadConfig reads and parses a config file. Unknown fields and duplicate
// mirror names are errors.
func LoadConfig(path string) (ConfigFile, error) {
	var cf ConfigFile
	b, err := os.ReadFile(path)
	if err != nil {
		return cf, fmt.Errorf("config %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cf); err != nil && !errors.Is(err, io.EOF) {
		return cf, fmt.Errorf("config %s: %w", path, err)
	}
	seen := map[string]bool{}
	for i, s := range cf.Mirrors {
		if s.Name == "" {
			return cf, fmt.Errorf("config %s: mirror #%d: no name", path, i+1)
		}
		if seen[s.Name] {
			return cf, fmt.Errorf("config %s: mirror %q defined twice", path, s.Name)
		}
		seen[s.Name] = true
	}
	return cf, nil
}

// ApplyConfig makes the mirrors that came from the config file exactly
// those of cf: new ones are added, changed ones replaced, and mirrors that
// came from the file but are no longer in it are deleted. Mirrors created
// through the API are not touched; a config mirror with the name of one is
// an error. Every mirror is validated before anything changes; ports may be
// missing (such mirrors stay pending until the ports appear). If applying
// fails part way, the mirrors applied so far stay and the error says which
// one failed.
func (m *Manager) ApplyConfig(ctx context.Context, cf ConfigFile) error {
	if err := m.waitReady(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()

	want := map[string]api.MirrorSpec{}
	for _, s := range cf.Mirrors {
		s = normalize(s, api.OriginConfig)
		if _, dup := want[s.Name]; dup {
			return invalidf("config: mirror %q defined twice", s.Name)
		}
		if err := m.checkSpec(s); err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if cur, ok := m.mirrors[s.Name]; ok && cur.origin != api.OriginConfig {
			return api.WithCode(api.CodeExists, fmt.Errorf("config: mirror %q: already exists, created by %s", s.Name, cur.origin))
		}
		want[s.Name] = s
	}
	var del, add []string
	for name, mi := range m.mirrors {
		if mi.origin != api.OriginConfig {
			continue
		}
		s, ok := want[name]
		if !ok || !reflect.DeepEqual(normalize(mi.spec, api.OriginConfig), s) {
			del = append(del, name)
		}
	}
	for name := range want {
		if mi, ok := m.mirrors[name]; !ok || slices.Contains(del, mi.spec.Name) {
			add = append(add, name)
		}
	}
	sort.Strings(del)
	sort.Strings(add)
	for _, name := range del {
		if err := m.deleteLocked(ctx, name); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	for _, name := range add {
		if _, err := m.addLocked(ctx, want[name], api.OriginConfig, false); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	if len(del)+len(add) > 0 {
		m.log.WithFields(map[string]any{"added": add, "deleted": del}).Info("config applied")
	}
	return nil
}
