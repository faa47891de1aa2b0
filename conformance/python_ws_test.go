package conformance

// Cross-language WebSocket tests (upgrade.md §6, the Python rows): the echo
// apps of conformance/python/apps/ws_app.py (a raw ASGI echo at /raw, a
// Starlette WebSocketRoute at /ws) served by the generated Python facade
// behind the generated Go host, and by uvicorn 0.17.6 with ws="wsproto"
// behind httputil.ReverseProxy, the oracle. A small raw-frame client below
// talks to both; what it sees (the 101 head, messages, close codes and
// reasons, refusals, how the connection ends) must be equal.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

// pyWSTimeout bounds one WebSocket case on one side.
const pyWSTimeout = 30 * time.Second

// TestPythonWebSocket compares the bridged WebSocket apps with uvicorn's.
func TestPythonWebSocket(t *testing.T) {
	bridgetest.RequirePython(t, append(slices.Clone(pyModules), "wsproto")...)
	bridgetest.LeakCheck(t)
	bridge, proxy := pyWSStart(t)
	for _, path := range []string{"/ws", "/raw"} {
		for _, tc := range pyWSCases() {
			t.Run(strings.TrimPrefix(path, "/")+"/"+tc.name, func(t *testing.T) {
				want := pyWSRun(t, proxy, path, tc)
				got := pyWSRun(t, bridge, path, tc)
				if !slices.Equal(got, want) {
					t.Errorf("transcripts differ\nbridge:  %q\nuvicorn: %q", got, want)
				}
				t.Logf("transcript: %q", got)
			})
		}
	}
}

// TestPythonWebSocketAppFailure: an app that raises after accepting. The
// facade closes with 1011 (a deviation); uvicorn 0.17's wsproto
// implementation drops the connection without a close frame (1006).
func TestPythonWebSocketAppFailure(t *testing.T) {
	bridgetest.RequirePython(t, append(slices.Clone(pyModules), "wsproto")...)
	bridgetest.LeakCheck(t)
	bridge, proxy := pyWSStart(t)
	tc := pyWSCase{name: "boom", script: func(c *pyWSConn) error {
		if err := c.writeFrame(true, opText, []byte("x")); err != nil {
			return err
		}
		return c.readToEnd()
	}}
	got := pyWSRun(t, bridge, "/boom", tc)
	want := pyWSRun(t, proxy, "/boom", tc)
	if g := got[1:]; !slices.Equal(g, []string{`close 1011 ""`, "end eof"}) {
		t.Errorf("bridge: %q, want a close frame with 1011, then the end", got)
	}
	if w := want[1:]; !slices.Equal(w, []string{"error eof"}) && !slices.Equal(w, []string{"error reset"}) {
		t.Errorf("uvicorn: %q, want the connection dropped without a close frame", want)
	}
}

// pyWSStart starts ws_app under the plugin and uvicorn, the generated host
// (UpgradeProtocols: websocket) in front of the one and a ReverseProxy in
// front of the other; it returns their URLs.
func pyWSStart(t *testing.T) (bridge, proxy string) {
	t.Helper()
	app := pyApp{name: "ws", module: "ws_app"}
	hostLog := &bridgetest.LogBuffer{}
	plugin := pyStart(t, "plugin", app)
	oracle := pyStart(t, "uvicorn", app)

	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", plugin.port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	host := pluginapiv1.NewPluginHooksServeHTTPHost(pluginapiv1.NewPluginHooksClient(conn))
	host.Logger = hostLog.Slog()
	host.UpgradeProtocols = []string{"websocket"}
	bridge = pyServe(t, "bridge", host).url

	backend, err := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", oracle.port))
	if err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	proxyLog := &bridgetest.LogBuffer{}
	proxy = pyServe(t, "uvicorn", &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(backend)
			r.Out.Host = r.In.Host
		},
		Transport: transport,
		ErrorLog:  proxyLog.Log(),
	}).url
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("host log:\n%s\nproxy log:\n%s\nplugin stderr:\n%s", hostLog, proxyLog, plugin.stderr)
		}
	})

	return bridge, proxy
}

// pyWSCase is one session: the handshake's extra header lines, then what
// the client does once the 101 came.
type pyWSCase struct {
	name   string
	header []string // extra request header lines, or replacing ones
	noKey  bool     // leave Sec-WebSocket-Key out
	script func(c *pyWSConn) error
}

