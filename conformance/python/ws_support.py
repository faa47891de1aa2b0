"""Test fixtures for the WebSocket tests: a host played by the test over
real grpc.aio (WSHost), the ASGI echo apps, and a small TCP front that does
what the Go host does for an upgrade (WSFront), so that a real WebSocket
client can talk to the facade. Test code only."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from typing import Any, AsyncIterator, List, Optional, Sequence, Tuple, Union

import grpc
import wsproto
from wsproto import events as ev
from wsproto.connection import ConnectionState

from conftest import Out, out
from mattermost.pluginapi.v1 import hooks_pb2_grpc
from mattermost.pluginapi.v1 import hooks_http_pb2 as pb
from mattermost.pluginapi.v1.hooks_httpbridge import PluginHooksBridge

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps"))
from ws_app import raw_echo, starlette_echo  # noqa: E402,F401  (the echo apps, shared with python_ws_test.go)

UPGRADE = ("httpbridge-upgrade", "websocket")
CHUNK = 64 << 10


@contextlib.asynccontextmanager
async def plugin(app: Any, server_options: Sequence[Tuple[str, Any]] = (), **options: Any) -> AsyncIterator[hooks_pb2_grpc.PluginHooksStub]:
    """Serves app with the generated servicer, lifespan off unless asked;
    yields a client stub."""
    if options.get("interface") != "wsgi":
        options.setdefault("lifespan", "off")
    servicer = PluginHooksBridge(app, **options)
    server = grpc.aio.server(options=list(server_options))
    hooks_pb2_grpc.add_PluginHooksServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await servicer.startup()
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield hooks_pb2_grpc.PluginHooksStub(channel)
    finally:
        # As serve_plugin_hooks: open sessions get 1012 while the server
        # gives its streams a grace period.
        await asyncio.gather(servicer.close_websockets(), server.stop(2.0))
        await servicer.shutdown()


def upgrade_init(
    head: bytes, *, host: str = "example.com", remote_addr: str = "192.0.2.1:1234", complete: bool = False
) -> pb.ServeHTTPRequest:
    """The init the Go host sends for an HTTP/1.1 request head."""
    lines = head.split(b"\r\n\r\n")[0].split(b"\r\n")
    method, target, _ = lines[0].decode().split(" ", 2)
    msg = pb.ServeHTTPRequest()
    i = msg.init
    i.method, i.url, i.request_uri = method, target, target
    i.proto, i.proto_major, i.proto_minor = "HTTP/1.1", 1, 1
    i.remote_addr = remote_addr
    i.content_length = 0
    grouped: dict = {}
    for line in lines[1:]:
        name, _, value = line.decode().partition(":")
        name, value = "-".join(p.capitalize() for p in name.strip().split("-")), value.strip()
        if name == "Host":
            host = value
            continue
        grouped.setdefault(name, []).append(value)
    i.host = host
    for name, values in grouped.items():
        i.headers.add(key=name, values=values)
    if complete:
        msg.body_complete = True
    return msg


def head_bytes(first: Out) -> bytes:
    """An HTTP/1.1 response head for an init, as the Go host writes it."""
    lines = [f"HTTP/1.1 {first.status} X"]
    for key, values in first.headers or []:
        lines.extend(f"{key}: {value}" for value in values)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class WSHost:
    """The host's side of one upgraded stream, with a wsproto client
    framing the session: what the test sends goes as body chunks, and
    what comes back is fed to the client."""

    def __init__(self, stub: hooks_pb2_grpc.PluginHooksStub, *, metadata: bool = True) -> None:
        self.call = stub.ServeHTTP(metadata=(UPGRADE,) if metadata else ())
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self.first: Optional[Out] = None
        self.outs: List[Out] = []  # every response message after the first
        self.complete = False  # body_complete came
        self.ended = False  # the RPC ended
        self._pending: List[Any] = []
        self._text: List[str] = []
        self._bytes: List[bytes] = []

    async def handshake(
        self, target: str = "/ws", *, subprotocols: Sequence[str] = (), extensions: Sequence[Any] = (), head: Optional[bytes] = None
    ) -> Out:
        """Sends the upgrade request; returns the first response message.
        With a 101, the client is then open."""
        if head is None:
            head = self.ws.send(ev.Request(host="example.com", target=target, subprotocols=list(subprotocols), extensions=list(extensions)))
        await self.call.write(upgrade_init(head))
        msg = await self.call.read()
        assert msg is not grpc.aio.EOF, "the stream ended without a response"
        self.first = out(msg)
        if self.first.status == 101:
            self.ws.receive_data(head_bytes(self.first))
            accepted = list(self.ws.events())
            assert isinstance(accepted[0], ev.AcceptConnection), accepted
            if self.first.body:
                self._feed(self.first.body)
        else:
            self.outs.append(self.first)
        return self.first

    async def send(self, event: Any) -> None:
        """Frames event and sends its bytes, in chunks of at most 64 KiB."""
        await self.send_raw(self.ws.send(event))

    async def send_raw(self, data: bytes) -> None:
        for at in range(0, len(data), CHUNK):
            msg = pb.ServeHTTPRequest()
            msg.body_chunk = data[at : at + CHUNK]
            await self.call.write(msg)

    async def half_close(self) -> None:
        """The client's end of the stream: body_complete, then CloseSend."""
        msg = pb.ServeHTTPRequest()
        msg.body_complete = True
        await self.call.write(msg)
        await self.call.done_writing()

    def _feed(self, data: bytes) -> None:
        if data and self.ws.state is not ConnectionState.CLOSED:
            self.ws.receive_data(data)
            self._pending.extend(self.ws.events())

    async def event(self) -> Any:
        """The next wsproto event; None once the stream ended."""
        while not self._pending:
            if self.ended:
                return None
            msg = await self.call.read()
            if msg is grpc.aio.EOF:
                self.ended = True
                if not self.complete and self.ws.state is not ConnectionState.CLOSED:
                    self.ws.receive_data(None)
                    self._pending.extend(self.ws.events())
                continue
            o = out(msg)
            self.outs.append(o)
            self._feed(o.body)
            if o.complete:
                self.complete = True
        return self._pending.pop(0)

    async def message(self, answer_pings: bool = True) -> Union[str, bytes, ev.CloseConnection, None]:
        """The next whole message, or the close event (answered as RFC 6455
        asks), or None if the stream ended."""
        while True:
            event = await self.event()
            if event is None:
                return None
            if isinstance(event, ev.Ping):
                if answer_pings:
                    await self.send(event.response())
            elif isinstance(event, ev.TextMessage):
                self._text.append(event.data)
                if event.message_finished:
                    text, self._text = "".join(self._text), []
                    return text
            elif isinstance(event, ev.BytesMessage):
                self._bytes.append(bytes(event.data))
                if event.message_finished:
                    data, self._bytes = b"".join(self._bytes), []
                    return data
            elif isinstance(event, ev.CloseConnection):
                if self.ws.state is ConnectionState.REMOTE_CLOSING:
                    with contextlib.suppress(Exception):
                        await self.send(event.response())
                return event

    async def close(self, code: int = 1000, reason: str = "") -> Optional[ev.CloseConnection]:
        """Sends a close frame; returns the facade's reply."""
        await self.send(ev.CloseConnection(code=code, reason=reason))
        while True:
            event = await self.message()
            if event is None or isinstance(event, ev.CloseConnection):
                return event

    async def status(self) -> grpc.StatusCode:
        """Reads to the end of the RPC; its status."""
        while await self.event() is not None:
            pass
        return await self.call.code()


