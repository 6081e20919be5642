"""A local HTTP server that plays a public API, and a fetcher allowed to reach it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from watchers.http import FetchPolicy, HttpFetcher

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class SeenRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class LocalServer:
    """Register handlers per (method, path); every request is recorded in ``requests``."""

    base: str = ""
    requests: list[SeenRequest] = field(default_factory=list)
    _handlers: dict[tuple[str, str], Handler] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    def route(self, method: str, path: str, handler: Handler) -> str:
        self._handlers[(method.upper(), path)] = handler
        return self.base + path

    def json(
        self,
        path: str,
        document: Any,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        method: str = "GET",
    ) -> str:
        body = json.dumps(document).encode()

        async def handler(_: web.Request) -> web.Response:
            return web.Response(
                body=body, status=status, content_type="application/json", headers=headers
            )

        return self.route(method, path, handler)

    def seen(self, path: str) -> list[SeenRequest]:
        return [r for r in self.requests if r.path == path]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            SeenRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=await request.read(),
            )
        )
        handler = self._handlers.get((request.method, request.path))
        if handler is None:
            return web.json_response({"error": "not found"}, status=404)
        return await handler(request)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
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
async def local_server() -> AsyncIterator[LocalServer]:
    server = LocalServer()
    await server.start()
    yield server
    await server.stop()


def local_policy(**overrides: Any) -> FetchPolicy:
    """Fast and permissive enough for local servers; still capped and still retrying."""
    values: dict[str, Any] = {
        "allow_private": True,
        "timeout_seconds": 2.0,
        "max_bytes": 200_000,
        "per_host_rate": 1000.0,
        "retries": 1,
        "retry_base_seconds": 0.01,
        "max_retry_wait": 0.5,
    }
    values.update(overrides)
    return FetchPolicy(**values)


@pytest.fixture
async def fetcher() -> AsyncIterator[HttpFetcher]:
    async with HttpFetcher(local_policy()) as http:
        yield http
