"""A plain ASGI 3 app, no framework, with the routes of the cross-language
tests (conformance/python_test.go). Each route is one coroutine; see
support.py for what the apps share.
"""

from __future__ import annotations

import asyncio
import hashlib
import urllib.parse
from typing import Any, Awaitable, Callable, Dict, List, MutableMapping, Sequence, Tuple

import support

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Headers = Sequence[Tuple[bytes, bytes]]

TEXT = (b"content-type", b"text/plain; charset=utf-8")

gates = support.AsyncGates()
records = support.AsyncRecords()


async def start(send: Send, status: int, headers: Headers = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})


async def body(send: Send, data: bytes, more: bool = False) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def respond(send: Send, status: int, data: bytes, headers: Headers = (TEXT,), length: bool = True) -> None:
    """A whole response in one body event, with a Content-Length if length."""
    head = list(headers)
    if length:
        head.append((b"content-length", str(len(data)).encode()))
    await start(send, status, head)
    await body(send, data)


async def read_all(receive: Receive) -> bytes:
    data = bytearray()
    while True:
        event = await receive()
        if event["type"] != "http.request":
            raise OSError("client disconnected")
        data += event.get("body", b"")
        if not event.get("more_body", False):
            return bytes(data)


class Request:
    """The parts of a scope the routes use."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query: Dict[str, List[str]] = urllib.parse.parse_qs(scope["query_string"].decode("latin-1"))

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    def arg_int(self, name: str, default: int) -> int:
        return support.query_int(self.query, name, default)


Route = Callable[[Request, Receive, Send], Awaitable[None]]


async def status(req: Request, receive: Receive, send: Send) -> None:
    code = int(req.path.rsplit("/", 1)[1])
    data = support.status_body(code)
    headers = [TEXT]
    if code == 304:
        headers = [(b"etag", b'"v1"')]
    if code in (301, 302, 303, 307, 308):
        headers.append((b"location", b"/elsewhere"))
    if req.arg("body"):
        data = b"x"  # a body on a status that allows none
    await respond(send, code, data or b"", headers, length=data is not None)


async def headers(req: Request, receive: Receive, send: Send) -> None:
    await respond(
        send,
        200,
        b"ok",
        [
            TEXT,
            (b"x-multi", b"1"),
            (b"set-cookie", b"a=1"),
            (b"x-multi", b"2"),
            (b"set-cookie", b"b=2; Path=/; HttpOnly"),
            (b"cache-control", b"no-store"),
        ],
    )


async def empty(req: Request, receive: Receive, send: Send) -> None:
    await start(send, 200)
    await body(send, b"")


async def length_set(req: Request, receive: Receive, send: Send) -> None:
    await respond(send, 200, b"hello")


async def length_over(req: Request, receive: Receive, send: Send) -> None:
    """More body than the declared Content-Length."""
    await start(send, 200, [TEXT, (b"content-length", b"3")])
    await body(send, b"abcdef")


async def length_unset(req: Request, receive: Receive, send: Send) -> None:
    await respond(send, 200, b"hello", length=False)


async def pieces(req: Request, receive: Receive, send: Send) -> None:
    await start(send, 200, [TEXT])
    for piece in (b"aaa", b"bbb", b"ccc"):
        await body(send, piece, more=True)
    await body(send, b"")


async def big(req: Request, receive: Receive, send: Send) -> None:
    n = req.arg_int("n", 1 << 20)
    head = [(b"content-type", b"application/octet-stream")]
    if req.arg("length"):
        head.append((b"content-length", str(n).encode()))
    await start(send, 200, head)
    if req.arg("one"):
        await body(send, b"".join(support.pattern(n, n)))
        return
    for piece in support.pattern(n, 100_000):
        await body(send, piece, more=True)
    await body(send, b"")


async def large_header(req: Request, receive: Receive, send: Send) -> None:
    n = req.arg_int("n", 8000)
    await respond(send, 200, b"ok", [TEXT, (b"x-large", b"v" * n)])


async def header_value(req: Request, receive: Receive, send: Send) -> None:
    """A header value of non-ASCII text, encoded as the query says."""
    await respond(send, 200, b"ok", [TEXT, (b"x-value", "café".encode(req.arg("encoding", "utf-8")))])


async def many_headers(req: Request, receive: Receive, send: Send) -> None:
    n = req.arg_int("n", 100)
    await respond(send, 200, b"ok", [TEXT] + [(f"x-h{i}".encode(), str(i).encode()) for i in range(n)])


async def request_view(req: Request, receive: Receive, send: Send) -> None:
    data = await read_all(receive)
    view = support.request_view(
        method=req.method,
        path=req.path,
        raw_path=req.scope["raw_path"].decode("latin-1") if req.scope.get("raw_path") is not None else None,
        query=req.scope["query_string"].decode("latin-1"),
        http_version=req.scope["http_version"],
        scheme=req.scope["scheme"],
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in req.scope["headers"]],
        body=data,
    )
    await respond(send, 200, view, [(b"content-type", b"application/json")])


async def where(req: Request, receive: Receive, send: Send) -> None:
    view = support.where_view(
        method=req.method,
        path=req.path,
        raw_path=req.scope["raw_path"].decode("latin-1") if req.scope.get("raw_path") is not None else None,
        query=req.scope["query_string"].decode("latin-1"),
    )
    await respond(send, 200, view, [(b"content-type", b"application/json")])


async def echo(req: Request, receive: Receive, send: Send) -> None:
    """Echoes each body event as it arrives, streamed: full duplex."""
    started = False
    while True:
        event = await receive()
        if event["type"] != "http.request":
            return  # the client is gone
        if not started:
            await start(send, 200, [(b"content-type", b"application/octet-stream")])
            started = True
        more = event.get("more_body", False)
        await body(send, event.get("body", b""), more=more)
        if not more:
            return


async def upload(req: Request, receive: Receive, send: Send) -> None:
    digest = hashlib.sha256()
    n = 0
    while True:
        event = await receive()
        if event["type"] != "http.request":
            return
        chunk = event.get("body", b"")
        digest.update(chunk)
        n += len(chunk)
        if not event.get("more_body", False):
            break
    await respond(send, 200, f"{n} {digest.hexdigest()}\n".encode())


async def download(req: Request, receive: Receive, send: Send) -> None:
    n = req.arg_int("n", 1 << 20)
    await start(send, 200, [(b"content-type", b"application/octet-stream"), (b"content-length", str(n).encode())])
    for piece in support.pattern(n, 256 << 10):
        await body(send, piece, more=True)
    await body(send, b"")


async def sse(req: Request, receive: Receive, send: Send) -> None:
    """n events; each after the first waits for GET /next?id=..."""
    key = req.arg("id")
    await start(send, 200, [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")])
    try:
        for i in range(req.arg_int("n", 3)):
            if i > 0 and not await gates.wait(key):
                raise RuntimeError("no /next from the test")
            await body(send, f"data: {i}\n\n".encode(), more=True)
        await body(send, b"")
    finally:
        gates.drop(key)


async def next_event(req: Request, receive: Receive, send: Send) -> None:
    gates.open(req.arg("id"))
    await respond(send, 200, b"ok\n")


async def abort(req: Request, receive: Receive, send: Send) -> None:
    """Records every receive() event of an upload the client abandons."""
    record = records.new(req.arg("id"))
    while True:
        event = await receive()
        if event["type"] == "http.request":
            more = event.get("more_body", False)
            record.add_request(event.get("body", b""), more)
            await records.changed()
            if not more:
                record.finish("complete")
                break
        else:
            record.finish(event["type"])
            break
    await records.changed()
    if record.events[-1] == "complete":
        await respond(send, 200, b"complete\n")


async def record(req: Request, receive: Receive, send: Send) -> None:
    data = await records.wait(req.arg("id"), req.arg_int("min", 0), bool(req.arg("done")))
    await respond(send, 200, data, [(b"content-type", b"application/json")])


async def raise_before(req: Request, receive: Receive, send: Send) -> None:
    raise RuntimeError("boom before the response started")


async def raise_after(req: Request, receive: Receive, send: Send) -> None:
    await start(send, 200, [TEXT])
    await body(send, b"partial", more=True)
    raise RuntimeError("boom after the response started")


async def return_early(req: Request, receive: Receive, send: Send) -> None:
    await start(send, 200, [TEXT])
    await body(send, b"partial", more=True)


async def background(req: Request, receive: Receive, send: Send) -> None:
    """Streams three pieces while a second task listens for
    http.disconnect, as Starlette's StreamingResponse does, then runs a
    background step that records that it ran."""
    record = records.new(req.arg("id"))

    async def stream() -> None:
        await start(send, 200, [TEXT])
        for piece in (b"one\n", b"two\n", b"three\n"):
            await body(send, piece, more=True)
        await body(send, b"")

    async def listen() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    streaming = asyncio.ensure_future(stream())
    listening = asyncio.ensure_future(listen())
    done, pending = await asyncio.wait({streaming, listening}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if streaming in done:
        streaming.result()
    await asyncio.sleep(0.01)
    record.finish("background")
    await records.changed()


async def stats(req: Request, receive: Receive, send: Send) -> None:
    await respond(send, 200, await support.stats_async(), [(b"content-type", b"application/json")])


async def not_found(req: Request, receive: Receive, send: Send) -> None:
    await respond(send, 404, b"not found\n")


ROUTES: Dict[str, Route] = {
    "/headers": headers,
    "/empty": empty,
    "/length-set": length_set,
    "/length-unset": length_unset,
    "/length-over": length_over,
    "/pieces": pieces,
    "/big": big,
    "/large-header": large_header,
    "/many-headers": many_headers,
    "/header-value": header_value,
    "/echo": echo,
    "/duplex": echo,
    "/upload": upload,
    "/download": download,
    "/sse": sse,
    "/next": next_event,
    "/abort": abort,
    "/record": record,
    "/raise-before": raise_before,
    "/raise-after": raise_after,
    "/return-early": return_early,
    "/background": background,
    "/stats": stats,
}


def route(path: str) -> Route:
    if path in ROUTES:
        return ROUTES[path]
    if path.startswith("/status/") and path[len("/status/") :].isdigit():
        return status
    if path == "/request" or path.startswith("/request/"):
        return request_view
    if path == "/where" or path.startswith("/where/"):
        return where
    return not_found


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")
    req = Request(scope)
    await route(req.path)(req, receive, send)


__all__ = ["app"]
