package conformance

// Fuzz targets: arbitrary message sequences from a misbehaving peer.
//
// FuzzHost decodes its input into the response messages a scripted plugin
// sends to the real host (init twice, body before init, any status, huge
// chunks, no body_complete, early end, RPC errors), and a real HTTP client
// fetches the result over HTTP/1.1 or HTTP/2.
//
// FuzzPlugin decodes its input into the request messages a scripted host
// sends to the real facade, and into what the plugin's handler does (read,
// write, flush, set statuses and headers, panic).
//
// Neither may panic the process, hang or leak, and neither may hand a
// truncated body over as complete: when the receiving side reports success
// the body is exactly what the sender sent up to body_complete, and when the
// sender did not complete, the receiver sees an error.
//
// Each target starts its servers once (per fuzzing worker); an iteration is
// one stream, told apart from the others by an X-Fuzz-Id header. Run them
// with, for example:
//
//	go test -run='^$' -fuzz='^FuzzHost$' -fuzztime=20s ./conformance/
//	go test -run='^$' -fuzz='^FuzzPlugin$' -fuzztime=20s ./conformance/

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

const (
	// fuzzRecvLimit is the gRPC receive limit of both fuzzed receivers:
	// low, so that an oversized message is cheap to make.
	fuzzRecvLimit = 256 << 10
	// fuzzTimeout bounds one iteration; a hang fails it.
	fuzzTimeout = 10 * time.Second
	// fuzzMaxMsgs and fuzzMaxBig keep an iteration cheap.
	fuzzMaxMsgs = 12
	fuzzMaxBig  = 2
	fuzzIDKey   = "X-Fuzz-Id"
)

// fuzzInput reads an input byte by byte; past its end it reads zeros.
type fuzzInput struct {
	b []byte
}

func (in *fuzzInput) more() bool { return len(in.b) > 0 }

func (in *fuzzInput) next() byte {
	if len(in.b) == 0 {
		return 0
	}
	c := in.b[0]
	in.b = in.b[1:]
	return c
}

// pick returns an element of table chosen by the next byte.
func pick[T any](in *fuzzInput, table []T) T {
	return table[int(in.next())%len(table)]
}

// fuzzChunkSizes are the chunk size classes; fuzzSmall means "the next
// byte plus one". The last class exceeds fuzzRecvLimit.
const fuzzSmall = -1

var fuzzChunkSizes = []int{0, 1, fuzzSmall, 2048, 64 << 10, 64<<10 + 1, 200 << 10, fuzzRecvLimit + 1024}

// fuzzChunk returns n pattern bytes that differ between messages and
// positions, so that reordered or duplicated bytes show.
func fuzzChunk(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seed*31 + i + i/251)
	}
	return b
}

// fuzzChunkOf decodes a chunk of the given size class; big counts the
// chunks of 64 KiB or more, which shrink to 100 bytes once fuzzMaxBig were
// made.
func fuzzChunkOf(in *fuzzInput, class, seed int, big *int) []byte {
	n := fuzzChunkSizes[class%len(fuzzChunkSizes)]
	if n == fuzzSmall {
		n = int(in.next()) + 1
	}
	if n >= 64<<10 {
		if *big >= fuzzMaxBig {
			n = 100
		}
		*big++
	}
	return fuzzChunk(n, seed)
}

// The header tables. A header is "plain" when its key is one of the first
// fuzzPlainKeys and its value one of the first fuzzPlainValues: net/http
// passes it through unchanged on both protocols, with no effect on framing.
// Content-Length takes its value from fuzzLengths.
var (
	fuzzHeaderKeys   = []string{"X-Fuzz", "Content-Type", "Set-Cookie", "x-lower", "Content-Length", "Bad Key", "X-Inject", "Trailer"}
	fuzzPlainKeys    = 4
	fuzzHeaderValues = []string{"", "v", "text/html; charset=utf-8", "a\r\nInjected: 1", "\x00", "\xff"}
	fuzzPlainValues  = 3
	fuzzLengths      = []string{"0", "1", "3", "5", "10", "x", "-1", "2048", "65536", "100"}
)

// decodeHeaders decodes up to three header entries; it reports whether all
// of them are plain.
func decodeHeaders(in *fuzzInput) ([]*pluginapiv1.HTTPHeader, bool) {
	plain := true
	var hs []*pluginapiv1.HTTPHeader
	for range int(in.next()) % 4 {
		k := int(in.next()) % len(fuzzHeaderKeys)
		key := fuzzHeaderKeys[k]
		var value string
		if key == "Content-Length" {
			value = pick(in, fuzzLengths)
		} else {
			v := int(in.next()) % len(fuzzHeaderValues)
			value = fuzzHeaderValues[v]
			plain = plain && v < fuzzPlainValues
		}
		plain = plain && k < fuzzPlainKeys
		hs = append(hs, &pluginapiv1.HTTPHeader{Key: key, Values: []string{value}})
	}
	return hs, plain
}

// goroutines returns a dump of all goroutines, for the failure message of a
// hang.
func goroutines() string {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
	return b.String()
}

// ---------------------------------------------------------------------------
// FuzzHost: a scripted plugin into the real host.

// fuzzStatuses are the response statuses a scripted plugin may send.
var fuzzStatuses = []int32{0, 200, 201, 204, 304, 404, 500, 99, 100, 101, 103, 199, 999, 1000, -1, 65535, 205, 302, 1<<31 - 1, -1 << 31}

// hostEnd is how a scripted plugin ends its RPC after its messages.
type hostEnd int

const (
	hostEndOK       hostEnd = iota // return nil
	hostEndInternal                // return an Internal error status
	hostEndHang                    // wait for the host to cancel
	hostEndCanceled                // return a Canceled error status
)

// hostCase is a decoded FuzzHost input.
type hostCase struct {
	http2 bool
	post  bool
	end   hostEnd
	msgs  []*bridgetest.ResponseMsg
	plain bool // every header of every init is plain
}

