"""HttpFetcher against real local aiohttp servers; the SSRF checks also with crafted addresses."""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from watchers.base import SourceBlocked, SourceError
from watchers.http import (
    DEFAULT_USER_AGENT,
    MAX_URL_LENGTH,
    FetchPolicy,
    GuardedResolver,
    HttpBlocked,
    HttpFetcher,
    RateLimited,
    UnsafeURLError,
    address_refusal,
    check_url_syntax,
    parse_retry_after,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Server:
    base: str
    port: int
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # path, headers

    def url(self, path: str) -> str:
        return self.base + path


Serve = Callable[[dict[str, Handler]], Awaitable[Server]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start real aiohttp servers on 127.0.0.1 with ephemeral ports; stop them afterwards."""
    runners: list[web.AppRunner] = []

    async def start(routes: dict[str, Handler]) -> Server:
        server = Server(base="", port=0)

        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            server.requests.append((request.path, dict(request.headers)))
            return await handler(request)

        app = web.Application(middlewares=[record])
        for path, handler in routes.items():
            app.router.add_get(path, handler)
        # Cancel handlers whose client went away, so a sleeping handler can't stall teardown.
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        server.port = runner.addresses[0][1]
        server.base = f"http://127.0.0.1:{server.port}"
        return server

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def fetcher() -> AsyncIterator[HttpFetcher]:
    async with HttpFetcher(FetchPolicy(allow_private=True, timeout_seconds=5)) as f:
        yield f


def text(body: str, **kwargs: Any) -> Handler:
    """A handler answering ``body`` with ``web.Response`` options such as status or headers."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=body, **kwargs)

    return handler


class FakeResolver(AbstractResolver):
    """Answers each lookup of a name with the next list of addresses given for it."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self._answers = {host: list(lists) for host, lists in answers.items()}
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        queue = self._answers[host]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]  # the last answer sticks
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None


# --- check_url_syntax ----------------------------------------------------------------------


def test_check_url_syntax_normalizes() -> None:
    assert check_url_syntax("  HTTPS://Example.COM/Feed.xml?x=1#top ") == (
        "https://example.com/Feed.xml?x=1"
    )
    assert check_url_syntax("http://bücher.de/ä") == "http://xn--bcher-kva.de/%C3%A4"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/feed", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("example.com/feed", "only http and https"),
        ("http:///feed.xml", "no host"),
        ("http://exa mple.com/", "not a valid host name"),
        ("http://127.1/", "usual dotted form"),
        ("http://2130706433/", "usual dotted form"),
        ("http://0x7f.1/", "usual dotted form"),
        ("http://127.0.0.1/feed", "loopback address (127.0.0.1)"),
        ("http://[::1]:8080/", "loopback address (::1)"),
        ("http://[::ffff:127.0.0.1]/", "loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("http://10.1.2.3/", "private address"),
        ("http://localhost:8080/", "localhost"),
        ("http://LOCALHOST./", "localhost"),
        ("http://admin.localhost/", "localhost"),
        ("http://example.com/" + "a" * MAX_URL_LENGTH, "longer than"),
    ],
)
def test_check_url_syntax_refuses(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURLError, match="refusing to fetch") as caught:
        check_url_syntax(url)
    assert reason in str(caught.value)


def test_check_url_syntax_refuses_credentials_without_echoing_them() -> None:
    with pytest.raises(UnsafeURLError, match="user name or password") as caught:
        check_url_syntax("https://alice:hunter2@example.com/feed")
    assert "hunter2" not in str(caught.value)


def test_check_url_syntax_allow_private_still_checks_the_rest() -> None:
    assert check_url_syntax("http://127.0.0.1:8080/f", allow_private=True) == (
        "http://127.0.0.1:8080/f"
    )
    assert check_url_syntax("http://localhost/f", allow_private=True) == "http://localhost/f"
    with pytest.raises(UnsafeURLError, match="only http and https"):
        check_url_syntax("file:///etc/passwd", allow_private=True)


# --- the address check and the resolver ----------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),
        ("192.0.2.10", "private"),  # documentation range: not globally reachable
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 wrapping of 127.0.0.1
        ("2002:a00:1::", "private"),  # 6to4 wrapping of 10.0.0.1
    ],
)
def test_address_refusal_refuses(address: str, kind: str) -> None:
    assert address_refusal(address) == kind


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"],
)
def test_address_refusal_allows_public_addresses(address: str) -> None:
    assert address_refusal(address) is None


async def test_guarded_resolver_refuses_when_any_address_is_private() -> None:
    inner = FakeResolver({"mixed.test": [["93.184.216.34", "10.0.0.7"]]})
    with pytest.raises(UnsafeURLError, match=r"private address \(10\.0\.0\.7\)"):
        await GuardedResolver(inner=inner).resolve("mixed.test", 80)


async def test_guarded_resolver_passes_public_answers_through() -> None:
    inner = FakeResolver({"public.test": [["93.184.216.34", "2606:2800:220:1::1"]]})
    results = await GuardedResolver(inner=inner).resolve("public.test", 443)
    assert [r["host"] for r in results] == ["93.184.216.34", "2606:2800:220:1::1"]
    assert all(r["port"] == 443 for r in results)


async def test_guarded_resolver_checks_every_lookup_against_rebinding() -> None:
    inner = FakeResolver({"rebind.test": [["93.184.216.34"], ["127.0.0.1"]]})
    resolver = GuardedResolver(inner=inner)
    assert [r["host"] for r in await resolver.resolve("rebind.test", 80)] == ["93.184.216.34"]
    with pytest.raises(UnsafeURLError, match="loopback"):
        await resolver.resolve("rebind.test", 80)


async def test_guarded_resolver_allow_private_skips_the_check() -> None:
    inner = FakeResolver({"lan.test": [["192.168.0.10"]]})
    results = await GuardedResolver(allow_private=True, inner=inner).resolve("lan.test", 80)
    assert [r["host"] for r in results] == ["192.168.0.10"]


async def test_guarded_resolver_refuses_localhost_from_the_real_resolver() -> None:
    with pytest.raises(UnsafeURLError, match="loopback"):
        await GuardedResolver().resolve("localhost", 80)


# --- fetching ------------------------------------------------------------------------------


async def test_get_returns_body_and_headers_and_identifies_itself(
    serve: Serve, fetcher: HttpFetcher
) -> None:
    server = await serve({"/feed": text("hello", headers={"X-Thing": "1"})})
    response = await fetcher.get(server.url("/feed"), accept="application/rss+xml")
    assert response.status == 200
    assert response.body == b"hello"
    assert response.url == server.url("/feed")
    assert response.headers["x-thing"] == "1"
    assert response.not_modified is False
    _, sent = server.requests[0]
    assert sent["User-Agent"] == DEFAULT_USER_AGENT
    assert sent["Accept"] == "application/rss+xml"
    assert "If-None-Match" not in sent


async def test_name_resolving_to_loopback_is_refused_before_connecting(serve: Serve) -> None:
    server = await serve({"/feed": text("secret")})
    url = f"http://feeds.test:{server.port}/feed"
    resolver = FakeResolver({"feeds.test": [["127.0.0.1"]]})
    async with HttpFetcher(FetchPolicy(), resolver=resolver) as guarded:
        with pytest.raises(UnsafeURLError) as caught:
            await guarded.get(url)
    assert str(caught.value) == (
        f"refusing to fetch {url}: it resolves to a loopback address (127.0.0.1)"
    )
    assert resolver.lookups == ["feeds.test"]
    assert server.requests == []


async def test_connection_goes_to_the_address_the_resolver_returned(serve: Serve) -> None:
    # The positive control for the test above: the same setup reaches the server when
    # private addresses are allowed, so the refusal there came from the address check.
    server = await serve({"/feed": text("public")})
    resolver = FakeResolver({"feeds.test": [["127.0.0.1"]]})
    async with HttpFetcher(FetchPolicy(allow_private=True), resolver=resolver) as open_fetcher:
        response = await open_fetcher.get(f"http://feeds.test:{server.port}/feed")
    assert response.body == b"public"
    assert server.requests[0][1]["Host"] == f"feeds.test:{server.port}"


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "[::1]", "169.254.169.254", "0.0.0.0", "10.0.0.1", "localhost"]
)
async def test_private_hosts_are_refused_by_default(serve: Serve, host: str) -> None:
    server = await serve({"/feed": text("secret")})
    async with HttpFetcher(FetchPolicy(timeout_seconds=2)) as guarded:
        with pytest.raises(UnsafeURLError, match="refusing to fetch"):
            await guarded.get(f"http://{host}:{server.port}/feed")
    assert server.requests == []


async def test_conditional_get_with_etag(serve: Serve, fetcher: HttpFetcher) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"'})
        return web.Response(body=b"<rss/>", headers={"ETag": '"v1"'})

    server = await serve({"/feed": handler})
    first = await fetcher.get(server.url("/feed"))
    assert (first.status, first.etag, first.not_modified, first.body) == (
        200,
        '"v1"',
        False,
        b"<rss/>",
    )
    second = await fetcher.get(server.url("/feed"), etag=first.etag)
    assert (second.status, second.etag, second.not_modified, second.body) == (
        304,
        '"v1"',
        True,
        b"",
    )
    assert server.requests[1][1]["If-None-Match"] == '"v1"'


async def test_conditional_get_with_last_modified(serve: Serve, fetcher: HttpFetcher) -> None:
    stamp = "Mon, 01 Jan 2024 00:00:00 GMT"

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("If-Modified-Since") == stamp:
            # No validators on the 304: the ones we sent stay current.
            return web.Response(status=304)
        return web.Response(body=b"x", headers={"Last-Modified": stamp})

    server = await serve({"/feed": handler})
    first = await fetcher.get(server.url("/feed"))
    assert first.last_modified == stamp
    second = await fetcher.get(server.url("/feed"), last_modified=stamp)
    assert second.not_modified is True
    assert second.last_modified == stamp


async def test_redirects_are_followed(serve: Serve, fetcher: HttpFetcher) -> None:
    async def first(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently(location="/second")

    async def second(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(location="final?x=1")

    server = await serve({"/first": first, "/second": second, "/final": text("done")})
    response = await fetcher.get(server.url("/first"), etag='"e"')
    assert response.body == b"done"
    assert response.url == server.url("/final?x=1")
    assert [path for path, _ in server.requests] == ["/first", "/second", "/final"]
    # Conditional headers travel with the redirect so a moved feed can still answer 304.
    assert server.requests[-1][1]["If-None-Match"] == '"e"'


async def test_redirect_loop_stops_at_max_redirects(serve: Serve) -> None:
    async def loop(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(location="/loop")

    server = await serve({"/loop": loop})
    async with HttpFetcher(FetchPolicy(allow_private=True, max_redirects=3)) as short:
        with pytest.raises(SourceError, match=r"too many redirects \(more than 3\)"):
            await short.get(server.url("/loop"))
    assert len(server.requests) == 4


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://example.com/feed", "only http and https"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "only http and https"),
        ("http://user:pw@example.com/", "user name or password"),
    ],
)
async def test_redirect_to_a_refused_url_is_refused(
    serve: Serve, fetcher: HttpFetcher, location: str, reason: str
) -> None:
    async def hop(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(location=location)

    server = await serve({"/feed": hop})
    with pytest.raises(UnsafeURLError, match=reason):
        await fetcher.get(server.url("/feed"))


async def test_redirect_without_location_is_an_error(serve: Serve, fetcher: HttpFetcher) -> None:
    server = await serve({"/feed": text("", status=302)})
    with pytest.raises(SourceError, match=r"HTTP 302 from 127\.0\.0\.1 without a Location"):
        await fetcher.get(server.url("/feed"))


async def test_timeout(serve: Serve) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(10)
        return web.Response(text="late")

    server = await serve({"/feed": slow})
    started = time.monotonic()
    async with HttpFetcher(FetchPolicy(allow_private=True, timeout_seconds=0.3)) as quick:
        with pytest.raises(SourceError, match=r"timed out after 0\.3 s"):
            await quick.get(server.url("/feed"))
    assert time.monotonic() - started < 3


async def test_timeout_covers_a_slowly_trickled_body(serve: Serve) -> None:
    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(100):
            await response.write(b"x")
            await asyncio.sleep(0.1)
        return response

    server = await serve({"/feed": trickle})
    async with HttpFetcher(FetchPolicy(allow_private=True, timeout_seconds=0.5)) as quick:
        with pytest.raises(SourceError, match="timed out"):
            await quick.get(server.url("/feed"))


async def test_server_error(serve: Serve, fetcher: HttpFetcher) -> None:
    server = await serve({"/feed": text("oops", status=500)})
    with pytest.raises(SourceError, match=r"^HTTP 500 from 127\.0\.0\.1$") as caught:
        await fetcher.get(server.url("/feed"))
    assert not isinstance(caught.value, SourceBlocked)


async def test_not_found(serve: Serve, fetcher: HttpFetcher) -> None:
    server = await serve({})
    with pytest.raises(SourceError, match=r"^HTTP 404 from 127\.0\.0\.1$") as caught:
        await fetcher.get(server.url("/missing"))
    assert not isinstance(caught.value, SourceBlocked)


async def test_429_with_retry_after_seconds(serve: Serve, fetcher: HttpFetcher) -> None:
    server = await serve({"/feed": text("slow down", status=429, headers={"Retry-After": "120"})})
    with pytest.raises(RateLimited, match=r"rate limited by 127\.0\.0\.1") as caught:
        await fetcher.get(server.url("/feed"))
    assert caught.value.retry_after == 120
    assert caught.value.status == 429
    assert isinstance(caught.value, SourceBlocked)


async def test_429_with_retry_after_date(serve: Serve, fetcher: HttpFetcher) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    server = await serve({"/feed": text("", status=429, headers={"Retry-After": when})})
    with pytest.raises(RateLimited) as caught:
        await fetcher.get(server.url("/feed"))
    assert caught.value.retry_after is not None
    assert 80 <= caught.value.retry_after <= 90


async def test_429_without_retry_after(serve: Serve, fetcher: HttpFetcher) -> None:
    server = await serve({"/feed": text("", status=429)})
    with pytest.raises(RateLimited) as caught:
        await fetcher.get(server.url("/feed"))
    assert caught.value.retry_after is None


async def test_503_with_retry_after_is_rate_limiting(serve: Serve, fetcher: HttpFetcher) -> None:
    server = await serve({"/a": text("", status=503, headers={"Retry-After": "30"})})
    with pytest.raises(RateLimited) as caught:
        await fetcher.get(server.url("/a"))
    assert caught.value.retry_after == 30


async def test_503_without_retry_after_is_an_error(serve: Serve, fetcher: HttpFetcher) -> None:
    server = await serve({"/a": text("", status=503)})
    with pytest.raises(SourceError, match="HTTP 503") as caught:
        await fetcher.get(server.url("/a"))
    assert not isinstance(caught.value, SourceBlocked)


async def test_403_block_page(serve: Serve, fetcher: HttpFetcher) -> None:
    page = "<html><body><h1>Access denied</h1>Please verify you are human.</body></html>"
    server = await serve({"/feed": text(page, status=403, content_type="text/html")})
    with pytest.raises(HttpBlocked, match=r"HTTP 403 from 127\.0\.0\.1") as caught:
        await fetcher.get(server.url("/feed"))
    assert isinstance(caught.value, SourceBlocked)
    assert caught.value.status == 403
    assert caught.value.retry_after is None


async def test_body_over_cap_with_content_length(serve: Serve) -> None:
    async def announced(request: web.Request) -> web.StreamResponse:
        # Announce 10 MB, send a little, then stall: only trusting the announcement answers
        # "too large" at once instead of waiting for the timeout.
        response = web.StreamResponse()
        response.content_length = 10_000_000
        await response.prepare(request)
        await response.write(b"x" * 100)
        await asyncio.sleep(10)
        return response

    server = await serve({"/big": announced, "/small": text("x" * 5_000)})
    policy = FetchPolicy(allow_private=True, max_bytes=1_000, timeout_seconds=2)
    async with HttpFetcher(policy) as capped:
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"^response larger than 1000 bytes$"):
            await capped.get(server.url("/big"))
        assert time.monotonic() - started < 1
        with pytest.raises(SourceError, match=r"^response larger than 1000 bytes$"):
            await capped.get(server.url("/small"))


async def test_body_over_cap_when_streamed_without_content_length(serve: Serve) -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(2_000):  # 128 MB if nobody stops reading
            await response.write(b"x" * 65_536)
        return response

    server = await serve({"/big": endless})
    started = time.monotonic()
    async with HttpFetcher(FetchPolicy(allow_private=True, max_bytes=200_000)) as capped:
        with pytest.raises(SourceError, match=r"^response larger than 200000 bytes$"):
            await capped.get(server.url("/big"))
    assert time.monotonic() - started < 3


async def test_body_over_cap_after_decompression(serve: Serve) -> None:
    bomb = gzip.compress(b"\0" * 10_000_000)
    assert len(bomb) < 100_000

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    server = await serve({"/gz": handler})
    async with HttpFetcher(FetchPolicy(allow_private=True, max_bytes=1_000_000)) as capped:
        with pytest.raises(SourceError, match="larger than 1000000 bytes"):
            await capped.get(server.url("/gz"))


async def test_body_exactly_at_cap_is_accepted(serve: Serve) -> None:
    server = await serve({"/ok": text("x" * 1_000)})
    async with HttpFetcher(FetchPolicy(allow_private=True, max_bytes=1_000)) as capped:
        assert len((await capped.get(server.url("/ok"))).body) == 1_000


async def test_connection_refused(fetcher: HttpFetcher) -> None:
    with socket.socket() as sock:  # a port nothing listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SourceError, match=r"could not connect to 127\.0\.0\.1"):
        await fetcher.get(f"http://127.0.0.1:{port}/feed")


async def test_fetcher_can_be_reused_after_close(serve: Serve) -> None:
    server = await serve({"/feed": text("again")})
    reusable = HttpFetcher(FetchPolicy(allow_private=True))
    assert (await reusable.get(server.url("/feed"))).body == b"again"
    await reusable.close()
    assert (await reusable.get(server.url("/feed"))).body == b"again"
    await reusable.close()


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("", None), ("7", 7.0), (" 30 ", 30.0), ("soon", None), ("-5", None)],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_date_in_the_past_is_zero() -> None:
    assert parse_retry_after("Mon, 01 Jan 2001 00:00:00 GMT") == 0.0


# --- SSRF through real HTTP: every spelling of "this machine", every hop, every lookup -----


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://0177.0.0.1/", "usual dotted form"),
        ("http://0x7f000001/", "usual dotted form"),
        ("http://017700000001/", "usual dotted form"),
        ("http://127.0.0.1./", "usual dotted form"),
        ("http://[::ffff:7f00:1]/", "loopback address"),
        ("http://[0:0:0:0:0:ffff:127.0.0.1]/", "loopback address"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata address"),
        ("http://100.100.100.200/", "cloud metadata address"),
        ("http://100.64.0.1/", "carrier-grade NAT address"),
        ("http://169.254.1.1/", "link-local address"),
        ("http://[fe80::1]/", "link-local address"),
        ("http://192.168.0.1/", "private address"),
        ("http://localhost./", "localhost"),
        ("http://good.example@127.0.0.1/", "user name or password"),
        ("http://good.example:pw@127.0.0.1/", "user name or password"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "only http and https"),
        ("data:text/html,<script>alert(1)</script>", "only http and https"),
        ("javascript://example.com/%0aalert(1)", "only http and https"),
        ("ftp://example.com/", "only http and https"),
        ("file://localhost/etc/passwd", "only http and https"),
        ("HTTP://[::1]/", "loopback address"),
    ],
)
def test_check_url_syntax_refuses_every_disguise(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURLError) as caught:
        check_url_syntax(url)
    assert reason in str(caught.value)
    assert "pw@" not in str(caught.value)


@pytest.mark.parametrize(
    "host",
    [
        "0177.0.0.1",
        "2130706433",
        "0x7f.1",
        "127.1",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "localhost.",
        "LocalHost",
        "good.example@127.0.0.1",
    ],
)
async def test_spellings_of_loopback_never_reach_the_server(serve: Serve, host: str) -> None:
    server = await serve({"/feed": text("secret")})
    async with HttpFetcher(FetchPolicy(timeout_seconds=2)) as guarded:
        with pytest.raises(UnsafeURLError, match="refusing to fetch"):
            await guarded.get(f"http://{host}:{server.port}/feed")
    assert server.requests == []


@pytest.fixture
def loopback_one_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let 127.0.0.1 play a public web server; every other address keeps the real verdict.

    The local servers need an address the guard lets through, so that what is tested is the
    guard's answer for the *next* address: 127.0.0.2 (loopback, refused) in these tests.
    """
    real = address_refusal

    def refusal(address: str) -> str | None:
        return None if address == "127.0.0.1" else real(address)

    monkeypatch.setattr("watchers.http.address_refusal", refusal)


def _free_port_on_both(*hosts: str) -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = int(probe.getsockname()[1])
        try:
            for host in hosts[1:]:
                with socket.socket() as other:
                    other.bind((host, port))
        except OSError:
            continue
        return port
    raise AssertionError("no port free on every address")


async def _serve_on(host: str, port: int, body: str, seen: list[str]) -> web.AppRunner:
    async def handler(request: web.Request) -> web.Response:
        seen.append(f"{host}{request.path}")
        return web.Response(text=body)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


@pytest.mark.usefixtures("loopback_one_is_public")
@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.2:{port}/internal",
        "http://internal.test:{port}/internal",  # a name that resolves to 127.0.0.2
        "http://[::ffff:127.0.0.2]:{port}/internal",
        "http://2130706434:{port}/internal",
    ],
)
async def test_a_redirect_to_an_internal_address_is_refused_before_connecting(
    location: str,
) -> None:
    port = _free_port_on_both("127.0.0.1", "127.0.0.2")
    seen: list[str] = []

    async def hop(request: web.Request) -> web.Response:
        seen.append(f"127.0.0.1{request.path}")
        raise web.HTTPFound(location=location.format(port=port))

    public = web.Application()
    public.router.add_get("/feed", hop)
    public_runner = web.AppRunner(public)
    await public_runner.setup()
    await web.TCPSite(public_runner, "127.0.0.1", port).start()
    internal = await _serve_on("127.0.0.2", port, "internal secrets", seen)
    resolver = FakeResolver({"public.test": [["127.0.0.1"]], "internal.test": [["127.0.0.2"]]})
    try:
        async with HttpFetcher(FetchPolicy(timeout_seconds=3), resolver=resolver) as guarded:
            with pytest.raises(UnsafeURLError, match=r"loopback address|usual dotted form"):
                await guarded.get(f"http://public.test:{port}/feed")
    finally:
        await public_runner.cleanup()
        await internal.cleanup()
    assert seen == ["127.0.0.1/feed"]  # the first hop was served, the internal one never


