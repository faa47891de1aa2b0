"""raw for Python: the transport's ceiling, as bench/raw_test.go is for Go.

A bare bidirectional grpc.aio stream of the bridge's own messages, with
nothing of the bridge and no ASGI: what the generated facade, or any
Python plugin serving HTTP over this contract, cannot do better than. The
first request message names the workload in init.method and its size in
init.content_length:

    upload    N bytes in chunks up, the count back in one message
    download  N bytes in 64 KiB chunks down
    echo      every chunk sent back as it arrives
    get       "hi" back in one message
    events    N messages of 100 bytes down, each with flush
"""

from __future__ import annotations

from typing import Any, Tuple

import grpc

from mattermost.pluginapi.v1 import hooks_http_pb2

from app import EVENT, PATTERN, PIECE, SMALL

SERVICE = "httpbridge.bench.Raw"
"""The service's name, and its one method is Stream: raw_test.go's."""

Response = hooks_http_pb2.ServeHTTPResponse


async def stream(request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
    """Serves one raw exchange."""
    msg = await context.read()
    if msg is grpc.aio.EOF:
        return
    kind, size = msg.init.method, msg.init.content_length
    if kind == "upload":
        n = len(msg.body_chunk)
        while not msg.body_complete:
            msg = await context.read()
            if msg is grpc.aio.EOF:
                return
            n += len(msg.body_chunk)
        await context.write(Response(body_chunk=str(n).encode(), body_complete=True))
    elif kind == "download":
        while size > 0:
            m = min(size, PIECE)
            size -= m
            await context.write(Response(body_chunk=PATTERN[:m], body_complete=size == 0))
    elif kind == "echo":
        while True:
            await context.write(Response(body_chunk=msg.body_chunk, body_complete=msg.body_complete))
            if msg.body_complete:
                return
            msg = await context.read()
            if msg is grpc.aio.EOF:
                return
    elif kind == "get":
        await context.write(Response(body_chunk=SMALL, body_complete=True))
    elif kind == "events":
        for i in range(size):
            await context.write(Response(body_chunk=EVENT, flush=True, body_complete=i == size - 1))
    else:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"raw: unknown workload {kind!r}")


async def start(address: str) -> Tuple[grpc.aio.Server, int]:
    """Starts a grpc.aio server of the raw service on address; returns it
    and its port."""
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Stream": grpc.stream_stream_rpc_method_handler(
                stream,
                request_deserializer=hooks_http_pb2.ServeHTTPRequest.FromString,
                response_serializer=Response.SerializeToString,
            )
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(address)
    await server.start()
    return server, port
