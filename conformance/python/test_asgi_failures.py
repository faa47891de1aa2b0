"""An ASGI app that fails, returns early, or whose stream is cancelled
(F-P1..F-P5 in ASGI terms)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, List

import grpc
import pytest

from conftest import (
    INTERNAL_ERROR,
    FakeContext,
    Out,
    body_of,
    bridge,
    cancel_handle,
    chunk,
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

DISCONNECT = {"type": "http.disconnect"}


async def test_exception_before_start_is_500_without_its_text(caplog):
    async def app(scope, receive, send):
        raise ValueError("secret detail of the failure")

    with caplog.at_level(logging.ERROR, logger="httpbridge"):
        ctx = await serve_asgi(app, [init("/boom?token=t0k3n")])
    assert ctx.outs == INTERNAL_ERROR
    assert b"secret" not in body_of(ctx.writes)
    assert ctx.code is None
    assert "ASGI app failed" in caplog.text and "/boom" in caplog.text
    assert "secret detail" in caplog.text  # the traceback is logged ...
    assert "t0k3n" not in caplog.text  # ... but never the query


async def test_exception_after_held_start_is_500():
    """Nothing went out yet: the app's status and headers are replaced."""

    async def app(scope, receive, send):
        await send(response_start(200, [(b"x-app", b"1")]))
        raise RuntimeError("boom")

    ctx = await serve_asgi(app, [init()])
    assert ctx.outs == INTERNAL_ERROR


async def test_exception_after_the_first_message_aborts():
    async def app(scope, receive, send):
        await send(response_start(200, [(b"x-app", b"1")]))
        await send(response_body(b"part", more_body=True))
        raise RuntimeError("boom")

    ctx = await serve_asgi(app, [init()])
    assert ctx.outs == [Out(200, [("x-app", ["1"])], b"part", True, False)]
    assert not any(o.complete for o in ctx.outs)
    assert ctx.code == grpc.StatusCode.ABORTED
    assert ctx.details


async def test_exception_after_chunks_without_flush_aborts():
    async def app(scope, receive, send):
        await send(response_start(200))
        await send(response_body(b"x" * 10, more_body=True))
        raise RuntimeError("boom")

    ctx = await serve_asgi(app, [init()], chunk_size=4)
    assert [(o.status, len(o.body), o.flush, o.complete) for o in ctx.outs] == [
        (200, 4, False, False),
        (None, 4, False, False),
        (None, 2, True, False),
    ]
    assert ctx.code == grpc.StatusCode.ABORTED


async def test_exception_after_the_response_is_only_logged(caplog):
    async def app(scope, receive, send):
        await send(response_start(200))
        await send(response_body(b"ok"))
        raise RuntimeError("late")

    with caplog.at_level(logging.ERROR, logger="httpbridge"):
        ctx = await serve_asgi(app, [init()])
    assert ctx.outs == [Out(200, [], b"ok", False, True)]
    assert ctx.code is None
    assert "late" in caplog.text


async def test_return_without_start_is_500(caplog):
    async def app(scope, receive, send):
        pass

    with caplog.at_level(logging.ERROR, logger="httpbridge"):
        ctx = await serve_asgi(app, [init("/quiet")])
    assert ctx.outs == INTERNAL_ERROR
    assert "without completing" in caplog.text


async def test_return_after_held_start_is_500():
    async def app(scope, receive, send):
        await send(response_start(200, [(b"x-app", b"1")]))

    ctx = await serve_asgi(app, [init()])
    assert ctx.outs == INTERNAL_ERROR


async def test_return_after_a_part_aborts():
    async def app(scope, receive, send):
        await send(response_start(200))
        await send(response_body(b"part", more_body=True))

    ctx = await serve_asgi(app, [init()])
    assert ctx.outs == [Out(200, [], b"part", True, False)]
    assert ctx.code == grpc.StatusCode.ABORTED


async def test_the_bridge_serves_on_after_a_failure():
    calls: List[str] = []

    async def app(scope, receive, send):
        calls.append(scope["path"])
        if scope["path"] == "/fail":
            raise RuntimeError("boom")
        await send(response_start(200))
        await send(response_body(b"ok"))

    facade = bridge.ServeHTTPASGI(app)
    first = await serve(facade, FakeContext([init("/fail")]))
    second = await serve(facade, FakeContext([init("/ok")]))
    assert first.outs == INTERNAL_ERROR
    assert second.outs == [Out(200, [], b"ok", False, True)]
    assert calls == ["/fail", "/ok"]


