"""The ASGI facade's own cost, without gRPC: app.py served by the generated
ServeHTTPASGI from an in-memory stream, against raw.py's handler on the
same stream (the least any handler of these messages does).

    python3 facade.py [ROUNDS]

For each workload it runs both handlers ROUNDS times (default 2000)
alternately in blocks, and prints one line per handler in Go's benchmark
format, with the process's CPU time per exchange:

    BenchmarkFacade/work=get/sys=facade  2000  41000 ns/op

so that bench/ratios and benchstat read it. The stream's read and write
return at once: what is left is the facade's code and asyncio's. gen/python
must be on PYTHONPATH.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, Awaitable, Callable, List

import grpc

from mattermost.pluginapi.v1 import hooks_http_httpbridge, hooks_http_pb2

import raw
from app import app

Request = hooks_http_pb2.ServeHTTPRequest


class Stream:
    """A stream whose messages are all there and whose writes never wait."""

    def __init__(self, messages: List[Request]) -> None:
        self._messages = messages
        self._next = 0
        self.written = 0

    async def read(self) -> Any:
        if self._next == len(self._messages):
            return grpc.aio.EOF
        self._next += 1
        return self._messages[self._next - 1]

    async def write(self, message: Any) -> None:
        self.written += len(message.body_chunk)

    def set_code(self, code: grpc.StatusCode) -> None:
        raise AssertionError(f"stream ended with {code}")

    def set_details(self, details: str) -> None:
        pass


def _init(method: str, url: str, content_length: int = 0) -> Request:
    msg = Request(body_complete=True)
    msg.init.method = method
    msg.init.url = url
    msg.init.proto_major, msg.init.proto_minor = 1, 1
    msg.init.host = "127.0.0.1:8065"
    msg.init.remote_addr = "127.0.0.1:52000"
    msg.init.content_length = content_length
    for key, value in (("User-Agent", "Go-http-client/1.1"), ("Accept-Encoding", "gzip")):
        msg.init.headers.add(key=key, values=[value])
    return msg


# Each workload: the facade's request, raw's request (method names the
# workload, content_length its size), and the body bytes both write.
WORKLOADS = {
    "get": (_init("GET", "/small"), _init("get", "/"), 2),
    "download-1MiB": (_init("GET", "/download?n=1048576"), _init("download", "/", 1 << 20), 1 << 20),
}

Handler = Callable[[Any, Stream], Awaitable[None]]


async def _rounds(handle: Handler, first: Request, want: int, n: int) -> float:
    """CPU seconds of n exchanges, each in a task of its own as grpc.aio
    runs them."""
    start = time.process_time()
    for _ in range(n):
        stream = Stream([first])
        await asyncio.ensure_future(handle(None, stream))
        if stream.written != want:
            raise AssertionError(f"{stream.written} body bytes written, want {want}")
    return time.process_time() - start


async def main(rounds: int) -> None:
    facade = hooks_http_httpbridge.ServeHTTPASGI(app, lifespan="off")
    systems = {"facade": facade.handle, "raw": raw.stream}
    for work, (request, raw_request, want) in WORKLOADS.items():
        firsts = {"facade": request, "raw": raw_request}
        spent = dict.fromkeys(systems, 0.0)
        block = max(rounds // 10, 1)
        for name, handle in systems.items():  # warm up
            await _rounds(handle, firsts[name], want, block)
        for _ in range(10):
            for name, handle in systems.items():
                spent[name] += await _rounds(handle, firsts[name], want, block)
        for name in systems:
            ns = spent[name] / (block * 10) * 1e9
            print(f"BenchmarkFacade/work={work}/sys={name}\t{block * 10}\t{ns:.0f} ns/op", flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
