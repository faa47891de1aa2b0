"""The WSGI facades: environ, wsgi.input streaming from the stream on demand,
each item of the app's iterable sent and flushed, start_response with
exc_info, close(), and the same failure rules as ASGI.

Every test runs against both facades: ServeHTTPWSGI on the grpc.aio
stream, and ServeHTTPThreadedWSGI played as grpcio's synchronous server
would (conftest's SyncRPC) over the same scripted stream."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import sys
import wsgiref.validate
from typing import Any, Callable, Dict, Iterator, List

import grpc
import pytest

from conftest import (
    INTERNAL_ERROR,
    WSGI_KINDS,
    FakeContext,
    Out,
    body_of,
    bridge,
    chunk,
    init,
    serve,
    settle,
    shape,
    start_task,
    until,
    wsgi_facade,
)

# The facade the tests of this module serve with, set by the kind fixture.
KIND = "aio"
_made: List[Any] = []


@pytest.fixture(autouse=True, params=WSGI_KINDS)
def kind(request: Any) -> Iterator[str]:
    global KIND
    KIND = request.param
    yield KIND
    for facade in _made:
        if KIND == "threads":
            facade.facade.shutdown()
    _made.clear()


def make(app: Callable[..., Any], **options: Any) -> Any:
    facade = wsgi_facade(KIND, app, **options)
    _made.append(facade)
    return facade


def wsgi(app: Callable[..., Any], executor: Any, **options: Any) -> Any:
    return make(app, executor=executor, **options)


async def serve_wsgi(app: Callable[..., Any], executor: Any, messages: List[Any], **options: Any) -> FakeContext:
    return await serve(wsgi(app, executor, **options), FakeContext(messages))


def environ_app(seen: List[Dict[str, Any]]):
    def app(environ, start_response):
        seen.append(dict(environ))
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    return app


OK = [Out(200, [("content-length", ["2"])], b"ok", False, True)]


# --- environ ------------------------------------------------------------------


async def test_environ(executor):
    seen: List[Dict[str, Any]] = []
    msg = init(
        "/caf%C3%A9/a%2Fb?q=%20x&y",
        "POST",
        headers=[
            ("Content-Type", ["application/json"]),
            ("X-Multi", ["a", "b"]),
            ("Accept", ["*/*"]),
            ("x-multi", ["c"]),
            ("Content-Length", ["2"]),
            ("X-Utf8", ["café"]),
        ],
        host="example.com:8080",
        remote_addr="[2001:db8::1]:5555",
        body=b"{}",
    )
    ctx = await serve_wsgi(environ_app(seen), executor, [msg], root_path="/plugins/x")
    assert ctx.outs == OK
    env = seen[0]
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/plugins/x"
    # PEP 3333: the decoded bytes of the path, as Latin-1.
    assert env["PATH_INFO"] == "/caf\xc3\xa9/a/b" == "/café/a/b".encode().decode("latin-1")
    assert env["QUERY_STRING"] == "q=%20x&y"
    assert env["CONTENT_TYPE"] == "application/json"
    assert env["CONTENT_LENGTH"] == "2"
    assert env["HTTP_X_MULTI"] == "a,b,c"
    assert env["HTTP_ACCEPT"] == "*/*"
    assert env["HTTP_HOST"] == "example.com:8080"
    assert env["HTTP_X_UTF8"] == "café".encode().decode("latin-1")
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.com", "8080")
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("2001:db8::1", "5555")
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.multithread"] is True and env["wsgi.multiprocess"] is False and env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert env["httpbridge.init"].url == "/caf%C3%A9/a%2Fb?q=%20x&y"
    for key, value in env.items():
        if not key.startswith(("wsgi.", "httpbridge.")):
            assert type(value) is str, key


@pytest.mark.parametrize(
    "msg,want",
    [
        (init("/", "GET"), {"SERVER_PORT": "80", "REMOTE_ADDR": "192.0.2.1", "REMOTE_PORT": "1234"}),
        (init("/", "POST", complete=False), {"CONTENT_LENGTH": None}),
        (init("https://example.com/s", host="example.com"), {"wsgi.url_scheme": "https", "SERVER_PORT": "443"}),
        (init("/", proto="HTTP/2.0", proto_major=2, proto_minor=0), {"SERVER_PROTOCOL": "HTTP/2"}),
        (init("/", proto="HTTP/1.0", proto_major=1, proto_minor=0), {"SERVER_PROTOCOL": "HTTP/1.0"}),
        (init("/", "", remote_addr=""), {"REQUEST_METHOD": "GET", "REMOTE_ADDR": None}),
        (init("//evil/secret?x"), {"PATH_INFO": "//evil/secret", "QUERY_STRING": "x"}),
    ],
    ids=["get", "unknown-length", "https", "http2", "http10", "defaults", "double-slash"],
)
async def test_environ_fields(executor, msg, want):
    seen: List[Dict[str, Any]] = []
    await serve_wsgi(environ_app(seen), executor, [msg, chunk(b"", True)])
    assert {key: seen[0].get(key) for key in want} == want


async def test_bad_target_is_400_and_app_not_called(executor):
    seen: List[Dict[str, Any]] = []
    ctx = await serve_wsgi(environ_app(seen), executor, [init("/a%zz")])
    assert ctx.outs == [
        Out(
            400,
            [("content-type", ["text/plain; charset=utf-8"]), ("x-content-type-options", ["nosniff"])],
            b"Bad Request\n",
            False,
            True,
        )
    ]
    assert seen == []


async def test_pep3333_validator(executor):
    """wsgiref.validate checks the environ, start_response, wsgi.input and
    that close() is called."""

    def app(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"got " + body]

    for msg in (init("/v?x=1", "POST", body=b"data"), init("/")):
        ctx = await serve_wsgi(wsgiref.validate.validator(app), executor, [msg])
        assert ctx.outs[-1].complete
        assert body_of(ctx.writes) == b"got " + msg.body_chunk


# --- wsgi.input -----------------------------------------------------------------


async def test_input_streams_on_demand(executor):
    got: List[Any] = []
    ctx = FakeContext([init("/up", "POST", complete=False)], eof=False)

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        for size in (3, 3, -1):
            got.append((stream.read(size), ctx.reads))
        start_response("200 OK", [])
        return []

    task = start_task(wsgi(app, executor), ctx)
    await until(lambda: ctx.reading, "the first read")
    assert (ctx.reads, got) == (2, [])
    ctx.feed(chunk(b"abcdef"))
    await until(lambda: len(got) == 2, "two reads from one chunk")
    assert got == [(b"abc", 2), (b"def", 2)]  # the second read took no message
    await until(lambda: ctx.reading, "the third read")
    assert ctx.reads == 3
    ctx.feed(chunk(b"gh"))
    await until(lambda: ctx.reads == 4 and ctx.reading, "read() to ask for more")
    assert len(got) == 2
    ctx.feed(chunk(b"", True))
    await asyncio.wait_for(task, 2)
    assert got[2] == (b"gh", 4)
    assert ctx.outs == [Out(200, [], b"", False, True)]


BODY = [init("/", "POST", body=b"ab\ncd", complete=False), chunk(b""), chunk(b"ef\n"), chunk(b"gh", True)]


@pytest.mark.parametrize(
    "read,want",
    [
        (lambda s: [s.read()], [b"ab\ncdef\ngh"]),
        (lambda s: [s.read(None)], [b"ab\ncdef\ngh"]),
        (lambda s: [s.read(0), s.read(4), s.read(100), s.read(), s.read(1)], [b"", b"ab\nc", b"def\ngh", b"", b""]),
        (lambda s: [s.readline() for _ in range(5)], [b"ab\n", b"cdef\n", b"gh", b"", b""]),
        (lambda s: [s.readline(2), s.readline(5), s.readline(3), s.readline(-1)], [b"ab", b"\n", b"cde", b"f\n"]),
        (lambda s: list(s), [b"ab\n", b"cdef\n", b"gh"]),
        (lambda s: s.readlines(), [b"ab\n", b"cdef\n", b"gh"]),
        (lambda s: [s.read1(100), s.read1(2), s.read1(100), s.read1(100)], [b"ab\ncd", b"ef", b"\n", b"gh"]),
    ],
    ids=["read", "read-none", "read-n", "readline", "readline-size", "iterate", "readlines", "read1"],
)
async def test_input_reads(executor, read, want):
    got: List[Any] = []

    def app(environ, start_response):
        got.extend(read(environ["wsgi.input"]))
        start_response("204 No Content", [])
        return []

    ctx = await serve_wsgi(app, executor, list(BODY))
    assert got == want
    assert ctx.outs == [Out(204, [], b"", False, True)]


async def test_input_of_a_bodiless_request(executor):
    got: List[Any] = []

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        got.extend([stream.read(), stream.readline(), stream.read(10)])
        start_response("204 No Content", [])
        return []

    ctx = await serve_wsgi(app, executor, [init()])
    assert got == [b"", b"", b""]
    assert ctx.reads == 1


@pytest.mark.parametrize(
    "messages",
    [
        [init("/", "POST", body=b"ab", complete=False), chunk(b"cd")],  # then EOF
        [init("/", "POST", body=b"ab", content_length=10, complete=False), chunk(b"cd", True)],
    ],
    ids=["stream-ends", "shorter-than-content-length"],
)
async def test_truncated_input_raises_oserror(executor, messages):
    got: List[Any] = []

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        got.append(stream.read(2))
        try:
            stream.read()
        except OSError:
            got.append(OSError)
        start_response("400 Bad Request", [])
        return [b"cut"]

    ctx = await serve_wsgi(app, executor, messages)
    assert got == [b"ab", OSError]
    assert body_of(ctx.writes) == b"cut"


async def test_input_longer_than_content_length_is_cut(executor):
    got: List[Any] = []

    def app(environ, start_response):
        got.append(environ["wsgi.input"].read())
        start_response("200 OK", [])
        return []

    await serve_wsgi(app, executor, [init("/", "POST", body=b"abcdef", content_length=4)])
    assert got == [b"abcd"]


# --- the response ---------------------------------------------------------------


class Iterable:
    """A response iterable that records close()."""

    def __init__(self, items: List[Any], log: List[str], fail_at: int = -1) -> None:
        self.items, self.log, self.fail_at = items, log, fail_at

    def __iter__(self) -> Iterator[bytes]:
        for i, item in enumerate(self.items):
            if i == self.fail_at:
                raise RuntimeError("iteration failed")
            yield item

    def close(self) -> None:
        self.log.append("close")


def items_app(status: str, headers: List[Any], items: List[Any], log: List[str], fail_at: int = -1):
    def app(environ, start_response):
        start_response(status, headers)
        return Iterable(items, log, fail_at)

    return app


async def test_each_item_is_sent_and_flushed(executor):
    log: List[str] = []
    ctx = await serve_wsgi(items_app("200 OK", [("X-A", "1")], [b"a", b"", b"bc"], log), executor, [init()])
    assert ctx.outs == [
        Out(200, [("x-a", ["1"])], b"a", True, False),
        Out(None, None, b"bc", True, False),
        Out(None, None, b"", False, True),
    ]
    assert log == ["close"]


async def test_items_stream_as_they_come(executor):
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def gen():
        yield b"first"
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(2)
        yield b"second"

    def app(environ, start_response):
        start_response("200 OK", [])
        return gen()

    ctx = FakeContext([init()])
    task = start_task(wsgi(app, executor), ctx)
    await until(lambda: ctx.writes, "the first item")
    await settle()
    assert ctx.outs == [Out(200, [], b"first", True, False)]
    release.set()
    await asyncio.wait_for(task, 2)
    assert shape(ctx.writes) == [(200, 5, True, False), (None, 6, True, False), (None, 0, False, True)]


async def test_items_wait_for_their_writes(executor):
    """Backpressure: the iterable is asked for its next item only once
    gRPC took the previous one."""
    asked: List[int] = []

    def gen():
        for i in range(3):
            asked.append(i)
            yield b"%d" % i

    def app(environ, start_response):
        start_response("200 OK", [])
        return gen()

    ctx = FakeContext([init()])
    ctx.hold_writes()
    task = start_task(wsgi(app, executor), ctx)
    for n in range(3):
        await until(lambda: ctx.writing and len(ctx.writes) == n, "a write to wait")
        await settle()
        assert (asked, len(ctx.writes)) == (list(range(n + 1)), n)
        ctx.release_writes()
    ctx.free_writes()
    await asyncio.wait_for(task, 2)
    assert [o.body for o in ctx.outs] == [b"0", b"1", b"2", b""]


async def test_content_length_response_is_one_message(executor):
    log: List[str] = []
    ctx = await serve_wsgi(items_app("200 OK", [("Content-Length", "5")], [b"hello"], log), executor, [init()])
    assert ctx.outs == [Out(200, [("content-length", ["5"])], b"hello", False, True)]
    assert log == ["close"]


async def test_content_length_ends_with_the_item_reaching_it(executor):
    log: List[str] = []
    ctx = await serve_wsgi(
        items_app("200 OK", [("Content-Length", "5")], [b"ab", b"cde", b""], log), executor, [init()]
    )
    assert ctx.outs == [
        Out(200, [("content-length", ["5"])], b"ab", True, False),
        Out(None, None, b"cde", False, True),
    ]
    assert log == ["close"]


async def test_large_content_length_item_is_chunked(executor):
    data = bytes(range(256)) * 400
    ctx = await serve_wsgi(
        items_app("200 OK", [("Content-Length", str(len(data)))], [data], []), executor, [init()]
    )
    assert shape(ctx.writes) == [(200, 65536, False, False), (None, len(data) - 65536, False, True)]
    assert body_of(ctx.writes) == data


async def test_fewer_bytes_than_content_length_end_normally(executor):
    ctx = await serve_wsgi(items_app("200 OK", [("Content-Length", "5")], [b"ab"], []), executor, [init()])
    assert ctx.outs == [Out(200, [("content-length", ["5"])], b"ab", True, False), Out(None, None, b"", False, True)]


async def test_exceeding_content_length_before_sending_is_500(executor):
    log: List[str] = []
    ctx = await serve_wsgi(items_app("200 OK", [("Content-Length", "3")], [b"abcd"], log), executor, [init()])
    assert ctx.outs == INTERNAL_ERROR
    assert log == ["close"]


async def test_exceeding_content_length_after_sending_aborts(executor):
    log: List[str] = []
    ctx = await serve_wsgi(items_app("200 OK", [("Content-Length", "3")], [b"ab", b"cd"], log), executor, [init()])
    assert ctx.outs == [Out(200, [("content-length", ["3"])], b"ab", True, False)]
    assert ctx.code == grpc.StatusCode.ABORTED
    assert log == ["close"]


async def test_write_callable(executor):
    def app(environ, start_response):
        write = start_response("200 OK", [])
        write(b"w")
        return [b"i"]

    ctx = await serve_wsgi(app, executor, [init()])
    assert ctx.outs == [
        Out(200, [], b"w", True, False),
        Out(None, None, b"i", True, False),
        Out(None, None, b"", False, True),
    ]


async def test_headers_checked_grouped_and_trailer_dropped(executor):
    headers = [
        ("Set-Cookie", "a=1"),
        ("Trailer", "X-Sum"),
        ("set-cookie", "b=2"),
        ("X-Utf8", "café".encode().decode("latin-1")),  # UTF-8 bytes, as PEP 3333 carries them
    ]
    ctx = await serve_wsgi(items_app("201 Created", headers, [], []), executor, [init()])
    assert ctx.outs == [Out(201, [("set-cookie", ["a=1", "b=2"]), ("x-utf8", ["café"])], b"", False, True)]


@pytest.mark.parametrize(
    "status,headers",
    [
        ("2000 OK", []),
        ("20 OK", []),
        ("abc", []),
        ("200OK", []),
        ("099 Low", []),
        (b"200 OK", []),
        (200, []),
        ("200 OK", [("Bad Name", "v")]),
        ("200 OK", [("X-A", "a\r\nX-Injected: 1")]),
        ("200 OK", [("X-A", "a\nb")]),
        ("200 OK", [(b"X-A", "v")]),
        ("200 OK", [("X-A", 1)]),
        ("200 OK", [("X-A", "caf\xe9")]),  # Latin-1 bytes: not UTF-8, which the bridge carries
        ("200 OK", [("X-A", "\u20ac")]),  # not Latin-1 at all
    ],
)
async def test_bad_status_or_header_is_500(executor, status, headers):
    log: List[str] = []
    ctx = await serve_wsgi(items_app(status, headers, [b"x"], log), executor, [init()])
    assert ctx.outs == INTERNAL_ERROR


async def test_status_without_reason(executor):
    ctx = await serve_wsgi(items_app("204", [], [], []), executor, [init()])
    assert ctx.outs == [Out(204, [], b"", False, True)]


async def test_start_response_with_exc_info_before_headers_sent(executor):
    def app(environ, start_response):
        start_response("200 OK", [("X-A", "1")])
        try:
            raise ValueError("failed")
        except ValueError:
            start_response("503 Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"error page"]

    ctx = await serve_wsgi(app, executor, [init()])
    assert ctx.outs == [
        Out(503, [("content-type", ["text/plain"])], b"error page", True, False),
        Out(None, None, b"", False, True),
    ]


async def test_start_response_with_exc_info_after_headers_sent_reraises(executor):
    raised: List[Any] = []
    log: List[str] = []

    def gen(start_response):
        try:
            yield b"part"
            raise ValueError("failed")
        except ValueError as err:
            try:
                start_response("500 Error", [], sys.exc_info())
            except ValueError as again:
                raised.append(again is err)
                raise
        finally:
            log.append("generator closed")

    def app(environ, start_response):
        start_response("200 OK", [])
        return gen(start_response)

    ctx = await serve_wsgi(app, executor, [init()])
    assert raised == [True]
    assert ctx.outs == [Out(200, [], b"part", True, False)]
    assert ctx.code == grpc.StatusCode.ABORTED
    assert log == ["generator closed"]


async def test_start_response_inside_the_generator(executor):
    """PEP 3333 lets the iterable call start_response before its first item."""

    def app(environ, start_response):
        start_response("200 OK", [("X-Early", "1")])

        def gen():
            start_response("202 Accepted", [("X-Late", "1")], None)
            yield b"x"

        return gen()

    def lazy(environ, start_response):
        def gen():
            start_response("202 Accepted", [("X-Late", "1")])
            yield b""
            yield b"x"

        return gen()

    ctx = await serve_wsgi(lazy, executor, [init()])
    assert ctx.outs == [Out(202, [("x-late", ["1"])], b"x", True, False), Out(None, None, b"", False, True)]
    ctx = await serve_wsgi(app, executor, [init()])
    assert ctx.outs == INTERNAL_ERROR  # a second start_response needs exc_info


async def test_start_response_twice_without_exc_info_is_500(executor):
    def app(environ, start_response):
        start_response("200 OK", [])
        start_response("201 Created", [])
        return [b"x"]

    ctx = await serve_wsgi(app, executor, [init()])
    assert ctx.outs == INTERNAL_ERROR


async def test_no_start_response_is_500(executor):
    log: List[str] = []

    def app(environ, start_response):
        return Iterable([], log)

    ctx = await serve_wsgi(app, executor, [init()])
    assert ctx.outs == INTERNAL_ERROR
    assert log == ["close"]


async def test_item_before_start_response_is_500(executor):
    def app(environ, start_response):
        yield b"too early"

    ctx = await serve_wsgi(app, executor, [init()])
    assert ctx.outs == INTERNAL_ERROR


async def test_exception_before_start_response_is_500_without_its_text(executor, caplog):
    def app(environ, start_response):
        raise KeyError("secret detail")

    ctx = await serve_wsgi(app, executor, [init("/boom?token=t0k3n")])
    assert ctx.outs == INTERNAL_ERROR
    assert "WSGI app failed" in caplog.text and "t0k3n" not in caplog.text


async def test_exception_in_the_iterable_before_the_first_item_is_500(executor):
    log: List[str] = []
    ctx = await serve_wsgi(items_app("200 OK", [("X-A", "1")], [b"x"], log, fail_at=0), executor, [init()])
    assert ctx.outs == INTERNAL_ERROR
    assert log == ["close"]


async def test_exception_after_an_item_aborts(executor):
    log: List[str] = []
    ctx = await serve_wsgi(items_app("200 OK", [], [b"a", b"b"], log, fail_at=1), executor, [init()])
    assert ctx.outs == [Out(200, [], b"a", True, False)]
    assert ctx.code == grpc.StatusCode.ABORTED and ctx.details
    assert log == ["close"]


async def test_close_failure_is_logged(executor, caplog):
    class Failing(Iterable):
        def close(self) -> None:
            raise RuntimeError("close failed")

    def app(environ, start_response):
        start_response("200 OK", [])
        return Failing([b"x"], [])

    ctx = await serve_wsgi(app, executor, [init()])
    assert ctx.outs[-1].complete
    assert "close failed" in caplog.text


async def test_write_failure_raises_oserror_in_the_app(executor):
    errors: List[Any] = []
    log: List[str] = []

    def gen():
        try:
            yield b"a"
        except GeneratorExit:
            log.append("closed")
            raise

    def app(environ, start_response):
        write = start_response("200 OK", [])
        try:
            write(b"x")
        except OSError:
            errors.append(OSError)
        return gen()

    ctx = FakeContext([init()])
    ctx.break_stream()
    await serve(wsgi(app, executor), ctx)
    # The threaded facade frees the server's thread as soon as the host
    # is gone, while the app runs on.
    await until(lambda: log, "the app to close its iterable")
    assert errors == [OSError]
    assert log == ["closed"]
    assert ctx.writes == [] and ctx.code is None


async def test_cancel_while_the_app_reads_input(executor):
    got: List[Any] = []
    log: List[str] = []

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        got.append(stream.read(1))
        try:
            stream.read(1)
        except OSError:
            got.append(OSError)
        try:
            start_response("200 OK", [])
            return Iterable([b"late"], log)
        finally:
            got.append("returned")

    ctx = FakeContext([init("/up", "POST", body=b"a", complete=False)], eof=False)
    task = start_task(wsgi(app, executor), ctx)
    await until(lambda: got and ctx.reading, "the app to wait for the body")
    task.cancel()
    ctx.cancel_rpc()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)
    await until(lambda: log, "close()")
    assert got == [b"a", OSError, "returned"]
    assert ctx.writes == []


async def test_cancel_while_a_write_waits(executor):
    errors: List[Any] = []
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def app(environ, start_response):
        write = start_response("200 OK", [])
        try:
            write(b"blocked")
        except OSError:
            errors.append(OSError)
        try:
            write(b"after")
        except OSError:
            errors.append(OSError)

        class Last(Iterable):
            def close(self) -> None:  # the worker's last step
                loop.call_soon_threadsafe(done.set)

        return Last([], [])

    ctx = FakeContext([init()], eof=False)
    ctx.hold_writes()
    task = start_task(wsgi(app, executor), ctx)
    await until(lambda: ctx.writing, "the write to wait")
    task.cancel()
    ctx.cancel_rpc()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)
    await asyncio.wait_for(done.wait(), 2)
    assert errors == [OSError, OSError]
    assert ctx.writes == []




async def test_underscore_header_cannot_spoof_a_dash_header(executor):
    """Mattermost deletes a client's Mattermost-User-Id and sets its own
    only for a valid session; Go canonicalizes names on '-' only, so a
    client's Mattermost_User_Id passes through. gunicorn (22+), nginx and
    Django's runserver drop such headers when building the environ."""
    seen: List[Dict[str, Any]] = []
    anonymous = init("/", headers=[("Mattermost_User_Id", ["victim"]), ("Content_Type", ["text/evil"])])
    signed_in = init("/", headers=[("Mattermost_User_Id", ["victim"]), ("Mattermost-User-Id", ["me"])])
    await serve_wsgi(environ_app(seen), executor, [anonymous])
    await serve_wsgi(environ_app(seen), executor, [signed_in])
    assert seen[0].get("HTTP_MATTERMOST_USER_ID") is None
    assert seen[0].get("CONTENT_TYPE") is None
    assert seen[1].get("HTTP_MATTERMOST_USER_ID") == "me"


