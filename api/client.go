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
	"strings"
	"syscall"
)

// Client talks to a flowspan daemon over its API socket. It is safe for
// concurrent use.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client for the daemon listening at addr, which is
// "unix:/path/api.sock" or a plain path; "" means DefaultSocket.
func NewClient(addr string) *Client {
	path := strings.TrimPrefix(addr, "unix:")
	if path == "" {
		path = DefaultSocket
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableCompression: true,
	}
	return &Client{path: path, hc: &http.Client{Transport: tr}}
}

// Socket returns the socket path the client uses.
func (c *Client) Socket() string { return c.path }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

func (c *Client) notRunning(err error) error {
	return fmt.Errorf("%w at %s (start it with: flowspan serve --api unix:%s): %w", ErrDaemonNotRunning, c.path, c.path, err)
}

func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}

// do sends a request and decodes a JSON response into out (if non-nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding daemon reply: %w", method, path, err)
	}
	return nil
}

// send performs the request; a non-2xx reply becomes an *Error.
func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://flowspan"+path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() == nil && isDialError(err) {
			return nil, c.notRunning(err)
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	var eb ErrorBody
	if json.Unmarshal(raw, &eb) != nil || eb.Error == "" {
		eb = ErrorBody{Error: fmt.Sprintf("%s %s: daemon answered %s: %s", method, path, resp.Status, strings.TrimSpace(string(raw))), Code: CodeInternal}
	}
	return nil, &Error{Status: resp.StatusCode, Code: eb.Code, Message: eb.Error}
}

func esc(s string) string { return url.PathEscape(s) }

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
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadBytes('\n')
	if err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("POST /v1/taps: reading daemon reply: %w", err)
	}
	t := &TapSession{body: resp.Body, done: make(chan struct{})}
	if err := json.Unmarshal(line, &t.Mirror); err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("POST /v1/taps: decoding daemon reply: %w", err)
	}
	go func() {
		defer close(t.done)
		_, _ = io.Copy(io.Discard, br) // returns when either side closes
	}()
	return t, nil
}
