"""Assembling Earful: the Bolt app and the services behind it. Nothing connects at import."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.app_services import Services
from bot.command_service import CommandService
from bot.delivery import Delivery
from bot.home import Home
from bot.interactions import Interactions, unexpected
from bot.logs import start_correlation
from bot.replay_guard import ReplayGuard
from bot.settings import Settings
from bot.slack_client import build_client, build_posting_client
from bot.workflow import Workflow
from handlers import actions, answers, commands, digest, events, views
from storage.db import Database

log = logging.getLogger(__name__)


def build_services(
    settings: Settings,
    db: Database,
    *,
    on_watches_changed: Any = lambda: None,
    on_outbox: Callable[[], None] | None = None,
    per_channel_interval: float | None = None,
) -> Services:
    """``on_outbox``: what to do once Slack requests have queued outbox items; the runtime wakes
    the leader replica (bot/leader.py). By default this process's own delivery."""
    client = build_client(settings)
    delivery = Delivery(
        db,
        client=client,
        posting_client=build_posting_client(settings, retry_rate_limits=False),
        per_channel_interval=(
            settings.slack_channel_interval_seconds
            if per_channel_interval is None
            else per_channel_interval
        ),
    )
    outbox_changed = on_outbox or delivery.kick
    workflow = Workflow(db, admins=settings.admins, on_outbox=outbox_changed)
    command_service = CommandService(
        db,
        settings=settings,
        client=client,
        on_outbox=outbox_changed,
        on_watches_changed=on_watches_changed,
    )
    return Services(
        settings=settings,
        db=db,
        client=client,
        delivery=delivery,
        workflow=workflow,
        commands=command_service,
        interactions=Interactions(db, client=client, commands=command_service, workflow=workflow),
        home=Home(db, client=client),
    )


async def _correlate(
    req: AsyncBoltRequest, next: Callable[[], Awaitable[None]]
) -> None:
    """A correlation id for each request over Socket Mode (over HTTP the web server gives each
    its own, bot/server.py). Bolt runs the listeners after its middleware returns, so the id
    is set for the rest of the task: the socket client handles each message in a task of its
    own, and the listener tasks it starts inherit it."""
    if req.mode == "socket_mode":
        start_correlation("req")
    await next()


def create_app(services: Services) -> AsyncApp:
    """The Bolt app with every listener registered. Request verification stays on."""
    app = AsyncApp(
        client=services.client,
        signing_secret=services.settings.slack_signing_secret.get_secret_value(),
        logger=logging.getLogger("slack_bolt"),
    )
    # Bolt's own middleware (signature verification first) runs before any added here.
    app.use(_correlate)
    app.use(ReplayGuard(services.db))

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> BoltResponse:
        # Listeners catch their own known errors; anything here is a bug. Answer 200 so Slack
        # does not retry (and repeat side effects), and keep the traceback in the log.
        unexpected(error, f"listener for {body.get('type') or body.get('command') or 'request'}")
        return BoltResponse(status=200, body="")

    views.register(app, services)  # first: it takes `/earful route edit` from commands
    commands.register(app, services)
    actions.register(app, services)
    answers.register(app, services)
    events.register(app, services)
    digest.register(app, services)  # drill-down and export buttons on digests
    return app
