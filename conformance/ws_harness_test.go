package conformance

// The WebSocket harness of issue 18 (upgrade.md §6). One handler H is
// served two ways and every case records a transcript on both:
//
//   - the reference: H under httptest, fronted by httputil.ReverseProxy in
//     a second httptest server;
//   - the bridge: the generated host (UpgradeProtocols "websocket" and
//     "x-echo-tcp") in an httptest server, over real gRPC to the generated
//     facade around H.
//
// H is written twice, with coder/websocket and with gorilla/websocket, read
// limits raised to 32 MiB at both ends. The bridge never sees a frame, so
// the transcripts must be equal except for the deviations each case asserts
// by name.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	gws "github.com/gorilla/websocket"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

const (
	// wsReadLimit is the read limit of every WebSocket end (upgrade.md §6).
	wsReadLimit = 32 << 20
	// wsEchoTCP is the raw byte-echo protocol of the half-close tests.
	wsEchoTCP = "x-echo-tcp"
	// wsSessionTimeout bounds one WebSocket session of a test.
	wsSessionTimeout = 30 * time.Second
)

// wsLib names the WebSocket library of a handler or a client.
type wsLib string

const (
	coderLib   wsLib = "coder"
	gorillaLib wsLib = "gorilla"
)

var wsLibs = []wsLib{coderLib, gorillaLib}

// wsSetup names how the handler is reached.
type wsSetup string

const (
	proxySetup  wsSetup = "proxy"  // httputil.ReverseProxy in front of H (the reference)
	bridgeSetup wsSetup = "bridge" // the generated host and facade in front of H
)

var wsSetups = []wsSetup{proxySetup, bridgeSetup}

// ---------------------------------------------------------------------------
// Environments.

// wsHostConfig is what a case sets on the generated host beyond the
// protocols; zero values are the host's defaults.
type wsHostConfig struct {
	MaxUpgraded             int
	UpgradeHandshakeTimeout time.Duration
	UpgradeIdleTimeout      time.Duration
	UpgradeMaxDuration      time.Duration
	UpgradeWriteTimeout     time.Duration
	// Plugin, if set, replaces the facade with a scripted plugin.
	Plugin pluginapiv1.PluginHooksServer
	// PluginOptions tunes the gRPC server and client.
	PluginOptions bridgetest.PluginOptions
	// Transport between host and plugin; default bufconn.
	Transport bridgetest.Transport
}

// wsEnv is one running setup.
type wsEnv struct {
	Setup wsSetup
	URL   string // http://host:port of the front server
	Addr  string // host:port of the front server

	Bridge     *bridgetest.Env       // the bridge's env (bridge only)
	ProxyLog   *bridgetest.LogBuffer // ReverseProxy's ErrorLog (proxy only)
	BackendLog *bridgetest.LogBuffer // the backend server's ErrorLog (proxy only)
	HostLog    *bridgetest.LogBuffer // the host's Logger (bridge only)
	PluginLog  *bridgetest.LogBuffer // the facade's Logger (bridge only)
}

// WS returns the ws:// URL of target on the front server.
func (e *wsEnv) WS(target string) string {
	return "ws" + strings.TrimPrefix(e.URL, "http") + target
}

