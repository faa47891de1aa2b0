package conformance

// The host decodes the plugin's body chunks without copying them: a chunk
// aliases the buffer gRPC received it in, until the host has written it to
// the ResponseWriter and receives the next message. These tests check that
// no buffer is let go earlier, and that the decoding is proto's.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

// poison is what poisonPool writes over every buffer returned to it.
const poison = 0xA5

// poisonPool is a gRPC buffer pool that overwrites each buffer when it is
// returned, and never hands it out again. A body chunk that still aliased a
// returned buffer reaches the ResponseWriter as poison; under -race, a
// return while a reader still runs is also a data race.
type poisonPool struct {
	returned atomic.Int64
}

func (p *poisonPool) Get(length int) *[]byte {
	b := make([]byte, length)
	return &b
}

func (p *poisonPool) Put(b *[]byte) {
	buf := (*b)[:cap(*b)]
	for i := range buf {
		buf[i] = poison
	}
	p.returned.Add(1)
}

// TestHostReleasesBuffersAfterWrite streams bodies whose chunks arrive in
// one HTTP/2 frame each (the host then keeps gRPC's own buffer) or span
// several (it copies them into a buffer of the stream), into a host whose
// gRPC client takes its receive buffers from a poisonPool. Every body must
// arrive as the handler wrote it, also when the host's codec is not used
// (tracing, or an Open that drops the host's call option).
func TestHostReleasesBuffersAfterWrite(t *testing.T) {
	tests := []struct {
		name    string
		writes  []int // sizes of the handler's writes, each flushed
		tracing bool  // grpc.EnableTracing: messages are copies
		// dropOpts: Open ignores the host's call option, so gRPC's codec
		// decodes, and copies.
		dropOpts bool
	}{
		{name: "one byte chunks", writes: repeatSize(1, 200)},
		{name: "chunks in one frame", writes: repeatSize(10_000, 100)},
		{name: "chunks across frames", writes: repeatSize(64<<10, 40)},
		{name: "chunks over the chunk size", writes: repeatSize(200_000, 10)},
		{name: "mixed", writes: []int{1, 16_000, 70_000, 3, 16_384, 16_379, 64 << 10, 5, 1_000_000, 2}},
		{name: "mixed with tracing", writes: []int{1, 16_000, 70_000, 3, 64 << 10, 5}, tracing: true},
		{name: "mixed, Open drops the codec", writes: []int{1, 16_000, 70_000, 3, 64 << 10, 5}, dropOpts: true},
	}
	for _, tt := range tests {
		for _, v := range []bridgetest.HTTPVersion{bridgetest.HTTP1, bridgetest.HTTP2} {
			t.Run(fmt.Sprintf("%s/%s", tt.name, v), func(t *testing.T) {
				bridgetest.LeakCheck(t)
				if tt.tracing {
					// Read when a stream starts: no test of this package
					// runs in parallel.
					old := grpc.EnableTracing
					grpc.EnableTracing = true
					t.Cleanup(func() { grpc.EnableTracing = old })
				}
				total := 0
				for _, n := range tt.writes {
					total += n
				}
				body := bridgetest.RandomBytes(t, total)
				pool := &poisonPool{}
				env := bridgetest.NewEnv(t, bridgetest.Config{
					Transport:   bridgetest.TCP,
					HTTPVersion: v,
					Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						rest := body
						for _, n := range tt.writes {
							if _, err := w.Write(rest[:n]); err != nil {
								return
							}
							rest = rest[n:]
							w.(http.Flusher).Flush()
						}
					}),
					PluginOptions: bridgetest.PluginOptions{
						DialOptions: []grpc.DialOption{experimental.WithBufferPool(pool)},
					},
					SetupHost: func(h *pluginapiv1.ServeHTTPHost) {
						if tt.dropOpts {
							open := h.Open
							h.Open = func(ctx context.Context, _ ...grpc.CallOption) (bridgetest.ClientStream, error) {
								return open(ctx)
							}
						}
					},
				})
				res := env.Get(t, "/download")
				if res.Status != http.StatusOK || res.ReadErr != nil {
					t.Fatalf("status %d, read error %v; want a complete 200", res.Status, res.ReadErr)
				}
				if !bytes.Equal(res.Body, body) {
					t.Fatalf("body differs from what the handler wrote: %s", bridgetest.FirstDiff(res.Body, body))
				}
				// gRPC pools no buffer below a threshold; a tiny message is
				// a slice of its own, which the garbage collector keeps.
				if !mem.IsBelowBufferPoolingThreshold(slices.Max(tt.writes)) && pool.returned.Load() == 0 {
					t.Fatal("the host's gRPC client returned no buffer to its pool: the test checks nothing")
				}
			})
		}
	}
}

func repeatSize(n, times int) []int {
	sizes := make([]int, times)
	for i := range sizes {
		sizes[i] = n
	}
	return sizes
}

