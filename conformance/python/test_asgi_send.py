"""send(): http.response.start held until the first body, checked status
and headers, body events chunked and flushed (F-W1..F-W13, F-C1..F-C4 in
ASGI terms)."""

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
    init,
    response_body,
    response_start,
    serve,
    serve_asgi,
    settle,
    shape,
    start_task,
    until,
)

KIB = 1 << 10
MIB = 1 << 20


def payload(n: int) -> bytes:
    """n bytes that differ from chunk to chunk, so that a lost or repeated
    chunk shows."""
    block = bytes(range(251)) * 300
    reps = n // len(block) + 1
    return (block * reps)[:n]


def replying_app(*messages: dict):
    async def app(scope, receive, send):
        for message in messages:
            await send(message)

    return app


async def test_start_is_held_until_the_first_body():
    started = asyncio.Event()
    gate = asyncio.Event()

    async def app(scope, receive, send):
        await send(response_start(201, [(b"x-a", b"1")]))
        started.set()
        await gate.wait()
        await send(response_body(b"hi"))

    ctx = FakeContext([init()])
    task = start_task(bridge.ServeHTTPASGI(app), ctx)
    await asyncio.wait_for(started.wait(), 1)
    await settle()
    assert ctx.write_calls == 0
    gate.set()
    await asyncio.wait_for(task, 1)
    assert ctx.outs == [Out(201, [("x-a", ["1"])], b"hi", False, True)]


@pytest.mark.parametrize(
    "messages,want",
    [
        ([response_start(200), response_body(b"x")], [Out(200, [], b"x", False, True)]),
        ([response_start(204), response_body()], [Out(204, [], b"", False, True)]),
        ([response_start(200), {"type": "http.response.body"}], [Out(200, [], b"", False, True)]),
        (
            [response_start(404, [(b"content-type", b"text/plain")]), response_body(b"missing")],
            [Out(404, [("content-type", ["text/plain"])], b"missing", False, True)],
        ),
        ([response_start(200), response_body(bytearray(b"ba"))], [Out(200, [], b"ba", False, True)]),
        ([response_start(200), response_body(memoryview(b"mv"))], [Out(200, [], b"mv", False, True)]),
    ],
    ids=["one-byte", "no-body-204", "body-event-without-fields", "with-header", "bytearray", "memoryview"],
)
async def test_small_response_is_one_message(messages, want):
    ctx = await serve_asgi(replying_app(*messages), [init()])
    assert ctx.outs == want
    assert ctx.code is None


@pytest.mark.parametrize(
    "size,chunk_size,want",
    [
        (65536, 0, [(200, 65536, False, True)]),
        (65537, 0, [(200, 65536, False, False), (None, 1, False, True)]),
        (10 * MIB, 0, [(200, 65536, False, False)] + [(None, 65536, False, False)] * 158 + [(None, 65536, False, True)]),
        (
            10_000_000,
            0,
            [(200, 65536, False, False)] + [(None, 65536, False, False)] * 151 + [(None, 38528, False, True)],
        ),
        (2500, 1000, [(200, 1000, False, False), (None, 1000, False, False), (None, 500, False, True)]),
        (3000, 1000, [(200, 1000, False, False), (None, 1000, False, False), (None, 1000, False, True)]),
    ],
    ids=["64KiB", "64KiB+1", "10MiB", "10MB", "custom-2500", "custom-3000"],
)
async def test_body_is_chunked_at_the_chunk_size(size, chunk_size, want):
    data = payload(size)
    ctx = await serve_asgi(replying_app(response_start(200), response_body(data)), [init()], chunk_size=chunk_size)
    assert shape(ctx.writes) == want
    assert body_of(ctx.writes) == data


def test_chunk_size_option():
    def app(scope, receive, send):
        pass

    assert bridge.ServeHTTPASGI(app).chunk_size == bridge.SERVE_HTTP_CHUNK_SIZE == 64 * KIB
    assert bridge.ServeHTTPASGI(app, chunk_size=-5).chunk_size == 64 * KIB
    assert bridge.ServeHTTPASGI(app, chunk_size=100).chunk_size == 100
    # Never above what gRPC's default 4 MiB message limit carries.
    assert bridge.ServeHTTPASGI(app, chunk_size=64 * MIB).chunk_size == bridge.SERVE_HTTP_MAX_CHUNK_SIZE
    assert bridge.SERVE_HTTP_MAX_CHUNK_SIZE < 4 * MIB


