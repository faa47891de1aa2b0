package conformance

// Cases U05–U07, U12 and U17 of upgrade.md §6: drops, half-close, a
// scripted plugin's bad 101s, and the host's limits.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

// streamer is a handler that writes 1 MiB messages until a write fails,
// reading at the same time (so that a client's FIN is noticed).
func streamer(lib wsLib) func() *wsHandler {
	return func() *wsHandler {
		return &wsHandler{Lib: lib, Script: func(ctx context.Context, p wsPeer, rec *wsRecord) error {
			// A failed read closes the connection at once, so that a
			// write blocked on a client that reads nothing returns too.
			readErr := make(chan error, 1)
			go func() {
				for {
					if _, _, err := p.Read(ctx); err != nil {
						readErr <- err
						_ = p.CloseNow()
						return
					}
				}
			}()
			msg := payload(2, 1<<20)
			for {
				select {
				case err := <-readErr:
					_ = p.CloseNow()
					return err
				default:
				}
				if err := p.Write(ctx, 2, msg); err != nil {
					_ = p.CloseNow()
					<-readErr
					return err
				}
			}
		}}
	}
}

// TestWSU05ClientDrop: the client drops (FIN, or RST with SetLinger(0))
// while the handler streams; the handler's read or write fails promptly,
// and everything ends (the leak check).
func TestWSU05ClientDrop(t *testing.T) {
	for _, lib := range wsLibs {
		for _, how := range []string{"fin", "rst"} {
			t.Run(string(lib)+"/"+how, func(t *testing.T) {
				wsCase(t, streamer(lib), wsHostConfig{}, func(t *testing.T, e *wsEnv, h *wsHandler) wsTranscript {
					c := rawDial(t, e, []byte(handshake(e.Addr, "/ws/u05", "")))
					if c.Resp.StatusCode != http.StatusSwitchingProtocols {
						t.Fatalf("status %d", c.Resp.StatusCode)
					}
					// The stream has started once a frame header arrives.
					if _, err := c.R.Peek(10); err != nil {
						t.Fatal(err)
					}
					tcp := c.Conn.(*net.TCPConn)
					start := time.Now()
					if how == "fin" {
						_ = tcp.CloseWrite()
					} else {
						_ = tcp.SetLinger(0)
						_ = tcp.Close()
					}
					s := h.Next(t)
					if d := time.Since(start); d > bridgetest.Promptly {
						t.Errorf("the handler noticed the drop after %v, want within %v", d, bridgetest.Promptly)
					}
					if s.End.Class == "nil" || s.End.Class == "close" {
						t.Errorf("handler ended with %v, want an error", s.End)
					}
					_ = tcp.Close()
					return wsTranscript{ServerEnd: s.End}
				})
			})
		}
	}
}

