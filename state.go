package flowspan

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/flowspan/flowspan/api"
)

// stateVersion is the state file format version.
const stateVersion = 1

// stateFile is the persisted form of the Manager's desired state.
type stateFile struct {
	Version int           `json:"version"`
	Mirrors []stateMirror `json:"mirrors"`
	// Isolated records the VLAN settings existing output ports had before
	// flowspan isolated them (only ports that had any), so copies are
	// tagged as the native Mirror would on that port.
	Isolated []isolatedPort `json:"isolated,omitempty"`
}

// isolatedPort is an output port's VLAN configuration before isolation.
type isolatedPort struct {
	Bridge   string   `json:"bridge"`
	Port     string   `json:"port"`
	Tag      uint16   `json:"tag,omitempty"`
	Trunks   []uint16 `json:"trunks,omitempty"`
	VLANMode string   `json:"vlan_mode,omitempty"`
}

type stateMirror struct {
	Spec   api.MirrorSpec `json:"spec"`
	Origin api.Origin     `json:"origin"`
	// ID is the mirror's stable id on its bridge (cookie bits).
	ID uint32 `json:"id"`
	// CreatedPort is the output port flowspan created for the mirror ("" if
	// none); it is removed with the mirror.
	CreatedPort string `json:"created_port,omitempty"`
}

// loadState reads the state file; a missing file is an empty state.
func loadState(path string) (stateFile, error) {
	var st stateFile
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return stateFile{Version: stateVersion}, nil
	}
	if err != nil {
		return st, fmt.Errorf("state file %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("state file %s: corrupt: %w", path, err)
	}
	if st.Version != stateVersion {
		return st, fmt.Errorf("state file %s: unsupported version %d (want %d)", path, st.Version, stateVersion)
	}
	return st, nil
}

// saveState writes st to path atomically: a temporary file in the same
// directory is written and fsynced, renamed over path and the directory is
// fsynced. A crash at any point leaves either the old or the new file
// complete, never a torn one.
func saveState(path string, st stateFile) error {
	ms := make([]encodedMirror, len(st.Mirrors))
	for i, sm := range st.Mirrors {
		e, err := encodeMirror(sm)
		if err != nil {
			return fmt.Errorf("state file %s: %w", path, err)
		}
		ms[i] = e
	}
	return saveStateParts(path, st.Isolated, ms)
}

// encodedMirror is a stateMirror encoded as JSON, with its name.
type encodedMirror struct {
	name string
	json []byte
}

func encodeMirror(sm stateMirror) (encodedMirror, error) {
	b, err := json.Marshal(sm)
	if err != nil {
		return encodedMirror{}, fmt.Errorf("mirror %q: %w", sm.Spec.Name, err)
	}
	return encodedMirror{sm.Spec.Name, b}, nil
}

// saveStateParts is saveState with each mirror already encoded: the
// Manager keeps every mirror's encoding, so a change costs one copy of the
// file, not a re-encoding of every mirror. The file is a stateFile with one
// mirror per line, sorted by name.
func saveStateParts(path string, isolated []isolatedPort, mirrors []encodedMirror) (err error) {
	head, err := json.Marshal(struct {
		Version  int            `json:"version"`
		Isolated []isolatedPort `json:"isolated,omitempty"`
	}{stateVersion, isolated})
	if err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	sorted := slices.Clone(mirrors)
	slices.SortFunc(sorted, func(a, b encodedMirror) int { return strings.Compare(a.name, b.name) })
	size := len(head) + 16
	for _, m := range sorted {
		size += len(m.json) + 2
	}
	b := make([]byte, 0, size)
	b = append(b, head[:len(head)-1]...) // without the closing brace
	b = append(b, ",\n\"mirrors\": ["...)
	for i, m := range sorted {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '\n')
		b = append(b, m.json...)
	}
	b = append(b, "\n]}\n"...)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("state file %s: write: %w", path, err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("state file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("state file %s: fsync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("state file %s: rename: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("state file %s: fsync dir: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("state file %s: fsync dir: %w", path, err)
	}
	return nil
}
