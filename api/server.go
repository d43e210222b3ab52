//go:build !flowspanclient

package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// HandlerConfig configures NewHandler. The zero value is usable.
type HandlerConfig struct {
	// Logger receives request errors; nil discards.
	Logger logrus.FieldLogger
	// Version is reported by GET /v1/version.
	Version string
}

type handler struct {
	b   Backend
	log logrus.FieldLogger
	ver string
}

// maxBody bounds request bodies.
const maxBody = 1 << 20

// NewHandler returns the HTTP handler serving the v1 API on top of b.
// See the package documentation for the routes.
func NewHandler(b Backend, cfg HandlerConfig) http.Handler {
	h := &handler{b: b, log: cfg.Logger, ver: cfg.Version}
	if h.log == nil {
		l := logrus.New()
		l.Out = io.Discard
		h.log = l
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/version", h.version)
	mux.HandleFunc("GET /v1/mirrors", h.list)
	mux.HandleFunc("POST /v1/mirrors", h.add)
	mux.HandleFunc("GET /v1/mirrors/{name}", h.get)
	mux.HandleFunc("DELETE /v1/mirrors/{name}", h.del)
	mux.HandleFunc("GET /v1/mirrors/{name}/stats", h.stats)
	mux.HandleFunc("GET /v1/mirrors/{name}/flows", h.flows)
	mux.HandleFunc("GET /v1/stats", h.stats)
	mux.HandleFunc("POST /v1/bridges/{bridge}/release", h.release)
	mux.HandleFunc("POST /v1/taps", h.tap)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, h.log, WithCode(CodeNotFound, fmt.Errorf("no such API endpoint: %s %s (this daemon speaks %s)", r.Method, r.URL.Path, Version)))
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, log logrus.FieldLogger, err error) {
	code := CodeOf(err)
	if code == CodeInternal {
		log.WithError(err).Warn("api request failed")
	}
	writeJSON(w, code.HTTPStatus(), ErrorBody{Error: err.Error(), Code: code})
}

func (h *handler) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, VersionInfo{Version: h.ver, API: Version})
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	ms, err := h.b.Mirrors(r.Context())
	if err != nil {
		writeError(w, h.log, err)
		return
	}
	if ms == nil {
		ms = []Mirror{}
	}
	writeJSON(w, 200, MirrorList{Mirrors: ms})
}

func decodeSpec(r *http.Request) (MirrorSpec, error) {
	var spec MirrorSpec
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return spec, WithCode(CodeInvalid, fmt.Errorf("mirror spec: bad JSON: %w", err))
	}
	return spec, nil
}

func (h *handler) add(w http.ResponseWriter, r *http.Request) {
	spec, err := decodeSpec(r)
	if err != nil {
		writeError(w, h.log, err)
		return
	}
	if spec.Ephemeral {
		writeError(w, h.log, WithCode(CodeInvalid, fmt.Errorf("mirror %q: ephemeral mirrors are created with POST /v1/taps", spec.Name)))
		return
	}
	m, err := h.b.AddMirror(r.Context(), spec, OriginAPI)
	if err != nil {
		writeError(w, h.log, err)
		return
	}
	writeJSON(w, 201, m)
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	m, err := h.b.Mirror(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, h.log, err)
		return
	}
	writeJSON(w, 200, m)
}

func (h *handler) del(w http.ResponseWriter, r *http.Request) {
	if err := h.b.DeleteMirror(r.Context(), r.PathValue("name")); err != nil {
		writeError(w, h.log, err)
		return
	}
	w.WriteHeader(204)
}

func (h *handler) stats(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	st, err := h.b.Stats(r.Context(), name)
	if err != nil {
		writeError(w, h.log, err)
		return
	}
	if name != "" {
		if len(st) != 1 {
			writeError(w, h.log, fmt.Errorf("mirror %q: stats: backend returned %d entries", name, len(st)))
			return
		}
		writeJSON(w, 200, st[0])
		return
	}
	if st == nil {
		st = []MirrorStats{}
	}
	writeJSON(w, 200, StatsList{Mirrors: st})
}

