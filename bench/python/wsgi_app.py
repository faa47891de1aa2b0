"""The benchmark's WSGI app: app.py's routes and bytes, as a plain WSGI
app, no framework.

The bench package serves it three ways (BenchmarkPythonWSGI): through the
bridge from grpcio's synchronous server (wsgi_plugin.py threads: what
serve_plugin_hooks does for a WSGI app), through the bridge's grpc.aio
WSGI facade (wsgi_plugin.py aio), and under uvicorn --interface wsgi
behind Go's httputil.ReverseProxy. The routes are app.py's:

    POST /upload             reads the body, answers its length in decimal
    GET  /download?n=N       N pattern bytes with a Content-Length, yielded
                             in pieces of 64 KiB
    GET  /small              "hi"
    GET  /events?n=N         N server-sent events of 100 bytes, each an
                             item of its own; with gate=K each after the
                             first waits until POST /next?gate=K opened
                             the gate once more
    POST /next?gate=K        opens gate K once

Everything else is 404. It needs nothing beyond the standard library.
"""

from __future__ import annotations

import queue
import threading
import urllib.parse
from typing import Any, Callable, Dict, Iterable, Iterator, List, Tuple

from app import EVENT, GATE_TIMEOUT, PATTERN, PIECE, SMALL

StartResponse = Callable[..., Any]

_gates: Dict[str, "queue.Queue[None]"] = {}
_gates_lock = threading.Lock()


def _gate(key: str) -> "queue.Queue[None]":
    with _gates_lock:
        return _gates.setdefault(key, queue.Queue())


def _query(environ: Dict[str, Any]) -> Dict[str, str]:
    parsed = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    return {name: values[0] for name, values in parsed.items()}


def _respond(start_response: StartResponse, status: str, body: bytes) -> List[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]


def upload(environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    stream = environ["wsgi.input"]
    n = 0
    while True:
        data = stream.read(PIECE)
        if not data:
            break
        n += len(data)
    return _respond(start_response, "200 OK", str(n).encode())


def download(environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    try:
        n = int(_query(environ).get("n", ""))
    except ValueError:
        n = -1
    if n < 0:
        return _respond(start_response, "400 Bad Request", b"n: want a count\n")
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))])

    def pieces() -> Iterator[bytes]:
        left = n
        while left > 0:
            m = min(left, PIECE)
            left -= m
            yield PATTERN[:m]

    return pieces()


def small(environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    return _respond(start_response, "200 OK", SMALL)


def events(environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    query = _query(environ)
    try:
        n = int(query.get("n", ""))
    except ValueError:
        n = -1
    if n < 0:
        return _respond(start_response, "400 Bad Request", b"n: want a count\n")
    key = query.get("gate")
    start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])

    def stream() -> Iterator[bytes]:
        try:
            for i in range(n):
                if key is not None and i > 0:
                    _gate(key).get(timeout=GATE_TIMEOUT)
                yield EVENT
        finally:
            if key is not None:
                with _gates_lock:
                    _gates.pop(key, None)

    return stream()


def next_event(environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    key = _query(environ).get("gate")
    if key is None:
        return _respond(start_response, "400 Bad Request", b"gate: missing\n")
    _gate(key).put_nowait(None)
    return _respond(start_response, "200 OK", b"")


ROUTES: Dict[Tuple[str, str], Callable[[Dict[str, Any], StartResponse], Iterable[bytes]]] = {
    ("POST", "/upload"): upload,
    ("GET", "/download"): download,
    ("GET", "/small"): small,
    ("GET", "/events"): events,
    ("POST", "/next"): next_event,
}


def app(environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI entry point."""
    route = ROUTES.get((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
    if route is None:
        return _respond(start_response, "404 Not Found", b"404 page not found\n")
    return route(environ, start_response)
