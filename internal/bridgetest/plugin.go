package bridgetest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
)

// Short names for the stream types of the ServeHTTP rpc.
type (
	// RequestMsg is one message from the host to the plugin.
	RequestMsg = pluginapiv1.ServeHTTPRequest
	// ResponseMsg is one message from the plugin to the host.
	ResponseMsg = pluginapiv1.ServeHTTPResponse
	// ServerStream is the plugin's end of a ServeHTTP stream.
	ServerStream = grpc.BidiStreamingServer[RequestMsg, ResponseMsg]
	// ClientStream is the host's end of a ServeHTTP stream.
	ClientStream = grpc.BidiStreamingClient[RequestMsg, ResponseMsg]
)

// Transport is how the host reaches the plugin's gRPC server.
type Transport string

// The transports.
const (
	Bufconn Transport = "bufconn" // in-process pipe (google.golang.org/grpc/test/bufconn)
	TCP     Transport = "tcp"     // loopback TCP on 127.0.0.1
)

// Transports lists every Transport, for tests that run over each.
var Transports = []Transport{Bufconn, TCP}

// FacadeServer is how a plugin wires the generated facade into its gRPC
// server.
type FacadeServer struct {
	pluginapiv1.UnimplementedPluginHooksServer
	Bridge *pluginapiv1.ServeHTTPPlugin
}

// ServeHTTP serves the stream with the facade.
func (s *FacadeServer) ServeHTTP(stream ServerStream) error {
	return s.Bridge.Serve(stream)
}

// ScriptedPlugin is a fake plugin whose ServeHTTP runs Script.
type ScriptedPlugin struct {
	pluginapiv1.UnimplementedPluginHooksServer
	Script func(stream ServerStream) error
	calls  atomic.Int32
}

// ServeHTTP counts the call and runs Script.
func (p *ScriptedPlugin) ServeHTTP(stream ServerStream) error {
	p.calls.Add(1)
	return p.Script(stream)
}

// Calls reports how many streams the plugin has served.
func (p *ScriptedPlugin) Calls() int {
	return int(p.calls.Load())
}

// PluginOptions tunes the plugin's gRPC server and the client connected to
// it; the zero value uses grpc-go's defaults.
type PluginOptions struct {
	ServerOptions []grpc.ServerOption
	DialOptions   []grpc.DialOption
}

// Plugin is a running plugin gRPC server and a client connected to it.
// Both are closed at cleanup.
type Plugin struct {
	Client pluginapiv1.PluginHooksClient
	Conn   *grpc.ClientConn
	Server *grpc.Server

	served   chan struct{}
	stopOnce sync.Once
}

// StartPlugin serves impl over tr and connects a client to it.
func StartPlugin(t testing.TB, tr Transport, impl pluginapiv1.PluginHooksServer) *Plugin {
	t.Helper()
	return StartPluginWith(t, tr, impl, PluginOptions{})
}

// StartPluginWith is StartPlugin with gRPC options.
func StartPluginWith(t testing.TB, tr Transport, impl pluginapiv1.PluginHooksServer, opts PluginOptions) *Plugin {
	t.Helper()
	dial := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	var (
		lis    net.Listener
		target string
	)
	switch tr {
	case Bufconn:
		bl := bufconn.Listen(1 << 20)
		lis = bl
		target = "passthrough:///bufnet"
		dial = append(dial, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return bl.DialContext(ctx)
		}))
	case TCP:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lis = l
		target = "passthrough:///" + l.Addr().String()
	default:
		t.Fatalf("unknown transport %q", tr)
	}
	dial = append(dial, opts.DialOptions...)

	p := &Plugin{Server: grpc.NewServer(opts.ServerOptions...), served: make(chan struct{})}
	pluginapiv1.RegisterPluginHooksServer(p.Server, impl)
	go func() {
		defer close(p.served)
		_ = p.Server.Serve(lis)
	}()
	t.Cleanup(func() { CloseBounded(t, "plugin gRPC server", p.Stop) })

	conn, err := grpc.NewClient(target, dial...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	p.Conn = conn
	p.Client = pluginapiv1.NewPluginHooksClient(conn)
	return p
}

// Stop stops the plugin's gRPC server at once, as if the plugin process
// died. It is idempotent.
func (p *Plugin) Stop() {
	p.stopOnce.Do(func() {
		p.Server.Stop()
		<-p.served
	})
}

// WaitNotReady waits until the client connection noticed that the server
// is gone, so that the next stream open fails instead of racing the
// disconnect.
func (p *Plugin) WaitNotReady(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for p.Conn.GetState() == connectivity.Ready {
		if !p.Conn.WaitForStateChange(ctx, connectivity.Ready) {
			t.Fatal("gRPC client still READY 5s after the plugin server stopped")
		}
	}
}

// NewFacade builds the generated facade around h, logging into the
// returned buffer.
func NewFacade(h http.Handler) (*pluginapiv1.ServeHTTPPlugin, *LogBuffer) {
	logs := &LogBuffer{}
	return &pluginapiv1.ServeHTTPPlugin{Handler: h, Logger: logs.Slog()}, logs
}

// StartFacade serves h through the generated facade over bufconn.
func StartFacade(t testing.TB, h http.HandlerFunc) *Plugin {
	t.Helper()
	bridge, _ := NewFacade(h)
	return StartPlugin(t, Bufconn, &FacadeServer{Bridge: bridge})
}

// ---------------------------------------------------------------------------
// Building blocks of scripted plugins.

