package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// The client speaks the small part of HTTP/1.1 the API needs itself instead
// of using net/http: importing net/http links crypto/tls, crypto/x509,
// mime/multipart and more, and the larger binary made every start of the
// flowspan CLI (one request per run) about twice as slow. On Linux it does
// not use package net either (client_linux.go): with cgo enabled, net makes
// the binary dynamically linked, and loading libc cost the CLI another
// millisecond per run. Each request uses its own connection ("Connection:
// close"); the reply is framed by Content-Length, chunked transfer coding or
// the end of the connection.

// Client talks to a flowspan daemon over its API socket. It is safe for
// concurrent use.
type Client struct {
	path string
}

// NewClient returns a client for the daemon listening at addr, which is
// "unix:/path/api.sock" or a plain path; "" means DefaultSocket.
func NewClient(addr string) *Client {
	path := strings.TrimPrefix(addr, "unix:")
	if path == "" {
		path = DefaultSocket
	}
	return &Client{path: path}
}

// Socket returns the socket path the client uses.
func (c *Client) Socket() string { return c.path }

// Close releases idle connections. Every request closes its own connection
// once its reply has been read, so there are none; Close is kept so that
// callers need not know, and may be called any number of times.
func (c *Client) Close() {}

func (c *Client) notRunning(err error) error {
	return fmt.Errorf("%w at %s (start it with: flowspan serve --api unix:%s): %w", ErrDaemonNotRunning, c.path, c.path, err)
}

// maxErrorReply bounds how much of an error reply the client reads.
const maxErrorReply = 1 << 20

// do sends a request and decodes a JSON response into out (if non-nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.body)
		return nil
	}
	if err := json.NewDecoder(resp.body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding daemon reply: %w", method, path, err)
	}
	return nil
}

// response is a reply whose status line and header have been read.
type response struct {
	// statusCode is the status code, status the status line after the
	// protocol ("404 Not Found").
	statusCode int
	status     string
	body       *replyBody
}

// send performs the request; a non-2xx reply becomes an *Error. On success
// the caller closes resp.body.
func (c *Client) send(ctx context.Context, method, path string, in any) (*response, error) {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = b
	}
	resp, err := c.roundTrip(ctx, method, path, body, in != nil)
	if err != nil {
		err = &requestError{method: method, path: path, err: err}
		if ctx.Err() == nil && isDialError(err) {
			return nil, c.notRunning(err)
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.statusCode >= 200 && resp.statusCode < 300 {
		return resp, nil
	}
	defer resp.body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.body, maxErrorReply))
	var eb ErrorBody
	if json.Unmarshal(raw, &eb) != nil || eb.Error == "" {
		eb = ErrorBody{Error: fmt.Sprintf("%s %s: daemon answered %s: %s", method, path, resp.status, strings.TrimSpace(string(raw))), Code: CodeInternal}
	}
	return nil, &Error{Status: resp.statusCode, Code: eb.Code, Message: eb.Error}
}

// requestError is a failed exchange, worded as net/http's client worded it
// (the client used net/http before): `Get "http://flowspan/v1/mirrors": cause`.
type requestError struct {
	method, path string
	err          error
}

func (e *requestError) Error() string {
	op := e.method
	if op != "" {
		op = op[:1] + strings.ToLower(op[1:])
	}
	return fmt.Sprintf("%s %q: %s", op, "http://flowspan"+e.path, e.err)
}

func (e *requestError) Unwrap() error { return e.err }

