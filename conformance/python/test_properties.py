"""Property-based tests of the ASGI and WSGI facades, the threaded WSGI one
too: fuzzed like the Go side's FuzzPlugin (issue 17, section 6).

Hypothesis draws, for each exchange:

- what the host does (Host): the request messages (an init with or without
  a body; a content_length that is right, unknown, zero, too small or too
  large; chunks of random sizes; body_complete on the last message, on an
  empty message of its own, early with more chunks after it, or never; a
  second init later in the stream), how fast it sends them, whether it
  half-closes the stream or holds it open, whether and when it cancels the
  rpc (at a random moment, before a given request message, after a given
  response message, and, as the Go host does, as soon as it has
  body_complete), how many turns of the event loop each write takes, and
  the facade's chunk size;
- what the app does (AsgiPlan, WsgiPlan): full reads, partial reads,
  receives it gives up on, no reads; a response start (or none), body parts
  with more_body, a final body event (or none), all interleaved with reads;
  exceptions, including asyncio.CancelledError raised by the app itself, at
  every await point; work after its response; and, for ASGI, either one
  task or Starlette's StreamingResponse pattern (the body streamed by one
  task beside another that listens for http.disconnect, the first to end
  stopping the other, then background work).

Each exchange runs in a fresh event loop on a FakeContext, and check()
asserts what must hold whatever the facade's exact messages:

P1 It ends. handle() returns within HANDLE_DEADLINE; it raises
   CancelledError only if the host cancelled its task, and a write error
   (the cancelled rpc refusing a write, which grpc.aio only logs) only if
   the host cancelled the rpc.
P2 Nothing outlives it. Once handle() ended and the loop settled, no asyncio
   task is left running and no WSGI worker is still busy; the WSGI
   iterable was closed.
P3 The framing is valid. No write overlaps another; init is on the first
   message only; body_complete is on the last only, and never with a
   failure status; no chunk is larger than the chunk size.
P4 The client gets what the app sent. The first message carries the app's
   status and headers, and the body is a prefix of the app's body bytes;
   body_complete only when the app sent its whole response; or else the
   bridge's own 500, only when nothing of the app's went out.
P5 Failures are reported. Unless the host cancelled before the response was
   complete: an app that completed its response gets body_complete; an app
   that failed, raised (CancelledError too) or returned without completing
   gets 500 when nothing went out, and an aborted stream (code ABORTED, no
   body_complete) when something did. (When a write of the app's was cut
   off in flight, the bridge cannot know whether it went out: 500 or an
   aborted stream.) Never a stream that just ends without a word.
P6 A complete response is not a client that left. The app is never
   cancelled by the bridge unless the host cancelled before the response
   was complete; once the host has the app's body_complete, whatever the
   app does next (background work, cleanup) runs to its end even if the
   host then cancels, as the Go host does right away.
P7 The request body is the host's. The app never receives more than the
   host sent (cut at a declared length), gets the end of the body
   (more_body=False, or EOF from wsgi.input) only for a whole body (the
   host's body_complete with at least the declared length, or the declared
   length reached), and is told the client went away (http.disconnect,
   OSError from wsgi.input) only when it did: the host cancelled, the host
   has the app's complete response, or the request stream ended short.

Examples per test: HTTPBRIDGE_HYPOTHESIS=ci (the default: a fixed set of
examples, no database, so that CI is deterministic and writes nothing) or
long (thousands of random ones); HTTPBRIDGE_HYPOTHESIS_EXAMPLES=N sets the
count for either. Hypothesis needs Debian's python3-hypothesis; without it
this module is skipped, except where CI is set, where it fails.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Generator, List, MutableMapping, Optional, Sequence, Tuple, Union

import grpc
import pytest

# Importing hypothesis writes a cache to ./.hypothesis: keep it out of the
# work tree.
_STORAGE = os.path.join(tempfile.gettempdir(), "httpbridge-hypothesis")
_saved_storage = os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY")
os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = _STORAGE
try:
    import hypothesis.configuration
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError as err:  # pragma: no cover
    if os.environ.get("CI"):
        raise
    pytest.skip(f"hypothesis not found: {err}", allow_module_level=True)
finally:
    if _saved_storage is None:
        os.environ.pop("HYPOTHESIS_STORAGE_DIRECTORY", None)
    else:
        os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = _saved_storage
hypothesis.configuration.set_hypothesis_home_dir(_STORAGE)

from conftest import INTERNAL_ERROR, FakeContext, Out, StreamBroken, bridge, chunk, init, out, pb, wsgi_facade  # noqa: E402

# --- settings -----------------------------------------------------------------

# How long handle() may take: exchanges end in milliseconds, so only a hang
# gets near it.
HANDLE_DEADLINE = float(os.environ.get("HTTPBRIDGE_HYPOTHESIS_DEADLINE", "3"))
# How long what the app does after its response may take once handle() ended.
SETTLE = 1.0
# How long a host that holds its stream open waits for progress before its
# client gives up and it cancels.
GIVE_UP = 0.02


def _settings() -> settings:
    profile = os.environ.get("HTTPBRIDGE_HYPOTHESIS", "ci")
    counts = {"ci": 200, "long": 5000}
    if profile not in counts:
        raise ValueError(f"HTTPBRIDGE_HYPOTHESIS={profile!r}: want ci or long")
    examples = int(os.environ.get("HTTPBRIDGE_HYPOTHESIS_EXAMPLES", "0")) or counts[profile]
    return settings(
        max_examples=examples,
        derandomize=profile == "ci",
        database=None,
        deadline=None,
        print_blob=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


SETTINGS = _settings()

# --- what the host does -------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """The request messages and how the host ends its side."""

    chunks: Tuple[bytes, ...]
    in_init: bool  # the first chunk rides in the init message
    length: str  # content_length: exact, unknown (-1), zero, less (than sent) or more
    complete: str  # body_complete: last (message), separate (empty message), early, missing
    early_at: int  # "early": the message that has it (modulo their number)
    late_init_at: Optional[int]  # where a second init goes (modulo), if any
    pace: Tuple[int, ...]  # event loop turns before each later message
    end: str  # eof: half-close after the last message; hold: keep the stream open


@dataclass(frozen=True)
class Cancel:
    """When the host cancels the rpc (both halves: its reads and writes, and
    the servicer task), if ever."""

    when: str  # never, tick (after n*3 turns), fed (instead of request message n), written (after response message n)
    n: int
    on_complete: bool  # as soon as it has body_complete, as the Go host does
    rpc_first: bool  # which half first
    gap: int  # event loop turns between the halves


@dataclass(frozen=True)
class Host:
    upload: Upload
    cancel: Cancel
    write_yields: int  # event loop turns each write takes before the host has the message
    chunk_size: int  # the facade's; 0 means the default


def pattern(index: int, size: int) -> bytes:
    """size bytes that differ from chunk to chunk, with some newlines."""
    alphabet = b"abcdefghijklmnopqrstuvwxyz\n"
    return bytes(alphabet[(index * 7 + j) % len(alphabet)] for j in range(size))


def request_messages(up: Upload) -> List[pb.ServeHTTPRequest]:
    """The host's messages for an upload."""
    body = b"".join(up.chunks)
    declared = {"exact": len(body), "unknown": -1, "zero": 0, "less": max(len(body) - 2, 0), "more": len(body) + 3}[up.length]
    rest = list(up.chunks)
    first = rest.pop(0) if up.in_init and rest else b""
    msgs = [init("/upload?q=1", "POST", content_length=declared, body=first, complete=False)]
    msgs += [chunk(data) for data in rest]
    if up.late_init_at is not None:
        late = init("/late", "PUT", content_length=4, body=b"LATE", complete=False)
        msgs.insert(1 + up.late_init_at % len(msgs), late)
    if up.complete == "last":
        msgs[-1].body_complete = True
    elif up.complete == "separate":
        msgs.append(chunk(b"", True))
    elif up.complete == "early":
        msgs[up.early_at % len(msgs)].body_complete = True
    return msgs