func pyWSCases() []pyWSCase {
	echo := func(sizes ...int) func(c *pyWSConn) error {
		return func(c *pyWSConn) error {
			for _, n := range sizes {
				data := bytes.Repeat([]byte{'a' + byte(n%26)}, n)
				if err := c.writeFrame(true, opBinary, data); err != nil {
					return err
				}
				if err := c.writeFrame(true, opText, data); err != nil {
					return err
				}
				for range 2 {
					if err := c.readMessage(); err != nil {
						return err
					}
				}
			}
			return c.closeAndWait(1000, "")
		}
	}
	var cases []pyWSCase
	cases = append(cases,
		pyWSCase{name: "echo-small", script: echo(0, 125, 126, 65535, 65536)},
		pyWSCase{name: "echo-1MiB", script: echo(1 << 20)},
		pyWSCase{name: "echo-16MiB", script: func(c *pyWSConn) error {
			data := bytes.Repeat([]byte{7}, 16<<20)
			if err := c.writeFrame(true, opBinary, data); err != nil {
				return err
			}
			if err := c.readMessage(); err != nil {
				return err
			}
			return c.closeAndWait(1000, "")
		}},
		pyWSCase{name: "fragments-and-pings", script: func(c *pyWSConn) error {
			data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
			for at := 0; at < len(data); at += 4096 {
				op := byte(opBinary)
				if at > 0 {
					op = opContinuation
				}
				if err := c.writeFrame(at+4096 >= len(data), op, data[at:at+4096]); err != nil {
					return err
				}
				if at%(64*4096) == 0 {
					if err := c.writeFrame(true, opPing, []byte(fmt.Sprint(at))); err != nil {
						return err
					}
				}
			}
			for range 5 { // 4 pongs and the echo, in the order they come
				if err := c.readMessage(); err != nil {
					return err
				}
			}
			return c.closeAndWait(1000, "")
		}},
		pyWSCase{name: "subprotocol", header: []string{"Sec-WebSocket-Protocol: chat.v1, chat.v2"}, script: func(c *pyWSConn) error {
			return c.closeAndWait(1000, "")
		}},
		pyWSCase{name: "missing-key", noKey: true},
		pyWSCase{name: "version-12", header: []string{"Sec-WebSocket-Version: 12"}},
	)
	for _, code := range []int{1000, 1001, 3000, 4999} {
		for _, reason := range []string{"", "bye", strings.Repeat("r", 123)} {
			name := fmt.Sprintf("close-%d-%d", code, len(reason))
			cases = append(cases,
				pyWSCase{name: "client-" + name, script: func(c *pyWSConn) error {
					if err := c.writeFrame(true, opText, []byte("hi")); err != nil {
						return err
					}
					if err := c.readMessage(); err != nil {
						return err
					}
					return c.closeAndWait(code, reason)
				}},
				pyWSCase{name: "app-" + name, script: func(c *pyWSConn) error {
					if err := c.writeFrame(true, opText, []byte(fmt.Sprintf("close %d %s", code, reason))); err != nil {
						return err
					}
					return c.readToEnd()
				}},
			)
		}
	}
	return cases
}

