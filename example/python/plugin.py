"""The example's plugin, in Python: a Starlette app served over the bridge.

``go run ./example -plugin-lang=python`` runs the example's host with this
plugin instead of the Go one. The host starts it as::

    PYTHONPATH=gen/python /usr/bin/python3 example/python/plugin.py --socket DIR/plugin.sock

in a directory only the host's user may enter. It serves gRPC on that unix
socket with the generated ``serve_plugin_hooks``, prints the same first line
as the Go plugin (``httpbridge-example-plugin grpc unix:///DIR/plugin.sock``)
once it serves, and stops when the host closes its standard input or on
SIGTERM; it ignores the terminal's SIGINT, since the host owns its lifetime.

The app has the routes of the Go plugin (example/plugin.go), and answers
them with the same bytes:

    GET  /                 the list of endpoints
    GET  /hello            the plugin context the host filled in
    POST /echo             streams the request body back while reading it
    POST /upload           byte count and SHA-256 of the request body
    GET  /download?size=N  N bytes (byte i is i%251), streamed
    GET  /events?count=N   N server-sent events, one per 100 ms (default 10)
    GET  /ws?ticks=N       a WebSocket that echoes each message, and sends N
                           clock ticks, one per 100 ms (default 0)
    GET  /panic            a handler that raises: 500

It needs the Python standard library, Starlette, wsproto (for /ws), and the
modules that protoc-gen-httpbridge and protoc generated in gen/python (with
grpcio and protobuf); Python 3.9 or later.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import logging
import os
import re
import signal
import sys
import threading
import urllib.parse
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from mattermost.pluginapi.v1.hooks_httpbridge import serve_plugin_hooks

HANDSHAKE = "httpbridge-example-plugin grpc "
"""Starts the first line the plugin prints on its standard output; the gRPC
target of its server follows. It lets the host wait until the plugin listens.
It is the Go plugin's (example/main.go)."""

STREAMS_GRACE = 5.0
"""Seconds the plugin gives its streams when asked to stop; the host has
normally ended them already."""

INDEX = """httpbridge demo plugin. Endpoints, relative to this page:
  GET  hello               the plugin context the host filled in
  POST echo                streams the request body back while reading it
  POST upload              byte count and SHA-256 of the request body
  GET  download?size=N     N bytes (byte i is i%251), streamed
  GET  events?count=N      N server-sent events, one per 100 ms (default 10)
  GET  ws?ticks=N          a WebSocket that echoes each message, and sends
                           N clock ticks, one per 100 ms (default 0)
  GET  panic               a handler that panics
"""

ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
"""The methods of /panic, whose pattern in the Go plugin has none."""

CHUNK_SIZE = 32 << 10
"""The size of the pieces /download writes, as the Go plugin's."""

PATTERN = bytes(i % 251 for i in range(CHUNK_SIZE + 251))
"""Byte i is i%251: /download's bytes from offset k are PATTERN[k % 251:]."""

log = logging.getLogger("plugin")

Write = Callable[[bytes], Awaitable[None]]
"""Sends one piece of a response body to the client at once."""


class AbortResponse(Exception):
    """Ends a response that has started as cut short, as Go's
    http.ErrAbortHandler does: the bridge ends the stream without completing
    the body, so the host aborts the client's response rather than let it
    look complete. The log leaves it out (see QuietAborts)."""


