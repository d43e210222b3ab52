//go:build !flowspanclient

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/flowspan/flowspan/api"
	"github.com/sirupsen/logrus"
)

// statsSource is what the metrics endpoint reads (the Manager).
type statsSource interface {
	Stats(ctx context.Context, name string) ([]api.MirrorStats, error)
	Mirrors(ctx context.Context) ([]api.Mirror, error)
}

// writeMetrics renders mirrors and their counters in the Prometheus text
// exposition format.
func writeMetrics(w io.Writer, mirrors []api.Mirror, stats []api.MirrorStats) {
	fmt.Fprintln(w, "# HELP flowspan_mirror_up Whether the mirror's flows are installed (1) or it is pending/in error (0).")
	fmt.Fprintln(w, "# TYPE flowspan_mirror_up gauge")
	for _, m := range mirrors {
		up := 0
		if m.Status.State == api.StateActive {
			up = 1
		}
		fmt.Fprintf(w, "flowspan_mirror_up{mirror=%s,bridge=%s,state=%s} %d\n",
			label(m.Spec.Name), label(m.Spec.Bridge), label(string(m.Status.State)), up)
	}
	counter := func(name, help string, value func(api.MirrorStats) uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		for _, s := range stats {
			fmt.Fprintf(w, "%s{mirror=%s,bridge=%s} %d\n", name, label(s.Name), label(s.Bridge), value(s))
		}
	}
	counter("flowspan_mirror_packets_total", "Packets copied by the mirror.", func(s api.MirrorStats) uint64 { return s.Packets })
	counter("flowspan_mirror_bytes_total", "Bytes copied by the mirror.", func(s api.MirrorStats) uint64 { return s.Bytes })
	sel := func(name, help string, value func(api.SelectionStats) uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		for _, s := range stats {
			for _, x := range s.Selections {
				fmt.Fprintf(w, "%s{mirror=%s,bridge=%s,port=%s,direction=%s} %d\n", name, label(s.Name), label(s.Bridge),
					label(x.Port), label(string(x.Direction)), value(x))
			}
		}
	}
	sel("flowspan_selection_packets_total", "Packets copied per selection (source port and direction).", func(s api.SelectionStats) uint64 { return s.Packets })
	sel("flowspan_selection_bytes_total", "Bytes copied per selection (source port and direction).", func(s api.SelectionStats) uint64 { return s.Bytes })
}

// label quotes a Prometheus label value.
func label(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(v) + `"`
}

// serveMetrics serves GET /metrics on addr until ctx ends.
func serveMetrics(ctx context.Context, addr string, src statsSource, log logrus.FieldLogger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		ms, err := src.Mirrors(ctx)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		st, err := src.Stats(ctx, "")
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		writeMetrics(w, ms, st)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.WithField("addr", ln.Addr().String()).Info("metrics listening")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	<-errc
	return nil
}
