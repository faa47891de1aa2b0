"""End to end over real gRPC: a grpc.aio server on 127.0.0.1:0 serving the
generated PluginHooksBridge, and a grpc.aio client channel with the
generated stub playing the host."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, List, Tuple

import grpc
import pytest

from conftest import Out, chunk, init, out
from mattermost.pluginapi.v1 import hooks_pb2_grpc
from mattermost.pluginapi.v1.hooks_httpbridge import PluginHooksBridge, serve_plugin_hooks

DISCONNECT = {"type": "http.disconnect"}


@contextlib.asynccontextmanager
async def plugin_server(app: Any, **options: Any) -> AsyncIterator[hooks_pb2_grpc.PluginHooksStub]:
    """Serves app with the generated servicer; yields a client stub."""
    servicer = PluginHooksBridge(app, **options)
    server = grpc.aio.server()
    hooks_pb2_grpc.add_PluginHooksServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await servicer.startup()
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield hooks_pb2_grpc.PluginHooksStub(channel)
    finally:
        await server.stop(None)
        await servicer.shutdown()


async def exchange(stub: hooks_pb2_grpc.PluginHooksStub, messages: List[Any]) -> Tuple[List[Out], grpc.StatusCode]:
    """Sends messages, half-closes, and collects the response."""
    call = stub.ServeHTTP()
    for msg in messages:
        await call.write(msg)
    await call.done_writing()
    outs: List[Out] = []
    try:
        async for msg in call:
            outs.append(out(msg))
    except grpc.aio.AioRpcError:
        pass
    return outs, await call.code()


async def test_asgi_over_grpc_with_serve_plugin_hooks():
    seen: List[Any] = []
    lifespan: List[str] = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                lifespan.append(message["type"])
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        body = b""
        while True:
            event = await receive()
            body += event["body"]
            if not event["more_body"]:
                break
        seen.append((scope["method"], scope["path"], scope["query_string"], body))
        await send({"type": "http.response.start", "status": 201, "headers": [(b"x-echo", b"1")]})
        await send({"type": "http.response.body", "body": body.upper(), "more_body": True})
        await send({"type": "http.response.body", "body": b"x" * 70000})

    port: "asyncio.Future[int]" = asyncio.get_running_loop().create_future()
    serving = asyncio.ensure_future(serve_plugin_hooks(app, "127.0.0.1:0", ready=port.set_result, grace=None))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{await asyncio.wait_for(port, 5)}") as channel:
            stub = hooks_pb2_grpc.PluginHooksStub(channel)
            outs, code = await exchange(
                stub, [init("/up?q=1", "POST", body=b"hello ", complete=False), chunk(b"world", True)]
            )
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
    assert code == grpc.StatusCode.OK
    assert seen == [("POST", "/up", b"q=1", b"hello world")]
    assert [(o.status, o.headers, len(o.body), o.flush, o.complete) for o in outs] == [
        (201, [("x-echo", ["1"])], 11, True, False),
        (None, None, 65536, False, False),
        (None, None, 70000 - 65536, False, True),
    ]
    assert outs[0].body == b"HELLO WORLD"
    assert lifespan == ["lifespan.startup", "lifespan.shutdown"]


async def test_wsgi_over_grpc():
    def app(environ, start_response):
        body = environ["wsgi.input"].read()
        reply = b"%s %s %s" % (environ["REQUEST_METHOD"].encode(), environ["PATH_INFO"].encode(), body)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(reply)))])
        return [reply]

    async with plugin_server(app) as stub:
        outs, code = await exchange(
            stub, [init("/wsgi", "PUT", body=b"ab", complete=False), chunk(b"cd"), chunk(b"", True)]
        )
    assert code == grpc.StatusCode.OK
    assert outs == [
        Out(200, [("content-type", ["text/plain"]), ("content-length", ["14"])], b"PUT /wsgi abcd", False, True)
    ]


async def test_failure_after_start_is_aborted_over_grpc():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("boom")

    async with plugin_server(app, lifespan="off") as stub:
        outs, code = await exchange(stub, [init()])
    assert outs == [Out(200, [], b"part", True, False)]
    assert code == grpc.StatusCode.ABORTED


async def test_host_cancel_mid_upload_gives_disconnect_over_grpc():
    """The host cancels the stream while the app waits for the next chunk:
    gRPC ends the pending read and the app gets http.disconnect."""
    got: List[Any] = []
    ended = asyncio.Event()
    waiting = asyncio.Event()

    async def app(scope, receive, send):
        try:
            while True:
                if got:
                    waiting.set()  # receive() below runs up to its read before the test resumes
                event = await receive()
                got.append(event)
                if event["type"] != "http.request" or not event["more_body"]:
                    break
        finally:
            ended.set()

    async with plugin_server(app, lifespan="off") as stub:
        call = stub.ServeHTTP()
        await call.write(init("/up", "POST", body=b"a", complete=False))
        await asyncio.wait_for(waiting.wait(), 5)
        call.cancel()
        await asyncio.wait_for(ended.wait(), 5)
    assert got == [{"type": "http.request", "body": b"a", "more_body": True}, DISCONNECT]


async def test_cancelled_receive_over_grpc():
    """asyncio.wait_for(receive(), t), anyio's move_on_after or Starlette's
    Request.is_disconnected() cancel a receive() that waits for a chunk:
    grpc.aio then loses the chunk, later reads return EOF at once, and the
    host's next write hangs."""
    got: List[Any] = []
    timed_out = asyncio.Event()

    async def app(scope, receive, send):
        got.append(await receive())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(receive(), 0.05)  # no chunk comes before timed_out
        timed_out.set()
        while True:
            event = await receive()
            got.append(event)
            if event["type"] != "http.request" or not event["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    async with plugin_server(app, lifespan="off") as stub:
        call = stub.ServeHTTP()
        await call.write(init("/up", "POST", body=b"a", complete=False))
        await asyncio.wait_for(timed_out.wait(), 5)
        outs: List[Out] = []

        async def host() -> None:
            await call.write(chunk(b"b"))
            await call.write(chunk(b"c", True))
            await call.done_writing()
            async for msg in call:
                outs.append(out(msg))

        try:
            await asyncio.wait_for(host(), 1)
        finally:
            call.cancel()
    assert got == [
        {"type": "http.request", "body": b"a", "more_body": True},
        {"type": "http.request", "body": b"b", "more_body": True},
        {"type": "http.request", "body": b"c", "more_body": False},
    ]
    assert outs == [Out(200, [], b"done", False, True)]


async def test_concurrent_sends_over_grpc():
    """A keep-alive task and the event stream send at the same time."""
    errors: List[Any] = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})

        async def sender(tag: bytes) -> None:
            try:
                for _ in range(5):
                    await send({"type": "http.response.body", "body": tag * 100_000, "more_body": True})
            except Exception as err:
                errors.append(err)
                raise

        await asyncio.gather(sender(b"a"), sender(b"b"))
        await send({"type": "http.response.body", "body": b""})

    async with plugin_server(app, lifespan="off") as stub:
        # Bounded: after the failed write, the pristine bridge's stream
        # never ends.
        outs, code = await asyncio.wait_for(exchange(stub, [init()]), 2)
    assert errors == []
    assert code == grpc.StatusCode.OK
    assert outs and outs[-1].complete
    body = b"".join(o.body for o in outs)
    assert body.count(b"a") == body.count(b"b") == 500_000
