package conformance

// The wire is unaffected by chunk buffer reuse. The host's request pump
// reads the next chunk into the buffer it just sent, and the facade's
// response writer refills its buffer once Send returns (unless
// grpc.EnableTracing is on). That is safe only because grpc-go marshals a
// message before Send returns; if it did not, a later chunk would
// overwrite an earlier one before the transport wrote it. These tests
// record, with a stats.Handler on both gRPC ends, every body chunk at the
// moment it is sent and the moment it is received, and compare them with
// each other and with what the HTTP client and the plugin's handler sent
// and got. A codec that referred to body_chunk instead of copying it would
// make the message-by-message comparison fail: same lengths, other bytes.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

// wireBodySize spans many 64 KiB chunks and ends with a ragged one.
const wireBodySize = 5<<20 + 7

// Odd sizes of the reads and writes on either side, so that chunks are
// filled partially and at different offsets.
const (
	wireClientWrite  = 9_999  // the client's upload pieces
	wireHandlerRead  = 12_345 // the handler's read buffer
	wireHandlerWrite = 10_000 // the download handler's writes
)

// wireMsg is one ServeHTTP message as a stats handler saw it, copied when
// HandleRPC was called.
type wireMsg struct {
	chunk                 []byte
	init, flush, complete bool
}

// wireRecorder is a stats.Handler that copies every message sent and
// received on one gRPC end, in order. gRPC may change a Payload once
// HandleRPC returns, so the bytes are copied at once.
type wireRecorder struct {
	client bool          // installed on the host's gRPC client, else the plugin's server
	ended  chan struct{} // closed at the RPC's End, after its last payload

	mu       sync.Mutex
	rpcs     int
	out, in  []wireMsg
	mistakes []string // payloads of an unexpected type or side
}

func (r *wireRecorder) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (r *wireRecorder) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (r *wireRecorder) HandleConn(context.Context, stats.ConnStats) {}

func (r *wireRecorder) HandleRPC(_ context.Context, s stats.RPCStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch p := s.(type) {
	case *stats.Begin:
		r.rpcs++
	case *stats.End:
		if r.rpcs == 1 {
			close(r.ended)
		}
	case *stats.OutPayload:
		// The host sends requests, the plugin responses.
		if m, ok := r.copyMsg(p.Client, p.Payload, r.client); ok {
			r.out = append(r.out, m)
		}
	case *stats.InPayload:
		if m, ok := r.copyMsg(p.Client, p.Payload, !r.client); ok {
			r.in = append(r.in, m)
		}
	}
}

// copyMsg copies the fields of payload that carry the body. wantRequest
// says which message type the direction carries.
func (r *wireRecorder) copyMsg(client bool, payload any, wantRequest bool) (wireMsg, bool) {
	if client != r.client {
		r.mistakes = append(r.mistakes, fmt.Sprintf("payload with Client=%v", client))
		return wireMsg{}, false
	}
	switch m := payload.(type) {
	case *pluginapiv1.ServeHTTPRequest:
		if wantRequest {
			return wireMsg{chunk: bytes.Clone(m.GetBodyChunk()), init: m.GetInit() != nil, complete: m.GetBodyComplete()}, true
		}
	case *pluginapiv1.ServeHTTPResponse:
		if !wantRequest {
			return wireMsg{chunk: bytes.Clone(m.GetBodyChunk()), init: m.GetInit() != nil, flush: m.GetFlush(), complete: m.GetBodyComplete()}, true
		}
	}
	r.mistakes = append(r.mistakes, fmt.Sprintf("payload of type %T", payload))
	return wireMsg{}, false
}

// snapshot returns what was recorded; call it once the exchange is over.
func (r *wireRecorder) snapshot() (rpcs int, out, in []wireMsg, mistakes []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rpcs, r.out, r.in, r.mistakes
}

// wireSeen is what one end of the HTTP exchange read and wrote.
type wireSeen struct {
	read, wrote []byte
	err         error // a failure of the end's own I/O
}

// wireCase is one HTTP exchange through the bridge.
type wireCase struct {
	name    string
	handler func(w http.ResponseWriter, r *http.Request) wireSeen // the plugin's
	client  func(t *testing.T, env *bridgetest.Env) wireSeen      // the HTTP client's
}

