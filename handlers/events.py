"""Events API: emoji reactions on alerts act like the buttons; App Home shows my queue."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.app_services import Services


def register(app: AsyncApp, services: Services) -> None:
    @app.event("reaction_added")
    async def on_reaction(event: dict[str, Any]) -> None:
        item = event.get("item") or {}
        if item.get("type") != "message" or not item.get("channel") or not item.get("ts"):
            return
        await services.interactions.reaction(
            user_id=str(event.get("user", "")),
            reaction=str(event.get("reaction", "")),
            channel_id=str(item["channel"]),
            ts=str(item["ts"]),
        )

    @app.event("app_home_opened")
    async def on_home(event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        await services.home.publish(user_id=str(event.get("user", "")))
