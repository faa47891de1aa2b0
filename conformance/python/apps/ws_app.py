"""The WebSocket echo apps of the WebSocket tests (conformance/python/
test_websocket*.py and conformance/python_ws_test.go): a raw ASGI echo, and
the same echo as a Starlette WebSocketRoute. As one app, for serve.py: the
raw echo at /raw, an app that fails after accepting at /boom, the
Starlette app (its echo at /ws) everywhere else.

Both accept with the first subprotocol offered, echo every message, and
close on a text message "close" (1000, "asked") or "close CODE REASON".
"""

from __future__ import annotations

from typing import Any


async def raw_echo(scope: Any, receive: Any, send: Any) -> None:
    """A raw ASGI echo: accepts (with the first subprotocol offered), echoes
    every message, and closes with 1000 on a message "close"."""
    if scope["type"] == "lifespan":
        return
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    subprotocols = scope.get("subprotocols") or []
    await send({"type": "websocket.accept", "subprotocol": subprotocols[0] if subprotocols else None})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "close":
            await send({"type": "websocket.close", "code": 1000, "reason": "asked"})
            return
        if (message.get("text") or "").startswith("close "):
            _, code, reason = message["text"].split(" ", 2)
            await send({"type": "websocket.close", "code": int(code), "reason": reason})
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


def starlette_echo() -> Any:
    """The same echo as a Starlette WebSocketRoute."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept(websocket.scope.get("subprotocols", [None])[0] if websocket.scope.get("subprotocols") else None)
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") == "close":
                    await websocket.close(1000, "asked")
                    return
                if message.get("text", None) is not None and message["text"].startswith("close "):
                    _, code, reason = message["text"].split(" ", 2)
                    await websocket.close(int(code), reason)
                    return
                if message.get("text") is not None:
                    await websocket.send_text(message["text"])
                else:
                    await websocket.send_bytes(message["bytes"])
        except WebSocketDisconnect:
            return

    return Starlette(routes=[WebSocketRoute("/ws", echo)])


_starlette = starlette_echo()


async def boom(scope: Any, receive: Any, send: Any) -> None:
    """Accepts, then fails on the first message."""
    await receive()
    await send({"type": "websocket.accept"})
    await receive()
    raise RuntimeError("boom (the test's)")


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket" and scope["path"] == "/raw":
        await raw_echo(scope, receive, send)
        return
    if scope["type"] == "websocket" and scope["path"] == "/boom":
        await boom(scope, receive, send)
        return
    await _starlette(scope, receive, send)
