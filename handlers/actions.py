"""Buttons and the Reroute menu on alert cards."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.app_services import Services
from bot.ids import ActionId
from bot.workflow import Action

BUTTON_ACTIONS = {
    ActionId.CLAIM: Action.CLAIM,
    ActionId.ESCALATE: Action.ESCALATE,
    ActionId.RESOLVE: Action.RESOLVE,
    ActionId.DISMISS: Action.DISMISS,
    ActionId.REOPEN: Action.REOPEN,
}


def _channel(body: dict[str, Any]) -> str | None:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    return str(channel) if channel else None


def _button_listener(
    services: Services, workflow_action: Action
) -> Callable[..., Awaitable[None]]:
    async def on_button(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        await services.interactions.alert_action(
            user_id=str(body["user"]["id"]),
            channel_id=_channel(body),
            action=workflow_action,
            value=action.get("value"),
        )

    return on_button


def register(app: AsyncApp, services: Services) -> None:
    for action_id, workflow_action in BUTTON_ACTIONS.items():
        app.action(action_id.value)(_button_listener(services, workflow_action))

    @app.action(ActionId.REROUTE.value)
    async def on_reroute(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        await services.interactions.alert_action(
            user_id=str(body["user"]["id"]),
            channel_id=_channel(body),
            action=Action.REROUTE,
            value=(action.get("selected_option") or {}).get("value"),
        )

    @app.action(ActionId.OPEN_ORIGINAL.value)
    async def on_open_original(ack: AsyncAck) -> None:
        # Link buttons open the URL in the browser; Slack still expects an ack.
        await ack()
