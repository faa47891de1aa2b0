"""When an exchange is over, and for whom: completion recorded only after the
final write, the host's cancel after completion never taken for a client
that left, every exception escaping the app answered and logged, local send
failures told apart from a host that went away, and apps that outlive their
stream bounded by the grace period."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any, List

import grpc
import pytest

from conftest import (
    INTERNAL_ERROR,
    FakeContext,
    Out,
    bridge,
    cancel_handle,
    end_stream,
    init,
    response_body,
    response_start,
    serve,
    serve_asgi,
    settle,
    start_task,
    until,
)
from mattermost.pluginapi.v1 import hooks_pb2_grpc
from mattermost.pluginapi.v1.hooks_httpbridge import PluginHooksBridge

DISCONNECT = {"type": "http.disconnect"}


def streaming_app(ran: List[str], gate: "asyncio.Event", chunks: int = 3) -> Any:
    """What Starlette's StreamingResponse(background=...) does: one task
    listens for http.disconnect while another streams; whichever ends
    first stops the other; then the background task runs."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        async def stream() -> None:
            await send(response_start(200))
            for i in range(chunks):
                await send(response_body(b"%d" % i, more_body=True))
            await send(response_body(b"", more_body=False))

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
        await gate.wait()
        ran.append("background")

    return app


@pytest.mark.parametrize("write_yields", [0, 1, 3])
async def test_streamed_response_then_host_cancel_runs_the_background_task(write_yields):
    """The host cancels the stream as soon as it has body_complete, as the
    Go host does; the disconnect listener must not cut the final write, and
    the background task must run."""
    ran: List[str] = []
    gate = asyncio.Event()
    ctx = FakeContext([init()], eof=False)
    ctx.write_yields = write_yields
    task = start_task(bridge.ServeHTTPASGI(streaming_app(ran, gate)), ctx)
    await until(lambda: any(o.complete for o in ctx.outs), "the final message")
    ctx.cancel_rpc()
    await end_stream(task)
    gate.set()
    await until(lambda: ran, "the background task")
    assert ran == ["background"]
    # Events that met a write in flight went out together (write-behind).
    assert b"".join(o.body for o in ctx.outs) == b"012"
    assert ctx.outs[-1].complete and ctx.outs[-1].body == b""


async def test_receive_waits_while_the_final_write_is_in_flight():
    """Completion is recorded after the write: a receive() waiting beside a
    final write that has not returned yet gets nothing until it has."""
    got: List[Any] = []
    ctx = FakeContext([init()], eof=False)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()

        async def listen() -> None:
            got.append(await receive())

        listener = asyncio.ensure_future(listen())
        await send(response_start(200))
        await send(response_body(b"end"))
        got.append("sent")
        await listener

    ctx.hold_writes()
    task = start_task(bridge.ServeHTTPASGI(app), ctx)
    await until(lambda: ctx.writing, "the final write")
    await settle()
    assert got == []
    ctx.release_writes()
    await asyncio.wait_for(task, 1)
    assert got == ["sent", DISCONNECT]


async def test_streamed_background_task_over_grpc_with_starlette():
    """Starlette's StreamingResponse with a background task, 20 requests
    over real gRPC with a host that cancels once it has body_complete."""
    starlette = pytest.importorskip("starlette")
    del starlette
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    ran: List[int] = []

    async def stream(request: Any) -> StreamingResponse:
        async def body() -> Any:
            for i in range(3):
                yield b"part %d\n" % i

        n = int(request.query_params["n"])

        async def background() -> None:
            await asyncio.sleep(0)
            ran.append(n)

        return StreamingResponse(body(), background=BackgroundTask(background))

    app = Starlette(routes=[Route("/stream", stream)])
    servicer = PluginHooksBridge(app, lifespan="off")
    server = grpc.aio.server()
    hooks_pb2_grpc.add_PluginHooksServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = hooks_pb2_grpc.PluginHooksStub(channel)
            for n in range(20):
                call = stub.ServeHTTP()
                await call.write(init(f"/stream?n={n}"))
                body = b""
                while True:
                    msg = await call.read()
                    assert msg is not grpc.aio.EOF, "the stream ended without body_complete"
                    body += msg.body_chunk
                    if msg.body_complete:
                        break
                call.cancel()  # as the Go host does once it has the response
                assert body == b"part 0\npart 1\npart 2\n"
            await until(lambda: len(ran) == 20, "20 background tasks", timeout=5)
    finally:
        await server.stop(None)
        await servicer.shutdown()
    assert sorted(ran) == list(range(20))


# --- exceptions escaping the app ---------------------------------------------


