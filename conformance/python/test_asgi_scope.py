"""The ASGI scope built from the request's init, the request target table,
and protocol violations at the start of the stream (F-Q1..F-Q13)."""

from __future__ import annotations

import logging
from typing import Any, List

import pytest

from conftest import (
    BAD_REQUEST,
    INTERNAL_ERROR,
    Out,
    bridge,
    chunk,
    init,
    response_body,
    response_start,
    serve,
    serve_asgi,
    FakeContext,
)
from mattermost.pluginapi.v1 import hooks_common_pb2


def scope_app(seen: List[Any]):
    async def app(scope, receive, send):
        seen.append(scope)
        await send(response_start(200))
        await send(response_body(b"ok"))

    return app


OK = [Out(200, [], b"ok", False, True)]


async def scope_of(msg, **options) -> dict:
    seen: List[Any] = []
    ctx = await serve_asgi(scope_app(seen), [msg], **options)
    assert ctx.outs == OK
    assert len(seen) == 1
    return seen[0]


async def test_scope_from_init():
    seen: List[Any] = []
    plugin_context = hooks_common_pb2.PluginContext(session_id="sess", request_id="req-1", user_agent="ua")
    msg = init(
        "/a%20b/c%2Fd?x=1&y=%20",
        "POST",
        headers=[("X-Upper", ["A", "B"]), ("Accept", ["*/*"]), ("x-upper", ["C"]), ("X-Empty", [""])],
        host="example.com:8080",
        remote_addr="192.0.2.1:1234",
        proto="HTTP/1.0",
        proto_major=1,
        proto_minor=0,
        plugin_context=plugin_context,
    )
    ctx = FakeContext([msg])
    await serve(bridge.ServeHTTPASGI(scope_app(seen), root_path="/plugins/x"), ctx)
    assert ctx.outs == OK
    scope = seen[0]
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["method"] == "POST"
    assert scope["http_version"] == "1.0"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/a b/c/d"
    assert scope["raw_path"] == b"/a%20b/c%2Fd"
    assert scope["query_string"] == b"x=1&y=%20"
    assert scope["root_path"] == "/plugins/x"
    assert scope["headers"] == [
        (b"host", b"example.com:8080"),
        (b"x-upper", b"A"),
        (b"x-upper", b"B"),
        (b"accept", b"*/*"),
        (b"x-upper", b"C"),
        (b"x-empty", b""),
    ]
    assert all(type(n) is bytes and type(v) is bytes for n, v in scope["headers"])
    assert tuple(scope["client"]) == ("192.0.2.1", 1234)
    assert tuple(scope["server"]) == ("example.com", 8080)
    ext = scope["extensions"]["httpbridge"]
    assert ext["context"] is ctx
    assert ext["init"].plugin_context.session_id == "sess"
    assert ext["init"].plugin_context.request_id == "req-1"
    assert ext["init"].url == "/a%20b/c%2Fd?x=1&y=%20"
    assert "state" not in scope  # no lifespan ran


async def test_method_keeps_its_case():
    """As net/http and the Go facade: "delete" is not DELETE, so a host's
    check of the exact method cannot be passed by a lower-case one."""
    scope = await scope_of(init("/", "delete"))
    assert scope["method"] == "delete"


async def test_method_defaults_to_get():
    scope = await scope_of(init("/", ""))
    assert scope["method"] == "GET"


@pytest.mark.parametrize(
    "major,minor,want",
    [(0, 0, "1.1"), (1, 0, "1.0"), (1, 1, "1.1"), (2, 0, "2"), (3, 0, "3")],
)
async def test_http_version(major, minor, want):
    scope = await scope_of(init("/", proto_major=major, proto_minor=minor))
    assert scope["http_version"] == want


@pytest.mark.parametrize(
    "remote_addr,want",
    [
        ("192.0.2.1:1234", ("192.0.2.1", 1234)),
        ("[2001:db8::1]:443", ("2001:db8::1", 443)),
        ("", None),
        # Never a None port, which code formats with %d: no port, no client.
        ("192.0.2.1", None),
        ("[2001:db8::1]", None),
        ("@", None),
        ("192.0.2.1:http", None),
        ("192.0.2.1:\u0661\u0662", None),
    ],
)
async def test_client(remote_addr, want):
    scope = await scope_of(init("/", remote_addr=remote_addr))
    assert (tuple(scope["client"]) if scope["client"] is not None else None) == want


@pytest.mark.parametrize(
    "url,host,want",
    [
        ("/", "example.com:8080", ("example.com", 8080)),
        ("/", "example.com", ("example.com", 80)),
        ("https://example.com/", "example.com", ("example.com", 443)),
        ("/", "[::1]:8443", ("::1", 8443)),
        ("/", "[2001:db8::2]", ("2001:db8::2", 80)),
        ("/", "", None),
    ],
)
async def test_server(url, host, want):
    scope = await scope_of(init(url, host=host))
    assert (tuple(scope["server"]) if scope["server"] is not None else None) == want


