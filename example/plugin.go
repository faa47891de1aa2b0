package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
)

// streamsGrace bounds how long the plugin waits for its streams when asked
// to stop; the host has normally ended them already.
const streamsGrace = 5 * time.Second

// hooks is the plugin's gRPC service. Its ServeHTTP hands every stream to
// the generated facade, which turns it into a call of an http.Handler.
type hooks struct {
	pluginapiv1.UnimplementedPluginHooksServer
	bridge pluginapiv1.ServeHTTPPlugin
}

func (h *hooks) ServeHTTP(stream grpc.BidiStreamingServer[pluginapiv1.ServeHTTPRequest, pluginapiv1.ServeHTTPResponse]) error {
	return h.bridge.Serve(stream)
}

// runPlugin serves the plugin's handler over gRPC on the unix socket at the
// path socket, in a directory the host made private, until the host closes
// the plugin's standard input or SIGTERM arrives. Stopping the server
// removes the socket.
func runPlugin(socket string) error {
	// Ctrl-C in a terminal reaches the whole process group. The host owns
	// the plugin's lifetime: it stops the plugin once its own requests are
	// done, and the plugin must keep serving them until then.
	signal.Ignore(os.Interrupt)
	terminate := make(chan os.Signal, 1)
	signal.Notify(terminate, syscall.SIGTERM)

	if socket == "" {
		return errors.New("-plugin needs -socket")
	}
	lis, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	// The bridge's codec sends large response messages in buffers of
	// their size, not in gRPC's 1 MiB ones.
	srv := grpc.NewServer(grpc.ForceServerCodecV2(pluginapiv1.ServeHTTPServerCodec{}))
	pluginapiv1.RegisterPluginHooksServer(srv, &hooks{bridge: pluginapiv1.ServeHTTPPlugin{Handler: newMux()}})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	// The listener is open, so the host may connect as soon as it reads this.
	fmt.Printf("%sunix://%s\n", handshake, lis.Addr())

	hostGone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(hostGone)
	}()
	select {
	case <-hostGone:
		log.Print("the host closed our standard input: stopping")
	case sig := <-terminate:
		log.Printf("%v: stopping", sig)
	case err := <-served:
		return err
	}

	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(streamsGrace):
		log.Printf("cancelling the streams still running after %v", streamsGrace)
		srv.Stop()
		<-stopped
	}
	log.Print("stopped")
	return nil
}

// newMux is the plugin's HTTP side: an ordinary ServeMux, unaware of gRPC.
func newMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", index)
	mux.HandleFunc("GET /hello", hello)
	mux.HandleFunc("POST /echo", echo)
	mux.HandleFunc("POST /upload", upload)
	mux.HandleFunc("GET /download", download)
	mux.HandleFunc("GET /events", events)
	mux.HandleFunc("GET /ws", ws)
	mux.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) {
		panic("the /panic endpoint was called")
	})
	return mux
}

func index(w http.ResponseWriter, r *http.Request) {
	fmt.Fprint(w, `httpbridge demo plugin. Endpoints, relative to this page:
  GET  hello               the plugin context the host filled in
  POST echo                streams the request body back while reading it
  POST upload              byte count and SHA-256 of the request body
  GET  download?size=N     N bytes (byte i is i%251), streamed
  GET  events?count=N      N server-sent events, one per 100 ms (default 10)
  GET  ws?ticks=N          a WebSocket that echoes each message, and sends
                           N clock ticks, one per 100 ms (default 0)
  GET  panic               a handler that panics
`)
}

func hello(w http.ResponseWriter, r *http.Request) {
	// The plugin context travels in the request's init, beside the fields
	// an http.Request has; the host's Init filled it in.
	init, _ := pluginapiv1.ServeHTTPRequestInitFromContext(r.Context())
	pc := init.GetPluginContext()
	fmt.Fprintf(w, "hello from the plugin, pid %d\n", os.Getpid())
	fmt.Fprintf(w, "request id: %s\n", pc.GetRequestId())
	fmt.Fprintf(w, "user agent: %s\n", pc.GetUserAgent())
	fmt.Fprintf(w, "remote ip:  %s\n", pc.GetIpAddress())
	fmt.Fprintf(w, "path:       %s (the host received %s)\n", r.URL.Path, r.RequestURI)
}

func echo(w http.ResponseWriter, r *http.Request) {
	// The bridge always lets a handler read the body while it writes; under
	// net/http directly an HTTP/1 handler must ask, so asking keeps this
	// handler portable.
	rc := http.NewResponseController(w)
	_ = rc.EnableFullDuplex()
	w.Header().Set("Content-Type", "application/octet-stream")
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := r.Body.Read(buf)
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				log.Printf("echo: stopped after %d bytes: %v", n, err)
				return
			}
			// Send each piece on at once, rather than when 64 KiB have
			// gathered, so the client gets its bytes back as it sends them.
			if err := rc.Flush(); err != nil {
				log.Printf("echo: stopped after %d bytes: %v", n, err)
				return
			}
			n += int64(k)
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			// The upload broke off. Abort, so that the client cannot take
			// the echo for a complete one.
			log.Printf("echo: stopped after %d bytes: %v", n, err)
			panic(http.ErrAbortHandler)
		}
	}
}

