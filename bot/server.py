"""The HTTP side: Slack's requests at /slack/events, plus /healthz for load balancers."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from storage.db import Database

MAX_REQUEST_BYTES = 1_000_000  # Slack's payloads are far smaller; refuse anything bigger


def build_web_app(
    bolt_app: AsyncApp | None,
    *,
    db: Database,
    scheduler_running: Callable[[], bool],
) -> web.Application:
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)

    async def slack_events(request: web.Request) -> web.StreamResponse:
        assert bolt_app is not None
        bolt_request = await to_bolt_request(request)
        bolt_response = await bolt_app.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    async def healthz(_: web.Request) -> web.Response:
        database = await db.ping()
        scheduler = scheduler_running()
        ok = database and scheduler
        return web.json_response(
            {"ok": ok, "database": database, "scheduler": scheduler}, status=200 if ok else 503
        )

    if bolt_app is not None:
        app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    return app