// wireReadAll reads r to its end with a buffer of size bytes.
func wireReadAll(r io.Reader, size int) ([]byte, error) {
	var all []byte
	buf := make([]byte, size)
	for {
		n, err := r.Read(buf)
		all = append(all, buf[:n]...)
		if err == io.EOF {
			return all, nil
		}
		if err != nil {
			return all, err
		}
	}
}

// wireDo sends req and reads the whole response; anything but a complete
// 200 stops the test.
func wireDo(t *testing.T, env *bridgetest.Env, req *http.Request) []byte {
	t.Helper()
	res := env.RoundTrip(t, req)
	if res.Status != http.StatusOK || res.ReadErr != nil {
		t.Fatalf("client: status %d, read error %v after %d bytes; want a complete 200", res.Status, res.ReadErr, len(res.Body))
	}
	return res.Body
}

func wireCases(body []byte) []wireCase {
	return []wireCase{
		{
			// Request chunks only: the pump's buffer is reused; the length
			// is known, so the pump's buffer is a whole chunk.
			name: "upload-read-then-hash",
			handler: func(w http.ResponseWriter, r *http.Request) wireSeen {
				read, err := wireReadAll(r.Body, wireHandlerRead)
				answer := fmt.Appendf(nil, "%d %x\n", len(read), sha256.Sum256(read))
				n, werr := w.Write(answer)
				return wireSeen{read: read, wrote: answer[:n], err: errors.Join(err, werr)}
			},
			client: func(t *testing.T, env *bridgetest.Env) wireSeen {
				ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
				defer cancel()
				req := env.Request(t, ctx, http.MethodPost, "/upload", hostPipeBody(t, 0, hostSplit(body, wireClientWrite)...))
				req.ContentLength = int64(len(body))
				return wireSeen{wrote: body, read: wireDo(t, env, req)}
			},
		},
		{
			// Response chunks only: the writer's buffer is reused, filled by
			// writes that straddle chunk boundaries and cut short by flushes.
			name: "download-odd-writes-and-flushes",
			handler: func(w http.ResponseWriter, r *http.Request) wireSeen {
				read, err := io.ReadAll(r.Body)
				var wrote []byte
				for i := 0; len(wrote) < len(body); i++ {
					end := min(len(wrote)+wireHandlerWrite, len(body))
					n, werr := w.Write(body[len(wrote):end])
					wrote = append(wrote, body[len(wrote):len(wrote)+n]...)
					if werr != nil {
						return wireSeen{read: read, wrote: wrote, err: werr}
					}
					if i%13 == 12 {
						w.(http.Flusher).Flush()
					}
				}
				return wireSeen{read: read, wrote: wrote, err: err}
			},
			client: func(t *testing.T, env *bridgetest.Env) wireSeen {
				ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
				defer cancel()
				return wireSeen{read: wireDo(t, env, env.Request(t, ctx, http.MethodGet, "/download", nil))}
			},
		},
		{
			// Both buffers at once: the handler echoes as it reads, while the
			// client is still uploading (a body of unknown length, so the
			// pump's reads end wherever the client's pieces do).
			name: "echo-full-duplex",
			handler: func(w http.ResponseWriter, r *http.Request) wireSeen {
				var seen wireSeen
				buf := make([]byte, wireHandlerRead)
				for i := 0; ; i++ {
					n, err := r.Body.Read(buf)
					seen.read = append(seen.read, buf[:n]...)
					if n > 0 {
						m, werr := w.Write(buf[:n])
						seen.wrote = append(seen.wrote, buf[:m]...)
						if werr != nil {
							seen.err = werr
							return seen
						}
						if i%5 == 4 {
							w.(http.Flusher).Flush()
						}
					}
					if err != nil {
						if err != io.EOF {
							seen.err = err
						}
						return seen
					}
				}
			},
			client: func(t *testing.T, env *bridgetest.Env) wireSeen {
				ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
				defer cancel()
				// An upload cut short leaves what the handler read and the
				// chunks recorded on both ends shorter than body.
				upload := hostPipeBody(t, 0, hostSplit(body, wireClientWrite)...)
				return wireSeen{wrote: body, read: wireDo(t, env, env.Request(t, ctx, http.MethodPost, "/echo", upload))}
			},
		},
	}
}