def request_body(fed: Sequence[pb.ServeHTTPRequest]) -> Tuple[bytes, bool]:
    """What the facade may give the app of the messages the host sent, and
    whether that is the whole body (F-Q7, F-B2..F-B4, F-B10).

    A declared length of 0 means no body only for an init that completes
    the request without a chunk; otherwise the length is unknown. The body
    ends at the first body_complete (later messages are ignored) and at the
    declared length (the excess is dropped); it is whole if it reached the
    declared length, or, with an unknown length, if body_complete came.
    """
    if not fed:
        return b"", False
    first = fed[0]
    declared = first.init.content_length
    if first.body_complete and not first.body_chunk and declared <= 0:
        declared = 0
    elif declared <= 0:
        declared = -1
    data = b""
    completed = False
    for msg in fed:
        data += msg.body_chunk
        if msg.body_complete:
            completed = True
            break
    if declared >= 0:
        return data[:declared], len(data) >= declared
    return data, completed


@st.composite
def hosts(draw: Callable[..., Any]) -> Host:
    sizes = draw(st.lists(st.integers(0, 7), max_size=4))
    upload = Upload(
        chunks=tuple(pattern(i, n) for i, n in enumerate(sizes)),
        in_init=draw(st.booleans()),
        length=draw(st.sampled_from(["exact", "exact", "unknown", "zero", "less", "more"])),
        complete=draw(st.sampled_from(["last", "last", "separate", "early", "missing"])),
        early_at=draw(st.integers(0, 4)),
        late_init_at=draw(st.none() | st.integers(0, 4)),
        pace=tuple(draw(st.lists(st.integers(0, 3), min_size=1, max_size=6))),
        end=draw(st.sampled_from(["eof", "eof", "hold"])),
    )
    cancel = Cancel(
        when=draw(st.sampled_from(["never", "never", "tick", "fed", "written"])),
        n=draw(st.integers(0, 8)),
        on_complete=draw(st.booleans()),
        rpc_first=draw(st.booleans()),
        gap=draw(st.integers(0, 2)),
    )
    return Host(upload, cancel, write_yields=draw(st.integers(0, 2)), chunk_size=draw(st.sampled_from([0, 1, 3, 7])))


