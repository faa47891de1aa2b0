package conformance

// Real clients: curl uploads to, downloads from and streams server-sent
// events from the host, served on a 127.0.0.1 listener, with the plugin's
// gRPC server in the same process over loopback TCP. curl is needed: the
// tests skip without it, except under CI=true, where they fail.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

// curlTimeout bounds one curl run.
const curlTimeout = 30 * time.Second

// curlBinary returns the path of curl. Without it the test is skipped,
// unless the environment says CI=true: CI installs curl, so there a missing
// curl is a broken setup.
func curlBinary(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("curl is required under CI=true: %v", err)
	}
	t.Skipf("curl not found (%v); CI runs these tests", err)
	return ""
}

// curlHasHTTP2 reports whether this curl speaks HTTP/2.
func curlHasHTTP2(t *testing.T, curl string) bool {
	t.Helper()
	out, err := exec.Command(curl, "--version").Output()
	if err != nil {
		t.Fatalf("curl --version: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "Features:") {
			return strings.Contains(" "+line+" ", " HTTP2 ")
		}
	}
	return false
}

// curlTarget is the bridge in front of a handler, ready for curl.
type curlTarget struct {
	curl string
	url  string
	args []string // protocol and TLS arguments for every run
}

// curlMatrix runs f over HTTP/1.1 (plain) and HTTP/2 (TLS; skipped if curl
// lacks it), each with the bridge around the handler newHandler returns.
func curlMatrix(t *testing.T, newHandler func() http.Handler, f func(t *testing.T, hv bridgetest.HTTPVersion, c curlTarget)) {
	curl := curlBinary(t)
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			if hv == bridgetest.HTTP2 && !curlHasHTTP2(t, curl) {
				t.Skip("this curl has no HTTP/2 support")
			}
			bridgetest.LeakCheck(t)
			env := bridgetest.NewEnv(t, bridgetest.Config{Transport: bridgetest.TCP, HTTPVersion: hv, Handler: newHandler()})
			// -q (first) ignores any .curlrc; no proxy may stand between curl
			// and 127.0.0.1.
			base := []string{"-q", "--noproxy", "*", "--silent", "--show-error"}
			c := curlTarget{curl: curl, url: env.Server.URL, args: append(base, "--http1.1")}
			if hv == bridgetest.HTTP2 {
				ca := filepath.Join(t.TempDir(), "ca.pem")
				cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: env.Server.Certificate().Raw})
				if err := os.WriteFile(ca, cert, 0o600); err != nil {
					t.Fatal(err)
				}
				c.args = append(base, "--http2", "--cacert", ca)
			}
			f(t, hv, c)
		})
	}
}

// run runs curl with args and returns its stdout; a non-zero exit is
// returned as an *exec.ExitError with stderr in the message.
func (c curlTarget) run(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), curlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.curl, append(append([]string{}, c.args...), args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil {
		t.Fatalf("curl %q did not finish within %v", args, curlTimeout)
	}
	if err != nil {
		return out, fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// curlPayload is a file-sized payload whose length is not a multiple of
// any chunk size.
func curlPayload(n int, seed uint64) ([]byte, string) {
	b := sweepPayload(n, seed)
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// uploadSeen is what the upload handler saw.
type uploadSeen struct {
	contentLength int64
	n             int64
	sum           string
	err           error
}

func TestCurlUpload(t *testing.T) {
	payload, sum := curlPayload(3<<20+17, 3)
	file := filepath.Join(t.TempDir(), "upload.bin")
	if err := os.WriteFile(file, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	seen := make(chan uploadSeen, 1)
	handler := func() http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			s := uploadSeen{contentLength: r.ContentLength, n: n, sum: hex.EncodeToString(h.Sum(nil)), err: err}
			seen <- s
			if err != nil {
				http.Error(w, "upload failed", http.StatusBadRequest)
				return
			}
			_, _ = fmt.Fprintf(w, "%d %s\n", s.n, s.sum)
		})
	}
	curlMatrix(t, handler, func(t *testing.T, hv bridgetest.HTTPVersion, c curlTarget) {
		for _, tc := range []struct {
			name       string
			args       []string
			wantLength int64
		}{
			{"data-binary", []string{"--data-binary", "@" + file, "-H", "Content-Type: application/octet-stream"}, int64(len(payload))},
			{"upload-file", []string{"--upload-file", file}, int64(len(payload))},
			{"chunked", []string{"--data-binary", "@" + file, "-H", "Transfer-Encoding: chunked"}, -1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if tc.wantLength < 0 && hv == bridgetest.HTTP2 {
					t.Skip("HTTP/2 has no chunked transfer coding")
				}
				out, err := c.run(t, append(tc.args, "--fail", c.url+"/upload")...)
				if err != nil {
					t.Fatalf("curl: %v", err)
				}
				if want := fmt.Sprintf("%d %s\n", len(payload), sum); string(out) != want {
					t.Errorf("curl printed %q, want %q", out, want)
				}
				s, ok := bridgetest.WaitFor(t, seen, bridgetest.Promptly, "the upload handler")
				if !ok {
					return
				}
				if s.err != nil || s.n != int64(len(payload)) || s.sum != sum {
					t.Errorf("plugin read %d bytes, sha256 %s, error %v; want %d bytes, %s", s.n, s.sum, s.err, len(payload), sum)
				}
				if s.contentLength != tc.wantLength {
					t.Errorf("plugin saw ContentLength %d, want %d", s.contentLength, tc.wantLength)
				}
			})
		}
	})
}

