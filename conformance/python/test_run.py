"""run_plugin_hooks: the event loop it picks (uvloop when installed, as
uvicorn's --loop auto) and serve_plugin_hooks's mmap_threshold."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
from typing import Any, List

import pytest

from mattermost.pluginapi.v1 import hooks_httpbridge

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def loop_of_a_run(**options: Any) -> str:
    """Runs the plugin until it serves, then stops it as a host would
    (SIGUSR1 here); returns the module of the loop it served in."""
    loops: List[str] = []

    def ready(port: int) -> None:
        assert port > 0
        loops.append(type(asyncio.get_running_loop()).__module__)
        os.kill(os.getpid(), signal.SIGUSR1)

    hooks_httpbridge.run_plugin_hooks(app, "127.0.0.1:0", ready=ready, signals=(signal.SIGUSR1,), grace=1.0, **options)
    assert len(loops) == 1
    return loops[0]


@pytest.mark.parametrize(
    "loop, want",
    [
        ("auto", "uvloop" if HAVE_UVLOOP else "asyncio"),
        ("asyncio", "asyncio"),
        pytest.param("uvloop", "uvloop", marks=pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed")),
    ],
)
def test_run_serves_in_the_loop_asked_for(loop: str, want: str) -> None:
    assert loop_of_a_run(loop=loop).partition(".")[0] == want


def test_run_without_uvloop_and_loop_uvloop_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def without_uvloop(name: str, *args: Any) -> Any:
        if name == "uvloop":
            raise ImportError("No module named 'uvloop'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_uvloop)
    assert loop_of_a_run(loop="auto").startswith("asyncio")
    with pytest.raises(ImportError):
        hooks_httpbridge.run_plugin_hooks(app, "127.0.0.1:0", loop="uvloop")


@pytest.mark.parametrize(
    "options, error",
    [
        ({"loop": "trio"}, "loop='trio': want auto, asyncio or uvloop"),
        ({"mmap_threshold": 0}, "mmap_threshold=0: want 1 byte to 1 GiB"),
        ({"mmap_threshold": 2 << 30}, "mmap_threshold=2147483648: want 1 byte to 1 GiB"),
    ],
)
def test_run_refuses_bad_options_before_serving(options: Any, error: str) -> None:
    with pytest.raises(ValueError) as err:
        hooks_httpbridge.run_plugin_hooks(app, "127.0.0.1:0", ready=lambda port: pytest.fail("served"), **options)
    assert str(err.value) == error


def test_mmap_threshold_is_set_in_glibc() -> None:
    """With mmap_threshold, a block below it comes from the heap: glibc's
    mallinfo2 counts no mapped block for it. (24 MiB: glibc's own moving
    threshold, which rises to the size of a mapped block freed, may have
    passed smaller sizes already in this process.)"""
    ctypes = pytest.importorskip("ctypes")
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("not glibc 2.33 or later")

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]

    def mapped_for(size: int) -> int:
        block = libc.malloc(size)
        try:
            return int(libc.mallinfo2().hblks)
        finally:
            libc.free(block)

    before = mapped_for(24 << 20)
    loop_of_a_run(loop="asyncio", mmap_threshold=32 << 20)
    after = mapped_for(24 << 20)
    assert after < before