// RespInit builds a response init; kv are header key/value pairs, and a key
// repeated right after itself adds a value to the same entry.
func RespInit(status int32, kv ...string) *pluginapiv1.ServeHTTPResponseInit {
	return &pluginapiv1.ServeHTTPResponseInit{StatusCode: status, Headers: Headers(kv...)}
}

// Headers builds HTTPHeader entries from key/value pairs; a key repeated
// right after itself adds a value to the same entry, otherwise a new entry
// is started (so a key may appear in several entries).
func Headers(kv ...string) []*pluginapiv1.HTTPHeader {
	var hs []*pluginapiv1.HTTPHeader
	for i := 0; i+1 < len(kv); i += 2 {
		if n := len(hs); n > 0 && hs[n-1].Key == kv[i] {
			hs[n-1].Values = append(hs[n-1].Values, kv[i+1])
			continue
		}
		hs = append(hs, &pluginapiv1.HTTPHeader{Key: kv[i], Values: []string{kv[i+1]}})
	}
	return hs
}

// Resp builds a response message without init.
func Resp(chunk string, flush, complete bool) *ResponseMsg {
	return &ResponseMsg{BodyChunk: []byte(chunk), Flush: flush, BodyComplete: complete}
}

// SendThen is a plugin script: it receives the first request message, sends
// msgs in order, and then returns end(ctx) (nil if end is nil), where ctx is
// the stream context.
func SendThen(msgs []*ResponseMsg, end func(ctx context.Context) error) func(ServerStream) error {
	return func(stream ServerStream) error {
		if _, err := stream.Recv(); err != nil {
			return err
		}
		for _, m := range msgs {
			if err := stream.Send(m); err != nil {
				return err
			}
		}
		if end == nil {
			return nil
		}
		return end(stream.Context())
	}
}

// AwaitCancel returns an end function for SendThen that waits (at most
// limit) for the stream context to be cancelled and closes done if it was.
func AwaitCancel(done chan<- struct{}, limit time.Duration) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		timer := time.NewTimer(limit)
		defer timer.Stop()
		select {
		case <-ctx.Done():
			close(done)
			return ctx.Err()
		case <-timer.C:
			return errors.New("scripted plugin: stream context was never cancelled")
		}
	}
}

// RecvRequest receives request messages until one carries body_complete or
// Recv fails. It returns the messages and the error that ended it (nil
// after body_complete, io.EOF after a half-close without it).
func RecvRequest(stream ServerStream) ([]*RequestMsg, error) {
	var msgs []*RequestMsg
	for {
		m, err := stream.Recv()
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, m)
		if m.GetBodyComplete() {
			return msgs, nil
		}
	}
}

// RequestRecord is what a recording plugin saw of one stream.
type RequestRecord struct {
	Msgs   []*RequestMsg // request messages in arrival order
	EndErr error         // nil after body_complete, else the Recv error
}

// Body concatenates the body chunks of the record.
func (r RequestRecord) Body() []byte {
	var b []byte
	for _, m := range r.Msgs {
		b = append(b, m.GetBodyChunk()...)
	}
	return b
}

// Complete reports whether some message carried body_complete.
func (r RequestRecord) Complete() bool {
	for _, m := range r.Msgs {
		if m.GetBodyComplete() {
			return true
		}
	}
	return false
}

// Init returns the init of the first message, or nil.
func (r RequestRecord) Init() *pluginapiv1.ServeHTTPRequestInit {
	if len(r.Msgs) == 0 {
		return nil
	}
	return r.Msgs[0].GetInit()
}

// Recording returns a plugin script that reads the whole request (see
// RecvRequest), then sends reply and returns nil; the record is delivered on
// the returned channel (buffered, one per stream up to 16).
func Recording(reply ...*ResponseMsg) (func(ServerStream) error, <-chan RequestRecord) {
	records := make(chan RequestRecord, 16)
	return func(stream ServerStream) error {
		msgs, err := RecvRequest(stream)
		select {
		case records <- RequestRecord{Msgs: msgs, EndErr: err}:
		default:
		}
		if err != nil && err != io.EOF {
			return err
		}
		for _, m := range reply {
			if err := stream.Send(m); err != nil {
				return err
			}
		}
		return nil
	}, records
}

// CheckRequestFraming asserts the request framing invariants (spec H-Q3):
// init on the first message only, chunks at most max bytes, body_complete
// at most once and only on the last message, no empty chunk between the
// first and the last message. It returns the concatenated body.
func CheckRequestFraming(t testing.TB, msgs []*RequestMsg, max int) []byte {
	t.Helper()
	if len(msgs) == 0 {
		t.Fatal("no request message")
	}
	if msgs[0].GetInit() == nil {
		t.Errorf("first request message has no init")
	}
	var body []byte
	for i, m := range msgs {
		last := i == len(msgs)-1
		if i > 0 && m.GetInit() != nil {
			t.Errorf("request message %d of %d carries an init", i, len(msgs))
		}
		if n := len(m.GetBodyChunk()); n > max {
			t.Errorf("request message %d carries %d bytes, more than %d", i, n, max)
		}
		if m.GetBodyComplete() && !last {
			t.Errorf("request message %d of %d has body_complete but is not the last", i, len(msgs))
		}
		if i > 0 && !last && len(m.GetBodyChunk()) == 0 {
			t.Errorf("request message %d of %d has an empty chunk", i, len(msgs))
		}
		body = append(body, m.GetBodyChunk()...)
	}
	return body
}
