//go:build !flowspanclient

package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tests of the client's own HTTP/1.1: against scripted servers that write
// raw replies, and against the real handler compared with what a net/http
// client (what Client used before) gets.

// rawServer accepts connections on a fresh socket and runs handle on each
// (in its own goroutine) with the request already parsed. Cleanup closes
// the listener and waits for every handler.
type rawServer struct {
	sock string
	reqs chan rawRequest
}

type rawRequest struct {
	method, uri string
	header      http.Header
	body        []byte
}

func newRawServer(t *testing.T, handle func(c net.Conn, r rawRequest)) *rawServer {
	t.Helper()
	s := &rawServer{sock: filepath.Join(t.TempDir(), "raw.sock"), reqs: make(chan rawRequest, 16)}
	ln, err := net.Listen("unix", s.sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					t.Errorf("raw server: reading request: %v", err)
					return
				}
				body, err := io.ReadAll(req.Body)
				if err != nil {
					t.Errorf("raw server: reading request body: %v", err)
					return
				}
				r := rawRequest{method: req.Method, uri: req.RequestURI, header: req.Header, body: body}
				select {
				case s.reqs <- r:
				default:
				}
				handle(c, r)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return s
}

// replying returns a handler that writes reply and closes the connection.
func replying(reply string) func(net.Conn, rawRequest) {
	return func(c net.Conn, _ rawRequest) { _, _ = io.WriteString(c, reply) }
}

const versionJSON = `{"version":"1.2.3","api":"v1"}`

