"""The answer modal: the post, a reply draft, an internal note, saved answers. Pure builders.

Opened by the *Answer…* button on an alert. Choosing a saved answer fills the draft
(``dispatch_action`` on the menu, then ``views.update``); the submission is read back with
``read_submission``, which names the input block of each problem so Slack shows it inline.
Everything a source or a person wrote is escaped (mrkdwn) or cleaned (plain text) and cut to
Block Kit's limits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    CheckboxesElement,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot import mrkdwn
from bot.cards import source_label
from bot.ids import AnswerActionId, AnswerBlockId, AnswerCallbackId
from storage.models import Mention, SavedAnswer

# Slack allows 3,000 characters in a plain_text_input; a public reply rarely needs more.
DRAFT_LIMIT = 3000
NOTE_LIMIT = 2000
TITLE_LIMIT = 120
POST_TEXT_LIMIT = 1500
POST_TITLE_LIMIT = 200
POST_LINES = 12  # lines of the post quoted as they are; the rest run together
OPTION_TEXT_LIMIT = 75
SAVE_VALUE = "save"


@dataclass(frozen=True, slots=True)
class AnswerMetadata:
    """Carried in the modal's private_metadata (Slack hands it back untouched)."""

    mention_id: int
    channel_id: str | None = None  # where the alert is: confirmations go there, ephemerally
    revision: int = 0  # of the draft block; see AnswerBlockId.DRAFT
    used_answer_id: int | None = None  # the saved answer the draft was filled from

    def encode(self) -> str:
        return json.dumps(
            {
                "m": self.mention_id,
                "c": self.channel_id,
                "r": self.revision,
                "u": self.used_answer_id,
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, raw: str | None) -> AnswerMetadata:
        """Raise ``ValueError`` for anything :meth:`encode` did not write."""
        try:
            data = json.loads(raw or "")
        except ValueError as exc:
            raise ValueError("not answer-modal metadata") from exc
        if not isinstance(data, dict):
            raise ValueError("not answer-modal metadata")
        mention_id, channel, revision, used = (data.get(k) for k in ("m", "c", "r", "u"))
        if type(mention_id) is not int or type(revision) is not int or revision < 0:
            raise ValueError("not answer-modal metadata")
        if used is not None and type(used) is not int:
            raise ValueError("not answer-modal metadata")
        channel_id = channel[:32] if isinstance(channel, str) and channel else None
        return cls(mention_id, channel_id, revision, used)

    @property
    def draft_block_id(self) -> str:
        return f"{AnswerBlockId.DRAFT}.{self.revision}"


@dataclass(frozen=True, slots=True)
class AnswerForm:
    """What the person typed; also what a views.update carries over."""

    draft: str = ""
    note: str = ""
    save: bool = False
    title: str = ""


def _mrkdwn(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text, verbatim=True)


def _plain(text: str, limit: int) -> PlainTextObject:
    return PlainTextObject(text=mrkdwn.plain(text, limit) or "-", emoji=True)


def quote_post(mention: Mention) -> str:
    """The post as a mrkdwn quote under a line saying where it is from; ≤ 2,000 characters."""
    where = [mrkdwn.truncate(source_label(mention.source), 120)]
    if mention.author and mention.author.strip():
        where.append("by " + mrkdwn.truncate(" ".join(mrkdwn.clean(mention.author).split()), 100))
    if mention.published_at is not None:
        where.append(mrkdwn.date(mention.published_at))
    head = " · ".join(where)
    title = " ".join(mrkdwn.clean(mention.title or "").split())
    if title:
        head += f"\n*{mrkdwn.truncate(title, POST_TITLE_LIMIT)}*"
    lines = [line.strip() for line in mrkdwn.clean(mention.text).splitlines() if line.strip()]
    if len(lines) > POST_LINES:
        lines = [*lines[: POST_LINES - 1], " ".join(lines[POST_LINES - 1 :])]
    body = mrkdwn.truncate("\n".join(lines), POST_TEXT_LIMIT)
    quoted = "\n".join(">" + line for line in body.splitlines()) or ">_No text._"
    return f"{head}\n{quoted}"


def _suggestion_option(answer: SavedAnswer) -> Option:
    label = " ".join(mrkdwn.clean(answer.title).split())
    suffix = f" · used {answer.use_count}×" if answer.use_count else ""
    text = mrkdwn.plain(label, OPTION_TEXT_LIMIT - len(suffix)) + suffix
    return Option(text=PlainTextObject(text=text or "-", emoji=True), value=str(answer.id))


def _suggestions(suggestions: Sequence[SavedAnswer], used_answer_id: int | None) -> Block:
    options = [_suggestion_option(a) for a in suggestions[:100] if a.id is not None]
    chosen = next((o for o in options if o.value == str(used_answer_id)), None)
    return InputBlock(
        block_id=AnswerBlockId.SUGGESTIONS.value,
        label=_plain("Start from a saved answer", 150),
        optional=True,
        dispatch_action=True,  # choosing one fills the draft straight away
        hint=_plain("Best matches for this post first. Choosing one replaces the draft.", 150),
        element=StaticSelectElement(
            action_id=AnswerActionId.PICK.value,
            placeholder=_plain(f"{len(options)} saved answer(s) match", 150),
            options=options,
            initial_option=chosen,
        ),
    )


def answer_view(
    mention: Mention,
    *,
    suggestions: Sequence[SavedAnswer],
    metadata: AnswerMetadata,
    form: AnswerForm = AnswerForm(),
) -> dict[str, Any]:
    """The modal for answering ``mention``, with ``form`` as what is already typed in."""
    blocks: list[Block] = [
        SectionBlock(block_id=AnswerBlockId.POST.value, text=_mrkdwn(quote_post(mention)))
    ]
    url = mrkdwn.safe_url(mention.url)
    if url is not None:
        blocks.append(
            ActionsBlock(
                block_id=AnswerBlockId.ORIGINAL.value,
                elements=[
                    ButtonElement(
                        text=_plain("Open the original to reply there", 75),
                        action_id=AnswerActionId.OPEN_ORIGINAL.value,
                        url=url,
                    )
                ],
            )
        )
    else:
        blocks.append(ContextBlock(elements=[_mrkdwn("_This post has no web link to open._")]))
    if suggestions:
        blocks.append(_suggestions(suggestions, metadata.used_answer_id))
    else:
        blocks.append(
            ContextBlock(
                block_id=AnswerBlockId.SUGGESTIONS.value,
                elements=[_mrkdwn("No saved answer matches this post yet.")],
            )
        )
    blocks += [
        InputBlock(
            block_id=metadata.draft_block_id,
            label=_plain("Reply draft for the public post", 150),
            optional=True,
            hint=_plain(
                "Earful does not post it publicly: it goes in the alert's thread, and you post "
                "it on the original.",
                150,
            ),
            element=PlainTextInputElement(
                action_id=AnswerActionId.DRAFT.value,
                multiline=True,
                max_length=DRAFT_LIMIT,
                initial_value=_initial(form.draft, DRAFT_LIMIT),
                placeholder=_plain("What you would reply to the author", 150),
            ),
        ),
        InputBlock(
            block_id=AnswerBlockId.NOTE.value,
            label=_plain("Internal note", 150),
            optional=True,
            hint=_plain("For the team; kept with the mention's history.", 150),
            element=PlainTextInputElement(
                action_id=AnswerActionId.NOTE.value,
                multiline=True,
                max_length=NOTE_LIMIT,
                initial_value=_initial(form.note, NOTE_LIMIT),
            ),
        ),
        InputBlock(
            block_id=AnswerBlockId.SAVE.value,
            label=_plain("Knowledge base", 150),
            optional=True,
            element=CheckboxesElement(
                action_id=AnswerActionId.SAVE.value,
                options=[_save_option()],
                initial_options=[_save_option()] if form.save else None,
            ),
        ),
        InputBlock(
            block_id=AnswerBlockId.TITLE.value,
            label=_plain("Title of the saved answer", 150),
            optional=True,
            hint=_plain("Needed to save it: /earful answers lists saved answers by title.", 150),
            element=PlainTextInputElement(
                action_id=AnswerActionId.TITLE.value,
                max_length=TITLE_LIMIT,
                initial_value=_initial(form.title, TITLE_LIMIT),
                placeholder=_plain("e.g. Refund for a lost order", 150),
            ),
        ),
    ]
    view = View(
        type="modal",
        callback_id=AnswerCallbackId.SUBMIT.value,
        title=_plain("Answer a mention", 24),
        submit=_plain("Mark answered", 24),
        close=_plain("Cancel", 24),
        private_metadata=metadata.encode(),
        blocks=blocks,
    )
    return view.to_dict()


def _save_option() -> Option:
    return Option(text=_plain("Save as a reusable answer", 75), value=SAVE_VALUE)


def _initial(text: str, limit: int) -> str | None:
    # Cut by hand rather than with an ellipsis: this is text the person will go on editing.
    return text[:limit] if text else None


def notice_view(message: str, *, form: AnswerForm) -> dict[str, Any]:
    """What replaces the modal when the answer could not be recorded: why, and the draft to copy.

    ``message`` is Earful's own mrkdwn (an EarfulError's text); the draft is escaped.
    """
    blocks: list[Block] = [
        SectionBlock(block_id=AnswerBlockId.NOTICE.value, text=_mrkdwn(f":warning: {message}"))
    ]
    for label, text in (("Your draft", form.draft), ("Your note", form.note)):
        if text.strip():
            body = mrkdwn.truncate(text.strip(), 2600)
            quoted = "\n".join(">" + line for line in body.splitlines())
            blocks.append(SectionBlock(text=_mrkdwn(f"*{label}*, to copy:\n{quoted}")))
    view = View(
        type="modal",
        title=_plain("Not answered", 24),
        close=_plain("Close", 24),
        blocks=blocks,
    )
    return view.to_dict()


# --------------------------------------------------------------------------- reading it back


def _value(values: Mapping[str, Any], block_id: str, action_id: str) -> dict[str, Any]:
    state = (values.get(block_id) or {}).get(action_id) or {}
    return state if isinstance(state, dict) else {}


def _text(values: Mapping[str, Any], block_id: str, action_id: str) -> str:
    value = _value(values, block_id, action_id).get("value")
    return value.strip() if isinstance(value, str) else ""


def read_form(values: Mapping[str, Any], metadata: AnswerMetadata) -> AnswerForm:
    """What was typed, as it is (possibly empty or too long): for carrying over and checking."""
    chosen = _value(values, AnswerBlockId.SAVE, AnswerActionId.SAVE).get("selected_options")
    save = isinstance(chosen, list) and any(
        isinstance(o, dict) and o.get("value") == SAVE_VALUE for o in chosen
    )
    return AnswerForm(
        draft=_text(values, metadata.draft_block_id, AnswerActionId.DRAFT),
        note=_text(values, AnswerBlockId.NOTE, AnswerActionId.NOTE),
        save=save,
        title=" ".join(_text(values, AnswerBlockId.TITLE, AnswerActionId.TITLE).split()),
    )


def picked_answer_id(values: Mapping[str, Any]) -> int | None:
    option = _value(values, AnswerBlockId.SUGGESTIONS, AnswerActionId.PICK).get("selected_option")
    raw = option.get("value") if isinstance(option, dict) else None
    return int(raw) if isinstance(raw, str) and raw.isascii() and raw.isdigit() else None


def check_form(form: AnswerForm, metadata: AnswerMetadata) -> dict[str, str]:
    """Problems per input block, in words for the person (Slack shows them under the input).

    Slack enforces max_length in its client, but a request can come from anywhere: checked here.
    """
    errors: dict[str, str] = {}
    draft_block = metadata.draft_block_id
    if not form.draft and not form.note:
        errors[draft_block] = "Write a reply draft or an internal note (or both)."
    if len(form.draft) > DRAFT_LIMIT:
        errors[draft_block] = (
            f"The draft is {len(form.draft):,} characters; keep it to {DRAFT_LIMIT:,}."
        )
    if len(form.note) > NOTE_LIMIT:
        errors[AnswerBlockId.NOTE] = (
            f"The note is {len(form.note):,} characters; keep it to {NOTE_LIMIT:,}."
        )
    if form.save:
        if not form.title:
            errors[AnswerBlockId.TITLE] = "Give the saved answer a title."
        if not form.draft:
            errors.setdefault(draft_block, "Write the reply you want to save for reuse.")
    if len(form.title) > TITLE_LIMIT:
        errors[AnswerBlockId.TITLE] = (
            f"The title is {len(form.title):,} characters; keep it to {TITLE_LIMIT}."
        )
    return errors
