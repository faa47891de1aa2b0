"""The WebSocket facade against its oracle: the same ASGI apps under uvicorn
0.17.6 with ws="wsproto" (in a thread of this process), and bridged (the
generated facade behind WSFront, a test fixture doing the Go host's part),
driven by the same websockets 10.4 client. What the client sees (messages,
subprotocol, extensions, close code and reason, refusal status) must be
equal, but for the deviations listed in docs/behaviour.md."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from typing import Any, AsyncIterator, Callable, List, Tuple

import pytest

websockets = pytest.importorskip("websockets")
uvicorn = pytest.importorskip("uvicorn")

from ws_support import WSFront, free_port, plugin, raw_echo, starlette_echo  # noqa: E402

APPS = {"raw": lambda: raw_echo, "starlette": starlette_echo}


@contextlib.contextmanager
def uvicorn_server(app: Any, deflate: bool) -> Any:
    """app under uvicorn(wsproto) in a thread; yields its port."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws="wsproto", lifespan="off", log_level="critical",
        ws_per_message_deflate=deflate, access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-oracle", daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(5)


@contextlib.asynccontextmanager
async def bridged(app: Any, deflate: bool) -> AsyncIterator[int]:
    async with plugin(app, ws_per_message_deflate=deflate, ws_ping_interval=None) as stub:
        async with WSFront(stub) as front:
            yield front.port


def digest(message: Any) -> Tuple[str, int, str]:
    data = message.encode() if isinstance(message, str) else message
    return ("text" if isinstance(message, str) else "bytes", len(data), hashlib.sha256(data).hexdigest()[:16])


Script = Callable[[Any], Any]


async def transcript(port: int, script: Script, **connect: Any) -> List[Any]:
    """What the client sees of one session that script drives."""
    seen: List[Any] = []
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None, ping_interval=None, **connect) as ws:
            seen.append(("subprotocol", ws.subprotocol))
            seen.append(("extensions", [type(e).__name__ for e in ws.extensions]))
            try:
                await script(ws)
                async for message in ws:
                    seen.append(digest(message))
            except websockets.ConnectionClosed:
                pass
            await asyncio.wait_for(ws.wait_closed(), 10)
            seen.append(("close", ws.close_code, ws.close_reason))
    except websockets.InvalidStatusCode as err:
        seen.append(("refused", err.status_code))
    return seen


async def compare(app_factory: Callable[[], Any], script: Script, deflate: bool = False, **connect: Any) -> Tuple[List[Any], List[Any]]:
    app = app_factory()
    with uvicorn_server(app, deflate) as port:
        want = await transcript(port, script, **connect)
    async with bridged(app, deflate) as port:
        got = await transcript(port, script, **connect)
    return want, got


SIZES = [0, 125, 126, 65535, 65536, 1 << 20]


def echo_then(close: Callable[[Any], Any]) -> Script:
    async def script(ws: Any) -> None:
        for size in SIZES:
            await ws.send(b"\x01" * size)
            await ws.send("é" * (size // 2))
        for _ in range(2 * len(SIZES)):
            message = await ws.recv()
            assert message is not None
            ws.seen_by_script = getattr(ws, "seen_by_script", []) + [digest(message)]
        await close(ws)

    return script


@pytest.mark.parametrize("app", sorted(APPS))
@pytest.mark.parametrize("code, reason", [(1000, ""), (1001, "bye"), (3000, "r" * 123), (4999, "x")])
async def test_client_closes_like_uvicorn(app: str, code: int, reason: str):
    echoed: List[Any] = []

    async def close(ws: Any) -> None:
        echoed.append(ws.seen_by_script)
        await ws.close(code, reason)

    want, got = await compare(APPS[app], echo_then(close))
    assert got == want
    assert got[-1] == ("close", code, reason)
    assert echoed[0] == echoed[1] and len(echoed[0]) == 2 * len(SIZES)


@pytest.mark.parametrize("app", sorted(APPS))
@pytest.mark.parametrize("code, reason", [(1000, "asked"), (1001, "bye"), (3000, ""), (4999, "r" * 100)])
async def test_app_closes_like_uvicorn(app: str, code: int, reason: str):
    async def close(ws: Any) -> None:
        await ws.send("close" if (code, reason) == (1000, "asked") else f"close {code} {reason}")

    want, got = await compare(APPS[app], echo_then(close))
    assert got == want
    assert got[-1] == ("close", code, reason)


@pytest.mark.parametrize("app", sorted(APPS))
async def test_subprotocol_like_uvicorn(app: str):
    async def script(ws: Any) -> None:
        await ws.send("close")

    want, got = await compare(APPS[app], script, subprotocols=["chat.v1", "chat.v2"])
    assert got == want
    assert got[0] == ("subprotocol", "chat.v1")


async def test_deflate_like_uvicorn():
    async def script(ws: Any) -> None:
        await ws.send("a" * 100000)
        assert await ws.recv() == "a" * 100000
        await ws.close()

    want, got = await compare(APPS["raw"], script, deflate=True)
    assert got == want
    assert got[1] == ("extensions", ["PerMessageDeflate"])
    want, got = await compare(APPS["raw"], script, deflate=False)
    assert got == want
    assert got[1] == ("extensions", [])


async def test_close_before_accept_like_uvicorn():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close"})

    async def script(ws: Any) -> None:
        raise AssertionError("accepted")

    want, got = await compare(lambda: app, script)
    assert got == want == [("refused", 403)]


async def test_exception_before_accept_like_uvicorn(caplog: pytest.LogCaptureFixture):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        raise ValueError("boom")

    async def script(ws: Any) -> None:
        raise AssertionError("accepted")

    caplog.set_level(logging.CRITICAL)
    want, got = await compare(lambda: app, script)
    assert got == want == [("refused", 500)]


async def test_exception_after_accept_deviates():
    """uvicorn 0.17's wsproto implementation drops the connection (1006);
    the facade closes with 1011, a documented deviation."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        raise ValueError("boom")

    async def script(ws: Any) -> None:
        await ws.send("x")

    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    want, got = await compare(lambda: app, script)
    assert want[-1][:2] == ("close", 1006)
    assert got[-1][:2] == ("close", 1011)
    assert got[:-1] == want[:-1]
