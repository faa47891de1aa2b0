package conformance

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

// The host's side of HTTP Upgrade (upgrade.md §1–2), against scripted
// plugins and a raw TCP client, so that every byte on both wires is known.
// The end-to-end cases with WebSocket libraries are in ws_*_test.go.

// upgradeSeen is what a scripted plugin saw of an upgrade request.
type upgradeSeen struct {
	key    []string // the stream's httpbridge-upgrade metadata
	header http.Header
	init   *pluginapiv1.ServeHTTPRequestInit
	first  *bridgetest.RequestMsg
}

// upgradeFirst receives the first message and the metadata of a stream.
func upgradeFirst(stream bridgetest.ServerStream) (upgradeSeen, error) {
	msg, err := stream.Recv()
	if err != nil {
		return upgradeSeen{}, err
	}
	md, _ := metadata.FromIncomingContext(stream.Context())
	return upgradeSeen{
		key:    md.Get(pluginapiv1.ServeHTTPUpgradeKey),
		header: hostDecodeHeaders(msg.GetInit().GetHeaders()),
		init:   msg.GetInit(),
		first:  msg,
	}, nil
}

// upgradeAccept is the plugin's 101 for protocol.
func upgradeAccept(protocol string, kv ...string) *bridgetest.ResponseMsg {
	kv = append([]string{"Connection", "Upgrade", "Upgrade", protocol}, kv...)
	return &bridgetest.ResponseMsg{Init: bridgetest.RespInit(101, kv...)}
}

// upgradeEcho is a plugin that accepts every upgrade and echoes the
// tunnel's bytes, upper-cased so that an echo is told from a loop-back;
// when the host half-closes it sends tail and completes.
func upgradeEcho(tail string, seen chan<- upgradeSeen) func(bridgetest.ServerStream) error {
	return func(stream bridgetest.ServerStream) error {
		first, err := upgradeFirst(stream)
		if err != nil {
			return err
		}
		if seen != nil {
			seen <- first
		}
		if len(first.key) == 0 {
			return stream.Send(&bridgetest.ResponseMsg{Init: bridgetest.RespInit(200), BodyChunk: []byte("plain"), BodyComplete: true})
		}
		if err := stream.Send(upgradeAccept(first.key[0])); err != nil {
			return err
		}
		for {
			msg, err := stream.Recv()
			if err != nil {
				return err
			}
			if chunk := msg.GetBodyChunk(); len(chunk) > 0 {
				if err := stream.Send(&bridgetest.ResponseMsg{BodyChunk: []byte(strings.ToUpper(string(chunk)))}); err != nil {
					return err
				}
			}
			if msg.GetBodyComplete() {
				return stream.Send(&bridgetest.ResponseMsg{BodyChunk: []byte(tail), BodyComplete: true})
			}
		}
	}
}

// upgradeEnv is a host that allows websocket and x-echo-tcp upgrades in
// front of script.
func upgradeEnv(t *testing.T, script func(bridgetest.ServerStream) error, setup func(*pluginapiv1.ServeHTTPHost)) (*bridgetest.Env, *bridgetest.ScriptedPlugin) {
	t.Helper()
	bridgetest.LeakCheck(t)
	plugin := &bridgetest.ScriptedPlugin{Script: script}
	env := bridgetest.NewEnv(t, bridgetest.Config{Plugin: plugin, SetupHost: func(h *pluginapiv1.ServeHTTPHost) {
		h.UpgradeProtocols = []string{"websocket", "x-echo-tcp"}
		if setup != nil {
			setup(h)
		}
	}})
	return env, plugin
}

// rawClient is a client connection to the host's server.
type rawClient struct {
	conn *net.TCPConn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, env *bridgetest.Env) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", env.Server.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawClient{conn: conn.(*net.TCPConn), r: bufio.NewReader(conn)}
}

// send writes a request head with the given header lines, and extra bytes
// in the same write.
func (c *rawClient) send(t *testing.T, requestLine string, lines []string, extra string) {
	t.Helper()
	head := requestLine + "\r\nHost: example.test\r\n" + strings.Join(lines, "\r\n")
	if len(lines) > 0 {
		head += "\r\n"
	}
	if _, err := io.WriteString(c.conn, head+"\r\n"+extra); err != nil {
		t.Fatal(err)
	}
}