// chunked encodes body in chunks of n bytes.
func chunked(body string, n int) string {
	var b strings.Builder
	for len(body) > 0 {
		k := min(n, len(body))
		fmt.Fprintf(&b, "%x\r\n%s\r\n", k, body[:k])
		body = body[k:]
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

func TestClientReplyFraming(t *testing.T) {
	want := VersionInfo{Version: "1.2.3", API: "v1"}
	for _, tc := range []struct{ name, reply string }{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 31\r\n\r\n" + versionJSON},
		{"content-length with trailing newline", "HTTP/1.1 200 OK\r\nContent-Length: 32\r\nConnection: close\r\n\r\n" + versionJSON + "\n"},
		{"header names in any case, bare LF", "HTTP/1.1 200 OK\ncOnTeNt-LeNgTh:   31  \n\n" + versionJSON},
		{"chunked one chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(versionJSON, 100)},
		{"chunked 1-byte chunks", "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n" + chunked(versionJSON, 1)},
		{"chunked with extensions and trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"A;name=value\r\n" + versionJSON[:10] + "\r\n15 \r\n" + versionJSON[10:] + "\r\n0\r\nX-Trailer: 1\r\n\r\n"},
		{"until close", "HTTP/1.0 200 OK\r\n\r\n" + versionJSON},
		{"after 100 Continue", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 31\r\n\r\n" + versionJSON},
		{"repeated equal Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 31\r\nContent-Length: 31\r\n\r\n" + versionJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t, replying(tc.reply))
			got, err := NewClient(s.sock).Version(context.Background())
			if err != nil || got != want {
				t.Fatalf("Version = %+v, %v; want %+v", got, err, want)
			}
		})
	}
	t.Run("no body", func(t *testing.T) {
		// 204 and 304 replies and replies to HEAD have no body whatever
		// their header says: what follows belongs to no reply.
		for _, tc := range []struct{ method, reply string }{
			{"DELETE", "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n0123456789"},
			{"GET", "HTTP/1.1 304 Not Modified\r\n\r\n0123456789"},
			{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"},
		} {
			resp, body, err := readResponse(bufio.NewReader(strings.NewReader(tc.reply)), tc.method)
			if err != nil {
				t.Fatalf("%s %q: %v", tc.method, tc.reply, err)
			}
			if b, err := io.ReadAll(body); err != nil || len(b) != 0 {
				t.Errorf("%s %q: status %d, body %q, %v; want no body", tc.method, tc.reply, resp.statusCode, b, err)
			}
		}
	})
}

// TestClientRequestWire checks what the client writes: method, escaped
// path, Host, JSON body with its type and length, Connection: close.
func TestClientRequestWire(t *testing.T) {
	s := newRawServer(t, replying("HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}"))
	c := NewClient("unix:" + s.sock)
	ctx := context.Background()
	spec := MirrorSpec{Name: "m1", Bridge: "br0", Ports: []string{"p1"}, Output: Output{Port: "mirror0"}}
	if _, err := c.AddMirror(ctx, spec); err != nil {
		t.Fatal(err)
	}
	r := <-s.reqs
	wantBody, _ := json.Marshal(spec)
	if r.method != "POST" || r.uri != "/v1/mirrors" || r.header.Get("Host") != "" && r.header.Get("Host") != "flowspan" ||
		r.header.Get("Content-Type") != "application/json" || r.header.Get("Content-Length") != fmt.Sprint(len(wantBody)) ||
		!bytes.Equal(r.body, wantBody) || r.header.Get("Connection") != "close" {
		t.Fatalf("request = %+v %s", r, r.body)
	}
	name := "a/b c%?#é;,"
	if _, err := c.Stats(ctx, name); err != nil {
		t.Fatal(err)
	}
	r = <-s.reqs
	if want := "/v1/mirrors/" + url.PathEscape(name) + "/stats"; r.method != "GET" || r.uri != want || len(r.body) != 0 ||
		r.header.Get("Content-Type") != "" {
		t.Fatalf("request = %s %s %v %q, want GET %s without body", r.method, r.uri, r.header, r.body, want)
	}
	if _, err := c.Release(ctx, "br0"); err != nil {
		t.Fatal(err)
	}
	if r = <-s.reqs; r.method != "POST" || r.uri != "/v1/bridges/br0/release" || r.header.Get("Content-Length") != "0" {
		t.Fatalf("request = %s %s %v", r.method, r.uri, r.header)
	}
}

func TestPathEscapeMatchesNetURL(t *testing.T) {
	var all []byte
	for b := range 256 {
		all = append(all, byte(b))
	}
	for _, s := range []string{"", "m1", "web-1.x_y~z", string(all), "a/b c%?#é;,", "$&+:=@!*'()[]"} {
		if got, want := pathEscape(s), url.PathEscape(s); got != want {
			t.Errorf("pathEscape(%q) = %q, want %q", s, got, want)
		}
	}
}

func FuzzPathEscape(f *testing.F) {
	f.Add("a/b c")
	f.Add("\x00\xff%")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := pathEscape(s), url.PathEscape(s); got != want {
			t.Fatalf("pathEscape(%q) = %q, want %q", s, got, want)
		}
	})
}

func TestClientErrorReplies(t *testing.T) {
	body := func(msg string, code Code) string {
		b, _ := json.Marshal(ErrorBody{Error: msg, Code: code})
		return string(b) + "\n"
	}
	for _, tc := range []struct {
		name     string
		status   string
		body     string
		chunked  bool
		want     Error
		sentinel error
	}{
		{"invalid", "400 Bad Request", body(`mirror "m": port "p9": not on bridge br0`, CodeInvalid), false,
			Error{400, CodeInvalid, `mirror "m": port "p9": not on bridge br0`}, ErrInvalid},
		{"not found chunked", "404 Not Found", body(`mirror "zz": not found`, CodeNotFound), true,
			Error{404, CodeNotFound, `mirror "zz": not found`}, ErrNotFound},
		{"exists", "409 Conflict", body(`mirror "m": already exists`, CodeExists), false,
			Error{409, CodeExists, `mirror "m": already exists`}, ErrExists},
		{"unavailable", "503 Service Unavailable", body("switch br0 not connected", CodeUnavailable), true,
			Error{503, CodeUnavailable, "switch br0 not connected"}, ErrUnavailable},
		{"internal", "500 Internal Server Error", body("boom", CodeInternal), false,
			Error{500, CodeInternal, "boom"}, nil},
		{"not JSON", "502 Bad Gateway", "  upstream\tgone \n", false,
			Error{502, CodeInternal, "GET /v1/mirrors/m: daemon answered 502 Bad Gateway: upstream\tgone"}, nil},
		{"JSON without message", "418 I'm a teapot", `{"code":"invalid"}`, true,
			Error{418, CodeInternal, `GET /v1/mirrors/m: daemon answered 418 I'm a teapot: {"code":"invalid"}`}, nil},
		{"redirect is not success", "302 Found", "", false,
			Error{302, CodeInternal, "GET /v1/mirrors/m: daemon answered 302 Found: "}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reply := "HTTP/1.1 " + tc.status + "\r\nContent-Type: application/json\r\n"
			if tc.chunked {
				reply += "Transfer-Encoding: chunked\r\n\r\n" + chunked(tc.body, 7)
			} else {
				reply += fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(tc.body), tc.body)
			}
			s := newRawServer(t, replying(reply))
			_, err := NewClient(s.sock).Mirror(context.Background(), "m")
			var ae *Error
			if !errors.As(err, &ae) || *ae != tc.want {
				t.Fatalf("err = %#v, want %#v", err, &tc.want)
			}
			for _, sent := range []error{ErrInvalid, ErrNotFound, ErrExists, ErrUnavailable, ErrDaemonNotRunning} {
				if errors.Is(err, sent) != (sent == tc.sentinel) {
					t.Errorf("errors.Is(err, %v) = %v", sent, !(sent == tc.sentinel))
				}
			}
		})
	}
}