func decodeHostCase(data []byte) hostCase {
	in := &fuzzInput{b: data}
	flags := in.next()
	c := hostCase{http2: flags&1 != 0, post: flags&2 != 0, end: hostEnd(flags >> 2 & 3), plain: true}
	big := 0
	for in.more() && len(c.msgs) < fuzzMaxMsgs {
		ctl := in.next()
		m := &bridgetest.ResponseMsg{Flush: ctl&4 != 0, BodyComplete: ctl&8 != 0}
		if ctl&1 != 0 {
			init := &pluginapiv1.ServeHTTPResponseInit{StatusCode: pick(in, fuzzStatuses)}
			var plain bool
			init.Headers, plain = decodeHeaders(in)
			c.plain = c.plain && plain
			m.Init = init
		}
		if ctl&2 != 0 {
			m.BodyChunk = fuzzChunkOf(in, int(ctl>>4), len(c.msgs), &big)
		}
		c.msgs = append(c.msgs, m)
	}
	return c
}

// hostWant is what the host must make of a hostCase.
type hostWant struct {
	preFail   bool     // the host fails before the response starts: a complete 502
	interim   bool     // ... after an interim (1xx) response went out
	status    int      // the plugin's status otherwise
	body      []byte   // chunks up to body_complete or the failure
	complete  bool     // body_complete arrived before any failure
	stops     bool     // the host ends the exchange on its own
	lengths   []string // the Content-Length values of the init
	bodyAllow bool     // the status allows a body
}

// want follows the host's rules (spec 3.2, 3.3) through the first sent
// messages of c that the host can receive: those before the first over its
// receive limit.
func (c hostCase) want(sent int) hostWant {
	var w hostWant
	var recv []*bridgetest.ResponseMsg
	oversized := false
	for _, m := range c.msgs[:sent] {
		if len(m.GetBodyChunk()) > fuzzRecvLimit {
			oversized = true
			break
		}
		recv = append(recv, m)
	}
	w.stops = oversized
	switch {
	case len(recv) == 0:
		// The host waits for a first message until the stream ends (a
		// hang is played as a clean end, see play).
		w.preFail = true
		return w
	case recv[0].GetInit() == nil:
		w.preFail, w.stops = true, true
		return w
	}
	w.status = int(recv[0].GetInit().GetStatusCode())
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.status < 100 || w.status > 999 || w.status == http.StatusSwitchingProtocols {
		w.preFail, w.stops = true, true
		return w
	}
	// Any other 1xx is an interim response (H-S3); the first body byte or
	// flush, or the end, makes it 200. Until then a failure still gets 502.
	informational := w.status < 200
	if informational {
		w.status = http.StatusOK
	}
	final := !informational
	for _, h := range recv[0].GetInit().GetHeaders() {
		if http.CanonicalHeaderKey(h.GetKey()) == "Content-Length" {
			w.lengths = append(w.lengths, h.GetValues()...)
		}
	}
	w.bodyAllow = w.status != http.StatusNoContent && w.status != http.StatusNotModified
	for _, m := range recv {
		w.body = append(w.body, m.GetBodyChunk()...)
		final = final || len(m.GetBodyChunk()) > 0 || m.GetFlush()
		if m.GetBodyComplete() {
			w.complete, w.stops = true, true
			break
		}
	}
	if !final && !w.complete {
		w.preFail, w.interim = true, true
	}
	return w
}

// declared returns the Content-Length net/http applies to the response:
// the first value if it is valid, else -1.
func (w hostWant) declared() int64 {
	if len(w.lengths) == 0 {
		return -1
	}
	n, err := strconv.ParseInt(w.lengths[0], 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// hostRun is the record of one FuzzHost iteration.
type hostRun struct {
	hostOnce   atomic.Bool // the host's handler took this run
	pluginOnce atomic.Bool // the plugin's script took this run
	c          hostCase
	forwardErr error
	hostDone   chan struct{} // closed when the host's handler returned
	pluginDone chan error    // the script's result
	sent       int           // messages the script sent; read after pluginDone
}

// hostFixture is the servers of FuzzHost, shared by its iterations.
type hostFixture struct {
	host    *pluginapiv1.ServeHTTPHost
	servers map[bool]string       // http2 → URL
	clients map[bool]*http.Client // http2 → client
	runs    sync.Map              // id → *hostRun
	nextID  atomic.Int64
	logs    *fuzzServerLog
}

// fuzzServerLog keeps the first line net/http logs about a panic or a
// superfluous WriteHeader: both are host bugs (spec H-F5, H-F9).
type fuzzServerLog struct {
	mu  sync.Mutex
	bad string
}

func (l *fuzzServerLog) Write(p []byte) (int, error) {
	if s := string(p); strings.Contains(s, "panic serving") || strings.Contains(s, "superfluous") {
		l.mu.Lock()
		if l.bad == "" {
			l.bad = s
		}
		l.mu.Unlock()
	}
	return len(p), nil
}

func (l *fuzzServerLog) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.bad
	l.bad = ""
	return s
}

// script is the scripted plugin: it finds its iteration by the header the
// host forwarded, sends the messages and ends as told.
func (fx *hostFixture) script(stream bridgetest.ServerStream) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	var id string
	for _, h := range first.GetInit().GetHeaders() {
		if http.CanonicalHeaderKey(h.GetKey()) == fuzzIDKey && len(h.GetValues()) > 0 {
			id = h.GetValues()[0]
		}
	}
	v, ok := fx.runs.Load(id)
	if !ok {
		return status.Error(codes.NotFound, "fuzz: unknown iteration")
	}
	run := v.(*hostRun)
	if run.pluginOnce.Swap(true) {
		// A client may retry a request whose connection died; the first
		// stream is the one checked.
		return status.Error(codes.AlreadyExists, "fuzz: iteration already served")
	}
	err = run.play(stream)
	run.pluginDone <- err
	return err
}

func (run *hostRun) play(stream bridgetest.ServerStream) error {
	for _, m := range run.c.msgs {
		// Send fails once the host stopped listening, or for a message
		// that cannot be marshalled (a header value that is not UTF-8):
		// either way no later message reaches the host.
		if err := stream.Send(m); err != nil {
			return nil
		}
		run.sent++
	}
	switch run.c.end {
	case hostEndInternal:
		return status.Error(codes.Internal, "fuzz: plugin failed")
	case hostEndCanceled:
		return status.Error(codes.Canceled, "fuzz: plugin canceled")
	case hostEndHang:
		if !run.c.want(run.sent).stops {
			return nil // the host would wait for the client: end instead
		}
		timer := time.NewTimer(fuzzTimeout)
		defer timer.Stop()
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-timer.C:
			return errors.New("fuzz: the host did not cancel the stream after it stopped reading")
		}
	}
	return nil
}

