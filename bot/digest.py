"""The executive digest: compose it from the data layer, send it, attach charts, drill down.

The text digest is posted first and on its own, so it always arrives; charts are rendered off
the event loop and uploaded afterwards into its thread (``files_upload_v2``), and a failure
there is logged and costs only the pictures. A scheduled digest carries its subscription and
day in message metadata: a retry after an attempt that may have reached Slack looks for it
in the conversation first, so a day is never posted twice.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import multiprocessing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import mrkdwn
from bot.digest_blocks import DigestMessage, digest_message, drill_reply_blocks
from bot.digest_charts import Chart, render_charts
from bot.digest_schedule import DigestWindow
from bot.errors import CommandError
from bot.permalinks import Permalinks
from bot.replies import Reply
from bot.slack_history import find_message, metadata_of
from storage import digest_data
from storage import stats as stats_store
from storage.db import Database
from storage.digest_data import DigestData, DrillDown
from storage.models import DigestSubscription, Mention
from storage.types import utcnow

log = logging.getLogger(__name__)

METADATA_EVENT_TYPE = "earful_digest"
DRILL_LIMIT = 20
EXPORT_PAGE = 500
EXPORT_MAX_ROWS = 50_000
HISTORY_PAGES = 3
EXPORT_COLUMNS = (
    "id",
    "found_at",
    "published_at",
    "watch_name",
    "source",
    "department",
    "priority",
    "state",
    "owner",
    "sentiment_compound",
    "sentiment_label",
    "intents",
    "author",
    "author_reach",
    "url",
    "title",
    "text",
)

ChartRenderer = Callable[[DigestData], Awaitable[list[Chart]]]


class Digests:
    """Everything the digest does that needs the database or Slack."""

    def __init__(
        self,
        db: Database,
        *,
        client: AsyncWebClient,
        posting_client: AsyncWebClient,
        clock: Callable[[], datetime] = utcnow,
        render: ChartRenderer | None = None,
        permalinks: Permalinks | None = None,
    ) -> None:
        self._db = db
        self._client = client
        self._links = permalinks or Permalinks(client)
        self._posting_client = posting_client
        self._clock = clock
        self._render = render or self._render_in_process
        self._rendering = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ composing

    async def collect(self, window: DigestWindow, *, departments: Sequence[str] = ()) -> DigestData:
        async with self._db.read() as session:
            return await digest_data.collect(
                session,
                start=window.start,
                end=window.end,
                previous_start=window.previous_start,
                previous_end=window.previous_end,
                departments=tuple(departments) or None,
            )

    async def compose(
        self,
        window: DigestWindow,
        *,
        departments: Sequence[str] = (),
        note: str | None = None,
    ) -> tuple[DigestData, DigestMessage]:
        data = await self.collect(window, departments=departments)
        shown = {
            item.id
            for attention in (data.attention.top, data.attention.escalated)
            for item in attention.items[:3]
        } | {item.id for item in data.attention.sla_breaches.items[:3]}
        links = await self.alert_links(sorted(shown))
        return data, digest_message(data, kind=window.kind, alert_links=links, note=note)

    async def alert_links(self, mention_ids: Sequence[int]) -> dict[int, str]:
        """Permalinks of the mentions' alerts in Slack, for the few items a digest lists."""
        if not mention_ids:
            return {}
        async with self._db.read() as session:
            mentions = await stats_store.mentions_by_ids(session, ids=mention_ids)
        return await self._permalinks(mentions)

    async def _permalinks(self, mentions: Iterable[Mention]) -> dict[int, str]:
        return await self._links.links(
            [(m.id, m.channel, m.ts) for m in mentions if m.id is not None]
        )

    # ------------------------------------------------------------ sending

    async def deliver(
        self, subscription: DigestSubscription, window: DigestWindow, attempt: int
    ) -> None:
        """The scheduler's sender: one subscription's digest for ``window.day``."""
        channel = await self._conversation(subscription.target, is_channel=subscription.is_channel)
        key = {"subscription": subscription.id, "day": window.day.isoformat()}
        if attempt > 1 and await self._already_posted(channel, key):
            log.info("digest %s for %s was already posted", subscription.id, window.day)
            return
        await self.send(
            channel,
            window,
            departments=subscription.departments,
            metadata={"event_type": METADATA_EVENT_TYPE, "event_payload": key},
        )

    async def send(
        self,
        channel: str,
        window: DigestWindow,
        *,
        departments: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Post the digest to ``channel`` and then its charts; returns the message ts."""
        data, message = await self.compose(
            window, departments=departments, note="Charts follow in the thread"
        )
        kwargs: dict[str, Any] = {"unfurl_links": False, "unfurl_media": False}
        if metadata is not None:
            kwargs["metadata"] = metadata
        response = await self._posting_client.chat_postMessage(
            channel=channel, text=message.text, blocks=message.blocks, **kwargs
        )
        ts = str(response["ts"])
        posted_in = str(response.get("channel") or channel)
        await self.attach_charts(data, channel=posted_in, thread_ts=ts)
        return ts

    async def attach_charts(self, data: DigestData, *, channel: str, thread_ts: str) -> bool:
        """Render and upload the charts into the digest's thread; False if that failed."""
        try:
            charts = await self._render(data)
        except Exception:
            log.exception("could not render the digest's charts; it goes out without them")
            return False
        if not charts:
            return False
        try:
            await self._posting_client.files_upload_v2(
                file_uploads=[
                    {
                        "content": chart.png,
                        "filename": chart.filename,
                        "title": chart.title,
                        "alt_txt": chart.alt_text,
                    }
                    for chart in charts
                ],
                channel=channel,
                thread_ts=thread_ts,
                initial_comment="Charts for this digest.",
            )
        except SlackApiError as exc:
            log.warning(
                "could not upload the digest's charts: %s", exc.response.get("error"), exc_info=exc
            )
            return False
        except Exception:
            log.exception("could not upload the digest's charts")
            return False
        return True

    async def _render_in_process(self, data: DigestData) -> list[Chart]:
        """matplotlib would stay in the serving process for good (about 50 MB, bench/memory.py)
        after the first digest; a process of its own per digest (a few a day) gives it back."""
        async with self._rendering:  # concurrent digests queue instead of competing for cores
            pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("forkserver")
            )
            try:
                return await render_charts(data, executor=pool)
            finally:
                pool.shutdown(wait=False)

    async def dm_channel(self, user_id: str) -> str:
        return await self._conversation(user_id, is_channel=False)

    async def _conversation(self, target: str, *, is_channel: bool) -> str:
        """The channel id to post in: a channel as is, a person's DM with Earful opened."""
        if is_channel:
            return target
        response = await self._client.conversations_open(users=target)
        return str(response["channel"]["id"])

    async def _already_posted(self, channel: str, key: dict[str, Any]) -> bool:
        try:
            found = await find_message(
                self._client,
                channel=channel,
                matches=lambda message: metadata_of(message) == (METADATA_EVENT_TYPE, key),
                limit=100,
                pages=HISTORY_PAGES,
            )
        except SlackApiError as exc:
            # Not knowing is not a reason to skip a day: post, and accept a rare duplicate.
            log.warning("could not read %s's history: %s", channel, exc.response.get("error"))
            return False
        return found is not None

    def send_in_background(self, work: Awaitable[Any], *, what: str) -> None:
        """For ``digest now``: the reply goes back at once, the digest follows."""

        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("%s failed", what)

        task = asyncio.create_task(run(), name=what)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def preview(self, window: DigestWindow, *, departments: Sequence[str] = ()) -> Reply:
        _, message = await self.compose(
            window,
            departments=departments,
            note="Preview: only you see this; the charts come with the real digest",
        )
        return Reply(text=message.text, blocks=message.blocks)

    # ------------------------------------------------------------ drill-down and export

    async def drill(self, value: str | None) -> Reply:
        drill = _decode(value)
        async with self._db.read() as session:
            mentions = await digest_data.drill_down(session, drill, limit=DRILL_LIMIT)
        links = await self._permalinks(mentions)
        blocks = drill_reply_blocks(
            drill, mentions, alert_links=links, total_shown_limit=DRILL_LIMIT
        )
        return Reply(text=f"{len(mentions)} item(s) behind that number", blocks=blocks)

    async def export(self, *, value: str | None, user_id: str, channel_id: str | None) -> Reply:
        """A CSV of the period's items, uploaded where the button was clicked (or a DM)."""
        drill = _decode(value)
        rows: list[Mention] = []
        async with self._db.read() as session:
            while len(rows) < EXPORT_MAX_ROWS:
                page = await digest_data.drill_down(
                    session, drill, limit=EXPORT_PAGE, offset=len(rows)
                )
                rows.extend(page)
                if len(page) < EXPORT_PAGE:
                    break
        content = to_csv(rows)
        channel = channel_id or await self._conversation(user_id, is_channel=False)
        name = f"earful-{_stamp(drill.start)}-{_stamp(drill.end)}.csv"
        await self._posting_client.files_upload_v2(
            content=content,
            filename=name,
            title=f"Earful items {_stamp(drill.start)} to {_stamp(drill.end)}",
            channel=channel,
            initial_comment=f"<@{user_id}> exported {len(rows):,} item(s).",
        )
        return Reply(
            text=f"Exported {len(rows):,} item(s) as {name}.",
            blocks=[
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": f":white_check_mark: {len(rows):,} item(s) exported as "
                        f"`{mrkdwn.escape(name)}`. From a shell: `{export_command(drill)}`",
                    },
                }
            ],
        )


