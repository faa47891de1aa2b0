"""Runs app.py as an httpbridge plugin, as a plugin author would: the
generated serve_plugin_hooks serves the app over gRPC. Beside it, on a
port of its own, the process serves raw.py, the transport's ceiling.

    python3 plugin.py

Both servers listen on 127.0.0.1, on ports picked by the system; once
both serve, the process prints them on one line, "PLUGIN_PORT RAW_PORT".
It stops on SIGTERM or SIGINT. gen/python must be on PYTHONPATH.
HTTPBRIDGE_BENCH_CHUNK, if set, is the response chunk size (default
64 KiB), as for the Go plugin. HTTPBRIDGE_BENCH_LOOP is the event loop, as
run_plugin_hooks's loop option: "auto" (uvloop's if installed, the default),
"asyncio" or "uvloop". HTTPBRIDGE_BENCH_MMAP, if set, is serve_plugin_hooks's
mmap_threshold.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Dict

from mattermost.pluginapi.v1 import hooks_httpbridge

import raw
from app import app


def options() -> Dict[str, Any]:
    """serve_plugin_hooks's options from the environment, those only that
    are set: so that an older generated module can be measured too."""
    got: Dict[str, Any] = {}
    if os.environ.get("HTTPBRIDGE_BENCH_MMAP"):
        got["mmap_threshold"] = int(os.environ["HTTPBRIDGE_BENCH_MMAP"])
    return got


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
            **options(),
        )
    finally:
        await raw_server.stop(None)


def new_loop() -> asyncio.AbstractEventLoop:
    loop = os.environ.get("HTTPBRIDGE_BENCH_LOOP", "auto")
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


if __name__ == "__main__":
    # What run_plugin_hooks(loop=...) does, with raw's server in the same loop.
    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(serve())
