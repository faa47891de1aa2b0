"""ASGI lifespan: startup and shutdown around serving, as uvicorn runs them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, List

import pytest

from conftest import FakeContext, Out, bridge, init, response_body, response_start, serve, start_task, until
from mattermost.pluginapi.v1.hooks_httpbridge import PluginHooksBridge


def lifespan_app(events: List[str], scopes: List[Any], *, startup: str = "complete", shutdown: str = "complete"):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    scope["state"]["db"] = "connected"
                    reply = {"type": f"lifespan.startup.{startup}"}
                    if startup == "failed":
                        reply["message"] = "no database"
                    await send(reply)
                    if startup == "failed":
                        return
                elif message["type"] == "lifespan.shutdown":
                    reply = {"type": f"lifespan.shutdown.{shutdown}"}
                    if shutdown == "failed":
                        reply["message"] = "could not flush"
                    await send(reply)
                    return
        scopes.append(scope)
        scope.setdefault("state", {})["touched"] = True
        await send(response_start(200))
        await send(response_body(b"ok"))

    return app


OK = [Out(200, [], b"ok", False, True)]


async def test_startup_and_shutdown_run_and_state_reaches_requests():
    events: List[str] = []
    scopes: List[Any] = []
    facade = bridge.ServeHTTPASGI(lifespan_app(events, scopes))
    await facade.startup()
    assert events == ["lifespan.startup"]
    for _ in range(2):
        ctx = await serve(facade, FakeContext([init()]))
        assert ctx.outs == OK
    await facade.shutdown()
    assert events == ["lifespan.startup", "lifespan.shutdown"]
    # Each request gets a copy of the state startup left.
    assert [s["state"] for s in scopes] == [{"db": "connected", "touched": True}] * 2
    assert scopes[0]["state"] is not scopes[1]["state"]
    assert facade.state == {"db": "connected"}


async def test_startup_failed_raises():
    events: List[str] = []
    facade = bridge.ServeHTTPASGI(lifespan_app(events, [], startup="failed"))
    with pytest.raises(RuntimeError, match="no database"):
        await facade.startup()
    await facade.shutdown()
    assert events == ["lifespan.startup"]


async def test_shutdown_failed_is_logged(caplog):
    events: List[str] = []
    facade = bridge.ServeHTTPASGI(lifespan_app(events, [], shutdown="failed"))
    await facade.startup()
    with caplog.at_level(logging.ERROR, logger="httpbridge"):
        await facade.shutdown()
    assert events == ["lifespan.startup", "lifespan.shutdown"]
    assert "could not flush" in caplog.text


def http_only_app(scopes: List[Any]):
    async def app(scope, receive, send):
        assert scope["type"] == "http", "lifespan is not supported"
        scopes.append(scope)
        await send(response_start(200))
        await send(response_body(b"ok"))

    return app


async def test_app_without_lifespan_is_served_with_auto():
    scopes: List[Any] = []
    facade = bridge.ServeHTTPASGI(http_only_app(scopes))
    await facade.startup()
    ctx = await serve(facade, FakeContext([init()]))
    await facade.shutdown()
    assert ctx.outs == OK
    assert len(scopes) == 1 and "state" not in scopes[0]


async def test_app_that_ignores_lifespan_is_served_with_auto():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send(response_start(200))
        await send(response_body(b"ok"))

    facade = bridge.ServeHTTPASGI(app)
    await facade.startup()
    assert (await serve(facade, FakeContext([init()]))).outs == OK
    await facade.shutdown()


async def test_app_without_lifespan_fails_startup_with_on():
    facade = bridge.ServeHTTPASGI(http_only_app([]), lifespan="on")
    with pytest.raises(RuntimeError, match="does not support lifespan"):
        await facade.startup()


async def test_lifespan_off_never_calls_the_app_with_lifespan():
    events: List[str] = []
    scopes: List[Any] = []
    facade = bridge.ServeHTTPASGI(lifespan_app(events, scopes), lifespan="off")
    await facade.startup()
    assert (await serve(facade, FakeContext([init()]))).outs == OK
    await facade.shutdown()
    assert events == []


def test_bad_lifespan_option():
    with pytest.raises(ValueError):
        bridge.ServeHTTPASGI(http_only_app([]), lifespan="yes")


async def test_servicer_runs_the_lifespan():
    events: List[str] = []
    servicer = PluginHooksBridge(lifespan_app(events, []))
    assert isinstance(servicer.serve_http, bridge.ServeHTTPASGI)
    await servicer.startup()
    ctx = FakeContext([init()])
    await servicer.ServeHTTP(iter(()), ctx)
    await servicer.shutdown()
    assert ctx.outs == OK
    assert events == ["lifespan.startup", "lifespan.shutdown"]


async def test_servicer_of_a_wsgi_app_has_no_lifespan(executor):
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    servicer = PluginHooksBridge(app, lifespan="on", executor=executor)
    assert isinstance(servicer.serve_http, bridge.ServeHTTPWSGI)
    await servicer.startup()
    await servicer.shutdown()


async def test_shutdown_ends_a_lifespan_loop_that_never_returns():
    """A hand-written lifespan loop that answers shutdown and then waits
    for another event does not hold the server's stop: as with uvicorn,
    the app need not return once it said shutdown is complete."""
    replies: List[str] = []

    async def app(scope, receive, send):
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            reply = message["type"] + ".complete"
            replies.append(reply)
            await send({"type": reply})

    facade = bridge.ServeHTTPASGI(app, lifespan="on")
    await facade.startup()
    await asyncio.wait_for(facade.shutdown(), 10)
    assert replies == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_shutdown_waits_for_apps_that_outlived_their_stream():
    """The host ends the stream once it has the whole response; an app still
    running then (a background task) finishes before the lifespan shutdown,
    as uvicorn orders them."""
    order: List[str] = []
    gate = asyncio.Event()

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.shutdown":
                    order.append("lifespan shutdown")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
                await send({"type": "lifespan.startup.complete"})
        await send(response_start(200))
        await send(response_body(b"ok"))
        await gate.wait()
        order.append("background task done")

    facade = bridge.ServeHTTPASGI(app, lifespan="on")
    await facade.startup()
    ctx = FakeContext([init()], eof=False)
    task = start_task(facade, ctx)
    await until(lambda: len(ctx.writes) == 1, "the response")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    shutdown = asyncio.ensure_future(facade.shutdown())
    for _ in range(20):
        await asyncio.sleep(0)
    assert order == [] and not shutdown.done()
    gate.set()
    await asyncio.wait_for(shutdown, 10)
    assert order == ["background task done", "lifespan shutdown"]
