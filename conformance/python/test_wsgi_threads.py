"""The threaded WSGI facade over real gRPC: serve_plugin_hooks serving a
WSGI app from grpcio's synchronous server, and PluginHooksThreadedBridge on
a grpc.server of the test's own, with a grpc.aio client channel playing the
host. test_wsgi.py runs the facade's rules on the scripted stream; these
check what the scripted stream only imitates: grpcio's own request
iterator, its writes, its callbacks and its cancels."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from typing import Any, AsyncIterator, List, Sequence, Tuple

import grpc
import pytest

from conftest import Out, chunk, init, out, until
from mattermost.pluginapi.v1 import hooks_pb2_grpc
from mattermost.pluginapi.v1.hooks_httpbridge import PluginHooksThreadedBridge, serve_plugin_hooks
from test_e2e import exchange, stop_serving


@contextlib.asynccontextmanager
async def threaded_server(
    app: Any, server_options: Sequence[Tuple[str, Any]] = (), **options: Any
) -> AsyncIterator[hooks_pb2_grpc.PluginHooksStub]:
    """Serves app with PluginHooksThreadedBridge on a grpc.server of 4
    threads; yields a client stub."""
    servicer = PluginHooksThreadedBridge(app, max_workers=4, **options)
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4), options=list(server_options))
    hooks_pb2_grpc.add_PluginHooksServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield hooks_pb2_grpc.PluginHooksStub(channel)
    finally:
        await asyncio.get_running_loop().run_in_executor(None, lambda: server.stop(None).wait())
        servicer.shutdown()


async def test_serve_plugin_hooks_serves_wsgi_from_the_synchronous_server():
    threads: List[str] = []

    def app(environ, start_response):
        threads.append(threading.current_thread().name)
        body = environ["wsgi.input"].read()
        reply = b"%s %s %s" % (environ["REQUEST_METHOD"].encode(), environ["PATH_INFO"].encode(), body)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(reply)))])
        return [reply]

    bound: "asyncio.Future[int]" = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(serve_plugin_hooks(app, "127.0.0.1:0", ready=bound.set_result, signals=()))
    try:
        port = await asyncio.wait_for(bound, 10)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            outs, code = await exchange(
                hooks_pb2_grpc.PluginHooksStub(channel),
                [init("/wsgi", "PUT", body=b"ab", complete=False), chunk(b"cd"), chunk(b"", True)],
            )
        # The synchronous server's threads, which serve_plugin_hooks names.
        grpc_threads = [t.name for t in threading.enumerate() if t.name.startswith("httpbridge-grpc")]
    finally:
        await stop_serving(task)
    assert code == grpc.StatusCode.OK
    assert outs == [
        Out(200, [("content-type", ["text/plain"]), ("content-length", ["14"])], b"PUT /wsgi abcd", False, True)
    ]
    assert threads and threads[0].startswith("httpbridge-wsgi")
    assert grpc_threads
    await until(lambda: not any(t.name.startswith("httpbridge-") for t in threading.enumerate()), "the threads to stop")


def test_the_threaded_servicer_refuses_an_asgi_app():
    async def app(scope, receive, send):
        pass

    with pytest.raises(TypeError):
        PluginHooksThreadedBridge(app)
    with pytest.raises(TypeError):
        PluginHooksThreadedBridge(lambda environ, start_response: [], interface="asgi")


async def test_streamed_items_and_abort_over_grpc():
    def app(environ, start_response):
        start_response("200 OK", [])
        yield b"a"
        yield b"b"
        if environ["PATH_INFO"] == "/fail":
            raise RuntimeError("boom")

    async with threaded_server(app) as stub:
        outs, code = await exchange(stub, [init("/ok")])
        assert code == grpc.StatusCode.OK
        assert outs == [Out(200, [], b"a", True, False), Out(None, None, b"b", True, False), Out(None, None, b"", False, True)]
        outs, code = await exchange(stub, [init("/fail")])
        assert code == grpc.StatusCode.ABORTED
        assert outs == [Out(200, [], b"a", True, False), Out(None, None, b"b", True, False)]


async def test_a_client_that_leaves_during_a_download_is_no_error(caplog):
    """The host cancels while the app's item waits on flow control: the
    app's next write raises OSError, its iterable is closed, and nothing
    is logged as an error."""
    seen: List[str] = []

    def app(environ, start_response):
        write = start_response("200 OK", [])
        try:
            for _ in range(4096):
                write(b"x" * 65536)
        except OSError:
            seen.append("OSError")

        class Body:
            def __iter__(self):
                return iter(())

            def close(self):
                seen.append("closed")

        return Body()

    with caplog.at_level(logging.INFO, logger="httpbridge"):
        async with threaded_server(app) as stub:
            call = stub.ServeHTTP()
            await call.write(init("/download"))
            for _ in range(4):
                await call.read()
            call.cancel()
            await until(lambda: len(seen) == 2, "the app to learn of it and return")
    assert seen == ["OSError", "closed"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_host_cancel_mid_upload_raises_oserror_from_wsgi_input():
    got: List[Any] = []

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        got.append(stream.read(2))
        try:
            stream.read()
        except OSError:
            got.append(OSError)
        start_response("200 OK", [])
        return [b"late"]

    for read_timeout in (30.0, None):
        got.clear()
        async with threaded_server(app, read_timeout=read_timeout) as stub:
            call = stub.ServeHTTP()
            await call.write(init("/up", "POST", body=b"ab", complete=False))
            await until(lambda: got, "the app to read")
            call.cancel()
            await until(lambda: len(got) == 2, "the read to fail")
        assert got == [b"ab", OSError]


async def test_a_message_over_the_send_limit_is_an_error_not_a_disconnect(caplog):
    seen: List[Any] = []

    def app(environ, start_response):
        write = start_response("200 OK", [])
        try:
            write(b"x" * (2 << 20))
        except Exception as err:
            seen.append(isinstance(err, OSError))
            raise
        return []

    with caplog.at_level(logging.ERROR, logger="httpbridge"):
        limit = [("grpc.max_send_message_length", 1 << 20)]
        async with threaded_server(app, server_options=limit, max_send_message_length=1 << 20, chunk_size=2 << 20) as stub:
            outs, code = await exchange(stub, [init("/big")])
    assert seen == [False]
    assert [(o.status, o.complete) for o in outs] == [(500, True)]
    assert code == grpc.StatusCode.OK
    assert "could not send a response message (path /big)" in caplog.text


async def test_requests_beyond_the_threads_wait_for_one():
    """Four server threads, eight requests: the last four wait, then are
    served."""
    release = threading.Event()
    running: List[int] = []
    lock = threading.Lock()

    def app(environ, start_response):
        with lock:
            running.append(1)
        release.wait(5)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    async with threaded_server(app) as stub:
        calls = [asyncio.ensure_future(exchange(stub, [init(f"/{i}")])) for i in range(8)]
        await until(lambda: len(running) == 4, "four apps to run")
        await asyncio.sleep(0.05)
        assert len(running) == 4
        release.set()
        results = await asyncio.wait_for(asyncio.gather(*calls), 10)
    assert [code for _, code in results] == [grpc.StatusCode.OK] * 8
    assert all(outs[-1].body == b"ok" and outs[-1].complete for outs, _ in results)


async def test_a_slow_client_paces_the_app():
    """grpcio's synchronous server asks for the next message only once the
    last one was written, and a write waits for HTTP/2 flow control: a host
    that stops reading stops the app after gRPC's windows are full (about
    4 MiB on grpcio 1.51), not after the whole body."""
    yielded = [0]

    def app(environ, start_response):
        start_response("200 OK", [])

        def items():
            for _ in range(4096):  # 256 MiB
                yielded[0] += 1
                yield b"x" * 65536

        return items()

    async with threaded_server(app) as stub:
        call = stub.ServeHTTP()
        await call.write(init("/download"))
        for _ in range(4):
            await call.read()
        # Until the app stands still for 0.3 s, however loaded the machine.
        seen, still = -1, 0
        while still < 3 and yielded[0] < 256:
            await asyncio.sleep(0.1)
            seen, still = yielded[0], still + 1 if yielded[0] == seen else 0
        assert yielded[0] < 256, f"the app yielded {yielded[0]} items of 64 KiB to a host that read 4"
        call.cancel()