async def test_large_chunk_size_below_grpc_limit():
    data = payload(5 * MIB)
    ctx = await serve_asgi(
        replying_app(response_start(200), response_body(data)), [init()], chunk_size=64 * MIB
    )
    size = bridge.SERVE_HTTP_MAX_CHUNK_SIZE
    assert shape(ctx.writes) == [(200, size, False, False), (None, 5 * MIB - size, False, True)]
    assert max(m.ByteSize() for m in ctx.writes) < 4 * MIB


async def test_more_body_flushes_its_last_chunk():
    data = payload(65537)
    ctx = await serve_asgi(
        replying_app(response_start(200), response_body(data, more_body=True), response_body(b"")), [init()]
    )
    assert shape(ctx.writes) == [(200, 65536, False, False), (None, 1, True, False), (None, 0, False, True)]
    assert body_of(ctx.writes) == data


async def test_streamed_events_each_flushed():
    ctx = await serve_asgi(
        replying_app(
            response_start(200, [(b"content-type", b"text/event-stream")]),
            response_body(b"data: 0\n\n", more_body=True),
            response_body(b"data: 1\n\n", more_body=True),
            response_body(b"data: 2\n\n"),
        ),
        [init()],
    )
    assert ctx.outs == [
        Out(200, [("content-type", ["text/event-stream"])], b"data: 0\n\n", True, False),
        Out(None, None, b"data: 1\n\n", True, False),
        Out(None, None, b"data: 2\n\n", False, True),
    ]


async def test_empty_more_body_is_flush_only():
    """An empty body event with more_body=True is a flush of its own when
    no write is in flight (the app waits for each one to land here)."""

    async def app(scope, receive, send):
        await send(response_start(200))
        for body in (b"", b"x", b""):
            await send(response_body(body, more_body=True))
            await settle(0)
        await send(response_body(b""))

    ctx = await serve_asgi(app, [init()])
    assert ctx.outs == [
        Out(200, [], b"", True, False),
        Out(None, None, b"x", True, False),
        Out(None, None, b"", True, False),
        Out(None, None, b"", False, True),
    ]


async def test_send_waits_for_each_write():
    """Backpressure: send() returns once gRPC took every chunk, one write
    at a time (F-C4)."""
    returned = asyncio.Event()

    async def app(scope, receive, send):
        await send(response_start(200))
        await send(response_body(b"x" * 10))
        returned.set()

    ctx = FakeContext([init()])
    ctx.hold_writes()
    task = start_task(bridge.ServeHTTPASGI(app, chunk_size=4), ctx)
    for n in range(3):
        await until(lambda: ctx.writing == 1, "a write to wait")
        await settle()
        assert (len(ctx.writes), ctx.write_calls, returned.is_set()) == (n, n + 1, False)
        ctx.release_writes()
    await asyncio.wait_for(task, 1)
    assert returned.is_set()
    assert shape(ctx.writes) == [(200, 4, False, False), (None, 4, False, False), (None, 2, False, True)]


# --- protocol errors of the app ---------------------------------------------


def failing_app(errors: List[BaseException], *messages: dict, reraise: bool = True):
    """Sends messages; records the exception one of them raises."""

    async def app(scope, receive, send):
        for message in messages:
            try:
                await send(message)
            except Exception as err:
                errors.append(err)
                if reraise:
                    raise
                return

    return app


@pytest.mark.parametrize(
    "messages,error",
    [
        ([response_start(200), response_start(200)], RuntimeError),
        ([response_body(b"x")], RuntimeError),
        ([{"type": "http.response.push", "path": "/x"}], RuntimeError),
        ([response_start(200), response_body("text")], TypeError),
    ],
    ids=["start-twice", "body-before-start", "unknown-type", "str-body"],
)
async def test_protocol_error_raises_and_gives_500(messages, error):
    errors: List[BaseException] = []
    ctx = await serve_asgi(failing_app(errors, *messages), [init()])
    assert [type(e) for e in errors] == [error]
    assert ctx.outs == INTERNAL_ERROR


async def test_body_after_complete_raises_and_sends_nothing():
    errors: List[BaseException] = []
    ctx = await serve_asgi(
        failing_app(errors, response_start(200), response_body(b"a"), response_body(b"b"), reraise=False), [init()]
    )
    assert [type(e) for e in errors] == [RuntimeError]
    assert ctx.outs == [Out(200, [], b"a", False, True)]
    assert ctx.code is None