# --- what the app does --------------------------------------------------------

Op = Tuple[Union[str, int, bytes], ...]
"""One step of an app: ("yield", n), ("raise", "error" | "cancel"),
("work",); ASGI: ("recv",), ("recv_all",), ("recv_cancel", n) (a receive()
given up after n turns), ("send", body) (more_body=True); WSGI: ("read", n)
(n=-1: all), ("readline",), ("item", body) (write() before returning, a
yielded item in the iterable)."""

ASGI_STATUSES = [200, 201, 204, 404, 500]
WSGI_STATUSES = {200: "200 OK", 201: "201 Created", 204: "204 No Content", 404: "404 Not Found", 500: "500 Oops"}
APP_HEADERS = [("x-app", ["1"])]
NO_BODY_STATUSES = (204, 304)


@dataclass(frozen=True)
class AsgiPlan:
    before: Tuple[Op, ...]  # before the response
    start: Optional[int]  # http.response.start's status; None: never sent
    parts: Tuple[Op, ...]  # body parts (more_body=True) among other steps
    final: Optional[bytes]  # the last body event; None: never sent
    after: Tuple[Op, ...]  # after the response (background work)
    style: str  # plain: one task; listener: Starlette's StreamingResponse


@dataclass(frozen=True)
class WsgiPlan:
    before: Tuple[Op, ...]  # in the app callable, before start_response
    start: Optional[int]  # start_response's status; None: never called
    writes: Tuple[Op, ...]  # in the app callable after start_response: write() calls
    items: Tuple[Op, ...]  # in the returned iterable


_body = st.binary(max_size=12)
_yield = st.tuples(st.just("yield"), st.integers(1, 3))
_raise = st.tuples(st.just("raise"), st.sampled_from(["error", "cancel"]))
_work = st.just(("work",))
_recv = st.sampled_from([("recv",), ("recv_all",)]) | st.tuples(st.just("recv_cancel"), st.integers(0, 3))
_send = st.tuples(st.just("send"), _body)
_read = st.tuples(st.just("read"), st.sampled_from([-1, 1, 3, 100])) | st.just(("readline",))
_item = st.tuples(st.just("item"), _body)


@st.composite
def asgi_plans(draw: Callable[..., Any], style: str) -> AsgiPlan:
    return AsgiPlan(
        before=tuple(draw(st.lists(_recv | _yield | _raise, max_size=3))),
        start=draw(st.sampled_from(ASGI_STATUSES + [200, None])),
        parts=tuple(draw(st.lists(_send | _send | _recv | _yield | _raise, max_size=4))),
        final=draw(st.none() | _body | _body),
        after=tuple(draw(st.lists(_work | _yield | _recv | _raise, max_size=3))),
        style=style,
    )


@st.composite
def wsgi_plans(draw: Callable[..., Any]) -> WsgiPlan:
    return WsgiPlan(
        before=tuple(draw(st.lists(_read | _yield | _raise, max_size=3))),
        start=draw(st.sampled_from(list(WSGI_STATUSES) + [200, None])),
        writes=tuple(draw(st.lists(_item | _read | _raise, max_size=2))),
        items=tuple(draw(st.lists(_item | _item | _read | _yield | _raise, max_size=4))),
    )


class AppFailure(Exception):
    """What an app raises when its plan says so."""


