"""The HTTP side: Slack's requests at /slack/events, plus /healthz for load balancers and
/metrics for Prometheus."""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder
from pydantic import SecretStr
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from bot import metrics
from bot.logs import bind, correlated
from bot.request_guard import PARSED, guard_slack_requests
from storage import outbox
from storage.db import Database

MAX_REQUEST_BYTES = 1_000_000  # Slack's payloads are far smaller; refuse anything bigger
SLACK_EVENTS_PATH = "/slack/events"


@web.middleware
async def correlate_slack_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One correlation id for everything logged while a Slack request is handled, including
    the Bolt listener tasks it starts (they inherit the context)."""
    if request.path != SLACK_EVENTS_PATH:
        return await handler(request)
    with correlated("req"):
        return await handler(request)


def _authorized(request: web.Request, token: SecretStr) -> bool:
    scheme, _, given = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


def build_web_app(
    bolt_app: AsyncApp | None,
    *,
    db: Database,
    scheduler_running: Callable[[], bool],
    metrics_token: SecretStr | None = None,
    outbox_depth_max_age: float = metrics.OUTBOX_DEPTH_MAX_AGE,
    health: Callable[[], Awaitable[Mapping[str, Any]]] | None = None,
) -> web.Application:
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[correlate_slack_requests])
    app.middlewares.append(guard_slack_requests)  # after observing: refusals get an id too

    async def count_pending() -> int:
        async with db.session() as session:
            return await outbox.pending_count(session)

    outbox_depth = metrics.OutboxDepth(count_pending, max_age=outbox_depth_max_age)

    async def slack_events(request: web.Request) -> web.StreamResponse:
        assert bolt_app is not None
        started = time.perf_counter()
        # Parsed once, by the guard in front (bot/request_guard.py).
        bolt_request = request.get(PARSED) or await to_bolt_request(request)
        request_type = metrics.slack_request_type(bolt_request.body)
        team = bolt_request.context.team_id
        bind(request_type=request_type, **({"team": team} if team else {}))
        bolt_response = await bolt_app.async_dispatch(bolt_request)
        # Refusals (a bad signature) are not acks, and anyone could send them to skew the figures.
        if bolt_response.status < 400:
            metrics.observe_ack(request_type, time.perf_counter() - started)
        return await to_aiohttp_response(bolt_response)

    async def healthz(_: web.Request) -> web.Response:
        if health is not None:
            # The runtime knows its role: a leader, a follower standing by (bot/runtime.py).
            report = dict(await health())
            return web.json_response(report, status=200 if report.get("ok") else 503)
        database = await db.ping()
        scheduler = scheduler_running()
        ok = database and scheduler
        return web.json_response(
            {"ok": ok, "database": database, "scheduler": scheduler}, status=200 if ok else 503
        )

    async def prometheus(request: web.Request) -> web.Response:
        if metrics_token is not None and not _authorized(request, metrics_token):
            return web.Response(
                status=401, text="unauthorized\n", headers={hdrs.WWW_AUTHENTICATE: "Bearer"}
            )
        await outbox_depth.refresh()
        encoder, content_type = choose_encoder(request.headers.get(hdrs.ACCEPT, ""))
        return web.Response(body=encoder(REGISTRY), headers={hdrs.CONTENT_TYPE: content_type})

    if bolt_app is not None:
        app.router.add_post(SLACK_EVENTS_PATH, slack_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prometheus)
    return app