// roundTrip dials the socket, writes the request and reads the reply's
// status line and header. Until the reply body is closed, cancelling ctx
// closes the connection, which aborts any read or write; the error is then
// ctx's.
func (c *Client) roundTrip(ctx context.Context, method, path string, body []byte, hasBody bool) (*response, error) {
	conn, err := dialUnix(ctx, c.path)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	rb := &replyBody{conn: conn, ctx: ctx}
	rb.stop = context.AfterFunc(ctx, func() { _ = rb.closeConn() })
	fail := func(err error) (*response, error) {
		rb.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	if _, err := conn.Write(encodeRequest(method, path, body, hasBody)); err != nil {
		return fail(err)
	}
	br := bufio.NewReader(conn)
	resp, framed, err := readResponse(br, method)
	if err != nil {
		return fail(err)
	}
	rb.r = framed
	resp.body = rb
	return resp, nil
}

// encodeRequest renders an HTTP/1.1 request with a JSON body.
func encodeRequest(method, path string, body []byte, hasBody bool) []byte {
	b := make([]byte, 0, 128+len(path)+len(body))
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: flowspan\r\n"...)
	if hasBody {
		b = append(b, "Content-Type: application/json\r\n"...)
	}
	if hasBody || method == "POST" || method == "PUT" || method == "PATCH" {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Connection: close\r\n\r\n"...)
	return append(b, body...)
}

// Limits on what the client accepts from the daemon before the body.
const (
	maxHeaderBytes   = 64 << 10 // status line and header fields of one reply
	maxInformational = 8        // 1xx replies skipped before the final one
)

// errMalformed starts every complaint about a reply that is not HTTP/1.x.
var errMalformed = errors.New("malformed reply")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
}

// quote renders untrusted reply text for an error message, shortened.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strconv.Quote(s)
}

// readResponse reads a reply's status line and header from br and returns
// the reader of its body (already unframed).
func readResponse(br *bufio.Reader, method string) (*response, io.Reader, error) {
	for range maxInformational + 1 {
		budget := maxHeaderBytes
		line, err := readLine(br, &budget)
		if err == io.EOF {
			return nil, nil, errors.New("the daemon closed the connection without replying")
		}
		if err != nil {
			return nil, nil, err
		}
		proto, status, ok := strings.Cut(line, " ")
		if !ok || (proto != "HTTP/1.1" && proto != "HTTP/1.0") {
			return nil, nil, malformed("status line %s", quote(line))
		}
		status = strings.TrimLeft(status, " ")
		codeText, _, _ := strings.Cut(status, " ")
		code, err := strconv.Atoi(codeText)
		if len(codeText) != 3 || err != nil || code < 100 {
			return nil, nil, malformed("status line %s", quote(line))
		}
		hdr, err := readHeader(br, &budget)
		if err != nil {
			return nil, nil, err
		}
		if code < 200 {
			if code == 101 {
				return nil, nil, malformed("unexpected %s", quote(status))
			}
			continue // 100 Continue, 103 Early Hints: the final reply follows
		}
		resp := &response{statusCode: code, status: status}
		te, hasTE := hdr["transfer-encoding"]
		cl, hasCL := hdr["content-length"]
		switch {
		case code == 204 || code == 304 || method == "HEAD":
			return resp, eofReader{}, nil
		case hasTE:
			if !strings.EqualFold(te, "chunked") {
				return nil, nil, malformed("unsupported Transfer-Encoding %s", quote(te))
			}
			return resp, &chunkedReader{r: br}, nil
		case hasCL:
			n, err := strconv.ParseInt(cl, 10, 64)
			if err != nil || n < 0 || cl[0] == '+' {
				return nil, nil, malformed("Content-Length %s", quote(cl))
			}
			return resp, &lengthReader{r: br, n: n}, nil
		default:
			return resp, br, nil // the body ends with the connection
		}
	}
	return nil, nil, malformed("more than %d informational (1xx) replies", maxInformational)
}

// readHeader reads header fields up to the empty line. It keeps, by
// lower-case name, the two fields that frame the body; a repeated one must
// repeat the same value.
func readHeader(br *bufio.Reader, budget *int) (map[string]string, error) {
	hdr := map[string]string{}
	for {
		line, err := readLine(br, budget)
		if err == io.EOF {
			return nil, malformed("header cut short")
		}
		if err != nil {
			return nil, err
		}
		if line == "" {
			return hdr, nil
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, malformed("header line %s", quote(line))
		}
		name = strings.ToLower(name)
		if name != "content-length" && name != "transfer-encoding" {
			continue
		}
		value = strings.Trim(value, " \t")
		if old, dup := hdr[name]; dup && old != value {
			return nil, malformed("conflicting %s headers %s and %s", name, quote(old), quote(value))
		}
		hdr[name] = value
	}
}