class QuietAborts(logging.Filter):
    """Leaves out of the bridge's log the app failures that are an
    AbortResponse, as net/http does not log http.ErrAbortHandler."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], AbortResponse))


class WriterResponse(Response):
    """A response that its handler writes piece by piece, as a Go handler
    writes to its http.ResponseWriter and flushes.

    produce gets a write function; each piece it writes reaches the client
    at once, since the bridge flushes every body event whose more_body is
    true. write raises OSError once the stream is closed, and the bridge
    cancels the handler's task when the host cancels the stream while the
    handler is not reading the request, as Go cancels the request's context.

    Starlette's StreamingResponse would stream as well, but it also reads
    receive() while it streams, to notice a client that went away, and so
    would take the request body's events from /echo, which reads them
    while it writes.
    """

    def __init__(
        self,
        produce: Callable[[Write], Awaitable[None]],
        *,
        headers: Mapping[str, str],
    ) -> None:
        self.produce = produce
        self.status_code = 200
        self.background = None
        # The headers as given: a media_type would get a charset.
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The bridge holds the start until the first body bytes, and sends
        # them together.
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})

        async def write(data: bytes) -> None:
            if data:
                await send({"type": "http.response.body", "body": data, "more_body": True})

        await self.produce(write)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def http_error(text: str, status: int, headers: Optional[Mapping[str, str]] = None) -> Response:
    """The response of Go's http.Error: the text and a newline, as plain
    text that browsers must not sniff."""
    return PlainTextResponse(text + "\n", status, headers={"X-Content-Type-Options": "nosniff", **(headers or {})})


def query_value(request: HTTPConnection, name: str) -> str:
    """The first value of the query parameter name, or "", as Go's
    url.Values.Get (Starlette's query_params.get gives the last)."""
    values = request.query_params.getlist(name)
    return values[0] if values else ""


_INT = re.compile(r"[+-]?[0-9]+")


def parse_int(text: str) -> Optional[int]:
    """Reads text as Go's strconv.ParseInt(text, 10, 64) does; None where
    that fails."""
    if not _INT.fullmatch(text):
        return None
    value = int(text)
    return value if -(1 << 63) <= value < 1 << 63 else None


def why(err: BaseException) -> str:
    """Says for the log why a response stopped early."""
    if isinstance(err, asyncio.CancelledError):
        # The bridge cancels the handler when the host cancels the stream.
        return "the client went away"
    return str(err) or type(err).__name__


async def index(request: Request) -> Response:
    """The list of endpoints."""
    return PlainTextResponse(INDEX)


async def hello(request: Request) -> Response:
    """The plugin context the host filled in, and the path."""
    # The plugin context travels in the request's init, beside the fields
    # the scope has; the host's Init filled it in. The bridge puts the init
    # in the scope's extensions.
    init: Any = request.scope.get("extensions", {}).get("httpbridge", {}).get("init")
    pc = init.plugin_context if init is not None else None
    # The target the host received, before it stripped /plugins/demo.
    received = init.request_uri if init is not None and init.request_uri else request.url.path
    return PlainTextResponse(
        f"hello from the plugin, pid {os.getpid()}\n"
        f"request id: {pc.request_id if pc else ''}\n"
        f"user agent: {pc.user_agent if pc else ''}\n"
        f"remote ip:  {pc.ip_address if pc else ''}\n"
        f"path:       {request.scope['path']} (the host received {received})\n"
    )


async def echo(request: Request) -> Response:
    """The request body, sent back piece by piece as it arrives."""

    # The bridge lets a handler read the body while it writes, as in Go.
    async def produce(write: Write) -> None:
        n = 0
        try:
            async for chunk in request.stream():
                try:
                    # Each piece goes on at once, so the client gets its
                    # bytes back as it sends them.
                    await write(chunk)
                except (OSError, asyncio.CancelledError) as err:
                    log.info("echo: stopped after %d bytes: %s", n, why(err))
                    raise
                n += len(chunk)
        except ClientDisconnect:
            # The upload broke off. Abort, so that the client cannot take
            # the echo for a complete one.
            log.info("echo: stopped after %d bytes: the request body was cut short", n)
            raise AbortResponse from None

    return WriterResponse(produce, headers={"Content-Type": "application/octet-stream"})


async def upload(request: Request) -> Response:
    """The byte count and SHA-256 of the request body."""
    digest = hashlib.sha256()
    n = 0
    try:
        async for chunk in request.stream():
            digest.update(chunk)
            n += len(chunk)
    except ClientDisconnect:
        # An upload that broke off ends in http.disconnect, never in a
        # complete body: it is never mistaken for a complete one.
        log.info("upload: stopped after %d bytes: the request body was cut short", n)
        return http_error("incomplete upload", 400)
    return PlainTextResponse(f"received {n} bytes\nsha256 {digest.hexdigest()}\n")


async def download(request: Request) -> Response:
    """N bytes, where byte i is i%251, written in pieces of 32 KiB."""
    text = query_value(request, "size")
    parsed = parse_int(text) if text else 1 << 20
    if parsed is None or parsed < 0:
        return http_error("size: want a number of bytes", 400)
    size = parsed

    async def produce(write: Write) -> None:
        sent = 0
        while sent < size:
            at = sent % 251
            chunk = PATTERN[at : at + min(CHUNK_SIZE, size - sent)]
            # write waits while the client is slower than the plugin, and
            # fails once it has gone away.
            try:
                await write(chunk)
            except (OSError, asyncio.CancelledError) as err:
                log.info("download: stopped after %d of %d bytes: %s", sent, size, why(err))
                raise
            sent += len(chunk)

    return WriterResponse(
        produce,
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
    )


async def events(request: Request) -> Response:
    """Server-sent events, one every 100 ms, each sent as it is written."""
    text = query_value(request, "count")
    parsed = parse_int(text) if text else 10
    if parsed is None or parsed < 1:
        return http_error("count: want a positive number", 400)
    count = parsed

    async def produce(write: Write) -> None:
        sent = 0
        try:
            for i in range(1, count + 1):
                if i > 1:
                    await asyncio.sleep(0.1)
                now = datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3]
                # Each write reaches the client at once, without waiting
                # for more to gather.
                await write(f"id: {i}\ndata: event {i} of {count} at {now}\n\n".encode())
                sent = i
        except asyncio.CancelledError:
            # The bridge cancels the handler when the host cancels the
            # stream, as Go cancels r.Context().
            log.info("events: the client went away after %d of %d events", sent, count)
            raise
        except OSError as err:
            log.info("events: stopped after %d of %d events: %s", sent, count, err)
            raise

    return WriterResponse(produce, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})