// TestWSU06PluginDrop: the handler drops the connection without a close
// frame (CloseNow), or panics after the upgrade. The client sees an abrupt
// end (1006 class) promptly; the panic is logged.
//
// Deviation: after a panic, net/http leaves a hijacked connection open
// (conn.serve closes only connections it still owns), so through the proxy
// the client sees nothing until its own timeout; the facade aborts the
// session instead.
func TestWSU06PluginDrop(t *testing.T) {
	for _, lib := range wsLibs {
		for _, how := range []string{"closenow", "panic"} {
			t.Run(string(lib)+"/"+how, func(t *testing.T) {
				newHandler := func() *wsHandler {
					return &wsHandler{Lib: lib, Script: func(ctx context.Context, p wsPeer, rec *wsRecord) error {
						if err := p.Write(ctx, 1, []byte("hello")); err != nil {
							return err
						}
						if how == "panic" {
							panic("plugin bug after the upgrade")
						}
						return p.CloseNow()
					}}
				}
				proxy, bridge := wsCase(t, newHandler, wsHostConfig{}, func(t *testing.T, e *wsEnv, h *wsHandler) wsTranscript {
					ctx := wsCtx(t)
					c := mustDial(t, ctx, coderLib, e, "/ws/u06", wsDialOptions{})
					tr := wsTranscript{Head: c.Head}
					typ, data, err := c.Read(ctx)
					if err != nil {
						t.Fatal(err)
					}
					tr.Client = append(tr.Client, newWSMsg(typ, data))
					wait := bridgetest.Promptly
					if e.Setup == proxySetup && how == "panic" {
						wait = time.Second // it times out: see above
					}
					rctx, cancel := context.WithTimeout(ctx, wait)
					defer cancel()
					_, _, err = c.Read(rctx)
					tr.ClientEnd = classify(err)
					if how == "closenow" {
						tr.ServerEnd = h.Next(t).End
					}
					if e.Setup == bridgeSetup {
						if tr.ClientEnd.Class != "1006" {
							t.Errorf("client saw %v, want an abrupt end (1006) within %v", tr.ClientEnd, bridgetest.Promptly)
						}
						if how == "panic" {
							ok := bridgetest.Eventually(bridgetest.Promptly, func() bool {
								return strings.Contains(e.PluginLog.String(), "plugin bug after the upgrade") && strings.Contains(e.HostLog.String(), "level=ERROR")
							})
							if !ok {
								t.Errorf("panic not logged as an error\nplugin log:\n%s\nhost log:\n%s", e.PluginLog, e.HostLog)
							}
						}
					}
					return tr
				})
				if proxy == nil || bridge == nil {
					return
				}
				if how == "panic" {
					if proxy.ClientEnd.Class != "timeout" {
						t.Errorf("proxy: client saw %v after the backend's panic; net/http now closes hijacked connections?", proxy.ClientEnd)
					}
					return
				}
				compareTranscripts(t, *proxy, *bridge)
			})
		}
	}
}

// echoTCP is the x-echo-tcp handler: it hijacks, writes a 101 head, echoes
// bytes until the client's EOF, writes a tail and closes.
func echoTCP(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), wsEchoTCP) {
		http.Error(w, "want Upgrade: "+wsEchoTCP, http.StatusUpgradeRequired)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+wsEchoTCP+"\r\n\r\n"); err != nil {
		return
	}
	if _, err := io.Copy(conn, brw); err != nil {
		return
	}
	if _, err := io.WriteString(conn, "tail: the client half-closed\n"); err != nil {
		return
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// TestWSU07HalfClose: the client half-closes an x-echo-tcp session; the
// plugin reads EOF, writes its tail and closes; the client reads
// everything, then EOF.
func TestWSU07HalfClose(t *testing.T) {
	var got = map[wsSetup]string{}
	for _, setup := range wsSetups {
		t.Run(string(setup), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			e := startWS(t, setup, http.HandlerFunc(echoTCP), wsHostConfig{})
			req := "GET /echo HTTP/1.1\r\nHost: " + e.Addr + "\r\nConnection: Upgrade\r\nUpgrade: " + wsEchoTCP + "\r\n\r\n"
			c := rawDial(t, e, []byte(req))
			if c.Resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d", c.Resp.StatusCode)
			}
			for _, s := range []string{"hello ", "over ", "the stream\n"} {
				if _, err := io.WriteString(c.Conn, s); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Conn.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			_ = c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			rest, err := io.ReadAll(c.R)
			if err != nil {
				t.Fatalf("read after half-close: %v (got %q)", err, rest)
			}
			want := "hello over the stream\ntail: the client half-closed\n"
			if string(rest) != want {
				t.Errorf("client read %q, want %q", rest, want)
			}
			got[setup] = c.Head + string(rest)
		})
	}
	if p, b := got[proxySetup], got[bridgeSetup]; p != "" && b != "" && p != b {
		t.Errorf("proxy and bridge differ:\n%q\n%q", p, b)
	}
}

