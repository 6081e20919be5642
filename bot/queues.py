"""Queues: ``/earful queue [dept]``, ``/earful mine`` and ``/earful search <text>``.

Each answer is a short ephemeral list, :data:`PAGE_SIZE` mentions a page, each with its
priority, state, owner, age and a link to its alert, plus Claim and Open buttons. Previous and
Next carry the list's description (a :class:`PageRef`) in their value and replace the message
through its ``response_url``, so paging keeps no state on our side.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot import mrkdwn
from bot.errors import EarfulError
from bot.ids import ActionId
from bot.permalinks import Permalinks
from bot.queue_commands import MAX_SEARCH, Mine, QueueShow, Search
from bot.replies import Reply, error_reply
from storage import alert_groups, queries
from storage.db import Database
from storage.models import OPEN_STATES, Mention, MentionState
from storage.types import utcnow

log = logging.getLogger(__name__)

PAGE_SIZE = 5
MAX_PAGE = 200  # 1,000 mentions deep: past that, narrow the search
TITLE_LIMIT = 150
SECTION_LIMIT = 3000
BUTTON_URL_LIMIT = 3000


class ListKind(StrEnum):
    QUEUE = "queue"
    MINE = "mine"
    SEARCH = "search"


class PageRef(BaseModel):
    """Which list and which page: all a Previous, Next or Claim button needs to redraw it."""

    kind: ListKind
    department: str | None = Field(default=None, max_length=20)
    text: str | None = Field(default=None, max_length=MAX_SEARCH)
    page: int = Field(default=0, ge=0, le=MAX_PAGE)


class ClaimValue(BaseModel):
    mention_id: int = Field(ge=1)
    back: PageRef


@dataclass(frozen=True, slots=True)
class QueueItem:
    mention: Mention
    link: str | None  # the alert's permalink, else the original post


@dataclass(frozen=True, slots=True)
class QueuePage:
    ref: PageRef
    items: Sequence[QueueItem]
    has_next: bool
    now: datetime


# ----------------------------------------------------------------- builders (pure)


def age(delta: timedelta) -> str:
    """``45s``, ``12m``, ``5h``, ``3d``: how long ago, briefly."""
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def list_title(ref: PageRef) -> str:
    if ref.kind is ListKind.MINE:
        return "Claimed by you, open"
    if ref.kind is ListKind.SEARCH:
        return f"Mentions matching “{mrkdwn.truncate(ref.text or '', MAX_SEARCH + 10)}”"
    if ref.department:
        return f"Open in {mrkdwn.escape(ref.department)}"
    return "Open in every department"


def item_line(mention: Mention, *, link: str | None, now: datetime) -> str:
    state = str(mention.state)
    if mention.state == MentionState.ESCALATED:
        state += f" (level {mention.escalation_level})"
    owner = mrkdwn.user(mention.owner)
    held = f"{state} by {owner}" if owner else (f"{state}, unclaimed" if _open(mention) else state)
    author = f" · by {mrkdwn.truncate(mention.author, 60)}" if mention.author else ""
    head = (
        f"*{mrkdwn.escape(mention.priority)}* · {held} · {age(now - mention.found_at)} old · "
        f"{mrkdwn.escape(mention.department)}{author}"
    )
    title = mention.title or mention.text
    label = mrkdwn.plain(title, TITLE_LIMIT) or "(no text)"
    return f"{head}\n{mrkdwn.link(link, label)}"[:SECTION_LIMIT]


def _open(mention: Mention) -> bool:
    return mention.state in {state.value for state in OPEN_STATES}


def _item_buttons(item: QueueItem, ref: PageRef) -> list[ButtonElement]:
    mention = item.mention
    assert mention.id is not None
    buttons = []
    if _open(mention) and mention.owner is None:
        buttons.append(
            ButtonElement(
                text="Claim",
                action_id=ActionId.QUEUE_CLAIM.value,
                value=ClaimValue(mention_id=mention.id, back=ref).model_dump_json(),
                style="primary",
            )
        )
    url = mrkdwn.safe_url(item.link)
    if url is not None and len(url) <= BUTTON_URL_LIMIT:
        buttons.append(ButtonElement(text="Open", action_id=ActionId.QUEUE_OPEN.value, url=url))
    return buttons


def page_blocks(page: QueuePage) -> list[dict[str, Any]]:
    ref = page.ref
    heading = f"*{list_title(ref)}*" + (f" · page {ref.page + 1}" if ref.page else "")
    blocks: list[dict[str, Any]] = [SectionBlock(text=MarkdownTextObject(text=heading)).to_dict()]
    if not page.items:
        empty = "Nothing here." if ref.page else _empty_text(ref)
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=empty)]).to_dict())
    for item in page.items:
        blocks.append(DividerBlock().to_dict())
        line = item_line(item.mention, link=item.link, now=page.now)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=line)).to_dict())
        buttons = _item_buttons(item, ref)
        if buttons:
            blocks.append(ActionsBlock(elements=buttons).to_dict())
    turns = []
    if ref.page > 0:
        turns.append(
            ButtonElement(
                text="← Previous",
                action_id=ActionId.QUEUE_PREVIOUS.value,
                value=ref.model_copy(update={"page": ref.page - 1}).model_dump_json(),
            )
        )
    if page.has_next and ref.page < MAX_PAGE:
        turns.append(
            ButtonElement(
                text="Next →",
                action_id=ActionId.QUEUE_NEXT.value,
                value=ref.model_copy(update={"page": ref.page + 1}).model_dump_json(),
            )
        )
    if turns:
        blocks.append(ActionsBlock(elements=turns).to_dict())
    return blocks


def _empty_text(ref: PageRef) -> str:
    if ref.kind is ListKind.MINE:
        return "You hold no open mentions. `/earful queue` shows what is waiting."
    if ref.kind is ListKind.SEARCH:
        return "No mention matches that."
    return "Nothing open. :tada:"


def page_reply(page: QueuePage) -> Reply:
    count = len(page.items)
    return Reply(text=f"{list_title(page.ref)}: {count} shown", blocks=page_blocks(page))


# ----------------------------------------------------------------- the service


class Queues:
    def __init__(
        self,
        db: Database,
        *,
        client: AsyncWebClient,
        clock: Callable[[], datetime] = utcnow,
        page_size: int = PAGE_SIZE,
        permalinks: Permalinks | None = None,
    ) -> None:
        self._db = db
        self._client = client
        self._permalinks = permalinks or Permalinks(client)
        self._clock = clock
        self._page_size = page_size

    async def run(
        self, command: QueueShow | Mine | Search, *, user_id: str, channel_id: str | None
    ) -> Reply:
        if isinstance(command, Mine):
            return await self.show(PageRef(kind=ListKind.MINE), user_id=user_id)
        if isinstance(command, Search):
            return await self.show(
                PageRef(kind=ListKind.SEARCH, text=command.text), user_id=user_id
            )
        department = command.department.value if command.department else None
        if department is None and not command.everything and channel_id:
            async with self._db.read() as session:
                department = await queries.department_of_channel(session, channel_id=channel_id)
        return await self.show(PageRef(kind=ListKind.QUEUE, department=department), user_id=user_id)

    async def show(self, ref: PageRef, *, user_id: str) -> Reply:
        size = self._page_size
        offset = ref.page * size
        async with self._db.read() as session:
            if ref.kind is ListKind.MINE:
                found = await queries.claimed_open(
                    session, owner=user_id, limit=size + 1, offset=offset
                )
            elif ref.kind is ListKind.SEARCH:
                found = await queries.search_mentions(
                    session, text=ref.text or "", limit=size + 1, offset=offset
                )
            else:
                found = await queries.open_queue(
                    session,
                    departments=[ref.department] if ref.department else None,
                    limit=size + 1,
                    offset=offset,
                )
            shown = found[:size]
            # A mention grouped into a summary has no card of its own: it links to the summary.
            summaries = await alert_groups.summary_messages(
                session, mention_ids=[m.id for m in shown if m.id is not None and not m.ts]
            )
        links = await self._links(shown, summaries)
        return page_reply(
            QueuePage(
                ref=ref,
                items=[QueueItem(m, links.get(m.id or 0) or m.url) for m in shown],
                has_next=len(found) > size,
                now=self._clock(),
            )
        )

    async def _links(
        self, mentions: Sequence[Mention], summaries: Mapping[int, tuple[str, str]]
    ) -> dict[int, str]:
        """Permalinks of the alerts that are posted (a grouped mention's: its summary's); a
        failed lookup falls back to the post."""
        return await self._permalinks.links(
            [
                (m.id, *summaries.get(m.id, (m.channel, m.ts)))
                for m in mentions
                if m.id is not None
            ]
        )

    async def turn_page(self, *, user_id: str, value: str | None) -> Reply:
        """Previous/Next: the page a button's value describes. Never raises."""
        try:
            ref = PageRef.model_validate_json(str(value or "")[:2000])
        except ValidationError:
            return error_reply("That button does not belong to a queue list.")
        return await self._safely(self.show(ref, user_id=user_id))

    @staticmethod
    def claim_target(value: str | None) -> ClaimValue | None:
        try:
            return ClaimValue.model_validate_json(str(value or "")[:2000])
        except ValidationError:
            return None

    async def redraw(self, *, user_id: str, ref: PageRef) -> Reply:
        return await self._safely(self.show(ref, user_id=user_id))

    @staticmethod
    async def _safely(pending: Awaitable[Reply]) -> Reply:
        try:
            return await pending
        except EarfulError as exc:
            return error_reply(str(exc))
        except Exception:
            log.exception("drawing a queue page failed")
            return error_reply("Something went wrong on my side drawing that list.")
