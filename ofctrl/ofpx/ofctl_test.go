package ofpx

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needOfctl returns the ovs-ofctl path, skipping (or failing under CI=true)
// when it is not installed.
func needOfctl(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("ovs-ofctl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ovs-ofctl not found (install openvswitch-common): %v", err)
		}
		t.Skipf("ovs-ofctl not found: %v", err)
	}
	return p
}

// ofctlFlowMods runs "ovs-ofctl -O OpenFlow13 <args...> unix:SOCK [more...]"
// against a minimal fake switch and returns the flow mods it sent, with xid
// zeroed, so encodings can be compared byte for byte with ours.
func ofctlFlowMods(t *testing.T, cmd string, args ...string) [][]byte {
	t.Helper()
	bin := needOfctl(t)
	dir, err := os.MkdirTemp("", "ofpx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "sw.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	full := append([]string{"-O", "OpenFlow13", "--no-names", cmd, "unix:" + sock}, args...)
	c := exec.CommandContext(ctx, bin, full...)
	var stderr strings.Builder
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	type result struct {
		mods [][]byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
		var mods [][]byte
		for {
			hdr := make([]byte, 8)
			if _, err := io.ReadFull(conn, hdr); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				done <- result{mods, err}
				return
			}
			l := int(binary.BigEndian.Uint16(hdr[2:]))
			msg := make([]byte, l)
			copy(msg, hdr)
			if _, err := io.ReadFull(conn, msg[8:]); err != nil {
				done <- result{mods, err}
				return
			}
			reply := func(typ byte, body []byte) {
				r := make([]byte, 8+len(body))
				r[0], r[1] = 4, typ
				binary.BigEndian.PutUint16(r[2:], uint16(len(r)))
				copy(r[4:8], msg[4:8])
				copy(r[8:], body)
				_, _ = conn.Write(r)
			}
			switch msg[1] {
			case 0: // HELLO
				reply(0, nil)
			case 2: // ECHO_REQUEST
				reply(3, msg[8:])
			case 5: // FEATURES_REQUEST
				reply(6, make([]byte, 24))
			case 14: // FLOW_MOD
				binary.BigEndian.PutUint32(msg[4:], 0)
				mods = append(mods, msg)
			case 18: // MULTIPART_REQUEST (table features): one bare table 0
				// with the 8 required properties, each empty (4 bytes + 4 pad).
				body := make([]byte, 8+64+8*8)
				copy(body, msg[8:10])
				body[9] = 64 + 64 // ofp_table_features.length
				binary.BigEndian.PutUint32(body[8+60:], 1000000)
				for i := 0; i < 8; i++ {
					p := body[8+64+8*i:]
					binary.BigEndian.PutUint16(p, uint16(2*i)) // INSTRUCTIONS, NEXT_TABLES, ..., APPLY_SETFIELD
					binary.BigEndian.PutUint16(p[2:], 4)
				}
				reply(19, body)
			case 20: // BARRIER_REQUEST
				reply(21, nil)
			}
		}
	}()
	werr := c.Wait()
	ln.Close()
	r := <-done
	if werr != nil {
		t.Fatalf("ovs-ofctl %s: %v: %s", strings.Join(full, " "), werr, stderr.String())
	}
	if r.err != nil {
		t.Fatalf("fake switch: %v", r.err)
	}
	return r.mods
}

// ofpPrint decodes raw OpenFlow bytes with "ovs-ofctl ofp-print".
func ofpPrint(t *testing.T, msg []byte) string {
	t.Helper()
	bin := needOfctl(t)
	out, err := exec.Command(bin, "ofp-print", hex.EncodeToString(msg)).CombinedOutput()
	if err != nil {
		t.Fatalf("ofp-print: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}
