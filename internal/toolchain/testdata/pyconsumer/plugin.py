"""A Python plugin: a Starlette app served to the host over gRPC."""

import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mattermost.pluginapi.v1 import hooks_httpbridge


async def hello(request: Request) -> PlainTextResponse:
    init = request.scope["extensions"]["httpbridge"]["init"]
    return PlainTextResponse(f"hello from the plugin, request {init.plugin_context.request_id}\n")


app = Starlette(routes=[Route("/hello", hello)])

if __name__ == "__main__":
    # The host names the address, such as unix:/path/to/plugin.sock.
    address = sys.argv[1]
    ready = lambda port: print(f"serving gRPC on {address}", flush=True)  # noqa: E731
    hooks_httpbridge.run_plugin_hooks(app, address, ready=ready)