func upload(w http.ResponseWriter, r *http.Request) {
	sum := sha256.New()
	n, err := io.Copy(sum, r.Body)
	if err != nil {
		// An upload that broke off fails here (io.ErrUnexpectedEOF, or the
		// cancelled stream): it is never mistaken for a complete one.
		log.Printf("upload: stopped after %d bytes: %v", n, err)
		http.Error(w, "incomplete upload", http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "received %d bytes\nsha256 %x\n", n, sum.Sum(nil))
}

func download(w http.ResponseWriter, r *http.Request) {
	size := int64(1 << 20)
	if s := r.URL.Query().Get("size"); s != "" {
		var err error
		if size, err = strconv.ParseInt(s, 10, 64); err != nil || size < 0 {
			http.Error(w, "size: want a number of bytes", http.StatusBadRequest)
			return
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	buf := make([]byte, 32<<10)
	for sent := int64(0); sent < size; {
		chunk := buf[:min(int64(len(buf)), size-sent)]
		for i := range chunk {
			chunk[i] = byte((sent + int64(i)) % 251)
		}
		// Write blocks while the client is slower than the plugin, and fails
		// once it has gone away.
		if _, err := w.Write(chunk); err != nil {
			log.Printf("download: stopped after %d of %d bytes: %v", sent, size, err)
			return
		}
		sent += int64(len(chunk))
	}
}

func events(w http.ResponseWriter, r *http.Request) {
	count := 10
	if s := r.URL.Query().Get("count"); s != "" {
		var err error
		if count, err = strconv.Atoi(s); err != nil || count < 1 {
			http.Error(w, "count: want a positive number", http.StatusBadRequest)
			return
		}
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	for i := 1; ; i++ {
		fmt.Fprintf(w, "id: %d\ndata: event %d of %d at %s\n\n", i, i, count, time.Now().Format("15:04:05.000"))
		// Without the flush the event would wait in the bridge until
		// 64 KiB gathered or the handler returned.
		if err := rc.Flush(); err != nil {
			log.Printf("events: stopped after %d of %d events: %v", i-1, count, err)
			return
		}
		if i == count {
			return
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-r.Context().Done():
			log.Printf("events: the client went away after %d of %d events", i, count)
			return
		}
	}
}

// upgrader turns a WebSocket handshake into a session. Its default origin
// check refuses a browser's handshake from a page of another site (Origin's
// host is not the request's Host) with 403: without it, any site a user
// visits could open a session with the user's cookies. The bridge passes
// Origin and Host on unchanged, so the check works as under net/http.
var upgrader = websocket.Upgrader{}

// wsReadLimit bounds the messages the plugin accepts: a larger one ends
// the session (gorilla has no limit by default).
const wsReadLimit = 16 << 20

// ws is a WebSocket session: it echoes each text or binary message, and
// sends ?ticks=N clock ticks, one every 100 ms, while it does. Handlers
// written with gorilla/websocket (or coder/websocket) work unchanged: the
// host lets a client upgrade when its UpgradeProtocols says so, and the
// facade's ResponseWriter is then an http.Hijacker.
func ws(w http.ResponseWriter, r *http.Request) {
	ticks := 0
	if s := r.URL.Query().Get("ticks"); s != "" {
		var err error
		if ticks, err = strconv.Atoi(s); err != nil || ticks < 0 {
			http.Error(w, "ticks: want a number, 0 or more", http.StatusBadRequest)
			return
		}
	}
	// Upgrade answers a handshake it refuses itself (400, 403, 405).
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		log.Printf("ws: %v", err)
		return
	}
	// Closing the conn ends the session: the bridge then sends what was
	// written, and ends the stream.
	defer conn.Close()
	conn.SetReadLimit(wsReadLimit)

	// gorilla allows one writer at a time (and control frames, such as
	// the answer to a close, beside it): the ticks and the echo take turns.
	var writing sync.Mutex
	write := func(kind int, data []byte) error {
		writing.Lock()
		defer writing.Unlock()
		// A client that stops reading must not hold the plugin forever.
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		return conn.WriteMessage(kind, data)
	}
	stop := make(chan struct{})
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		for i := 1; i <= ticks; i++ {
			if i > 1 {
				select {
				case <-time.After(100 * time.Millisecond):
				case <-stop:
					return
				}
			}
			tick := fmt.Sprintf("tick %d of %d at %s", i, ticks, time.Now().Format("15:04:05.000"))
			if write(websocket.TextMessage, []byte(tick)) != nil {
				return
			}
		}
	}()
	defer func() {
		close(stop)
		<-ticked
	}()

	for n := 0; ; n++ {
		kind, data, err := conn.ReadMessage()
		switch {
		case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived):
			// gorilla has answered the close frame already.
			log.Printf("ws: the client closed the session after %d messages", n)
			return
		case err != nil:
			// The client went away without a close frame, or the host
			// ends the session as it shuts down (the read then sees the
			// end of the client's input): say goodbye, if it still hears.
			log.Printf("ws: stopped after %d messages: %v", n, err)
			_ = conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second))
			return
		}
		if err := write(kind, data); err != nil {
			log.Printf("ws: stopped after %d messages: %v", n, err)
			return
		}
	}
}
