"""receive(): the request body as http.request events, read from the stream
only when the app asks (F-B1..F-B10 in ASGI terms)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, List, Tuple

import pytest

from conftest import (
    FakeContext,
    Out,
    bridge,
    chunk,
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


def request(body: bytes, more_body: bool) -> dict:
    return {"type": "http.request", "body": body, "more_body": more_body}


def draining_app(got: List[Any], reply: bytes = b"done"):
    """Receives until more_body is false or http.disconnect, then answers."""

    async def app(scope, receive, send):
        while True:
            event = await receive()
            got.append(event)
            if event["type"] != "http.request" or not event["more_body"]:
                break
        await send(response_start(200))
        await send(response_body(reply))

    return app


DONE = [Out(200, [], b"done", False, True)]


async def test_chunks_are_delivered_as_they_arrive():
    got: List[Any] = []
    ctx = FakeContext([init("/up", "POST", complete=False)], eof=False)
    task = start_task(bridge.ServeHTTPASGI(draining_app(got)), ctx)
    await until(lambda: ctx.reading, "the app's first receive to read")
    assert (ctx.reads, got) == (2, [])
    for data in (b"one", b"two", b"three"):
        n = len(got)
        ctx.feed(chunk(data))
        await until(lambda: len(got) == n + 1, "the chunk to reach the app")
        assert got[-1] == request(data, True)
        await until(lambda: ctx.reading, "the next receive to read")
        assert ctx.reads == n + 3  # the init, each chunk, and the read waiting now
    ctx.feed(chunk(b"", True))
    await asyncio.wait_for(task, 2)
    assert got[-1] == request(b"", False)
    assert ctx.outs == DONE


async def test_reads_only_on_demand_with_one_chunk_buffered():
    """Everything is on the stream at once; the bridge still reads a
    message only when the app asks for the next event."""
    seen: List[Tuple[bytes, bool, int]] = []
    gate = asyncio.Event()
    ctx = FakeContext(
        [
            init("/up", "POST", body=b"c0", complete=False),
            chunk(b"c1"),
            chunk(b"c2"),
            chunk(b"c3"),
            chunk(b"", True),
        ]
    )

    async def app(scope, receive, send):
        while True:
            event = await receive()
            seen.append((event["body"], event["more_body"], ctx.reads))
            if len(seen) == 1:
                await gate.wait()
            if not event["more_body"]:
                break
        await send(response_start(200))
        await send(response_body(b"done"))

    task = start_task(bridge.ServeHTTPASGI(app), ctx)
    await until(lambda: seen, "the first event")
    await settle()
    assert ctx.reads == 1 and ctx.unread == 5  # 4 messages and EOF wait on the stream
    gate.set()
    await asyncio.wait_for(task, 2)
    # After the k-th event, exactly k messages were read: never one ahead.
    assert seen == [(b"c0", True, 1), (b"c1", True, 2), (b"c2", True, 3), (b"c3", True, 4), (b"", False, 5)]
    assert ctx.unread == 1  # EOF was never read
    assert ctx.outs == DONE


@pytest.mark.parametrize(
    "messages,want",
    [
        ([init("/", "GET")], [request(b"", False)]),
        ([init("/", "POST", body=b"all")], [request(b"all", False)]),
        (
            [init("/", "POST", complete=False), chunk(b"a"), chunk(b"b"), chunk(b"", True)],
            [request(b"a", True), request(b"b", True), request(b"", False)],
        ),
        (
            [init("/", "POST", body=b"a", complete=False), chunk(b"b", True)],
            [request(b"a", True), request(b"b", False)],
        ),
        # content_length 0 with a body to come: the length is unknown (F-Q7).
        (
            [init("/", "POST", content_length=0, complete=False), chunk(b"x", True)],
            [request(b"x", False)],
        ),
    ],
    ids=["bodiless", "body-in-init", "chunks-then-complete", "complete-on-last-chunk", "zero-length-with-body"],
)
async def test_more_body_false_only_with_body_complete(messages, want):
    got: List[Any] = []
    ctx = await serve_asgi(draining_app(got), messages)
    assert got == want
    assert ctx.outs == DONE


@pytest.mark.parametrize("how", ["eof", "read-raises"])
async def test_stream_end_without_complete_is_disconnect(how):
    got: List[Any] = []
    after: List[Any] = []

    async def app(scope, receive, send):
        while True:
            event = await receive()
            got.append(event)
            if event["type"] != "http.request" or not event["more_body"]:
                break
        after.append(await receive())  # and it stays that way
        await send(response_start(200))
        await send(response_body(b"done"))

    ctx = FakeContext([init("/", "POST", body=b"a", content_length=-1, complete=False), chunk(b"b")], eof=False)
    if how == "eof":
        ctx.end()
    else:
        ctx.fail_reads(RuntimeError("stream broke"))
    await serve(bridge.ServeHTTPASGI(app), ctx)
    assert got == [request(b"a", True), request(b"b", True), DISCONNECT]
    assert after == [DISCONNECT]
    assert ctx.outs == DONE


async def test_body_shorter_than_content_length_is_never_complete():
    got: List[Any] = []
    ctx = await serve_asgi(
        draining_app(got), [init("/", "POST", content_length=5, complete=False), chunk(b"ab"), chunk(b"c", True)]
    )
    assert got == [request(b"ab", True), request(b"c", True), DISCONNECT]
    assert ctx.outs == DONE


async def test_bodiless_init_with_content_length_is_never_complete():
    got: List[Any] = []
    await serve_asgi(draining_app(got), [init("/", "POST", content_length=5, complete=True)])
    assert got == [DISCONNECT]


async def test_body_longer_than_content_length_is_cut_at_it(caplog):
    got: List[Any] = []
    with caplog.at_level(logging.WARNING, logger="httpbridge"):
        ctx = await serve_asgi(draining_app(got), [init("/", "POST", content_length=3, body=b"abcdef")])
    assert got == [request(b"abc", False)]
    assert ctx.outs == DONE
    assert "longer than its content_length" in caplog.text


async def test_body_reaching_content_length_ends_before_body_complete():
    got: List[Any] = []
    ctx = await serve_asgi(
        draining_app(got),
        [init("/", "POST", content_length=3, complete=False), chunk(b"ab"), chunk(b"cd"), chunk(b"", True)],
    )
    assert got == [request(b"ab", True), request(b"c", False)]
    assert ctx.reads == 3  # the init and two chunks; the rest is not needed


async def test_empty_chunks_are_skipped():
    got: List[Any] = []
    ctx = await serve_asgi(
        draining_app(got),
        [init("/", "POST", complete=False), chunk(b""), chunk(b""), chunk(b"a"), chunk(b""), chunk(b"", True)],
    )
    assert got == [request(b"a", True), request(b"", False)]
    assert ctx.outs == DONE


async def test_messages_after_body_complete_are_ignored():
    got: List[Any] = []
    ctx = await serve_asgi(
        draining_app(got), [init("/", "POST", body=b"x"), chunk(b"zzz"), chunk(b"more", True)]
    )
    assert got == [request(b"x", False)]
    assert ctx.reads == 1
    assert ctx.outs == DONE


async def test_receive_after_the_response_is_disconnect():
    after: List[Any] = []

    async def app(scope, receive, send):
        await send(response_start(204))
        await send(response_body())
        after.append(await receive())
        after.append(await receive())

    ctx = await serve_asgi(app, [init("/", "POST", body=b"unread", complete=False)])
    assert after == [DISCONNECT, DISCONNECT]
    assert ctx.reads == 1
    assert ctx.outs == [Out(204, [], b"", False, True)]


async def test_receive_after_the_whole_body_waits_for_the_response_end():
    steps: List[Any] = []

    async def app(scope, receive, send):
        steps.append(await receive())
        waiting = asyncio.ensure_future(receive())
        await settle()
        steps.append(("done before the response", waiting.done()))
        await send(response_start(200))
        await send(response_body(b"part", more_body=True))
        await settle()
        steps.append(("done after a part", waiting.done()))
        await send(response_body(b"end"))
        steps.append(await asyncio.wait_for(waiting, 1))

    ctx = await serve_asgi(app, [init("/", "POST", body=b"all")])
    assert steps == [
        request(b"all", False),
        ("done before the response", False),
        ("done after a part", False),
        DISCONNECT,
    ]
    assert ctx.reads == 1


async def test_full_duplex_interleaving():
    """The response streams while the request body still arrives (F-B9)."""

    async def app(scope, receive, send):
        await send(response_start(200))
        while True:
            event = await receive()
            more = event["more_body"]
            await send(response_body(event["body"].upper(), more_body=more))
            if not more:
                return

    ctx = await serve_asgi(
        app, [init("/echo", "POST", body=b"a", complete=False), chunk(b"b"), chunk(b"c", True)]
    )
    assert [(kind, m if kind == "write" else m.body_chunk) for kind, m in ctx.events] == [
        ("read", b"a"),
        ("write", Out(200, [], b"A", True, False)),
        ("read", b"b"),
        ("write", Out(None, None, b"B", True, False)),
        ("read", b"c"),
        ("write", Out(None, None, b"C", False, True)),
    ]


async def test_response_after_a_timed_out_receive():
    """An app that gives up waiting for the body still answers in full,
    and no read outlives the exchange."""

    async def app(scope, receive, send):
        try:
            await asyncio.wait_for(receive(), 0.01)
        except asyncio.TimeoutError:
            pass
        await send(response_start(408))
        await send(response_body(b"too slow"))

    ctx = await serve(bridge.ServeHTTPASGI(app), FakeContext([init("/up", "POST", complete=False)], eof=False))
    assert ctx.outs == [Out(408, [], b"too slow", False, True)]


async def test_cancelled_receive_loses_no_chunk():
    """asyncio.wait_for(receive(), t), anyio's move_on_after, or Starlette's
    Request.is_disconnected() cancel a receive() that waits for the next
    chunk. grpc.aio (checked with 1.51 over a real server) loses the message
    of a cancelled context.read() and every later read returns EOF, so the
    bridge must keep its read going for the next receive()."""
    got: List[Any] = []
    timed_out = asyncio.Event()

    async def app(scope, receive, send):
        got.append(await receive())
        try:
            await asyncio.wait_for(receive(), 0.01)
        except asyncio.TimeoutError:
            timed_out.set()
        while True:
            event = await receive()
            got.append(event)
            if event["type"] != "http.request" or not event["more_body"]:
                break
        await send(response_start(200))
        await send(response_body(b"done"))

    ctx = FakeContext([init("/up", "POST", body=b"a", complete=False)], eof=False)
    task = start_task(bridge.ServeHTTPASGI(app), ctx)
    await asyncio.wait_for(timed_out.wait(), 2)
    ctx.feed(chunk(b"b"), chunk(b"c", True))
    await asyncio.wait_for(task, 2)
    assert got == [request(b"a", True), request(b"b", True), request(b"c", False)]
    assert ctx.cancelled_reads == 0
    assert ctx.outs == DONE