async def test_concurrent_streams_are_independent():
    gates = {"/a": asyncio.Event(), "/b": asyncio.Event()}

    async def app(scope, receive, send):
        event = await receive()
        await send(response_start(200))
        await send(response_body(scope["path"].encode() + b":" + event["body"], more_body=True))
        await gates[scope["path"]].wait()
        await send(response_body(b"!"))

    facade = bridge.ServeHTTPASGI(app)
    a = FakeContext([init("/a", "POST", body=b"1")])
    b = FakeContext([init("/b", "POST", body=b"2")])
    ta, tb = start_task(facade, a), start_task(facade, b)
    await until(lambda: a.writes and b.writes, "both responses to start")
    gates["/b"].set()
    await asyncio.wait_for(tb, 1)
    assert not ta.done()
    gates["/a"].set()
    await asyncio.wait_for(ta, 1)
    assert body_of(a.writes) == b"/a:1!" and body_of(b.writes) == b"/b:2!"


# --- cancellation -------------------------------------------------------------


async def test_cancel_while_the_app_awaits_something_else_cancels_it():
    seen: List[str] = []
    waiting = asyncio.Event()

    async def app(scope, receive, send):
        try:
            waiting.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")

    ctx = FakeContext([init()], eof=False)
    task = start_task(bridge.ServeHTTPASGI(app), ctx)
    await asyncio.wait_for(waiting.wait(), 1)
    await cancel_handle(task)
    await until(lambda: "finally" in seen, "the app to end")
    assert seen == ["cancelled", "finally"]
    assert ctx.writes == [] and ctx.code is None
    # The test runner fails the test if the app's task outlives it.


async def test_cancel_after_a_part_cancels_the_app():
    seen: List[str] = []

    async def app(scope, receive, send):
        await send(response_start(200))
        await send(response_body(b"part", more_body=True))
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    ctx = FakeContext([init()], eof=False)
    task = start_task(bridge.ServeHTTPASGI(app), ctx)
    await until(lambda: ctx.writes, "the first part")
    await cancel_handle(task)
    await until(lambda: seen, "the app to be cancelled")
    assert ctx.outs == [Out(200, [], b"part", True, False)]


async def test_cancel_while_a_write_waits_cancels_the_app():
    seen: List[str] = []

    async def app(scope, receive, send):
        await send(response_start(200))
        try:
            # One in flight, one waiting, and the third waits for room.
            for _ in range(3):
                await send(response_body(b"full", more_body=True))
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    ctx = FakeContext([init()], eof=False)
    ctx.hold_writes()
    task = start_task(bridge.ServeHTTPASGI(app, chunk_size=4), ctx)
    await until(lambda: ctx.writing, "the write to wait")
    await settle()
    await cancel_handle(task)
    await until(lambda: seen, "the app to be cancelled")
    ctx.cancel_rpc()  # and the write in flight fails, as grpc.aio's does
    await settle()
    assert ctx.writes == []


async def test_cancel_while_the_final_write_waits_tells_the_app_by_send():
    """The final message went to gRPC but the host cancelled before it went
    out (the client left as the last bytes were due): the app is not
    cancelled, as it would be after a cancel that ends its response; its
    send raises OSError, as uvicorn's does for a client gone, and it runs
    to its end."""
    seen: List[str] = []

    async def app(scope, receive, send):
        await send(response_start(200))
        try:
            await send(response_body(b"last"))
        except OSError:
            seen.append("OSError")
        await asyncio.sleep(0.01)
        seen.append("finished")

    ctx = FakeContext([init()], eof=False)
    ctx.hold_writes()
    task = start_task(bridge.ServeHTTPASGI(app), ctx)
    await until(lambda: ctx.writing, "the final write to wait")
    await cancel_handle(task)
    ctx.cancel_rpc()
    await until(lambda: len(seen) == 2, "the app to finish")
    assert seen == ["OSError", "finished"]