@pytest.mark.parametrize("status", [0, 99, 1000, -200, True, "200", None, 200.0])
async def test_bad_status_raises_before_anything_is_sent(status):
    errors: List[BaseException] = []
    ctx = await serve_asgi(failing_app(errors, response_start(status), response_body(b"x")), [init()])
    assert len(errors) == 1 and isinstance(errors[0], (ValueError, TypeError))
    assert ctx.outs == INTERNAL_ERROR


@pytest.mark.parametrize("status", [100, 599, 999])
async def test_status_range(status):
    ctx = await serve_asgi(replying_app(response_start(status), response_body()), [init()])
    assert ctx.outs == [Out(status, [], b"", False, True)]


@pytest.mark.parametrize(
    "header",
    [
        (b"bad name", b"v"),
        (b"", b"v"),
        (b"x:y", b"v"),
        (b"x-a", b"a\r\nx-injected: 1"),
        (b"x-a", b"a\nb"),
        (b"x-a", b"a\rb"),
        (b"x-a", b"a\x00b"),
        (b"x-a", b"a\x7fb"),
        (b"x-a", b"\xff\xfe"),
        ("x-a", "v"),
        (b"x-a", "v"),
        ("x-a", b"v"),
    ],
    ids=[
        "space-in-name",
        "empty-name",
        "colon-in-name",
        "crlf-in-value",
        "lf-in-value",
        "cr-in-value",
        "nul-in-value",
        "del-in-value",
        "non-utf8-value",
        "str-pair",
        "str-value",
        "str-name",
    ],
)
async def test_bad_header_raises_before_anything_is_sent(header):
    errors: List[BaseException] = []
    ctx = await serve_asgi(
        failing_app(errors, response_start(200, [(b"x-ok", b"1"), header]), response_body(b"x")), [init()]
    )
    assert len(errors) == 1 and isinstance(errors[0], (ValueError, TypeError))
    assert ctx.outs == INTERNAL_ERROR


async def test_headers_grouped_lowercased_and_trailer_dropped():
    headers: List[Any] = [
        (b"Set-Cookie", b"a=1"),
        (b"X-A", b"1"),
        (b"Trailer", b"X-Checksum"),
        [b"set-cookie", b"b=2"],  # a list pair, as some apps send
        (b"X-Tab", b"a\tb"),
        (b"X-Utf8", "café".encode()),
        (b"X-Empty", b""),
    ]
    ctx = await serve_asgi(replying_app(response_start(200, headers), response_body(b"x")), [init()])
    assert ctx.outs == [
        Out(
            200,
            [
                ("set-cookie", ["a=1", "b=2"]),
                ("x-a", ["1"]),
                ("x-tab", ["a\tb"]),
                ("x-utf8", ["café"]),
                ("x-empty", [""]),
            ],
            b"x",
            False,
            True,
        )
    ]




async def test_body_beyond_content_length_before_sending_is_500():
    errors: List[BaseException] = []
    ctx = await serve_asgi(
        failing_app(errors, response_start(200, [(b"content-length", b"3")]), response_body(b"abcd")), [init()]
    )
    assert [type(e) for e in errors] == [RuntimeError]
    assert ctx.outs == INTERNAL_ERROR


async def test_body_beyond_content_length_after_sending_aborts():
    errors: List[BaseException] = []
    ctx = await serve_asgi(
        failing_app(
            errors,
            response_start(200, [(b"content-length", b"3")]),
            response_body(b"ab", more_body=True),
            response_body(b"cd"),
        ),
        [init()],
    )
    assert [type(e) for e in errors] == [RuntimeError]
    assert ctx.outs == [Out(200, [("content-length", ["3"])], b"ab", True, False)]
    assert ctx.code == grpc.StatusCode.ABORTED


@pytest.mark.parametrize("value", ["\u0661\u0662", "\u00b2", "1_0", "+3", "0x3"])
async def test_content_length_of_other_than_ascii_digits_is_no_limit(value):
    """RFC 9110 section 8.6: a length is ASCII digits; "١٢" is not 12."""
    header = (b"content-length", value.encode())
    ctx = await serve_asgi(replying_app(response_start(200, [header]), response_body(b"x" * 20)), [init()])
    assert ctx.outs == [Out(200, [("content-length", [value])], b"x" * 20, False, True)]


async def test_body_within_content_length():
    ctx = await serve_asgi(
        replying_app(
            response_start(200, [(b"content-length", b"3")]),
            response_body(b"ab", more_body=True),
            response_body(b"c"),
        ),
        [init()],
    )
    assert ctx.outs == [
        Out(200, [("content-length", ["3"])], b"ab", True, False),
        Out(None, None, b"c", False, True),
    ]




