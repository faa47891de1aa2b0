"""The generated PluginHooks servicer: telling ASGI from WSGI apps and
passing the facade options on."""

from __future__ import annotations

import functools

import pytest

from conftest import FakeContext, Out, bridge, init
from mattermost.pluginapi.v1.hooks_httpbridge import PluginHooksBridge


async def asgi_function(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"asgi"})


class ASGIClass:
    async def __call__(self, scope, receive, send):
        await asgi_function(scope, receive, send)


def wsgi_function(environ, start_response):
    start_response("200 OK", [])
    return [b"wsgi"]


class ASGIPartialCall:
    """An app whose __call__ is a partialmethod of a coroutine function."""

    async def _serve(self, scope, receive, send, *, body):
        await asgi_with_option(scope, receive, send, body=body)

    __call__ = functools.partialmethod(_serve, body=b"asgi")


def async_decorated(func):
    """A decorator that keeps __wrapped__ but returns a plain function."""

    @functools.wraps(func)
    def wrapper(*args):
        return func(*args)

    return wrapper


async def asgi_with_option(scope, receive, send, *, body=b"asgi"):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


class WSGIClass:
    def __call__(self, environ, start_response):
        return wsgi_function(environ, start_response)


@pytest.mark.parametrize(
    "app,kind",
    [
        (asgi_function, bridge.ServeHTTPASGI),
        (ASGIClass(), bridge.ServeHTTPASGI),
        (wsgi_function, bridge.ServeHTTPWSGI),
        (WSGIClass(), bridge.ServeHTTPWSGI),
        (functools.partial(asgi_with_option, body=b"asgi"), bridge.ServeHTTPASGI),
        (functools.partial(ASGIClass()), bridge.ServeHTTPASGI),
        (functools.partial(functools.partial(asgi_function)), bridge.ServeHTTPASGI),
        (async_decorated(asgi_function), bridge.ServeHTTPASGI),
        (functools.partial(wsgi_function), bridge.ServeHTTPWSGI),
        (ASGIPartialCall(), bridge.ServeHTTPASGI),
    ],
    ids=[
        "asgi-function",
        "asgi-instance",
        "wsgi-function",
        "wsgi-instance",
        "asgi-partial",
        "asgi-partial-of-instance",
        "asgi-partial-of-partial",
        "asgi-unwrapped",
        "wsgi-partial",
        "asgi-partialmethod-call",
    ],
)
async def test_interface_auto(app, kind, executor):
    options = {"executor": executor} if kind is bridge.ServeHTTPWSGI else {"lifespan": "off"}
    servicer = PluginHooksBridge(app, **options)
    assert isinstance(servicer.serve_http, kind)
    ctx = FakeContext([init()])
    await servicer.ServeHTTP(iter(()), ctx)
    assert ctx.outs[-1].complete and ctx.outs[0].status == 200


def test_interface_forced_and_options_passed():
    servicer = PluginHooksBridge(asgi_function, interface="asgi", chunk_size=1000, root_path="/p", lifespan="off")
    assert isinstance(servicer.serve_http, bridge.ServeHTTPASGI)
    assert (servicer.serve_http.chunk_size, servicer.serve_http.root_path) == (1000, "/p")
    wsgi = PluginHooksBridge(wsgi_function, interface="wsgi", lifespan="on", chunk_size=2000)
    assert isinstance(wsgi.serve_http, bridge.ServeHTTPWSGI) and wsgi.serve_http.chunk_size == 2000
    with pytest.raises(ValueError):
        PluginHooksBridge(asgi_function, interface="rsgi")


async def test_servicer_chunks_with_its_options():
    servicer = PluginHooksBridge(asgi_function, chunk_size=2, lifespan="off")
    ctx = FakeContext([init()])
    await servicer.ServeHTTP(iter(()), ctx)
    assert ctx.outs == [Out(200, [], b"as", False, False), Out(None, None, b"gi", False, True)]
