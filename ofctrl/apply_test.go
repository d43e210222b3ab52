package ofctrl

import (
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestApplyLargeBundleInterleaved: a bundle far larger than Apply's chunk
// buffers reaches the switch complete and in order (xids consecutive,
// cookies 1..n) while other requests on the same connection are answered
// in between.
func TestApplyLargeBundleInterleaved(t *testing.T) {
	checkLeaks(t)
	c := newTestController(t, Config{})
	fs := connect(t, c, 5)
	ctx := testCtx(t)
	sw, err := c.Switch(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	const n, barriers = 5000, 20
	applied := make(chan error, 1)
	go func() { applied <- sw.Apply(ctx, testMods(n)) }()
	var wg sync.WaitGroup
	barrierErrs := make(chan error, barriers)
	for range barriers {
		wg.Add(1)
		go func() { defer wg.Done(); barrierErrs <- sw.Barrier(ctx) }()
	}
	adds, others := 0, 0
	var lastXID, bundleID uint32
	for done := false; !done; {
		f := fs.read()
		switch f[1] {
		case typeBarrierRequest:
			others++
			fs.write(reply(f, typeBarrierReply, nil))
			continue
		case typeExperimenter:
		default:
			t.Fatalf("unexpected %s", msgTypeName(f[1]))
		}
		et, id, ct, inner := parseBundle(t, f)
		switch {
		case et == onfBundleAdd:
			adds++
			if id != bundleID || frameXID(f) != lastXID+1 {
				t.Fatalf("add %d: bundle %d xid %d, want bundle %d xid %d", adds, id, frameXID(f), bundleID, lastXID+1)
			}
			if ck := binary.BigEndian.Uint64(inner[8:]); ck != uint64(adds) {
				t.Fatalf("add %d carries cookie %d (lost or reordered)", adds, ck)
			}
			lastXID = frameXID(f)
		case ct == bundleOpen:
			bundleID, lastXID = id, frameXID(f)
			fs.write(bundleControlMsg(frameXID(f), id, bundleOpenReply))
		case ct == bundleCommit:
			if adds != n {
				t.Fatalf("commit after %d of %d adds", adds, n)
			}
			fs.write(bundleControlMsg(frameXID(f), id, bundleCommitReply))
			done = true
		default:
			t.Fatalf("unexpected bundle control %d", ct)
		}
	}
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
	// Barrier requests not yet read are still to be answered.
	for others < barriers+1 { // + Apply's own barrier
		f := fs.read()
		if f[1] != typeBarrierRequest {
			t.Fatalf("unexpected %s", msgTypeName(f[1]))
		}
		others++
		fs.write(reply(f, typeBarrierReply, nil))
	}
	wg.Wait()
	close(barrierErrs)
	for err := range barrierErrs {
		if err != nil {
			t.Errorf("Barrier during Apply: %v", err)
		}
	}
}

// TestApplyMemoryBounded: Apply's memory does not grow with the bundle.
// Against a switch that reads no faster than the connection allows (a
// net.Pipe), applying 50,000 flow mods (about 5.6 MB on the wire)
// allocates a small fraction of that: chunk buffers are reused, not
// queued whole.
func TestApplyMemoryBounded(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation bound not checked under the race detector (sync.Pool drops buffers at random); run without -race")
	}
	checkLeaks(t)
	c := New(Config{}) // no test logger: its output would count
	defer c.Close()
	fs := attach(t, c)
	sinkDone := make(chan error, 1)
	go func() { sinkDone <- runSink(fs.nc, 7) }()
	ctx := testCtx(t)
	sw, err := c.Switch(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	mods := filterFlows(50000)
	size := 0
	for _, fm := range mods {
		b, err := appendBundleAddFlowMod(nil, 1, 1, fm)
		if err != nil {
			t.Fatal(err)
		}
		size += len(b)
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	if err := sw.Apply(ctx, mods); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&m1)
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > uint64(size)/4 {
		t.Errorf("Apply of %d flow mods (%d bytes encoded) allocated %d bytes, want under a quarter of that", len(mods), size, alloc)
	} else {
		t.Logf("Apply of %d flow mods (%d bytes encoded) allocated %d bytes", len(mods), size, alloc)
	}
	fs.nc.Close()
	<-sinkDone
}

// TestApplyCancelMidStream: when ctx ends while Apply waits for the switch
// to take more of a large bundle, Apply returns the context error, the
// bundle is discarded and never committed.
func TestApplyCancelMidStream(t *testing.T) {
	checkLeaks(t)
	c := newTestController(t, Config{})
	fs := connect(t, c, 5)
	sw := mustSwitch(t, c, 5)
	const n = 20000 // ~1 MB, far more than Apply keeps in flight
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	applied := make(chan error, 1)
	go func() { applied <- sw.Apply(ctx, testMods(n)) }()
	open := fs.read()
	_, id, ct, _ := parseBundle(t, open)
	if ct != bundleOpen {
		t.Fatalf("first message is bundle control %d, want OPEN", ct)
	}
	fs.write(bundleControlMsg(frameXID(open), id, bundleOpenReply))
	adds := 0
	for adds < 100 {
		if et, _, _, _ := parseBundle(t, fs.read()); et == onfBundleAdd {
			adds++
		}
	}
	// The switch stops reading: net.Pipe holds nothing, so Apply soon
	// waits for a chunk buffer to come back. Cancel it there.
	cancel()
	for {
		f := fs.read()
		et, fid, ct, _ := parseBundle(t, f)
		if et == onfBundleAdd {
			adds++
			continue
		}
		if ct == bundleCommit {
			t.Fatalf("COMMIT after cancellation (%d adds)", adds)
		}
		if ct != bundleDiscard || fid != id {
			t.Fatalf("got bundle control %d for bundle %d, want DISCARD of %d", ct, fid, id)
		}
		fs.write(bundleControlMsg(frameXID(f), id, bundleDiscardReply))
		break
	}
	err := <-applied
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "bundle discarded, nothing changed") {
		t.Fatalf("Apply = %v, want context.Canceled with the bundle discarded", err)
	}
	if adds >= n {
		t.Errorf("all %d adds were sent despite the cancellation", adds)
	}
}

// TestApplyDisconnectMidStream: the switch going away mid-bundle fails
// Apply with ErrDisconnected (the bundle dies with the connection).
func TestApplyDisconnectMidStream(t *testing.T) {
	checkLeaks(t)
	c := newTestController(t, Config{})
	fs := connect(t, c, 5)
	sw := mustSwitch(t, c, 5)
	applied := make(chan error, 1)
	go func() { applied <- sw.Apply(testCtx(t), testMods(20000)) }()
	for adds := 0; adds < 100; {
		if et, _, _, _ := parseBundle(t, fs.read()); et == onfBundleAdd {
			adds++
		}
	}
	fs.nc.Close()
	if err := <-applied; !errors.Is(err, ErrDisconnected) || !strings.Contains(err.Error(), "nothing changed") {
		t.Fatalf("Apply = %v, want ErrDisconnected, nothing changed", err)
	}
	waitEvent[Disconnected](t, c, 5*time.Second)
}
