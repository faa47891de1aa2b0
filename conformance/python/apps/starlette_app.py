"""A Starlette app with the routes of the cross-language tests
(conformance/python_test.go), written as a Starlette user would: request
and response objects, StreamingResponse for what streams. The two routes
that must see every ASGI event (full-duplex echo, abandoned upload) are
ASGI endpoints built on Starlette's Request; see support.py for what the
apps share.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from typing import Any, AsyncIterator, Awaitable, Callable, MutableMapping

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

import support

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

ALL = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]

gates = support.AsyncGates()
records = support.AsyncRecords()


def arg_int(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name)
    return int(value) if value else default


async def status(request: Request) -> Response:
    code: int = request.path_params["code"]
    data = support.status_body(code)
    headers = {}
    if code == 304:
        headers["etag"] = '"v1"'
    if code in (301, 302, 303, 307, 308):
        headers["location"] = "/elsewhere"
    if request.query_params.get("body"):
        data = b"x"  # a body on a status that allows none
    return Response(data, status_code=code, headers=headers, media_type=None if code == 304 else "text/plain")


async def headers(request: Request) -> Response:
    response = PlainTextResponse("ok", headers={"cache-control": "no-store"})
    response.raw_headers.append((b"x-multi", b"1"))
    response.raw_headers.append((b"x-multi", b"2"))
    response.set_cookie("a", "1", path=None)  # type: ignore[arg-type]
    response.set_cookie("b", "2", httponly=True)
    return response


async def empty(request: Request) -> Response:
    return Response(b"")


async def length_set(request: Request) -> Response:
    return PlainTextResponse("hello")


async def length_over(request: Request) -> Response:
    """More body than the declared Content-Length."""
    return PlainTextResponse("abcdef", headers={"content-length": "3"})


async def one_piece() -> AsyncIterator[bytes]:
    yield b"hello"


async def length_unset(request: Request) -> Response:
    return StreamingResponse(one_piece(), media_type="text/plain")


async def three_pieces() -> AsyncIterator[bytes]:
    for piece in (b"aaa", b"bbb", b"ccc"):
        yield piece


async def pieces(request: Request) -> Response:
    return StreamingResponse(three_pieces(), media_type="text/plain")


async def big(request: Request) -> Response:
    n = arg_int(request, "n", 1 << 20)
    headers = {"content-length": str(n)} if request.query_params.get("length") else None
    if request.query_params.get("one"):
        return Response(b"".join(support.pattern(n, n)), media_type="application/octet-stream")
    return StreamingResponse(support.pattern(n, 100_000), headers=headers, media_type="application/octet-stream")


async def large_header(request: Request) -> Response:
    return PlainTextResponse("ok", headers={"x-large": "v" * arg_int(request, "n", 8000)})


async def header_value(request: Request) -> Response:
    """A header value of non-ASCII text, encoded as the query says."""
    response = PlainTextResponse("ok")
    response.raw_headers.append((b"x-value", "café".encode(request.query_params.get("encoding", "utf-8"))))
    return response


async def many_headers(request: Request) -> Response:
    n = arg_int(request, "n", 100)
    return PlainTextResponse("ok", headers={f"x-h{i}": str(i) for i in range(n)})


async def request_view(request: Request) -> Response:
    data = await request.body()
    scope = request.scope
    view = support.request_view(
        method=request.method,
        path=scope["path"],
        raw_path=scope["raw_path"].decode("latin-1") if scope.get("raw_path") is not None else None,
        query=scope["query_string"].decode("latin-1"),
        http_version=scope["http_version"],
        scheme=request.url.scheme,
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
        body=data,
    )
    return Response(view, media_type="application/json")


async def where(request: Request) -> Response:
    scope = request.scope
    view = support.where_view(
        method=request.method,
        path=scope["path"],
        raw_path=scope["raw_path"].decode("latin-1") if scope.get("raw_path") is not None else None,
        query=scope["query_string"].decode("latin-1"),
    )
    return Response(view, media_type="application/json")


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


class Duplex:
    """Echoes the body as it arrives: full duplex.

    An ASGI endpoint, because StreamingResponse listens for a disconnect
    with receive() and would take body events from Request.stream().
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]})
        try:
            async for chunk in request.stream():
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except ClientDisconnect:
            return
        await send({"type": "http.response.body", "body": b""})


