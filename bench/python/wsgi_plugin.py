"""Runs wsgi_app.py as an httpbridge plugin, one of two ways:

    python3 wsgi_plugin.py threads   # serve_plugin_hooks: grpcio's synchronous server
    python3 wsgi_plugin.py aio       # PluginHooksBridge on a grpc.aio server

"threads" is what serve_plugin_hooks does for a WSGI app; "aio" serves the
app with the grpc.aio WSGI facade instead (ServeHTTPWSGI, as a servicer of
one's own on grpc.aio would), the way serve_plugin_hooks did before the
threaded facade. The server listens on 127.0.0.1, on a port picked by the
system, which the process prints once it serves. It stops on SIGTERM or
SIGINT. gen/python must be on PYTHONPATH; HTTPBRIDGE_BENCH_CHUNK is the
response chunk size, as for plugin.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import grpc

from mattermost.pluginapi.v1 import hooks_httpbridge, hooks_pb2_grpc

from wsgi_app import app


def ready(port: int) -> None:
    print(port, flush=True)


async def serve_aio(chunk_size: int) -> None:
    servicer = hooks_httpbridge.PluginHooksBridge(app, interface="wsgi", chunk_size=chunk_size)
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    hooks_pb2_grpc.add_PluginHooksServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await server.start()
    ready(port)
    try:
        await stopping.wait()
    finally:
        await server.stop(5.0)
        await servicer.shutdown(5.0)


def main() -> None:
    chunk_size = int(os.environ.get("HTTPBRIDGE_BENCH_CHUNK") or 0)
    how = sys.argv[1] if len(sys.argv) > 1 else "threads"
    if how == "aio":
        asyncio.run(serve_aio(chunk_size))
    elif how == "threads":
        asyncio.run(hooks_httpbridge.serve_plugin_hooks(app, "127.0.0.1:0", ready=ready, chunk_size=chunk_size))
    else:
        raise SystemExit(f"wsgi_plugin.py {how}: want threads or aio")


if __name__ == "__main__":
    main()
