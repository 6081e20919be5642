"""What happens after a click, a reaction or a slash command: services called from handlers.

Handlers ack first and call these; nothing here raises into Bolt. Known problems become a
friendly ephemeral note to the person who acted; unknown ones are logged with a reference.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.cards import ActionValue
from bot.command_service import CommandService
from bot.errors import CommandError, EarfulError
from bot.replies import Reply, error_reply, text_reply
from bot.workflow import Action, Workflow
from storage import mentions as mention_store
from storage.db import Database
from storage.models import DismissReason

log = logging.getLogger(__name__)

COMMAND_DEADLINE = 2.5  # seconds; Slack gives up on an ack after 3
REACTION_ACTIONS = {
    "eyes": Action.CLAIM,
    "rotating_light": Action.ESCALATE,
    "white_check_mark": Action.RESOLVE,
    "heavy_check_mark": Action.RESOLVE,
    "no_entry_sign": Action.DISMISS,
    "no_entry": Action.DISMISS,
}
# A reaction cannot say why; a quick 🚫 is taken to mean noise (the card's menu has the rest).
REACTION_DISMISS_REASON = DismissReason.NOISE


def unexpected(exc: BaseException, what: str) -> str:
    reference = uuid.uuid4().hex[:8]
    log.error("%s failed (ref %s)", what, reference, exc_info=exc)
    return f"Something went wrong on my side (ref `{reference}`). Please try again."


class Interactions:
    def __init__(
        self,
        db: Database,
        *,
        client: AsyncWebClient,
        commands: CommandService,
        workflow: Workflow,
    ) -> None:
        self._db = db
        self._client = client
        self._commands = commands
        self._workflow = workflow

    async def command(
        self,
        *,
        user_id: str,
        text: str,
        respond: Callable[..., Awaitable[Any]] | None = None,
        channel_id: str | None = None,
    ) -> Reply:
        """The reply to put in the ack; a slow command answers later through ``respond``.

        ``channel_id`` is where the command was typed (``/earful queue`` lists that channel's
        department by default)."""
        task = asyncio.ensure_future(
            self._command(user_id=user_id, text=text, channel_id=channel_id)
        )
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout=COMMAND_DEADLINE)
        except TimeoutError:
            if respond is not None:
                task.add_done_callback(
                    lambda done: asyncio.ensure_future(_respond_later(done, respond))
                )
            return text_reply(":hourglass_flowing_sand: Working on it…")

    async def _command(self, *, user_id: str, text: str, channel_id: str | None = None) -> Reply:
        try:
            return await self._commands.run(user_id=user_id, text=text, channel_id=channel_id)
        except CommandError as exc:
            return error_reply(str(exc), example=exc.example)
        except EarfulError as exc:
            return error_reply(str(exc))
        except Exception as exc:
            return error_reply(unexpected(exc, "slash command"))

    async def alert_action(
        self,
        *,
        user_id: str,
        channel_id: str | None,
        action: Action,
        value: str | None,
    ) -> None:
        """``value`` is the clicked button's value or the chosen menu option's value."""
        try:
            decoded = _decode(value)
            await self._workflow.apply(
                mention_id=decoded.mention_id,
                action=action,
                actor=user_id,
                department=decoded.department,
                reason=_reason(decoded.reason),
            )
        except EarfulError as exc:
            await self._tell(channel_id, user_id, str(exc))
        except Exception as exc:
            await self._tell(channel_id, user_id, unexpected(exc, f"alert action {action}"))

    async def reaction(self, *, user_id: str, reaction: str, channel_id: str, ts: str) -> None:
        action = REACTION_ACTIONS.get(reaction.split("::")[0])
        if action is None:
            return
        try:
            async with self._db.read() as session:
                mention = await mention_store.get_mention_by_message(
                    session, channel=channel_id, ts=ts
                )
            if mention is None or mention.id is None:
                return  # a reaction on some other message
            await self._workflow.apply(
                mention_id=mention.id,
                action=action,
                actor=user_id,
                reason=REACTION_DISMISS_REASON if action is Action.DISMISS else None,
            )
        except EarfulError as exc:
            await self._tell(channel_id, user_id, f"Your :{reaction}: changed nothing. {exc}")
        except Exception as exc:
            await self._tell(channel_id, user_id, unexpected(exc, f"reaction {reaction}"))

    async def _tell(self, channel_id: str | None, user_id: str, text: str) -> None:
        if not channel_id:
            return
        try:
            await self._client.chat_postEphemeral(channel=channel_id, user=user_id, text=text)
        except SlackApiError as exc:
            log.warning("could not tell %s: %s", user_id, exc.response.get("error"))
        except Exception:
            log.exception("could not tell %s", user_id)


def _decode(value: str | None) -> ActionValue:
    try:
        return ActionValue.decode(str(value or "")[:2000])
    except ValueError:
        raise CommandError("That button is not attached to a mention.") from None


def _reason(value: str | None) -> DismissReason | None:
    if value is None:
        return None
    try:
        return DismissReason(value)
    except ValueError:
        raise CommandError("That menu choice is not a reason to dismiss a mention.") from None


async def _respond_later(
    task: asyncio.Future[Reply], respond: Callable[..., Awaitable[Any]]
) -> None:
    try:
        reply = task.result()
        await respond(**reply.as_ack(), replace_original=False)
    except Exception:
        log.exception("could not deliver a late slash-command reply")
