package conformance

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

// Was a bug: an eligible upgrade request that the stream cannot carry (a header
// value that is not UTF-8) is answered 400 without Connection: close, so
// the bytes pipelined behind it are parsed as a second HTTP request.
func TestHostUpgradeUncarriedCloses(t *testing.T) {
	env, plugin := upgradeEnv(t, upgradeEcho("", nil), nil)
	c := dialRaw(t, env)
	c.send(t, "GET /ws HTTP/1.1", append(upgradeWSHeaders(), "X-Bad: \xff"),
		"GET /smuggled HTTP/1.1\r\nHost: example.test\r\n\r\n")
	raw, resp := c.head(t)
	if resp.StatusCode != 400 {
		t.Fatalf("got %q", raw)
	}
	if !resp.Close {
		t.Errorf("400 to an upgrade request lacks Connection: close: %q", raw)
	}
	_ = c.readN(t, int(resp.ContentLength))
	_ = c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	rest, _ := c.rest()
	if rest != "" {
		t.Errorf("bytes behind the upgrade request were served as HTTP: %q (plugin calls %d)", rest, plugin.Calls())
	}
}

// Was a bug: CloseUpgraded does not see a session still in its handshake; it
// returns nil, and the session then starts and outlives it.
func TestHostUpgradeCloseDuringHandshake(t *testing.T) {
	got, release := make(chan struct{}), make(chan struct{})
	env, _ := upgradeEnv(t, func(stream bridgetest.ServerStream) error {
		first, err := upgradeFirst(stream)
		if err != nil {
			return err
		}
		close(got)
		<-release
		if err := stream.Send(upgradeAccept(first.key[0])); err != nil {
			return err
		}
		for {
			msg, err := stream.Recv()
			if err != nil {
				return err
			}
			if len(msg.GetBodyChunk()) > 0 {
				if err := stream.Send(&bridgetest.ResponseMsg{BodyChunk: []byte(strings.ToUpper(string(msg.GetBodyChunk())))}); err != nil {
					return err
				}
			}
			if msg.GetBodyComplete() {
				return stream.Send(&bridgetest.ResponseMsg{BodyComplete: true})
			}
		}
	}, nil)
	c := dialRaw(t, env)
	c.send(t, "GET /t HTTP/1.1", []string{"Connection: Upgrade", "Upgrade: x-echo-tcp"}, "")
	<-got
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	err := env.Host.CloseUpgraded(ctx)
	close(release)
	raw, resp := c.head(t)
	if err == nil && resp.StatusCode == 101 {
		io.WriteString(c.conn, "after shutdown")
		echo := c.readN(t, len("after shutdown"))
		t.Errorf("CloseUpgraded returned nil, then a session started (%q) and still relays: %q", raw, echo)
		_ = c.conn.CloseWrite()
	}
}

// Was a bug: over TLS an abort is not a reset: tls.Conn.Close sends close_notify
// first, so the client reads a clean end of a cut-off session.
func TestHostUpgradeTLSAbortResets(t *testing.T) {
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
		return errors.New("plugin failed")
	}, nil)
	srv := httptest.NewUnstartedServer(env.Host)
	srv.StartTLS()
	defer srv.Close()
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /t HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: x-echo-tcp\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("%v %v", resp, err)
	}
	rest, err := io.ReadAll(br)
	if err == nil {
		t.Errorf("TLS client read %q then a clean end (close_notify + EOF) after the plugin failed; want an error (reset)", rest)
	}
}

// Was a bug: the handshake timeout starts after Open, so an upgrade request that
// waits for gRPC stream quota (plugin MaxConcurrentStreams, the case
// upgrade.md §2.1 names) is never answered 504.
func TestHostUpgradeHandshakeTimeoutCoversOpen(t *testing.T) {
	bridgetest.LeakCheck(t)
	plugin := &bridgetest.ScriptedPlugin{Script: upgradeEcho("", nil)}
	env := bridgetest.NewEnv(t, bridgetest.Config{Plugin: plugin,
		PluginOptions: bridgetest.PluginOptions{ServerOptions: []grpc.ServerOption{grpc.MaxConcurrentStreams(1)}},
		SetupHost: func(h *pluginapiv1.ServeHTTPHost) {
			h.UpgradeProtocols = []string{"x-echo-tcp"}
			h.UpgradeHandshakeTimeout = 300 * time.Millisecond
		}})
	first := dialRaw(t, env)
	first.send(t, "GET /t HTTP/1.1", []string{"Connection: Upgrade", "Upgrade: x-echo-tcp"}, "")
	if _, resp := first.head(t); resp.StatusCode != 101 {
		t.Fatal(resp.StatusCode)
	}
	second := dialRaw(t, env)
	second.send(t, "GET /t HTTP/1.1", []string{"Connection: Upgrade", "Upgrade: x-echo-tcp"}, "")
	_ = second.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := second.r.ReadString('\n')
	if err != nil {
		t.Errorf("no answer 3 s after the request, with UpgradeHandshakeTimeout 300 ms: %v", err)
	} else if !strings.Contains(line, "504") {
		t.Errorf("got %q", line)
	}
	_ = first.conn.CloseWrite()
	_, _ = first.rest()
	_ = second.conn.Close()
}

// Was a bug: the handshake timer could fire after Recv returned the 101 and
// before it was stopped: the stream was cancelled, and a session the plugin
// accepted in time was aborted and logged as the plugin's fault. Timeouts
// about as long as the handshake make the race likely.
func TestHostUpgradeHandshakeTimerRace(t *testing.T) {
	hits := 0
	for i := range 40 {
		timeout := time.Duration(50+i*10) * time.Microsecond
		env, _ := upgradeEnv(t, upgradeEcho("", nil), func(h *pluginapiv1.ServeHTTPHost) { h.UpgradeHandshakeTimeout = timeout })
		for range 10 {
			c := dialRaw(t, env)
			c.send(t, "GET /t HTTP/1.1", []string{"Connection: Upgrade", "Upgrade: x-echo-tcp"}, "")
			_, resp := c.head(t)
			if resp.StatusCode == 101 {
				_, _ = io.WriteString(c.conn, "x")
				if got := c.readN(t, 1); got != "X" {
					hits++
				}
			} else if resp.StatusCode != http.StatusGatewayTimeout {
				t.Errorf("status %d, want 101 or 504", resp.StatusCode)
			}
			_ = c.conn.Close()
		}
	}
	if hits > 0 {
		t.Errorf("%d sessions got a 101 in time and were then aborted", hits)
	}
}

// Was a bug: a client that half-closes right behind the upgrade request,
// without waiting for the 101, got 503: net/http cancels the request's
// context when its background read sees the FIN. For an upgrade that FIN
// is the end of the new protocol's input, delivered after the 101.
func TestHostUpgradeHalfCloseBeforeAnswer(t *testing.T) {
	env, _ := upgradeEnv(t, upgradeEcho("tail", nil), nil)
	c := dialRaw(t, env)
	c.send(t, "GET /t HTTP/1.1", []string{"Connection: Upgrade", "Upgrade: x-echo-tcp"}, "early")
	if err := c.conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	raw, resp := c.head(t)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("got %q, want 101", raw)
	}
	if rest, err := c.rest(); rest != "EARLYtail" || err != nil {
		t.Errorf("client read %q, %v; want EARLYtail and a clean end", rest, err)
	}
}