// ServeHTTP is the host's server handler: Forward, recording its result,
// then the abort that [pluginapiv1.ServeHTTPHost.ServeHTTP] would do.
func (fx *hostFixture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v, ok := fx.runs.Load(r.Header.Get(fuzzIDKey))
	if !ok {
		http.Error(w, "unknown iteration", http.StatusNotFound)
		return
	}
	run := v.(*hostRun)
	if run.hostOnce.Swap(true) {
		http.Error(w, "iteration already served", http.StatusConflict)
		return
	}
	defer close(run.hostDone)
	run.forwardErr = fx.host.Forward(w, r)
	if errors.Is(run.forwardErr, pluginapiv1.ErrServeHTTPAborted) {
		panic(http.ErrAbortHandler)
	}
}

func startHostFixture(f *testing.F) *hostFixture {
	fx := &hostFixture{servers: map[bool]string{}, clients: map[bool]*http.Client{}, logs: &fuzzServerLog{}}
	plugin := bridgetest.StartPluginWith(f, bridgetest.Bufconn, &bridgetest.ScriptedPlugin{Script: fx.script}, bridgetest.PluginOptions{
		DialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(fuzzRecvLimit))},
	})
	fx.host = pluginapiv1.NewPluginHooksServeHTTPHost(plugin.Client)
	fx.host.Logger = slog.New(slog.DiscardHandler)
	for _, hv := range bridgetest.HTTPVersions {
		srv := httptest.NewUnstartedServer(fx)
		srv.Config.ErrorLog = log.New(fx.logs, "", 0)
		if hv == bridgetest.HTTP2 {
			srv.EnableHTTP2 = true
			srv.StartTLS()
		} else {
			srv.Start()
		}
		f.Cleanup(func() { bridgetest.CloseBounded(f, "host HTTP server", srv.Close) })
		// Connections are kept alive and reused: a host that leaves one
		// unusable makes a later iteration fail.
		client := srv.Client()
		f.Cleanup(client.CloseIdleConnections)
		fx.servers[hv == bridgetest.HTTP2] = srv.URL
		fx.clients[hv == bridgetest.HTTP2] = client
	}
	return fx
}

// hostSeed encodes a FuzzHost input: flags, then message records built by
// the helpers below.
func hostSeed(flags byte, msgs ...[]byte) []byte {
	return append([]byte{flags}, bytes.Join(msgs, nil)...)
}

// seedMsg encodes one response message record. status (an index into
// fuzzStatuses) and headers (pairs of key and value indexes) are used when
// init is set; sizeClass indexes fuzzChunkSizes, and small is the byte that
// follows the small class.
func seedMsg(init, chunk, flush, complete bool, status, sizeClass, small byte, headers ...byte) []byte {
	ctl := sizeClass << 4
	for i, set := range []bool{init, chunk, flush, complete} {
		if set {
			ctl |= 1 << i
		}
	}
	b := []byte{ctl}
	if init {
		b = append(b, status, byte(len(headers)/2))
		b = append(b, headers...)
	}
	if chunk && int(sizeClass) < len(fuzzChunkSizes) && fuzzChunkSizes[sizeClass] == fuzzSmall {
		b = append(b, small)
	}
	return b
}

func FuzzHost(f *testing.F) {
	bridgetest.LeakCheck(f)
	fx := startHostFixture(f)

	const (
		st200, st204, st99, st100, st1000 = 1, 3, 7, 8, 13
		small, k64, k64p1, k200, over     = 2, 4, 5, 6, 7
		endErr, endHang                   = 1 << 2, 2 << 2
	)
	for _, seed := range [][]byte{
		hostSeed(0), // no message at all
		hostSeed(0, seedMsg(true, true, false, true, st200, small, 9)),
		hostSeed(1, seedMsg(true, true, false, true, st200, small, 9)),
		hostSeed(0, seedMsg(true, true, true, false, st200, small, 4), seedMsg(false, true, false, true, 0, small, 4)),
		hostSeed(0, seedMsg(true, false, false, false, st200, 0, 0), seedMsg(true, true, false, true, 6, small, 3)), // init twice
		hostSeed(0, seedMsg(false, true, false, true, 0, small, 3)),                                                 // body before init
		hostSeed(0, seedMsg(true, true, false, true, 0, small, 3)),                                                  // status 0
		hostSeed(0, seedMsg(true, true, false, true, st99, small, 3)),
		hostSeed(1, seedMsg(true, true, false, true, st100, small, 3)),
		hostSeed(0, seedMsg(true, true, false, true, st1000, small, 3)),
		hostSeed(0, seedMsg(true, true, false, true, st204, small, 3)),
		hostSeed(0, seedMsg(true, true, true, false, st200, small, 4), seedMsg(false, true, false, false, 0, small, 4)),         // no body_complete
		hostSeed(endErr|1, seedMsg(true, true, true, false, st200, small, 4), seedMsg(false, true, false, false, 0, small, 4)),  // RPC error mid-body
		hostSeed(0, seedMsg(true, true, false, false, st200, k64, 0), seedMsg(false, true, false, true, 0, k200, 0)),            // big chunks
		hostSeed(1, seedMsg(true, true, true, false, st200, k64p1, 0), seedMsg(false, true, false, true, 0, over, 0)),           // over the limit
		hostSeed(0, seedMsg(true, true, false, true, st200, over, 0)),                                                           // oversized first
		hostSeed(endHang, seedMsg(true, true, false, true, st200, small, 2), seedMsg(false, true, false, false, 0, small, 200)), // after complete
		hostSeed(2, seedMsg(true, true, false, true, st200, small, 10, 4, 3)),                                                   // Content-Length 5, 11 bytes
		hostSeed(3, seedMsg(true, true, true, false, st200, small, 2, 4, 4), seedMsg(false, true, false, false, 0, small, 200)), // Content-Length 10, cut
		hostSeed(0, seedMsg(true, true, false, true, st200, small, 5, 6, 3, 5, 0, 2, 1)),                                        // injected and bad headers
		hostSeed(endErr, seedMsg(true, false, true, false, st200, 0, 0)),                                                        // flush-only init, then error
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		c := decodeHostCase(data)
		id := strconv.FormatInt(fx.nextID.Add(1), 10)
		run := &hostRun{c: c, hostDone: make(chan struct{}), pluginDone: make(chan error, 1)}
		fx.runs.Store(id, run)
		defer fx.runs.Delete(id)

		ctx, cancel := context.WithTimeout(t.Context(), fuzzTimeout)
		defer cancel()
		// Not GET: the client transport retries an idempotent request whose
		// reused connection closed without a response, and an aborted
		// exchange does just that.
		observe := func() bridgetest.Observation {
			var body io.Reader
			method := http.MethodDelete
			if c.post {
				method, body = http.MethodPost, bytes.NewReader(fuzzChunk(1000, 7))
			}
			req, err := http.NewRequestWithContext(ctx, method, fx.servers[c.http2]+"/fuzz", body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set(fuzzIDKey, id)
			return bridgetest.Observe(fx.clients[c.http2], req)
		}
		o := observe()
		if o.Err == bridgetest.ErrNoResponse && !run.hostOnce.Load() && ctx.Err() == nil {
			// The request never reached the host: it went out on a kept-alive
			// connection that the server was closing after an earlier
			// exchange (legitimately, after an abort or a response whose
			// declared length was met). Once more on a fresh connection.
			fx.clients[c.http2].CloseIdleConnections()
			o = observe()
		}
		if ctx.Err() != nil {
			t.Fatalf("the exchange did not end within %v: %s\n%s", fuzzTimeout, o, goroutines())
		}
		select {
		case <-run.hostDone:
		case <-time.After(bridgetest.Promptly):
			t.Fatalf("the host's handler did not return within %v of the client's end (client: %s; handler entered: %v)\n%s",
				bridgetest.Promptly, o, run.hostOnce.Load(), goroutines())
		}
		select {
		case err := <-run.pluginDone:
			if err != nil && strings.HasPrefix(err.Error(), "fuzz: the host") {
				t.Error(err)
			}
		case <-time.After(fuzzTimeout):
			t.Fatalf("the scripted plugin did not end within %v\n%s", fuzzTimeout, goroutines())
		}
		if bad := fx.logs.take(); bad != "" {
			t.Errorf("the host's net/http server logged: %s", bad)
		}
		checkHost(t, c, run.sent, o, run.forwardErr)
	})
}

