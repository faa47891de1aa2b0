"""Shared pieces of the pytest suite of the generated Python bridge.

The module under test is gen/python/mattermost/pluginapi/v1/
hooks_http_httpbridge.py. Its facades serve one HTTP exchange per gRPC
stream using only context.read(), context.write(), context.set_code() and
context.set_details(), so most tests drive them with FakeContext: a
scripted stream with no network, whose reads can wait until the test
releases the next message and whose writes are recorded (and can wait or
fail).

Test functions may be coroutines: this conftest runs each one in a fresh
event loop (no pytest-asyncio needed), bounded by TEST_TIMEOUT, and fails a
test that leaves a task running behind it. HTTPBRIDGE_LOOP=uvloop makes
that uvloop's loop, as run_plugin_hooks picks it when uvloop is installed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import os
import sys
import threading
from typing import Any, Callable, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import pytest

# The generated package comes from PYTHONPATH (TestPytest sets it to
# gen/python; point it at a patched copy to try a fix), else from gen/python.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
try:
    import mattermost.pluginapi.v1.hooks_http_httpbridge  # noqa: F401
except ImportError:
    sys.path.append(os.path.join(ROOT, "gen", "python"))

import grpc  # noqa: E402

from mattermost.pluginapi.v1 import hooks_http_httpbridge as bridge  # noqa: E402
from mattermost.pluginapi.v1 import hooks_http_pb2 as pb  # noqa: E402

EOF = grpc.aio.EOF

def _new_loop() -> asyncio.AbstractEventLoop:
    if os.environ.get("HTTPBRIDGE_LOOP", "asyncio") == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


# How long one test may run; a bridge that hangs fails instead of blocking
# the suite.
TEST_TIMEOUT = 10.0


# --- running coroutine tests -------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Optional[bool]:
    func = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        return None
    names = inspect.signature(func).parameters
    kwargs = {name: value for name, value in pyfuncitem.funcargs.items() if name in names}
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        runner.run(_run_test(func, kwargs))
    return True


async def _run_test(func: Callable[..., Any], kwargs: dict) -> None:
    test = asyncio.ensure_future(func(**kwargs))
    done, _ = await asyncio.wait({test}, timeout=TEST_TIMEOUT)
    if not done:
        test.cancel()
        await asyncio.wait({test}, timeout=1)
        pytest.fail(f"the test did not finish within {TEST_TIMEOUT} s")
    test.result()  # raises what the test raised
    me = asyncio.current_task()
    left: List[asyncio.Task] = []
    for _ in range(50):
        left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if not left:
            return
        await asyncio.sleep(0.001)
    pytest.fail(f"tasks outlived the test: {left}")


# --- waiting ------------------------------------------------------------------


async def until(cond: Callable[[], Any], what: str = "the condition", timeout: float = 3.0) -> None:
    """Waits until cond() is true, polling the event loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


async def settle(seconds: float = 0.02) -> None:
    """Lets every runnable task run, so that what should not happen would."""
    for _ in range(10):
        await asyncio.sleep(0)
    await asyncio.sleep(seconds)


# --- request messages ---------------------------------------------------------


def init(
    url: str = "/",
    method: str = "GET",
    *,
    headers: Sequence[Tuple[str, Sequence[str]]] = (),
    host: str = "example.com",
    remote_addr: str = "192.0.2.1:1234",
    proto: str = "HTTP/1.1",
    proto_major: int = 1,
    proto_minor: int = 1,
    request_uri: Optional[str] = None,
    content_length: Optional[int] = None,
    body: bytes = b"",
    complete: bool = True,
    plugin_context: Any = None,
) -> pb.ServeHTTPRequest:
    """The first request message, as the Go host sends it.

    content_length defaults to the body's length for a complete request and
    to -1 (unknown) otherwise.
    """
    if content_length is None:
        content_length = len(body) if complete else -1
    msg = pb.ServeHTTPRequest()
    i = msg.init
    i.method = method
    i.url = url
    i.proto = proto
    i.proto_major = proto_major
    i.proto_minor = proto_minor
    i.host = host
    i.remote_addr = remote_addr
    i.request_uri = url if request_uri is None else request_uri
    i.content_length = content_length
    for key, values in headers:
        i.headers.add(key=key, values=list(values))
    if plugin_context is not None:
        i.plugin_context.CopyFrom(plugin_context)
    if body:
        msg.body_chunk = body
    if complete:
        msg.body_complete = True
    return msg