@pytest.mark.usefixtures("loopback_one_is_public")
async def test_dns_rebinding_cannot_move_the_connection_after_the_check() -> None:
    # The name answers a public address first and an internal one on any later lookup, as a
    # rebinding attacker's DNS server does. A fetcher that looked the name up once to check
    # it and again to connect would end up at 127.0.0.2; ours connects where it checked.
    port = _free_port_on_both("127.0.0.1", "127.0.0.2")
    seen: list[str] = []
    public = await _serve_on("127.0.0.1", port, "public feed", seen)
    internal = await _serve_on("127.0.0.2", port, "internal secrets", seen)
    resolver = FakeResolver({"rebind.test": [["127.0.0.1"], ["127.0.0.2"]]})
    try:
        async with HttpFetcher(FetchPolicy(timeout_seconds=3), resolver=resolver) as guarded:
            response = await guarded.get(f"http://rebind.test:{port}/feed")
            assert response.body == b"public feed"
            assert resolver.lookups == ["rebind.test"]
        # A new connection looks the name up again, and this time the answer is refused.
        async with HttpFetcher(FetchPolicy(timeout_seconds=3), resolver=resolver) as again:
            with pytest.raises(UnsafeURLError, match=r"loopback address \(127\.0\.0\.2\)"):
                await again.get(f"http://rebind.test:{port}/feed")
    finally:
        await public.cleanup()
        await internal.cleanup()
    assert seen == ["127.0.0.1/feed"]


def test_decode_json_refuses_deep_nesting_without_recursing() -> None:
    from watchers.http import FetchResponse, decode_json

    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 70 + b"1" + b"}" * 70):
        response = FetchResponse(
            status=200,
            url="https://api.example.com/x",
            headers={"content-type": "application/json"},
            body=body,
            etag=None,
            last_modified=None,
            not_modified=False,
        )
        with pytest.raises(SourceError, match="nested too deeply"):
            decode_json(response)