@dataclass
class AppLog:
    """What the app did and was told, for check()."""

    start: Optional[int] = None  # the status it sent or passed to start_response
    body: bytearray = field(default_factory=bytearray)  # every body byte it tried to send
    final_called: bool = False  # it began its last body event / its iterable ended
    final_returned: bool = False  # ... and that returned
    outcome: str = "running"  # returned, raised (its own exception), cancelled (not by itself), failed
    error: Optional[BaseException] = None
    raised: Optional[str] = None  # "error" or "cancel" once it raised on purpose
    received: List[Tuple[bytes, bool]] = field(default_factory=list)  # (data, the body ended)
    # Each time it was told that the client went away: why it may have been
    # (None: no reason), and what it was told.
    disconnects: List[Tuple[Optional[str], str]] = field(default_factory=list)
    steps: int = 0  # steps done, as the host's sign of progress
    stream_stopped: bool = False  # listener style: the app stopped its own stream
    closed: Optional[bool] = None  # WSGI: None before the iterable exists
    tail: int = 0  # steps of "after" that ran

    def failed(self, err: BaseException) -> None:
        self.error = err
        if isinstance(err, asyncio.CancelledError):
            self.outcome = "raised" if self.raised == "cancel" else "cancelled"
        elif isinstance(err, AppFailure):
            self.outcome = "raised"
        else:
            self.outcome = "failed"

    @property
    def completed(self) -> bool:
        """The app completed its response (as far as it knows)."""
        return self.start is not None and self.final_returned


def scripted_raise(log: AppLog, kind: Union[str, int, bytes]) -> None:
    log.raised = str(kind)
    if kind == "cancel":
        raise asyncio.CancelledError()
    raise AppFailure("the app fails on purpose")


class AsgiApp:
    """An ASGI app that follows an AsgiPlan."""

    def __init__(self, plan: AsgiPlan, log: AppLog, end_reason: Callable[[], Optional[str]]) -> None:
        self.plan = plan
        self.log = log
        self.end_reason = end_reason
        self.body_ended = False  # a receive() now would wait for the response's end
        self.listening = False  # a listener task owns receive()
        self.receive: Any = None
        self.send: Any = None

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        self.receive, self.send = receive, send
        try:
            await self.run(self.plan.before)
            if self.plan.style == "listener":
                await self.stream_beside_listener()
            else:
                await self.stream()
            await self.run(self.plan.after, tail=True)
        except BaseException as err:
            self.log.failed(err)
            raise
        self.log.outcome = "returned"

    async def stream(self) -> None:
        if self.plan.start is not None:
            self.log.start = self.plan.start
            await self.send({"type": "http.response.start", "status": self.plan.start, "headers": [(b"x-app", b"1")]})
        await self.run(self.plan.parts)
        if self.plan.final is not None:
            await self.send_body(self.plan.final, more=False)

    async def stream_beside_listener(self) -> None:
        """Starlette's StreamingResponse: the first of the stream and the
        disconnect listener to end stops the other."""

        async def listen() -> None:
            while (await self.received())["type"] != "http.disconnect":
                pass

        self.listening = True
        streaming = asyncio.ensure_future(self.stream())
        listening = asyncio.ensure_future(listen())
        try:
            done, _ = await asyncio.wait({streaming, listening}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streaming, listening):
                task.cancel()
            await asyncio.gather(streaming, listening, return_exceptions=True)
            self.listening = False
        if streaming in done:
            streaming.result()
        else:
            self.log.stream_stopped = True

    async def send_body(self, data: bytes, more: bool) -> None:
        self.log.body += data
        self.log.final_called |= not more
        await self.send({"type": "http.response.body", "body": data, "more_body": more})
        self.log.final_returned |= not more

    async def received(self) -> Dict[str, Any]:
        event = await self.receive()
        if event["type"] == "http.disconnect":
            self.log.disconnects.append((self.end_reason(), "http.disconnect"))
            self.body_ended = True
        else:
            self.log.received.append((event["body"], not event["more_body"]))
            self.body_ended |= not event["more_body"]
        return event

    def may_receive(self) -> bool:
        # After the whole body, receive() waits for the response's end: a
        # one-task app would wait for itself.
        return not self.body_ended and not self.listening

    async def run(self, ops: Sequence[Op], tail: bool = False) -> None:
        for op in ops:
            self.log.steps += 1
            kind = op[0]
            if kind == "yield":
                for _ in range(int(op[1])):
                    await asyncio.sleep(0)
            elif kind == "work":
                await asyncio.sleep(0)
            elif kind == "raise":
                scripted_raise(self.log, op[1])
            elif kind == "send":
                await self.send_body(bytes(op[1]), more=True)  # type: ignore[arg-type]
            elif kind == "recv":
                if self.may_receive():
                    await self.received()
            elif kind == "recv_all":
                while self.may_receive():
                    await self.received()
            elif kind == "recv_cancel":
                if self.may_receive():
                    waiting = asyncio.ensure_future(self.received())
                    for _ in range(int(op[1])):
                        await asyncio.sleep(0)
                    waiting.cancel()
                    await asyncio.gather(waiting, return_exceptions=True)
            else:
                raise AssertionError(f"unknown step {op!r}")
            if tail:
                self.log.tail += 1


