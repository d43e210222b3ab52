package flowspan

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWaitSocket: waitSocket returns once the socket of a unix: target
// exists, and at its bound, when ctx ends, or at once for other targets.
func TestWaitSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "br0.flowspan")
	created := make(chan struct{})
	time.AfterFunc(30*time.Millisecond, func() {
		os.WriteFile(path, nil, 0o600)
		close(created)
	})
	waitSocket(context.Background(), "unix:"+path, time.Minute)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("returned before the socket existed: %v", err)
	}
	<-created

	waitSocket(context.Background(), "unix:"+filepath.Join(t.TempDir(), "never"), 20*time.Millisecond) // bound
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	waitSocket(ctx, "unix:"+filepath.Join(t.TempDir(), "never"), time.Hour) // ctx done
	waitSocket(context.Background(), "tcp:127.0.0.1:6653", time.Hour)       // not a file
}
