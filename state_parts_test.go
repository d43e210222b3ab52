package flowspan

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/flowspan/flowspan/api"
)

// TestSaveStateRoundTrip: the file written from per-mirror encodings reads
// back as the same state, mirrors sorted by name, one per line.
func TestSaveStateRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	want := stateFile{Version: stateVersion,
		Isolated: []isolatedPort{{Bridge: "br0", Port: "mon", Tag: 20, Trunks: []uint16{1, 2}, VLANMode: "trunk"}},
		Mirrors: []stateMirror{
			{Spec: api.MirrorSpec{Name: "b", Bridge: "br0", Ports: []string{"p1"}, Match: []string{"tcp,tp_dst=443"}}, Origin: api.OriginAPI, ID: 2},
			{Spec: api.MirrorSpec{Name: "a", Bridge: "br0", All: true}, Origin: api.OriginConfig, ID: 1, CreatedPort: "out0"},
		}}
	if err := saveState(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := loadState(path)
	if err != nil {
		t.Fatal(err)
	}
	want.Mirrors[0], want.Mirrors[1] = want.Mirrors[1], want.Mirrors[0]
	wj, _ := json.Marshal(want)
	gj, _ := json.Marshal(got)
	if !reflect.DeepEqual(gj, wj) {
		t.Fatalf("read back:\n%s\nwant:\n%s", gj, wj)
	}
	if err := saveState(path, stateFile{}); err != nil {
		t.Fatal(err)
	}
	if got, err := loadState(path); err != nil || len(got.Mirrors) != 0 || len(got.Isolated) != 0 {
		t.Fatalf("empty state read back as %+v, %v", got, err)
	}
}
