package conformance

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

// FuzzFacadeUpgrade plays an arbitrary script of request messages (chunks
// of any size, body_complete, a half-close without it, a cancel) into a
// hijacked connection whose handler echoes what it reads, in one of several
// ways (either accept style, returning from the handler at once, small or
// large reads, reads under short deadlines). The facade may not hang, leak
// or reorder bytes: the echo is always a prefix of what was sent; without a
// cancel it is all of it, the handler's read ends with io.EOF after
// body_complete and io.ErrUnexpectedEOF without it, and the RPC ends OK
// with body_complete last. Run it with
//
//	go test -run='^$' -fuzz='^FuzzFacadeUpgrade$' -fuzztime=20s ./conformance/
func FuzzFacadeUpgrade(f *testing.F) {
	for _, seed := range [][]byte{
		{0x00},                         // style a: nothing sent, half-close
		{0x01, 4, 8, 1},                // style b: two chunks, body_complete
		{0x06, 4, 0xfc, 0x80, 1},       // returns at once, tail: large chunks
		{0x19, 4, 4, 4, 2},             // 7-byte reads, half-close without complete
		{0x2a, 0xfc, 0xfc, 3},          // 4 KiB reads, cancel mid-stream
		{0x38, 4, 8, 12, 16, 20, 1},    // 64 KiB reads under deadlines
		{0x0f, 3},                      // cancel at once
		{0x3e, 0xfc, 0xfc, 0xfc, 1, 4}, // nothing after body_complete
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || len(data) > 24 {
			return
		}
		bridgetest.LeakCheck(t)
		mode := data[0]
		styleB, detach, tail, deadlines := mode&1 != 0, mode&2 != 0, mode&4 != 0, mode&8 != 0
		readSize := []int{1, 7, 4096, 70000}[mode>>4&3]

		readEnd := make(chan error, 1)
		hijackErr := make(chan error, 1)
		var serving atomic.Int32
		p, _ := facadeStart(t, func(w http.ResponseWriter, r *http.Request) {
			serving.Add(1)
			if !styleB {
				w.WriteHeader(http.StatusSwitchingProtocols)
			}
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				// The 101 could not be sent: the host cancelled.
				hijackErr <- err
				serving.Add(-1)
				return
			}
			if styleB {
				if _, err := conn.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-echo-tcp\r\nConnection: Upgrade\r\n\r\n")); err != nil {
					facadeUpReport(hijackErr, err) // the host cancelled; the echo fails too
				}
			}
			echo := func() {
				defer serving.Add(-1)
				defer conn.Close()
				buf := make([]byte, readSize)
				for {
					if deadlines {
						_ = conn.SetReadDeadline(time.Now().Add(time.Millisecond))
					}
					n, err := conn.Read(buf)
					if errors.Is(err, os.ErrDeadlineExceeded) {
						continue
					}
					if n > 0 {
						if _, werr := conn.Write(buf[:n]); werr != nil {
							readEnd <- werr
							return
						}
					}
					if err != nil {
						if tail && err == io.EOF {
							_, _ = conn.Write([]byte("tail"))
						}
						readEnd <- err
						return
					}
				}
			}
			if detach {
				go echo()
				return
			}
			echo()
		})
		stream, cancel := bridgetest.OpenStreamOffering(t, p.Client, "x-echo-tcp")
		init := facadeUpInit("x-echo-tcp")
		if err := stream.Send(&bridgetest.RequestMsg{Init: init}); err != nil {
			t.Fatal(err)
		}
		type received struct {
			msgs []*bridgetest.ResponseMsg
			err  error
		}
		done := make(chan received, 1)
		go func() {
			msgs, err := facadeRecvAll(stream)
			done <- received{msgs, err}
		}()

		var sent []byte
		completed, cancelled := false, false
		pattern := facadeUpPattern(200 << 10)
	script:
		for i, op := range data[1:] {
			switch op & 3 {
			case 0:
				if completed {
					continue
				}
				n := int(op>>2)*1500 + i
				if readSize < 4096 {
					n %= 2000 // each small read is a message: keep them few
				}
				chunk := pattern[len(sent)%1000 : len(sent)%1000+n]
				if stream.Send(&bridgetest.RequestMsg{BodyChunk: chunk}) != nil {
					break script // the plugin ended the RPC
				}
				sent = append(sent, chunk...)
			case 1:
				if !completed && stream.Send(&bridgetest.RequestMsg{BodyComplete: true}) == nil {
					completed = true
				}
			case 2:
				break script
			case 3:
				cancel()
				cancelled = true
				break script
			}
		}
		if !cancelled {
			_ = stream.CloseSend()
		}
		got, ok := bridgetest.WaitFor(t, done, fuzzTimeout, "the end of the response stream")
		if !ok {
			t.FailNow()
		}
		if !bridgetest.Eventually(fuzzTimeout, func() bool { return serving.Load() == 0 }) {
			t.Fatalf("the handler's echo did not end within %v", fuzzTimeout)
		}
		var echoed []byte
		for i, m := range got.msgs {
			if i == 0 {
				if m.GetInit().GetStatusCode() != http.StatusSwitchingProtocols {
					t.Fatalf("first message %v, want the 101", m)
				}
			} else if m.GetInit() != nil {
				t.Errorf("message %d carries an init", i)
			}
			if m.GetBodyComplete() && i != len(got.msgs)-1 {
				t.Errorf("message %d of %d carries body_complete", i, len(got.msgs))
			}
			echoed = append(echoed, m.GetBodyChunk()...)
		}
		select {
		case err := <-hijackErr:
			if !cancelled {
				t.Errorf("Hijack: %v", err)
			}
			return
		default:
		}
		want := sent
		if completed && tail {
			want = append(want, "tail"...)
		}
		if cancelled {
			if !bytes.HasPrefix(want, echoed) {
				t.Errorf("echo is not a prefix of what was sent: %s", bridgetest.FirstDiff(echoed, want))
			}
			return
		}
		if !bytes.Equal(echoed, want) {
			t.Errorf("echo: %s", bridgetest.FirstDiff(echoed, want))
		}
		if got.err != nil || len(got.msgs) == 0 || !got.msgs[len(got.msgs)-1].GetBodyComplete() {
			t.Errorf("the RPC ended with %v after %d messages, want OK with body_complete last", got.err, len(got.msgs))
		}
		wantEnd := io.ErrUnexpectedEOF
		if completed {
			wantEnd = io.EOF
		}
		if err, ok := bridgetest.WaitFor(t, readEnd, bridgetest.Promptly, "the handler's read to end"); ok && err != wantEnd {
			t.Errorf("the handler's read ended with %v, want %v", err, wantEnd)
		}
	})
}