func TestClientMalformedReplies(t *testing.T) {
	okCL := "HTTP/1.1 200 OK\r\nContent-Length: 31\r\n\r\n"
	for _, tc := range []struct{ name, reply, want string }{
		{"nothing", "", "the daemon closed the connection without replying"},
		{"not HTTP", "SSH-2.0-OpenSSH_9.2\r\n", `malformed reply: status line "SSH-2.0-OpenSSH_9.2"`},
		{"HTTP/2", "HTTP/2 200\r\n\r\n", `malformed reply: status line "HTTP/2 200"`},
		{"long status code", "HTTP/1.1 2000 OK\r\n\r\n", `malformed reply: status line "HTTP/1.1 2000 OK"`},
		{"status code not a number", "HTTP/1.1 2x0 OK\r\n\r\n", `malformed reply: status line`},
		{"no status code", "HTTP/1.1\r\n\r\n", `malformed reply: status line "HTTP/1.1"`},
		{"status line cut short", "HTTP/1.1 200 O", `malformed reply: line cut short: "HTTP/1.1 200 O"`},
		{"header cut short", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n", "malformed reply: header cut short"},
		{"header without colon", "HTTP/1.1 200 OK\r\nContent-Length 31\r\n\r\n", `malformed reply: header line "Content-Length 31"`},
		{"folded header", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", `malformed reply: header line " b"`},
		{"negative length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", `malformed reply: Content-Length "-1"`},
		{"signed length", "HTTP/1.1 200 OK\r\nContent-Length: +31\r\n\r\n" + versionJSON, `malformed reply: Content-Length "+31"`},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: 3 1\r\n\r\n", `malformed reply: Content-Length "3 1"`},
		{"conflicting lengths", "HTTP/1.1 200 OK\r\nContent-Length: 31\r\nContent-Length: 30\r\n\r\n" + versionJSON,
			`malformed reply: conflicting content-length headers "31" and "30"`},
		{"gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", `malformed reply: unsupported Transfer-Encoding "gzip"`},
		{"101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", `malformed reply: unexpected "101 Switching Protocols"`},
		{"endless 100s", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 20), "malformed reply: more than 8 informational (1xx) replies"},
		{"huge header", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", "malformed reply: header larger than 65536 bytes"},
		{"body cut short", okCL + versionJSON[:20], "decoding daemon reply: unexpected EOF"},
		{"body not JSON", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "decoding daemon reply: invalid character 'h'"},
		{"chunk cut short", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1f\r\n" + versionJSON[:20], "decoding daemon reply: unexpected EOF"},
		{"no last chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"ver", "decoding daemon reply: unexpected EOF"},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", `decoding daemon reply: malformed reply: chunk size "zz"`},
		{"empty chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", `decoding daemon reply: malformed reply: chunk size ""`},
		{"huge chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", `malformed reply: chunk size "ffffffffffffffffff"`},
		{"chunk longer than its size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{\"x\r\n0\r\n\r\n",
			"decoding daemon reply: malformed reply: chunk data longer than its size"},
		{"error reply not JSON, cut short", "HTTP/1.1 500 Oops\r\nContent-Length: 100\r\n\r\nhalf", "daemon answered 500 Oops: half"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t, replying(tc.reply))
			_, err := NewClient(s.sock).Version(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "GET /v1/version: ") && !strings.Contains(err.Error(), "GET /v1/version: ") {
				t.Errorf("err = %v: does not name the request", err)
			}
			if errors.Is(err, ErrDaemonNotRunning) {
				t.Errorf("err = %v: a bad reply is not a daemon that is not running", err)
			}
		})
	}
}

// FuzzReadResponse: any bytes from the daemon give a reply or an error,
// never a panic or a hang (the reader ends with the input).
func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 31\r\n\r\n" + versionJSON))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(versionJSON, 4)))
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 404 Not Found\r\n\r\n{}"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		resp, body, err := readResponse(bufio.NewReader(bytes.NewReader(in)), "GET")
		if err != nil {
			if resp != nil || body != nil {
				t.Fatalf("error %v with a reply", err)
			}
			return
		}
		if resp.statusCode < 200 || resp.statusCode > 999 {
			t.Fatalf("status %d", resp.statusCode)
		}
		got, _ := io.ReadAll(body)
		if len(got) > len(in) {
			t.Fatalf("body of %d bytes from %d bytes of input", len(got), len(in))
		}
	})
}

