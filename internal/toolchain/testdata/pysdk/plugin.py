"""A Python plugin laid out as Mattermost's Python SDK has its modules.

The contract's modules live in the package mattermost_plugin.grpc, compiled
flat from .proto files side by side. Run as

    python3 plugin.py unix:/path/to/plugin.sock servicer|serve

"servicer" serves the app from a servicer of the plugin's own, with one line
for ServeHTTP, as the SDK's servicers do; "serve" runs serve_plugin_hooks.
Both import every generated module first, so a broken import fails either.
"""

import asyncio
import signal
import sys

import grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mattermost_plugin.grpc import hooks_http_httpbridge, hooks_httpbridge, hooks_pb2_grpc


async def hello(request: Request) -> PlainTextResponse:
    init = request.scope["extensions"]["httpbridge"]["init"]
    return PlainTextResponse(f"hello from {sys.argv[2]}, request {init.plugin_context.request_id}\n")


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


app = Starlette(routes=[Route("/hello", hello), Route("/echo", echo, methods=["POST"])])


class Hooks(hooks_pb2_grpc.PluginHooksServicer):
    ServeHTTP = hooks_http_httpbridge.ServeHTTPASGI(app).handle


async def serve_servicer(address: str) -> None:
    server = grpc.aio.server()
    hooks_pb2_grpc.add_PluginHooksServicer_to_server(Hooks(), server)
    server.add_insecure_port(address)
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(f"serving gRPC on {address}", flush=True)
    await stop.wait()
    await server.stop(None)


if __name__ == "__main__":
    address, how = sys.argv[1], sys.argv[2]
    if how == "servicer":
        asyncio.run(serve_servicer(address))
    else:
        ready = lambda port: print(f"serving gRPC on {address}", flush=True)  # noqa: E731
        asyncio.run(hooks_httpbridge.serve_plugin_hooks(app, address, ready=ready))