class WsgiApp:
    """A WSGI app that follows a WsgiPlan; it runs in a worker thread."""

    def __init__(self, plan: WsgiPlan, log: AppLog, end_reason: Callable[[], Optional[str]]) -> None:
        self.plan = plan
        self.log = log
        self.end_reason = end_reason

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> "WsgiBody":
        stream = environ["wsgi.input"]
        try:
            self.run(self.plan.before, stream, None)
            write = None
            if self.plan.start is not None:
                self.log.start = self.plan.start
                write = start_response(WSGI_STATUSES[self.plan.start], [("X-App", "1")])
            self.run(self.plan.writes, stream, write)
        except BaseException as err:
            self.log.failed(err)
            raise
        self.log.closed = False
        return WsgiBody(self, stream)

    def items(self, stream: Any) -> Generator[bytes, None, None]:
        try:
            for op in self.plan.items:
                if op[0] == "item":
                    self.log.steps += 1
                    self.log.body += op[1]  # type: ignore[arg-type]
                    yield bytes(op[1])  # type: ignore[arg-type]
                else:
                    self.run((op,), stream, None)
            self.log.final_called = self.log.final_returned = True
        except GeneratorExit:  # closed early: the bridge could not send an item
            self.log.outcome = "stopped"
            raise
        except BaseException as err:
            self.log.failed(err)
            raise
        self.log.outcome = "returned"

    def run(self, ops: Sequence[Op], stream: Any, write: Optional[Callable[[bytes], None]]) -> None:
        for op in ops:
            self.log.steps += 1
            kind = op[0]
            if kind == "yield":
                pass
            elif kind == "raise":
                scripted_raise(self.log, op[1])
            elif kind == "item":
                if write is not None:
                    self.log.body += op[1]  # type: ignore[arg-type]
                    write(bytes(op[1]))  # type: ignore[arg-type]
            elif kind in ("read", "readline"):
                try:
                    if kind == "readline":
                        data = stream.readline()
                        ended = not data.endswith(b"\n")
                    else:
                        size = int(op[1])
                        data = stream.read(size)
                        ended = size < 0 or len(data) < size
                except OSError as err:
                    self.log.disconnects.append((self.end_reason(), f"OSError from wsgi.input: {err}"))
                    raise
                self.log.received.append((data, ended))
            else:
                raise AssertionError(f"unknown step {op!r}")


class WsgiBody:
    """The iterable a WsgiApp returns; it records close()."""

    def __init__(self, app: WsgiApp, stream: Any) -> None:
        self._app = app
        self._items = app.items(stream)

    def __iter__(self) -> "WsgiBody":
        return self

    def __next__(self) -> bytes:
        return next(self._items)

    def close(self) -> None:
        self._items.close()
        self._app.log.closed = True


# --- running one exchange -----------------------------------------------------


class RecordingContext(FakeContext):
    """A FakeContext that tells the host each message it got."""

    def __init__(self, on_write: Callable[[], None]) -> None:
        super().__init__((), eof=False)
        self._on_write = on_write

    async def write(self, message: pb.ServeHTTPResponse) -> None:
        await super().write(message)
        self._on_write()  # the host may cancel right away, before write() returns


class Workers(concurrent.futures.ThreadPoolExecutor):
    """The WSGI facade's executor, counting jobs not yet finished."""

    def __init__(self) -> None:
        super().__init__(max_workers=2, thread_name_prefix="properties-wsgi")
        self._lock = threading.Lock()
        self.unfinished = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> "concurrent.futures.Future[Any]":
        with self._lock:
            self.unfinished += 1

        def job() -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.unfinished -= 1

        return super().submit(job)