// TestClientMatchesNetHTTP runs the same requests against the real handler
// with Client and with a net/http client doing what Client did before it
// spoke HTTP itself, and compares results and errors.
func TestClientMatchesNetHTTP(t *testing.T) {
	ctx := context.Background()
	b := newFakeBackend()
	c, sock := newTestServer(t, b)
	ref := newRefClient(sock)
	defer ref.hc.CloseIdleConnections()
	spec := MirrorSpec{Name: "m1", Bridge: "br0", Ports: []string{"p1"}, Output: Output{Port: "mirror0", Create: true}}
	if _, err := c.AddMirror(ctx, spec); err != nil {
		t.Fatal(err)
	}
	bad := spec
	bad.Bridge = "nope"
	for _, tc := range []struct {
		method, path string
		in           any
		out          func() any
	}{
		{"GET", "/v1/version", nil, func() any { return &VersionInfo{} }},
		{"GET", "/v1/mirrors", nil, func() any { return &MirrorList{} }},
		{"GET", "/v1/mirrors/m1", nil, func() any { return &Mirror{} }},
		{"GET", "/v1/mirrors/m1/stats", nil, func() any { return &MirrorStats{} }},
		{"GET", "/v1/mirrors/m1/flows", nil, func() any { return &FlowList{} }},
		{"GET", "/v1/stats", nil, func() any { return &StatsList{} }},
		{"GET", "/v1/mirrors/" + esc("no such/one"), nil, func() any { return &Mirror{} }},
		{"POST", "/v1/mirrors", spec, func() any { return &Mirror{} }},   // exists
		{"POST", "/v1/mirrors", bad, func() any { return &Mirror{} }},    // invalid
		{"POST", "/v1/mirrors", "text", func() any { return &Mirror{} }}, // bad JSON
		{"DELETE", "/v1/mirrors/zz", nil, nil},
		{"GET", "/v2/mirrors", nil, nil},
		{"PUT", "/v1/mirrors/m1", spec, nil},
		{"POST", "/v1/bridges/br0/release", nil, func() any { return &ReleaseResult{} }},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			var got, want any
			if tc.out != nil {
				got, want = tc.out(), tc.out()
			}
			err := c.do(ctx, tc.method, tc.path, tc.in, got)
			wantErr := ref.do(ctx, tc.method, tc.path, tc.in, want)
			if !reflect.DeepEqual(err, wantErr) {
				t.Fatalf("err = %#v\nnet/http: %#v", err, wantErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v\nnet/http: %+v", got, want)
			}
		})
	}
	t.Run("daemon not running", func(t *testing.T) {
		for _, sock := range []string{filepath.Join(t.TempDir(), "none.sock"), staleSocket(t), regularFile(t)} {
			_, err := NewClient(sock).Mirrors(ctx)
			wantErr := newRefClient(sock).do(ctx, "GET", "/v1/mirrors", nil, &MirrorList{})
			if !errors.Is(err, ErrDaemonNotRunning) || err.Error() != wantErr.Error() {
				t.Fatalf("err = %v\nnet/http: %v", err, wantErr)
			}
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := c.Mirrors(cctx)
		wantErr := ref.do(cctx, "GET", "/v1/mirrors", nil, &MirrorList{})
		if !errors.Is(err, context.Canceled) || err.Error() != wantErr.Error() {
			t.Fatalf("err = %v\nnet/http: %v", err, wantErr)
		}
	})
}

// staleSocket is a socket file nobody listens on (a crashed daemon's).
func staleSocket(t *testing.T) string {
	sock := filepath.Join(t.TempDir(), "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	return sock
}

func regularFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// refClient is Client's request code as it was on net/http: the oracle for
// "same results, same errors".
type refClient struct {
	c  *Client
	hc *http.Client
}

func newRefClient(path string) *refClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableCompression: true,
	}
	return &refClient{c: NewClient(path), hc: &http.Client{Transport: tr}}
}