def chunk(data: bytes = b"", complete: bool = False) -> pb.ServeHTTPRequest:
    """A later request message: a body chunk, body_complete on the last."""
    msg = pb.ServeHTTPRequest()
    if data:
        msg.body_chunk = data
    if complete:
        msg.body_complete = True
    return msg


# --- response messages --------------------------------------------------------


class Out(NamedTuple):
    """One ServeHTTPResponse, in comparable form."""

    status: Optional[int]  # None: the message has no init
    headers: Optional[List[Tuple[str, List[str]]]]
    body: bytes
    flush: bool
    complete: bool


def out(msg: pb.ServeHTTPResponse) -> Out:
    if msg.HasField("init"):
        status: Optional[int] = msg.init.status_code
        headers: Optional[List[Tuple[str, List[str]]]] = [(h.key, list(h.values)) for h in msg.init.headers]
    else:
        status, headers = None, None
    return Out(status, headers, msg.body_chunk, msg.flush, msg.body_complete)


def shape(msgs: Iterable[pb.ServeHTTPResponse]) -> List[Tuple[Optional[int], int, bool, bool]]:
    """(status or None, chunk length, flush, complete) of each message."""
    return [(o.status, len(o.body), o.flush, o.complete) for o in map(out, msgs)]


def body_of(msgs: Iterable[pb.ServeHTTPResponse]) -> bytes:
    return b"".join(m.body_chunk for m in msgs)


PLAIN_HEADERS = [("content-type", ["text/plain; charset=utf-8"]), ("x-content-type-options", ["nosniff"])]


def rejected(status: int, reason: str) -> List[Out]:
    """The single message of a request the bridge answers itself."""
    return [Out(status, PLAIN_HEADERS, (reason + "\n").encode(), False, True)]


INTERNAL_ERROR = rejected(500, "Internal Server Error")
BAD_REQUEST = rejected(400, "Bad Request")


# --- the scripted stream ------------------------------------------------------


class StreamBroken(grpc.RpcError):
    """What FakeContext.write raises once the stream is broken: an error of
    gRPC's, as grpc.aio's ExecuteBatchError for a cancelled call."""


class TooManyOperations(Exception):
    """What FakeContext.write raises for a write while another one is
    pending, as grpc.aio does ("Failed grpc_call_start_batch: 8")."""


class FakeContext:
    """A scripted grpc.aio ServicerContext for one ServeHTTP stream.

    read() returns the messages given to the constructor or feed(), in
    order, then EOF if eof=True (or once end() is called); while none is
    there it waits, so the test decides when the next message exists.
    write() records a copy of each message; hold_writes() makes writes wait
    until release_writes(), write_yields makes each take that many turns of
    the event loop, and break_stream() makes them raise. Like grpc.aio, a
    write while another one is pending fails (counted in
    overlapping_writes). set_code() and set_details() are recorded.

    Like grpc.aio (1.51, checked over a real server), a read cannot be
    taken back: once a read() is cancelled while it waits, the message it
    would have read is lost and every later read returns EOF at once. The
    fake counts such reads in cancelled_reads.
    """

    def __init__(self, messages: Iterable[Any] = (), *, eof: bool = True) -> None:
        self._inbox: "asyncio.Queue[Any]" = asyncio.Queue()
        for msg in messages:
            self._inbox.put_nowait(msg)
        if eof:
            self._inbox.put_nowait(EOF)
        self.reads = 0  # read() calls made
        self.reading = False  # a read() is waiting for its message
        self.cancelled_reads = 0
        self._read_broken = False
        self.writes: List[pb.ServeHTTPResponse] = []
        self.write_calls = 0
        self.writing = 0  # write() calls in progress
        self.write_yields = 0
        self.overlapping_writes = 0
        self._credit: Optional[int] = None  # None: writes are not held
        self._credit_changed = asyncio.Event()
        self._write_error: Optional[BaseException] = None
        self.code: Optional[grpc.StatusCode] = None
        self.details: Optional[str] = None
        self.events: List[Tuple[str, Any]] = []  # ("read", msg) and ("write", Out), in order
        self.on_cancel: List[Callable[[], None]] = []  # told of cancel_rpc(), as SyncRPC is

    # The test's side.

    def feed(self, *messages: Any) -> None:
        for msg in messages:
            self._inbox.put_nowait(msg)

    def end(self) -> None:
        """The host half-closes: read() returns EOF after what was fed."""
        self._inbox.put_nowait(EOF)

    def fail_reads(self, err: BaseException) -> None:
        """The next read (after what was fed) raises err."""
        self._inbox.put_nowait(err)

    @property
    def unread(self) -> int:
        """Messages fed that no read() has taken yet."""
        return self._inbox.qsize()

    def hold_writes(self) -> None:
        self._credit = 0

    def release_writes(self, n: int = 1) -> None:
        assert self._credit is not None, "writes are not held"
        self._credit += n
        self._credit_changed.set()

    def free_writes(self) -> None:
        self._credit = None
        self._credit_changed.set()

    def break_stream(self, err: Optional[BaseException] = None) -> None:
        """Writes (waiting or later) raise, as on a cancelled stream."""
        self._write_error = err or StreamBroken("stream closed")
        self._credit_changed.set()

    def cancel_rpc(self) -> None:
        """What grpc.aio does to a cancelled RPC's reads and writes: a
        waiting read and later ones return EOF, writes raise."""
        self._read_broken = True
        self._inbox.put_nowait(EOF)
        self.break_stream(StreamBroken("rpc cancelled"))
        for hook in self.on_cancel:
            hook()

    @property
    def outs(self) -> List[Out]:
        return [out(m) for m in self.writes]

    # The servicer context's side.

    async def read(self) -> Any:
        self.reads += 1
        if self._read_broken:
            return EOF
        self.reading = True
        try:
            item = await self._inbox.get()
        except asyncio.CancelledError:
            self.cancelled_reads += 1
            self._read_broken = True
            raise
        finally:
            self.reading = False
        if isinstance(item, BaseException):
            raise item
        self.events.append(("read", item))
        return item

    async def write(self, message: pb.ServeHTTPResponse) -> None:
        assert isinstance(message, pb.ServeHTTPResponse), f"write({type(message).__name__})"
        self.write_calls += 1
        if self.writing:
            self.overlapping_writes += 1
            raise TooManyOperations("Failed grpc_call_start_batch: 8")
        self.writing += 1
        try:
            for _ in range(self.write_yields):
                await asyncio.sleep(0)
            while self._write_error is None and self._credit == 0:
                self._credit_changed.clear()
                await self._credit_changed.wait()
        finally:
            self.writing -= 1
        if self._write_error is not None:
            raise self._write_error
        if self._credit is not None:
            self._credit -= 1
        copy = pb.ServeHTTPResponse()
        copy.CopyFrom(message)
        self.writes.append(copy)
        self.events.append(("write", out(copy)))

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details


