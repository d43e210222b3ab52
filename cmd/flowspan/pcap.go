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

// pcapRecord is one packet read back from a pcap stream.
type pcapRecord struct {
	Time    time.Time
	Data    []byte
	OrigLen int
}

// readPcap reads a whole classic pcap stream (as written by pcapWriter or
// tcpdump -w, either byte order, microsecond or nanosecond timestamps).
func readPcap(r io.Reader) ([]pcapRecord, error) {
	hdr := make([]byte, 24)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, fmt.Errorf("read pcap header: %w", err)
	}
	var bo binary.ByteOrder
	nano := false
	switch {
	case binary.LittleEndian.Uint32(hdr) == pcapMagic:
		bo = binary.LittleEndian
	case binary.BigEndian.Uint32(hdr) == pcapMagic:
		bo = binary.BigEndian
	case binary.LittleEndian.Uint32(hdr) == 0xa1b23c4d:
		bo, nano = binary.LittleEndian, true
	case binary.BigEndian.Uint32(hdr) == 0xa1b23c4d:
		bo, nano = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("read pcap header: bad magic %#x", hdr[:4])
	}
	var out []pcapRecord
	rec := make([]byte, 16)
	for {
		if _, err := io.ReadFull(r, rec); err != nil {
			if err == io.EOF {
				return out, nil
			}
			return out, fmt.Errorf("read pcap record %d: %w", len(out), err)
		}
		sec, frac := bo.Uint32(rec[0:]), bo.Uint32(rec[4:])
		incl, orig := bo.Uint32(rec[8:]), bo.Uint32(rec[12:])
		if incl > 1<<20 {
			return out, fmt.Errorf("read pcap record %d: length %d too large", len(out), incl)
		}
		data := make([]byte, incl)
		if _, err := io.ReadFull(r, data); err != nil {
			return out, fmt.Errorf("read pcap record %d: %w", len(out), err)
		}
		ns := int64(frac) * 1000
		if nano {
			ns = int64(frac)
		}
		out = append(out, pcapRecord{Time: time.Unix(int64(sec), ns), Data: data, OrigLen: int(orig)})
	}
}
