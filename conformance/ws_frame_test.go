package conformance

// A raw WebSocket client (RFC 6455 §5) for the cases no library lets a
// client do: reserved bits and opcodes, bad fragments, pipelined frames,
// byte-wise chops and permessage-deflate by hand.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The opcodes.
const (
	wsOpCont   = 0x0
	wsOpText   = 0x1
	wsOpBinary = 0x2
	wsOpClose  = 0x8
	wsOpPing   = 0x9
	wsOpPong   = 0xa
)

// wsKey is the fixed Sec-WebSocket-Key of the raw client (RFC 6455's
// example), so that raw heads compare byte for byte.
const wsKey = "dGhlIHNhbXBsZSBub25jZQ=="

// rawFrame is one frame.
type rawFrame struct {
	Fin     bool
	RSV     byte // the three RSV bits, 0–7
	Opcode  byte
	Payload []byte
}

// frameMask is the masking key of every client frame: fixed, so the bytes a
// client sends are the same on both setups.
var frameMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// appendFrame appends f, masked as a client's frame.
func appendFrame(dst []byte, f rawFrame) []byte {
	b0 := f.Opcode & 0x0f
	if f.Fin {
		b0 |= 0x80
	}
	b0 |= (f.RSV & 7) << 4
	dst = append(dst, b0)
	n := len(f.Payload)
	switch {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, frameMask[:]...)
	for i, c := range f.Payload {
		dst = append(dst, c^frameMask[i&3])
	}
	return dst
}

// frame builds a final frame without RSV bits.
func frame(op byte, payload string) rawFrame {
	return rawFrame{Fin: true, Opcode: op, Payload: []byte(payload)}
}

// closePayload is a close frame's payload: code (if not 0) and reason.
func closePayload(code int, reason string) string {
	if code == 0 {
		return reason
	}
	return string(binary.BigEndian.AppendUint16(nil, uint16(code))) + reason
}

// readFrame reads one server frame (servers do not mask).
func readFrame(r *bufio.Reader) (rawFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return rawFrame{}, err
	}
	f := rawFrame{Fin: h[0]&0x80 != 0, RSV: h[0] >> 4 & 7, Opcode: h[0] & 0x0f}
	if h[1]&0x80 != 0 {
		return f, errors.New("server frame is masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > wsReadLimit {
		return f, fmt.Errorf("frame of %d bytes", n)
	}
	f.Payload = make([]byte, n)
	_, err := io.ReadFull(r, f.Payload)
	return f, err
}

// rawWS is a raw client connection after its handshake.
type rawWS struct {
	Conn net.Conn
	R    *bufio.Reader
	Head string // the normalised response head
	Resp *http.Response
}

// handshake is a raw upgrade request for target with extra header lines
// (each ending in CRLF).
func handshake(host, target, extra string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + wsKey + "\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
}

// rawDial connects to e, writes req and reads the response head. The body
// of a non-101 response is left in R.
func rawDial(t testing.TB, e *wsEnv, req []byte) *rawWS {
	t.Helper()
	conn, err := net.DialTimeout("tcp", e.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(wsSessionTimeout))
	if _, err := conn.Write(req); err != nil {
		t.Fatalf("write handshake: %v", err)
	}
	c := &rawWS{Conn: conn, R: bufio.NewReaderSize(conn, 64<<10)}
	var head []byte
	for {
		line, err := c.R.ReadSlice('\n')
		head = append(head, line...)
		if err != nil {
			t.Fatalf("read response head via %s: %v (got %q)", e.Setup, err, head)
		}
		if len(line) <= 2 && strings.TrimSpace(string(line)) == "" {
			break
		}
	}
	c.Head = normaliseHead(head)
	c.Resp, err = http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), nil)
	if err != nil {
		t.Fatalf("parse response head %q: %v", head, err)
	}
	return c
}

// Send writes frames in one write.
func (c *rawWS) Send(frames ...rawFrame) error {
	var b []byte
	for _, f := range frames {
		b = appendFrame(b, f)
	}
	_, err := c.Conn.Write(b)
	return err
}

// SendChopped writes the frames' bytes in writes of chop bytes.
func (c *rawWS) SendChopped(chop int, frames ...rawFrame) error {
	var b []byte
	for _, f := range frames {
		b = appendFrame(b, f)
	}
	for len(b) > 0 {
		n := min(chop, len(b))
		if _, err := c.Conn.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// rawEnd classifies how a raw connection ended: "eof", "reset" or
// "timeout" (or the error's text).
func rawEnd(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	return err.Error()
}

// frameString describes a received frame for a transcript.
func frameString(f rawFrame) string {
	fin := 0
	if f.Fin {
		fin = 1
	}
	s := fmt.Sprintf("fin=%d rsv=%d op=%d %s", fin, f.RSV, f.Opcode, newWSMsg(int(f.Opcode), f.Payload))
	if f.Opcode == wsOpClose && len(f.Payload) >= 2 {
		s += fmt.Sprintf(" code=%d reason=%q", binary.BigEndian.Uint16(f.Payload), f.Payload[2:])
	}
	return s
}

// ReadAll reads frames until the connection ends, answering a close frame
// with the same code once (as a client does), and returns the frames'
// descriptions, the close code received (1006 if none) and how the
// connection ended. It gives up after d.
func (c *rawWS) ReadAll(d time.Duration, closeSent bool) (frames []string, code int, end string) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(d))
	code = 1006
	for {
		f, err := c.ReadFrame()
		if err != nil {
			return frames, code, rawEnd(err)
		}
		frames = append(frames, frameString(f))
		if f.Opcode == wsOpClose {
			code = 1005
			if len(f.Payload) >= 2 {
				code = int(binary.BigEndian.Uint16(f.Payload))
			}
			if !closeSent {
				closeSent = true
				_ = c.Send(frame(wsOpClose, string(f.Payload[:min(2, len(f.Payload))])))
			}
		}
	}
}

// ReadFrame reads one frame.
func (c *rawWS) ReadFrame() (rawFrame, error) { return readFrame(c.R) }