// scripted101 is a plugin that reads the request's first message and
// answers with msgs, then returns nil.
func scripted101(msgs ...*bridgetest.ResponseMsg) *bridgetest.ScriptedPlugin {
	return &bridgetest.ScriptedPlugin{Script: func(stream bridgetest.ServerStream) error {
		if _, err := stream.Recv(); err != nil {
			return err
		}
		for _, m := range msgs {
			if err := stream.Send(m); err != nil {
				return err
			}
		}
		return nil
	}}
}

func respMsg(init *pluginapiv1.ServeHTTPResponseInit, chunk string, complete bool) *bridgetest.ResponseMsg {
	return &bridgetest.ResponseMsg{Init: init, BodyChunk: []byte(chunk), BodyComplete: complete}
}

// TestWSU12ScriptedPlugin: a plugin's bad 101s never reach the client as
// 101s; framing headers are stripped from a good one and CR/LF in a value is
// neutralised; a non-101 answer to an upgrade is an ordinary response.
func TestWSU12ScriptedPlugin(t *testing.T) {
	ws101 := func(kv ...string) *pluginapiv1.ServeHTTPResponseInit {
		return bridgetest.RespInit(101, append([]string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}, kv...)...)
	}
	plain := "GET /u12 HTTP/1.1\r\nHost: %s\r\n\r\n"
	upgrade := "GET /u12 HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: " + wsKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	cases := []struct {
		name, req  string
		plugin     *bridgetest.ScriptedPlugin
		wantStatus int
		check      func(t *testing.T, head string, rest []byte)
	}{
		{
			name: "101-to-plain-request", req: plain,
			plugin:     scripted101(respMsg(ws101(), "tunnel", true)),
			wantStatus: http.StatusBadGateway,
		},
		{
			name: "101-with-h2c", req: upgrade,
			plugin:     scripted101(respMsg(bridgetest.RespInit(101, "Connection", "Upgrade", "Upgrade", "h2c"), "tunnel", true)),
			wantStatus: http.StatusBadGateway,
		},
		{
			name: "101-with-transfer-encoding", req: upgrade,
			plugin:     scripted101(respMsg(ws101("Transfer-Encoding", "chunked", "Content-Length", "5"), "tunnel", true)),
			wantStatus: http.StatusSwitchingProtocols,
			check: func(t *testing.T, head string, rest []byte) {
				if strings.Contains(head, "Transfer-Encoding") || strings.Contains(head, "Content-Length") {
					t.Errorf("framing headers on the 101:\n%s", head)
				}
				if string(rest) != "tunnel" {
					t.Errorf("tunnel bytes %q, want %q", rest, "tunnel")
				}
			},
		},
		{
			name: "crlf-in-101-header", req: upgrade,
			plugin:     scripted101(respMsg(ws101("X-Note", "a\r\nSet-Cookie: injected=1"), "", true)),
			wantStatus: http.StatusSwitchingProtocols,
			check: func(t *testing.T, head string, rest []byte) {
				if strings.Contains(head, "\r\nSet-Cookie") {
					t.Errorf("CR/LF injected a header:\n%q", head)
				}
			},
		},
		{
			name: "non-101-then-bytes", req: upgrade,
			plugin:     scripted101(respMsg(bridgetest.RespInit(200, "Content-Type", "text/plain"), "ordinary ", false), respMsg(nil, "body", true)),
			wantStatus: http.StatusOK,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			e := startWS(t, bridgeSetup, nil, wsHostConfig{Plugin: tc.plugin})
			c := rawDial(t, e, []byte(fmt.Sprintf(tc.req, e.Addr)))
			if c.Resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d\n%s", c.Resp.StatusCode, tc.wantStatus, c.Head)
			}
			_ = c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			if tc.wantStatus == http.StatusSwitchingProtocols {
				rest, err := io.ReadAll(c.R)
				if err != nil {
					t.Fatalf("read tunnel: %v", err)
				}
				tc.check(t, c.Head, rest)
				return
			}
			resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(strings.NewReader(c.Head), c.R)), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantStatus == http.StatusOK && string(body) != "ordinary body" {
				t.Errorf("body %q, want %q", body, "ordinary body")
			}
			if resp.Header.Get("Upgrade") != "" {
				t.Errorf("Upgrade on a %d", resp.StatusCode)
			}
		})
	}
}

