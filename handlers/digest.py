"""The digest's buttons: drill down to the items behind a number, export the period."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.app_services import Services
from bot.errors import EarfulError
from bot.ids import DigestActionId
from bot.interactions import unexpected
from bot.replies import Reply, error_reply

# Drill-down buttons carry a suffix (".0", ".1", …) to stay unique within their block.
DRILL_BUTTON = re.compile(rf"^{re.escape(DigestActionId.DRILL.value)}(\.\d+)?$")


def _channel(body: dict[str, Any]) -> str | None:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    return str(channel) if channel else None


def _value(action: dict[str, Any]) -> str | None:
    value = action.get("value") or (action.get("selected_option") or {}).get("value")
    return str(value) if value is not None else None


async def _safely(work: Any, what: str) -> Reply:
    try:
        reply: Reply = await work
    except EarfulError as exc:
        return error_reply(str(exc))
    except Exception as exc:
        return error_reply(unexpected(exc, what))
    return reply


def register(app: AsyncApp, services: Services) -> None:
    digests = services.commands.digests

    async def on_drill(ack: AsyncAck, action: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        reply = await _safely(digests.drill(_value(action)), "digest drill-down")
        await respond(**reply.as_ack(), replace_original=False)

    app.action(DRILL_BUTTON)(on_drill)
    app.action(DigestActionId.DRILL_MENU.value)(on_drill)

    @app.action(DigestActionId.EXPORT.value)
    async def on_export(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        reply = await _safely(
            digests.export(
                value=_value(action), user_id=str(body["user"]["id"]), channel_id=_channel(body)
            ),
            "digest export",
        )
        await respond(**reply.as_ack(), replace_original=False)