// wireRun runs every case over each HTTP version, each in an Env of its
// own so that the recorders see that exchange's stream only.
func wireRun(t *testing.T) {
	body := bridgetest.RandomBytes(t, wireBodySize)
	for _, tc := range wireCases(body) {
		for _, hv := range bridgetest.HTTPVersions {
			t.Run(string(hv)+"/"+tc.name, func(t *testing.T) {
				bridgetest.LeakCheck(t)
				handlerSeen := make(chan wireSeen, 1)
				host := &wireRecorder{client: true, ended: make(chan struct{})}
				plugin := &wireRecorder{ended: make(chan struct{})}
				env := bridgetest.NewEnv(t, bridgetest.Config{
					Transport:   bridgetest.TCP, // real gRPC framing over a socket
					HTTPVersion: hv,
					Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						handlerSeen <- tc.handler(w, r)
					}),
					PluginOptions: bridgetest.PluginOptions{
						ServerOptions: []grpc.ServerOption{grpc.StatsHandler(plugin)},
						DialOptions:   []grpc.DialOption{grpc.WithStatsHandler(host)},
					},
				})
				client := tc.client(t, env)
				handler, ok := bridgetest.WaitFor(t, handlerSeen, bridgetest.ExchangeTimeout, "the handler to return")
				if !ok {
					t.FailNow()
				}
				if handler.err != nil {
					t.Errorf("handler I/O failed: %v", handler.err)
				}
				// A payload is reported after gRPC queued it, so the peer may
				// act on a message before its sender's stats handler saw it:
				// the records are complete only at each RPC's End.
				for _, end := range []struct {
					side string
					r    *wireRecorder
				}{{"host", host}, {"plugin", plugin}} {
					if _, ok := bridgetest.WaitFor(t, end.r.ended, bridgetest.ExchangeTimeout, "the "+end.side+"'s RPC to end"); !ok {
						t.FailNow()
					}
				}
				hostRPCs, hostOut, hostIn, hostMistakes := host.snapshot()
				pluginRPCs, pluginOut, pluginIn, pluginMistakes := plugin.snapshot()
				if hostRPCs != 1 || pluginRPCs != 1 {
					t.Errorf("recorded %d host and %d plugin RPCs, want one each", hostRPCs, pluginRPCs)
				}
				for _, m := range append(hostMistakes, pluginMistakes...) {
					t.Errorf("stats handler saw a %s", m)
				}
				wireCompare(t, "request body", client.wrote, handler.read, "handler read",
					wireSide{"host's gRPC client sent", hostOut}, wireSide{"plugin's gRPC server received", pluginIn})
				wireCompare(t, "response body", handler.wrote, client.read, "HTTP client received",
					wireSide{"plugin's gRPC server sent", pluginOut}, wireSide{"host's gRPC client received", hostIn})
			})
		}
	}
}

// wireSide is the messages one gRPC end recorded in one direction.
type wireSide struct {
	name string
	msgs []wireMsg
}

