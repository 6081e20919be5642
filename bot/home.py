"""App Home: what I hold, my department's open queue, SLA breaches and today's numbers.

Published when someone opens the tab (``app_home_opened``) and again after each of their
actions on an alert or a queue list, so it is never more than one click out of date.

"My departments" are the departments someone leads plus those of the mentions they acted on
in the last :data:`ACTIVE_DAYS` days (most acted-on first). Channel membership would be the
other reading, but it costs a Slack call per channel per view and says little about who works
a queue; what people do says it directly, and costs one indexed query.

SLA breaches are new, unclaimed mentions older than their department's first SLA step (the
on-call *ping*, from :class:`bot.sla.PolicyTable`, so admins' edits count), in my departments,
or everywhere for someone who has none yet. Age is counted from when the mention was found.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import (
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot import mrkdwn
from bot.ids import ActionId
from bot.queues import ClaimValue, ListKind, PageRef, age, item_line
from bot.sla import PolicyTable
from storage import queries
from storage import sla as sla_store
from storage.db import Database
from storage.models import Mention
from storage.types import utcnow
from watchers.departments import Department, Priority

log = logging.getLogger(__name__)

MAX_VIEW_BLOCKS = 100
MINE_SHOWN = 10
QUEUE_SHOWN = 8
DEPARTMENTS_SHOWN = 3
BREACHES_SHOWN = 10
ACTIVE_DAYS = 14


def sla_deadlines(
    policies: PolicyTable, departments: Sequence[str]
) -> dict[tuple[str, str], timedelta]:
    """How long a mention of each (department, priority) may wait unclaimed: its ping step."""
    deadlines = {}
    for department in departments:
        for priority in Priority:
            seconds = policies.sla(department, priority.value).ping
            if seconds:
                deadlines[(department, priority.value)] = timedelta(seconds=seconds)
    return deadlines


@dataclass(frozen=True, slots=True)
class HomeData:
    now: datetime
    numbers: queries.DayNumbers
    mine: Sequence[Mention] = ()
    queues: Mapping[str, Sequence[Mention]] = field(default_factory=dict)
    open_counts: Mapping[tuple[str, str], int] = field(default_factory=dict)
    breaches: Sequence[Mention] = ()
    breach_scope: str = "every department"


# ----------------------------------------------------------------- builders (pure)


def _section(text: str, accessory: ButtonElement | None = None) -> dict[str, Any]:
    return SectionBlock(text=MarkdownTextObject(text=text[:3000]), accessory=accessory).to_dict()


def _context(text: str) -> dict[str, Any]:
    return ContextBlock(elements=[MarkdownTextObject(text=text[:3000])]).to_dict()


def _open_button(mention: Mention) -> ButtonElement | None:
    url = mrkdwn.safe_url(mention.url)
    if url is None:
        return None
    return ButtonElement(text="Open post", action_id=ActionId.QUEUE_OPEN.value, url=url)


def _claim_button(mention: Mention) -> ButtonElement | None:
    if mention.id is None or mention.owner is not None:
        return None
    back = PageRef(kind=ListKind.QUEUE, department=mention.department)
    return ButtonElement(
        text="Claim",
        action_id=ActionId.QUEUE_CLAIM.value,
        value=ClaimValue(mention_id=mention.id, back=back).model_dump_json(),
        style="primary",
    )


def _item(mention: Mention, now: datetime, *, claim: bool) -> dict[str, Any]:
    line = item_line(mention, link=mention.url, now=now)
    where = f" · <#{mention.channel}>" if mention.channel else ""
    button = (_claim_button(mention) if claim else None) or _open_button(mention)
    return _section(line.replace("\n", where + "\n", 1), button)


def _duration(delta: timedelta | None) -> str:
    return age(delta) if delta is not None else "—"


def home_blocks(data: HomeData) -> list[dict[str, Any]]:
    numbers = data.numbers
    blocks: list[dict[str, Any]] = [
        HeaderBlock(text="Earful").to_dict(),
        SectionBlock(
            fields=[
                MarkdownTextObject(text=f"*New today*\n{numbers.new}"),
                MarkdownTextObject(text=f"*Claimed today*\n{numbers.claimed}"),
                MarkdownTextObject(text=f"*Resolved today*\n{numbers.resolved}"),
                MarkdownTextObject(
                    text=f"*Median time to claim*\n{_duration(numbers.median_to_claim)}"
                ),
            ]
        ).to_dict(),
        _context(f"Today (UTC) · updated {mrkdwn.date(data.now, '{time}')}"),
        DividerBlock().to_dict(),
        _section("*Claimed by you*"),
    ]
    if not data.mine:
        blocks.append(_context("Nothing claimed. `/earful queue` shows what is waiting."))
    blocks += [_item(mention, data.now, claim=False) for mention in data.mine]
    if not data.queues:
        blocks.append(DividerBlock().to_dict())
        blocks.append(
            _context(
                "Your department's queue shows here once you lead a department or act on "
                "one of its alerts."
            )
        )
    for department, mentions in data.queues.items():
        counts = [
            f"{priority.value}: {data.open_counts[(department, priority.value)]}"
            for priority in Priority
            if data.open_counts.get((department, priority.value))
        ]
        blocks.append(DividerBlock().to_dict())
        summary = ", ".join(counts) or "all clear"
        blocks.append(_section(f"*Open in {mrkdwn.escape(department)}* — {summary}"))
        blocks += [_item(mention, data.now, claim=True) for mention in mentions]
    blocks.append(DividerBlock().to_dict())
    scope = mrkdwn.escape(data.breach_scope)
    blocks.append(_section(f"*SLA breaches* in {scope} ({len(data.breaches)})"))
    if not data.breaches:
        blocks.append(_context("Nothing is waiting past its SLA. :white_check_mark:"))
    blocks += [_item(mention, data.now, claim=True) for mention in data.breaches]
    if len(blocks) > MAX_VIEW_BLOCKS:
        blocks = blocks[: MAX_VIEW_BLOCKS - 1]
        blocks.append(_context("More than fits here: `/earful queue` lists the rest."))
    return blocks


def home_view(data: HomeData) -> dict[str, Any]:
    return {"type": "home", "blocks": home_blocks(data)}


# ----------------------------------------------------------------- the service


class Home:
    def __init__(
        self,
        db: Database,
        *,
        client: AsyncWebClient,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._client = client
        self._clock = clock
        self._building: set[str] = set()
        self._stale: set[str] = set()

    async def gather(self, *, user_id: str) -> HomeData:
        now = self._clock()
        midnight = datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)
        async with self._db.read() as session:
            numbers = await queries.day_numbers(
                session, since=midnight, until=midnight + timedelta(days=1)
            )
            mine = await queries.claimed_open(session, owner=user_id, limit=MINE_SHOWN)
            departments = await queries.user_departments(
                session,
                user_id=user_id,
                since=now - timedelta(days=ACTIVE_DAYS),
                limit=DEPARTMENTS_SHOWN,
            )
            queues = {
                department: await queries.open_queue(
                    session, departments=[department], limit=QUEUE_SHOWN
                )
                for department in departments
            }
            counts = await queries.open_counts(session, departments=departments)
            policies = PolicyTable.of(await sla_store.policy_edits(session))
            scope = departments or [d.value for d in Department]
            breaches = await queries.unclaimed_past(
                session,
                deadlines=sla_deadlines(policies, scope),
                now=now,
                limit=BREACHES_SHOWN,
            )
        return HomeData(
            now=now,
            numbers=numbers,
            mine=mine,
            queues=queues,
            open_counts=counts,
            breaches=breaches,
            breach_scope=", ".join(departments) if departments else "every department",
        )

    async def publish(self, *, user_id: str) -> None:
        """Build and publish ``user_id``'s Home. Never raises: it runs after acks.

        Requests for someone whose Home is being built already are folded into one more
        build once that one is done: it shows everything the folded requests would have, and
        a burst of clicks costs two builds rather than one each."""
        if user_id in self._building:
            self._stale.add(user_id)
            return
        self._building.add(user_id)
        try:
            while True:
                self._stale.discard(user_id)
                await self._publish(user_id=user_id)
                if user_id not in self._stale:
                    return
        finally:
            self._building.discard(user_id)
            self._stale.discard(user_id)

    async def _publish(self, *, user_id: str) -> None:
        try:
            view = home_view(await self.gather(user_id=user_id))
            await self._client.views_publish(user_id=user_id, view=view)
        except SlackApiError as exc:
            log.warning("views.publish for %s failed: %s", user_id, exc.response.get("error"))
        except Exception:
            log.exception("building App Home for %s failed", user_id)
