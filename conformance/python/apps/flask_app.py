"""A Flask (WSGI) app with the routes of the cross-language tests
(conformance/python_test.go), written as a Flask user would: generators for
what streams, request.stream for uploads read as they arrive. See
support.py for what the apps share.

PROPAGATE_EXCEPTIONS is on, so that an exception in a view reaches the
WSGI server (the bridge, or uvicorn) as it would from a bare WSGI app,
rather than becoming Flask's own 500 page.
"""

from __future__ import annotations

import hashlib
from typing import Iterator

from flask import Flask, Response, request

import support

ALL = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]

gates = support.SyncGates()
records = support.SyncRecords()

app = Flask(__name__)
app.config["PROPAGATE_EXCEPTIONS"] = True


def arg_int(name: str, default: int) -> int:
    value = request.args.get(name)
    return int(value) if value else default


@app.route("/status/<int:code>")
def status(code: int) -> Response:
    data = support.status_body(code)
    response = Response(data, status=code, mimetype="text/plain")
    if code == 304:
        response.headers["ETag"] = '"v1"'
        del response.headers["Content-Type"]
    if code in (301, 302, 303, 307, 308):
        response.headers["Location"] = "/elsewhere"
    if request.args.get("body"):
        response.set_data(b"x")  # a body on a status that allows none
    return response


@app.route("/headers")
def headers() -> Response:
    response = Response("ok", mimetype="text/plain")
    response.headers.add("X-Multi", "1")
    response.headers.add("X-Multi", "2")
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie("a", "1")
    response.set_cookie("b", "2", httponly=True)
    return response


@app.route("/empty")
def empty() -> Response:
    return Response(b"")


@app.route("/length-set")
def length_set() -> Response:
    return Response("hello", mimetype="text/plain")


@app.route("/length-over")
def length_over() -> Response:
    """More body than the declared Content-Length."""
    response = Response("abcdef", mimetype="text/plain")
    response.headers["Content-Length"] = "3"
    return response


@app.route("/length-unset")
def length_unset() -> Response:
    # An iterator, not a sequence: Werkzeug sets no Content-Length.
    return Response(iter([b"hello"]), mimetype="text/plain")


@app.route("/pieces")
def pieces() -> Response:
    return Response(iter([b"aaa", b"bbb", b"ccc"]), mimetype="text/plain")


@app.route("/big")
def big() -> Response:
    n = arg_int("n", 1 << 20)
    if request.args.get("one"):
        return Response(b"".join(support.pattern(n, n)), mimetype="application/octet-stream")
    response = Response(support.pattern(n, 100_000), mimetype="application/octet-stream")
    if request.args.get("length"):
        response.headers["Content-Length"] = str(n)
    return response


@app.route("/large-header")
def large_header() -> Response:
    response = Response("ok", mimetype="text/plain")
    response.headers["X-Large"] = "v" * arg_int("n", 8000)
    return response


@app.route("/header-value")
def header_value() -> Response:
    """A header value of non-ASCII text, encoded as the query says: a WSGI
    header value holds its bytes as Latin-1 code points (PEP 3333)."""
    response = Response("ok", mimetype="text/plain")
    response.headers["X-Value"] = "café".encode(request.args.get("encoding", "utf-8")).decode("latin-1")
    return response


@app.route("/many-headers")
def many_headers() -> Response:
    response = Response("ok", mimetype="text/plain")
    for i in range(arg_int("n", 100)):
        response.headers[f"X-H{i}"] = str(i)
    return response


@app.route("/request", methods=ALL)
@app.route("/request/<path:rest>", methods=ALL)
def request_view(rest: str = "") -> Response:
    data = request.get_data()
    environ = request.environ
    view = support.request_view(
        method=request.method,
        path=request.path,
        raw_path=environ.get("RAW_URI") or environ.get("REQUEST_URI"),
        query=environ.get("QUERY_STRING", ""),
        http_version=environ["SERVER_PROTOCOL"],
        scheme=environ["wsgi.url_scheme"],
        headers=[(k.lower(), v) for k, v in request.headers.items()],
        body=data,
    )
    return Response(view, mimetype="application/json")


