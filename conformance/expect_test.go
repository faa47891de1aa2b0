package conformance

// An early final answer to an upload sent with "Expect: 100-continue": a
// plugin that answers 413 after 100 ms without reading an 8 MiB body. Served
// directly, net/http never sends 100 Continue and the client sends nothing.
// Bridged, the host starts forwarding at once, so 100 Continue goes out and
// the upload starts (a documented deviation); the answer must still reach
// the client every time, and an HTTP/1 connection must close gracefully
// rather than reset under the client while it is still writing.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

const (
	expectBodySize = 8 << 20
	expectAttempts = 20
)

// expectEarly413 answers 413 after 100 ms without reading the body.
func expectEarly413(w http.ResponseWriter, r *http.Request) {
	time.Sleep(100 * time.Millisecond)
	http.Error(w, "too large", http.StatusRequestEntityTooLarge)
}

// expectCountingBody counts the request body bytes the host reads.
type expectCountingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b expectCountingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func TestHostEarlyAnswerToExpectContinue(t *testing.T) {
	payload := bytes.Repeat([]byte("u"), expectBodySize)
	for _, hv := range bridgetest.HTTPVersions {
		t.Run("go/"+string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			read := &atomic.Int64{}
			env := bridgetest.NewEnv(t, bridgetest.Config{
				Transport: bridgetest.TCP, HTTPVersion: hv, Handler: http.HandlerFunc(expectEarly413),
				Wrap: func(h http.Handler) http.Handler {
					return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						r.Body = expectCountingBody{r.Body, read}
						h.ServeHTTP(w, r)
					})
				},
			})
			transport := env.Client.Transport.(*http.Transport).Clone()
			transport.ExpectContinueTimeout = time.Second // as http.DefaultTransport
			client := &http.Client{Transport: transport}
			defer transport.CloseIdleConnections()
			got := 0
			for i := range expectAttempts {
				ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
				req := env.Request(t, ctx, http.MethodPost, "/upload", bytes.NewReader(payload))
				req.Header.Set("Expect", "100-continue")
				o := bridgetest.Observe(client, req)
				cancel()
				if o.Status == http.StatusRequestEntityTooLarge && string(o.Body) == "too large\n" {
					got++
				} else {
					t.Errorf("attempt %d: %s", i, o)
				}
				// The connection is not reused wrongly: a GET after it works.
				ctx, cancel = context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
				if o := bridgetest.Observe(client, env.Request(t, ctx, http.MethodGet, "/after", nil)); o.Status != http.StatusRequestEntityTooLarge || o.Err != bridgetest.ErrNone {
					t.Errorf("GET after attempt %d: %s", i, o)
				}
				cancel()
			}
			t.Logf("%d of %d answered; the host read %.1f MiB per upload on average (of %d MiB sent with Expect)",
				got, expectAttempts, float64(read.Load())/expectAttempts/(1<<20), expectBodySize>>20)
		})
	}
}

func TestCurlEarlyAnswerToExpectContinue(t *testing.T) {
	payload := bytes.Repeat([]byte("u"), expectBodySize)
	file := filepath.Join(t.TempDir(), "upload")
	if err := os.WriteFile(file, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	curlMatrix(t, func() http.Handler { return http.HandlerFunc(expectEarly413) }, func(t *testing.T, hv bridgetest.HTTPVersion, c curlTarget) {
		dropped := 0
		for i := range expectAttempts {
			out, err := c.run(t, "-H", "Expect: 100-continue", "--data-binary", "@"+file, "-w", "\n%{http_code}", c.url+"/upload")
			cut := bytes.LastIndexByte(out, '\n') // -w puts the status after the body
			body, code := string(out[:max(cut, 0)]), string(out[cut+1:])
			switch {
			case code != "413":
				t.Errorf("attempt %d: status %q (%v), want 413", i, code, err)
			case hv == bridgetest.HTTP2 && err != nil && strings.Contains(err.Error(), "exit status 18"):
				// curl before 8.0 drops the body of a complete response when
				// the server then resets the unread upload with NO_ERROR, as
				// net/http does for any early answer (curl/curl#10693).
				dropped++
			case err != nil || body != "too large\n":
				t.Errorf("attempt %d: body %q, %v; want %q", i, body, err, "too large\n")
			}
		}
		t.Logf("413 in %d of %d; curl dropped the body of %d with its error 18", expectAttempts, expectAttempts, dropped)
	})
}
