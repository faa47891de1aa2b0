package conformance

// The plugin's server codec, ServeHTTPServerCodec: byte-exact responses,
// bounded memory while the host does not read, and every other service on
// the same gRPC server as with gRPC's own codec.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

// codecOption is the plugin's server option under test.
var codecOption = grpc.ForceServerCodecV2(pluginapiv1.ServeHTTPServerCodec{})

// codecEchoService answers every method of any service the server does not
// register by sending back the one BytesValue it receives: a second service
// beside the plugin's, through the same codec.
func codecEchoService(_ any, stream grpc.ServerStream) error {
	var msg wrapperspb.BytesValue
	if err := stream.RecvMsg(&msg); err != nil {
		return err
	}
	return stream.SendMsg(&msg)
}

// A download through the codec arrives byte for byte, whatever its chunk
// sizes: below, at and above the 32 KiB where the codec takes its own
// buffers, and larger than the largest of them (4 MiB less 64 KiB chunks
// with ChunkSize at its maximum are covered by the host's tests of the
// shared pool).
func TestCodecDownloadExact(t *testing.T) {
	body := facadeUpPattern(3<<20 + 12345)
	writes := []int{1, 100, 32<<10 - 20, 32 << 10, 32<<10 + 1, 64 << 10, 64<<10 + 7, 200 << 10, 1 << 20}
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			e := bridgetest.NewEnv(t, bridgetest.Config{HTTPVersion: hv,
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					rest := body
					for i := 0; len(rest) > 0; i++ {
						n := min(writes[i%len(writes)], len(rest))
						if _, err := w.Write(rest[:n]); err != nil {
							return
						}
						w.(http.Flusher).Flush()
						rest = rest[n:]
					}
				}),
				PluginOptions: bridgetest.PluginOptions{ServerOptions: []grpc.ServerOption{codecOption}}})
			resp, err := e.Client.Do(e.Request(t, t.Context(), http.MethodGet, "/download", nil))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("body: %s, read error %v", bridgetest.FirstDiff(got, body), err)
			}
		})
	}
}

// A hijacked connection's writes go through the codec byte for byte.
func TestCodecUpgradeWritesExact(t *testing.T) {
	bridgetest.LeakCheck(t)
	writes := [][]byte{facadeUpPattern(1<<20 + 3), []byte("a"), facadeUpPattern(40 << 10), facadeUpPattern(64 << 10)}
	var want []byte
	for _, w := range writes {
		want = append(want, w...)
	}
	bridge, _ := bridgetest.NewFacade(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusSwitchingProtocols)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		for _, p := range writes {
			if _, err := conn.Write(p); err != nil {
				t.Errorf("Write: %v", err)
				return
			}
		}
	}))
	p := bridgetest.StartPluginWith(t, bridgetest.Bufconn, &bridgetest.FacadeServer{Bridge: bridge},
		bridgetest.PluginOptions{ServerOptions: []grpc.ServerOption{codecOption}})
	stream, _ := bridgetest.OpenStreamOffering(t, p.Client, "websocket")
	if err := stream.Send(&bridgetest.RequestMsg{Init: facadeUpInit("websocket")}); err != nil {
		t.Fatal(err)
	}
	facadeUpWant101(t, stream, nil)
	if got := facadeUpRecv(t, stream, len(want)); !bytes.Equal(got, want) {
		t.Errorf("bytes: %s", bridgetest.FirstDiff(got, want))
	}
	facadeUpWantEnd(t, stream)
}

// The codec marshals every message as gRPC's proto codec does: the same
// bytes for responses of every size, and for other message types.
func TestCodecMarshalSameBytes(t *testing.T) {
	codec := pluginapiv1.ServeHTTPServerCodec{}
	msgs := []proto.Message{
		&pluginapiv1.ServeHTTPResponse{BodyChunk: []byte("small")},
		&pluginapiv1.ServeHTTPResponse{Init: bridgetest.RespInit(200, "A", "b"), BodyChunk: facadeUpPattern(32 << 10)},
		&pluginapiv1.ServeHTTPResponse{BodyChunk: facadeUpPattern(64 << 10), BodyComplete: true},
		&pluginapiv1.ServeHTTPResponse{BodyChunk: facadeUpPattern(4<<20 - 64<<10)},
		&pluginapiv1.ServeHTTPResponse{BodyChunk: facadeUpPattern(5 << 20)}, // beyond the largest class
		&pluginapiv1.ServeHTTPRequest{BodyChunk: facadeUpPattern(64 << 10)},
		wrapperspb.Bytes(facadeUpPattern(100 << 10)),
	}
	for _, msg := range msgs {
		want, err := proto.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second time in a buffer used before
			data, err := codec.Marshal(msg)
			if err != nil {
				t.Fatalf("%T of %d bytes: %v", msg, len(want), err)
			}
			if got := data.Materialize(); !bytes.Equal(got, want) {
				t.Errorf("%T of %d bytes: %s", msg, len(want), bridgetest.FirstDiff(got, want))
			}
			data.Free()
		}
	}
	if codec.Name() != "proto" {
		t.Errorf("Name() = %q, want gRPC's proto codec's", codec.Name())
	}
}

