"""The answer modal: the *Answer…* button on an alert, choosing a saved answer, submitting."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.answer_desk import AnswerDesk
from bot.answers import KnowledgeBase
from bot.app_services import Services
from bot.ids import ActionId, AnswerActionId, AnswerCallbackId


def _channel(body: dict[str, Any]) -> str | None:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    return str(channel) if channel else None


def register(app: AsyncApp, services: Services) -> None:
    desk = AnswerDesk(
        services.db,
        client=services.client,
        workflow=services.workflow,
        knowledge=KnowledgeBase(services.db, admins=services.settings.admins),
    )

    @app.action(ActionId.WRITE_ANSWER.value)
    async def on_answer(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        # Ack first; the trigger_id stays good for views.open for 3 seconds after the click.
        await ack()
        await desk.open(
            user_id=str(body["user"]["id"]),
            trigger_id=str(body.get("trigger_id") or ""),
            channel_id=_channel(body),
            value=action.get("value"),
        )

    @app.action(AnswerActionId.PICK.value)
    async def on_pick(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        await desk.pick(view=body.get("view") or {}, chosen=action)

    @app.action(AnswerActionId.OPEN_ORIGINAL.value)
    async def on_open_original(ack: AsyncAck) -> None:
        # The link opens in the browser; Slack still sends the click and expects an ack.
        await ack()

    @app.view(AnswerCallbackId.SUBMIT.value)
    async def on_submit(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user_id = str(body["user"]["id"])
        outcome = await desk.submit(user_id=user_id, view=view)
        if outcome.errors:
            await ack(response_action="errors", errors=outcome.errors)
            return
        if outcome.notice is not None:
            await ack(response_action="update", view=outcome.notice)
            return
        await ack()
        if outcome.confirmation is not None:
            await desk.tell(
                user_id=user_id, channel_id=outcome.channel_id, text=outcome.confirmation
            )