# --- serving ------------------------------------------------------------------


async def serve(facade: Any, ctx: FakeContext, timeout: float = 5.0) -> FakeContext:
    """Runs facade.handle on ctx to its end."""
    await asyncio.wait_for(facade.handle(iter(()), ctx), timeout)
    return ctx


async def serve_asgi(app: Any, messages: Iterable[Any], **options: Any) -> FakeContext:
    """Serves app over a stream of messages (then EOF), without lifespan."""
    return await serve(bridge.ServeHTTPASGI(app, **options), FakeContext(messages))


def start_task(facade: Any, ctx: FakeContext) -> "asyncio.Task[None]":
    return asyncio.ensure_future(facade.handle(iter(()), ctx))


async def cancel_handle(task: "asyncio.Task[None]") -> None:
    """Cancels a handle() task as grpc.aio does the servicer's on a host's
    cancel, and waits for it to end so."""
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)


async def end_stream(task: "asyncio.Task[None]") -> None:
    """What the host does once it has body_complete: it cancels the stream,
    which grpc.aio turns into a cancel of the servicer's task if that still
    runs; the facade's returns once the final message was written."""
    if not task.done():
        task.cancel()
    try:
        await asyncio.wait_for(task, 1)
    except asyncio.CancelledError:
        pass


@pytest.fixture
def executor() -> Iterable[concurrent.futures.ThreadPoolExecutor]:
    """Worker threads for a WSGI facade, shut down after the test."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="test-wsgi")
    yield pool
    pool.shutdown(wait=False, cancel_futures=True)


def response_start(status: int = 200, headers: Sequence[Tuple[bytes, bytes]] = ()) -> dict:
    return {"type": "http.response.start", "status": status, "headers": list(headers)}


def response_body(body: bytes = b"", more_body: bool = False) -> dict:
    return {"type": "http.response.body", "body": body, "more_body": more_body}


# --- grpcio's synchronous server, over the scripted stream ----------------------


class SyncRPC:
    """One RPC of grpcio's synchronous server (grpc/_server.py, 1.51), played
    over a FakeContext: the request iterator and the servicer context that
    a threaded facade's handle() gets, and the server's loop that writes
    what it yields.

    As grpcio does: next() on the iterator waits for a message, ends with
    StopIteration at EOF and raises grpc.RpcError once the RPC was
    cancelled; the server asks the generator for its next message only once
    the previous one was written, and stops asking (dropping the generator)
    once the RPC is no longer active; callbacks run once the RPC ended,
    cancelled or with its status; set_code() after the status is ignored.
    A cancel is the host's: ctx.cancel_rpc(), the handle() task cancelled,
    or a write that fails.
    """

    def __init__(self, ctx: FakeContext, loop: asyncio.AbstractEventLoop) -> None:
        self._ctx = ctx
        self._loop = loop
        self._lock = threading.Lock()
        self.cancelled = False
        self.statused = False
        self._callbacks: Optional[List[Callable[[], None]]] = []
        self._pending: "set[concurrent.futures.Future[Any]]" = set()
        ctx.on_cancel.append(self.cancel)

    # The request iterator.

    def __iter__(self) -> "SyncRPC":
        return self

    def __next__(self) -> Any:
        if self.cancelled:
            raise grpc.RpcError()
        if self.statused:
            raise StopIteration
        future = asyncio.run_coroutine_threadsafe(self._ctx.read(), self._loop)
        with self._lock:
            self._pending.add(future)
        try:
            msg = future.result()
        except concurrent.futures.CancelledError:
            msg = EOF
        finally:
            with self._lock:
                self._pending.discard(future)
        if self.cancelled:
            raise grpc.RpcError()
        if msg is EOF:
            raise StopIteration
        return msg

    # The servicer context.

    def add_callback(self, callback: Callable[[], None]) -> bool:
        with self._lock:
            if self._callbacks is None:
                return False
            self._callbacks.append(callback)
            return True

    def set_code(self, code: grpc.StatusCode) -> None:
        if not self.statused:
            self._ctx.set_code(code)

    def set_details(self, details: str) -> None:
        if not self.statused:
            self._ctx.set_details(details)

    # The server.

    def _end(self) -> None:
        with self._lock:
            callbacks, self._callbacks = self._callbacks, None
            pending = list(self._pending)
        for future in pending:
            future.cancel()
        for callback in callbacks or ():
            callback()

    def cancel(self) -> None:
        self.cancelled = True
        self._end()

    def serve(self, handle: Callable[[Any, Any], Iterator[Any]]) -> None:
        """The server's thread: writes what handle() yields."""
        responses = handle(self, self)
        try:
            for msg in responses:
                if self.cancelled:
                    break
                future = asyncio.run_coroutine_threadsafe(self._ctx.write(msg), self._loop)
                with self._lock:
                    self._pending.add(future)
                try:
                    future.result()
                except (Exception, concurrent.futures.CancelledError):
                    self.cancel()
                finally:
                    with self._lock:
                        self._pending.discard(future)
                if self.cancelled:
                    break
        finally:
            responses.close()  # what dropping it does in CPython
        if not self.cancelled:
            self.statused = True
            self._end()