async def upload(request: Request) -> Response:
    digest = hashlib.sha256()
    n = 0
    async for chunk in request.stream():
        digest.update(chunk)
        n += len(chunk)
    return PlainTextResponse(f"{n} {digest.hexdigest()}\n")


async def download(request: Request) -> Response:
    n = arg_int(request, "n", 1 << 20)
    return StreamingResponse(
        support.pattern(n, 256 << 10), headers={"content-length": str(n)}, media_type="application/octet-stream"
    )


async def events(key: str, n: int) -> AsyncIterator[bytes]:
    try:
        for i in range(n):
            if i > 0 and not await gates.wait(key):
                raise RuntimeError("no /next from the test")
            yield f"data: {i}\n\n".encode()
    finally:
        gates.drop(key)


async def sse(request: Request) -> Response:
    key = request.query_params.get("id", "")
    return StreamingResponse(
        events(key, arg_int(request, "n", 3)), media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )


async def next_event(request: Request) -> Response:
    gates.open(request.query_params.get("id", ""))
    return PlainTextResponse("ok\n")


class Abort:
    """Records the ASGI events under Request.stream() of an upload the
    client abandons, and whether Starlette raised ClientDisconnect."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        record = records.new(Request(scope).query_params.get("id", ""))

        async def recording() -> MutableMapping[str, Any]:
            event = await receive()
            if event["type"] == "http.request":
                record.add_request(event.get("body", b""), event.get("more_body", False))
            else:
                record.events.append(event["type"])
            await records.changed()
            return event

        try:
            async for _ in Request(scope, recording).stream():
                pass
        except ClientDisconnect:
            record.finish("ClientDisconnect")
            await records.changed()
            return
        record.finish("complete")
        await records.changed()
        await PlainTextResponse("complete\n")(scope, receive, send)


async def record(request: Request) -> Response:
    data = await records.wait(
        request.query_params.get("id", ""), arg_int(request, "min", 0), bool(request.query_params.get("done"))
    )
    return Response(data, media_type="application/json")


async def raise_before(request: Request) -> Response:
    raise RuntimeError("boom before the response started")


async def partial_then_raise() -> AsyncIterator[bytes]:
    yield b"partial"
    raise RuntimeError("boom after the response started")


async def raise_after(request: Request) -> Response:
    return StreamingResponse(partial_then_raise(), media_type="text/plain")


async def background(request: Request) -> Response:
    """A streamed response with a background task, which records that it
    ran once the response is complete (Starlette runs it then)."""
    record = records.new(request.query_params.get("id", ""))

    async def finish() -> None:
        await asyncio.sleep(0.01)
        record.finish("background")
        await records.changed()

    return StreamingResponse(three_pieces(), media_type="text/plain", background=BackgroundTask(finish))


async def stats(request: Request) -> Response:
    return Response(await support.stats_async(), media_type="application/json")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield


app = Starlette(
    routes=[
        Route("/status/{code:int}", status),
        Route("/headers", headers),
        Route("/empty", empty),
        Route("/length-set", length_set),
        Route("/length-unset", length_unset),
        Route("/length-over", length_over),
        Route("/pieces", pieces),
        Route("/big", big),
        Route("/large-header", large_header),
        Route("/many-headers", many_headers),
        Route("/header-value", header_value),
        Route("/request", request_view, methods=ALL),
        Route("/request{rest:path}", request_view, methods=ALL),
        Route("/where", where, methods=ALL),
        Route("/where{rest:path}", where, methods=ALL),
        Route("/echo", echo, methods=["POST", "PUT"]),
        Route("/duplex", Duplex(), methods=["POST", "PUT"]),
        Route("/upload", upload, methods=["POST", "PUT"]),
        Route("/download", download),
        Route("/sse", sse),
        Route("/next", next_event),
        Route("/abort", Abort(), methods=["POST", "PUT"]),
        Route("/record", record),
        Route("/raise-before", raise_before),
        Route("/raise-after", raise_after),
        Route("/background", background),
        Route("/stats", stats),
    ],
    lifespan=lifespan,
)
