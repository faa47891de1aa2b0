"""End to end over real gRPC: a grpc.aio server on 127.0.0.1:0 serving the
generated PluginHooksBridge, and a grpc.aio client channel with the
generated stub playing the host."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from typing import Any, AsyncIterator, List, Sequence, Tuple

import grpc
import pytest

from conftest import Out, chunk, init, out, until
from mattermost.pluginapi.v1 import hooks_pb2_grpc
from mattermost.pluginapi.v1.hooks_httpbridge import PluginHooksBridge, serve_plugin_hooks

DISCONNECT = {"type": "http.disconnect"}


@contextlib.asynccontextmanager
async def plugin_server(
    app: Any, server_options: Sequence[Tuple[str, Any]] = (), **options: Any
) -> AsyncIterator[hooks_pb2_grpc.PluginHooksStub]:
    """Serves app with the generated servicer; yields a client stub."""
    servicer = PluginHooksBridge(app, **options)
    server = grpc.aio.server(options=list(server_options))
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


# --- serve_plugin_hooks: ports, stdin and the event loop ----------------------


async def hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


async def start_serving(address: str = "127.0.0.1:0", **options: Any) -> "Tuple[asyncio.Task[None], int]":
    """Starts serve_plugin_hooks with hello; returns it and its port."""
    bound: "asyncio.Future[int]" = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(
        serve_plugin_hooks(hello, address, ready=bound.set_result, signals=(), lifespan="off", **options)
    )
    await asyncio.wait({task, bound}, return_when=asyncio.FIRST_COMPLETED, timeout=10)
    if task.done():
        task.result()  # raises why it stopped
    return task, bound.result()


async def stop_serving(task: "asyncio.Task[None]") -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)


async def test_a_second_server_on_the_same_port_fails_unless_reuse_port():
    """gRPC sets SO_REUSEPORT by default, so a second plugin on a busy port
    would start and take part of its requests; here it fails to start."""
    first, port = await start_serving()
    try:
        with pytest.raises(RuntimeError):
            await start_serving(f"127.0.0.1:{port}")
    finally:
        await stop_serving(first)
    first, port = await start_serving(reuse_port=True)
    try:
        second, second_port = await start_serving(f"127.0.0.1:{port}", reuse_port=True)
        assert second_port == port
        await stop_serving(second)
    finally:
        await stop_serving(first)


async def test_serving_leaves_the_loop_exception_handler_alone():
    loop = asyncio.get_running_loop()
    assert loop.get_exception_handler() is None
    task, port = await start_serving()
    try:
        assert loop.get_exception_handler() is None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            outs, code = await exchange(hooks_pb2_grpc.PluginHooksStub(channel), [init()])
        assert outs[-1].complete and code == grpc.StatusCode.OK
    finally:
        await stop_serving(task)


PLUGIN = """
import asyncio, sys
from mattermost.pluginapi.v1.hooks_httpbridge import serve_plugin_hooks

async def app(scope, receive, send):
    pass

def ready(port):
    print(port, flush=True)

asyncio.run(serve_plugin_hooks(app, "127.0.0.1:0", ready=ready, signals=(), stop_on_stdin_close=True))
print("stopped", flush=True)
"""


async def test_stop_on_stdin_close_ends_the_plugin_with_its_host():
    """A host that started the plugin with a pipe on its standard input and
    went away (killed, even) takes the plugin with it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PLUGIN,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        port = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert int(port) > 0
        proc.stdin.close()
        rest = await asyncio.wait_for(proc.stdout.read(), 10)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        assert rest == b"stopped\n"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_message_over_the_send_limit_is_an_error_not_a_disconnect(caplog):
    """grpc.aio refuses a message over the server's send limit with the
    same error as a write on a cancelled call: the facade must say so, not
    take it for a client that left."""
    seen: List[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await send({"type": "http.response.body", "body": b"x" * (2 << 20)})
        except Exception as err:
            seen.append(isinstance(err, OSError))
            raise

    with caplog.at_level(logging.ERROR, logger="httpbridge"):
        limit = [("grpc.max_send_message_length", 1 << 20)]
        options = {"max_send_message_length": 1 << 20, "chunk_size": 2 << 20, "lifespan": "off"}
        async with plugin_server(app, server_options=limit, **options) as stub:
            outs, code = await exchange(stub, [init("/big")])
    assert seen == [False]
    assert [(o.status, o.complete) for o in outs] == [(500, True)]
    assert code == grpc.StatusCode.OK
    assert "could not send a response message (path /big)" in caplog.text


async def test_serve_takes_the_send_limit_from_its_server_options():
    async def big(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * (2 << 20)})

    bound: "asyncio.Future[int]" = asyncio.get_running_loop().create_future()
    limit = [("grpc.max_send_message_length", 1 << 20)]
    task = asyncio.ensure_future(
        serve_plugin_hooks(big, "127.0.0.1:0", ready=bound.set_result, signals=(), server_options=limit, chunk_size=2 << 20)
    )
    try:
        port = await asyncio.wait_for(bound, 10)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            outs, code = await exchange(hooks_pb2_grpc.PluginHooksStub(channel), [init()])
        assert [(o.status, o.complete) for o in outs] == [(500, True)] and code == grpc.StatusCode.OK
    finally:
        await stop_serving(task)


async def test_a_client_that_leaves_during_a_download_is_no_error(caplog):
    """The host cancels while the app's write waits on flow control: gRPC
    may fail the write before the handler learns of the cancel. The app's
    send raises OSError (ASGI 2.4), or the app is cancelled, and nothing
    is logged as an error."""
    seen: List[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(4096):
                await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
        except OSError:
            seen.append("OSError")
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    with caplog.at_level(logging.INFO, logger="httpbridge"):
        async with plugin_server(app, lifespan="off") as stub:
            call = stub.ServeHTTP()
            await call.write(init("/download"))
            for _ in range(4):
                await call.read()
            call.cancel()
            await until(lambda: seen, "the app to learn of it")
    assert seen in (["OSError"], ["cancelled"])
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