# --- a TCP front that does the Go host's part ------------------------------------


class WSFront:
    """Accepts TCP connections and carries each over one ServeHTTP stream as
    the Go host does for an eligible upgrade (upgrade.md 1.2-1.4): the head
    as the init with the metadata key, then raw bytes as body chunks both
    ways; FIN as body_complete. A test fixture: no limits, no checks."""

    def __init__(self, stub: hooks_pb2_grpc.PluginHooksStub) -> None:
        self.stub = stub
        self.server: Optional[asyncio.AbstractServer] = None
        self.port = 0
        self._tasks: set = set()

    async def __aenter__(self) -> "WSFront":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        call = self.stub.ServeHTTP(metadata=(UPGRADE,))
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            await call.write(upgrade_init(head, host=f"127.0.0.1:{self.port}"))
            first = await call.read()
            if first is grpc.aio.EOF:
                writer.transport.abort()
                return
            o = out(first)
            writer.write(head_bytes(o).replace(b" X\r\n", b" Switching Protocols\r\n" if o.status == 101 else b" Refused\r\n", 1))
            if o.status != 101:
                body = o.body
                while not o.complete:
                    msg = await call.read()
                    if msg is grpc.aio.EOF:
                        break
                    o = out(msg)
                    body += o.body
                writer.write(body)
                await writer.drain()
                writer.close()
                return
            writer.write(o.body)
            pump = asyncio.ensure_future(self._pump_in(reader, call))
            try:
                complete = o.complete
                while not complete:
                    msg = await call.read()
                    if msg is grpc.aio.EOF:
                        writer.transport.abort()  # no body_complete: an abort
                        return
                    o = out(msg)
                    writer.write(o.body)
                    await writer.drain()
                    complete = o.complete
                if writer.can_write_eof():
                    writer.write_eof()
                await asyncio.wait({pump}, timeout=0.5)
            finally:
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
            writer.close()
        except (ConnectionError, asyncio.IncompleteReadError, grpc.aio.AioRpcError):
            writer.transport.abort()
        finally:
            call.cancel()
            self._tasks.discard(task)

    async def _pump_in(self, reader: asyncio.StreamReader, call: Any) -> None:
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    msg = pb.ServeHTTPRequest()
                    msg.body_complete = True
                    await call.write(msg)
                    await call.done_writing()
                    return
                msg = pb.ServeHTTPRequest()
                msg.body_chunk = data
                await call.write(msg)
        except ConnectionError:
            call.cancel()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