async def test_dash_headers_still_reach_the_environ(executor):
    seen: List[Dict[str, Any]] = []
    await serve_wsgi(environ_app(seen), executor, [init("/", headers=[("Mattermost-User-Id", ["me"])])])
    assert seen[0]["HTTP_MATTERMOST_USER_ID"] == "me"


# --- worker threads, timeouts and files ---------------------------------------


async def test_a_stream_cancelled_before_a_worker_was_free_never_reaches_the_app():
    """One worker, busy; the second request's host cancels while it waits
    for the worker: its app must never run, side effects included."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-one")
    release = threading.Event()
    called: List[str] = []

    def app(environ, start_response):
        called.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/busy":
            release.wait(5)
        start_response("200 OK", [])
        return [b"ok"]

    try:
        facade = wsgi(app, pool)
        busy = start_task(facade, FakeContext([init("/busy")], eof=False))
        await until(lambda: called == ["/busy"], "the worker to be busy")
        queued_ctx = FakeContext([init("/queued")], eof=False)
        queued = start_task(facade, queued_ctx)
        await settle()
        queued.cancel()
        queued_ctx.cancel_rpc()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(queued, 1)
        release.set()
        await asyncio.wait_for(busy, 2)
        await asyncio.get_running_loop().run_in_executor(pool, lambda: None)  # the queued call ran
        assert called == ["/busy"]
        assert queued_ctx.writes == []
    finally:
        release.set()
        pool.shutdown(wait=True)


async def test_max_workers_bounds_the_threads_and_shutdown_stops_them():
    running = threading.Semaphore(0)
    release = threading.Event()
    peak: List[int] = []
    lock = threading.Lock()
    active = [0]

    def app(environ, start_response):
        with lock:
            active[0] += 1
            peak.append(active[0])
        running.release()
        release.wait(5)
        with lock:
            active[0] -= 1
        start_response("200 OK", [])
        return [b"ok"]

    facade = make(app, max_workers=2)
    contexts = [FakeContext([init(f"/{i}")]) for i in range(4)]
    tasks = [start_task(facade, ctx) for ctx in contexts]
    await until(lambda: len(peak) == 2, "two apps to run")
    await settle()
    assert len(peak) == 2  # the other two wait for a worker
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert max(peak) == 2 and all(ctx.outs[-1].complete for ctx in contexts)
    before = {t.name for t in threading.enumerate()}
    assert any(name.startswith("httpbridge-wsgi") for name in before)
    await facade.shutdown()
    await until(
        lambda: not any(t.name.startswith("httpbridge-wsgi") for t in threading.enumerate()), "the workers to stop"
    )


async def test_a_stalled_upload_fails_after_read_timeout(caplog):
    got: List[Any] = []

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        got.append(stream.read(1))
        try:
            stream.read(1)
        except OSError as err:
            got.append(str(err))
            raise
        start_response("200 OK", [])
        return [b"never"]

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        ctx = FakeContext([init("/stalled", "POST", body=b"a", complete=False)], eof=False)
        with caplog.at_level(logging.ERROR, logger="httpbridge"):
            await asyncio.wait_for(wsgi(app, pool, read_timeout=0.05).handle(iter(()), ctx), 3)
        assert got[0] == b"a" and "read_timeout" in got[1]
        assert ctx.outs == INTERNAL_ERROR
        assert "WSGI app failed (path /stalled)" in caplog.text
    finally:
        pool.shutdown(wait=True)


async def test_file_wrapper_sends_chunk_size_messages(executor, tmp_path):
    """Flask's send_file hands the file to wsgi.file_wrapper with 8 KiB
    blocks; the bridge reads a chunk's worth at a time instead."""
    data = bytes(range(256)) * 4096  # 1 MiB
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    closed: List[bool] = []

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", str(len(data)))])
        f = open(path, "rb")
        wrapper = environ["wsgi.file_wrapper"](f, 8192)
        original = wrapper.close

        def close() -> None:
            original()
            closed.append(f.closed)

        wrapper.close = close
        return wrapper

    ctx = await serve_wsgi(app, executor, [init("/file")])
    assert body_of(ctx.writes) == data
    assert [len(o.body) for o in ctx.outs] == [65536] * 16
    assert ctx.outs[-1].complete
    assert closed == [True]
