"""A local feed server: serves RSS documents (or faults) the way a real site would."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from xml.sax.saxutils import escape

import pytest
from aiohttp import web


@dataclass
class FeedItem:
    guid: str
    title: str
    description: str
    link: str
    author: str = "carol@example.com (Carol)"
    published: datetime = field(default_factory=lambda: datetime(2026, 11, 24, 10, 0, tzinfo=UTC))


def rss(items: list[FeedItem], *, title: str = "Reviews") -> bytes:
    entries = "".join(
        f'<item><guid isPermaLink="false">{escape(i.guid)}</guid><title>{escape(i.title)}</title>'
        f"<link>{escape(i.link)}</link><author>{escape(i.author)}</author>"
        f"<pubDate>{format_datetime(i.published)}</pubDate>"
        f"<description>{escape(i.description)}</description></item>"
        for i in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>https://example.com/</link>"
        f"<description>Test feed</description>{entries}</channel></rss>"
    ).encode()


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml"
    delay: float = 0.0
    hits: int = 0


class FeedServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self._runner: web.AppRunner | None = None
        self.base = ""

    def serve(self, path: str, body: bytes, **kwargs: object) -> str:
        self.routes[path] = Route(body=body, **kwargs)  # type: ignore[arg-type]
        return self.base + path

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        route = self.routes.get(request.path)
        if route is None:
            return web.Response(status=404, text="not found")
        route.hits += 1
        if route.delay:
            await asyncio.sleep(route.delay)
        etag = '"' + hashlib.sha256(route.body).hexdigest()[:16] + '"'
        if route.status == 200 and request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(
            status=route.status,
            body=route.body,
            headers={"ETag": etag, "Content-Type": route.content_type},
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def feed_server() -> AsyncIterator[FeedServer]:
    server = FeedServer()
    await server.start()
    yield server
    await server.stop()
