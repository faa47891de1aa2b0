package conformance

// The request target (amended F-Q2): the plugin's handler must see the URL
// that a handler served directly by net/http at the same place sees, for
// every target net/http accepts, so that a host's check of the path holds
// for the plugin too.

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/httpbridge/httpbridge/internal/bridgetest"
)

// targetView is what a handler sees of the request target.
type targetView struct {
	Scheme, Opaque, User, URLHost, Path, RawPath, RawQuery, Fragment string
	EscapedPath, RequestURI, Host                                    string
}

// newTargetView is what r's handler sees of the request target.
func newTargetView(r *http.Request) targetView {
	v := targetView{
		Scheme: r.URL.Scheme, Opaque: r.URL.Opaque, URLHost: r.URL.Host,
		Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery, Fragment: r.URL.Fragment,
		EscapedPath: r.URL.EscapedPath(), RequestURI: r.RequestURI, Host: r.Host,
	}
	if r.URL.User != nil {
		v.User = r.URL.User.String()
	}
	return v
}

// targetHandler answers with the targetView of its request, as JSON.
func targetHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(newTargetView(r))
}

// targetCase is one request target, sent as is on the request line (HTTP/1)
// or as :path (HTTP/2), to a server whose handler is mounted under strip
// (http.StripPrefix) when strip is not empty.
type targetCase struct {
	method    string // "" for GET
	target    string
	strip     string
	onlyHTTP1 bool // absolute-form, authority-form and "*" have no HTTP/2 :path
}

func targetCases() []targetCase {
	cases := []targetCase{
		{target: "/"},
		{target: "/plain?x=1"},
		{target: "//evil/secret"},
		{target: "//evil/secret?x=1"},
		{target: "//user@evil:80/p"},
		{target: "///triple/slash"},
		{target: "/q?x=1#y=2"},
		{target: "/q#frag"},
		{target: "/q#a?b=1#c"},
		{target: "/a\"b<c>{d}|e^f`g\\h"},
		{target: "/a%2Fb/c"},
		{target: "/a%2fb%20c%3F?%3F=%26"},
		{target: "/caf%C3%A9?q=%zz"},
		{target: "/caf\u00e9/\u00fc?\u00e9=\u00fc"},
		{target: "/odd?a=<>\"{}|^`'&b=[]&c=%&d=#"},
		{target: "/semi;x=1/y?;"},
		{target: "/dot/../x/./y"},
		{target: "/hash%23in%23path"},
		{target: "/p?"},
		{target: "http://h.example/abs?q=1#f", onlyHTTP1: true},
		{target: "http://user:pw@h.example//abs", onlyHTTP1: true},
		{target: "https://h.example", onlyHTTP1: true},
		{target: "*", onlyHTTP1: true},
		{method: http.MethodConnect, target: "h.example:443", onlyHTTP1: true},
		{method: http.MethodConnect, target: "evil/secret", onlyHTTP1: true},
		{method: http.MethodConnect, target: "/origin/form"},
	}
	// What a prefix strip leaves, as Mattermost strips /plugins/{id}.
	for _, target := range []string{"/plugins/x", "/plugins/x?a=b", "/plugins/x//evil/secret", "/plugins/x/a%2Fb?q#f", "/plugins/x/"} {
		cases = append(cases, targetCase{target: target, strip: "/plugins/x"})
	}
	// A prefix with its trailing slash leaves relative paths.
	for _, target := range []string{"/plugins/x/rel/p?q=1", "/plugins/x/a:b/c", "/plugins/x/", "/plugins/x//evil", "/plugins/x/a%2Fb",
		"/plugins/x/./secret?next=http://a", "/plugins/x/./secret:1", "/plugins/x/.//x", "/plugins/x/q#f", "/plugins/x/caf\u00e9", "/plugins/x/*"} {
		cases = append(cases, targetCase{target: target, strip: "/plugins/x/"})
	}
	return cases
}