async def test_host_header_first_and_once():
    scope = await scope_of(init("/", host="h.example", headers=[("Accept", ["a"]), ("Host", ["other.example"])]))
    assert scope["headers"] == [(b"host", b"h.example"), (b"accept", b"a")]


async def test_no_host():
    scope = await scope_of(init("/", host="", headers=[("Accept", ["a"])]))
    assert scope["headers"] == [(b"accept", b"a")]


async def test_utf8_header_value_bytes():
    scope = await scope_of(init("/", headers=[("X-Name", ["café"])]))
    assert (b"x-name", "café".encode()) in scope["headers"]


# url, method -> scheme, path, raw_path, query_string
TARGETS = [
    ("/a/b?c=d", "GET", "http", "/a/b", b"/a/b", b"c=d"),
    # As url.ParseRequestURI: the query's escapes are the app's business.
    ("/x?d=50%", "GET", "http", "/x", b"/x", b"d=50%"),
    ("/x?q=%zz", "GET", "http", "/x", b"/x", b"q=%zz"),
    # Never read as a host: a host-side check on "/secret" must not be
    # bypassed (F-Q2).
    ("//evil/secret", "GET", "http", "//evil/secret", b"//evil/secret", b""),
    ("//evil/secret?x=1", "GET", "http", "//evil/secret", b"//evil/secret", b"x=1"),
    ("http://example.org/x?y=1", "GET", "http", "/x", b"/x", b"y=1"),
    ("https://example.org:8443/p%2Fq", "GET", "https", "/p/q", b"/p%2Fq", b""),
    ("https://example.org", "GET", "https", "/", b"/", b""),
    ("https://example.org?q=1", "GET", "https", "/", b"/", b"q=1"),
    # What a host's prefix strip leaves.
    ("", "GET", "http", "/", b"/", b""),
    ("?a=b", "GET", "http", "/", b"/", b"a=b"),
    ("api/x?y", "GET", "http", "/api/x", b"/api/x", b"y"),
    ("*", "OPTIONS", "http", "*", b"*", b""),
    # ParseRequestURI keeps "#" in the query.
    ("/x?y=1#z", "GET", "http", "/x", b"/x", b"y=1#z"),
    ("/caf%C3%A9/%41", "GET", "http", "/café/A", b"/caf%C3%A9/%41", b""),
]


@pytest.mark.parametrize("url,method,scheme,path,raw_path,query", TARGETS)
async def test_target(url, method, scheme, path, raw_path, query):
    scope = await scope_of(init(url, method))
    assert (scope["scheme"], scope["path"], scope["raw_path"], scope["query_string"]) == (scheme, path, raw_path, query)


BAD_TARGETS = ["%zz", "/a%zz", "/a%2", "/a%", "/a\x00b", "/a\nb", "/a\rb", "/a\tb", "/a\x7f", "http://x/\x01"]


@pytest.mark.parametrize("url", BAD_TARGETS)
async def test_bad_target_is_400_and_app_not_called(url, caplog):
    seen: List[Any] = []
    ctx = await serve_asgi(scope_app(seen), [init(url + "?token=s3cr3t"), chunk(b"ignored", True)])
    assert ctx.outs == BAD_REQUEST
    assert seen == []
    assert ctx.reads == 1  # the rest of the request is not read
    assert ctx.code is None
    assert "s3cr3t" not in caplog.text  # the query may hold a token


async def test_first_message_without_init_is_500(caplog):
    seen: List[Any] = []
    ctx = await serve_asgi(scope_app(seen), [chunk(b"body", True)])
    assert ctx.outs == INTERNAL_ERROR
    assert seen == []
    assert "no init" in caplog.text


async def test_empty_stream_is_500():
    seen: List[Any] = []
    ctx = await serve_asgi(scope_app(seen), [])
    assert ctx.outs == INTERNAL_ERROR
    assert seen == []


async def test_init_with_default_fields_is_served():
    """An init whose fields are all unset is still an init."""
    seen: List[Any] = []
    msg = init("", "", host="", remote_addr="", proto="", proto_major=0, proto_minor=0, content_length=0)
    ctx = await serve_asgi(scope_app(seen), [msg])
    assert ctx.outs == OK
    scope = seen[0]
    assert (scope["method"], scope["path"], scope["http_version"], scope["client"], scope["server"]) == (
        "GET",
        "/",
        "1.1",
        None,
        None,
    )


async def test_later_init_is_ignored_and_logged(caplog):
    got: List[Any] = []

    async def app(scope, receive, send):
        while True:
            event = await receive()
            got.append(event)
            if not event.get("more_body"):
                break
        await send(response_start(200))
        await send(response_body(b"ok"))

    late = init("/other", "DELETE", body=b"b", complete=False)
    with caplog.at_level(logging.WARNING, logger="httpbridge"):
        ctx = await serve_asgi(app, [init("/", "POST", complete=False), chunk(b"a"), late, chunk(b"c", True)])
    assert ctx.outs == OK
    assert [e["body"] for e in got] == [b"a", b"b", b"c"]
    assert "ignoring an init" in caplog.text
