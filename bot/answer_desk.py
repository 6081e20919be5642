"""Answering a mention in the answer modal: open it, fill in a saved answer, submit it.

The submission marks the mention answered through the workflow (the same rules, audit event,
card update and thread reply as every other transition), then keeps the draft and the note
with the mention and, when asked, saves the draft to the knowledge base. Nothing here raises
into Bolt: known problems become a message for the person, unknown ones a logged reference.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import mrkdwn
from bot.answer_modal import (
    AnswerForm,
    AnswerMetadata,
    answer_view,
    check_form,
    notice_view,
    picked_answer_id,
    read_form,
)
from bot.answers import SUGGESTED, KnowledgeBase, answer_terms, mention_intents
from bot.cards import ActionValue
from bot.errors import EarfulError, NotFound
from bot.ids import AnswerActionId, AnswerBlockId
from bot.interactions import unexpected
from bot.workflow import Action, Outcome, Workflow, plan
from storage import answers as answer_store
from storage import leads as lead_store
from storage import mentions as mention_store
from storage.db import Database
from storage.models import Mention, SavedAnswer

log = logging.getLogger(__name__)

GONE = "That alert is not attached to a mention any more."
NOT_OPENED = (
    "Slack did not open the answer form (it allows 3 seconds after a click). Please click "
    "*Answer…* again."
)


@dataclass(frozen=True, slots=True)
class Submission:
    """What a submitted modal came to: inline errors, a notice to show instead, or done."""

    errors: dict[str, str] = field(default_factory=dict)
    notice: dict[str, Any] | None = None  # a view replacing the modal (response_action update)
    confirmation: str | None = None  # mrkdwn for the person, ephemerally, once the modal closed
    channel_id: str | None = None


def event_note(form: AnswerForm) -> str:
    """The answer event's note, which the thread reply shows: the draft, else the note."""
    return form.draft if form.draft else f"Internal note: {form.note}"


