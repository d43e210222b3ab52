package flows

import (
	"encoding/hex"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/flowspan/flowspan/ofctrl/ofpx"
)

var ofpPrintRE = regexp.MustCompile(`^OFPT_FLOW_MOD \(OF1\.3\) \(xid=0x0\): ADD (?:table:(\d+) )?(.*?) ?(?:cookie:(0x[0-9a-f]+) )?actions=(.*)$`)

// ofpPrintAsText decodes an encoded flow mod with OVS's own decoder and
// rebuilds the dump-flows line for it.
func ofpPrintAsText(t *testing.T, ofctl string, msg []byte) string {
	t.Helper()
	out, err := exec.Command(ofctl, "ofp-print", hex.EncodeToString(msg)).CombinedOutput()
	if err != nil {
		t.Fatalf("ofp-print: %v: %s", err, out)
	}
	line := strings.TrimSpace(string(out))
	m := ofpPrintRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("unexpected ofp-print output %q", line)
	}
	var b strings.Builder
	if m[3] != "" {
		b.WriteString("cookie=" + m[3] + ", ")
	}
	if m[1] != "" && m[1] != "0" {
		b.WriteString("table=" + m[1] + ", ")
	}
	b.WriteString(m[2] + " actions=" + m[4])
	return b.String()
}

// TestFlowModDecodesAsText encodes every flow of a pipeline that uses every
// action and match kind and checks OVS decodes it to the flow's own text.
func TestFlowModDecodesAsText(t *testing.T) {
	ofctl := needOfctl(t)
	var fl []Flow
	res, err := Compile(Config{}, sampleMirrors(), sampleFacts())
	if err != nil {
		t.Fatal(err)
	}
	fl = append(fl, res.Flows...)
	for i, tc := range filterCases {
		m, err := ParseFilter(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		fl = append(fl, Flow{Table: 7, Priority: uint16(100 + i), Cookie: 7, Match: m.WithReg(0, 0x10000, 0xffff0000), Actions: []Action{ActResubmit{8}}})
	}
	for _, f := range fl {
		fm, err := f.FlowMod(FlowAdd)
		if err != nil {
			t.Errorf("FlowMod(%s): %v", f, err)
			continue
		}
		msg, err := ofpx.MarshalFlowMod(fm, 0)
		if err != nil {
			t.Errorf("MarshalFlowMod(%s): %v", f, err)
			continue
		}
		if got, want := ofpPrintAsText(t, ofctl, msg), f.String(); got != want {
			t.Errorf("encoded flow decodes differently\nwant %s\ngot  %s", want, got)
		}
	}
}

func TestFlowModDelete(t *testing.T) {
	f := Flow{Table: 5, Priority: 300, Cookie: 9, Match: Match{}.WithInPort(3), Actions: []Action{ActNormal{}}}
	fm, err := f.FlowMod(FlowDeleteStrict)
	if err != nil {
		t.Fatal(err)
	}
	if len(fm.Instructions) != 0 || fm.Command != FlowDeleteStrict || fm.Priority != 300 || fm.TableId != 5 {
		t.Errorf("delete flow mod = %+v", fm)
	}
	bad := Flow{Table: 8, Priority: 1, Actions: []Action{ActOutput{Port: PortLocal, MaxLen: 100}}}
	if _, err := bad.FlowMod(FlowAdd); err == nil {
		t.Errorf("truncated output to LOCAL encoded, want error")
	}
}