func (r *refClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://flowspan"+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if ctx.Err() == nil && (errors.As(err, &op) && op.Op == "dial") {
			return r.c.notRunning(err)
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		var eb ErrorBody
		if json.Unmarshal(raw, &eb) != nil || eb.Error == "" {
			eb = ErrorBody{Error: fmt.Sprintf("%s %s: daemon answered %s: %s", method, path, resp.Status, strings.TrimSpace(string(raw))), Code: CodeInternal}
		}
		return &Error{Status: resp.StatusCode, Code: eb.Code, Message: eb.Error}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding daemon reply: %w", method, path, err)
	}
	return nil
}

// stalling returns a handler that writes partial, then waits until the
// client closes the connection (reporting it on closed) or 10 s pass.
func stalling(partial string, closed chan<- bool) func(net.Conn, rawRequest) {
	return func(c net.Conn, _ rawRequest) {
		_, _ = io.WriteString(c, partial)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.Copy(io.Discard, c)
		// EOF, or a reset when the client closed without reading all we
		// wrote: the client closed. A timeout: it did not.
		var ne net.Error
		closed <- !(errors.As(err, &ne) && ne.Timeout())
	}
}

// TestClientCancelMidRequest: cancelling ctx (or its deadline) while the
// daemon has not answered, or answered half, returns ctx's error promptly
// and closes the connection. TestMain's goleak check covers the rest.
func TestClientCancelMidRequest(t *testing.T) {
	for _, tc := range []struct{ name, partial string }{
		{"before the reply", ""},
		{"in the header", "HTTP/1.1 200 OK\r\nContent-"},
		{"in a content-length body", "HTTP/1.1 200 OK\r\nContent-Length: 31\r\n\r\n" + versionJSON[:10]},
		{"in a chunked body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1f\r\n" + versionJSON[:10]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			closed := make(chan bool, 1)
			s := newRawServer(t, stalling(tc.partial, closed))
			c := NewClient(s.sock)

			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() {
				_, err := c.Version(ctx)
				errc <- err
			}()
			<-s.reqs // the request has arrived
			cancel()
			select {
			case err := <-errc:
				if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "GET /v1/version: ") {
					t.Fatalf("err = %v, want GET /v1/version: ... context canceled", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Version did not return after ctx was cancelled")
			}
			if !<-closed {
				t.Fatal("the connection stayed open after cancel")
			}
		})
	}
	t.Run("deadline", func(t *testing.T) {
		closed := make(chan bool, 1)
		s := newRawServer(t, stalling("HTTP/1.1 200 OK\r\n", closed))
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := NewClient(s.sock).Mirrors(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want deadline exceeded", err)
		}
		if !<-closed {
			t.Fatal("the connection stayed open after the deadline")
		}
	})
}

