"""What the three test apps share: the payload pattern, the request view,
the signals the Go tests drive them with, and the /stats numbers.

The apps (asgi_app, starlette_app, flask_app) serve the same routes so that
conformance/python_test.go can run one table against each, through the
bridge and under uvicorn. serve.py runs them.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import struct
import threading
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

# The event loop the server runs on, set by serve.py: a WSGI app counts its
# tasks from a worker thread through it.
LOOP: Optional[asyncio.AbstractEventLoop] = None

# How long an app waits for a signal from the test before it gives up, so
# that a failed test never leaves a request hanging in the server.
SIGNAL_TIMEOUT = 30.0

# ---------------------------------------------------------------------------
# Payload pattern, the same as pyPattern in python_test.go: blocks of
# PATTERN_BLOCK bytes (a prime, so that no chunk size lines up with them),
# each starting with its index as 8 big-endian bytes, then a fixed filler.

PATTERN_BLOCK = 65521
_FILLER = bytes((j * 31 + 7) & 0xFF for j in range(PATTERN_BLOCK))


def pattern(n: int, piece: int) -> Iterator[bytes]:
    """Yields the first n bytes of the pattern in pieces of piece bytes."""
    buf = bytearray()
    index = 0
    sent = 0
    while sent < n:
        while len(buf) < piece and sent + len(buf) < n:
            buf += struct.pack(">Q", index)
            buf += _FILLER[8:]
            index += 1
        take = min(piece, n - sent)
        out = bytes(buf[:take])
        del buf[:take]
        sent += take
        yield out


# ---------------------------------------------------------------------------
# Request view: what an app saw of a request, as one JSON document whose
# bytes the Go test compares between the bridge and uvicorn.


def request_view(
    *,
    method: str,
    path: str,
    raw_path: Optional[str],
    query: str,
    http_version: str,
    scheme: str,
    headers: Iterable[Tuple[str, str]],
    body: bytes,
) -> bytes:
    """Reports the request line, the headers the test sets and the body.

    Headers are lower-cased (name, value) pairs in order. Only headers both
    servers pass on unchanged are reported: the proxy in front of uvicorn
    adds or drops others (Accept-Encoding, Transfer-Encoding, ...).
    """
    wanted = ("host", "content-length", "content-type", "x-multi", "x-test")
    seen: Dict[str, List[str]] = {}
    large = 0
    for name, value in headers:
        if name == "x-large":
            large += len(value)
        elif name in wanted:
            seen.setdefault(name, []).append(value)
    view: Dict[str, Any] = {
        "method": method,
        "path": path,
        "raw_path": raw_path,
        "query": query,
        "http_version": http_version,
        "scheme": scheme,
        "headers": seen,
        "x-large-bytes": large,
        "body-bytes": len(body),
        "body-sha256": hashlib.sha256(body).hexdigest(),
    }
    return (json.dumps(view, sort_keys=True, indent=1) + "\n").encode()


def where_view(*, method: str, path: str, raw_path: Optional[str], query: str) -> bytes:
    """Reports the request line only: the method, the path as the app sees
    it (decoded, and as sent where the server says) and the query."""
    view = {"method": method, "path": path, "raw_path": raw_path, "query": query}
    return (json.dumps(view, sort_keys=True, indent=1) + "\n").encode()


def query_int(query: Dict[str, List[str]], name: str, default: int) -> int:
    values = query.get(name)
    return int(values[0]) if values else default


def status_body(code: int) -> Optional[bytes]:
    """The body /status/<code> answers with; None where none is allowed."""
    if code in (204, 304) or code < 200:
        return None
    return f"status {code}\n".encode()


# ---------------------------------------------------------------------------
# Signals from the test. A gate lets a streaming route produce its next
# piece only when the test asks (GET /next?id=...). A record keeps what an
# upload route received, for GET /record?id=... to report.


class AsyncGates:
    """Gates for apps on the event loop."""

    def __init__(self) -> None:
        self._gates: Dict[str, asyncio.Queue] = {}

    def _gate(self, key: str) -> asyncio.Queue:
        return self._gates.setdefault(key, asyncio.Queue())

    def open(self, key: str) -> None:
        self._gate(key).put_nowait(None)

    async def wait(self, key: str) -> bool:
        try:
            await asyncio.wait_for(self._gate(key).get(), SIGNAL_TIMEOUT)
            return True
        except asyncio.TimeoutError:
            return False

    def drop(self, key: str) -> None:
        self._gates.pop(key, None)


class SyncGates:
    """Gates for WSGI apps, whose requests run in threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gates: Dict[str, threading.Semaphore] = {}

    def _gate(self, key: str) -> threading.Semaphore:
        with self._lock:
            return self._gates.setdefault(key, threading.Semaphore(0))

    def open(self, key: str) -> None:
        self._gate(key).release()

    def wait(self, key: str) -> bool:
        return self._gate(key).acquire(timeout=SIGNAL_TIMEOUT)

    def drop(self, key: str) -> None:
        with self._lock:
            self._gates.pop(key, None)


