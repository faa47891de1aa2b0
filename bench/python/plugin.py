"""Runs app.py as an httpbridge plugin, as a plugin author would: the
generated serve_plugin_hooks serves the app over gRPC. Beside it, on a
port of its own, the process serves raw.py, the transport's ceiling.

    python3 plugin.py

Both servers listen on 127.0.0.1, on ports picked by the system; once
both serve, the process prints them on one line, "PLUGIN_PORT RAW_PORT".
It stops on SIGTERM or SIGINT. gen/python must be on PYTHONPATH.
HTTPBRIDGE_BENCH_CHUNK, if set, is the response chunk size (default
64 KiB), as for the Go plugin.
"""

from __future__ import annotations

import asyncio
import os

from mattermost.pluginapi.v1 import hooks_httpbridge

import raw
from app import app


async def serve() -> None:
    raw_server, raw_port = await raw.start("127.0.0.1:0")

    def ready(port: int) -> None:
        print(port, raw_port, flush=True)

    try:
        await hooks_httpbridge.serve_plugin_hooks(
            app,
            "127.0.0.1:0",
            ready=ready,
            chunk_size=int(os.environ.get("HTTPBRIDGE_BENCH_CHUNK") or 0),
        )
    finally:
        await raw_server.stop(None)


if __name__ == "__main__":
    asyncio.run(serve())