// Found by FuzzHost. The host enables full duplex (spec H-Q7), and then
// net/http's HTTP/1 server drains a request body the handler left unread
// only after the handler returned; that drain starts a background read
// which races the server's read of the next request on the connection:
// "http: panic serving ...: invalid concurrent Body.Read call", the
// connection is dropped and a request already sent on it fails
// (golang.org/issue/68560). Whenever the host returns without having read
// the upload to its end, it must therefore have the connection closed
// (Connection: close), as it already does when a relayed response starts
// during the upload. The race is narrow, so each case repeats a short
// upload that the plugin answers at once.
func TestHostUnreadBodyClosesConnection(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  *bridgetest.ResponseMsg // nil: the plugin is unreachable
	}{
		{"answer-without-init", &bridgetest.ResponseMsg{BodyChunk: []byte("x"), BodyComplete: true}},
		{"invalid-status", &bridgetest.ResponseMsg{Init: bridgetest.RespInit(1000), BodyComplete: true}},
		{"rpc-error", &bridgetest.ResponseMsg{}},
		{"plugin-unreachable", nil},
		{"complete-answer", &bridgetest.ResponseMsg{Init: bridgetest.RespInit(200), BodyChunk: []byte("x"), BodyComplete: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bridgetest.LeakCheck(t)
			script := bridgetest.SendThen([]*bridgetest.ResponseMsg{tc.msg}, nil)
			if tc.name == "rpc-error" {
				script = bridgetest.SendThen(nil, func(context.Context) error { return status.Error(codes.Internal, "plugin failed") })
			}
			logs := &fuzzServerLog{}
			env := bridgetest.NewEnv(t, bridgetest.Config{Plugin: &bridgetest.ScriptedPlugin{Script: script}})
			env.Server.Config.ErrorLog.SetOutput(io.MultiWriter(env.ServerLog, logs))
			if tc.msg == nil {
				env.Plugin.Stop()
				env.Plugin.WaitNotReady(t)
			}
			// Deterministic: an upload that stalls until the response
			// arrived is certainly unread when the host returns.
			ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
			req, after := stalledUpload(t, ctx, env.Server.URL+"/")
			o := bridgetest.Observe(env.Client, req)
			cancel()
			after(t, "client")
			if !o.Close {
				t.Errorf("response %s to an upload left unread does not close the connection", o)
			}
			// The consequence, when it happens to be hit.
			body := fuzzChunk(1000, 1)
			deadline := time.Now().Add(time.Second)
			for i := 0; i < 300 && time.Now().Before(deadline); i++ {
				ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
				o := bridgetest.Observe(env.Client, env.Request(t, ctx, http.MethodPost, "/", bytes.NewReader(body)))
				cancel()
				if bad := logs.take(); bad != "" {
					t.Fatalf("request %d (client: %s): the connection was kept alive with the upload unread, and net/http logged:\n%s", i, o, bad)
				}
				if o.Err == bridgetest.ErrNoResponse {
					t.Fatalf("request %d: %s", i, o)
				}
			}
		})
	}
}