// Another service on the plugin's gRPC server, with messages below and
// above 32 KiB, works as with gRPC's codec, beside a bridged exchange.
func TestCodecOtherServices(t *testing.T) {
	bridgetest.LeakCheck(t)
	e := bridgetest.NewEnv(t, bridgetest.Config{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }),
		PluginOptions: bridgetest.PluginOptions{ServerOptions: []grpc.ServerOption{
			codecOption, grpc.UnknownServiceHandler(codecEchoService)}}})
	for _, size := range []int{0, 10, 40 << 10, 1 << 20} {
		in := wrapperspb.Bytes(facadeUpPattern(size))
		var out wrapperspb.BytesValue
		if err := e.Plugin.Conn.Invoke(t.Context(), "/test.Echo/Say", in, &out); err != nil {
			t.Errorf("unary call with %d bytes: %v", size, err)
		} else if !bytes.Equal(out.Value, in.Value) {
			t.Errorf("unary call with %d bytes: %s", size, bridgetest.FirstDiff(out.Value, in.Value))
		}
	}
	resp, err := e.Client.Do(e.Request(t, t.Context(), http.MethodGet, "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got, err := io.ReadAll(resp.Body); err != nil || string(got) != "ok" {
		t.Errorf("bridged GET: %q, %v", got, err)
	}
}

// A facade that writes 64 MiB to a host that does not read holds at most
// two stream windows and 256 KiB of heap with the codec, the window pinned
// at 64 KiB. Without it each 64 KiB chunk in flight pins one of gRPC's
// 1 MiB buffers: the test logs that figure and checks nothing of it.
func TestCodecStalledDownloadMemory(t *testing.T) {
	const bound = 2*64<<10 + 256<<10
	for _, withCodec := range []bool{true, false} {
		name := "grpc-codec"
		if withCodec {
			name = "server-codec"
		}
		t.Run(name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			chunk := facadeUpPattern(64 << 10)
			ready, start := make(chan struct{}), make(chan struct{})
			var written atomic.Int64
			bridge, _ := bridgetest.NewFacade(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(ready)
				<-start
				for written.Load() < 64<<20 {
					n, err := w.Write(chunk)
					written.Add(int64(n))
					if err != nil {
						return
					}
				}
			}))
			opts := codecPinnedWindow()
			if withCodec {
				opts.ServerOptions = append(opts.ServerOptions, codecOption)
			}
			// Over TCP: bufconn's pipes are heap, where sockets are not.
			p := bridgetest.StartPluginWith(t, bridgetest.TCP, &bridgetest.FacadeServer{Bridge: bridge}, opts)
			ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
			defer cancel()
			stream, err := p.Client.ServeHTTP(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(facadeGET("/download")); err != nil {
				t.Fatal(err)
			}
			if _, ok := bridgetest.WaitFor(t, ready, bridgetest.Promptly, "handler"); !ok {
				t.FailNow()
			}
			before := codecHeap()
			close(start)
			facadeSettle(&written, 200*time.Millisecond, bridgetest.Promptly)
			growth := int64(codecHeap()) - int64(before)
			t.Logf("%s: heap growth %d bytes with the host not reading; the handler wrote %d bytes", name, growth, written.Load())
			if written.Load() >= 64<<20 {
				t.Fatalf("the handler wrote all %d bytes: the stream did not stall", written.Load())
			}
			if withCodec && growth > bound {
				t.Errorf("heap growth %d bytes while stalled, want at most %d (two 64 KiB windows and 256 KiB)", growth, bound)
			}
			cancel()
			runtime.KeepAlive(chunk) // allocated before the baseline
		})
	}
}

// codecPinnedWindow pins the gRPC stream and connection windows to 64 KiB
// at both ends (which turns BDP estimation off).
func codecPinnedWindow() bridgetest.PluginOptions {
	return bridgetest.PluginOptions{
		ServerOptions: []grpc.ServerOption{grpc.InitialWindowSize(64 << 10), grpc.InitialConnWindowSize(64 << 10)},
		DialOptions:   []grpc.DialOption{grpc.WithInitialWindowSize(64 << 10), grpc.WithInitialConnWindowSize(64 << 10)},
	}
}

// codecHeap is the live heap after two collections (the second empties the
// sync.Pools' victim caches, where freed buffers wait).
func codecHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