// head reads a response head and returns its raw bytes and parsed form.
func (c *rawClient) head(t *testing.T) (string, *http.Response) {
	t.Helper()
	var raw strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		raw.WriteString(line)
		if err != nil {
			t.Fatalf("reading the response head: %v after %q", err, raw.String())
		}
		if line == "\r\n" {
			break
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw.String())), nil)
	if err != nil {
		t.Fatalf("parsing %q: %v", raw.String(), err)
	}
	return raw.String(), resp
}

// readN reads exactly n tunnel bytes.
func (c *rawClient) readN(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c.r, b); err != nil {
		t.Fatalf("reading %d tunnel bytes: %v (got %q)", n, err, b)
	}
	return string(b)
}

// rest reads until the connection ends, and returns the bytes and the
// error that ended it (nil for a clean EOF).
func (c *rawClient) rest() (string, error) {
	b, err := io.ReadAll(c.r)
	return string(b), err
}

func upgradeWSHeaders(extra ...string) []string {
	return append([]string{"Connection: keep-alive, Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}, extra...)
}

// Eligibility (upgrade.md §1.1, §5, U11): what the plugin sees, and whether
// the answer closes the connection.
func TestHostUpgradeEligibility(t *testing.T) {
	tests := []struct {
		name        string
		requestLine string
		lines       []string
		body        string
		protocols   []string // nil: websocket and x-echo-tcp
		eligible    string   // the metadata value, "" for none
		connection  string   // what the plugin sees in Connection
		upgrade     string   // and in Upgrade
		keep        []string // headers that must reach the plugin
		closes      bool     // the answer says Connection: close
	}{
		{name: "plain", requestLine: "GET /p HTTP/1.1", lines: []string{"Connection: keep-alive"}, connection: "keep-alive"},
		{name: "websocket", requestLine: "GET /ws?token=x HTTP/1.1", lines: upgradeWSHeaders("Origin: https://example.test"), eligible: "websocket", connection: "Upgrade", upgrade: "websocket", keep: []string{"Sec-Websocket-Key", "Sec-Websocket-Version", "Origin"}},
		{name: "case kept as sent", requestLine: "GET /ws HTTP/1.1", lines: []string{"Connection: UPGRADE", "Upgrade: WebSocket"}, eligible: "websocket", connection: "Upgrade", upgrade: "WebSocket"},
		{name: "second listed", requestLine: "GET /t HTTP/1.1", lines: []string{"Connection: upgrade", "Upgrade: x-echo-tcp"}, eligible: "x-echo-tcp", connection: "Upgrade", upgrade: "x-echo-tcp"},
		{name: "off by default", requestLine: "GET /ws HTTP/1.1", lines: upgradeWSHeaders(), protocols: []string{}, connection: "keep-alive", closes: true},
		{name: "not listed", requestLine: "GET /ws HTTP/1.1", lines: []string{"Connection: Upgrade", "Upgrade: irc"}, closes: true},
		{name: "h2c even if listed", requestLine: "GET / HTTP/1.1", lines: []string{"Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"}, protocols: []string{"h2c", "websocket"}, connection: "HTTP2-Settings", closes: true},
		{name: "two protocols", requestLine: "GET /ws HTTP/1.1", lines: []string{"Connection: Upgrade", "Upgrade: websocket, h2c"}, closes: true},
		{name: "two Upgrade lines", requestLine: "GET /ws HTTP/1.1", lines: []string{"Connection: Upgrade", "Upgrade: websocket", "Upgrade: websocket"}, closes: true},
		{name: "with a body", requestLine: "POST /ws HTTP/1.1", lines: append(upgradeWSHeaders(), "Content-Length: 5"), body: "hello", connection: "keep-alive", closes: true},
		{name: "HTTP/1.0", requestLine: "GET /ws HTTP/1.0", lines: upgradeWSHeaders(), connection: "keep-alive", closes: true},
		{name: "Upgrade without the token", requestLine: "GET /ws HTTP/1.1", lines: []string{"Connection: keep-alive", "Upgrade: websocket"}, connection: "keep-alive", closes: true},
		{name: "token without Upgrade", requestLine: "GET /ws HTTP/1.1", lines: []string{"Connection: Upgrade"}, closes: true},
		{name: "Connection names a header", requestLine: "GET /ws HTTP/1.1", lines: []string{"Connection: Upgrade, Authorization", "Upgrade: websocket", "Authorization: Bearer x"}, eligible: "websocket", connection: "Upgrade", upgrade: "websocket", keep: []string{"Authorization"}},
		{name: "declined keeps named header", requestLine: "GET /ws HTTP/1.1", lines: []string{"Connection: Upgrade, Authorization", "Upgrade: irc", "Authorization: Bearer x"}, connection: "Authorization", keep: []string{"Authorization"}, closes: true},
		{name: "non-printable protocol", requestLine: "GET /ws HTTP/1.1", lines: []string{"Connection: Upgrade", "Upgrade: web\tsocket"}, closes: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seen := make(chan upgradeSeen, 1)
			env, _ := upgradeEnv(t, func(stream bridgetest.ServerStream) error {
				first, err := upgradeFirst(stream)
				if err != nil {
					return err
				}
				seen <- first
				if !first.first.GetBodyComplete() && len(first.key) == 0 {
					if _, err := bridgetest.RecvRequest(stream); err != nil {
						return err
					}
				}
				if err := stream.Send(&bridgetest.ResponseMsg{Init: bridgetest.RespInit(426, "Content-Length", "4"), BodyChunk: []byte("nope"), BodyComplete: true}); err != nil {
					return err
				}
				if len(first.key) > 0 {
					// Refused: the host must then complete the request.
					if msgs, err := bridgetest.RecvRequest(stream); err != nil || len(msgs) != 1 || len(msgs[0].GetBodyChunk()) > 0 {
						return errors.New("after a refusal the host must send body_complete alone")
					}
				}
				return nil
			}, func(h *pluginapiv1.ServeHTTPHost) {
				if tc.protocols != nil {
					h.UpgradeProtocols = tc.protocols
				}
			})
			c := dialRaw(t, env)
			c.send(t, tc.requestLine, tc.lines, tc.body)
			got, ok := bridgetest.WaitFor(t, seen, 10*time.Second, "the plugin's stream")
			if !ok {
				return
			}
			wantKey := []string(nil)
			if tc.eligible != "" {
				wantKey = []string{strings.ToLower(tc.eligible)}
			}
			if strings.Join(got.key, ",") != strings.Join(wantKey, ",") {
				t.Errorf("metadata %s = %q, want %q", pluginapiv1.ServeHTTPUpgradeKey, got.key, wantKey)
			}
			if v := strings.Join(got.header["Connection"], ","); v != tc.connection {
				t.Errorf("plugin saw Connection %q, want %q", v, tc.connection)
			}
			if v := strings.Join(got.header["Upgrade"], ","); v != tc.upgrade {
				t.Errorf("plugin saw Upgrade %q, want %q", v, tc.upgrade)
			}
			if v := got.header["Http2-Settings"]; v != nil {
				t.Errorf("plugin saw HTTP2-Settings %q", v)
			}
			for _, key := range tc.keep {
				if got.header[key] == nil {
					t.Errorf("plugin did not get %s", key)
				}
			}
			if tc.eligible != "" && (got.first.GetBodyComplete() || got.init.GetContentLength() != 0) {
				t.Errorf("upgrade init: body_complete %v, content_length %d; want neither", got.first.GetBodyComplete(), got.init.GetContentLength())
			}
			raw, resp := c.head(t)
			if resp.StatusCode != 426 {
				t.Fatalf("status %d, want the plugin's 426: %q", resp.StatusCode, raw)
			}
			if resp.Header.Get("Upgrade") != "" {
				t.Errorf("a refusal carries Upgrade: %q", raw)
			}
			closes := tc.closes || tc.eligible != ""
			if resp.Close != closes {
				t.Errorf("Connection: close is %v, want %v: %q", resp.Close, closes, raw)
			}
			if body := c.readN(t, 4); body != "nope" {
				t.Errorf("body %q", body)
			}
			if closes {
				if rest, err := c.rest(); rest != "" || err != nil {
					t.Errorf("after the answer: %q, %v; want a clean close", rest, err)
				}
			}
		})
	}
}

// The tunnel (upgrade.md §1.2–1.4, U07, U08): the 101's bytes, bytes sent
// with the request, both half-closes, and the clean close.
func TestHostUpgradeTunnel(t *testing.T) {
	seen := make(chan upgradeSeen, 1)
	env, _ := upgradeEnv(t, upgradeEcho("tail", seen), nil)
	c := dialRaw(t, env)
	c.send(t, "GET /t?secret=1 HTTP/1.1", []string{"Connection: Upgrade", "Upgrade: x-echo-tcp"}, "early")
	raw, resp := c.head(t)
	want := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x-echo-tcp\r\n\r\n"
	if raw != want {
		t.Fatalf("101 head %q, want %q", raw, want)
	}
	_ = resp
	if got := c.readN(t, 5); got != "EARLY" {
		t.Errorf("bytes sent with the request came back as %q, want EARLY", got)
	}
	for _, word := range []string{"one", "two"} {
		if _, err := io.WriteString(c.conn, word); err != nil {
			t.Fatal(err)
		}
		if got := c.readN(t, len(word)); got != strings.ToUpper(word) {
			t.Errorf("echo %q, want %q", got, strings.ToUpper(word))
		}
	}
	if err := c.conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, err := c.rest()
	if rest != "tail" || err != nil {
		t.Errorf("after the client's half-close: %q, %v; want the plugin's tail and a clean EOF", rest, err)
	}
	if log := env.HostLog.String(); strings.Contains(log, "secret") {
		t.Errorf("the host logged the query: %s", log)
	}
}

// A plugin that fails after the 101 resets the client's connection (U06):
// a cut-off session never looks complete.
func TestHostUpgradePluginAbort(t *testing.T) {
	tests := []struct {
		name string
		end  func(stream bridgetest.ServerStream) error
	}{
		{"error", func(bridgetest.ServerStream) error { return errors.New("plugin failed") }},
		{"OK without body_complete", func(bridgetest.ServerStream) error { return nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := upgradeEnv(t, func(stream bridgetest.ServerStream) error {
				first, err := upgradeFirst(stream)
				if err != nil {
					return err
				}
				if err := stream.Send(upgradeAccept(first.key[0])); err != nil {
					return err
				}
				if err := stream.Send(&bridgetest.ResponseMsg{BodyChunk: []byte("partial")}); err != nil {
					return err
				}
				return tc.end(stream)
			}, nil)
			c := dialRaw(t, env)
			c.send(t, "GET /t HTTP/1.1", []string{"Connection: Upgrade", "Upgrade: x-echo-tcp"}, "")
			c.head(t)
			rest, err := c.rest()
			if rest != "partial" || !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("client read %q, %v; want the bytes sent, then a reset", rest, err)
			}
			if !bridgetest.Eventually(5*time.Second, func() bool { return strings.Contains(env.HostLog.String(), "aborted an upgraded session") }) {
				t.Errorf("no error logged: %s", env.HostLog.String())
			}
		})
	}
}