def parse_ticks(text: str) -> Optional[int]:
    """The ticks parameter of /ws: "" is 0; None if it is no number of 0
    or more, as the Go plugin reads it (strconv.Atoi)."""
    if not text:
        return 0
    value = parse_int(text)
    return value if value is not None and value >= 0 else None


TICKS_ERROR = "ticks: want a number, 0 or more"

WEBSOCKET_VERSION = {"Sec-Websocket-Version": "13"}
"""gorilla/websocket's refusals name the version it speaks: the Go plugin's
do."""


async def ws_without_upgrade(request: Request) -> Response:
    """GET /ws that asks for no WebSocket (curl, say): 400, as the Go
    plugin's gorilla/websocket answers it."""
    if parse_ticks(query_value(request, "ticks")) is None:
        return http_error(TICKS_ERROR, 400)
    return http_error("Bad Request", 400, WEBSOCKET_VERSION)


def same_origin(websocket: WebSocket) -> bool:
    """Whether a browser's handshake comes from a page of this site: no
    Origin (not a browser), or one whose host is the request's Host, as
    gorilla/websocket checks by default. Without the check any site a user
    visits could open a session with the user's cookies. The bridge passes
    Origin and Host on unchanged."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    try:
        netloc = urllib.parse.urlsplit(origin).netloc
    except ValueError:
        return False
    return netloc.rpartition("@")[2].lower() == websocket.headers.get("host", "").lower()


class WebSocketSession:
    """GET /ws as a WebSocket: echoes each text or binary message, and
    sends ?ticks=N clock ticks, one every 100 ms, while it does. An ASGI
    app (a class, for Starlette's WebSocketRoute), so that it can refuse a
    handshake with any response."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.receive()  # websocket.connect: the handshake to answer
        ticks = parse_ticks(query_value(websocket, "ticks"))
        if ticks is None:
            await refuse(http_error(TICKS_ERROR, 400), scope, receive, send)
            return
        if not same_origin(websocket):
            log.info("ws: refused: origin %s is not this site", websocket.headers.get("origin"))
            await refuse(http_error("Forbidden", 403, WEBSOCKET_VERSION), scope, receive, send)
            return
        await websocket.accept()
        ticker = asyncio.ensure_future(send_ticks(websocket, ticks))
        n = 0
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    code = message.get("code", 1000)
                    if code in (1000, 1001, 1005):
                        # The bridge has answered the close frame already.
                        log.info("ws: the client closed the session after %d messages", n)
                    else:
                        log.info("ws: stopped after %d messages: close %d", n, code)
                    return
                text = message.get("text")
                if text is not None:
                    await websocket.send_text(text)
                else:
                    await websocket.send_bytes(message.get("bytes") or b"")
                n += 1
        except OSError as err:
            log.info("ws: stopped after %d messages: %s", n, why(err))
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)


async def refuse(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
    """Refuses a WebSocket handshake with an HTTP response, through the
    ASGI denial extension (websocket.http.response.start and .body), which
    the bridge supports: websocket.close before accepting would give a
    bare 403."""

    async def send_denial(message: Message) -> None:
        await send({**message, "type": "websocket." + message["type"]})

    await response(scope, receive, send_denial)


async def send_ticks(websocket: WebSocket, count: int) -> None:
    """Sends count clock ticks, 100 ms apart, beside the echo: the bridge
    frames the messages of both in the order they are sent."""
    for i in range(1, count + 1):
        if i > 1:
            await asyncio.sleep(0.1)
        now = datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3]
        try:
            await websocket.send_text(f"tick {i} of {count} at {now}")
        except (OSError, RuntimeError):
            return  # the session is over: the echo's loop says why