@app.route("/where", methods=ALL)
@app.route("/where/<path:rest>", methods=ALL)
def where(rest: str = "") -> Response:
    environ = request.environ
    view = support.where_view(
        method=request.method,
        path=request.path,
        raw_path=environ.get("RAW_URI") or environ.get("REQUEST_URI"),
        query=environ.get("QUERY_STRING", ""),
    )
    return Response(view, mimetype="application/json")


@app.route("/echo", methods=["POST", "PUT"])
def echo() -> Response:
    return Response(request.get_data(), mimetype="application/octet-stream")


@app.route("/duplex", methods=["POST", "PUT"])
def duplex() -> Response:
    """Echoes the body as it arrives, part bytes at a time: full duplex."""
    stream = request.stream
    part = arg_int("part", 16 << 10)

    def parts() -> Iterator[bytes]:
        while True:
            chunk = stream.read(part)
            if not chunk:
                return
            yield chunk

    return Response(parts(), mimetype="application/octet-stream")


@app.route("/upload", methods=["POST", "PUT"])
def upload() -> Response:
    digest = hashlib.sha256()
    n = 0
    while True:
        chunk = request.stream.read(64 << 10)
        if not chunk:
            break
        digest.update(chunk)
        n += len(chunk)
    return Response(f"{n} {digest.hexdigest()}\n", mimetype="text/plain")


@app.route("/download")
def download() -> Response:
    n = arg_int("n", 1 << 20)
    response = Response(support.pattern(n, 256 << 10), mimetype="application/octet-stream")
    response.headers["Content-Length"] = str(n)
    return response


@app.route("/sse")
def sse() -> Response:
    key = request.args.get("id", "")
    n = arg_int("n", 3)

    def events() -> Iterator[bytes]:
        try:
            for i in range(n):
                if i > 0 and not gates.wait(key):
                    raise RuntimeError("no /next from the test")
                yield f"data: {i}\n\n".encode()
        finally:
            gates.drop(key)

    return Response(events(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})


@app.route("/next")
def next_event() -> Response:
    gates.open(request.args.get("id", ""))
    return Response("ok\n", mimetype="text/plain")


@app.route("/abort", methods=["POST", "PUT"])
def abort() -> Response:
    """Records what reading an upload the client abandons gives."""
    record = records.new(request.args.get("id", ""))
    try:
        while True:
            chunk = request.stream.read(16 << 10)
            if not chunk:
                break
            record.add_request(chunk, True)
            records.changed()
    except Exception as err:
        # wsgi.input raises an OSError (of a class of the bridge's own).
        record.finish("OSError" if isinstance(err, OSError) else type(err).__name__)
        records.changed()
        raise
    record.finish("complete")
    records.changed()
    return Response("complete\n", mimetype="text/plain")


@app.route("/record")
def record() -> Response:
    data = records.wait(request.args.get("id", ""), arg_int("min", 0), bool(request.args.get("done")))
    return Response(data, mimetype="application/json")


@app.route("/raise-before")
def raise_before() -> Response:
    raise RuntimeError("boom before the response started")


@app.route("/raise-after")
def raise_after() -> Response:
    def partial() -> Iterator[bytes]:
        yield b"partial"
        raise RuntimeError("boom after the response started")

    return Response(partial(), mimetype="text/plain")


@app.route("/background")
def background() -> Response:
    """A streamed response whose close runs a step that records that it ran
    (Flask's call_on_close runs when the server closes the iterable)."""
    record = records.new(request.args.get("id", ""))

    def finish() -> None:
        record.finish("background")
        records.changed()

    response = Response(iter([b"one\n", b"two\n", b"three\n"]), mimetype="text/plain")
    response.call_on_close(finish)
    return response


@app.route("/stats")
def stats() -> Response:
    return Response(support.stats_sync(), mimetype="application/json")