// A 101 the host did not ask for, or for another protocol, is 502, and no
// byte of it reaches the client (U12, §5).
func TestHostUpgradeBad101(t *testing.T) {
	tests := []struct {
		name   string
		lines  []string
		reply  *bridgetest.ResponseMsg
		closes bool // the client had asked for an upgrade
	}{
		{"not an upgrade request", []string{"Connection: keep-alive"}, upgradeAccept("websocket"), false},
		{"declined request", []string{"Connection: Upgrade", "Upgrade: irc"}, upgradeAccept("irc"), true},
		{"h2c", upgradeWSHeaders(), upgradeAccept("h2c"), true},
		{"another protocol", upgradeWSHeaders(), upgradeAccept("x-echo-tcp"), true},
		{"no Connection token", upgradeWSHeaders(), &bridgetest.ResponseMsg{Init: bridgetest.RespInit(101, "Upgrade", "websocket")}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := upgradeEnv(t, func(stream bridgetest.ServerStream) error {
				if _, err := stream.Recv(); err != nil {
					return err
				}
				return stream.Send(tc.reply)
			}, nil)
			c := dialRaw(t, env)
			c.send(t, "GET /ws HTTP/1.1", tc.lines, "")
			raw, resp := c.head(t)
			if resp.StatusCode != http.StatusBadGateway || resp.Close != tc.closes || resp.Header.Get("Upgrade") != "" {
				t.Errorf("got %q, want 502 without Upgrade, Connection: close %v", raw, tc.closes)
			}
		})
	}
}

