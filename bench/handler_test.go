package bench

// The plugin's HTTP handler (the same one behind every system), and the
// host's side of an exchange: a synthetic request whose body is generated as
// it is read, and a ResponseWriter that counts what it is given.

import (
	"bytes"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"sync"
)

const (
	// chunk is the size of the messages raw sends, and of the bridge's
	// default chunk.
	chunk = 64 << 10
	// writeSize is how much the plugin's handler reads or writes at a time,
	// as io.Copy and http.ServeContent do.
	writeSize = 32 << 10
	// eventSize is the size of one server-sent event.
	eventSize = 100
)

// pattern holds the bytes every body is made of, repeated.
var pattern = func() []byte {
	b := make([]byte, chunk)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}()

// event is one server-sent event of eventSize bytes.
var event = func() []byte {
	b := bytes.Repeat([]byte("x"), eventSize)
	copy(b, "data: ")
	copy(b[eventSize-2:], "\n\n")
	return b
}()

// small is the body of the 2-byte GET.
var small = []byte("hi")

// newHandler returns the plugin's handler. Its routes:
//
//	POST /upload        reads the body, answers its length in decimal
//	GET  /download?n=N  writes N bytes with a Content-Length
//	POST /echo          writes the body back as it reads it
//	GET  /small         writes "hi"
//	GET  /events?n=N    writes N events of 100 bytes, flushing each
//	GET  /ws            a WebSocket that echoes and pushes (serveWebSocket)
func newHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", serveWebSocket)
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		buf := getBuf()
		defer putBuf(buf)
		var n int64
		for {
			m, err := r.Body.Read(*buf)
			n += int64(m)
			if err == io.EOF {
				break
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		_, _ = w.Write(strconv.AppendInt((*buf)[:0], n, 10))
	})
	mux.HandleFunc("GET /download", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		for off := 0; n > 0; off = (off + writeSize) % len(pattern) {
			m := min(n, writeSize)
			if _, err := w.Write(pattern[off : off+int(m)]); err != nil {
				return
			}
			n -= m
		}
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		// A net/http server would stop the upload once the answer starts.
		_ = http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Content-Type", "application/octet-stream")
		buf := getBuf()
		defer putBuf(buf)
		for {
			m, err := r.Body.Read(*buf)
			if m > 0 {
				if _, err := w.Write((*buf)[:m]); err != nil {
					return
				}
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				panic(http.ErrAbortHandler)
			}
		}
	})
	mux.HandleFunc("GET /small", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(small)
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		rc := http.NewResponseController(w)
		for range n {
			if _, err := w.Write(event); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	})
	return mux
}

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, writeSize)
	return &b
}}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }

// body is a request body of n pattern bytes, generated as it is read. Like
// a net/http server's body of declared length, its last Read returns the
// last bytes together with io.EOF.
type body struct {
	left int64
	off  int
}

func newBody(n int64) *body { return &body{left: n} }

func (b *body) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(int64(len(p)), b.left)], pattern[b.off:])
	b.off = (b.off + n) % len(pattern)
	b.left -= int64(n)
	if b.left == 0 {
		return n, io.EOF
	}
	return n, nil
}

func (b *body) Close() error { return nil }

// wantCRC returns the CRC-32 of n pattern bytes.
func wantCRC(n int64) uint32 {
	var sum uint32
	b := newBody(n)
	buf := make([]byte, chunk)
	for {
		m, err := b.Read(buf)
		sum = crc32.Update(sum, crc32.IEEETable, buf[:m])
		if err != nil {
			return sum
		}
	}
}

// sink is the host's ResponseWriter: it counts the body bytes and flushes,
// keeps the first bytes and, when keep is set, checksums the body. It is
// reset and reused between exchanges so that it allocates nothing itself.
// Like net/http's writers it can flush and enable full duplex.
type sink struct {
	header  http.Header
	code    int
	n       int64
	flushes int
	keep    bool
	crc     uint32
	head    []byte // the first 64 bytes of the body
}

func newSink() *sink { return &sink{header: make(http.Header)} }

func (s *sink) reset() {
	clear(s.header)
	s.code, s.n, s.flushes, s.crc, s.head = 0, 0, 0, 0, s.head[:0]
}

func (s *sink) Header() http.Header { return s.header }

func (s *sink) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
}

func (s *sink) Write(p []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	s.n += int64(len(p))
	if s.keep {
		s.crc = crc32.Update(s.crc, crc32.IEEETable, p)
	}
	if len(s.head) < 64 {
		s.head = append(s.head, p[:min(len(p), 64-len(s.head))]...)
	}
	return len(p), nil
}

func (s *sink) Flush() { s.flushes++ }

// EnableFullDuplex succeeds, as net/http's does. Without it the bridge's
// call would build a "not supported" error on every exchange, a cost that no
// host served by net/http pays.
func (s *sink) EnableFullDuplex() error { return nil }