class Threaded:
    """A threaded WSGI facade made to look like a grpc.aio one for the tests:
    handle() plays one SyncRPC over the FakeContext in a thread of its own,
    and raises CancelledError at once when cancelled, as grpc.aio's
    handler would."""

    def __init__(self, facade: Any) -> None:
        self.facade = facade
        self.chunk_size = facade.chunk_size

    async def handle(self, request_iterator: Any, ctx: FakeContext) -> None:
        loop = asyncio.get_running_loop()
        rpc = SyncRPC(ctx, loop)
        done: "asyncio.Future[None]" = loop.create_future()

        def run() -> None:
            try:
                rpc.serve(self.facade.handle)
            except BaseException as err:  # grpcio would log it and fail the RPC
                settle_done(lambda: done.done() or done.set_exception(err))
            else:
                settle_done(lambda: done.done() or done.set_result(None))

        def settle_done(how: Callable[[], Any]) -> None:
            try:
                loop.call_soon_threadsafe(how)
            except RuntimeError:
                pass  # the test is over and its loop closed

        threading.Thread(target=run, name="test-grpc-server", daemon=True).start()
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            rpc.cancel()
            raise

    async def shutdown(self, grace: Optional[float] = None) -> None:
        self.facade.shutdown(grace)


WSGI_KINDS = ["aio", "threads"]


def wsgi_facade(kind: str, app: Any, **options: Any) -> Any:
    """A WSGI facade of kind "aio" (ServeHTTPWSGI) or "threads"
    (ServeHTTPThreadedWSGI, wrapped in Threaded)."""
    if kind == "threads":
        return Threaded(bridge.ServeHTTPThreadedWSGI(app, **options))
    return bridge.ServeHTTPWSGI(app, **options)