class Record:
    """What an upload route received: events in order, bytes, the end."""

    def __init__(self) -> None:
        self.events: List[str] = []  # "request", "request-final", or the end
        self.bytes = 0
        self.done = False

    def add_request(self, body: bytes, more_body: bool) -> None:
        self.bytes += len(body)
        event = "request" if more_body else "request-final"
        # Runs of body events are kept as one, so that the record stays short.
        if not self.events or self.events[-1] != event:
            self.events.append(event)

    def finish(self, end: str) -> None:
        self.events.append(end)
        self.done = True

    def json(self) -> bytes:
        return (json.dumps({"events": self.events, "bytes": self.bytes, "done": self.done}) + "\n").encode()


class AsyncRecords:
    """Records for apps on the event loop."""

    def __init__(self) -> None:
        self._records: Dict[str, Record] = {}
        self._changed: Optional[asyncio.Condition] = None

    def _cond(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def new(self, key: str) -> Record:
        record = self._records[key] = Record()
        return record

    async def changed(self) -> None:
        async with self._cond():
            self._cond().notify_all()

    async def wait(self, key: str, min_bytes: int, done: bool) -> bytes:
        """Waits until the record has min_bytes, or is done if done is set."""

        def ready() -> bool:
            record = self._records.get(key)
            if record is None:
                return False
            return record.done or (not done and record.bytes >= min_bytes)

        async with self._cond():
            try:
                await asyncio.wait_for(self._cond().wait_for(ready), SIGNAL_TIMEOUT)
            except asyncio.TimeoutError:
                pass
        record = self._records.get(key)
        if record is not None and record.done:
            del self._records[key]
        return record.json() if record is not None else b"{}\n"


class SyncRecords:
    """Records for WSGI apps."""

    def __init__(self) -> None:
        self._records: Dict[str, Record] = {}
        self._changed = threading.Condition()

    def new(self, key: str) -> Record:
        with self._changed:
            record = self._records[key] = Record()
            return record

    def changed(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def wait(self, key: str, min_bytes: int, done: bool) -> bytes:
        def ready() -> bool:
            record = self._records.get(key)
            if record is None:
                return False
            return record.done or (not done and record.bytes >= min_bytes)

        with self._changed:
            self._changed.wait_for(ready, SIGNAL_TIMEOUT)
            record = self._records.get(key)
            if record is not None and record.done:
                del self._records[key]
            return record.json() if record is not None else b"{}\n"


# ---------------------------------------------------------------------------
# /stats


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def _stats(tasks: int) -> bytes:
    return (
        json.dumps({"tasks": tasks, "rss_kib": _rss_kib(), "threads": threading.active_count()}) + "\n"
    ).encode()


async def stats_async() -> bytes:
    """The numbers, from a coroutine on the server's loop."""
    gc.collect()
    return _stats(len(asyncio.all_tasks()))


async def _count_tasks() -> int:
    return len(asyncio.all_tasks())


def stats_sync() -> bytes:
    """The numbers, from a WSGI worker thread."""
    gc.collect()
    assert LOOP is not None, "serve.py sets support.LOOP"
    tasks = asyncio.run_coroutine_threadsafe(_count_tasks(), LOOP).result(SIGNAL_TIMEOUT)
    return _stats(tasks)