func TestCurlDownload(t *testing.T) {
	payload, sum := curlPayload(10<<20+1, 4)
	handler := func() http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			if r.URL.Query().Has("length") {
				w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
			}
			// Writes of changing sizes, so that chunk boundaries move.
			for p, size := payload, 1; len(p) > 0; size = (size*3 + 1) % 200_003 {
				n := min(len(p), size+1)
				if _, err := w.Write(p[:n]); err != nil {
					return
				}
				p = p[n:]
			}
		})
	}
	curlMatrix(t, handler, func(t *testing.T, hv bridgetest.HTTPVersion, c curlTarget) {
		for _, query := range []string{"", "?length"} {
			t.Run("download"+query, func(t *testing.T) {
				file := filepath.Join(t.TempDir(), "download.bin")
				out, err := c.run(t, "--fail", "--output", file, "--write-out", "%{http_code} %{size_download}", c.url+"/download"+query)
				if err != nil {
					t.Fatalf("curl: %v", err)
				}
				if want := fmt.Sprintf("200 %d", len(payload)); string(out) != want {
					t.Errorf("curl reported %q, want %q", out, want)
				}
				got, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				gotSum := sha256.Sum256(got)
				if hex.EncodeToString(gotSum[:]) != sum {
					t.Errorf("downloaded file differs: %s", bridgetest.FirstDiff(got, payload))
				}
			})
		}
	})
}

// curlEvent is one line curl printed and when it arrived.
type curlEvent struct {
	line string
	at   time.Duration
}

// streamCurl runs curl -N and timestamps every line of its output as it
// arrives.
func (c curlTarget) stream(t *testing.T, url string) ([]curlEvent, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), curlTimeout)
	defer cancel()
	args := append(append([]string{}, c.args...), "--no-buffer", "--fail", url)
	cmd := exec.CommandContext(ctx, c.curl, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var events []curlEvent
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if line := sc.Text(); line != "" {
			events = append(events, curlEvent{line: line, at: time.Since(start)})
		}
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("curl -N did not finish within %v", curlTimeout)
	}
	if err != nil {
		return events, fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return events, nil
}

func TestCurlServerSentEvents(t *testing.T) {
	handler := func() http.Handler { return http.HandlerFunc(sseHandler) }
	curlMatrix(t, handler, func(t *testing.T, hv bridgetest.HTTPVersion, c curlTarget) {
		var times []time.Duration
		// A loaded machine can delay one event and shrink the next gap: a
		// bad spacing is measured up to three times; a bridge that holds
		// the events back fails every time.
		for attempt := range 3 {
			events, err := c.stream(t, c.url+"/events")
			if err != nil {
				t.Fatalf("curl -N: %v", err)
			}
			if len(events) != sseEvents {
				t.Fatalf("curl printed %d lines %v, want %d events", len(events), events, sseEvents)
			}
			times = times[:0]
			spaced := true
			for i, ev := range events {
				if want := fmt.Sprintf("data: %d", i); ev.line != want {
					t.Fatalf("line %d is %q, want %q", i, ev.line, want)
				}
				times = append(times, ev.at)
				if i > 0 && ev.at-events[i-1].at < sseMinGap {
					spaced = false
				}
			}
			if spaced {
				return
			}
			t.Logf("attempt %d: events arrived at %v", attempt+1, times)
		}
		t.Errorf("events arrived at %v, want each at least %v after the previous one", times, sseMinGap)
	})
}

// A response the plugin cuts off after its first bytes is an error for
// curl too, not a short download that looks complete.
func TestCurlTruncatedResponse(t *testing.T) {
	handler := func() http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "hello")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		})
	}
	curlMatrix(t, handler, func(t *testing.T, hv bridgetest.HTTPVersion, c curlTarget) {
		out, err := c.run(t, c.url+"/abort")
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("curl: %v, output %q; want a failed transfer", err, out)
		}
		if string(out) != "hello" {
			t.Errorf("curl printed %q before failing, want %q", out, "hello")
		}
		t.Logf("curl failed as expected: %v", err)
	})
}