async def panic(request: Request) -> Response:
    """Fails: the client gets 500, and the plugin goes on serving."""
    raise RuntimeError("the /panic endpoint was called")


async def http_exception(request: Request, exc: Exception) -> Response:
    """Answers 404 and 405 with the bodies Go's ServeMux gives."""
    assert isinstance(exc, HTTPException)
    headers: Dict[str, str] = dict(exc.headers or {})
    if "Allow" in headers:
        # Go's ServeMux lists the methods sorted; Starlette in set order.
        headers["Allow"] = ", ".join(sorted(headers["Allow"].split(", ")))
    text = "404 page not found" if exc.status_code == 404 else exc.detail
    return http_error(text, exc.status_code, headers)


async def server_error(request: Request, exc: Exception) -> Response:
    """Answers a handler's exception with the 500 that net/http gives a
    panic. Starlette then raises the exception again, and the bridge logs
    it with its traceback."""
    return http_error("Internal Server Error", 500)


def new_app() -> Starlette:
    """The plugin's HTTP side: an ordinary Starlette app, unaware of gRPC."""
    routes: List[BaseRoute] = [
        Route("/", index, methods=["GET"]),
        Route("/hello", hello, methods=["GET"]),
        Route("/echo", echo, methods=["POST"]),
        Route("/upload", upload, methods=["POST"]),
        Route("/download", download, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
        # The same path for a WebSocket (a websocket scope, when the host
        # lets the client upgrade) and for a plain request (an http scope).
        WebSocketRoute("/ws", WebSocketSession()),
        Route("/ws", ws_without_upgrade, methods=["GET"]),
        Route("/panic", panic, methods=ANY_METHOD),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_exception, Exception: server_error},
    )
    # "/hello/" is not "/hello", as in Go's ServeMux. A redirect would also
    # lose the prefix under which the host serves the plugin.
    app.router.redirect_slashes = False
    return app


async def run_plugin(socket: str) -> None:
    """Serves the app over gRPC on the unix socket at the path socket, in a
    directory the host made private, until the host closes the plugin's
    standard input or SIGTERM arrives. Stopping the server removes the
    socket."""
    loop = asyncio.get_running_loop()
    stopping: List[str] = []

    def stop(reason: str) -> None:
        if not stopping:
            stopping.append(reason)
            log.info("%s: stopping", reason)
            # serve_plugin_hooks stops its server when cancelled, giving
            # the streams in progress STREAMS_GRACE seconds.
            serving.cancel()

    def wait_for_host() -> None:
        # The host never writes to our standard input: it closes it to stop
        # us, and it closes when the host dies.
        try:
            while os.read(sys.stdin.fileno(), 1 << 12):
                pass
        except (OSError, ValueError):
            pass  # no standard input: no host to wait for
        try:
            loop.call_soon_threadsafe(stop, "the host closed our standard input")
        except RuntimeError:
            pass  # the loop is closed: we stopped already

    def ready(port: int) -> None:
        # serve_plugin_hooks stops on SIGINT and SIGTERM. Ctrl-C in a
        # terminal reaches the whole process group, but the host owns the
        # plugin's lifetime: it stops the plugin once its own requests are
        # done, and the plugin must keep serving them until then. So SIGINT
        # is ignored, and SIGTERM handled here to log it.
        loop.add_signal_handler(signal.SIGTERM, stop, "terminated")
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # The server serves, so the host may connect as soon as it reads this.
        print(f"{HANDSHAKE}unix://{socket}", flush=True)
        threading.Thread(target=wait_for_host, name="stdin", daemon=True).start()

    serving = asyncio.ensure_future(
        serve_plugin_hooks(new_app(), "unix:" + socket, ready=ready, grace=STREAMS_GRACE)
    )
    try:
        await serving
    except asyncio.CancelledError:
        if not stopping:
            raise
    log.info("stopped")


def main(argv: Optional[List[str]] = None) -> int:
    # Until serve_plugin_hooks serves: see ready in run_plugin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parser = argparse.ArgumentParser(
        description="The httpbridge example's plugin in Python. The example's host starts it (go run ./example -plugin-lang=python)."
    )
    parser.add_argument(
        "--socket",
        required=True,
        metavar="PATH",
        help="the unix socket to serve gRPC on, in a directory only this user can enter",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s plugin: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("httpbridge").addFilter(QuietAborts())
    try:
        asyncio.run(run_plugin(args.socket))
    except Exception as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