async def test_concurrent_sends_are_serialized():
    """A keep-alive task pings while the stream sends its events, as SSE
    libraries do; a multi-chunk body event stays in one piece."""
    errors: List[BaseException] = []
    event = b"E" * 10

    async def app(scope, receive, send):
        await send(response_start(200, [(b"content-type", b"text/event-stream")]))

        async def sender(body: bytes) -> None:
            try:
                for _ in range(3):
                    await send(response_body(body, more_body=True))
            except Exception as err:
                errors.append(err)
                raise

        await asyncio.gather(sender(b":\n\n"), sender(event))
        await send(response_body(b""))

    ctx = FakeContext([init()])
    ctx.write_yields = 2
    await serve(bridge.ServeHTTPASGI(app, chunk_size=4), ctx)
    assert errors == [] and ctx.overlapping_writes == 0
    assert ctx.outs[-1].complete
    body = body_of(ctx.writes)
    assert body.count(event) == 3 and body.count(b":\n\n") == 3


# --- a broken stream ------------------------------------------------------------


async def test_failed_write_makes_later_sends_raise_oserror():
    """gRPC refuses writes once the host cancelled, before the handler is
    told: a refused write is a client that left."""
    errors: List[BaseException] = []
    after: List[Any] = []

    async def app(scope, receive, send):
        await send(response_start(200))
        await send(response_body(b"a", more_body=True))  # in flight: it returns
        await settle(0)  # the write lands, refused
        for data in (b"b", b"c"):
            try:
                await send(response_body(data, more_body=True))
            except Exception as err:
                errors.append(err)
        after.append(await receive())

    ctx = FakeContext([init("/", "POST", body=b"x", complete=False)], eof=False)
    ctx.break_stream()
    await serve(bridge.ServeHTTPASGI(app), ctx)
    assert [isinstance(e, OSError) for e in errors] == [True, True]
    assert after == [{"type": "http.disconnect"}]
    assert ctx.writes == [] and ctx.write_calls == 1
    assert ctx.code is None


# --- write-behind -------------------------------------------------------------


async def test_write_behind_holds_one_write_in_flight_and_one_chunk_waiting():
    """send() with more_body=True returns while one message is in flight
    and at most one chunk's worth waits behind it; the next event waits
    for room. Each write that lands sends what waits at once."""
    returned: List[int] = []

    async def app(scope, receive, send):
        await send(response_start(200))
        for i in range(5):
            await send(response_body(b"%4d" % i, more_body=True))
            returned.append(i)
        await send(response_body(b""))

    ctx = FakeContext([init()])
    ctx.hold_writes()
    task = start_task(bridge.ServeHTTPASGI(app, chunk_size=4), ctx)
    for landed in range(4):
        await until(lambda: ctx.writing == 1, "a write in flight")
        await settle()
        # Written, one in flight, and one waiting: that many sends returned.
        assert (len(ctx.writes), returned) == (landed, list(range(landed + 2)))
        ctx.release_writes()
    ctx.free_writes()
    await asyncio.wait_for(task, 1)
    assert [(o.body, o.flush, o.complete) for o in ctx.outs] == [(b"%4d" % i, True, False) for i in range(5)] + [(b"", False, True)]


async def test_write_behind_joins_the_events_that_wait():
    """Events that come while a write is in flight go out together, in one
    flushed message, as soon as it lands; the final message waits for
    them, and send() of it returns once it was written."""
    ctx = FakeContext([init()])
    ctx.hold_writes()
    app = replying_app(
        response_start(200),
        response_body(b"a", more_body=True),
        response_body(b"b", more_body=True),
        response_body(b"c", more_body=True),
        response_body(b"!"),
    )
    task = start_task(bridge.ServeHTTPASGI(app), ctx)
    await until(lambda: ctx.writing == 1, "the first write")
    await settle()
    assert ctx.write_calls == 1
    ctx.free_writes()
    await asyncio.wait_for(task, 1)
    assert ctx.outs == [
        Out(200, [], b"a", True, False),
        Out(None, None, b"bc", True, False),
        Out(None, None, b"!", False, True),
    ]


async def test_write_behind_paced_events_go_out_one_by_one():
    """An app that sends its next event only once the client has the one
    before (a paced event stream) gets each in a message of its own."""

    async def app(scope, receive, send):
        await send(response_start(200))
        for i in range(4):
            await send(response_body(b"event %d" % i, more_body=True))
            await until(lambda: len(ctx.writes) == i + 1, "the event to reach the host")
        await send(response_body(b""))

    ctx = FakeContext([init()])
    ctx.write_yields = 2
    await serve(bridge.ServeHTTPASGI(app), ctx)
    assert [(o.body, o.flush) for o in ctx.outs] == [(b"event %d" % i, True) for i in range(4)] + [(b"", False)]