class HostSide:
    """Plays the host: feeds the request messages, half-closes or holds the
    stream, and cancels the rpc when its plan says so."""

    def __init__(self, plan: Host, log: AppLog) -> None:
        self.plan = plan
        self.log = log  # the app's steps are the host's sign of progress
        self.ctx = RecordingContext(self.written)
        self.ctx.write_yields = plan.write_yields
        self.messages = request_messages(plan.upload)
        self.fed: List[pb.ServeHTTPRequest] = []
        self.ended = False  # the host half-closed
        self.handle: "Optional[asyncio.Future[None]]" = None
        self.cancel_reason: Optional[str] = None
        self.rpc_cancelled = False
        self.task_cancelled = False
        self.complete_at_cancel = False  # the host had body_complete when it cancelled
        self.done_at_cancel = False  # handle() had ended when the host cancelled
        self._second_half_at: Optional[int] = None
        self.ticks = 0

    # What the host knows.

    def has_complete(self) -> bool:
        return any(m.body_complete for m in self.ctx.writes)

    def end_reason(self) -> Optional[str]:
        """Why the app may be told now that the client went away, if at all."""
        if self.cancel_reason is not None:
            return "the host cancelled"
        if self.has_complete():
            return "the host has the complete response"
        _, whole = request_body(self.fed)
        if (self.ended or any(m.body_complete for m in self.fed)) and not whole:
            return "the request stream ended short"
        return None

    @property
    def cancelled_early(self) -> bool:
        """The host cancelled before the response was complete and before
        handle() ended: the exchange may end any which way."""
        return self.cancel_reason is not None and not self.complete_at_cancel and not self.done_at_cancel

    # Cancelling.

    def written(self) -> None:
        if self.cancel_reason is not None:
            return
        plan = self.plan.cancel
        if plan.on_complete and self.ctx.writes[-1].body_complete:
            self.cancel("as soon as it had body_complete")
        elif plan.when == "written" and len(self.ctx.writes) >= plan.n:
            self.cancel(f"after response message {len(self.ctx.writes)}")

    def cancel(self, reason: str) -> None:
        assert self.handle is not None
        self.cancel_reason = reason
        self.complete_at_cancel = self.has_complete()
        self.done_at_cancel = self.handle.done()
        self._half(first=True)
        if self.plan.cancel.gap == 0:
            self._half(first=False)
        else:
            self._second_half_at = self.ticks + self.plan.cancel.gap

    def _half(self, first: bool) -> None:
        assert self.handle is not None
        if first == self.plan.cancel.rpc_first:
            self.rpc_cancelled = True
            self.ctx.cancel_rpc()
        else:
            self.task_cancelled = True
            self.handle.cancel()

    # Playing.

    async def run(self, tick: float) -> None:
        assert self.handle is not None
        loop = asyncio.get_running_loop()
        plan, up = self.plan, self.plan.upload
        sent, waited = 0, 0
        last: Tuple[int, ...] = ()
        idle_since = loop.time()
        while True:
            if self._second_half_at is not None and (self.ticks >= self._second_half_at or self.handle.done()):
                self._second_half_at = None
                self._half(first=False)
            if self.handle.done() and self._second_half_at is None:
                return
            if self.cancel_reason is None:
                if plan.cancel.when == "tick" and self.ticks >= plan.cancel.n * 3:
                    self.cancel(f"after {self.ticks} turns")
                elif sent < len(self.messages):
                    if plan.cancel.when == "fed" and sent >= max(plan.cancel.n, 1):
                        self.cancel(f"instead of request message {sent}")
                    elif sent == 0 or waited >= up.pace[sent % len(up.pace)]:
                        self.ctx.feed(self.messages[sent])
                        self.fed.append(self.messages[sent])
                        sent, waited = sent + 1, 0
                    else:
                        waited += 1
                elif up.end == "eof" and not self.ended:
                    self.ctx.end()
                    self.ended = True
                elif up.end == "hold":
                    now = loop.time()
                    progress = (len(self.ctx.events), self.ctx.reads, self.ctx.write_calls, self.log.steps)
                    if progress != last:
                        last, idle_since = progress, now
                    elif now - idle_since > GIVE_UP:
                        self.cancel("when its client gave up")
            await asyncio.sleep(tick)
            self.ticks += 1


@dataclass
class Report:
    """One exchange, as check() sees it."""

    host: HostSide
    log: AppLog
    outs: List[Out]
    code: Optional[grpc.StatusCode]
    overlapping_writes: int
    write_calls: int
    chunk_limit: int
    hung: bool
    handle_error: Optional[BaseException]
    leftover_tasks: List[str]
    busy_workers: int