// TestRequestTargetSweep compares, for every targetCase, what the handler
// sees served directly and through the bridge, over HTTP/1.1 and HTTP/2.
func TestRequestTargetSweep(t *testing.T) {
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			mounts := map[string][2]*httptest.Server{}
			for _, tc := range targetCases() {
				if _, ok := mounts[tc.strip]; ok {
					continue
				}
				wrap := func(h http.Handler) http.Handler { return h }
				if tc.strip != "" {
					wrap = func(h http.Handler) http.Handler { return http.StripPrefix(tc.strip, h) }
				}
				direct := bridgetest.StartHTTPServer(t, hv, wrap(http.HandlerFunc(targetHandler)), nil)
				env := bridgetest.NewEnv(t, bridgetest.Config{HTTPVersion: hv, Handler: http.HandlerFunc(targetHandler), Wrap: wrap})
				mounts[tc.strip] = [2]*httptest.Server{direct, env.Server}
			}
			for _, tc := range targetCases() {
				if tc.onlyHTTP1 && hv != bridgetest.HTTP1 {
					continue
				}
				servers := mounts[tc.strip]
				method := cmp.Or(tc.method, http.MethodGet)
				want := targetDo(t, hv, servers[0], method, tc.target)
				got := targetDo(t, hv, servers[1], method, tc.target)
				if want != got {
					t.Errorf("%s %q (strip %q):\n direct  %s\n bridged %s", method, tc.target, tc.strip, want, got)
				}
			}
		})
	}
}

// targetGet sends GET target to srv with nothing rewritten and returns the
// status line and body.
func targetGet(t *testing.T, hv bridgetest.HTTPVersion, srv *httptest.Server, target string) string {
	t.Helper()
	return targetDo(t, hv, srv, http.MethodGet, target)
}

// targetDo is targetGet with another method.
func targetDo(t *testing.T, hv bridgetest.HTTPVersion, srv *httptest.Server, method, target string) string {
	t.Helper()
	var resp *http.Response
	if hv == bridgetest.HTTP1 {
		resp = rawHTTP1Do(t, srv.Listener.Addr().String(), method, target, "")
	} else {
		ctx, cancel := context.WithTimeout(t.Context(), bridgetest.ExchangeTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Go's client writes URL.RequestURI() as :path: set the parts
		// that give back target exactly. Opaque keeps a path that is not
		// in canonical form, but a leading "//" in it would mean a host.
		path, query, hasQuery := strings.Cut(target, "?")
		req.Host = "h.test" // as rawHTTP1Get sends
		req.URL.RawQuery, req.URL.ForceQuery = query, hasQuery && query == ""
		if strings.HasPrefix(path, "//") {
			req.URL.Path = path
		} else {
			req.URL.Opaque = path
		}
		if got := req.URL.RequestURI(); got != target {
			t.Fatalf("the client would send %q for %q", got, target)
		}
		resp, err = srv.Client().Do(req)
		if err != nil {
			t.Fatalf("GET %q: %v", target, err)
		}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %q: reading the body: %v", target, err)
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		return fmt.Sprintf("%d Location: %s %s", resp.StatusCode, loc, body)
	}
	return fmt.Sprintf("%d %s", resp.StatusCode, body)
}

// rawHTTP1Get writes "GET target HTTP/1.1" and extra header lines (each
// ending in CRLF) to addr and reads the response, so that nothing between
// the test and the server rewrites the target.
func rawHTTP1Get(t *testing.T, addr, target, extra string) *http.Response {
	t.Helper()
	return rawHTTP1Do(t, addr, http.MethodGet, target, extra)
}

// rawHTTP1Do is rawHTTP1Get with another method.
func rawHTTP1Do(t *testing.T, addr, method, target, extra string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(bridgetest.ExchangeTimeout))
	if _, err := fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: h.test\r\n%sConnection: close\r\n\r\n", method, target, extra); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("GET %q: %v", target, err)
	}
	return resp
}