async def test_write_behind_sends_what_waits_before_a_failure_aborts():
    """An app that fails after its sends returned: what they left waiting
    still goes out, then the stream ends aborted."""

    async def app(scope, receive, send):
        await send(response_start(200))
        await send(response_body(b"a", more_body=True))
        await send(response_body(b"b", more_body=True))
        raise RuntimeError("boom")

    ctx = FakeContext([init()])
    ctx.write_yields = 1
    await serve(bridge.ServeHTTPASGI(app), ctx)
    assert [(o.body, o.complete) for o in ctx.outs] == [(b"a", False), (b"b", False)]
    assert ctx.code == grpc.StatusCode.ABORTED


async def test_write_behind_a_send_that_timed_out_leaves_the_next_one_whole():
    """A send() given up while it waited for room (asyncio.wait_for, an
    anyio cancel scope) does not spoil the waits of the sends after it."""
    seen: List[str] = []

    async def app(scope, receive, send):
        await send(response_start(200))
        await send(response_body(b"aaaa", more_body=True))  # in flight, held
        await send(response_body(b"bbbb", more_body=True))  # waits
        try:
            await asyncio.wait_for(send(response_body(b"cccc", more_body=True)), 0.05)
        except asyncio.TimeoutError:
            seen.append("timed out")
        await send(response_body(b"dddd", more_body=True))  # waits for room
        seen.append("sent")
        await send(response_body(b""))

    ctx = FakeContext([init()])
    ctx.hold_writes()
    task = start_task(bridge.ServeHTTPASGI(app, chunk_size=4), ctx)
    await until(lambda: seen, "the timeout")
    await settle()
    assert seen == ["timed out"]
    ctx.free_writes()
    await asyncio.wait_for(task, 1)
    assert seen == ["timed out", "sent"]
    assert [o.body for o in ctx.outs] == [b"aaaa", b"bbbb", b"dddd", b""]


async def test_write_behind_an_app_that_gives_up_has_its_bytes_written_then_aborts():
    """After a send that timed out, the app returns without finishing: what
    it sent goes out, and only then does the stream end aborted."""

    gave_up: List[str] = []

    async def app(scope, receive, send):
        await send(response_start(200))
        await send(response_body(b"aaaa", more_body=True))
        await send(response_body(b"bbbb", more_body=True))
        try:
            await asyncio.wait_for(send(response_body(b"cccc", more_body=True)), 0.05)
        except asyncio.TimeoutError:
            gave_up.append("returned")

    ctx = FakeContext([init()])
    ctx.hold_writes()
    task = start_task(bridge.ServeHTTPASGI(app, chunk_size=4), ctx)
    await until(lambda: gave_up, "the app to give up")
    await settle()
    assert not task.done() and ctx.writing == 1
    ctx.free_writes()
    await asyncio.wait_for(task, 1)
    assert [o.body for o in ctx.outs] == [b"aaaa", b"bbbb"]
    assert ctx.code == grpc.StatusCode.ABORTED


async def test_write_behind_a_joined_message_over_the_send_limit_fails_the_next_send(caplog):
    """Events joined behind a write may make a message over the send limit:
    refused before the write, logged, reported by the app's next send(),
    and the stream ends aborted."""
    errors: List[str] = []

    async def app(scope, receive, send):
        await send(response_start(200))
        await send(response_body(b"a", more_body=True))  # in flight
        for _ in range(4):
            await send(response_body(b"bb", more_body=True))  # joined: 8 bytes
        try:
            await send(response_body(b"c", more_body=True))
        except Exception as err:
            errors.append(type(err).__name__)
            raise

    ctx = FakeContext([init()])
    ctx.hold_writes()
    task = start_task(bridge.ServeHTTPASGI(app, chunk_size=8, max_send_message_length=10), ctx)
    await until(lambda: ctx.writing == 1, "the first write")
    await settle()
    with caplog.at_level(logging.ERROR, logger="httpbridge"):
        ctx.free_writes()
        await asyncio.wait_for(task, 1)
    assert errors == ["_SendFailed"]
    assert "over the send limit" in caplog.text
    assert [o.body for o in ctx.outs] == [b"a"]
    assert ctx.code == grpc.StatusCode.ABORTED