// TestWSU17Limits: MaxUpgraded (503 with Retry-After, plugin not called),
// the handshake timeout (504), the idle timeout and the maximum duration
// (both an abrupt end).
func TestWSU17Limits(t *testing.T) {
	t.Run("max-upgraded", func(t *testing.T) {
		bridgetest.LeakCheck(t)
		var calls atomic.Int32
		h := &wsHandler{Lib: coderLib}
		counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			h.ServeHTTP(w, r)
		})
		e := startWS(t, bridgeSetup, counted, wsHostConfig{MaxUpgraded: 1})
		ctx := wsCtx(t)
		first := mustDial(t, ctx, coderLib, e, "/ws/u17", wsDialOptions{})
		if _, err := echoOnce(ctx, first, 1, []byte("one")); err != nil {
			t.Fatal(err)
		}
		r := rawExchange(t, e, handshake(e.Addr, "/ws/u17", ""), false)
		if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
			t.Errorf("second session: status %d, Retry-After %q; want 503 with Retry-After", r.Status, r.Header.Get("Retry-After"))
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("plugin called %d times, want 1", n)
		}
		_ = first.Close(1000, "")
		h.Next(t)
		// The slot is free again.
		ok := bridgetest.Eventually(bridgetest.Promptly, func() bool {
			c, err := dialWS(t, ctx, coderLib, e, "/ws/u17", wsDialOptions{})
			if err != nil {
				return false
			}
			_ = c.Close(1000, "")
			h.Next(t)
			return true
		})
		if !ok {
			t.Errorf("no session possible after the first ended")
		}
	})
	t.Run("handshake-timeout", func(t *testing.T) {
		bridgetest.LeakCheck(t)
		never := &bridgetest.ScriptedPlugin{Script: func(stream bridgetest.ServerStream) error {
			<-stream.Context().Done()
			return stream.Context().Err()
		}}
		e := startWS(t, bridgeSetup, nil, wsHostConfig{Plugin: never, UpgradeHandshakeTimeout: 200 * time.Millisecond})
		r := rawExchange(t, e, handshake(e.Addr, "/ws/u17", ""), false)
		if r.Status != http.StatusGatewayTimeout {
			t.Errorf("status %d, want 504", r.Status)
		}
	})
	for _, limit := range []string{"idle", "max-duration"} {
		t.Run(limit, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			h := &wsHandler{Lib: coderLib}
			cfg := wsHostConfig{UpgradeIdleTimeout: 300 * time.Millisecond}
			if limit == "max-duration" {
				cfg = wsHostConfig{UpgradeMaxDuration: 500 * time.Millisecond}
			}
			e := startWS(t, bridgeSetup, h, cfg)
			ctx := wsCtx(t)
			c := mustDial(t, ctx, coderLib, e, "/ws/u17", wsDialOptions{})
			start := time.Now()
			var err error
			if limit == "idle" {
				// Nothing in either direction: the host aborts.
				_, _, err = c.Read(ctx)
			} else {
				// Busy all along: only the lifetime limit ends it.
				for err == nil && time.Since(start) < 10*time.Second {
					_, err = echoOnce(ctx, c, 1, []byte("keep going"))
					time.Sleep(20 * time.Millisecond)
				}
			}
			if end := classify(err); end.Class != "1006" {
				t.Errorf("client saw %v, want an abrupt end", end)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("session ended after %v", d)
			}
			h.Next(t)
		})
	}
}
