"""Buttons on queue lists and App Home (Previous/Next, Claim, Open) and the mute offer."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.app_services import Services
from bot.cards import ActionValue
from bot.ids import ActionId
from bot.workflow import Action


def _channel(body: dict[str, Any]) -> str | None:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    return str(channel) if channel else None


def register(app: AsyncApp, services: Services) -> None:
    queues = services.commands.queues
    mutes = services.commands.mutes

    @app.action(ActionId.QUEUE_PREVIOUS.value)
    @app.action(ActionId.QUEUE_NEXT.value)
    async def on_page(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        reply = await queues.turn_page(user_id=str(body["user"]["id"]), value=action.get("value"))
        await respond(**reply.as_ack(), replace_original=True)

    @app.action(ActionId.QUEUE_CLAIM.value)
    async def on_claim(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        user_id = str(body["user"]["id"])
        target = queues.claim_target(action.get("value"))
        await services.interactions.alert_action(
            user_id=user_id,
            channel_id=_channel(body),
            action=Action.CLAIM,
            value=ActionValue(mention_id=target.mention_id).encode() if target else None,
        )
        await services.home.publish(user_id=user_id)
        if target is not None and body.get("response_url"):
            # A list in a message redraws in place; App Home (no response_url) was just
            # republished.
            reply = await queues.redraw(user_id=user_id, ref=target.back)
            await respond(**reply.as_ack(), replace_original=True)

    @app.action(ActionId.QUEUE_OPEN.value)
    async def on_open(ack: AsyncAck) -> None:
        # A link button: the browser opens the alert; Slack still expects an ack.
        await ack()

    @app.action(ActionId.MUTE_AUTHOR.value)
    @app.action(ActionId.MUTE_DOMAIN.value)
    async def on_mute(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        reply = await mutes.mute_from_offer(
            user_id=str(body["user"]["id"]), value=action.get("value")
        )
        await respond(**reply.as_ack(), replace_original=True)