// checkHost asserts FuzzHost's invariants for one exchange.
func checkHost(t *testing.T, c hostCase, sent int, o bridgetest.Observation, forwardErr error) {
	t.Helper()
	w := c.want(sent)
	declared := w.declared()
	if forwardErr == nil && (w.preFail || !w.complete) {
		t.Errorf("Forward returned nil, but the plugin's response was not complete (preFail=%v complete=%v)", w.preFail, w.complete)
	}
	if w.preFail {
		if w.interim && !c.plain && o.Err == bridgetest.ErrNoResponse {
			// An odd header of the interim response (a NUL byte, which
			// net/http writes as it does for a handler) broke the client's
			// parse before the 502 came.
			return
		}
		if o.Err != bridgetest.ErrNone || o.Status != http.StatusBadGateway {
			t.Errorf("client: %s; want a complete 502 (the plugin failed before its response started)", o)
		}
		if forwardErr == nil || errors.Is(forwardErr, pluginapiv1.ErrServeHTTPAborted) {
			t.Errorf("Forward error %v, want a failure before the response started", forwardErr)
		}
		return
	}
	mustSucceed := w.complete && len(w.lengths) == 0 && c.plain
	if mustSucceed && forwardErr != nil {
		t.Errorf("Forward error %v for a complete response", forwardErr)
	}
	if o.Err == bridgetest.ErrNoResponse {
		if mustSucceed {
			t.Errorf("client got no response (%s) for a complete response", o.ErrText)
		}
		return
	}
	if o.Status != w.status {
		t.Errorf("client status %d, want the plugin's %d", o.Status, w.status)
	}
	if !w.bodyAllow {
		if len(o.Body) != 0 {
			t.Errorf("client got %d body bytes with status %d", len(o.Body), w.status)
		}
		return
	}
	if !bytes.HasPrefix(w.body, o.Body) {
		t.Errorf("client body is not a prefix of what the plugin sent: %s", bridgetest.FirstDiff(o.Body, w.body))
	}
	switch {
	case o.Err != bridgetest.ErrNone:
		if mustSucceed {
			t.Errorf("client: %s; want the complete %d-byte body", o, len(w.body))
		}
	case declared >= 0:
		// The client took the declared length as the whole body: the
		// plugin must have sent at least that much.
		if int64(len(o.Body)) != declared || int64(len(w.body)) < declared {
			t.Errorf("client saw a complete %d-byte body, declared %d, plugin sent %d (complete=%v)", len(o.Body), declared, len(w.body), w.complete)
		}
	case !w.complete:
		t.Errorf("client saw a complete %d-byte body, but the plugin never completed it (sent %d bytes)", len(o.Body), len(w.body))
	case !bytes.Equal(o.Body, w.body):
		t.Errorf("client saw a complete body that differs from the plugin's: %s", bridgetest.FirstDiff(o.Body, w.body))
	}
}

// ---------------------------------------------------------------------------
// FuzzPlugin: a scripted host into the real facade.

// pluginEnd is what the scripted host does after sending its messages.
type pluginEnd int

const (
	pluginEndHalfClose  pluginEnd = iota // CloseSend
	pluginEndCancel                      // cancel the stream
	pluginEndLinger                      // wait a little for the response, then CloseSend
	pluginEndCancelLate                  // CloseSend, and cancel on the first response message
)

// readMode is how the handler reads its body.
type readMode int

const (
	readAllFirst   readMode = iota // read to the end, then run the ops
	readNone                       // never read
	readSomeClose                  // read one buffer, Close, then run the ops
	readAfterWrite                 // run the ops, then read to the end
)

var (
	fuzzReadSizes  = []int{1, 2, 7, 512, 4096, 65536, 100_000, 3}
	fuzzWriteSizes = []int{0, 1, 100, 2048, 65535, 65536, 65537, 200_000}
	fuzzCodes      = []int{200, 201, 204, 304, 404, 103, 100, 101, 0, 1000, 500, 999}
	fuzzMethods    = []string{"GET", "POST", "HEAD", "PUT", ""}
	fuzzURLs       = []string{"/", "/a/b?x=1", "", "?a=b", "%zz", "http://h.test/x", "/\x00", "*"}
	fuzzCLs        = []int64{-1, 0, 1, 3, 10, 100, 65536, 1 << 20}
)

// handlerOp is one action of the plugin's handler.
type handlerOp struct {
	kind byte // see run
	arg  int
}

// pluginCase is a decoded FuzzPlugin input.
type pluginCase struct {
	end      pluginEnd
	read     readMode
	readSize int
	ops      []handlerOp
	msgs     []*bridgetest.RequestMsg
}