// pyWSRun runs tc against base and returns its transcript.
func pyWSRun(t *testing.T, base, path string, tc pyWSCase) []string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(pyWSTimeout))
	c := &pyWSConn{conn: nc, br: bufio.NewReader(nc)}
	lines := []string{"GET " + path + " HTTP/1.1", "Host: " + pyHost, "Connection: Upgrade", "Upgrade: websocket"}
	if !tc.noKey {
		lines = append(lines, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
	}
	if !slices.ContainsFunc(tc.header, func(h string) bool { return strings.HasPrefix(h, "Sec-WebSocket-Version:") }) {
		lines = append(lines, "Sec-WebSocket-Version: 13")
	}
	lines = append(lines, tc.header...)
	if _, err := io.WriteString(nc, strings.Join(lines, "\r\n")+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("reading the response head: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		return []string{fmt.Sprintf("refused %d version=%q body=%q", resp.StatusCode, resp.Header.Get("Sec-Websocket-Version"), body)}
	}
	h := resp.Header.Clone()
	h.Del("Date")
	var head bytes.Buffer
	_ = h.Write(&head)
	c.seen = append(c.seen, "101 "+head.String())
	if err := tc.script(c); err != nil {
		c.seen = append(c.seen, "error "+pyWSErrClass(err))
	}
	return c.seen
}

// The opcodes of RFC 6455 §5.2.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// pyWSConn is a client end of a WebSocket, frame by frame, recording what
// it receives.
type pyWSConn struct {
	conn    net.Conn
	br      *bufio.Reader
	seen    []string
	message []byte
	msgOp   byte
}

func (c *pyWSConn) writeFrame(fin bool, op byte, payload []byte) error {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	head := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		head = append(head, 0x80|byte(n))
	case n < 1<<16:
		head = append(head, 0x80|126)
		head = binary.BigEndian.AppendUint16(head, uint16(n))
	default:
		head = append(head, 0x80|127)
		head = binary.BigEndian.AppendUint64(head, uint64(n))
	}
	mask := []byte{0x37, 0xfa, 0x21, 0x3d}
	masked := make([]byte, len(payload))
	for i, b := range payload {
		masked[i] = b ^ mask[i%4]
	}
	_, err := c.conn.Write(slices.Concat(head, mask, masked))
	return err
}

func (c *pyWSConn) readFrame() (fin bool, op byte, payload []byte, err error) {
	var hdr [2]byte
	if _, err = io.ReadFull(c.br, hdr[:]); err != nil {
		return
	}
	fin, op = hdr[0]&0x80 != 0, hdr[0]&0x0f
	if hdr[1]&0x80 != 0 {
		return false, 0, nil, errors.New("server frame is masked")
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err = io.ReadFull(c.br, ext[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err = io.ReadFull(c.br, ext[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > 64<<20 {
		return false, 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.br, payload)
	return
}

// readMessage reads one data message, pong or close frame, and records it;
// a close frame is answered, as RFC 6455 asks.
func (c *pyWSConn) readMessage() error {
	for {
		fin, op, payload, err := c.readFrame()
		if err != nil {
			return err
		}
		switch op {
		case opPing:
			if err := c.writeFrame(true, opPong, payload); err != nil {
				return err
			}
			continue
		case opPong:
			c.seen = append(c.seen, "pong "+string(payload))
			return nil
		case opClose:
			c.seen = append(c.seen, pyWSClose(payload))
			_ = c.writeFrame(true, opClose, payload)
			return errPyWSClosed
		case opText, opBinary:
			c.msgOp, c.message = op, nil
		}
		c.message = append(c.message, payload...)
		if fin {
			sum := sha256.Sum256(c.message)
			c.seen = append(c.seen, fmt.Sprintf("message op=%d len=%d sha=%s", c.msgOp, len(c.message), hex.EncodeToString(sum[:8])))
			return nil
		}
	}
}

var errPyWSClosed = errors.New("close frame received")

func pyWSClose(payload []byte) string {
	if len(payload) < 2 {
		return "close none"
	}
	return fmt.Sprintf("close %d %q", binary.BigEndian.Uint16(payload), payload[2:])
}

// closeAndWait sends a close frame, reads to the server's, then to the end.
func (c *pyWSConn) closeAndWait(code int, reason string) error {
	payload := binary.BigEndian.AppendUint16(nil, uint16(code))
	if err := c.writeFrame(true, opClose, append(payload, reason...)); err != nil {
		return err
	}
	for {
		fin, op, payload, err := c.readFrame()
		if err != nil {
			return err
		}
		if op == opClose && fin {
			c.seen = append(c.seen, pyWSClose(payload))
			return c.end()
		}
	}
}

// readToEnd records messages until the server's close frame, which it
// answers, then reads to the end of the connection.
func (c *pyWSConn) readToEnd() error {
	for {
		err := c.readMessage()
		if errors.Is(err, errPyWSClosed) {
			return c.end()
		}
		if err != nil {
			return err
		}
	}
}

// end records how the connection ends after the close handshake.
func (c *pyWSConn) end() error {
	_, err := c.br.ReadByte()
	if err == nil {
		return errors.New("bytes after the close frame")
	}
	c.seen = append(c.seen, "end "+pyWSErrClass(err))
	return nil
}

func pyWSErrClass(err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return "eof"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	default:
		return "reset"
	}
}