@pytest.mark.parametrize("order", ["rpc-then-task", "task-then-rpc"])
async def test_cancel_while_the_app_reads_the_body_gives_disconnect(order):
    """The app waits in receive() for a chunk; gRPC cancels the RPC (its
    pending read returns) and the servicer task."""
    got: List[Any] = []
    after: List[Any] = []

    async def app(scope, receive, send):
        while True:
            event = await receive()
            got.append(event)
            if event["type"] != "http.request" or not event["more_body"]:
                break
        after.append(await receive())
        try:
            await send(response_start(200))
            await send(response_body(b"too late"))
        except OSError:
            after.append("send raised OSError")

    ctx = FakeContext([init("/up", "POST", body=b"a", complete=False)], eof=False)
    task = start_task(bridge.ServeHTTPASGI(app), ctx)
    await until(lambda: ctx.reading, "the app to wait for a chunk")
    if order == "rpc-then-task":
        ctx.cancel_rpc()
        await cancel_handle(task)
    else:
        task.cancel()
        await asyncio.sleep(0)
        ctx.cancel_rpc()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 1)
    await until(lambda: len(after) == 2, "the app to end")
    assert got == [{"type": "http.request", "body": b"a", "more_body": True}, DISCONNECT]
    assert after == [DISCONNECT, "send raised OSError"]
    assert ctx.writes == []


async def test_cancel_while_the_app_awaits_receive_after_the_body_gives_disconnect():
    """The whole body arrived; receive() waits for the response to end."""
    got: List[Any] = []

    async def app(scope, receive, send):
        got.append(await receive())
        got.append(await receive())

    ctx = FakeContext([init("/", "POST", body=b"all")], eof=False)
    task = start_task(bridge.ServeHTTPASGI(app), ctx)
    await until(lambda: got, "the body")
    await settle()
    await cancel_handle(task)
    await until(lambda: len(got) == 2, "the disconnect")
    assert got == [{"type": "http.request", "body": b"all", "more_body": False}, DISCONNECT]
    assert ctx.reads == 1 and ctx.writes == []


async def test_cancel_with_a_disconnect_listener_beside_the_stream():
    """Starlette's StreamingResponse: one task listens for http.disconnect
    while another streams; the disconnect stops the stream."""
    seen: List[str] = []

    async def app(scope, receive, send):
        await receive()

        async def stream():
            await send(response_start(200))
            try:
                while True:
                    await send(response_body(b"tick", more_body=True))
                    await asyncio.sleep(0.005)
            except asyncio.CancelledError:
                seen.append("stream cancelled")
                raise

        streaming = asyncio.ensure_future(stream())
        message = await receive()
        seen.append(message["type"])
        streaming.cancel()
        await asyncio.gather(streaming, return_exceptions=True)

    ctx = FakeContext([init("/events")], eof=False)
    task = start_task(bridge.ServeHTTPASGI(app), ctx)
    await until(lambda: len(ctx.writes) >= 3, "some ticks")
    await cancel_handle(task)
    await until(lambda: len(seen) == 2, "the app to end")
    assert seen == ["http.disconnect", "stream cancelled"]
    assert all(o.flush and not o.complete for o in ctx.outs)


async def test_read_after_a_body_chunk_fails_only_when_asked():
    """A broken stream is noticed by the next receive(), not before."""
    got: List[Any] = []

    async def app(scope, receive, send):
        got.append(await receive())
        await send(response_start(200))
        await send(response_body(b"answered"))

    ctx = FakeContext([init("/", "POST", body=b"a", complete=False), chunk(b"b")], eof=False)
    ctx.fail_reads(RuntimeError("broken"))
    await serve(bridge.ServeHTTPASGI(app), ctx)
    assert got == [{"type": "http.request", "body": b"a", "more_body": True}]
    assert ctx.outs == [Out(200, [], b"answered", False, True)]
    assert ctx.reads == 1


async def test_cancel_after_the_whole_response_lets_the_app_finish():
    """The host cancels the stream as soon as it has body_complete; what the
    app does after its response (a background task, an exception on its way
    up) runs to its end instead of being cancelled."""
    gate = asyncio.Event()
    done: List[str] = []

    async def app(scope, receive, send):
        await send(response_start(200))
        await send(response_body(b"ok"))
        await gate.wait()
        done.append("finished")

    ctx = FakeContext([init()], eof=False)
    task = start_task(bridge.ServeHTTPASGI(app), ctx)
    await until(lambda: len(ctx.writes) == 1, "the response")
    await end_stream(task)
    gate.set()
    await until(lambda: done, "the app to finish")
    assert done == ["finished"]


class NotAnException(BaseException):
    """What a task group raises as a BaseExceptionGroup, say: no Exception."""


async def test_a_base_exception_from_the_app_is_500_and_logged(caplog):
    async def app(scope, receive, send):
        raise NotAnException("boom")

    with caplog.at_level(logging.ERROR, logger="httpbridge"):
        ctx = await serve_asgi(app, [init()])
    assert ctx.outs == INTERNAL_ERROR
    assert "ASGI app failed" in caplog.text and "NotAnException" in caplog.text