// recvRecorder is a stats.Handler that copies every response message the
// host's gRPC client receives, as HandleRPC sees it.
type recvRecorder struct {
	mu  sync.Mutex
	got []*pluginapiv1.ServeHTTPResponse
}

func (r *recvRecorder) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (r *recvRecorder) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (r *recvRecorder) HandleConn(context.Context, stats.ConnStats) {}

func (r *recvRecorder) HandleRPC(_ context.Context, s stats.RPCStats) {
	if p, ok := s.(*stats.InPayload); ok {
		if m, ok := p.Payload.(*pluginapiv1.ServeHTTPResponse); ok {
			r.mu.Lock()
			r.got = append(r.got, proto.Clone(m).(*pluginapiv1.ServeHTTPResponse))
			r.mu.Unlock()
		}
	}
}

// TestHostDecodesResponsesAsProto sends response messages in wire forms that
// gRPC's own codec decodes with proto.Unmarshal (a repeated body_chunk,
// unknown fields around it, a body_chunk of the wrong wire type) and
// requires the host to see the same messages and write the same body. The
// host's codec must not change the wire either: the plugin sees the content
// type of gRPC's default codec, application/grpc.
func TestHostDecodesResponsesAsProto(t *testing.T) {
	const (
		initField     = 1
		chunkField    = 2
		completeField = 3
		flushField    = 4
	)
	bytesField := func(b []byte, num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
	}
	varintField := func(b []byte, num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
	}
	// init: status 200, no headers.
	init := bytesField(nil, initField, varintField(nil, 1, 200))
	complete := varintField(nil, completeField, 1)
	chunk := func(s string) []byte { return bytesField(nil, chunkField, []byte(s)) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	tests := []struct {
		name     string
		messages [][]byte // after a first message of init alone
		body     string
	}{
		{name: "chunk", messages: [][]byte{cat(chunk("abc"), complete)}, body: "abc"},
		{name: "init with chunk", messages: [][]byte{cat(init, chunk("abc"), varintField(nil, flushField, 1), complete)}, body: "abc"},
		{name: "fields before the chunk", messages: [][]byte{cat(complete, varintField(nil, flushField, 1), chunk("abc"))}, body: "abc"},
		{name: "last chunk wins", messages: [][]byte{cat(chunk("first"), chunk("second")), cat(chunk("x"), complete, chunk("y"))}, body: "secondy"},
		{name: "unknown fields around the chunk", messages: [][]byte{cat(varintField(nil, 99, 7), chunk("abc"), bytesField(nil, 100, []byte("zz")), complete)}, body: "abc"},
		{name: "empty chunk", messages: [][]byte{chunk(""), cat(chunk("a"), chunk(""), complete)}, body: ""},
		{name: "chunk of the wrong wire type", messages: [][]byte{cat(varintField(nil, chunkField, 5), complete)}, body: ""},
		{name: "large chunk", messages: [][]byte{cat(chunk(string(bytes.Repeat([]byte("0123456789abcdef"), 8<<10))), complete)}, body: string(bytes.Repeat([]byte("0123456789abcdef"), 8<<10))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			raw := append([][]byte{init}, tt.messages...)
			rec := &recvRecorder{}
			contentType := make(chan []string, 1)
			plugin := &bridgetest.ScriptedPlugin{Script: func(stream bridgetest.ServerStream) error {
				md, _ := metadata.FromIncomingContext(stream.Context())
				contentType <- md.Get("content-type")
				for _, b := range raw {
					// An empty message with the wire form as its unknown
					// fields marshals to exactly those bytes.
					msg := &pluginapiv1.ServeHTTPResponse{}
					msg.ProtoReflect().SetUnknown(b)
					if err := stream.Send(msg); err != nil {
						return err
					}
				}
				return nil
			}}
			env := bridgetest.NewEnv(t, bridgetest.Config{
				Transport: bridgetest.TCP,
				Plugin:    plugin,
				PluginOptions: bridgetest.PluginOptions{
					DialOptions: []grpc.DialOption{grpc.WithStatsHandler(rec)},
				},
			})
			res := env.Get(t, "/")
			if res.Status != http.StatusOK || res.ReadErr != nil || string(res.Body) != tt.body {
				t.Errorf("got status %d, read error %v, body %q; want a complete 200 with %q", res.Status, res.ReadErr, bridgetest.Abbreviate(res.Body, 40), bridgetest.Abbreviate([]byte(tt.body), 40))
			}
			if got := <-contentType; !slices.Equal(got, []string{"application/grpc"}) {
				t.Errorf("plugin saw content-type %q, want [application/grpc]", got)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.got) != len(raw) {
				t.Fatalf("host received %d messages, want %d", len(rec.got), len(raw))
			}
			for i, b := range raw {
				want := &pluginapiv1.ServeHTTPResponse{}
				if err := proto.Unmarshal(b, want); err != nil {
					t.Fatal(err)
				}
				if !proto.Equal(rec.got[i], want) {
					t.Errorf("message %d: host decoded %v, proto.Unmarshal %v", i, rec.got[i], want)
				}
			}
		})
	}
}