// The 101's headers: the plugin's own pass, with CR/LF neutralised, and
// framing and hop-by-hop headers never do (U12, §2.1).
func TestHostUpgrade101Headers(t *testing.T) {
	env, _ := upgradeEnv(t, func(stream bridgetest.ServerStream) error {
		if _, err := stream.Recv(); err != nil {
			return err
		}
		return stream.Send(upgradeAccept("websocket",
			"Connection", "X-Hop",
			"Sec-Websocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
			"Set-Cookie", "a=b",
			"X-Split", "v\r\nInjected: yes",
			"X-Hop", "dropped",
			"Transfer-Encoding", "chunked",
			"Content-Length", "10",
			"Keep-Alive", "timeout=5",
		))
	}, func(h *pluginapiv1.ServeHTTPHost) { h.UpgradeHandshakeTimeout = -1 })
	c := dialRaw(t, env)
	c.send(t, "GET /ws HTTP/1.1", upgradeWSHeaders(), "")
	raw, resp := c.head(t)
	if resp.StatusCode != 101 {
		t.Fatalf("got %q", raw)
	}
	for _, key := range []string{"Sec-Websocket-Accept", "Set-Cookie", "X-Split", "Upgrade"} {
		if resp.Header.Get(key) == "" {
			t.Errorf("101 lacks %s: %q", key, raw)
		}
	}
	for _, key := range []string{"Injected", "X-Hop", "Transfer-Encoding", "Content-Length", "Keep-Alive"} {
		if resp.Header.Get(key) != "" {
			t.Errorf("101 has %s: %q", key, raw)
		}
	}
	if got := resp.Header.Values("Connection"); len(got) != 1 || got[0] != "Upgrade" {
		t.Errorf("101's Connection is %q, want just Upgrade: %q", got, raw)
	}
}