// wireCompare checks one direction: the bytes its sender gave to the
// bridge reach the receiver unchanged, as a whole and message by message.
func wireCompare(t *testing.T, dir string, sent, got []byte, gotName string, out, in wireSide) {
	t.Helper()
	if !bytes.Equal(got, sent) {
		t.Errorf("%s: %s vs sent: %s", dir, gotName, bridgetest.FirstDiff(got, sent))
	}
	for _, s := range []wireSide{out, in} {
		var cat []byte
		for _, m := range s.msgs {
			cat = append(cat, m.chunk...)
		}
		if !bytes.Equal(cat, sent) {
			t.Errorf("%s: chunks the %s vs sent: %s", dir, s.name, bridgetest.FirstDiff(cat, sent))
		}
	}
	// Equal totals can hide a chunk overwritten by the next one before the
	// transport wrote it: the same length, other bytes. So each message as
	// the sender handed it to gRPC must arrive as it was. The receiver may
	// stop early only before bodiless messages: the facade's body ends at
	// the declared length, so the host's closing body_complete can be left
	// unread when the stream ends.
	if len(in.msgs) > len(out.msgs) {
		t.Errorf("%s: the %s %d messages, the %s %d", dir, out.name, len(out.msgs), in.name, len(in.msgs))
	}
	for i := len(in.msgs); i < len(out.msgs); i++ {
		if len(out.msgs[i].chunk) > 0 {
			t.Errorf("%s: message %d of %d (the %s), carrying %d body bytes, never reached the %s, which got %d",
				dir, i, len(out.msgs), out.name, len(out.msgs[i].chunk), in.name, len(in.msgs))
			break
		}
	}
	const shown = 3 // differing messages reported in full
	differ := 0
	for i := range min(len(out.msgs), len(in.msgs)) {
		o, r := out.msgs[i], in.msgs[i]
		if bytes.Equal(r.chunk, o.chunk) && r.init == o.init && r.flush == o.flush && r.complete == o.complete {
			continue
		}
		if differ++; differ > shown {
			continue
		}
		t.Errorf("%s: message %d of %d: chunk the %s vs the %s: %s; init/flush/complete %v/%v/%v, sent %v/%v/%v",
			dir, i, len(out.msgs), in.name, out.name, bridgetest.FirstDiff(r.chunk, o.chunk),
			r.init, r.flush, r.complete, o.init, o.flush, o.complete)
	}
	if differ > shown {
		t.Errorf("%s: %d more of the %d messages differ", dir, differ-shown, len(out.msgs))
	}
	// A buffer is reused only from a second body message on; fewer would
	// make the test vacuous.
	if len(sent) > bridgetest.ChunkMax {
		withBody := 0
		for _, m := range out.msgs {
			if len(m.chunk) > 0 {
				withBody++
			}
		}
		if withBody < 2 {
			t.Errorf("%s: %d of %d messages carry body bytes, want several", dir, withBody, len(out.msgs))
		}
	}
}

func TestWireChunksAsSent(t *testing.T) {
	wireRun(t)
}

// With grpc.EnableTracing, gRPC also keeps every sent and received message
// for x/net/trace, which formats them whenever a trace page is viewed, and
// the bridge then reuses no buffer. The wire must be as without tracing,
// and the pages must show the chunks. They are rendered once the exchanges
// are over: rendering the traces of running streams is reported by -race
// inside gRPC and x/net/trace themselves, with or without the bridge.
func TestWireChunksAsSentWithTracing(t *testing.T) {
	// A package variable read when a stream or server starts: no other
	// test may run meanwhile (none in this package calls t.Parallel).
	old := grpc.EnableTracing
	grpc.EnableTracing = true
	t.Cleanup(func() { grpc.EnableTracing = old })

	wireRun(t)

	// The family is the service: /pkg.Service/Method. Each page shows the
	// last traces of the family, up to ten events each.
	service := strings.Split(pluginapiv1.PluginHooks_ServeHTTP_FullMethodName, "/")[1]
	for _, fam := range []string{"grpc.Sent." + service, "grpc.Recv." + service} {
		var page bytes.Buffer
		req := httptest.NewRequest(http.MethodGet, "/debug/requests?b=0&exp=1&fam="+url.QueryEscape(fam), nil)
		trace.Render(&page, req, true)
		sent, recv := wireDistinctLines(page.String(), "sent: body_chunk:"), wireDistinctLines(page.String(), "recv: body_chunk:")
		if sent[0] == 0 || recv[0] == 0 {
			t.Errorf("trace page of %s shows %d sent and %d received body chunks, want some of each", fam, sent[0], recv[0])
		}
		t.Logf("trace page of %s: %d sent body chunks (%d distinct), %d received (%d distinct)", fam, sent[0], sent[1], recv[0], recv[1])
	}
}

// wireDistinctLines counts the lines of page that contain s, and how many
// of them differ.
func wireDistinctLines(page, s string) [2]int {
	seen := map[string]bool{}
	n := 0
	for line := range strings.Lines(page) {
		if strings.Contains(line, s) {
			n++
			seen[line] = true
		}
	}
	return [2]int{n, len(seen)}
}
