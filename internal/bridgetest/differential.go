package bridgetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
)

// ErrClass is how a differential test compares client errors (spec 6.3):
// the kind of ending a client saw, not the error text, which differs
// between two servers.
type ErrClass string

// The error classes.
const (
	// ErrNone: the body ended cleanly.
	ErrNone ErrClass = "complete"
	// ErrNoResponse: Do failed, no status line arrived.
	ErrNoResponse ErrClass = "no response"
	// ErrUnexpectedEOF: an HTTP/1 body cut short (missing final chunk or
	// short of Content-Length).
	ErrUnexpectedEOF ErrClass = "unexpected EOF"
	// ErrReset: an HTTP/2 stream reset or a TCP reset.
	ErrReset ErrClass = "reset"
	// ErrOther: any other body read error.
	ErrOther ErrClass = "other error"
)

// ClassifyErr returns the class of a body read error.
func ClassifyErr(err error) ErrClass {
	switch {
	case err == nil:
		return ErrNone
	case errors.Is(err, io.ErrUnexpectedEOF):
		return ErrUnexpectedEOF
	case errors.Is(err, syscall.ECONNRESET), strings.Contains(err.Error(), "stream error"):
		// net/http's bundled HTTP/2 has no exported stream error type.
		return ErrReset
	default:
		return ErrOther
	}
}

// Arrival is one body read that returned data.
type Arrival struct {
	At    time.Duration // since the response headers arrived
	Total int           // body bytes received up to and including this read
}

// Observation is what an [http.Client] saw of one exchange, in the terms
// the differential tests compare.
type Observation struct {
	Status           int
	Header           http.Header // as received, without Date
	Close            bool        // the response announced Connection: close
	TransferEncoding []string
	Trailer          http.Header // after the body was read
	Body             []byte
	Err              ErrClass
	ErrText          string    // the error behind Err, for messages
	Arrivals         []Arrival // each read that returned data
}

// Observe sends req with client and reads the whole body, noting when each
// piece arrived. A Do error gives an Observation of class ErrNoResponse.
// req should carry a deadline: Observe itself does not bound the exchange.
func Observe(client *http.Client, req *http.Request) Observation {
	resp, err := client.Do(req)
	if err != nil {
		return Observation{Err: ErrNoResponse, ErrText: err.Error()}
	}
	defer resp.Body.Close()
	start := time.Now()
	o := Observation{
		Status:           resp.StatusCode,
		Header:           resp.Header.Clone(),
		Close:            resp.Close,
		TransferEncoding: resp.TransferEncoding,
	}
	o.Header.Del("Date")
	var body bytes.Buffer
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			body.Write(buf[:n])
			o.Arrivals = append(o.Arrivals, Arrival{At: time.Since(start), Total: body.Len()})
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			o.ErrText = err.Error()
			o.Err = ClassifyErr(err)
			break
		}
	}
	if o.Err == "" {
		o.Err = ErrNone
	}
	o.Body = body.Bytes()
	o.Trailer = resp.Trailer
	return o
}

// ArrivalOf returns when the body first held at least n bytes, and false if
// it never did.
func (o Observation) ArrivalOf(n int) (time.Duration, bool) {
	for _, a := range o.Arrivals {
		if a.Total >= n {
			return a.At, true
		}
	}
	return 0, false
}

// String summarises o for failure messages.
func (o Observation) String() string {
	if o.Err == ErrNoResponse {
		return fmt.Sprintf("no response (%s)", o.ErrText)
	}
	s := fmt.Sprintf("%d, %d body bytes %q, %s", o.Status, len(o.Body), Abbreviate(o.Body, 40), o.Err)
	if o.ErrText != "" {
		s += " (" + o.ErrText + ")"
	}
	return s
}

// Diff lists the differences a client can see between want (the direct
// server) and got (the bridge): status, header set, Connection: close,
// transfer encoding, trailers, body bytes and error class. It is empty when
// they agree.
func Diff(want, got Observation) []string {
	var diffs []string
	if want.Err != got.Err {
		diffs = append(diffs, fmt.Sprintf("error class: direct %s, bridged %s", want, got))
	}
	if want.Err == ErrNoResponse || got.Err == ErrNoResponse {
		return diffs
	}
	if want.Status != got.Status {
		diffs = append(diffs, fmt.Sprintf("status: direct %d, bridged %d", want.Status, got.Status))
	}
	diffs = append(diffs, diffHeader("header", want.Header, got.Header)...)
	diffs = append(diffs, diffHeader("trailer", want.Trailer, got.Trailer)...)
	if want.Close != got.Close {
		diffs = append(diffs, fmt.Sprintf("Connection: close: direct %v, bridged %v", want.Close, got.Close))
	}
	if !slices.Equal(want.TransferEncoding, got.TransferEncoding) {
		diffs = append(diffs, fmt.Sprintf("transfer encoding: direct %q, bridged %q", want.TransferEncoding, got.TransferEncoding))
	}
	if !bytes.Equal(want.Body, got.Body) {
		diffs = append(diffs, fmt.Sprintf("body: bridged vs direct: %s (direct %q, bridged %q)",
			FirstDiff(got.Body, want.Body), Abbreviate(want.Body, 40), Abbreviate(got.Body, 40)))
	}
	return diffs
}

func diffHeader(what string, want, got http.Header) []string {
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	var diffs []string
	for k := range keys {
		if !slices.Equal(want[k], got[k]) {
			diffs = append(diffs, fmt.Sprintf("%s %s: direct %q, bridged %q", what, k, want[k], got[k]))
		}
	}
	sort.Strings(diffs)
	return diffs
}

// Abbreviate returns at most n bytes of b as a string, marking a cut.
func Abbreviate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
