"""connect() follows redirects: 3xx with Location, bounded, never wss -> ws."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl

import pytest

import fastws
from fastws import retry
from fastws.exceptions import InvalidStatus, InvalidURI, SecurityError
from fastws.http11 import Response

from asyncio_helpers import run


async def report(websocket):
    """Tell the client the path and headers of its request."""
    request = websocket.request
    await websocket.send(json.dumps({"path": request.path, "headers": [list(item) for item in request.headers]}))
    await websocket.wait_closed()


def redirecting(routes, seen=None, delay=0.0):
    """A process_request answering the paths in ``routes`` with (status,
    Location or None), and recording every path in ``seen``."""

    async def process_request(connection, request):
        if seen is not None:
            seen.append(request.path)
        if delay:
            await asyncio.sleep(delay)
        route = routes.get(request.path)
        if route is None:
            return None
        status, location = route
        headers = [] if location is None else [("Location", location)]
        return Response(status, headers=headers, body=b"moved\n")

    return process_request


@contextlib.asynccontextmanager
async def serving(process_request=None, ssl_context=None):
    async with fastws.serve(
        report, "127.0.0.1", 0, process_request=process_request, ssl=ssl_context, ping_interval=None
    ) as srv:
        port = srv.sockets[0].getsockname()[1]
        scheme = "wss" if ssl_context is not None else "ws"
        yield f"{scheme}://127.0.0.1:{port}"


async def received(websocket):
    return json.loads(await websocket.recv())


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """trustme certificates for 127.0.0.1: (server context, client context, CA file)."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server_context, client_context, str(ca_file)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize(
    "start, location, final",
    [
        ("/old", "{base}/new?x=1", "/new?x=1"),  # absolute
        ("/old", "/new", "/new"),  # absolute path
        ("/dir/old", "new", "/dir/new"),  # relative path
        ("/dir/sub/old", "../up", "/dir/up"),
        ("/old?a=1", "?b=2", "/old?b=2"),
        ("/old", "{http}/new", "/new"),  # http:// is ws://
    ],
)
@run
async def test_redirect_followed(status, start, location, final):
    seen = []
    routes = {}
    async with serving(redirecting(routes, seen)) as base:
        routes[start] = (status, location.format(base=base, http=base.replace("ws://", "http://")))
        client = fastws.connect(base + start)
        async with client as websocket:
            assert (await received(websocket))["path"] == final
            assert websocket.response.status_code == 101
        assert client.uri.resource_name == final
    assert seen == [start, final]


@pytest.mark.parametrize(
    "other_origin, credentials_kept",
    [(False, True), (True, False)],
    ids=["same-origin", "other-origin"],
)
@run
async def test_credentials_dropped_across_origins(other_origin, credentials_kept):
    async with serving() as target:
        routes = {}
        async with serving(redirecting(routes)) as base:
            routes["/old"] = (302, (target if other_origin else base) + "/new")
            headers = {"Authorization": "Bearer secret", "Cookie": "s=1", "X-Keep": "yes"}
            async with fastws.connect(base + "/old", additional_headers=headers) as websocket:
                sent = {name.lower(): value for name, value in (await received(websocket))["headers"]}
    assert sent["x-keep"] == "yes"
    assert ("authorization" in sent, "cookie" in sent) == (credentials_kept, credentials_kept)


@run
async def test_user_info_kept_on_same_origin_relative_redirect():
    routes = {"/old": (307, "/new")}
    async with serving(redirecting(routes)) as base:
        uri = base.replace("ws://", "ws://user:pass@") + "/old"
        async with fastws.connect(uri) as websocket:
            sent = dict((await received(websocket))["headers"])
    assert sent["Authorization"] == "Basic dXNlcjpwYXNz"


@run
async def test_redirect_ws_to_wss_allowed(tls, monkeypatch):
    server_context, _, ca_file = tls
    # The client makes its default TLS context for the wss:// target: make it
    # trust the test CA.
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    async with serving(ssl_context=server_context) as secure:
        routes = {"/old": (301, secure + "/new")}
        async with serving(redirecting(routes)) as plain:
            client = fastws.connect(plain + "/old")
            async with client as websocket:
                assert (await received(websocket))["path"] == "/new"
                assert websocket.transport.get_extra_info("ssl_object") is not None
            assert client.uri.secure


@pytest.mark.parametrize("scheme", ["ws", "http"])
@run
async def test_redirect_wss_to_ws_refused(tls, scheme):
    server_context, client_context, _ = tls
    seen = []
    async with serving() as plain:
        target = plain.replace("ws://", f"{scheme}://") + "/new"
        routes = {"/old": (302, target)}
        async with serving(redirecting(routes, seen), ssl_context=server_context) as secure:
            with pytest.raises(SecurityError) as info:
                await fastws.connect(secure + "/old", ssl=client_context)
            assert str(info.value) == f"cannot follow a redirect from wss:// down to {plain}/new"
            assert isinstance(info.value.__cause__, InvalidStatus)
            # Not retried by async for either.
            with pytest.raises(SecurityError):
                async for _ in fastws.connect(secure + "/old", ssl=client_context, reconnect_delays=lambda: iter([0])):
                    pytest.fail("connected after a downgrade")
    assert seen == ["/old", "/old"]


