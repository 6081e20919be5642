"""Events API: emoji reactions on alerts act like the buttons; App Home shows my queue."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.app_services import Services
from bot.interactions import REACTION_ACTIONS


def register(app: AsyncApp, services: Services) -> None:
    @app.event("reaction_added")
    async def on_reaction(event: dict[str, Any]) -> None:
        item = event.get("item") or {}
        if item.get("type") != "message" or not item.get("channel") or not item.get("ts"):
            return
        user_id, reaction = str(event.get("user", "")), str(event.get("reaction", ""))
        await services.interactions.reaction(
            user_id=user_id,
            reaction=reaction,
            channel_id=str(item["channel"]),
            ts=str(item["ts"]),
        )
        if reaction.split("::")[0] in REACTION_ACTIONS:
            await services.home.publish(user_id=user_id)  # App Home follows their actions

    @app.event("reaction_removed")
    async def on_reaction_removed() -> None:
        # Taking a reaction back undoes nothing: the change is in the audit trail and the
        # card offers the way back (Reopen). Acked so Slack does not retry the event.
        return

    @app.event("app_home_opened")
    async def on_home(event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        await services.home.publish(user_id=str(event.get("user", "")))