def _decode(value: str | None) -> DrillDown:
    try:
        return DrillDown.from_value(str(value or "")[:2000])
    except ValueError:
        raise CommandError("That button is not attached to a digest number.") from None


def _stamp(moment: datetime | None) -> str:
    return "start" if moment is None else moment.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


def export_command(drill: DrillDown) -> str:
    """The same period from the command line (every department; filters are the button's)."""
    parts = ["earful export"]
    if drill.start is not None:
        parts.append("--since " + drill.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    if drill.end is not None:
        parts.append("--until " + drill.end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return " ".join([*parts, "--format csv"])


def to_csv(mentions: Sequence[Mention]) -> str:
    """One row per mention; the text as stored (a spreadsheet shows it, Slack never does)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for mention in mentions:
        intents = ";".join(str(i.get("intent", "")) for i in mention.intents)
        writer.writerow(
            [
                mention.id,
                mention.found_at.isoformat(),
                mention.published_at.isoformat() if mention.published_at else "",
                mention.watch_name,
                mention.source,
                mention.department,
                mention.priority,
                mention.state,
                mention.owner or "",
                f"{mention.sentiment_compound:.4f}",
                mention.sentiment_label,
                intents,
                _cell(mention.author),
                mention.author_reach if mention.author_reach is not None else "",
                mention.url or "",
                _cell(mention.title),
                _cell(mention.text),
            ]
        )
    return buffer.getvalue()


def _cell(value: str | None) -> str:
    """Text that a spreadsheet would run as a formula (=, +, -, @) is quoted with a '."""
    if not value:
        return ""
    return "'" + value if value[0] in "=+-@\t\r" else value
