"""Buttons and menus on alert cards: Claim, Answered, Escalate, Resolve, Dismiss, Reroute."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.app_services import Services
from bot.ids import ActionId
from bot.workflow import Action
from handlers import queues as queue_handlers

ALERT_ACTIONS = {
    ActionId.CLAIM: Action.CLAIM,
    ActionId.ANSWER: Action.ANSWER,
    ActionId.ESCALATE: Action.ESCALATE,
    ActionId.RESOLVE: Action.RESOLVE,
    ActionId.DISMISS: Action.DISMISS,  # a menu of reasons
    ActionId.REOPEN: Action.REOPEN,
    ActionId.REROUTE: Action.REROUTE,  # a menu of departments
}


def _channel(body: dict[str, Any]) -> str | None:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    return str(channel) if channel else None


def _value(action: dict[str, Any]) -> str | None:
    """A button's value, or the value of the option picked in a menu."""
    value = action.get("value") or (action.get("selected_option") or {}).get("value")
    return str(value) if value is not None else None


def _listener(services: Services, workflow_action: Action) -> Callable[..., Awaitable[None]]:
    async def on_action(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user_id, channel_id, value = str(body["user"]["id"]), _channel(body), _value(action)
        await services.interactions.alert_action(
            user_id=user_id, channel_id=channel_id, action=workflow_action, value=value
        )
        if workflow_action is Action.DISMISS:
            await services.commands.mutes.offer_after_dismissal(
                user_id=user_id, channel_id=channel_id, value=value
            )
        await services.home.publish(user_id=user_id)  # App Home follows the person's actions

    return on_action


def register(app: AsyncApp, services: Services) -> None:
    for action_id, workflow_action in ALERT_ACTIONS.items():
        app.action(action_id.value)(_listener(services, workflow_action))

    @app.action(ActionId.OPEN_ORIGINAL.value)
    async def on_open_original(ack: AsyncAck) -> None:
        # Link buttons open the URL in the browser; Slack still expects an ack.
        await ack()

    queue_handlers.register(app, services)  # queue lists, App Home buttons, the mute offer
