package conformance

// Scenarios of coder/websocket's own tests (conn_test.go: fuzzData,
// concurrentWrite, netConn/readLimit, closing either side during a read or a
// write), rewritten for this harness: each runs on the proxy and the bridge
// and the transcripts must be equal (upgrade.md §6, the Go stand-ins).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
)

func coderConn(p wsPeer) *websocket.Conn { return p.(coderPeer).c }

// TestWSCoderScenarios runs the scenarios with coder at both ends.
func TestWSCoderScenarios(t *testing.T) {
	t.Run("fuzzData", func(t *testing.T) {
		// Compression modes and thresholds drawn per session, the same on
		// both setups; five echoes of up to 128 KiB each.
		for i := range 3 {
			r := rand.New(rand.NewPCG(uint64(i), 99))
			mode := func() websocket.CompressionMode { return websocket.CompressionMode(r.IntN(3)) }
			serverMode, serverThreshold := mode(), r.IntN(9999)
			clientMode, clientThreshold := mode(), r.IntN(9999)
			sizes := []int{r.IntN(131072), r.IntN(131072), r.IntN(131072), r.IntN(131072), r.IntN(131072)}
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				newHandler := func() *wsHandler {
					return &wsHandler{Lib: coderLib, AcceptOptions: &websocket.AcceptOptions{
						CompressionMode: serverMode, CompressionThreshold: serverThreshold,
					}, Script: func(ctx context.Context, p wsPeer, rec *wsRecord) error {
						for {
							typ, data, err := p.Read(ctx)
							if err != nil {
								return err
							}
							rec.add(newWSMsg(typ, data))
							if err := p.Write(ctx, typ, data); err != nil {
								return err
							}
						}
					}}
				}
				wsSame(t, newHandler, wsHostConfig{}, func(t *testing.T, e *wsEnv, h *wsHandler) wsTranscript {
					ctx := wsCtx(t)
					d := &headDialer{}
					c, _, err := websocket.Dial(ctx, e.WS("/ws/fuzz"), &websocket.DialOptions{
						HTTPClient:           &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}},
						CompressionMode:      clientMode,
						CompressionThreshold: clientThreshold,
					})
					if err != nil {
						t.Fatal(err)
					}
					defer c.CloseNow()
					c.SetReadLimit(131072)
					tr := wsTranscript{Head: d.Conn().Head()}
					for j, n := range sizes {
						m, err := echoOnce(ctx, coderPeer{c}, 2, payload(2, n))
						if err != nil {
							t.Fatalf("echo %d: %v", j, err)
						}
						tr.Client = append(tr.Client, m)
					}
					tr.ClientEnd = classify(c.Close(websocket.StatusNormalClosure, ""))
					s := h.Next(t)
					tr.Server, tr.ServerEnd = s.Msgs, s.End
					return tr
				})
			})
		}
	})

	t.Run("concurrentWrite", func(t *testing.T) {
		newHandler := func() *wsHandler {
			return &wsHandler{Lib: coderLib, Script: func(ctx context.Context, p wsPeer, rec *wsRecord) error {
				for {
					typ, data, err := p.Read(ctx)
					if err != nil {
						return err
					}
					rec.add(newWSMsg(typ, data))
				}
			}}
		}
		wsSame(t, newHandler, wsHostConfig{}, func(t *testing.T, e *wsEnv, h *wsHandler) wsTranscript {
			ctx := wsCtx(t)
			c := mustDial(t, ctx, coderLib, e, "/ws/concurrent", wsDialOptions{})
			msg := payload(2, 9999)
			var wg sync.WaitGroup
			errs := make(chan error, 100)
			for range 100 {
				wg.Go(func() { errs <- c.Write(ctx, 2, msg) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			tr := wsTranscript{Head: c.Head, ClientEnd: classify(c.Close(1000, ""))}
			s := h.Next(t)
			tr.Server, tr.ServerEnd = s.Msgs, s.End
			return tr
		})
	})

	t.Run("netConn/readLimit", func(t *testing.T) {
		// 4 MiB through websocket.NetConn, beyond coder's default read
		// limit: NetConn reads in pieces.
		want := strings.Repeat("papa", 1<<20)
		newHandler := func() *wsHandler {
			return &wsHandler{Lib: coderLib, Script: func(ctx context.Context, p wsPeer, rec *wsRecord) error {
				n := websocket.NetConn(ctx, coderConn(p), websocket.MessageBinary)
				if _, err := io.WriteString(n, want); err != nil {
					return err
				}
				return n.Close()
			}}
		}
		wsSame(t, newHandler, wsHostConfig{}, func(t *testing.T, e *wsEnv, h *wsHandler) wsTranscript {
			ctx := wsCtx(t)
			c := mustDial(t, ctx, coderLib, e, "/ws/netconn", wsDialOptions{})
			n := websocket.NetConn(ctx, coderConn(c.wsPeer), websocket.MessageBinary)
			got, err := io.ReadAll(n)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != want {
				t.Errorf("read %d bytes, want %d", len(got), len(want))
			}
			_ = n.Close()
			tr := wsTranscript{Head: c.Head, Client: []wsMsg{newWSMsg(2, got)}}
			s := h.Next(t)
			tr.Server, tr.ServerEnd = s.Msgs, s.End
			return tr
		})
	})

	// Closing during a write or a read, from either side: the writer's and
	// the reader's errors are of the same kind on both setups.
	want := []byte("hello")
	readErrClass := func(err error) string {
		var ce websocket.CloseError
		switch {
		case errors.As(err, &ce):
			return fmt.Sprintf("close %d", ce.Code)
		case errors.Is(err, net.ErrClosed):
			return "closed"
		}
		return classify(err).String()
	}
	for _, sc := range []string{"CloseOtherSideDuringWrite", "CloseThisSideDuringRead"} {
		t.Run(sc, func(t *testing.T) {
			newHandler := func() *wsHandler {
				return &wsHandler{Lib: coderLib, Script: func(ctx context.Context, p wsPeer, rec *wsRecord) error {
					c := coderConn(p)
					if sc == "CloseOtherSideDuringWrite" {
						// The handler writes until the client's close
						// stops it.
						ctx = c.CloseRead(ctx)
						for {
							if err := c.Write(ctx, websocket.MessageText, want); err != nil {
								// net.ErrClosed, or a broken pipe when
								// the proxy's backend socket went first:
								// the reference varies, so only "failed".
								rec.add(wsMsg{Type: -1, SHA: "write failed"})
								return nil
							}
						}
					}
					// The handler reads until the client closes.
					for {
						_, data, err := c.Read(ctx)
						if err != nil {
							rec.add(wsMsg{Type: -1, SHA: readErrClass(err)})
							return nil
						}
						rec.add(newWSMsg(1, data))
					}
				}}
			}
			wsSame(t, newHandler, wsHostConfig{}, func(t *testing.T, e *wsEnv, h *wsHandler) wsTranscript {
				ctx := wsCtx(t)
				c := mustDial(t, ctx, coderLib, e, "/ws/close", wsDialOptions{})
				cc := coderConn(c.wsPeer)
				tr := wsTranscript{Head: c.Head}
				if sc == "CloseOtherSideDuringWrite" {
					_, got, err := cc.Read(ctx)
					if err != nil {
						t.Fatal(err)
					}
					tr.Client = append(tr.Client, newWSMsg(1, got))
					tr.ClientEnd = classify(cc.Close(websocket.StatusNormalClosure, ""))
				} else {
					if err := cc.Write(ctx, websocket.MessageText, want); err != nil {
						t.Fatal(err)
					}
					tr.ClientEnd = classify(cc.Close(websocket.StatusNormalClosure, ""))
				}
				tr.Extra = append(tr.Extra, "write after close: "+readErrClass(cc.Write(ctx, websocket.MessageText, want)))
				s := h.Next(t)
				tr.Server, tr.ServerEnd = s.Msgs, s.End
				return tr
			})
		})
	}
}
