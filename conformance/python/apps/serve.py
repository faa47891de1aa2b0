"""Serves one test app for conformance/python_test.go.

    serve.py [--watch-stdin] plugin|uvicorn asgi_app|starlette_app|flask_app|ws_app

"plugin" serves the app as a Python plugin, with the generated
serve_plugin_hooks (gen/python must be on PYTHONPATH); "uvicorn" serves it
with uvicorn (the ASGI 3 or WSGI interface, as the app is), the oracle of
the tests (with ws="wsproto" and no permessage-deflate for ws_app, the
WebSocket app, as the facade frames WebSockets). Both listen on 127.0.0.1 on a free port, print the port on a
line of its own once they accept connections, and stop cleanly on SIGTERM
or SIGINT, exiting 0. With --watch-stdin they also stop when stdin ends,
so that a test process that dies takes its servers with it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import socket
import sys
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import support  # noqa: E402


def announce(port: int) -> None:
    print(port, flush=True)


def watch_stdin(stop: Callable[[], None]) -> None:
    """Calls stop once stdin reaches its end."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def readable() -> None:
        if not os.read(fd, 4096):
            loop.remove_reader(fd)
            stop()

    loop.add_reader(fd, readable)


async def serve_plugin(app: Any, watch: bool) -> None:
    from mattermost.pluginapi.v1.hooks_httpbridge import serve_plugin_hooks

    support.LOOP = asyncio.get_running_loop()
    task = asyncio.ensure_future(serve_plugin_hooks(app, "127.0.0.1:0", ready=announce))
    if watch:
        watch_stdin(task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass


async def serve_uvicorn(app: Any, wsgi: bool, watch: bool, websocket: bool = False) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    config = uvicorn.Config(
        app,
        interface="wsgi" if wsgi else "asgi3",
        lifespan="off" if wsgi else "on",
        loop="asyncio",
        http="h11",
        ws="wsproto" if websocket else "none",
        ws_per_message_deflate=False,
        log_level="warning",
        access_log=False,
        # The proxy in front keeps connections for reuse: uvicorn must not
        # close them under it between two requests of a test.
        timeout_keep_alive=600,
    )
    server = uvicorn.Server(config)
    support.LOOP = asyncio.get_running_loop()
    if watch:
        watch_stdin(lambda: setattr(server, "should_exit", True))
    # The socket listens already: connections wait in its backlog until
    # uvicorn accepts them.
    announce(sock.getsockname()[1])
    await server.serve(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watch-stdin", action="store_true", help="stop when stdin ends")
    parser.add_argument("server", choices=["plugin", "uvicorn"])
    parser.add_argument("app", choices=["asgi_app", "starlette_app", "flask_app", "ws_app"])
    args = parser.parse_args()
    module = importlib.import_module(args.app)
    if args.server == "plugin":
        asyncio.run(serve_plugin(module.app, args.watch_stdin))
    else:
        asyncio.run(serve_uvicorn(module.app, args.app == "flask_app", args.watch_stdin, args.app == "ws_app"))


if __name__ == "__main__":
    main()