// readLine reads one CRLF- (or LF-) terminated line, charging its length
// to budget. It returns io.EOF only when nothing at all was read.
func readLine(br *bufio.Reader, budget *int) (string, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		*budget -= len(frag)
		if *budget < 0 {
			return "", malformed("header larger than %d bytes", maxHeaderBytes)
		}
		line = append(line, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(line) > 0 {
			return "", malformed("line cut short: %s", quote(string(line)))
		}
		if err != nil {
			return "", err
		}
		line = line[:len(line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		return string(line), nil
	}
}

// eofReader is an empty body.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// lengthReader reads a body of n bytes.
type lengthReader struct {
	r io.Reader
	n int64
}

func (l *lengthReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if err == io.EOF && l.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// chunkedReader decodes the chunked transfer coding (RFC 9112 section 7.1).
// It returns a chunk's bytes as soon as they arrive, which the streaming
// tap reply needs.
type chunkedReader struct {
	r        *bufio.Reader
	n        uint64 // bytes left in the current chunk
	needCRLF bool   // the current chunk's data has been read, its CRLF not
	err      error  // sticky
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for c.n == 0 {
		if err := c.next(); err != nil {
			c.err = err
			return 0, err
		}
	}
	if uint64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= uint64(n)
	if c.n == 0 {
		c.needCRLF = true
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		c.err = err
	}
	return n, err
}

// next reads the end of the previous chunk and the size of the next one;
// at the last chunk it reads the trailer and returns io.EOF.
func (c *chunkedReader) next() error {
	budget := maxHeaderBytes
	if c.needCRLF {
		line, err := readLine(c.r, &budget)
		if err != nil {
			return cutShort(err)
		}
		if line != "" {
			return malformed("chunk data longer than its size")
		}
		c.needCRLF = false
	}
	line, err := readLine(c.r, &budget)
	if err != nil {
		return cutShort(err)
	}
	size, _, _ := strings.Cut(line, ";") // chunk extensions are ignored
	size = strings.TrimRight(size, " \t")
	n, err := strconv.ParseUint(size, 16, 63)
	if err != nil || size == "" || size[0] == '+' {
		return malformed("chunk size %s", quote(line))
	}
	if n > 0 {
		c.n = n
		return nil
	}
	for { // trailer fields, ignored
		line, err := readLine(c.r, &budget)
		if err != nil {
			return cutShort(err)
		}
		if line == "" {
			return io.EOF
		}
	}
}

func cutShort(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// replyBody is a reply's body; closing it closes the connection. Reads
// that fail because ctx ended return ctx's error.
type replyBody struct {
	r    io.Reader
	conn io.ReadWriteCloser
	ctx  context.Context
	stop func() bool // unregisters the ctx watch
	once sync.Once
}

func (b *replyBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		if cerr := b.ctx.Err(); cerr != nil {
			err = cerr
		}
	}
	return n, err
}

// Close closes the connection and stops watching ctx.
func (b *replyBody) Close() error {
	b.stop()
	return b.closeConn()
}

func (b *replyBody) closeConn() error {
	var err error
	b.once.Do(func() { err = b.conn.Close() })
	return err
}

// pathEscape escapes s for use as one path segment exactly as
// net/url.PathEscape does (kept local: net/url is otherwise unused here).
func pathEscape(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !segmentByte(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	t := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		if c := s[i]; segmentByte(c) {
			t = append(t, c)
		} else {
			t = append(t, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(t)
}

// segmentByte reports whether c stands for itself in a path segment:
// RFC 3986 unreserved characters and the sub-delims and ':' '@' that
// net/url leaves unescaped in one.
func segmentByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '$', '&', '+', ':', '=', '@':
		return true
	}
	return false
}

func esc(s string) string { return pathEscape(s) }

// Version returns the daemon's version.
func (c *Client) Version(ctx context.Context) (VersionInfo, error) {
	var v VersionInfo
	err := c.do(ctx, "GET", "/v1/version", nil, &v)
	return v, err
}

// AddMirror creates a mirror (POST /v1/mirrors).
func (c *Client) AddMirror(ctx context.Context, spec MirrorSpec) (Mirror, error) {
	var m Mirror
	err := c.do(ctx, "POST", "/v1/mirrors", spec, &m)
	return m, err
}

// DeleteMirror deletes a mirror (DELETE /v1/mirrors/{name}).
func (c *Client) DeleteMirror(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/v1/mirrors/"+esc(name), nil, nil)
}

// Mirrors lists all mirrors (GET /v1/mirrors).
func (c *Client) Mirrors(ctx context.Context) ([]Mirror, error) {
	var l MirrorList
	err := c.do(ctx, "GET", "/v1/mirrors", nil, &l)
	return l.Mirrors, err
}

// Mirror returns one mirror (GET /v1/mirrors/{name}).
func (c *Client) Mirror(ctx context.Context, name string) (Mirror, error) {
	var m Mirror
	err := c.do(ctx, "GET", "/v1/mirrors/"+esc(name), nil, &m)
	return m, err
}

// Stats returns the counters of one mirror (GET /v1/mirrors/{name}/stats).
func (c *Client) Stats(ctx context.Context, name string) (MirrorStats, error) {
	var s MirrorStats
	err := c.do(ctx, "GET", "/v1/mirrors/"+esc(name)+"/stats", nil, &s)
	return s, err
}

// AllStats returns the counters of every mirror (GET /v1/stats).
func (c *Client) AllStats(ctx context.Context) ([]MirrorStats, error) {
	var l StatsList
	err := c.do(ctx, "GET", "/v1/stats", nil, &l)
	return l.Mirrors, err
}

// Flows returns a mirror's installed flows in ovs-ofctl syntax
// (GET /v1/mirrors/{name}/flows).
func (c *Client) Flows(ctx context.Context, name string) ([]string, error) {
	var l FlowList
	err := c.do(ctx, "GET", "/v1/mirrors/"+esc(name)+"/flows", nil, &l)
	return l.Flows, err
}

// Release deletes every mirror of bridge and hands the bridge back
// (POST /v1/bridges/{bridge}/release).
func (c *Client) Release(ctx context.Context, bridge string) (ReleaseResult, error) {
	var r ReleaseResult
	err := c.do(ctx, "POST", "/v1/bridges/"+esc(bridge)+"/release", nil, &r)
	return r, err
}

// TapSession is an ephemeral mirror held by an open connection.
type TapSession struct {
	// Mirror is the mirror as created.
	Mirror Mirror
	body   io.ReadCloser
	done   chan struct{}
}

// Done is closed when the daemon ends the session (it shut down).
func (t *TapSession) Done() <-chan struct{} { return t.done }

// Close ends the session; the daemon deletes the mirror and its created port.
// Close does not wait for the deletion.
func (t *TapSession) Close() error {
	err := t.body.Close()
	<-t.done
	return err
}

// Tap creates an ephemeral mirror (POST /v1/taps) that lives until the
// session is closed, the process dies or the daemon stops; the daemon then
// deletes it and the output port it created. Cancelling ctx also ends it.
func (c *Client) Tap(ctx context.Context, spec MirrorSpec) (*TapSession, error) {
	resp, err := c.send(ctx, "POST", "/v1/taps", spec)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(resp.body)
	line, err := br.ReadBytes('\n')
	if err != nil {
		resp.body.Close()
		return nil, fmt.Errorf("POST /v1/taps: reading daemon reply: %w", err)
	}
	t := &TapSession{body: resp.body, done: make(chan struct{})}
	if err := json.Unmarshal(line, &t.Mirror); err != nil {
		resp.body.Close()
		return nil, fmt.Errorf("POST /v1/taps: decoding daemon reply: %w", err)
	}
	go func() {
		defer close(t.done)
		_, _ = io.Copy(io.Discard, br) // returns when either side closes
		resp.body.Close()
	}()
	return t, nil
}