// startWS starts setup in front of h.
func startWS(t testing.TB, setup wsSetup, h http.Handler, cfg wsHostConfig) *wsEnv {
	t.Helper()
	e := &wsEnv{Setup: setup}
	switch setup {
	case proxySetup:
		backend := httptest.NewUnstartedServer(h)
		e.BackendLog = &bridgetest.LogBuffer{}
		backend.Config.ErrorLog = e.BackendLog.Log()
		// net/http neither closes nor tracks hijacked connections (not
		// even after a handler's panic): close them at the end.
		var hijacked sync.Map
		backend.Config.ConnState = func(c net.Conn, s http.ConnState) {
			if s == http.StateHijacked {
				hijacked.Store(c, true)
			}
		}
		backend.Start()
		t.Cleanup(func() {
			hijacked.Range(func(c, _ any) bool {
				_ = c.(net.Conn).Close()
				return true
			})
			bridgetest.CloseBounded(t, "backend server", backend.Close)
		})
		u, err := url.Parse(backend.URL)
		if err != nil {
			t.Fatal(err)
		}
		rp := httputil.NewSingleHostReverseProxy(u)
		e.ProxyLog = &bridgetest.LogBuffer{}
		rp.ErrorLog = e.ProxyLog.Log()
		front := httptest.NewServer(rp)
		t.Cleanup(func() { bridgetest.CloseBounded(t, "proxy server", front.Close) })
		e.URL = front.URL
	case bridgeSetup:
		bc := bridgetest.Config{
			Handler:       h,
			Plugin:        cfg.Plugin,
			PluginOptions: cfg.PluginOptions,
			Transport:     cfg.Transport,
			SetupHost: func(host *pluginapiv1.ServeHTTPHost) {
				host.UpgradeProtocols = []string{"websocket", wsEchoTCP}
				host.MaxUpgraded = cfg.MaxUpgraded
				host.UpgradeHandshakeTimeout = cfg.UpgradeHandshakeTimeout
				host.UpgradeIdleTimeout = cfg.UpgradeIdleTimeout
				host.UpgradeMaxDuration = cfg.UpgradeMaxDuration
				host.UpgradeWriteTimeout = cfg.UpgradeWriteTimeout
			},
		}
		if cfg.Plugin != nil {
			bc.Handler = nil
		}
		e.Bridge = bridgetest.NewEnv(t, bc)
		e.URL = e.Bridge.Server.URL
		e.HostLog, e.PluginLog = e.Bridge.HostLog, e.Bridge.PluginLog
	default:
		t.Fatalf("unknown setup %q", setup)
	}
	e.Addr = strings.TrimPrefix(e.URL, "http://")
	return e
}

// ---------------------------------------------------------------------------
// One API over both libraries, for handlers and clients.

// wsPeer is one end of a WebSocket session.
type wsPeer interface {
	// Read reads one whole message.
	Read(ctx context.Context) (typ int, data []byte, err error)
	// Write writes one message of type typ (1 text, 2 binary).
	Write(ctx context.Context, typ int, data []byte) error
	// Ping sends a ping and waits for its pong.
	Ping(ctx context.Context) error
	// Close runs the close handshake with code and reason.
	Close(code int, reason string) error
	// CloseNow closes the connection without a close handshake.
	CloseNow() error
	// Subprotocol is the negotiated subprotocol.
	Subprotocol() string
}

type coderPeer struct{ c *websocket.Conn }

func (p coderPeer) Read(ctx context.Context) (int, []byte, error) {
	typ, data, err := p.c.Read(ctx)
	return int(typ), data, err
}

func (p coderPeer) Write(ctx context.Context, typ int, data []byte) error {
	return p.c.Write(ctx, websocket.MessageType(typ), data)
}

func (p coderPeer) Ping(ctx context.Context) error { return p.c.Ping(ctx) }

func (p coderPeer) Close(code int, reason string) error {
	return p.c.Close(websocket.StatusCode(code), reason)
}

func (p coderPeer) CloseNow() error     { return p.c.CloseNow() }
func (p coderPeer) Subprotocol() string { return p.c.Subprotocol() }

// gorillaPeer adapts a gorilla conn. gorilla has no context API: Read
// takes the context's deadline, and Ping waits for the pong its read loop
// sees (so Ping needs a concurrent Read, as with coder). WriteControl may
// run beside a writer; data messages take wmu.
type gorillaPeer struct {
	c     *gws.Conn
	pongs chan struct{}
	wmu   *sync.Mutex // gorilla allows one writer at a time
}