// Limits (U17): MaxUpgraded, the handshake timeout, idle and maximum
// duration, and CloseUpgraded.
func TestHostUpgradeLimits(t *testing.T) {
	t.Run("MaxUpgraded", func(t *testing.T) {
		env, plugin := upgradeEnv(t, upgradeEcho("", nil), func(h *pluginapiv1.ServeHTTPHost) { h.MaxUpgraded = 1 })
		first := dialRaw(t, env)
		first.send(t, "GET /t HTTP/1.1", []string{"Connection: Upgrade", "Upgrade: x-echo-tcp"}, "")
		if _, resp := first.head(t); resp.StatusCode != 101 {
			t.Fatalf("first session: %d", resp.StatusCode)
		}
		second := dialRaw(t, env)
		second.send(t, "GET /t HTTP/1.1", []string{"Connection: Upgrade", "Upgrade: x-echo-tcp"}, "")
		raw, resp := second.head(t)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !resp.Close {
			t.Errorf("second session: %q, want 503 with Retry-After and Connection: close", raw)
		}
		if plugin.Calls() != 1 {
			t.Errorf("the plugin served %d streams, want 1", plugin.Calls())
		}
		// Ordinary requests are not counted.
		if res := env.Get(t, "/plain"); res.Status != 200 {
			t.Errorf("ordinary request: %d", res.Status)
		}
		_ = first.conn.CloseWrite()
		_, _ = first.rest()
		// The slot is free once the first session's Forward has returned,
		// a moment after its client saw the end.
		if !bridgetest.Eventually(5*time.Second, func() bool {
			third := dialRaw(t, env)
			third.send(t, "GET /t HTTP/1.1", []string{"Connection: Upgrade", "Upgrade: x-echo-tcp"}, "")
			_, resp := third.head(t)
			return resp.StatusCode == 101
		}) {
			t.Errorf("no 101 after the first session ended")
		}
	})
	t.Run("handshake timeout", func(t *testing.T) {
		env, _ := upgradeEnv(t, func(stream bridgetest.ServerStream) error {
			<-stream.Context().Done()
			return stream.Context().Err()
		}, func(h *pluginapiv1.ServeHTTPHost) { h.UpgradeHandshakeTimeout = 200 * time.Millisecond })
		c := dialRaw(t, env)
		c.send(t, "GET /t HTTP/1.1", []string{"Connection: Upgrade", "Upgrade: x-echo-tcp"}, "")
		raw, resp := c.head(t)
		if resp.StatusCode != http.StatusGatewayTimeout || !resp.Close {
			t.Errorf("got %q, want 504 with Connection: close", raw)
		}
	})
	for _, tc := range []struct {
		name  string
		setup func(*pluginapiv1.ServeHTTPHost)
	}{
		{"idle", func(h *pluginapiv1.ServeHTTPHost) { h.UpgradeIdleTimeout = 300 * time.Millisecond }},
		{"max duration", func(h *pluginapiv1.ServeHTTPHost) { h.UpgradeMaxDuration = 300 * time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := upgradeEnv(t, upgradeEcho("", nil), tc.setup)
			c := dialRaw(t, env)
			c.send(t, "GET /t HTTP/1.1", []string{"Connection: Upgrade", "Upgrade: x-echo-tcp"}, "")
			c.head(t)
			if _, err := io.WriteString(c.conn, "ping"); err != nil {
				t.Fatal(err)
			}
			if got := c.readN(t, 4); got != "PING" {
				t.Errorf("echo %q", got)
			}
			if _, err := c.rest(); !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("session end: %v, want a reset", err)
			}
		})
	}
	t.Run("CloseUpgraded", func(t *testing.T) {
		env, _ := upgradeEnv(t, upgradeEcho("going away", nil), nil)
		c := dialRaw(t, env)
		c.send(t, "GET /t HTTP/1.1", []string{"Connection: Upgrade", "Upgrade: x-echo-tcp"}, "")
		c.head(t)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := env.Host.CloseUpgraded(ctx); err != nil {
			t.Errorf("CloseUpgraded: %v", err)
		}
		if rest, err := c.rest(); rest != "going away" || err != nil {
			t.Errorf("client read %q, %v; want the plugin's last words and a clean close", rest, err)
		}
		late := dialRaw(t, env)
		late.send(t, "GET /t HTTP/1.1", []string{"Connection: Upgrade", "Upgrade: x-echo-tcp"}, "")
		if raw, resp := late.head(t); resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("upgrade after CloseUpgraded: %q, want 503", raw)
		}
	})
}

// HTTP/2 extended CONNECT (RFC 8441), which net/http serves only with
// GODEBUG=http2xconnect=1, is answered 501 without calling the plugin, and
// noted once per process (upgrade.md §2.2). ws_*_test.go runs it over a
// real HTTP/2 connection in a child process (U18).
func TestHostUpgradeExtendedConnect(t *testing.T) {
	env, plugin := upgradeEnv(t, upgradeEcho("", nil), nil)
	for range 2 {
		r := httptest.NewRequest(http.MethodConnect, "https://example.test/ws", nil)
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
		r.Header[":protocol"] = []string{"websocket"}
		rec := httptest.NewRecorder()
		env.Host.ServeHTTP(rec, r)
		if rec.Code != http.StatusNotImplemented {
			t.Errorf("extended CONNECT: %d, want 501", rec.Code)
		}
	}
	if plugin.Calls() != 0 {
		t.Errorf("the plugin was called %d times", plugin.Calls())
	}
	if n := strings.Count(env.HostLog.String(), "http2xconnect"); n > 1 {
		t.Errorf("the note on GODEBUG was logged %d times, want at most once per process", n)
	}
}
