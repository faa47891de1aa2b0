"""The benchmark's Python app: a plain ASGI 3 app, no framework.

The bench package serves this one app two ways and compares them: through
the bridge (plugin.py runs it with the generated serve_plugin_hooks) and
under uvicorn behind Go's httputil.ReverseProxy. Its routes are those of
the Go plugin's handler (bench/handler_test.go) but /echo, with the same bytes:

    POST /upload             reads the body, answers its length in decimal
    GET  /download?n=N       N pattern bytes with a Content-Length, sent in
                             pieces of 64 KiB (Starlette's FileResponse size)
    GET  /small              "hi"
    GET  /events?n=N         N server-sent events of 100 bytes, each its own
                             body event with more_body=True, then the end
    GET  /events?n=N&gate=K  the same, but each event after the first waits
                             until the client opened gate K once more
    POST /next?gate=K        opens gate K once; the quick test calls it when
                             an event has reached it, so the events are paced
                             by the client: an event held back on the way, or
                             sent together with the next, stalls the stream
                             until the app gives up (GATE_TIMEOUT)
    WebSocket /ws            sends every message back as it came
                             (bench/websocket_test.go; uvicorn runs it with
                             --ws wsproto)

Every other HTTP request is 404. The app supports the lifespan protocol (both
servers run it); it needs nothing beyond the standard library.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any, Awaitable, Callable, Dict, List, MutableMapping, Tuple

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = List[Tuple[bytes, bytes]]

PIECE = 64 << 10
"""How much a download sends in one body event."""

PATTERN = bytes((i * 7 + i // 251) & 0xFF for i in range(64 << 10))
"""The bytes every body is made of, repeated: the Go side's pattern."""

EVENT = b"data: " + b"x" * 92 + b"\n\n"
"""One server-sent event of 100 bytes: the Go side's event."""

SMALL = b"hi"

GATE_TIMEOUT = 10.0
"""How long a paced event stream waits for its gate before it gives up."""

_gates: Dict[str, asyncio.Queue[None]] = {}


def _gate(key: str) -> asyncio.Queue[None]:
    return _gates.setdefault(key, asyncio.Queue())


def _query(scope: Scope) -> Dict[str, str]:
    """The query's parameters, the first value of each."""
    parsed = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return {name: values[0] for name, values in parsed.items()}


async def _respond(send: Send, status: int, body: bytes, content_type: bytes = b"text/plain; charset=utf-8") -> None:
    """Sends a whole response: start, then the body in one event."""
    headers: Headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def upload(scope: Scope, receive: Receive, send: Send) -> None:
    """Counts the request body; a body cut short gets no answer."""
    n = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        n += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    await _respond(send, 200, str(n).encode())


async def download(scope: Scope, receive: Receive, send: Send) -> None:
    """Sends n pattern bytes, declared in Content-Length."""
    try:
        n = int(_query(scope).get("n", ""))
    except ValueError:
        n = -1
    if n < 0:
        await _respond(send, 400, b"n: want a count\n")
        return
    headers: Headers = [(b"content-type", b"application/octet-stream"), (b"content-length", str(n).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    while True:
        m = min(n, PIECE)
        n -= m
        await send({"type": "http.response.body", "body": PATTERN[:m], "more_body": n > 0})
        if n <= 0:
            return


async def small(scope: Scope, receive: Receive, send: Send) -> None:
    """The 2-byte answer of the latency workloads."""
    await _respond(send, 200, SMALL)


async def events(scope: Scope, receive: Receive, send: Send) -> None:
    """Streams n events, each in a body event of its own, as Starlette's
    StreamingResponse does; with a gate, each waits for the client."""
    query = _query(scope)
    try:
        n = int(query.get("n", ""))
    except ValueError:
        n = -1
    if n < 0:
        await _respond(send, 400, b"n: want a count\n")
        return
    key = query.get("gate")
    headers: Headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    try:
        for i in range(n):
            if key is not None and i > 0:
                # Gives up, leaving the response unfinished, if the client
                # never saw the last event.
                await asyncio.wait_for(_gate(key).get(), GATE_TIMEOUT)
            await send({"type": "http.response.body", "body": EVENT, "more_body": True})
    finally:
        if key is not None:
            _gates.pop(key, None)
    await send({"type": "http.response.body", "body": b""})


async def next_event(scope: Scope, receive: Receive, send: Send) -> None:
    """Opens a paced event stream's gate once."""
    key = _query(scope).get("gate")
    if key is None:
        await _respond(send, 400, b"gate: missing\n")
        return
    _gate(key).put_nowait(None)
    await _respond(send, 200, b"")


Route = Callable[[Scope, Receive, Send], Awaitable[None]]

ROUTES: Dict[Tuple[str, str], Route] = {
    ("POST", "/upload"): upload,
    ("GET", "/download"): download,
    ("GET", "/small"): small,
    ("GET", "/events"): events,
    ("POST", "/next"): next_event,
}


async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers startup and shutdown: the app has nothing to set up."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def websocket_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Accepts the WebSocket and sends every message back as it came, text
    as text and bytes as bytes, until the client closes."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        if message.get("bytes") is not None:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            await send({"type": "websocket.send", "text": message["text"]})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI 3 entry point."""
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    if scope["type"] == "websocket" and scope["path"] == "/ws":
        await websocket_echo(scope, receive, send)
        return
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")
    route = ROUTES.get((scope["method"], scope["path"]))
    if route is None:
        await _respond(send, 404, b"404 page not found\n")
        return
    await route(scope, receive, send)