// TestTapSessionWire: the tap reply's first line may arrive in pieces;
// Done follows the daemon ending the reply; cancelling ctx closes the
// connection and ends the session; Close after either is harmless.
func TestTapSessionWire(t *testing.T) {
	line, _ := json.Marshal(Mirror{Spec: MirrorSpec{Name: "tap1", Bridge: "br0", Ephemeral: true}, Origin: OriginTap})
	head := "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
		fmt.Sprintf("5\r\n%s\r\n%x\r\n%s\n\r\n", line[:5], len(line)-4, line[5:])

	t.Run("daemon ends", func(t *testing.T) {
		release := make(chan struct{})
		s := newRawServer(t, func(c net.Conn, _ rawRequest) {
			_, _ = io.WriteString(c, head)
			<-release
			_, _ = io.WriteString(c, "0\r\n\r\n")
		})
		ts, err := NewClient(s.sock).Tap(context.Background(), MirrorSpec{Name: "tap1"})
		if err != nil {
			t.Fatal(err)
		}
		if ts.Mirror.Spec.Name != "tap1" || ts.Mirror.Origin != OriginTap {
			t.Fatalf("mirror = %+v", ts.Mirror)
		}
		select {
		case <-ts.Done():
			t.Fatal("Done before the daemon ended the session")
		default:
		}
		close(release)
		select {
		case <-ts.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done not closed after the daemon ended the reply")
		}
		if err := ts.Close(); err != nil {
			t.Fatalf("Close after the end: %v", err)
		}
	})
	t.Run("ctx cancelled", func(t *testing.T) {
		closed := make(chan bool, 1)
		s := newRawServer(t, stalling(head, closed))
		ctx, cancel := context.WithCancel(context.Background())
		ts, err := NewClient(s.sock).Tap(ctx, MirrorSpec{Name: "tap1"})
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		select {
		case <-ts.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done not closed after ctx was cancelled")
		}
		if !<-closed {
			t.Fatal("the connection stayed open after cancel")
		}
		if err := ts.Close(); err != nil {
			t.Fatalf("Close after cancel: %v", err)
		}
	})
	t.Run("Close", func(t *testing.T) {
		closed := make(chan bool, 1)
		s := newRawServer(t, stalling(head, closed))
		ts, err := NewClient(s.sock).Tap(context.Background(), MirrorSpec{Name: "tap1"})
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if !<-closed {
			t.Fatal("the connection stayed open after Close")
		}
	})
	t.Run("error reply", func(t *testing.T) {
		s := newRawServer(t, replying("HTTP/1.1 400 Bad Request\r\nContent-Length: 42\r\n\r\n"+`{"error":"mirror \"tap1\": bad","code":"invalid"}`[:42]))
		_, err := NewClient(s.sock).Tap(context.Background(), MirrorSpec{Name: "tap1"})
		var ae *Error
		if !errors.As(err, &ae) || ae.Status != 400 {
			t.Fatalf("err = %#v", err)
		}
	})
	t.Run("reply cut before the line", func(t *testing.T) {
		s := newRawServer(t, replying("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"s\r\n"))
		_, err := NewClient(s.sock).Tap(context.Background(), MirrorSpec{Name: "tap1"})
		if err == nil || !strings.Contains(err.Error(), "POST /v1/taps: reading daemon reply: unexpected EOF") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestTapCancelRealServer: against the real handler, cancelling the tap's
// ctx makes the daemon delete the mirror (the connection is closed).
func TestTapCancelRealServer(t *testing.T) {
	b := newFakeBackend()
	c, _ := newTestServer(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	ts, err := c.Tap(ctx, MirrorSpec{Name: "tap1", Bridge: "br0", Ports: []string{"p1"}, Output: Output{Port: "tap0", Create: true}})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case name := <-b.deleted:
		if name != "tap1" {
			t.Fatalf("deleted %q", name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tap mirror not deleted after ctx was cancelled")
	}
	<-ts.Done()
	ts.Close()
}

// TestClientConcurrent: one Client used from many goroutines against the
// real handler (one connection per request).
func TestClientConcurrent(t *testing.T) {
	b := newFakeBackend()
	c, _ := newTestServer(t, b)
	ctx := context.Background()
	var wg sync.WaitGroup
	errc := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("m%02d", i)
			if _, err := c.AddMirror(ctx, MirrorSpec{Name: name, Bridge: "br0", Ports: []string{"p1"}, Output: Output{Port: "o"}}); err != nil {
				errc <- err
				return
			}
			if m, err := c.Mirror(ctx, name); err != nil || m.Spec.Name != name {
				errc <- fmt.Errorf("Mirror(%s) = %+v, %v", name, m, err)
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if ms, err := c.Mirrors(ctx); err != nil || len(ms) != 32 {
		t.Fatalf("Mirrors: %d, %v", len(ms), err)
	}
}

// BenchmarkClientRoundTrip: one GET /v1/mirrors against the real handler,
// with Client (a connection per request) and with the net/http client it
// replaced (keep-alive).
func BenchmarkClientRoundTrip(b *testing.B) {
	ctx := context.Background()
	fb := newFakeBackend()
	for i := range 10 {
		if _, err := fb.AddMirror(ctx, MirrorSpec{Name: fmt.Sprint("m", i), Bridge: "br0"}, OriginAPI); err != nil {
			b.Fatal(err)
		}
	}
	sock := filepath.Join(b.TempDir(), "api.sock")
	ln, err := Listen(sock)
	if err != nil {
		b.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Serve(sctx, ln, NewHandler(fb, HandlerConfig{})) }()
	defer func() {
		cancel()
		<-done
	}()
	c, ref := NewClient(sock), newRefClient(sock)
	defer ref.hc.CloseIdleConnections()
	for _, bc := range []struct {
		name string
		do   func() error
	}{
		{"Client", func() error { return c.do(ctx, "GET", "/v1/mirrors", nil, &MirrorList{}) }},
		{"net/http", func() error { return ref.do(ctx, "GET", "/v1/mirrors", nil, &MirrorList{}) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if err := bc.do(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