async def test_cancelled_error_from_the_app_is_500_and_logged(caplog):
    """A CancelledError the host did not cause (a shared task that another
    request's cancel cancelled) is a failure like any other."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise asyncio.CancelledError()

    with caplog.at_level(logging.ERROR, logger="httpbridge"):
        ctx = await serve_asgi(app, [init("/shared?token=t0k3n")])
    assert ctx.outs == INTERNAL_ERROR
    assert "ASGI app failed" in caplog.text and "/shared" in caplog.text
    assert "t0k3n" not in caplog.text


async def test_cancelled_error_from_the_app_after_start_aborts(caplog):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(response_start(200))
        await send(response_body(b"part", more_body=True))
        raise asyncio.CancelledError()

    with caplog.at_level(logging.ERROR, logger="httpbridge"):
        ctx = await serve_asgi(app, [init()])
    assert ctx.outs == [Out(200, [], b"part", True, False)]
    assert ctx.code == grpc.StatusCode.ABORTED
    assert "ASGI app failed" in caplog.text


async def test_shared_task_cancelled_by_another_request():
    """Two requests await one shared task; the first client leaves and its
    cancel reaches the shared task; the second request still ends, with
    500."""
    shared: "asyncio.Future[bytes]" = asyncio.get_running_loop().create_future()
    waiting: List[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        waiting.append(scope["path"])
        try:
            data = await shared
        except asyncio.CancelledError:
            if scope["path"] == "/first":
                shared.cancel()
            raise
        await send(response_start(200))
        await send(response_body(data))

    facade = bridge.ServeHTTPASGI(app)
    first = FakeContext([init("/first")], eof=False)
    second = FakeContext([init("/second")], eof=False)
    first_task = start_task(facade, first)
    second_task = start_task(facade, second)
    await until(lambda: len(waiting) == 2, "both apps to wait")
    await cancel_handle(first_task)
    await asyncio.wait_for(second_task, 2)
    assert first.writes == []
    assert second.outs == INTERNAL_ERROR


async def test_exception_after_the_client_left_is_logged(caplog):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "http.request"
        assert await receive() == DISCONNECT
        raise ValueError("cleanup failed")

    ctx = FakeContext([init("/gone", "POST", body=b"all")], eof=False)
    with caplog.at_level(logging.ERROR, logger="httpbridge"):
        task = start_task(bridge.ServeHTTPASGI(app), ctx)
        await until(lambda: ctx.reads == 1 and not ctx.unread, "the body")
        await settle()
        await cancel_handle(task)
        await until(lambda: "cleanup failed" in caplog.text, "the failure to be logged")
    assert "ASGI app failed" in caplog.text and "/gone" in caplog.text


async def test_the_oserror_of_send_after_the_client_left_is_not_logged(caplog):
    gone = asyncio.Event()
    ended: List[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await receive()
        gone.set()
        try:
            await send(response_start(200))
            await send(response_body(b"late"))
        finally:
            ended.append("ended")

    ctx = FakeContext([init("/gone", "POST", body=b"all")], eof=False)
    with caplog.at_level(logging.INFO, logger="httpbridge"):
        task = start_task(bridge.ServeHTTPASGI(app), ctx)
        await until(lambda: ctx.reads == 1 and not ctx.unread, "the body")
        await settle()
        await cancel_handle(task)
        await until(lambda: ended, "the app to end")
        await settle()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --- local send failures -----------------------------------------------------


class FailingContext(FakeContext):
    """Fails the write of the first message with err; later writes work."""

    def __init__(self, messages: Any, err: BaseException) -> None:
        super().__init__(messages)
        self._err: Any = err

    async def write(self, message: Any) -> None:
        err, self._err = self._err, None
        if err is not None:
            self.write_calls += 1
            raise err
        await super().write(message)


@pytest.mark.parametrize("limit", [-1, 100], ids=["marshalling", "over-the-limit"])
async def test_local_send_failure_is_an_error_not_a_disconnect(caplog, limit):
    """A message that cannot be turned into bytes, or that is over the
    server's send limit (which grpc.aio would refuse with the error of a
    cancelled call, and then cancel the call), never went out: it is the
    facade's failure, logged, and the stream ends with 500."""
    seen: List[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(response_start(200))
        try:
            await send(response_body(b"x" * 1000))
        except BaseException as e:
            seen.append(type(e))
            raise

    if limit < 0:
        ctx: FakeContext = FailingContext([init("/big")], TypeError("bad message"))
    else:
        ctx = FakeContext([init("/big")])
    with caplog.at_level(logging.ERROR, logger="httpbridge"):
        await serve(bridge.ServeHTTPASGI(app, max_send_message_length=limit), ctx)
    assert seen and not issubclass(seen[0], OSError)
    assert "could not send" in caplog.text and "/big" in caplog.text
    assert ctx.outs == INTERNAL_ERROR


# --- lifespan shutdown and the grace period ----------------------------------


async def outlive_the_stream(app: Any) -> Any:
    """Serves app on one stream until its response went out, then cancels
    the stream as the host does; returns the facade, where the app may
    still run."""
    facade = bridge.ServeHTTPASGI(app, lifespan="off")
    ctx = FakeContext([init()], eof=False)
    task = start_task(facade, ctx)
    await until(lambda: ctx.writes, "the response")
    await end_stream(task)
    return facade


async def test_shutdown_waits_at_most_the_grace_period(caplog):
    cancelled: List[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(response_start(200))
        await send(response_body(b"ok"))
        try:
            await asyncio.Event().wait()  # a background task that never ends
        except asyncio.CancelledError:
            cancelled.append("cancelled")
            raise

    facade = await outlive_the_stream(app)
    with caplog.at_level(logging.WARNING, logger="httpbridge"):
        await asyncio.wait_for(facade.shutdown(grace=0.05), 2)
    assert cancelled == ["cancelled"]
    assert "grace" in caplog.text


# --- grpc.aio's failed status after a host cancel ----------------------------


class SendStatusError(Exception):
    pass


SendStatusError.__name__ = "ExecuteBatchError"


async def test_failed_status_after_a_complete_response_is_not_reported():
    """grpc.aio before 1.53 fails the status of a stream the host cancelled
    once it had body_complete, in a task nobody awaits; the facade retrieves
    that one error of its own completed exchanges, and no other."""
    reported: List[Any] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, context: reported.append(context.get("exception")))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(response_start(200))
        await send(response_body(b"ok"))

    async def rpc(facade: Any, message: str) -> None:
        await facade.handle(iter(()), FakeContext([init()]))
        raise SendStatusError(message)

    facade = bridge.ServeHTTPASGI(app, lifespan="off")
    for message in ['Failed "execute_batch": (SendStatusFromServerOperation,)', "something else"]:
        task = asyncio.ensure_future(rpc(facade, message))
        await asyncio.wait({task})
        del task
        gc.collect()
    assert [str(e) for e in reported] == ["something else"]
    loop.set_exception_handler(None)


async def test_the_app_cancelling_its_own_final_write_aborts_the_stream():
    """A disconnect listener that the body cut short woke cancels the task
    that writes the final message: that response is not complete, and the
    stream must end aborted, not silently."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        async def stream() -> None:
            await send(response_start(200))
            await send(response_body(b"part", more_body=True))
            await send(response_body(b""))

        streaming = asyncio.ensure_future(stream())
        await until(lambda: ctx.writing == 1 and len(ctx.writes) == 1, "the final write")
        streaming.cancel()
        await asyncio.gather(streaming, return_exceptions=True)

    ctx = FakeContext([init()], eof=False)
    ctx.hold_writes()
    ctx.release_writes(1)  # the first message; the final one waits
    await serve(bridge.ServeHTTPASGI(app), ctx)
    assert [o.complete for o in ctx.outs] == [False]
    assert ctx.code == grpc.StatusCode.ABORTED


async def test_the_app_timing_out_its_final_send_still_runs_its_background_work():
    """The app gives up waiting for its final send (asyncio.wait_for), but
    gRPC sends the message anyway and the host, with body_complete, ends
    the stream: that is no client that left, and the app is not cancelled."""
    ran: List[str] = []
    gate = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(response_start(200))
        await send(response_body(b"part", more_body=True))
        try:
            await asyncio.wait_for(send(response_body(b"end")), 0.01)
        except asyncio.TimeoutError:
            ran.append("timed out")
        await gate.wait()
        ran.append("background")

    ctx = FakeContext([init()], eof=False)
    ctx.hold_writes()
    ctx.release_writes(1)
    task = start_task(bridge.ServeHTTPASGI(app), ctx)
    await until(lambda: ran == ["timed out"], "the final send to time out")
    # What grpc.aio does with a write whose await was cancelled: it is sent.
    final = bridge.ServeHTTPASGI._wire.response(None, b"end", False, True)
    ctx.free_writes()
    await ctx.write(final)
    await end_stream(task)
    gate.set()
    await until(lambda: len(ran) == 2, "the background work")
    assert ran == ["timed out", "background"]


async def test_shutdown_returns_when_an_app_ignores_its_cancellation(caplog):
    stop = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(response_start(200))
        await send(response_body(b"ok"))
        while not stop.is_set():
            try:
                await stop.wait()
            except asyncio.CancelledError:
                pass  # a loop that swallows its cancellation

    facade = await outlive_the_stream(app)
    with caplog.at_level(logging.WARNING, logger="httpbridge"):
        await asyncio.wait_for(facade.shutdown(grace=0.01), 5)
    assert "ignored their cancellation" in caplog.text
    stop.set()
    await settle()


async def test_the_stream_ends_with_the_response_while_the_app_runs_on():
    """The RPC returns once the final message was written, with no error
    status, and does not wait for what the app does after it: the host
    gets the stream's end at once, and the app's background work runs on
    until shutdown() has waited for it."""
    ran: List[str] = []
    gate = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(response_start(200))
        await send(response_body(b"ok"))
        await gate.wait()
        ran.append("background")

    facade = bridge.ServeHTTPASGI(app, lifespan="off")
    ctx = await serve(facade, FakeContext([init()], eof=False))
    assert ctx.code is None
    assert [(o.body, o.complete) for o in ctx.outs] == [(b"ok", True)]
    assert ran == []
    gate.set()
    await asyncio.wait_for(facade.shutdown(grace=1), 2)
    assert ran == ["background"]