func decodePluginCase(data []byte) pluginCase {
	in := &fuzzInput{b: data}
	flags := in.next()
	c := pluginCase{
		end:      pluginEnd(flags & 3),
		read:     readMode(flags >> 2 & 3),
		readSize: fuzzReadSizes[int(flags>>4)%len(fuzzReadSizes)],
	}
	for range int(in.next()) % 8 {
		op := handlerOp{kind: in.next() % 8}
		switch op.kind {
		case 0, 2, 3:
			op.arg = int(in.next())
		}
		c.ops = append(c.ops, op)
	}
	big := 0
	for in.more() && len(c.msgs) < fuzzMaxMsgs {
		ctl := in.next()
		m := &bridgetest.RequestMsg{BodyComplete: ctl&4 != 0}
		if ctl&1 != 0 {
			init := &pluginapiv1.ServeHTTPRequestInit{
				Method:        pick(in, fuzzMethods),
				Url:           pick(in, fuzzURLs),
				ContentLength: pick(in, fuzzCLs),
				Proto:         "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			}
			init.RequestUri = init.Url
			init.Headers, _ = decodeHeaders(in)
			m.Init = init
		}
		if ctl&2 != 0 {
			m.BodyChunk = fuzzChunkOf(in, int(ctl>>4), len(c.msgs), &big)
		}
		c.msgs = append(c.msgs, m)
	}
	return c
}

// pluginRecord is what the handler did in one iteration.
type pluginRecord struct {
	mu       sync.Mutex
	called   bool
	read     []byte
	readErr  error // nil after a clean end of body
	readDone bool
	status   int    // the status the facade must send
	accepted []byte // the bytes Write accepted, in order
	panicked bool
}

// run carries out the handler's part of c, recording into rec.
func (c pluginCase) run(w http.ResponseWriter, r *http.Request, rec *pluginRecord) {
	rec.mu.Lock()
	rec.called = true
	rec.mu.Unlock()
	defer func() {
		if v := recover(); v != nil {
			rec.mu.Lock()
			rec.panicked = true
			rec.mu.Unlock()
			panic(v)
		}
	}()
	readAll := func() {
		var got []byte
		buf := make([]byte, c.readSize)
		var err error
		for {
			var n int
			n, err = r.Body.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		if err == io.EOF {
			err = nil
		}
		rec.mu.Lock()
		rec.read, rec.readErr, rec.readDone = got, err, true
		rec.mu.Unlock()
	}
	fix := func(code int) {
		rec.mu.Lock()
		if rec.status == 0 {
			rec.status = code
		}
		rec.mu.Unlock()
	}
	switch c.read {
	case readAllFirst:
		readAll()
	case readSomeClose:
		_, _ = r.Body.Read(make([]byte, c.readSize))
		_ = r.Body.Close()
	}
	for i, op := range c.ops {
		switch op.kind {
		case 0, 7:
			size := 11
			if op.kind == 0 {
				size = fuzzWriteSizes[op.arg%len(fuzzWriteSizes)]
			}
			p := fuzzChunk(size, 100+i)
			fix(http.StatusOK)
			n, _ := w.Write(p)
			rec.mu.Lock()
			rec.accepted = append(rec.accepted, p[:n]...)
			rec.mu.Unlock()
		case 1:
			fix(http.StatusOK)
			_ = http.NewResponseController(w).Flush()
		case 2:
			code := fuzzCodes[op.arg%len(fuzzCodes)]
			if code >= 100 && code <= 999 && (code < 100 || code > 199 || code == 101) {
				fix(code)
			}
			w.WriteHeader(code) // panics for an invalid code, as net/http's
		case 3:
			w.Header().Set("Content-Length", fuzzLengths[op.arg%len(fuzzLengths)])
		case 4:
			panic("fuzz: handler panic")
		case 5:
			panic(http.ErrAbortHandler)
		case 6:
			w.Header().Set("X-Handler", strconv.Itoa(i))
		}
	}
	if c.read == readAfterWrite {
		readAll()
	}
	fix(http.StatusOK)
}

// pluginFixture is the facade server of FuzzPlugin, shared by its
// iterations.
type pluginFixture struct {
	client  pluginapiv1.PluginHooksClient
	cases   sync.Map // id → *pluginIteration
	nextID  atomic.Int64
	serving atomic.Int64 // Serve calls in progress
	facade  *pluginapiv1.ServeHTTPPlugin
}

type pluginIteration struct {
	c   pluginCase
	rec *pluginRecord
}

type pluginServer struct {
	pluginapiv1.UnimplementedPluginHooksServer
	fx *pluginFixture
}

func (s pluginServer) ServeHTTP(stream bridgetest.ServerStream) error {
	s.fx.serving.Add(1)
	defer s.fx.serving.Add(-1)
	return s.fx.facade.Serve(stream)
}

func (fx *pluginFixture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v, ok := fx.cases.Load(r.Header.Get(fuzzIDKey))
	if !ok {
		http.Error(w, "unknown iteration", http.StatusNotFound)
		return
	}
	it := v.(*pluginIteration)
	it.c.run(w, r, it.rec)
}

func startPluginFixture(f *testing.F) *pluginFixture {
	fx := &pluginFixture{}
	fx.facade = &pluginapiv1.ServeHTTPPlugin{Handler: fx, Logger: slog.New(slog.DiscardHandler)}
	plugin := bridgetest.StartPluginWith(f, bridgetest.Bufconn, pluginServer{fx: fx}, bridgetest.PluginOptions{
		ServerOptions: []grpc.ServerOption{grpc.MaxRecvMsgSize(fuzzRecvLimit)},
	})
	fx.client = plugin.Client
	return fx
}

// pluginSeed encodes a FuzzPlugin input: flags, handler ops, then request
// message records.
func pluginSeed(flags byte, ops []byte, msgs ...[]byte) []byte {
	b := append([]byte{flags}, ops...)
	return append(b, bytes.Join(msgs, nil)...)
}

// seedOps encodes handler ops: pairs of kind and argument (the argument is
// dropped for kinds that take none).
func seedOps(pairs ...byte) []byte {
	b := []byte{byte(len(pairs) / 2)}
	for i := 0; i+1 < len(pairs); i += 2 {
		b = append(b, pairs[i])
		switch pairs[i] {
		case 0, 2, 3:
			b = append(b, pairs[i+1])
		}
	}
	return b
}

// seedReq encodes one request message record; method, url and cl index
// fuzzMethods, fuzzURLs and fuzzCLs, headers are pairs of key and value
// indexes, and sizeClass and small are as for seedMsg.
func seedReq(init, chunk, complete bool, method, url, cl, sizeClass, small byte, headers ...byte) []byte {
	ctl := sizeClass << 4
	for i, set := range []bool{init, chunk, complete} {
		if set {
			ctl |= 1 << i
		}
	}
	b := []byte{ctl}
	if init {
		b = append(b, method, url, cl, byte(len(headers)/2))
		b = append(b, headers...)
	}
	if chunk && int(sizeClass) < len(fuzzChunkSizes) && fuzzChunkSizes[sizeClass] == fuzzSmall {
		b = append(b, small)
	}
	return b
}

func FuzzPlugin(f *testing.F) {
	bridgetest.LeakCheck(f)
	fx := startPluginFixture(f)

	const (
		get, post, head              = 0, 1, 2
		root, bad                    = 0, 4
		clUnknown, cl3, cl10         = 0, 3, 4
		small, k64p1, k200, over     = 2, 5, 6, 7
		cancel, linger, cancelLate   = 1, 2, 3
		readNoneF, readSome, readEnd = 1 << 2, 2 << 2, 3 << 2
	)
	writeHello := seedOps(7, 0)
	for _, seed := range [][]byte{
		pluginSeed(0, writeHello), // nothing sent: half-close only
		pluginSeed(0, writeHello, seedReq(true, false, true, get, root, clUnknown, 0, 0)),
		pluginSeed(0, writeHello, seedReq(true, true, true, post, root, cl3, small, 2)),
		pluginSeed(0, writeHello, seedReq(true, true, false, post, root, clUnknown, small, 9), seedReq(false, true, true, 0, 0, 0, small, 9)),
		pluginSeed(0, writeHello, seedReq(false, true, true, 0, 0, 0, small, 3)),                                                               // no init
		pluginSeed(0, writeHello, seedReq(true, true, false, post, root, clUnknown, small, 3), seedReq(true, true, true, get, 1, 0, small, 3)), // init twice
		pluginSeed(0, writeHello, seedReq(true, false, false, post, bad, clUnknown, 0, 0)),                                                     // bad URL
		pluginSeed(0, writeHello, seedReq(true, true, false, post, root, clUnknown, small, 5)),                                                 // half-close without complete
		pluginSeed(cancel, writeHello, seedReq(true, true, false, post, root, clUnknown, small, 5)),                                            // cancel mid-body
		pluginSeed(0, writeHello, seedReq(true, true, true, post, root, cl10, small, 2)),                                                       // shorter than content_length
		pluginSeed(0, writeHello, seedReq(true, true, true, post, root, cl3, small, 9)),                                                        // longer than content_length
		pluginSeed(0, writeHello, seedReq(true, true, false, post, root, clUnknown, k64p1, 0), seedReq(false, true, true, 0, 0, 0, k200, 0)),
		pluginSeed(0, writeHello, seedReq(true, true, false, post, root, clUnknown, small, 3), seedReq(false, true, true, 0, 0, 0, over, 0)), // oversized
		pluginSeed(readNoneF, seedOps(0, 7, 0, 6), seedReq(true, true, false, post, root, clUnknown, k200, 0)),                               // big response, body ignored
		pluginSeed(readEnd|linger, seedOps(7, 0, 1, 0, 7, 0), seedReq(true, true, false, post, root, clUnknown, small, 3), seedReq(false, false, true, 0, 0, 0, 0, 0)),
		pluginSeed(readSome|cancelLate, seedOps(7, 0, 1, 0, 0, 7), seedReq(true, true, false, post, root, clUnknown, k64p1, 0)),
		pluginSeed(0, seedOps(2, 5, 7, 0), seedReq(true, false, true, get, root, clUnknown, 0, 0)),        // 103 then write
		pluginSeed(0, seedOps(2, 2, 7, 0), seedReq(true, false, true, get, root, clUnknown, 0, 0)),        // 204 then write
		pluginSeed(0, seedOps(2, 9, 7, 0), seedReq(true, false, true, get, root, clUnknown, 0, 0)),        // WriteHeader(1000) panics
		pluginSeed(0, seedOps(7, 0, 1, 0, 4, 0), seedReq(true, false, true, get, root, clUnknown, 0, 0)),  // panic after flush
		pluginSeed(0, seedOps(7, 0, 5, 0), seedReq(true, false, true, head, root, clUnknown, 0, 0)),       // ErrAbortHandler before output
		pluginSeed(0, seedOps(3, 2, 0, 2, 0, 3), seedReq(true, false, true, get, root, clUnknown, 0, 0)),  // Content-Length 3, writes over it
		pluginSeed(0, seedOps(0, 7, 0, 7, 0, 5), seedReq(true, false, true, head, root, clUnknown, 0, 0)), // HEAD with a body
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		c := decodePluginCase(data)
		id := strconv.FormatInt(fx.nextID.Add(1), 10)
		it := &pluginIteration{c: c, rec: &pluginRecord{}}
		fx.cases.Store(id, it)
		defer fx.cases.Delete(id)
		for _, m := range c.msgs {
			if m.Init != nil {
				m.Init.Headers = append(m.Init.Headers, &pluginapiv1.HTTPHeader{Key: fuzzIDKey, Values: []string{id}})
			}
		}

		msgs, sent, streamErr, cancelled := exchangePlugin(t, fx.client, c)
		// The facade's Serve must end with the stream (a cancel reaches it
		// asynchronously).
		if !bridgetest.Eventually(fuzzTimeout, func() bool { return fx.serving.Load() == 0 }) {
			t.Fatalf("the facade's Serve did not return within %v", fuzzTimeout)
		}
		checkPlugin(t, c, it.rec, msgs, sent, streamErr, cancelled)
	})
}

// exchangePlugin plays c's request messages into the facade while it
// receives the response. It returns the response messages, how many
// request messages were sent, the stream's final error and whether the
// scripted host cancelled.
func exchangePlugin(t *testing.T, client pluginapiv1.PluginHooksClient, c pluginCase) ([]*bridgetest.ResponseMsg, int, error, bool) {
	t.Helper()
	ctx, timeout := context.WithTimeout(t.Context(), fuzzTimeout)
	defer timeout()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.ServeHTTP(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	var cancelled atomic.Bool
	responded := make(chan struct{})
	sent := make(chan int, 1)
	go func() {
		n := 0
		for _, m := range c.msgs {
			if err := stream.Send(m); err != nil {
				// io.EOF: the facade ended the stream. Anything else (such as
				// a header value that is not UTF-8 and cannot be marshalled)
				// ends the stream on this side, as a cancel would.
				if err != io.EOF {
					cancelled.Store(true)
					cancel()
				}
				break
			}
			n++
		}
		if cancelled.Load() {
			sent <- n
			return
		}
		switch c.end {
		case pluginEndCancel:
			cancelled.Store(true)
			cancel()
		case pluginEndLinger:
			select {
			case <-responded:
			case <-time.After(20 * time.Millisecond):
			}
			_ = stream.CloseSend()
		default:
			_ = stream.CloseSend()
		}
		sent <- n
	}()
	var msgs []*bridgetest.ResponseMsg
	var streamErr error
	for {
		m, err := stream.Recv()
		if err != nil {
			if err != io.EOF {
				streamErr = err
			}
			break
		}
		msgs = append(msgs, m)
		if len(msgs) == 1 && c.end == pluginEndCancelLate {
			cancelled.Store(true)
			cancel()
		}
		if m.GetBodyComplete() {
			close(responded)
			// Nothing may follow body_complete: read on to the end.
			for {
				m, err := stream.Recv()
				if err != nil {
					if err != io.EOF && !cancelled.Load() {
						streamErr = err
					}
					break
				}
				msgs = append(msgs, m)
			}
			break
		}
	}
	if ctx.Err() != nil && !cancelled.Load() {
		t.Fatalf("the response stream did not end within %v", fuzzTimeout)
	}
	cancel() // ends a Send blocked by flow control
	n, _ := bridgetest.WaitFor(t, sent, fuzzTimeout, "the scripted host's sends")
	return msgs, n, streamErr, cancelled.Load()
}

// requestWant is what the handler may read of the request messages that
// were sent.
type requestWant struct {
	handled bool   // the facade calls the handler
	body    []byte // the bytes the handler may read, in order
	clean   bool   // they end with a clean EOF
	// oversized: reading on meets a message over the receive limit. gRPC
	// then ends the whole stream with ResourceExhausted, response included.
	oversized bool
}

// want follows the facade's rules (spec 4.1, 4.2) over the first sent
// messages.
func (c pluginCase) want(sent int) requestWant {
	msgs := c.msgs[:sent]
	var w requestWant
	if len(msgs) == 0 {
		return w
	}
	if len(msgs[0].GetBodyChunk()) > fuzzRecvLimit {
		w.oversized = true // the facade's first receive fails
		return w
	}
	if msgs[0].GetInit() == nil {
		return w
	}
	init := msgs[0].GetInit()
	if _, err := url.Parse(init.GetUrl()); err != nil { // as the facade parses it
		return w
	}
	w.handled = true
	declared := init.GetContentLength()
	if declared <= 0 {
		declared = -1
	}
	complete := false
	for _, m := range msgs {
		if len(m.GetBodyChunk()) > fuzzRecvLimit {
			w.oversized = true // the facade's receive fails here
			break
		}
		w.body = append(w.body, m.GetBodyChunk()...)
		if declared >= 0 && int64(len(w.body)) >= declared {
			w.body, complete = w.body[:declared], true
			break
		}
		if m.GetBodyComplete() {
			complete = declared < 0
			break
		}
	}
	w.clean = complete
	return w
}

// checkPlugin asserts FuzzPlugin's invariants for one exchange.
func checkPlugin(t *testing.T, c pluginCase, rec *pluginRecord, msgs []*bridgetest.ResponseMsg, sent int, streamErr error, cancelled bool) {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()

	// Response framing (spec F-C1), whatever happened.
	completeAt := -1
	var body []byte
	for i, m := range msgs {
		if completeAt >= 0 {
			t.Fatalf("response message %d follows body_complete (message %d)", i, completeAt)
		}
		if (i == 0) != (m.GetInit() != nil) {
			t.Errorf("response message %d: init=%v", i, m.GetInit() != nil)
		}
		if n := len(m.GetBodyChunk()); n > bridgetest.ChunkMax {
			t.Errorf("response message %d carries %d bytes, more than %d", i, n, bridgetest.ChunkMax)
		}
		if len(m.GetBodyChunk()) == 0 && i > 0 && !m.GetFlush() && !m.GetBodyComplete() {
			t.Errorf("response message %d is empty but neither flush nor complete", i)
		}
		if m.GetBodyComplete() {
			completeAt = i
		}
		body = append(body, m.GetBodyChunk()...)
	}
	complete := completeAt >= 0

	// The request as the handler saw it.
	want := c.want(sent)
	if rec.called && !want.handled && !cancelled {
		t.Errorf("the handler ran for a request the facade must reject")
	}
	if rec.readDone {
		if !bytes.HasPrefix(want.body, rec.read) {
			t.Errorf("handler read bytes that were not sent in order: %s", bridgetest.FirstDiff(rec.read, want.body))
		}
		switch {
		case rec.readErr == nil && !want.clean:
			t.Errorf("handler read %d bytes and a clean end of body, but the host never completed it", len(rec.read))
		case rec.readErr == nil && !bytes.Equal(rec.read, want.body):
			t.Errorf("handler read a clean but different body: %s", bridgetest.FirstDiff(rec.read, want.body))
		case rec.readErr != nil && want.clean && !cancelled && c.end != pluginEndCancelLate && sent == len(c.msgs):
			t.Errorf("handler's read failed (%v) after %d of the %d bytes of a complete body", rec.readErr, len(rec.read), len(want.body))
		}
	}

	// The response.
	switch {
	case !want.handled && want.oversized && !cancelled:
		if status.Code(streamErr) != codes.ResourceExhausted || len(msgs) != 0 {
			t.Errorf("oversized first request message: %d response messages, stream error %v; want ResourceExhausted", len(msgs), streamErr)
		}
	case !want.handled && !cancelled:
		if !complete || len(msgs) != 1 {
			t.Errorf("rejected request: %d response messages (complete=%v, error %v), want one error answer", len(msgs), complete, streamErr)
		} else if s := msgs[0].GetInit().GetStatusCode(); s != 400 && s != 500 {
			t.Errorf("rejected request answered %d, want 400 or 500", s)
		}
	case !rec.called:
		// The stream was cancelled before the handler ran.
	case rec.panicked:
		if complete && (len(msgs) != 1 || msgs[0].GetInit().GetStatusCode() != 500) {
			t.Errorf("handler panicked, yet the response completed: %d messages, status %d", len(msgs), msgs[0].GetInit().GetStatusCode())
		}
	case complete:
		wantStatus, wantBody := rec.status, rec.accepted
		if rec.status == http.StatusSwitchingProtocols {
			// F-U6: a 101 goes out only through a hijack; a handler that
			// returns after WriteHeader(101) gets 500 instead.
			wantStatus, wantBody = http.StatusInternalServerError, []byte(http.StatusText(http.StatusInternalServerError)+"\n")
		}
		if s := int(msgs[0].GetInit().GetStatusCode()); s != wantStatus {
			t.Errorf("response status %d, want %d", s, wantStatus)
		}
		if !bytes.Equal(body, wantBody) {
			t.Errorf("complete response body differs from what Write accepted: %s", bridgetest.FirstDiff(body, wantBody))
		}
	case want.oversized && status.Code(streamErr) == codes.ResourceExhausted:
		// The body read failed on the oversized message, and gRPC ended the
		// stream with that error.
	case !cancelled:
		t.Errorf("handler returned normally but the response never completed (%d messages, stream error %v)", len(msgs), streamErr)
	}
	if !complete && streamErr == nil && !cancelled && len(msgs) > 0 {
		t.Errorf("the response stream ended cleanly without body_complete")
	}
}