func newGorillaPeer(c *gws.Conn) gorillaPeer {
	p := gorillaPeer{c: c, pongs: make(chan struct{}, 1024), wmu: &sync.Mutex{}}
	c.SetReadLimit(wsReadLimit)
	c.SetPongHandler(func(string) error {
		select {
		case p.pongs <- struct{}{}:
		default:
		}
		return nil
	})
	return p
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

func (p gorillaPeer) Read(ctx context.Context) (int, []byte, error) {
	_ = p.c.SetReadDeadline(deadlineOf(ctx))
	return p.c.ReadMessage()
}

func (p gorillaPeer) Write(ctx context.Context, typ int, data []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = p.c.SetWriteDeadline(deadlineOf(ctx))
	return p.c.WriteMessage(typ, data)
}

func (p gorillaPeer) Ping(ctx context.Context) error {
	err := p.c.WriteControl(gws.PingMessage, nil, deadlineOf(ctx))
	if err != nil {
		return err
	}
	select {
	case <-p.pongs:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close sends a close frame, waits (at most 5 s) for the peer's, and
// closes: the handshake coder's Close runs.
func (p gorillaPeer) Close(code int, reason string) error {
	err := p.c.WriteControl(gws.CloseMessage, gws.FormatCloseMessage(code, reason), time.Now().Add(5*time.Second))
	if err == nil {
		_ = p.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, _, err = p.c.NextReader(); err != nil {
				break
			}
		}
		var ce *gws.CloseError
		if errors.As(err, &ce) {
			err = nil
		}
	}
	return errors.Join(err, p.c.Close())
}

func (p gorillaPeer) CloseNow() error     { return p.c.Close() }
func (p gorillaPeer) Subprotocol() string { return p.c.Subprotocol() }

// ---------------------------------------------------------------------------
// Transcripts.

// wsMsg is one message as a transcript records it.
type wsMsg struct {
	Type int
	Len  int
	SHA  string // first 16 hex digits of the SHA-256
}

func (m wsMsg) String() string { return fmt.Sprintf("%d:%d:%s", m.Type, m.Len, m.SHA) }

func newWSMsg(typ int, data []byte) wsMsg {
	sum := sha256.Sum256(data)
	return wsMsg{Type: typ, Len: len(data), SHA: hex.EncodeToString(sum[:8])}
}

// wsEnd is how a session ended for one side.
type wsEnd struct {
	Class  string // "nil", "close" (a close frame), "1006" (abrupt) or "timeout"
	Code   int    // the close code for "close"
	Reason string
}

func (e wsEnd) String() string {
	if e.Class == "close" {
		return fmt.Sprintf("close %d %q", e.Code, e.Reason)
	}
	return e.Class
}

// classify turns an error of either library into a wsEnd.
func classify(err error) wsEnd {
	if err == nil {
		return wsEnd{Class: "nil"}
	}
	var cce websocket.CloseError
	if errors.As(err, &cce) {
		return wsEnd{Class: "close", Code: int(cce.Code), Reason: cce.Reason}
	}
	var gce *gws.CloseError
	if errors.As(err, &gce) {
		if gce.Code == gws.CloseAbnormalClosure {
			return wsEnd{Class: "1006"}
		}
		return wsEnd{Class: "close", Code: gce.Code, Reason: gce.Text}
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return wsEnd{Class: "timeout"}
	}
	return wsEnd{Class: "1006"}
}

// wsTranscript is what both ends saw of one session.
type wsTranscript struct {
	Head      string  // the response head, Date removed and Sec-WebSocket-Accept checked then masked
	Client    []wsMsg // messages the client received, in order
	Server    []wsMsg // messages the handler received, in order
	ClientEnd wsEnd
	ServerEnd wsEnd
	Extra     []string // case-specific observations
}

// with returns tr with more observations.
func (tr wsTranscript) with(extra ...string) wsTranscript {
	tr.Extra = append(slices.Clone(tr.Extra), extra...)
	return tr
}

func (tr wsTranscript) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "head %q\nclient %v\nserver %v\nclient end %v\nserver end %v\n", tr.Head, tr.Client, tr.Server, tr.ClientEnd, tr.ServerEnd)
	for _, x := range tr.Extra {
		fmt.Fprintf(&b, "%s\n", x)
	}
	return b.String()
}