async def exchange(plan: Host, make_facade: Callable[[AppLog, HostSide], Any], workers: Optional[Workers]) -> Report:
    """Plays one exchange to its end and settles the loop."""
    log = AppLog()
    host = HostSide(plan, log)
    ctx = host.ctx
    facade = make_facade(log, host)
    handle = asyncio.ensure_future(facade.handle(iter(()), ctx))
    host.handle = handle
    # A turn of the host's loop: for WSGI a short sleep, so that the loop
    # does not spin while the worker thread wants the GIL.
    driver = asyncio.ensure_future(host.run(0 if workers is None else 0.0002))

    done, _ = await asyncio.wait({handle}, timeout=HANDLE_DEADLINE)
    hung = not done
    if hung:
        ctx.cancel_rpc()
        handle.cancel()
        await asyncio.wait({handle}, timeout=1)
    handle_error: Optional[BaseException] = None
    if handle.done():
        handle_error = handle.exception() if not handle.cancelled() else asyncio.CancelledError()
    await asyncio.wait({driver}, timeout=1)
    driver.cancel()

    # What the app does after its response may go on for a few turns.
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    deadline = loop.time() + SETTLE
    left: List[asyncio.Task[Any]] = []
    while True:
        left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        busy = workers.unfinished if workers is not None else 0
        if (not left and not busy) or loop.time() > deadline:
            break
        await asyncio.sleep(0.001)
    report = Report(
        host=host,
        log=log,
        outs=[out(m) for m in ctx.writes],
        code=ctx.code,
        overlapping_writes=ctx.overlapping_writes,
        write_calls=ctx.write_calls,
        chunk_limit=facade.chunk_size,
        hung=hung,
        handle_error=handle_error,
        leftover_tasks=[repr(t) for t in left],
        busy_workers=busy,
    )
    # Clean up after a failure, so that the next example starts afresh.
    ctx.cancel_rpc()
    for task in left:
        task.cancel()
    if left:
        await asyncio.wait(left, timeout=1)
    return report


def _quiet_logger() -> logging.Logger:
    """The facades' logger: app failures are expected here by the hundred."""
    logger = logging.getLogger("httpbridge.test_properties")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())
    return logger


QUIET = _quiet_logger()


def run_asgi(host: Host, plan: AsgiPlan) -> Report:
    def make(log: AppLog, side: HostSide) -> Any:
        return bridge.ServeHTTPASGI(AsgiApp(plan, log, side.end_reason), chunk_size=host.chunk_size, logger=QUIET)

    return asyncio.run(exchange(host, make, None))


def run_wsgi(host: Host, plan: WsgiPlan, kind: str = "aio") -> Report:
    """One exchange with the WSGI facade of kind: "aio" (ServeHTTPWSGI) or
    "threads" (ServeHTTPThreadedWSGI on conftest's SyncRPC)."""
    workers = Workers()
    made: List[Any] = []
    try:

        def make(log: AppLog, side: HostSide) -> Any:
            facade = wsgi_facade(
                kind, WsgiApp(plan, log, side.end_reason), chunk_size=host.chunk_size, executor=workers, logger=QUIET
            )
            made.append(facade)
            return facade

        return asyncio.run(exchange(host, make, workers))
    finally:
        workers.shutdown(wait=False, cancel_futures=True)
        if kind == "threads":
            for facade in made:
                facade.facade.shutdown()


# --- the properties -----------------------------------------------------------