func (h *handler) flows(w http.ResponseWriter, r *http.Request) {
	fl, err := h.b.Flows(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, h.log, err)
		return
	}
	if fl == nil {
		fl = []string{}
	}
	writeJSON(w, 200, FlowList{Flows: fl})
}

func (h *handler) release(w http.ResponseWriter, r *http.Request) {
	res, err := h.b.Release(r.Context(), r.PathValue("bridge"))
	if err != nil {
		writeError(w, h.log, err)
		return
	}
	if res.Deleted == nil {
		res.Deleted = []string{}
	}
	writeJSON(w, 200, res)
}

// tapCleanupTimeout bounds deleting a tap mirror after its session ends.
const tapCleanupTimeout = 30 * time.Second

// tap creates an ephemeral mirror, answers 201 with the Mirror as one JSON
// line, then holds the response open until the client goes away (or the
// server shuts down) and deletes the mirror.
func (h *handler) tap(w http.ResponseWriter, r *http.Request) {
	spec, err := decodeSpec(r)
	if err != nil {
		writeError(w, h.log, err)
		return
	}
	spec.Ephemeral = true
	// Drain the body so the server starts watching the connection: r.Context()
	// is then cancelled as soon as the client goes away.
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxBody))
	ctx := r.Context()
	m, err := h.b.AddMirror(ctx, spec, OriginTap)
	if err != nil {
		writeError(w, h.log, err)
		return
	}
	log := h.log.WithField("mirror", spec.Name)
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tapCleanupTimeout)
		defer cancel()
		if err := h.b.DeleteMirror(dctx, spec.Name); err != nil && !errors.Is(err, ErrNotFound) {
			log.WithError(err).Warn("tap ended: deleting mirror failed")
			return
		}
		log.Info("tap ended: mirror deleted")
	}()
	writeJSON(w, 201, m)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	// ctx ends when the client disconnects; shutdown ends when Serve stops.
	shutdown, _ := ctx.Value(shutdownKey{}).(chan struct{})
	select {
	case <-ctx.Done():
	case <-shutdown:
	}
}

// Listen creates the API unix socket at path with mode 0600 and returns its
// listener. The socket is bound under a temporary name, chmod-ed and renamed
// into place, so it is never reachable with wider permissions. A stale
// socket at path (nobody accepting) is replaced; a live one is an error.
// The parent directory is created (mode 0755) if missing.
func Listen(path string) (net.Listener, error) {
	path = strings.TrimPrefix(path, "unix:")
	if path == "" {
		return nil, errors.New("api socket: empty path")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if _, err := os.Lstat(path); err == nil {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("api socket %s: already in use (is another flowspan serve running?)", path)
		}
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".%s.%d.tmp", filepath.Base(path), os.Getpid()))
	_ = os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	// Keep the socket file after Close: we unlink the final path ourselves.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	return &unixListener{UnixListener: ln, path: path}, nil
}

type unixListener struct {
	*net.UnixListener
	path string
}

// Close stops listening and removes the socket file.
func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	os.Remove(l.path)
	return err
}

// shutdownKey holds, in request contexts, a channel closed when Serve stops.
type shutdownKey struct{}

// Serve serves h on ln until ctx ends, then shuts down gracefully: new
// connections are refused, in-flight requests get up to 10 s, open tap
// sessions end (their mirrors are deleted). It closes ln.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	shutdown := make(chan struct{})
	base := context.WithValue(context.WithoutCancel(ctx), shutdownKey{}, shutdown)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	srv.RegisterOnShutdown(func() { close(shutdown) })
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("api server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	if err != nil {
		return fmt.Errorf("api server shutdown: %w", err)
	}
	return nil
}
