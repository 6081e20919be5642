"""The routing editor: ``/earful route edit``, the *Edit a routing rule* button, the modal."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot import command_parser as cp
from bot.app_services import Services
from bot.routing_modal import RoutingActionId, RoutingCallbackId, parse_button_value


async def _asks_for_editor(command: dict[str, Any]) -> bool:
    return cp.is_route_edit(str(command.get("text") or ""))


def _channel(body: dict[str, Any]) -> str | None:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    return str(channel) if channel else None


def register(app: AsyncApp, services: Services) -> None:
    """Register before handlers.commands, whose ``/earful`` listener takes any text."""
    editor = services.commands.routing

    @app.command("/earful", matchers=[_asks_for_editor])
    async def on_route_edit(ack: AsyncAck, command: dict[str, Any]) -> None:
        # views.open goes first: the trigger_id is only good for 3 seconds, and a refusal or
        # failure then goes back in the ack itself.
        reply = await editor.open_from_command(
            user_id=str(command.get("user_id", "")),
            text=str(command.get("text") or ""),
            trigger_id=str(command.get("trigger_id") or ""),
            channel_id=str(command.get("channel_id") or "") or None,
        )
        await ack(**reply.as_ack()) if reply is not None else await ack()

    @app.action(RoutingActionId.OPEN_EDITOR.value)
    async def on_open_editor(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user_id, channel_id = str(body["user"]["id"]), _channel(body)
        intent, kind = parse_button_value(action.get("value"))
        reply = await editor.open_editor(
            user_id=user_id,
            trigger_id=str(body.get("trigger_id") or ""),
            channel_id=channel_id,
            intent=intent,
            kind=kind,
        )
        if reply is not None:
            await editor.tell(user_id=user_id, channel_id=channel_id, reply=reply)

    @app.view(RoutingCallbackId.EDIT.value)
    async def on_submit(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user_id = str(body["user"]["id"])
        outcome = await editor.submit(user_id=user_id, view=view)
        if outcome.errors:
            await ack(response_action="errors", errors=outcome.errors)
            return
        await ack()
        if outcome.confirmation is not None:
            await editor.tell(
                user_id=user_id, channel_id=outcome.channel_id, reply=outcome.confirmation
            )
