package bench

// raw: the transport's ceiling. A bare bidirectional stream of the bridge's
// own messages over the same connection, with nothing of the bridge: no
// HTTP, no copies beyond gRPC's own, the same 64 KiB slice sent again and
// again (it is never changed, so that is allowed).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"google.golang.org/grpc"

	pluginapiv1 "github.com/httpbridge/httpbridge/gen/mattermost/pluginapi/v1"
)

type (
	reqMsg  = pluginapiv1.ServeHTTPRequest
	respMsg = pluginapiv1.ServeHTTPResponse
)

// rawService is written by hand: one bidi method with the bridge's messages.
type rawService interface{ raw() }

type rawServer struct{}

func (rawServer) raw() {}

var rawDesc = grpc.ServiceDesc{
	ServiceName: "httpbridge.bench.Raw",
	HandlerType: (*rawService)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Stream",
		Handler:       serveRaw,
		ServerStreams: true,
		ClientStreams: true,
	}},
}

const rawMethod = "/httpbridge.bench.Raw/Stream"

// The first request message names the workload in init.method and its
// size in init.content_length:
//
//	upload   N bytes in chunks up, the count back in one message
//	download N bytes in chunks down
//	echo     every chunk sent back as it arrives
//	get      "hi" back in one message
//	events   N messages of 100 bytes down, each with flush
func serveRaw(_ any, ss grpc.ServerStream) error {
	stream := &grpc.GenericServerStream[reqMsg, respMsg]{ServerStream: ss}
	msg, err := stream.Recv()
	if err != nil {
		return err
	}
	init := msg.GetInit()
	size := init.GetContentLength()
	switch init.GetMethod() {
	case "upload":
		n := int64(len(msg.GetBodyChunk()))
		for !msg.GetBodyComplete() {
			if msg, err = stream.Recv(); err != nil {
				return err
			}
			n += int64(len(msg.GetBodyChunk()))
		}
		return stream.Send(&respMsg{BodyChunk: strconv.AppendInt(nil, n, 10), BodyComplete: true})
	case "download":
		for size > 0 {
			m := min(size, chunk)
			size -= m
			if err := stream.Send(&respMsg{BodyChunk: pattern[:m], BodyComplete: size == 0}); err != nil {
				return err
			}
		}
		return nil
	case "echo":
		for {
			if err := stream.Send(&respMsg{BodyChunk: msg.GetBodyChunk(), BodyComplete: msg.GetBodyComplete()}); err != nil {
				return err
			}
			if msg.GetBodyComplete() {
				return nil
			}
			if msg, err = stream.Recv(); err != nil {
				return err
			}
		}
	case "get":
		return stream.Send(&respMsg{BodyChunk: small, BodyComplete: true})
	case "events":
		for i := range size {
			if err := stream.Send(&respMsg{BodyChunk: event, Flush: true, BodyComplete: i == size-1}); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("raw: unknown workload %q", init.GetMethod())
}

// rawExchange runs one exchange of kind with size over conn and returns the
// body bytes that came back (for upload: the bytes the plugin received) and
// how many messages carried them.
func rawExchange(ctx context.Context, conn *grpc.ClientConn, kind string, size int64) (n int64, msgs int, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := conn.NewStream(ctx, &rawDesc.Streams[0], rawMethod)
	if err != nil {
		return 0, 0, err
	}
	stream := &grpc.GenericClientStream[reqMsg, respMsg]{ClientStream: cs}
	init := &pluginapiv1.ServeHTTPRequestInit{Method: kind, ContentLength: size}
	switch kind {
	case "upload", "echo":
		send := func() error {
			defer stream.CloseSend()
			first := &reqMsg{Init: init}
			for left := size; ; {
				m := min(left, chunk)
				left -= m
				msg := &reqMsg{BodyChunk: pattern[:m], BodyComplete: left == 0}
				if first != nil {
					msg.Init, first = init, nil
				}
				if err := stream.Send(msg); err != nil || left == 0 {
					return err
				}
			}
		}
		if kind == "upload" {
			if err := send(); err != nil {
				return 0, 0, err
			}
			break
		}
		// Both directions at once, as the bridge's host does it.
		sent := make(chan error, 1)
		go func() { sent <- send() }()
		defer func() {
			cancel() // unblocks the sender if the exchange failed
			if serr := <-sent; err == nil && serr != nil {
				err = serr
			}
		}()
	default:
		if err := stream.Send(&reqMsg{Init: init, BodyComplete: true}); err != nil {
			return 0, 0, err
		}
		_ = stream.CloseSend()
	}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return n, msgs, errors.New("raw: stream ended before body_complete")
		}
		if err != nil {
			return n, msgs, err
		}
		n += int64(len(msg.GetBodyChunk()))
		msgs++
		if msg.GetBodyComplete() {
			if kind == "upload" {
				// The answer is the count the plugin received.
				n, err = strconv.ParseInt(string(msg.GetBodyChunk()), 10, 64)
			}
			return n, msgs, err
		}
	}
}
