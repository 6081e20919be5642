"""``/earful`` — the reply goes back in the ack itself, so it is instant and ephemeral."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.app_services import Services


def register(app: AsyncApp, services: Services) -> None:
    @app.command("/earful")
    async def earful(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        reply = await services.interactions.command(
            user_id=str(command.get("user_id", "")),
            text=str(command.get("text") or ""),
            respond=respond,
            channel_id=str(command.get("channel_id") or "") or None,
        )
        await ack(**reply.as_ack())