// compareTranscripts fails the test unless the proxy's and the bridge's
// transcripts are equal.
func compareTranscripts(t testing.TB, proxy, bridge wsTranscript) {
	t.Helper()
	if proxy.String() != bridge.String() { // nil and empty slices alike
		t.Errorf("transcripts differ\n--- proxy:\n%v--- bridge:\n%v", proxy, bridge)
	}
}

// normaliseHead removes the Date line and masks Sec-WebSocket-Accept (its
// value depends on the client's random key, and the clients check it).
func normaliseHead(raw []byte) string {
	var b strings.Builder
	for line := range strings.Lines(string(raw)) {
		name, _, _ := strings.Cut(line, ":")
		switch strings.ToLower(name) {
		case "date":
			continue
		case "sec-websocket-accept":
			line = name + ": <accept>\r\n"
		}
		b.WriteString(line)
	}
	return b.String()
}

// headConn records the bytes read from a client connection up to the end of
// the response head.
type headConn struct {
	net.Conn
	n    atomic.Int64 // bytes read in all
	mu   sync.Mutex
	buf  []byte
	done bool
}

func (c *headConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	c.mu.Lock()
	if !c.done {
		c.buf = append(c.buf, p[:n]...)
		if i := bytes.Index(c.buf, []byte("\r\n\r\n")); i >= 0 {
			c.buf, c.done = c.buf[:i+4], true
		} else if len(c.buf) > 64<<10 {
			c.done = true
		}
	}
	c.mu.Unlock()
	return n, err
}

// Head returns the normalised response head.
func (c *headConn) Head() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return normaliseHead(c.buf)
}

// headDialer dials TCP and keeps the last connection for its head.
type headDialer struct {
	mu   sync.Mutex
	last *headConn
}

func (d *headDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	hc := &headConn{Conn: c}
	d.mu.Lock()
	d.last = hc
	d.mu.Unlock()
	return hc, nil
}

// Conn is the last connection dialled.
func (d *headDialer) Conn() *headConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

// wsDialOptions tunes a client.
type wsDialOptions struct {
	Subprotocols []string
	Compress     bool
	Header       http.Header
	// WriteBufferSize of the gorilla client (its frame size when
	// streaming); 0 is gorilla's default.
	WriteBufferSize int
}

// wsClient is a dialled client with the head it received.
type wsClient struct {
	wsPeer
	Head string
	Resp *http.Response
	Conn *headConn // the TCP connection under the client
}

// dialWS dials target on e with lib. A failed handshake returns the error
// and, if the server answered, the response (body read and closed).
func dialWS(t testing.TB, ctx context.Context, lib wsLib, e *wsEnv, target string, o wsDialOptions) (*wsClient, error) {
	t.Helper()
	d := &headDialer{}
	switch lib {
	case coderLib:
		tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		opts := &websocket.DialOptions{
			HTTPClient:   &http.Client{Transport: tr},
			HTTPHeader:   o.Header,
			Subprotocols: o.Subprotocols,
		}
		if o.Compress {
			opts.CompressionMode = websocket.CompressionContextTakeover
			opts.CompressionThreshold = 1
		}
		c, resp, err := websocket.Dial(ctx, e.WS(target), opts)
		cl := &wsClient{Resp: resp}
		if hc := d.Conn(); hc != nil {
			cl.Head, cl.Conn = hc.Head(), hc
		}
		if err != nil {
			return cl, err
		}
		c.SetReadLimit(wsReadLimit)
		cl.wsPeer = coderPeer{c}
		return cl, nil
	case gorillaLib:
		dialer := &gws.Dialer{
			NetDialContext:    d.DialContext,
			HandshakeTimeout:  10 * time.Second,
			Subprotocols:      o.Subprotocols,
			EnableCompression: o.Compress,
			WriteBufferSize:   o.WriteBufferSize,
		}
		c, resp, err := dialer.DialContext(ctx, e.WS(target), o.Header)
		cl := &wsClient{Resp: resp}
		if hc := d.Conn(); hc != nil {
			cl.Head, cl.Conn = hc.Head(), hc
		}
		if err != nil {
			return cl, err
		}
		cl.wsPeer = newGorillaPeer(c)
		return cl, nil
	}
	t.Fatalf("unknown library %q", lib)
	return nil, nil
}

