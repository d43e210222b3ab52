package ofctrl

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"testing"
)

// FuzzDecode feeds arbitrary bytes through the path a connection uses for
// what a switch sends: readFrame (length-prefixed, bounded), then
// parseMessage (called directly, so a panic fails the fuzz run instead of
// being recovered), then conn.handle (dispatch, echo replies, events).
//
//	go test -run='^$' -fuzz='^FuzzDecode$' -fuzztime=10s ./ofctrl/
func FuzzDecode(f *testing.F) {
	f.Add(helloMsg(1))
	f.Add(featuresReply(2, 0x1234))
	f.Add(flowStatsReply(3, true, 1, 7, 8))
	f.Add(errorMsg(4, 2, 4, []byte("failing request")))
	e := errorMsg(5, 0xffff, 2313, make([]byte, 8))
	binary.BigEndian.PutUint32(e[12:], onfExperimenter)
	f.Add(e)
	f.Add(bundleControlMsg(6, 1, bundleCommitReply))
	ps := newMsg(typePortStatus, 0, 8+portLen)
	copy(ps[16+16:], "eth0")
	f.Add(ps)
	pd := newMsg(typeMultipartReply, 7, 8+portLen)
	binary.BigEndian.PutUint16(pd[8:], mpPortDesc)
	f.Add(pd)
	f.Add(append(newMsg(typeEchoRequest, 8, 2), newMsg(typeBarrierReply, 9, 0)...))
	f.Add([]byte{4, 19, 0, 9, 0, 0, 0, 1, 0})

	c := New(Config{MaxQueuedEvents: 16})
	f.Cleanup(func() { c.Close() })
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := net.Pipe()
		defer b.Close()
		cn := newConn(c, a, nil, 1, "fuzz")
		defer cn.close(nil)
		br := bufio.NewReader(bytes.NewReader(data))
		for {
			fr, err := readFrame(br, MaxFrame)
			if err != nil {
				return
			}
			if len(fr) < headerLen || int(binary.BigEndian.Uint16(fr[2:])) != len(fr) {
				t.Fatalf("readFrame returned a %d-byte frame with length field %d", len(fr), binary.BigEndian.Uint16(fr[2:]))
			}
			m, err := parseMessage(fr)
			if err == nil {
				if m.xid != frameXID(fr) || m.typ != fr[1] {
					t.Fatalf("parsed header mismatch")
				}
				for _, fs := range m.flows {
					if len(fs.Match) < 4 {
						t.Fatalf("flow stat with %d-byte match", len(fs.Match))
					}
				}
				if m.typ == typeError && m.err == nil {
					t.Fatalf("error message without SwitchError")
				}
			}
			if err := cn.handle(fr); err != nil {
				return // the connection would be closed here
			}
			cn.wmu.Lock()
			cn.wbuf = cn.wbuf[:0]
			cn.wmu.Unlock()
		}
	})
}
