"""Real frameworks through the facades on a scripted stream: a Starlette app
(lifespan, plain, streamed and upload routes) and a Flask app."""

from __future__ import annotations

import asyncio
import contextlib
from typing import List

import pytest

from conftest import FakeContext, Out, body_of, bridge, chunk, init, serve, shape, start_task, until

starlette = pytest.importorskip("starlette")
flask = pytest.importorskip("flask")

from starlette.applications import Starlette  # noqa: E402
from starlette.responses import PlainTextResponse, StreamingResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402


def starlette_app(events: List[str], release: "asyncio.Event") -> Starlette:
    async def hello(request):
        return PlainTextResponse(f"hello {request.query_params['name']} {request.app.state.db}")

    async def upload(request):
        sizes = [len(c) async for c in request.stream() if c]
        return PlainTextResponse(",".join(map(str, sizes)))

    async def stream(request):
        async def events_():
            yield b"data: 0\n\n"
            await release.wait()
            yield b"data: 1\n\n"

        return StreamingResponse(events_(), media_type="text/event-stream")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        events.append("startup")
        app.state.db = "db"
        yield
        events.append("shutdown")

    return Starlette(
        routes=[Route("/hello", hello), Route("/upload", upload, methods=["POST"]), Route("/events", stream)],
        lifespan=lifespan,
    )


async def test_starlette():
    events: List[str] = []
    release = asyncio.Event()
    facade = bridge.ServeHTTPASGI(starlette_app(events, release))
    await facade.startup()
    assert events == ["startup"]

    ctx = await serve(facade, FakeContext([init("/hello?name=bridge")]))
    assert ctx.outs == [
        Out(
            200,
            [("content-length", ["15"]), ("content-type", ["text/plain; charset=utf-8"])],
            b"hello bridge db",
            False,
            True,
        )
    ]

    ctx = await serve(
        facade,
        FakeContext([init("/upload", "POST", body=b"abc", complete=False), chunk(b"de"), chunk(b"f", True)]),
    )
    assert body_of(ctx.writes) == b"3,2,1" and ctx.outs[0].status == 200 and ctx.outs[-1].complete

    ctx = FakeContext([init("/events")], eof=False)
    task = start_task(facade, ctx)
    await until(lambda: ctx.writes, "the first event")
    assert ctx.outs[0].body == b"data: 0\n\n" and ctx.outs[0].flush and not ctx.outs[0].complete
    assert ("content-type", ["text/event-stream; charset=utf-8"]) in ctx.outs[0].headers
    release.set()
    await asyncio.wait_for(task, 2)
    assert [(o.body, o.flush, o.complete) for o in ctx.outs] == [
        (b"data: 0\n\n", True, False),
        (b"data: 1\n\n", True, False),
        (b"", False, True),
    ]

    await facade.shutdown()
    assert events == ["startup", "shutdown"]


async def test_starlette_404_and_405():
    facade = bridge.ServeHTTPASGI(starlette_app([], asyncio.Event()), lifespan="off")
    missing = await serve(facade, FakeContext([init("/nowhere")]))
    wrong = await serve(facade, FakeContext([init("/upload", "GET")]))
    assert (missing.outs[0].status, wrong.outs[0].status) == (404, 405)
    assert len(missing.writes) == 1 and missing.outs[0].complete


async def test_flask(executor):
    app = flask.Flask("bridged")

    @app.route("/hello")
    def hello():
        return f"hello {flask.request.args['name']}"

    @app.route("/upload", methods=["POST"])
    def upload():
        data = flask.request.get_data()
        return f"{len(data)} {flask.request.content_type}"

    @app.route("/stream")
    def stream():
        return flask.Response((f"line {i}\n" for i in range(3)), mimetype="text/plain")

    @app.route("/boom")
    def boom():
        raise RuntimeError("boom")

    facade = bridge.ServeHTTPWSGI(app, executor=executor)

    ctx = await serve(facade, FakeContext([init("/hello?name=flask")]))
    assert shape(ctx.writes) == [(200, 11, False, True)]  # Content-Length: one message
    assert ctx.outs[0].body == b"hello flask"
    assert ("content-length", ["11"]) in ctx.outs[0].headers

    ctx = await serve(
        facade,
        FakeContext(
            [
                init(
                    "/upload",
                    "POST",
                    headers=[("Content-Type", ["application/octet-stream"]), ("Content-Length", ["5"])],
                    body=b"ab",
                    complete=False,
                    content_length=5,
                ),
                chunk(b"cde", True),
            ]
        ),
    )
    assert body_of(ctx.writes) == b"5 application/octet-stream"

    ctx = await serve(facade, FakeContext([init("/stream")]))
    assert [(o.body, o.flush, o.complete) for o in ctx.outs] == [
        (b"line 0\n", True, False),
        (b"line 1\n", True, False),
        (b"line 2\n", True, False),
        (b"", False, True),
    ]

    ctx = await serve(facade, FakeContext([init("/boom")]))
    assert ctx.outs[0].status == 500 and ctx.outs[-1].complete  # Flask's own error page


async def test_flask_sees_no_spoofed_user_id(executor):
    app = flask.Flask("bridged")

    @app.route("/whoami")
    def whoami():
        return flask.request.headers.get("Mattermost-User-Id", "anonymous")

    facade = bridge.ServeHTTPWSGI(app, executor=executor)
    ctx = await serve(facade, FakeContext([init("/whoami", headers=[("Mattermost_User_Id", ["victim-id"])])]))
    assert body_of(ctx.writes) == b"anonymous"