// A host middleware that refuses paths under /secret must protect the
// plugin's /secret route: GET //x/secret reached it when the facade read the
// target with url.Parse (host "x", path "/secret"). Served directly, the
// plugin's ServeMux answers that target with a redirect to the clean path.
func TestRequestTargetHostGuard(t *testing.T) {
	guard := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/secret") {
				http.Error(w, "refused by the host", http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/secret", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "the secret") })
	// Behind a prefix strip that leaves relative paths, the guard and the
	// route see "secret" without its slash.
	relativeGuard := func(h http.Handler) http.Handler {
		return http.StripPrefix("/plugins/x/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "secret") {
				http.Error(w, "refused by the host", http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, r)
		}))
	}
	relativeRoute := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "secret" || r.URL.Path == "secret:1" {
			_, _ = io.WriteString(w, "the secret")
			return
		}
		_, _ = io.WriteString(w, "path "+r.URL.Path)
	})
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv)+"/relative", func(t *testing.T) {
			bridgetest.LeakCheck(t)
			direct := bridgetest.StartHTTPServer(t, hv, relativeGuard(relativeRoute), nil)
			env := bridgetest.NewEnv(t, bridgetest.Config{HTTPVersion: hv, Handler: relativeRoute, Wrap: relativeGuard})
			for _, target := range []string{"/plugins/x/secret", "/plugins/x/./secret?next=http://a", "/plugins/x/./secret:1", "/plugins/x/%2E/secret"} {
				want := targetGet(t, hv, direct, target)
				got := targetGet(t, hv, env.Server, target)
				if strings.Contains(got, "the secret") || got != want {
					t.Errorf("GET %q: bridged %q, direct %q", target, got, want)
				}
			}
		})
	}
	for _, hv := range bridgetest.HTTPVersions {
		t.Run(string(hv), func(t *testing.T) {
			bridgetest.LeakCheck(t)
			direct := bridgetest.StartHTTPServer(t, hv, guard(mux), nil)
			env := bridgetest.NewEnv(t, bridgetest.Config{HTTPVersion: hv, Handler: mux, Wrap: guard})
			for _, target := range []string{"/secret", "//x/secret", "//x/secret?a=b", "//user@x:80/secret"} {
				want := targetGet(t, hv, direct, target)
				got := targetGet(t, hv, env.Server, target)
				if strings.Contains(got, "the secret") || got != want {
					t.Errorf("GET %q: bridged %q, direct %q", target, got, want)
				}
			}
		})
	}
}

// Mattermost's own host writes the url field as r.URL.String(). The facade
// must read that back too: every field but an invalid RawPath (a raw "#"
// or non-ASCII byte, which String escapes again) is what net/http parsed.
func TestRequestTargetFromURLString(t *testing.T) {
	bridgetest.LeakCheck(t)
	seen := make(chan targetView, 1)
	plugin := bridgetest.StartFacade(t, func(w http.ResponseWriter, r *http.Request) {
		v := newTargetView(r)
		v.RawPath, v.Host = "", "" // not compared: see above; Host is ReqInit's
		seen <- v
	})
	for _, tc := range targetCases() {
		if tc.strip != "" || tc.method != "" {
			continue
		}
		u, err := url.ParseRequestURI(tc.target) // as net/http parses it
		if err != nil {
			t.Fatal(err)
		}
		want := targetView{Scheme: u.Scheme, URLHost: u.Host, Path: u.Path, RawQuery: u.RawQuery, EscapedPath: u.EscapedPath(), RequestURI: tc.target}
		if u.User != nil {
			want.User = u.User.String()
		}
		init := bridgetest.ReqInit(http.MethodGet, u.String())
		init.RequestUri = tc.target
		if _, err := bridgetest.ScriptedHost(t, plugin.Client, &bridgetest.RequestMsg{Init: init, BodyComplete: true}); err != nil {
			t.Fatalf("%q: %v", tc.target, err)
		}
		if got, ok := bridgetest.WaitFor(t, seen, bridgetest.Promptly, "the handler"); ok && got != want {
			t.Errorf("url %q (from %q):\n got  %+v\n want %+v", u.String(), tc.target, got, want)
		}
	}
}
