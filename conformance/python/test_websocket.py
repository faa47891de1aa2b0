"""The ASGI facade's WebSocket sessions (upgrade.md section 4, UP01-UP07),
over real grpc.aio with the test playing the host: it opens the stream with
the httpbridge-upgrade metadata, sends the handshake as the init, and frames
the session with a wsproto client whose bytes travel as body chunks."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import struct
import sys
import tracemalloc
from typing import Any, Callable, List, Optional

import grpc
import pytest
from wsproto import events as ev
from wsproto.extensions import PerMessageDeflate

from conftest import init, out, until
from mattermost.pluginapi.v1 import hooks_http_pb2 as pb
from mattermost.pluginapi.v1.hooks_http_httpbridge import SERVE_HTTP_UPGRADE_KEY
from mattermost.pluginapi.v1.hooks_httpbridge import PluginHooksBridge
from ws_support import WSHost, plugin, raw_echo, starlette_echo, upgrade_init

APPS = {"raw": lambda: raw_echo, "starlette": starlette_echo}

KEY_HEADERS = [
    ("Connection", ["Upgrade"]),
    ("Upgrade", ["websocket"]),
    ("Sec-Websocket-Key", ["dGhlIHNhbXBsZSBub25jZQ=="]),
    ("Sec-Websocket-Version", ["13"]),
]


def test_the_key_is_gos():
    assert SERVE_HTTP_UPGRADE_KEY == "httpbridge-upgrade"


def mask_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A masked client frame, built by hand (wsproto will not send a bad one)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = b"\x01\x02\x03\x04"
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Recorder:
    """An app that records its events: accepts, then receives until the
    disconnect, and tries a send after it."""

    def __init__(self, accept: bool = True) -> None:
        self.scope: Any = None
        self.events: List[Any] = []
        self.after: Optional[BaseException] = None
        self.done = asyncio.Event()
        self.accept = accept

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        self.scope = scope
        try:
            self.events.append(await receive())
            await send({"type": "websocket.accept"})
            while True:
                message = await receive()
                self.events.append(message)
                if message["type"] == "websocket.disconnect":
                    break
            try:
                await send({"type": "websocket.send", "text": "late"})
            except BaseException as err:
                self.after = err
        finally:
            self.done.set()


# --- UP01: echo, fragments, pings, close codes -----------------------------------------------


SIZES = [0, 125, 126, 65535, 65536, 1 << 20, 16 << 20]


@pytest.mark.parametrize("app", sorted(APPS))
@pytest.mark.parametrize("size", SIZES)
async def test_echo_sizes(app: str, size: int):
    async with plugin(APPS[app]()) as stub:
        host = WSHost(stub)
        assert (await host.handshake()).status == 101
        data = os.urandom(size)
        await host.send(ev.Message(data=data))
        assert await host.message() == data
        if size <= 1 << 20:  # text too, multi-byte characters across chunk lines
            text = ("é" * (size // 2 + 1))[: max(size // 2, 0)]
            await host.send(ev.Message(data=text))
            assert await host.message() == text
        # Every message after the 101 is a body chunk of at most 64 KiB.
        assert all(o.status is None and len(o.body) <= 64 << 10 for o in host.outs)
        reply = await host.close(1000, "")
        assert reply is not None and reply.code == 1000
        assert await host.status() == grpc.StatusCode.OK


@pytest.mark.parametrize("app", sorted(APPS))
async def test_fragments_with_pings_between(app: str):
    async with plugin(APPS[app]()) as stub:
        host = WSHost(stub)
        await host.handshake()
        data = os.urandom(1 << 20)
        pongs = 0
        for at in range(0, len(data), 4096):
            await host.send(ev.Message(data=data[at : at + 4096], message_finished=at + 4096 >= len(data)))
            if at % (64 * 4096) == 0:
                await host.send(ev.Ping(payload=b"p%d" % at))
        while True:
            event = await host.event()
            if isinstance(event, ev.Pong):
                pongs += 1
            elif isinstance(event, ev.BytesMessage):
                host._bytes.append(bytes(event.data))
                if event.message_finished:
                    break
        assert b"".join(host._bytes) == data
        assert pongs == 4
        await host.close()


async def test_fragments_reach_the_app_as_one_message_each_fragment_read_at_once():
    """A fragment is taken in as it comes: the first part of a message is
    read before the last is sent (no waiting to fill a chunk)."""
    app = Recorder()
    async with plugin(app) as stub:
        host = WSHost(stub)
        await host.handshake()
        await host.send(ev.Message(data="abc", message_finished=False))
        await asyncio.sleep(0.1)
        await host.send(ev.Message(data="def", message_finished=True))
        await until(lambda: len(app.events) == 2)
        assert app.events[1] == {"type": "websocket.receive", "text": "abcdef"}
        await host.close()


async def test_client_pings_are_answered():
    async with plugin(raw_echo) as stub:
        host = WSHost(stub)
        await host.handshake()
        for n in range(100):
            await host.send(ev.Ping(payload=b"%d" % n))
        pongs = []
        while len(pongs) < 100:
            event = await host.event()
            assert isinstance(event, ev.Pong)
            pongs.append(bytes(event.payload))
        assert pongs == [b"%d" % n for n in range(100)]
        await host.close()


REASONS = ["", "bye", "r" * 123]


@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
@pytest.mark.parametrize("reason", REASONS, ids=["empty", "bye", "123B"])
async def test_client_closes(code: int, reason: str):
    app = Recorder()
    async with plugin(app) as stub:
        host = WSHost(stub)
        await host.handshake()
        reply = await host.close(code, reason)
        # The close frame is echoed, then body_complete; the RPC ends OK.
        assert reply is not None and (reply.code, reply.reason) == (code, reason)
        assert await host.status() == grpc.StatusCode.OK
        assert host.outs[-1].complete
        await asyncio.wait_for(app.done.wait(), 2)
        assert app.events[-1] == {"type": "websocket.disconnect", "code": code, "reason": reason}
        assert isinstance(app.after, OSError)


async def test_client_close_without_code_is_1005():
    app = Recorder()
    async with plugin(app) as stub:
        host = WSHost(stub)
        await host.handshake()
        await host.send_raw(mask_frame(0x8, b""))
        event = await host.message()
        assert isinstance(event, ev.CloseConnection)
        assert host.outs[-1].body == b"\x88\x00" and host.outs[-1].complete
        await asyncio.wait_for(app.done.wait(), 2)
        assert app.events[-1]["code"] == 1005


@pytest.mark.parametrize("app", sorted(APPS))
@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
@pytest.mark.parametrize("reason", REASONS, ids=["empty", "bye", "123B"])
async def test_app_closes(app: str, code: int, reason: str):
    async with plugin(APPS[app]()) as stub:
        host = WSHost(stub)
        await host.handshake()
        await host.send(ev.Message(data=f"close {code} {reason}"))
        event = await host.message()
        assert isinstance(event, ev.CloseConnection)
        assert (event.code, event.reason) == (code, reason)
        # Close frame, then body_complete; the RPC waits for the client's
        # close frame (sent by host.message) and ends OK.
        assert host.outs[-1].complete
        assert await host.status() == grpc.StatusCode.OK


async def test_app_close_waits_for_the_clients_end_at_most_5s():
    async with plugin(raw_echo) as stub:
        host = WSHost(stub)
        await host.handshake()
        await host.send(ev.Message(data="close"))
        event = await host.event()
        assert isinstance(event, ev.CloseConnection)  # not answered
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await host.status() == grpc.StatusCode.OK
        assert 4.0 < loop.time() - start < 8.0


async def test_app_close_then_client_eof_ends_at_once():
    async with plugin(raw_echo) as stub:
        host = WSHost(stub)
        await host.handshake()
        await host.send(ev.Message(data="close"))
        assert isinstance(await host.event(), ev.CloseConnection)
        await host.half_close()
        assert await asyncio.wait_for(host.status(), 2) == grpc.StatusCode.OK


# --- the scope ---------------------------------------------------------------------------------


async def test_scope():
    app = Recorder()
    async with plugin(app, root_path="/plugins/x") as stub:
        host = WSHost(stub)
        first = await host.handshake("/ws/a%20b?t=secret", subprotocols=["chat.v2", "Chat.V1"])
        assert first.status == 101
        scope = app.scope
        assert scope["type"] == "websocket"
        assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
        assert scope["http_version"] == "1.1"
        assert scope["scheme"] == "ws"
        assert scope["path"] == "/ws/a b" and scope["raw_path"] == b"/ws/a%20b"
        assert scope["query_string"] == b"t=secret"
        assert scope["root_path"] == "/plugins/x"
        assert scope["subprotocols"] == ["chat.v2", "Chat.V1"]
        assert scope["client"] == ("192.0.2.1", 1234)
        assert scope["server"] == ("example.com", 80)
        assert "method" not in scope
        headers = dict(scope["headers"])
        assert headers[b"host"] == b"example.com" and headers[b"upgrade"].lower() == b"websocket"
        assert b"sec-websocket-key" in headers
        assert set(scope["extensions"]) == {"websocket.http.response", "httpbridge"}
        assert scope["extensions"]["httpbridge"]["init"].url.startswith("/ws/")
        assert app.events[0] == {"type": "websocket.connect"}
        await host.close()


async def test_subprotocol_and_headers_of_accept():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept", "subprotocol": "chat.v1", "headers": [(b"set-cookie", b"a=b")]})
        await send({"type": "websocket.close"})

    async with plugin(app) as stub:
        host = WSHost(stub)
        first = await host.handshake(subprotocols=["chat.v2", "chat.v1"])
        headers = dict(first.headers)
        assert first.status == 101
        assert headers["sec-websocket-protocol"] == ["chat.v1"]
        assert headers["set-cookie"] == ["a=b"]
        assert headers["upgrade"][0].lower() == "websocket" and "upgrade" in headers["connection"][0].lower()
        assert "content-length" not in headers and "transfer-encoding" not in headers
        event = await host.message()
        assert isinstance(event, ev.CloseConnection) and event.code == 1000


@pytest.mark.parametrize("deflate", [False, True])
async def test_per_message_deflate(deflate: bool):
    async with plugin(raw_echo, ws_per_message_deflate=deflate) as stub:
        host = WSHost(stub)
        first = await host.handshake(extensions=[PerMessageDeflate()])
        offered = dict(first.headers).get("sec-websocket-extensions")
        assert (offered is not None) == deflate
        data = b"a" * 100000
        await host.send(ev.Message(data=data))
        assert await host.message() == data
        sent = sum(len(o.body) for o in host.outs)
        assert (sent < 10000) == deflate  # compressed on the wire
        await host.close()


# --- UP02: denial ------------------------------------------------------------------------------


async def test_close_before_accept_is_403():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close"})
        assert (await receive())["type"] == "websocket.disconnect"

    async with plugin(app) as stub:
        host = WSHost(stub)
        first = await host.handshake()
        assert first.status == 403 and first.complete
        assert await host.call.code() == grpc.StatusCode.OK


async def test_denial_extension_401_with_body():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 401, "headers": [(b"www-authenticate", b"Bearer")]})
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"token"})

    async with plugin(app) as stub:
        host = WSHost(stub)
        first = await host.handshake()
        assert first.status == 401
        assert dict(first.headers)["www-authenticate"] == ["Bearer"]
        body = first.body
        while not host.outs[-1].complete:
            msg = await host.call.read()
            host.outs.append(out(msg))
            body += host.outs[-1].body
        assert body == b"no token"
        assert await host.call.code() == grpc.StatusCode.OK


@pytest.mark.parametrize("how", ["raise", "return"])
async def test_failure_before_accept_is_500(how: str, caplog: pytest.LogCaptureFixture):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        if how == "raise":
            raise ValueError("boom")

    async with plugin(app) as stub:
        host = WSHost(stub)
        first = await host.handshake()
        assert first.status == 500 and first.complete
    assert "/ws" in caplog.text


@pytest.mark.parametrize(
    "drop, status",
    [("Sec-Websocket-Key", 400), ("Sec-Websocket-Version", 400), ("version12", 426)],
)
async def test_bad_handshake_is_refused_as_uvicorn_does(drop: str, status: int):
    called = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            called.append(scope)

    lines = [b"GET /ws HTTP/1.1", b"Host: example.com", b"Connection: Upgrade", b"Upgrade: websocket"]
    if drop != "Sec-Websocket-Key":
        lines.append(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
    if drop == "version12":
        lines.append(b"Sec-WebSocket-Version: 12")
    elif drop != "Sec-Websocket-Version":
        lines.append(b"Sec-WebSocket-Version: 13")
    async with plugin(app) as stub:
        host = WSHost(stub)
        first = await host.handshake(head=b"\r\n".join(lines) + b"\r\n\r\n")
        assert first.status == status and first.complete
        if status == 426:
            assert dict(first.headers)["sec-websocket-version"] == ["13"]
    assert called == []


# --- UP03: failures after accept -----------------------------------------------------------------


async def test_exception_after_accept_is_1011(caplog: pytest.LogCaptureFixture):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        raise ValueError("boom")

    async with plugin(app) as stub:
        host = WSHost(stub)
        await host.handshake()
        await host.send(ev.Message(data="x"))
        event = await host.message()
        assert isinstance(event, ev.CloseConnection) and event.code == 1011
        assert await host.status() == grpc.StatusCode.OK
    assert "ValueError" in caplog.text


async def test_return_after_accept_closes_1000():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})

    async with plugin(app) as stub:
        host = WSHost(stub)
        await host.handshake()
        event = await host.message()
        assert isinstance(event, ev.CloseConnection) and event.code == 1000


@pytest.mark.parametrize("fragmented", [False, True])
async def test_message_over_max_size_is_1009(fragmented: bool):
    app = Recorder()
    async with plugin(app, ws_max_size=1000) as stub:
        host = WSHost(stub)
        await host.handshake()
        await host.send(ev.Message(data=b"a" * 1000))  # at the limit: delivered
        if fragmented:
            await host.send(ev.Message(data=b"b" * 600, message_finished=False))
            await host.send(ev.Message(data=b"b" * 401))
        else:
            await host.send(ev.Message(data=b"b" * 1001))
        event = await host.message()
        assert isinstance(event, ev.CloseConnection) and event.code == 1009
        assert await host.status() == grpc.StatusCode.OK
        await asyncio.wait_for(app.done.wait(), 2)
        assert app.events[1] == {"type": "websocket.receive", "bytes": b"a" * 1000}
        assert app.events[-1]["type"] == "websocket.disconnect" and app.events[-1]["code"] == 1009


async def test_default_max_size_is_16_MiB():
    async with plugin(raw_echo) as stub:
        host = WSHost(stub)
        await host.handshake()
        await host.send(ev.Message(data=b"\0" * ((16 << 20) + 1)))
        event = await host.message()
        assert isinstance(event, ev.CloseConnection) and event.code == 1009


async def test_invalid_utf8_text_is_1007():
    app = Recorder()
    async with plugin(app) as stub:
        host = WSHost(stub)
        await host.handshake()
        await host.send_raw(mask_frame(0x1, b"ok\xff"))
        event = await host.message()
        assert isinstance(event, ev.CloseConnection) and event.code == 1007
        assert await host.status() == grpc.StatusCode.OK
        await asyncio.wait_for(app.done.wait(), 2)
        assert app.events[-1]["code"] == 1007


# --- UP04: the client goes away ------------------------------------------------------------------


async def test_client_drop_is_1006_and_send_raises_oserror():
    app = Recorder()
    async with plugin(app) as stub:
        host = WSHost(stub)
        await host.handshake()
        await host.send(ev.Message(data="x"))
        await until(lambda: len(app.events) == 2)
        loop = asyncio.get_running_loop()
        start = loop.time()
        host.call.cancel()  # the host cancels: RST_STREAM CANCEL
        await asyncio.wait_for(app.done.wait(), 1.0)
        assert loop.time() - start < 1.0
        assert app.events[-1] == {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        assert isinstance(app.after, OSError)


async def test_client_drop_while_the_app_streams():
    sent: List[int] = []
    failed: List[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            while True:
                await send({"type": "websocket.send", "bytes": b"x" * (1 << 20)})
                sent.append(1)
        except OSError as err:
            failed.append(err)

    async with plugin(app) as stub:
        host = WSHost(stub)
        await host.handshake()
        await until(lambda: len(sent) >= 2)
        host.call.cancel()
        await until(lambda: failed, "the send to fail", timeout=1.0)


async def test_client_eof_without_close_is_1006():
    app = Recorder()
    async with plugin(app) as stub:
        host = WSHost(stub)
        await host.handshake()
        await host.half_close()
        await asyncio.wait_for(app.done.wait(), 1.0)
        assert app.events[-1]["code"] == 1006
        assert await host.status() == grpc.StatusCode.OK
        assert host.outs[-1].complete and host.outs[-1].body == b""


# --- UP05: a slow app ----------------------------------------------------------------------------


async def test_slow_app_bounds_memory_and_pushes_back():
    """The app does not receive() for 2 s while the client sends 32 MiB as
    1 MiB messages: the facade holds one message and a chunk, reads no
    more, and gRPC's flow control stops the client's writes."""
    got: List[int] = []
    reading = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await reading.wait()
        while len(got) < 32:
            message = await receive()
            got.append(len(message["bytes"]))
        await send({"type": "websocket.close"})

    async with plugin(app, server_options=[("grpc.http2.lookahead_bytes", 65536)]) as stub:
        host = WSHost(stub)
        await host.handshake()
        message = os.urandom(1 << 20)
        frame = host.ws.send(ev.Message(data=message))
        gc.collect()
        tracemalloc.start()
        try:
            written = 0

            async def flood() -> None:
                nonlocal written
                for _ in range(32):
                    for at in range(0, len(frame), 64 << 10):
                        msg = pb.ServeHTTPRequest()
                        msg.body_chunk = frame[at : at + (64 << 10)]
                        await host.call.write(msg)
                        written += len(msg.body_chunk)

            flooding = asyncio.ensure_future(flood())
            await asyncio.sleep(2.0)
            blocked_at = written
            base, peak = tracemalloc.get_traced_memory()
            reading.set()
            await flooding
        finally:
            tracemalloc.stop()
        print(f"written while the app slept: {blocked_at}; traced peak: {peak}")
        assert blocked_at < 12 << 20, f"the client wrote {blocked_at} bytes to an app that read none"
        # One message waiting, one being joined, a chunk and the pieces:
        # far below the 32 MiB sent.
        assert peak < (3 << 20) + (512 << 10), f"traced peak {peak}"
        event = await host.message()
        assert isinstance(event, ev.CloseConnection)
    assert got == [1 << 20] * 32


# --- UP06: keepalive -----------------------------------------------------------------------------


async def test_keepalive_timeout_is_1011():
    app = Recorder()
    async with plugin(app, ws_ping_interval=0.2, ws_ping_timeout=0.2) as stub:
        host = WSHost(stub)
        await host.handshake()
        pings = 0
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            event = await host.event()
            if isinstance(event, ev.Ping):
                pings += 1  # pong suppressed
            else:
                break
        assert isinstance(event, ev.CloseConnection) and event.code == 1011
        assert pings == 1 and loop.time() - start < 2.0
        assert await host.status() == grpc.StatusCode.OK
        await asyncio.wait_for(app.done.wait(), 1)
        assert app.events[-1]["code"] == 1011


async def test_keepalive_answered_keeps_the_session():
    async with plugin(raw_echo, ws_ping_interval=0.1, ws_ping_timeout=0.3) as stub:
        host = WSHost(stub)
        await host.handshake()
        pings = 0
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.0
        while loop.time() < end:
            event = await host.event()
            assert isinstance(event, ev.Ping)
            pings += 1
            await host.send(event.response())
        assert pings >= 4
        await host.send(ev.Message(data="still here"))
        assert await host.message() == "still here"
        await host.close()


async def test_no_keepalive_with_none():
    async with plugin(raw_echo, ws_ping_interval=None) as stub:
        host = WSHost(stub)
        await host.handshake()
        await host.send(ev.Message(data="a"))
        assert await host.message() == "a"
        assert not any(o.body.startswith(b"\x89") for o in host.outs)
        await host.close()


# --- shutdown ----------------------------------------------------------------------------------


async def test_shutdown_sends_1012():
    app = Recorder()
    servicer_calls: List[Any] = []
    async with plugin(app) as stub:
        host = WSHost(stub)
        await host.handshake()
        await host.send(ev.Message(data="x"))
        await until(lambda: len(app.events) == 2)
        reading = asyncio.ensure_future(host.message())
    # plugin() closed the sessions as it stopped.
    event = await reading
    assert isinstance(event, ev.CloseConnection) and event.code == 1012
    await asyncio.wait_for(app.done.wait(), 1)
    assert app.events[-1]["code"] == 1012
    assert servicer_calls == []


# --- UP07: no metadata, WSGI, 101 in http ---------------------------------------------------------


async def test_without_metadata_it_is_http(caplog: pytest.LogCaptureFixture):
    scopes: List[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        scopes.append(scope["type"])
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"nope"})

    caplog.set_level(logging.WARNING, "httpbridge")
    async with plugin(app) as stub:
        for _ in range(2):
            call = stub.ServeHTTP()
            await call.write(init("/ws", headers=KEY_HEADERS))
            await call.done_writing()
            first = out(await call.read())
            assert first.status == 404
            assert await call.code() == grpc.StatusCode.OK
    assert scopes == ["http", "http"]
    assert caplog.text.count("cannot switch protocols") == 1


async def test_metadata_without_a_websocket_request_is_http_without_a_body():
    """The host offered the upgrade, but the request is no WebSocket
    handshake (POST): an http scope whose body is empty at once, as the
    host sends nothing more before the response."""
    bodies: List[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        bodies.append((scope["type"], await receive()))
        await send({"type": "http.response.start", "status": 405, "headers": []})
        await send({"type": "http.response.body"})

    async with plugin(app) as stub:
        call = stub.ServeHTTP(metadata=((SERVE_HTTP_UPGRADE_KEY, "websocket"),))
        await call.write(init("/ws", "POST", headers=[("Connection", ["Upgrade"]), ("Upgrade", ["x-other"])], content_length=0, complete=False))
        first = out(await asyncio.wait_for(call.read(), 2))
        assert first.status == 405
        assert bodies == [("http", {"type": "http.request", "body": b"", "more_body": False})]
        call.cancel()


async def test_http_scope_101_is_500():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        await send({"type": "http.response.start", "status": 101, "headers": [(b"upgrade", b"websocket")]})
        await send({"type": "http.response.body"})

    async with plugin(app) as stub:
        call = stub.ServeHTTP(metadata=((SERVE_HTTP_UPGRADE_KEY, "websocket"),))
        await call.write(init("/ws"))
        await call.done_writing()
        first = out(await call.read())
        assert first.status == 500


def wsgi_app(environ: Any, start_response: Callable[..., Any]) -> Any:
    if environ["PATH_INFO"] == "/101":
        start_response("101 Switching Protocols", [("Upgrade", "websocket"), ("Connection", "Upgrade")])
        return [b""]
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"plain " + environ.get("HTTP_UPGRADE", "").encode() + b" " + str(len(body)).encode()]


@pytest.mark.parametrize("path, status", [("/ws", 200), ("/101", 500)])
async def test_wsgi_serves_upgrades_as_http(path: str, status: int):
    async with plugin(wsgi_app, interface="wsgi", ws_max_size=10) as stub:
        call = stub.ServeHTTP(metadata=((SERVE_HTTP_UPGRADE_KEY, "websocket"),))
        await call.write(upgrade_init(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
        first = out(await asyncio.wait_for(call.read(), 3))
        assert first.status == status
        if status == 200:
            body = first.body
            while not first.complete:
                first = out(await call.read())
                body += first.body
            assert body == b"plain websocket 0"
        call.cancel()


@pytest.mark.parametrize("path, status", [("/ws", 200), ("/101", 500)])
async def test_threaded_wsgi_serves_upgrades_as_http(path: str, status: int):
    from test_wsgi_threads import threaded_server

    async with threaded_server(wsgi_app, ws_ping_interval=1.0) as stub:
        call = stub.ServeHTTP(metadata=((SERVE_HTTP_UPGRADE_KEY, "websocket"),))
        await call.write(upgrade_init(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"))
        first = out(await asyncio.wait_for(call.read(), 3))
        assert first.status == status
        if status == 200:
            body = first.body
            while not first.complete:
                first = out(await call.read())
                body += first.body
            assert body == b"plain websocket 0"
        call.cancel()


async def test_serve_plugin_hooks_closes_sessions_with_1012_as_it_stops():
    from mattermost.pluginapi.v1 import hooks_pb2_grpc
    from mattermost.pluginapi.v1.hooks_httpbridge import serve_plugin_hooks
    from test_e2e import stop_serving

    app = Recorder()
    bound: "asyncio.Future[int]" = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(serve_plugin_hooks(app, "127.0.0.1:0", ready=bound.set_result, signals=(), lifespan="off", grace=2.0))
    try:
        port = await asyncio.wait_for(bound, 10)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            host = WSHost(hooks_pb2_grpc.PluginHooksStub(channel))
            assert (await host.handshake()).status == 101
            reading = asyncio.ensure_future(host.message())
            await stop_serving(task)
            event = await asyncio.wait_for(reading, 3)
            assert isinstance(event, ev.CloseConnection) and event.code == 1012
            assert await host.status() == grpc.StatusCode.OK
    finally:
        await stop_serving(task)
    assert app.events[-1]["code"] == 1012


async def test_a_header_with_a_line_break_is_refused():
    """From a host other than Go's, whose net/http lets none through: no
    header line may end early in the head wsproto checks."""
    called: List[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(scope)

    async with plugin(app) as stub:
        host = WSHost(stub)
        msg = upgrade_init(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n")
        msg.init.headers.add(key="X-Evil", values=["a\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="])
        await host.call.write(msg)
        first = out(await host.call.read())
        assert first.status == 400 and first.complete
    assert called == []


# --- bounds on what a client can make the facade hold or do -------------------------------------


async def traced_peak(action: Callable[[], Any]) -> int:
    """The peak of memory allocated by Python while action runs."""
    gc.collect()
    tracemalloc.start()
    try:
        await action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_empty_fragments_count_toward_max_size():
    """Empty continuation frames hold nothing, yet each counts 64 bytes
    toward ws_max_size: 512 KiB of them (87k frames) end in 1009 with
    little memory, and the app never sees the message."""
    app = Recorder()
    async with plugin(app, ws_max_size=1000) as stub:
        host = WSHost(stub)
        await host.handshake()
        empty = mask_frame(0x0, b"", fin=False)
        chunk = empty * ((64 << 10) // len(empty))

        async def flood() -> None:
            await host.send_raw(mask_frame(0x2, b"", fin=False))
            for _ in range(8):
                await host.send_raw(chunk)

        peak = await traced_peak(flood)
        event = await asyncio.wait_for(host.message(), 10)
        assert isinstance(event, ev.CloseConnection) and event.code == 1009
        assert peak < 2 << 20, f"traced peak {peak} B"
        await asyncio.wait_for(app.done.wait(), 10)
        assert [e["type"] for e in app.events] == ["websocket.connect", "websocket.disconnect"]
        assert app.events[-1]["code"] == 1009


@pytest.mark.parametrize("payload", [b"", b"a"])
async def test_tiny_fragments_end_in_1009_within_the_bound(payload: bytes):
    """Fragments of 0 or 1 byte: 16 KiB of ws_max_size allows about 250 of
    them (64 bytes each besides the payload); a message of 1000 such
    fragments is refused with 1009 and never held."""
    app = Recorder()
    async with plugin(app, ws_max_size=16 << 10) as stub:
        host = WSHost(stub)
        await host.handshake()
        frames = mask_frame(0x2, payload, fin=False) + mask_frame(0x0, payload, fin=False) * 1000 + mask_frame(0x0, payload)
        await host.send_raw(frames)
        event = await asyncio.wait_for(host.message(), 10)
        assert isinstance(event, ev.CloseConnection) and event.code == 1009
        await asyncio.wait_for(app.done.wait(), 10)
        assert app.events[-1]["code"] == 1009 and len(app.events) == 2


async def test_fragments_within_the_bound_join_and_utf8_spans_them():
    """Fragments that fit (payload plus 64 bytes each) reach the app as
    one message; a character split across fragments is whole."""
    app = Recorder()
    async with plugin(app, ws_max_size=1000) as stub:
        host = WSHost(stub)
        await host.handshake()
        await host.send_raw(mask_frame(0x1, "h\u00e9".encode()[:2], fin=False) + mask_frame(0x0, "\u00e9!".encode()[1:]))
        await host.send_raw(mask_frame(0x2, b"ab", fin=False) + mask_frame(0x0, b"", fin=False) + mask_frame(0x0, b"cd"))
        await host.send_raw(mask_frame(0x2, b"x" * 400, fin=False) + mask_frame(0x0, b"y" * 400))  # 864 counted
        await until(lambda: len(app.events) == 4)
        assert app.events[1:] == [
            {"type": "websocket.receive", "text": "h\u00e9!"},
            {"type": "websocket.receive", "bytes": b"abcd"},
            {"type": "websocket.receive", "bytes": b"x" * 400 + b"y" * 400},
        ]
        await host.close()


async def test_invalid_utf8_across_fragments_is_1007():
    app = Recorder()
    async with plugin(app) as stub:
        host = WSHost(stub)
        await host.handshake()
        await host.send_raw(mask_frame(0x1, b"ok\xc3", fin=False) + mask_frame(0x0, b"(ok"))
        event = await asyncio.wait_for(host.message(), 10)
        assert isinstance(event, ev.CloseConnection) and event.code == 1007
        await asyncio.wait_for(app.done.wait(), 10)
        assert [e["type"] for e in app.events] == ["websocket.connect", "websocket.disconnect"]


async def test_tiny_frames_let_other_sessions_run():
    """While one session parses a flood of empty frames, another session's
    echo still comes back: the reader yields to the event loop."""
    async with plugin(raw_echo, ws_max_size=64 << 20) as stub:
        flooder, other = WSHost(stub), WSHost(stub)
        await flooder.handshake()
        await other.handshake()
        empty = mask_frame(0xA, b"")  # unsolicited pongs: nothing to answer
        flood = asyncio.ensure_future(flooder.send_raw(empty * ((1 << 20) // len(empty))))
        await other.send(ev.Message(data="ping"))
        assert await asyncio.wait_for(other.message(), 10) == "ping"
        await asyncio.wait_for(flood, 30)
        await flooder.close()
        await other.close()


async def test_post_with_upgrade_headers_is_400():
    """wsproto, and so uvicorn, refuses a handshake whose method is not
    GET: the facade checks the request's own method; the app is not run."""
    called: List[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        called.append(scope)

    head = (
        b"POST /ws HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n"
    )
    async with plugin(app) as stub:
        host = WSHost(stub)
        first = await host.handshake(head=head)
        assert first.status == 400 and first.complete
        assert await asyncio.wait_for(host.call.code(), 10) == grpc.StatusCode.OK
    assert called == []


async def test_keepalive_ends_a_session_whose_writes_stall():
    """The host reads nothing (a client that stopped reading): the app's
    sends block on flow control and the keepalive's ping waits behind
    them. The pong deadline runs from when the ping is queued, so the
    stream still ends, without body_complete (an abort: the client sees
    1006), and the app's send raises OSError."""
    sent: List[int] = []
    failed: List[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        await receive()
        await send({"type": "websocket.accept"})
        try:
            while True:
                await send({"type": "websocket.send", "bytes": b"x" * (256 << 10)})
                sent.append(1)
        except OSError as err:
            failed.append(err)

    async with plugin(app, ws_ping_interval=0.2, ws_ping_timeout=0.2) as stub:
        host = WSHost(stub)
        await host.handshake()
        # The host reads nothing until the app's send raised.
        await until(lambda: failed, "the app's send to raise", timeout=8)
        assert len(sent) < 100  # it did stall
        assert await asyncio.wait_for(host.status(), 8) == grpc.StatusCode.OK
        assert not host.complete


async def test_without_wsproto_a_handshake_is_http(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    """An app deployed without wsproto: handshakes get the http scope, as
    with no upgrade metadata, and the log names the package once."""
    monkeypatch.setitem(sys.modules, "wsproto", None)
    scopes: List[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        scopes.append(scope["type"])
        await send({"type": "http.response.start", "status": 426, "headers": []})
        await send({"type": "http.response.body", "body": b"no websockets"})

    caplog.set_level(logging.ERROR, "httpbridge")
    async with plugin(app) as stub:
        for _ in range(2):
            call = stub.ServeHTTP(metadata=((SERVE_HTTP_UPGRADE_KEY, "websocket"),))
            await call.write(init("/ws", headers=KEY_HEADERS, content_length=0, complete=False))
            first = out(await asyncio.wait_for(call.read(), 10))
            assert first.status == 426
            call.cancel()
    assert scopes == ["http", "http"]
    assert caplog.text.count("wsproto is not installed") == 1 and "python3-wsproto" in caplog.text


async def test_deflate_inflates_a_slice_at_a_time():
    """permessage-deflate, ws_max_size 1 MiB: a chunk of a compressed 256
    MiB message of zeros is inflated 1 KiB of input at a time, so the
    session closes with 1009 having held about the limit, not the ~64 MiB
    the chunk inflates to."""
    async with plugin(raw_echo, ws_per_message_deflate=True, ws_max_size=1 << 20) as stub:
        host = WSHost(stub)
        await host.handshake(extensions=[PerMessageDeflate()])
        data = host.ws.send(ev.Message(data=b"\0" * (256 << 20)))
        peak = await traced_peak(lambda: host.send_raw(data[: 64 << 10]))
        event: Any = None

        async def close() -> None:
            nonlocal event
            event = await asyncio.wait_for(host.message(), 10)

        peak = max(peak, await traced_peak(close))
        assert isinstance(event, ev.CloseConnection) and event.code == 1009
        assert peak < 8 << 20, f"traced peak {peak} B"


@pytest.mark.parametrize(
    "option", [{"ws_ping_timeout": 0}, {"ws_ping_timeout": -1.0}, {"ws_ping_interval": 0}, {"ws_max_size": 0}]
)
def test_bad_ws_options_are_refused(option: Any):
    with pytest.raises(ValueError):
        PluginHooksBridge(raw_echo, **option)


@pytest.mark.parametrize(
    "close",
    [
        {"code": 999},
        {"code": 1004},
        {"code": 1005},
        {"code": 1006},
        {"code": 1015},
        {"code": 2000},
        {"code": 5000},
        {"code": "1000"},
        {"code": 1000, "reason": "\u00e9" * 62},  # 124 bytes
    ],
)
async def test_app_close_with_a_code_or_reason_it_cannot_send_raises(close: Any):
    """websocket.close with a code RFC 6455 reserves or leaves undefined,
    or a reason over 123 bytes, raises RuntimeError in send(); the app's
    failure then closes the session with 1011."""
    raised: List[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        await receive()
        await send({"type": "websocket.accept"})
        try:
            await send({"type": "websocket.close", **close})
        except RuntimeError as err:
            raised.append(err)
            raise

    async with plugin(app) as stub:
        host = WSHost(stub)
        await host.handshake()
        event = await asyncio.wait_for(host.message(), 10)
        assert isinstance(event, ev.CloseConnection) and event.code == 1011
    assert len(raised) == 1 and "websocket.close" in str(raised[0])


async def test_app_close_with_the_longest_reason_and_an_app_code():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4999, "reason": "\u00e9" * 61 + "x"})  # 123 bytes

    async with plugin(app) as stub:
        host = WSHost(stub)
        await host.handshake()
        event = await asyncio.wait_for(host.message(), 10)
        assert isinstance(event, ev.CloseConnection) and (event.code, event.reason) == (4999, "\u00e9" * 61 + "x")


async def test_accept_with_a_subprotocol_header_raises():
    """ASGI: the subprotocol is chosen with the subprotocol key; a
    Sec-WebSocket-Protocol header in websocket.accept raises, so the
    client gets 500."""
    raised: List[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        await receive()
        try:
            await send({"type": "websocket.accept", "headers": [(b"Sec-WebSocket-Protocol", b"chat")]})
        except RuntimeError as err:
            raised.append(err)
            raise

    async with plugin(app) as stub:
        host = WSHost(stub)
        first = await host.handshake(subprotocols=["chat"])
        assert first.status == 500
    assert len(raised) == 1


async def test_a_session_accepted_after_close_websockets_closes_with_1012():
    """close_websockets() began while the app had not accepted yet: the
    session closes with 1012 as soon as it is accepted."""
    from mattermost.pluginapi.v1 import hooks_pb2_grpc

    go = asyncio.Event()
    app = Recorder()

    async def late(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await go.wait()
        await app(scope, receive, send)

    servicer = PluginHooksBridge(late, lifespan="off")
    server = grpc.aio.server()
    hooks_pb2_grpc.add_PluginHooksServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            host = WSHost(hooks_pb2_grpc.PluginHooksStub(channel))
            handshake = asyncio.ensure_future(host.handshake())
            await until(lambda: servicer.ServeHTTP is not None and app.scope is None and not handshake.done(), "the handshake")
            await asyncio.sleep(0.2)  # the app waits before accepting
            await servicer.close_websockets()
            go.set()
            assert (await asyncio.wait_for(handshake, 10)).status == 101
            event = await asyncio.wait_for(host.message(), 10)
            assert isinstance(event, ev.CloseConnection) and event.code == 1012
            assert await asyncio.wait_for(host.status(), 10) == grpc.StatusCode.OK
        await asyncio.wait_for(app.done.wait(), 10)
        assert app.events[-1]["code"] == 1012
    finally:
        await server.stop(None)


async def test_the_close_wait_starts_once_the_close_frame_is_written():
    """The app closes while a message waits for a client that starts
    reading only 2.5 s later: the 5 s wait for the client's close frame
    runs from when the close frame was written, so a reply 3.5 s after
    that (6 s after the app's close) still ends the session cleanly."""
    app_closed = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        await receive()
        await send({"type": "websocket.accept"})
        big = asyncio.ensure_future(send({"type": "websocket.send", "bytes": b"x" * (32 << 20)}))  # past any gRPC window
        await asyncio.sleep(0.1)
        app_closed.set()
        await send({"type": "websocket.close", "code": 4000})  # queued behind the message
        await big

    async with plugin(app) as stub:
        host = WSHost(stub)
        await host.handshake()
        await asyncio.sleep(2.5)  # reads nothing: the app's writes stall
        assert app_closed.is_set()
        assert await asyncio.wait_for(host.message(), 10) == b"x" * (32 << 20)
        event = await asyncio.wait_for(host.event(), 10)
        assert isinstance(event, ev.CloseConnection) and event.code == 4000
        await asyncio.sleep(3.5)
        assert not host.call.done()
        await host.send(event.response())
        assert await asyncio.wait_for(host.status(), 10) == grpc.StatusCode.OK
        assert host.complete