def check(r: Report) -> None:
    """Asserts P1..P7 (see the module's doc) of one exchange."""
    host, log, outs = r.host, r.log, r.outs
    where = (
        f"\n  client got: {outs}\n  code: {r.code}\n  host cancelled: {host.cancel_reason}"
        f"\n  handle(): {r.handle_error!r}\n  app: outcome {log.outcome} ({log.error!r}), start {log.start},"
        f" body {bytes(log.body)!r}, final sent {log.final_called}/returned {log.final_returned},"
        f" received {log.received}, told gone {log.disconnects}"
    )

    # P1: it ends.
    assert not r.hung, f"handle() did not end within {HANDLE_DEADLINE} s" + where
    if isinstance(r.handle_error, asyncio.CancelledError):
        assert host.task_cancelled, "handle() raised CancelledError, but the host did not cancel it" + where
    elif r.handle_error is not None:
        assert host.rpc_cancelled and isinstance(r.handle_error, StreamBroken), (
            f"handle() raised {r.handle_error!r}" + where
        )

    # P2: nothing outlives it.
    assert not r.leftover_tasks, f"tasks still running after the exchange: {r.leftover_tasks}" + where
    assert not r.busy_workers, "the WSGI app's worker was still running after the exchange" + where
    assert log.closed is not False, "the WSGI iterable was never closed" + where

    # P7: the request body is the host's (before P4..P6: a wrong disconnect
    # is the cause of what goes wrong with the response then).
    sent, whole = request_body(host.fed)
    received = b"".join(data for data, _ in log.received)
    assert sent.startswith(received), f"the app received {received!r}, more than the host sent ({sent!r})" + where
    if any(ended for _, ended in log.received):
        assert whole and received == sent, (
            f"the app was given the end of the body after {received!r}, but the host sent {sent!r}"
            f" {'whole' if whole else 'without a whole body'}" + where
        )
    for reason, what in log.disconnects:
        assert reason is not None, (
            f"the app was told the client went away ({what}) while the host was still there, waiting for the"
            " response, with the request stream not cut short" + where
        )

    # P3: the framing is valid.
    assert r.overlapping_writes == 0, f"{r.overlapping_writes} writes overlapped another" + where
    for i, o in enumerate(outs):
        assert (o.status is not None) == (i == 0), f"init on message {i} of {len(outs)}" + where
        assert not o.complete or i == len(outs) - 1, f"message {i} of {len(outs)} has body_complete" + where
    rejected = outs == INTERNAL_ERROR
    if not rejected:
        assert all(len(o.body) <= r.chunk_limit for o in outs), f"a chunk over {r.chunk_limit} bytes" + where
    complete = bool(outs) and outs[-1].complete
    assert not (complete and r.code is not None), f"body_complete and status {r.code}" + where

    # P4: the client gets what the app sent.
    if outs and not rejected:
        assert log.start is not None and (outs[0].status, outs[0].headers) == (log.start, APP_HEADERS), (
            "the first message does not carry the app's status and headers" + where
        )
        body = b"".join(o.body for o in outs)
        want = b"" if log.start in NO_BODY_STATUSES else bytes(log.body)
        assert want.startswith(body), f"the client got {body!r}, which the app did not send" + where
        if complete:
            assert log.final_called and body == want, "body_complete, but the app did not send all of that" + where
    if rejected:
        assert not log.completed, "the bridge answered 500 to an app that completed its response" + where

    # P5: failures are reported.
    if not host.cancelled_early:
        if log.completed:
            assert complete, "the app completed its response, but the client never got body_complete" + where
        elif outs and not rejected:
            assert not complete and r.code == grpc.StatusCode.ABORTED, (
                "the app did not complete its response after part of it went out: want the stream aborted" + where
            )
        elif r.write_calls > len(outs):
            # A write of the app's was cut off (cancelled, or failed): the
            # bridge cannot know whether its message went out.
            assert (rejected and r.code is None) or (not outs and r.code == grpc.StatusCode.ABORTED), (
                "the app did not complete its response and a write of it was cut off: want 500 or the stream"
                " aborted" + where
            )
        else:
            assert rejected and r.code is None, (
                "the app did not complete its response and nothing of it went out: want 500" + where
            )

    # P6: a complete response is not a client that left.
    if not host.cancelled_early:
        assert log.outcome != "cancelled", (
            "the app was cancelled, though the host did not cancel before the response was complete" + where
        )
    if complete and not rejected:
        assert log.outcome in ("returned", "raised"), (
            "the host had the app's complete response, but what the app did next did not run to its end" + where
        )


# --- the tests ----------------------------------------------------------------


@SETTINGS
@given(host=hosts(), app=asgi_plans("plain"))
def test_asgi_one_task_apps(host: Host, app: AsgiPlan) -> None:
    """ServeHTTPASGI over random host streams, with apps that do everything
    in the task the bridge started."""
    check(run_asgi(host, app))


@SETTINGS
@given(host=hosts(), app=asgi_plans("listener"))
def test_asgi_streaming_response_apps(host: Host, app: AsgiPlan) -> None:
    """ServeHTTPASGI over random host streams, with apps that stream their
    body beside a disconnect listener, as Starlette's StreamingResponse."""
    check(run_asgi(host, app))


@SETTINGS
@given(host=hosts(), app=wsgi_plans())
def test_wsgi_apps(host: Host, app: WsgiPlan) -> None:
    """ServeHTTPWSGI over random host streams, with random app behaviours
    in its worker thread."""
    check(run_wsgi(host, app))


@SETTINGS
@given(host=hosts(), app=wsgi_plans())
def test_threaded_wsgi_apps(host: Host, app: WsgiPlan) -> None:
    """ServeHTTPThreadedWSGI over the same random host streams, played as
    grpcio's synchronous server would, with the same app behaviours."""
    check(run_wsgi(host, app, "threads"))
