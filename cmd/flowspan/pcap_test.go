package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

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
