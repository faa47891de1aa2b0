package conformance

// Soak test (H37 at scale): many mixed exchanges through the generated host,
// gRPC and the generated facade, with bounded concurrency, followed by a
// check that goroutines and the heap return to their baseline.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

const (
	// soakExchanges is the number of exchanges, also under -race: on 2
	// cores 10 000 take 6–10 s, and 30–45 s under -race.
	soakExchanges = 10000
	// soakConcurrency is how many exchanges run at once.
	soakConcurrency = 16
	// soakHeapSlack is how far the live heap may end above its baseline.
	soakHeapSlack = 8 << 20
)

// The kinds of soak exchanges, in the order they are cycled.
const (
	soakNormal    = iota // POST 1 KiB, echoed
	soakEarly            // POST 128 KiB, answered without reading it
	soakAborted          // "hello", flush, panic(http.ErrAbortHandler)
	soakCancelled        // ticks until the client cancels after the first
	soakPanic            // panic("boom") before any output
	soakKinds
)

// soakHandler is the plugin's handler of the soak test.
func soakHandler(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/normal":
		_, _ = io.Copy(w, r.Body)
	case "/early":
		_, _ = io.WriteString(w, "early")
	case "/abort":
		_, _ = io.WriteString(w, "hello")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	case "/slow":
		deadline := time.Now().Add(bridgetest.ExchangeTimeout)
		for r.Context().Err() == nil && time.Now().Before(deadline) {
			if _, err := io.WriteString(w, "tick"); err != nil {
				return
			}
			if http.NewResponseController(w).Flush() != nil {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	case "/panic":
		panic("boom")
	}
}

// soakRun does exchange i against e and returns what went wrong, or "".
func soakRun(t *testing.T, e *bridgetest.Env, i int, small, large []byte) string {
	ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
	defer cancel()
	do := func(method, target string, body []byte) (*http.Response, error) {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, e.Server.URL+target, rd)
		if err != nil {
			return nil, err
		}
		return e.Client.Do(req)
	}
	read := func(method, target string, body []byte) (int, []byte, error, error) {
		resp, err := do(method, target, body)
		if err != nil {
			return 0, nil, nil, err
		}
		defer resp.Body.Close()
		b, rerr := io.ReadAll(resp.Body)
		return resp.StatusCode, b, rerr, nil
	}
	switch i % soakKinds {
	case soakNormal:
		code, b, rerr, err := read(http.MethodPost, "/normal", small)
		if err != nil || rerr != nil || code != 200 || !bytes.Equal(b, small) {
			return fmt.Sprintf("normal: %d, %d bytes, %v, %v", code, len(b), rerr, err)
		}
	case soakEarly:
		code, b, rerr, err := read(http.MethodPost, "/early", large)
		if err != nil || rerr != nil || code != 200 || string(b) != "early" {
			return fmt.Sprintf("early: %d %q, %v, %v", code, b, rerr, err)
		}
	case soakAborted:
		code, b, rerr, err := read(http.MethodGet, "/abort", nil)
		if err != nil || rerr == nil || code != 200 || string(b) != "hello" {
			return fmt.Sprintf("aborted: %d %q, read error %v, %v", code, b, rerr, err)
		}
	case soakCancelled:
		resp, err := do(http.MethodGet, "/slow", nil)
		if err != nil {
			return fmt.Sprintf("cancelled: %v", err)
		}
		tick := make([]byte, 4)
		_, rerr := io.ReadFull(resp.Body, tick)
		cancel()
		resp.Body.Close()
		if rerr != nil || string(tick) != "tick" {
			return fmt.Sprintf("cancelled: first tick %q, %v", tick, rerr)
		}
	case soakPanic:
		code, _, _, err := read(http.MethodGet, "/panic", nil)
		if err != nil || code != 500 {
			return fmt.Sprintf("panic: %d, %v", code, err)
		}
	}
	return ""
}

// soakHeap returns the live heap after garbage collection.
func soakHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestSoak runs soakExchanges mixed exchanges (normal, early response,
// aborted, client-cancelled, panicking handler), spread over HTTP/1.1 and
// HTTP/2 × bufconn and loopback TCP, through host → gRPC → facade,
// soakConcurrency at a time.
// Afterwards the goroutine count returns to its baseline and the live heap
// to within soakHeapSlack of its own.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test skipped under -short")
	}
	bridgetest.LeakCheck(t)
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	var envs []*bridgetest.Env
	for _, tr := range bridgetest.Transports {
		for _, hv := range bridgetest.HTTPVersions {
			bridge := &pluginapiv1.ServeHTTPPlugin{Handler: http.HandlerFunc(soakHandler), Logger: discard}
			e := bridgetest.NewEnv(t, bridgetest.Config{
				Transport:   tr,
				HTTPVersion: hv,
				Plugin:      &bridgetest.FacadeServer{Bridge: bridge},
				SetupHost:   func(h *pluginapiv1.ServeHTTPHost) { h.Logger = discard },
			})
			if ht, ok := e.Client.Transport.(*http.Transport); ok {
				ht.MaxIdleConnsPerHost = soakConcurrency // reuse connections across workers
			}
			envs = append(envs, e)
		}
	}
	small := bridgetest.RandomBytes(t, 1<<10)
	large := bridgetest.RandomBytes(t, 128<<10)
	closeIdle := func() {
		for _, e := range envs {
			e.Client.CloseIdleConnections()
		}
	}

	// Baseline: one exchange of each kind on each env, idle connections
	// closed, the goroutine count settled.
	for i := range soakKinds * len(envs) {
		if msg := soakRun(t, envs[i/soakKinds], i%soakKinds, small, large); msg != "" {
			t.Fatalf("warm-up exchange %d: %s", i, msg)
		}
	}
	closeIdle()
	baseGoroutines := hostSettledGoroutines()
	baseHeap := soakHeap()

	start := time.Now()
	var (
		next     atomic.Int64
		failures atomic.Int64
		wg       sync.WaitGroup
	)
	for range soakConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= soakExchanges || t.Context().Err() != nil {
					return
				}
				// Change env (transport and HTTP version) every full
				// cycle of kinds.
				e := envs[(i/soakKinds)%len(envs)]
				if msg := soakRun(t, e, i, small, large); msg != "" {
					if failures.Add(1) <= 10 {
						t.Errorf("exchange %d: %s", i, msg)
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := failures.Load(); n > 0 {
		t.Errorf("%d of %d exchanges failed", n, soakExchanges)
	}

	closeIdle()
	var goroutines int
	if !bridgetest.Eventually(5*time.Second, func() bool {
		closeIdle()
		goroutines = runtime.NumGoroutine()
		return goroutines <= baseGoroutines
	}) {
		t.Errorf("%d goroutines 5s after the soak, baseline %d", goroutines, baseGoroutines)
	}
	heap := soakHeap()
	if heap > baseHeap+soakHeapSlack {
		t.Errorf("live heap %d KiB after the soak, baseline %d KiB (slack %d KiB)", heap>>10, baseHeap>>10, soakHeapSlack>>10)
	}
	t.Logf("%d exchanges (%d at a time) in %v (%v each); goroutines %d → %d; live heap %d KiB → %d KiB",
		soakExchanges, soakConcurrency, elapsed.Round(time.Millisecond), (elapsed / soakExchanges).Round(time.Microsecond),
		baseGoroutines, goroutines, baseHeap>>10, heap>>10)
}