class AnswerDesk:
    def __init__(
        self,
        db: Database,
        *,
        client: AsyncWebClient,
        workflow: Workflow,
        knowledge: KnowledgeBase,
    ) -> None:
        self._db = db
        self._client = client
        self._workflow = workflow
        self._knowledge = knowledge

    async def open(
        self, *, user_id: str, trigger_id: str, channel_id: str | None, value: str | None
    ) -> None:
        """The *Answer…* button: the modal, or an ephemeral note saying why not."""
        try:
            try:
                mention_id = ActionValue.decode(str(value or "")[:2000]).mention_id
            except ValueError:
                raise NotFound(GONE) from None
            mention = await self._answerable(mention_id, user_id=user_id)
            suggestions = await self._knowledge.suggest(mention)
            view = answer_view(
                mention,
                suggestions=suggestions,
                metadata=AnswerMetadata(mention_id=mention_id, channel_id=channel_id),
            )
            await self._client.views_open(trigger_id=trigger_id, view=view)
        except EarfulError as exc:
            await self.tell(user_id=user_id, channel_id=channel_id, text=str(exc))
        except SlackApiError as exc:
            log.warning("views.open failed: %s", exc.response.get("error"))
            await self.tell(user_id=user_id, channel_id=channel_id, text=NOT_OPENED)
        except Exception as exc:
            text = unexpected(exc, "opening the answer form")
            await self.tell(user_id=user_id, channel_id=channel_id, text=text)

    async def _answerable(self, mention_id: int, *, user_id: str) -> Mention:
        """The mention, if ``user_id`` may answer it now; the workflow checks again on submit."""
        async with self._db.read() as session:
            mention = await mention_store.get_mention(session, mention_id=mention_id)
            if mention is None:
                raise NotFound("That mention no longer exists.")
            lead = await lead_store.lead_for(session, department=mention.department)
        # Refusing here spares someone writing a reply the workflow would then turn down.
        plan(
            mention,
            Action.ANSWER,
            actor=user_id,
            is_admin=self._workflow.is_admin(user_id),
            lead=lead,
        )
        return mention

    async def pick(self, *, view: Mapping[str, Any], chosen: Mapping[str, Any]) -> None:
        """A saved answer was chosen: fill the draft with it, keeping everything else typed.

        ``chosen`` is the action Slack sent; its ``selected_option`` is the answer's id.
        """
        try:
            metadata = AnswerMetadata.decode(str(view.get("private_metadata") or ""))
            values = (view.get("state") or {}).get("values") or {}
            answer_id = picked_answer_id(
                {AnswerBlockId.SUGGESTIONS: {AnswerActionId.PICK: dict(chosen)}}
            )
            async with self._db.read() as session:
                mention = await mention_store.get_mention(session, mention_id=metadata.mention_id)
                answer = (
                    await answer_store.get_answer(session, answer_id=answer_id)
                    if answer_id is not None
                    else None
                )
            if mention is None or answer is None:
                return  # the mention or the answer was deleted meanwhile: leave the form be
            form = replace(read_form(values, metadata), draft=answer.body)
            suggestions = await self._knowledge.suggest(mention)
            if all(s.id != answer.id for s in suggestions):
                suggestions = [answer, *suggestions][:SUGGESTED]
            updated = answer_view(
                mention,
                suggestions=suggestions,
                # A new draft block id: Slack would otherwise keep the old draft on screen.
                metadata=replace(
                    metadata, revision=metadata.revision + 1, used_answer_id=answer.id
                ),
                form=form,
            )
            await self._client.views_update(
                view_id=str(view.get("id") or ""), hash=str(view.get("hash") or ""), view=updated
            )
        except SlackApiError as exc:
            # hash_conflict: the form changed again meanwhile, and that change updates it.
            log.info("views.update of the answer form failed: %s", exc.response.get("error"))
        except Exception as exc:
            unexpected(exc, "filling in a saved answer")

    async def submit(self, *, user_id: str, view: Mapping[str, Any]) -> Submission:
        try:
            metadata = AnswerMetadata.decode(str(view.get("private_metadata") or ""))
        except ValueError:
            return Submission(notice=notice_view(GONE, form=AnswerForm()))
        form = read_form((view.get("state") or {}).get("values") or {}, metadata)
        errors = check_form(form, metadata)
        if errors:
            return Submission(errors=errors)
        try:
            outcome = await self._workflow.apply(
                mention_id=metadata.mention_id,
                action=Action.ANSWER,
                actor=user_id,
                note=event_note(form),
            )
        except EarfulError as exc:
            return Submission(notice=notice_view(str(exc), form=form))
        except Exception as exc:
            return Submission(notice=notice_view(unexpected(exc, "answering a mention"), form=form))
        try:
            saved = await self._keep(outcome, form=form, metadata=metadata, user_id=user_id)
        except Exception as exc:
            # The mention is answered and the event holds the draft; only the extras are lost.
            text = (
                f"{outcome.message} But the draft and note could not be kept with it, and "
                f"nothing was saved for reuse. {unexpected(exc, 'keeping an answer')}"
            )
            return Submission(confirmation=text, channel_id=metadata.channel_id)
        return Submission(
            confirmation=_confirmation(outcome, form, saved), channel_id=metadata.channel_id
        )

    async def _keep(
        self, outcome: Outcome, *, form: AnswerForm, metadata: AnswerMetadata, user_id: str
    ) -> SavedAnswer | None:
        mention = outcome.mention
        async with self._db.session() as session:
            used = metadata.used_answer_id
            if used is not None and not await answer_store.count_use(session, answer_id=used):
                used = None  # deleted since it was chosen
            saved = None
            if form.save:
                intents = mention_intents(mention)
                saved = await answer_store.add_answer(
                    session,
                    title=form.title,
                    body=form.draft,
                    terms=answer_terms(form.title, form.draft, intents),
                    author=user_id,
                    department=mention.department,
                    intents=intents,
                    watch_name=mention.watch_name,
                    mention_id=mention.id,
                )
            await answer_store.record_answer(
                session,
                mention_id=metadata.mention_id,
                event_id=outcome.event.id,
                author=user_id,
                draft=form.draft or None,
                note=form.note or None,
                saved_answer_id=saved.id if saved is not None else None,
                used_answer_id=used,
            )
        return saved

    async def tell(self, *, user_id: str, channel_id: str | None, text: str) -> None:
        """Ephemeral in the alert's channel, else a DM; never raises."""
        try:
            if channel_id:
                try:
                    await self._client.chat_postEphemeral(
                        channel=channel_id, user=user_id, text=text
                    )
                    return
                except SlackApiError as exc:
                    log.info("ephemeral to %s failed: %s", channel_id, exc.response.get("error"))
            await self._client.chat_postMessage(channel=user_id, text=text)
        except Exception:
            log.exception("could not tell %s about an answer", user_id)


def _confirmation(outcome: Outcome, form: AnswerForm, saved: SavedAnswer | None) -> str:
    text = outcome.message
    if form.draft and mrkdwn.safe_url(outcome.mention.url) is not None:
        original = mrkdwn.link(outcome.mention.url, "the original")
        text += f" Your draft is in the alert's thread: post it on {original}."
    if saved is not None:
        title = mrkdwn.truncate(saved.title, 150)
        text += f" Saved for reuse as answer #{saved.id} *{title}*."
    return text