@pytest.mark.parametrize("limit", [None, 2, 0])
@run
async def test_redirect_loop_bounded(limit, monkeypatch):
    if limit is not None:
        monkeypatch.setattr(retry, "MAX_REDIRECTS", limit)
    bound = retry.MAX_REDIRECTS
    seen = []
    routes = {"/a": (302, "/b"), "/b": (307, "/a")}
    async with serving(redirecting(routes, seen)) as base:
        with pytest.raises(SecurityError) as info:
            await fastws.connect(base + "/a")
    assert str(info.value) == f"more than {bound} redirects"
    assert len(seen) == bound + 1
    assert seen[:3] == ["/a", "/b", "/a"][: bound + 1]


@run
async def test_redirects_within_limit_followed(monkeypatch):
    monkeypatch.setattr(retry, "MAX_REDIRECTS", 3)
    routes = {"/1": (302, "/2"), "/2": (302, "/3"), "/3": (302, "/4")}
    async with serving(redirecting(routes)) as base:
        async with fastws.connect(base + "/1") as websocket:
            assert (await received(websocket))["path"] == "/4"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@run
async def test_redirect_without_location_raises_status(status):
    async with serving(redirecting({"/old": (status, None)})) as base:
        with pytest.raises(InvalidStatus) as info:
            await fastws.connect(base + "/old")
    assert info.value.response.status_code == status


@run
async def test_open_timeout_covers_all_redirects():
    # Each request takes 0.2 s: under open_timeout alone, over it together.
    routes = {"/old": (302, "/new")}
    async with serving(redirecting(routes, delay=0.2)) as base:
        with pytest.raises(TimeoutError):
            await fastws.connect(base + "/old", open_timeout=0.3)
        async with fastws.connect(base + "/old", open_timeout=5) as websocket:
            assert (await received(websocket))["path"] == "/new"


@pytest.mark.parametrize(
    "options, other_origin, message",
    [
        ({"host": "127.0.0.1"}, True, "cannot follow a redirect to another origin, {target}, with host or port given"),
        ({"sock": True}, False, "cannot follow a redirect to {target} with a preexisting socket"),
    ],
    ids=["host", "sock"],
)
@run
async def test_redirect_that_cannot_be_followed(options, other_origin, message):
    async with serving() as other:
        routes = {}
        async with serving(redirecting(routes)) as base:
            target = (other if other_origin else base) + "/new"
            routes["/old"] = (302, target)
            options = dict(options)
            if options.get("sock"):
                options["sock"] = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])))
            try:
                with pytest.raises(ValueError) as info:
                    await fastws.connect(base + "/old", **options)
            finally:
                if "sock" in options:
                    options["sock"].close()
    assert str(info.value) == message.format(target=target)
    assert isinstance(info.value.__cause__, InvalidStatus)


@run
async def test_same_origin_redirect_with_host_given():
    routes = {"/old": (302, "/new")}
    async with serving(redirecting(routes)) as base:
        async with fastws.connect(base + "/old", host="127.0.0.1") as websocket:
            assert (await received(websocket))["path"] == "/new"


@run
async def test_async_for_follows_redirects():
    routes = {"/old": (308, "/new")}
    async with serving(redirecting(routes)) as base:
        async for websocket in fastws.connect(base + "/old"):
            assert (await received(websocket))["path"] == "/new"
            break


@pytest.mark.parametrize("location", ["ftp://127.0.0.1/file", "ws://bad host/"])
@run
async def test_redirect_to_unusable_location(location):
    async with serving(redirecting({"/old": (302, location)})) as base:
        with pytest.raises(InvalidURI) as info:
            await fastws.connect(base + "/old")
    assert isinstance(info.value.__cause__, InvalidStatus)


@pytest.mark.parametrize(
    "location, final",
    [
        ("/new", "/new"),  # same origin: followed over the same socket path
        ("ws://localhost/new", "/new"),
        ("ws://other.example/new", None),  # another origin: a Unix socket cannot go there
    ],
)
@run
async def test_redirect_over_unix_socket(tmp_path, location, final):
    path = str(tmp_path / "ws.sock")
    process_request = redirecting({"/old": (302, location)})
    async with fastws.unix_serve(report, path, process_request=process_request, ping_interval=None):
        if final is None:
            with pytest.raises(ValueError) as info:
                await fastws.unix_connect(path, "ws://localhost/old")
            assert str(info.value) == f"cannot follow a redirect to another origin, {location}, over a Unix socket"
        else:
            async with fastws.unix_connect(path, "ws://localhost/old") as websocket:
                assert (await received(websocket))["path"] == final
