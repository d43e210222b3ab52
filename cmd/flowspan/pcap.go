package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// pcapWriter writes the classic libpcap file format (microsecond
// timestamps, Ethernet link type), readable by tcpdump -r and Wireshark.
type pcapWriter struct {
	w       io.Writer
	snaplen uint32
	buf     []byte
}

const (
	pcapMagic      = 0xa1b2c3d4
	linkTypeEther  = 1
	defaultSnaplen = 262144
)

func newPcapWriter(w io.Writer, snaplen uint32) (*pcapWriter, error) {
	if snaplen == 0 {
		snaplen = defaultSnaplen
	}
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr[0:], pcapMagic)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	// thiszone and sigfigs stay zero.
	binary.LittleEndian.PutUint32(hdr[16:], snaplen)
	binary.LittleEndian.PutUint32(hdr[20:], linkTypeEther)
	if _, err := w.Write(hdr); err != nil {
		return nil, fmt.Errorf("write pcap header: %w", err)
	}
	return &pcapWriter{w: w, snaplen: snaplen}, nil
}

// WritePacket writes one record; origLen is the packet's length on the wire.
func (p *pcapWriter) WritePacket(ts time.Time, data []byte, origLen int) error {
	if uint32(len(data)) > p.snaplen {
		data = data[:p.snaplen]
	}
	if origLen < len(data) {
		origLen = len(data)
	}
	need := 16 + len(data)
	if cap(p.buf) < need {
		p.buf = make([]byte, need)
	}
	b := p.buf[:need]
	us := ts.UnixMicro()
	binary.LittleEndian.PutUint32(b[0:], uint32(us/1e6))
	binary.LittleEndian.PutUint32(b[4:], uint32(us%1e6))
	binary.LittleEndian.PutUint32(b[8:], uint32(len(data)))
	binary.LittleEndian.PutUint32(b[12:], uint32(origLen))
	copy(b[16:], data)
	if _, err := p.w.Write(b); err != nil {
		return fmt.Errorf("write pcap record: %w", err)
	}
	return nil
}
