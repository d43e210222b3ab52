package flowspan

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

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
func saveState(path string, st stateFile) (err error) {
	st.Version = stateVersion
	sort.Slice(st.Mirrors, func(i, j int) bool { return st.Mirrors[i].Spec.Name < st.Mirrors[j].Spec.Name })
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	b = append(b, '\n')
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