// mustDial is dialWS that stops the test on a failed handshake and closes
// the client at cleanup.
func mustDial(t testing.TB, ctx context.Context, lib wsLib, e *wsEnv, target string, o wsDialOptions) *wsClient {
	t.Helper()
	c, err := dialWS(t, ctx, lib, e, target, o)
	if err != nil {
		status := 0
		if c != nil && c.Resp != nil {
			status = c.Resp.StatusCode
		}
		t.Fatalf("%s dial %s via %s: %v (status %d)", lib, target, e.Setup, err, status)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// ---------------------------------------------------------------------------
// The handler H.

// wsHandler is H: it accepts with lib and runs Script (echo by default),
// recording what it received and how the session ended.
type wsHandler struct {
	Lib          wsLib
	Subprotocols []string
	Compress     bool
	// AcceptOptions, if set, are coder's options (Subprotocols and
	// Compress are then ignored).
	AcceptOptions *websocket.AcceptOptions
	// ResponseHeader is added to the 101 (for example Set-Cookie).
	ResponseHeader http.Header
	// Script runs the session; nil is echo. It returns how the session ended
	// for the handler.
	Script func(ctx context.Context, p wsPeer, rec *wsRecord) error
	// OnFirstBytes, if set, is called when the first bytes of the first
	// message arrive (the streaming echo only).
	OnFirstBytes func()

	sessions chan wsServerSide
	once     sync.Once
}

// wsServerSide is the handler's view of one session.
type wsServerSide struct {
	Msgs []wsMsg
	End  wsEnd
	Err  error // the accept error, if the handshake failed
}

// wsRecord collects a handler's received messages.
type wsRecord struct {
	mu   sync.Mutex
	msgs []wsMsg
}

func (r *wsRecord) add(m wsMsg) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (h *wsHandler) init() {
	h.once.Do(func() { h.sessions = make(chan wsServerSide, 256) })
}

// Next returns the handler's view of the next session that ended.
func (h *wsHandler) Next(t testing.TB) wsServerSide {
	t.Helper()
	h.init()
	s, ok := bridgetest.WaitFor(t, h.sessions, wsSessionTimeout, "the handler's session to end")
	if !ok {
		t.FailNow()
	}
	return s
}

func (h *wsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.init()
	ctx, cancel := context.WithTimeout(context.Background(), wsSessionTimeout)
	defer cancel()
	rec := &wsRecord{}
	var (
		p   wsPeer
		err error
	)
	switch h.Lib {
	case coderLib:
		opts := &websocket.AcceptOptions{Subprotocols: h.Subprotocols}
		if h.Compress {
			opts.CompressionMode = websocket.CompressionContextTakeover
			opts.CompressionThreshold = 1
		}
		if h.AcceptOptions != nil {
			opts = h.AcceptOptions
		}
		for k, vs := range h.ResponseHeader {
			w.Header()[k] = vs
		}
		var c *websocket.Conn
		if c, err = websocket.Accept(w, r, opts); err == nil {
			c.SetReadLimit(wsReadLimit)
			p = coderPeer{c}
		}
	case gorillaLib:
		u := gws.Upgrader{Subprotocols: h.Subprotocols, EnableCompression: h.Compress}
		var c *gws.Conn
		if c, err = u.Upgrade(w, r, h.ResponseHeader); err == nil {
			p = newGorillaPeer(c)
		}
	}
	if err != nil {
		h.report(wsServerSide{Err: err})
		return
	}
	script := h.Script
	if script == nil {
		script = h.echo
	}
	end := script(ctx, p, rec)
	_ = p.CloseNow()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	h.report(wsServerSide{Msgs: rec.msgs, End: classify(end)})
}

// report queues a session's view for Next; views nobody asks for are
// dropped once 256 wait.
func (h *wsHandler) report(s wsServerSide) {
	select {
	case h.sessions <- s:
	default:
	}
}

// echo streams every message back as it arrives, frame by frame for
// gorilla and coder alike, so a fragmented message is echoed before it is
// complete (no coalescing in the handler).
func (h *wsHandler) echo(ctx context.Context, p wsPeer, rec *wsRecord) error {
	first := true
	for {
		var (
			typ int
			r   io.Reader
			w   io.WriteCloser
			err error
		)
		switch p := p.(type) {
		case coderPeer:
			var mt websocket.MessageType
			if mt, r, err = p.c.Reader(ctx); err == nil {
				typ = int(mt)
				w, err = p.c.Writer(ctx, mt)
			}
		case gorillaPeer:
			_ = p.c.SetReadDeadline(deadlineOf(ctx))
			if typ, r, err = p.c.NextReader(); err == nil {
				p.wmu.Lock()
				w, err = p.c.NextWriter(typ)
				if err == nil {
					w = &unlockOnClose{WriteCloser: w, mu: p.wmu}
				} else {
					p.wmu.Unlock()
				}
			}
		}
		if err != nil {
			return err
		}
		if first && h.OnFirstBytes != nil {
			r = &firstBytes{r: r, f: h.OnFirstBytes}
		}
		first = false
		sum := sha256.New()
		n, err := io.Copy(w, io.TeeReader(r, sum))
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		rec.add(wsMsg{Type: typ, Len: int(n), SHA: hex.EncodeToString(sum.Sum(nil)[:8])})
		if err != nil {
			return err
		}
	}
}

// unlockOnClose releases a gorilla peer's write lock when the message
// writer is closed.
type unlockOnClose struct {
	io.WriteCloser
	mu   *sync.Mutex
	once sync.Once
}

func (u *unlockOnClose) Close() error {
	err := u.WriteCloser.Close()
	u.once.Do(u.mu.Unlock)
	return err
}

// firstBytes calls f once, when the first bytes are read.
type firstBytes struct {
	r    io.Reader
	f    func()
	done bool
}

func (fb *firstBytes) Read(p []byte) (int, error) {
	n, err := fb.r.Read(p)
	if n > 0 && !fb.done {
		fb.done = true
		fb.f()
	}
	return n, err
}

// ---------------------------------------------------------------------------
// Running a case on both setups.

// wsCase runs body on the proxy and on the bridge, each with a fresh
// handler from newHandler, and returns both transcripts; a transcript is nil
// if its half failed or was skipped.
func wsCase(t *testing.T, newHandler func() *wsHandler, cfg wsHostConfig, body func(t *testing.T, e *wsEnv, h *wsHandler) wsTranscript) (proxy, bridge *wsTranscript) {
	t.Helper()
	for _, setup := range wsSetups {
		t.Run(string(setup), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			h := newHandler()
			e := startWS(t, setup, h, cfg)
			tr := body(t, e, h)
			t.Logf("transcript:\n%v", tr)
			if setup == proxySetup {
				proxy = &tr
			} else {
				bridge = &tr
			}
		})
	}
	return proxy, bridge
}

// wsSame runs body on both setups and requires equal transcripts.
func wsSame(t *testing.T, newHandler func() *wsHandler, cfg wsHostConfig, body func(t *testing.T, e *wsEnv, h *wsHandler) wsTranscript) {
	t.Helper()
	proxy, bridge := wsCase(t, newHandler, cfg, body)
	if proxy != nil && bridge != nil {
		compareTranscripts(t, *proxy, *bridge)
	}
}

// wsCtx is a context bounded by wsSessionTimeout.
func wsCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), wsSessionTimeout)
	t.Cleanup(cancel)
	return ctx
}
