"""The outbox worker: delivers pending Slack posts and updates, never dropping one.

Outages and rate limits only delay items. Every post is made at most once: it carries its
outbox id in message metadata, the attempt is recorded before calling Slack, and a retry of
an attempt that may have reached Slack first looks for that metadata in the channel (or the
thread) instead of posting again.

Items are delivered in lanes, one per department (so one channel's posts stay in order) plus
one for each department's P1 alerts, so an urgent alert never waits behind a backlog. Lanes run
side by side, a bounded number at once; each channel gets about one post a second, and a 429
pauses only that channel until its ``Retry-After`` has passed (bot/channel_pacer.py).

A burst of low-priority alerts for one department (more than ``GROUP_THRESHOLD`` P3/P4 alerts
waiting) is grouped into one summary alert listing them in its thread (storage/alert_groups.py,
bot/summary_cards.py): each mention is alerted once, by its own card or by one line of one
summary. A grouped mention has no card to update, so card updates skip it; its thread notes
(claims, SLA pings, …) go to the summary's thread, naming the mention.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics, mrkdwn
from bot.alerts import card_event, card_for
from bot.cards import (
    STORY_LINKS_SHOWN,
    AlertCard,
    CrisisCard,
    CrisisExample,
    StoryLine,
    alert_blocks,
    alert_fallback_text,
    crisis_blocks,
    event_reply_text,
    retired_blocks,
)
from bot.channel_pacer import ChannelPacer, ChannelPaused
from bot.logs import correlated
from bot.permalinks import Permalinks
from bot.slack_history import Message, find_message, metadata_of
from bot.spikes import CrisisData, load_crisis
from bot.summary_cards import (
    GroupedMention,
    SummaryCard,
    grouped_note,
    lines_blocks,
    summary_blocks,
)
from storage import alert_groups, outbox, stats
from storage import clusters as cluster_store
from storage import mentions as mention_store
from storage import routes as route_store
from storage.db import Database
from storage.models import AlertGroup, Event, Mention, MentionState, OutboxItem, OutboxKind
from storage.types import utcnow
from watchers.spikes import describe, in_words

log = logging.getLogger(__name__)

METADATA_EVENT_TYPE = "earful_alert"
NOTICE_EVENT_TYPE = "earful_notice"
# A summary's thread reply; its payload lists the mention ids it alerts.
GROUPED_EVENT_TYPE = "earful_grouped"
NOTICE_KINDS = frozenset({OutboxKind.THREAD_NOTE, OutboxKind.DIRECT_MESSAGE, OutboxKind.ROUTE_POST})
NO_ROUTE_RETRY = timedelta(seconds=60)
MAX_BACKOFF = timedelta(hours=1)
PER_CHANNEL_INTERVAL = 1.0  # seconds; Slack allows about one message per second per channel
WAITING_FOR_PARENT = timedelta(seconds=60)  # a thread note whose alert is not out yet
MAX_LANES = 8  # channels delivered at the same time
# Items a lane takes at a time: fresh work (and the order of priorities) is looked at again
# after at most this many posts to one channel.
LANE_BATCH = 10
URGENT_LANE_PREFIX = outbox.URGENT_LANE_PREFIX
WINDOW = 200  # due items read at a time
# A burst: more than this many P3/P4 alerts waiting for one department's channel at once.
# At one post a second they would hold the channel for longer than people read it.
GROUP_THRESHOLD = 20
# While a department's latest summary took mentions this recently, the burst is still on:
# new low-priority alerts join that summary instead of posting a card each.
GROUP_OPEN_FOR = timedelta(minutes=10)
MAX_GROUP_SIZE = 5000
LINES_PER_REPLY = 40
# Our own mistakes: retrying cannot help, so the item is parked (and logged) instead.
PERMANENT_ERRORS = frozenset(
    {
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "invalid_arguments",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "no_text",
        "too_many_attachments",
    }
)
MAX_ATTEMPTS_FOR_PERMANENT = 3


class Retry(Exception):
    def __init__(self, reason: str, *, after: timedelta, count_attempt: bool = True) -> None:
        super().__init__(reason)
        self.after = after
        self.count_attempt = count_attempt


class NoRoute(Retry):
    """No channel is routed for the department (yet): the item waits for ``/earful route``."""

    def __init__(self, department: str) -> None:
        super().__init__(
            f"no channel routed for {department}: /earful route {department} #channel",
            after=NO_ROUTE_RETRY,
            count_attempt=False,
        )
        self.department = department


class TakenOver(Exception):
    """A summary took the item over (grouped its alert) before it was posted: nothing to do."""


def _retry_after(exc: SlackApiError) -> float:
    try:
        seconds = float(exc.response.headers.get("Retry-After", 5) or 5)
    except (TypeError, ValueError):
        seconds = 5.0
    return min(max(seconds, 1.0), MAX_BACKOFF.total_seconds())


def _rate_limited(exc: SlackApiError) -> bool:
    return exc.response.status_code == 429 or exc.response.get("error") == "ratelimited"


def _posted_for(event_type: str, outbox_id: int) -> Callable[[Message], bool]:
    """Matches the message posted for an outbox item, by the metadata ``_post_once`` gave it."""

    def matches(message: Message) -> bool:
        found_type, payload = metadata_of(message)
        return found_type == event_type and payload.get("outbox_id") == outbox_id

    return matches


class Delivery:
    def __init__(
        self,
        db: Database,
        *,
        client: AsyncWebClient,
        posting_client: AsyncWebClient,
        clock: Callable[[], datetime] = utcnow,
        idle_seconds: float = 5.0,
        per_channel_interval: float = PER_CHANNEL_INTERVAL,
        max_lanes: int = MAX_LANES,
        group_threshold: int = GROUP_THRESHOLD,
        permalinks: Permalinks | None = None,
    ) -> None:
        self._db = db
        self._client = client
        self._permalinks = permalinks or Permalinks(client)
        self._posting_client = posting_client
        self._clock = clock
        self._idle_seconds = idle_seconds
        self._pacer = ChannelPacer(per_channel_interval, clock=clock)
        self._lane_slots = asyncio.Semaphore(max_lanes)
        self._group_threshold = group_threshold
        self._wake = asyncio.Event()
        self._busy: dict[str, asyncio.Task[int]] = {}  # lane -> the task delivering it
        # Reading the due lanes and marking them busy is one step: two readers in between (the
        # loop and a flush) would otherwise both take the same items and post them twice.
        self._taking = asyncio.Lock()
        self.delivered = 0

    def kick(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled: start a lane for every department with due items, and look
        again whenever something is queued (``kick``) or a lane finishes."""
        try:
            while True:
                try:
                    await self._dispatch()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("outbox dispatch failed; trying again shortly")
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
                # lands as the event is set (a kick during shutdown), and this loop never ends.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._idle_seconds):
                        await self._wake.wait()
                self._wake.clear()
        finally:
            lanes = list(self._busy.values())
            for task in lanes:
                task.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)

    async def _dispatch(self) -> None:
        # Each round makes at least one more lane busy, and busy lanes are not read again.
        for _ in range(50):
            async with self._taking:
                lanes = await self._take_due(batch=LANE_BATCH)
                if not lanes:
                    return
                self._start_lanes(lanes, wake=True)

    async def flush(self, *, limit: int = 50) -> int:
        """Deliver every due item once, lanes side by side; returns how many were completed."""
        done = 0
        tried: set[int] = set()
        while True:
            async with self._taking:
                lanes = await self._take_due(limit=limit, skip=tried)
                if not lanes:
                    return done
                for items in lanes.values():
                    tried.update(item.id for item in items if item.id is not None)
                started = self._start_lanes(lanes)
            done += sum(await asyncio.gather(*started))

    async def _take_due(
        self, *, limit: int = WINDOW, batch: int | None = None, skip: set[int] | None = None
    ) -> dict[str, list[OutboxItem]]:
        """Due items of the lanes not being delivered now, by lane (at most ``batch`` each)."""
        await self._group_bursts()
        async with self._db.session() as session:
            rows = await outbox.due_in_lanes(
                session, now=self._clock(), limit=limit, skip_lanes=set(self._busy)
            )
        lanes: dict[str, list[OutboxItem]] = {}
        for item, lane in rows:
            if skip and item.id in skip:
                continue
            taken = lanes.setdefault(lane, [])
            if batch is None or len(taken) < batch:
                taken.append(item)
        return lanes

    def _start_lanes(
        self, lanes: dict[str, list[OutboxItem]], *, wake: bool = False
    ) -> list[asyncio.Task[int]]:
        """A task per lane. P1 alerts due in the same round go first: the other lanes start
        once those are posted (one post each), so a burst never takes the slot before them."""
        urgent = [
            self._start_lane(lane, items, wake=wake)
            for lane, items in lanes.items()
            if lane.startswith(URGENT_LANE_PREFIX)
        ]
        return urgent + [
            self._start_lane(lane, items, wake=wake, after=urgent)
            for lane, items in lanes.items()
            if not lane.startswith(URGENT_LANE_PREFIX)
        ]

    def _start_lane(
        self,
        lane: str,
        items: list[OutboxItem],
        *,
        wake: bool,
        after: list[asyncio.Task[int]] | None = None,
    ) -> asyncio.Task[int]:
        task = asyncio.create_task(
            self._deliver_lane(lane, items, wake=wake, after=after or []), name=f"outbox {lane}"
        )
        self._busy[lane] = task
        return task

    async def _deliver_lane(
        self,
        lane: str,
        items: list[OutboxItem],
        *,
        wake: bool,
        after: list[asyncio.Task[int]],
    ) -> int:
        done = 0
        try:
            if after:
                await asyncio.wait(after)
            async with self._lane_slots:
                for item in items:
                    with correlated("outbox", kind=str(item.kind)):  # one id per item's delivery
                        try:
                            if await self._deliver_one(item):
                                done += 1
                        except Exception:
                            # Recording the outcome failed (the database?): the item stays
                            # due and is tried again; the rest of the lane goes on.
                            log.exception("outbox item %s (%s) failed", item.id, item.kind)
        finally:
            if self._busy.get(lane) is asyncio.current_task():
                del self._busy[lane]
            self.delivered += done
            if wake:
                self._wake.set()
        return done

    async def _group_bursts(self) -> None:
        """Turn each department's burst of waiting low-priority alerts into one summary."""
        now = self._clock()
        async with self._db.session() as session:
            waiting = await alert_groups.waiting_by_department(session)
        for department, count in waiting.items():
            async with self._db.session() as session:
                if await route_store.channel_for(session, department=department) is None:
                    continue  # they wait for a route; /earful routes counts them meanwhile
                if count <= self._group_threshold and (
                    await alert_groups.open_group(
                        session,
                        department=department,
                        since=now - GROUP_OPEN_FOR,
                        max_size=MAX_GROUP_SIZE,
                    )
                    is None
                ):
                    continue
                grouped = await alert_groups.group_waiting(
                    session,
                    department=department,
                    now=now,
                    threshold=self._group_threshold,
                    open_since=now - GROUP_OPEN_FOR,
                    max_size=MAX_GROUP_SIZE,
                    lines_per_reply=LINES_PER_REPLY,
                )
            if grouped is not None:
                log.info(
                    "grouped %d low-priority alert(s) for %s into summary #%d",
                    len(grouped.mention_ids),
                    department,
                    grouped.group_id,
                )

    async def _deliver_one(self, item: OutboxItem) -> bool:
        assert item.id is not None
        attempts_before = item.attempts
        try:
            await self._deliver(item)
        except TakenOver:
            return False
        except ChannelPaused as paused:
            # Slack did nothing: this is a wait, not a failed attempt.
            await self._reschedule(item, str(paused), after=paused.left, count_attempt=False)
            return False
        except Retry as retry:
            await self._reschedule(
                item, str(retry), after=retry.after, count_attempt=retry.count_attempt
            )
            if isinstance(retry, NoRoute) and await self._routed(retry.department):
                # The route was set while this attempt looked for it: its release of waiting
                # items came before this one waited, so this one is released here.
                await self._reschedule(item, str(retry), after=timedelta(0), count_attempt=False)
                self.kick()
            return False
        except SlackApiError as exc:
            await self._handle_slack_error(item, exc, counted=item.attempts > attempts_before)
            return False
        except (TimeoutError, OSError) as exc:
            await self._schedule_retry(
                item,
                f"network: {type(exc).__name__}: {exc}",
                counted=item.attempts > attempts_before,
            )
            return False
        except Exception as exc:
            log.exception("delivering outbox item %s (%s) failed", item.id, item.kind)
            await self._schedule_retry(
                item, f"{type(exc).__name__}: {exc}", counted=item.attempts > attempts_before
            )
            return False
        async with self._db.session() as session:
            await outbox.mark_done(session, item_id=item.id)
        return True

    async def _routed(self, department: str) -> bool:
        async with self._db.read() as session:
            return await route_store.channel_for(session, department=department) is not None

    async def _reschedule(
        self, item: OutboxItem, reason: str, *, after: timedelta, count_attempt: bool
    ) -> None:
        assert item.id is not None
        async with self._db.session() as session:
            await outbox.mark_retry(
                session,
                item_id=item.id,
                error=reason,
                next_attempt_at=self._clock() + after,
                count_attempt=count_attempt,
            )

    async def _handle_slack_error(
        self, item: OutboxItem, exc: SlackApiError, *, counted: bool = False
    ) -> None:
        assert item.id is not None
        metrics.slack_error_retried(exc.response)
        error = str(exc.response.get("error", "unknown_error"))
        if _rate_limited(exc):
            await self._reschedule(
                item,
                "rate limited by Slack",
                after=timedelta(seconds=_retry_after(exc)),
                count_attempt=False,
            )
            return
        attempts = item.attempts if counted else item.attempts + 1
        if error in PERMANENT_ERRORS and attempts >= MAX_ATTEMPTS_FOR_PERMANENT:
            log.error("Slack refused outbox item %s (%s): %s", item.id, item.kind, error)
            async with self._db.session() as session:
                await outbox.mark_dead(session, item_id=item.id, error=f"Slack: {error}")
            return
        await self._schedule_retry(item, f"Slack: {error}", counted=counted)

    async def _schedule_retry(
        self, item: OutboxItem, reason: str, *, counted: bool = False
    ) -> None:
        """Retry later with backoff. ``counted``: the failed call was already counted as an
        attempt (posts record it before calling Slack), so it must not be counted twice."""
        delay = min(timedelta(seconds=2 ** min(item.attempts, 12)), MAX_BACKOFF)
        delay *= 0.75 + random.random() / 2  # jitter, so a recovered Slack isn't stampeded
        await self._reschedule(item, reason, after=delay, count_attempt=not counted)

    async def _deliver(self, item: OutboxItem) -> None:
        if item.kind == OutboxKind.ALERT:
            await self._post_alert(item)
        elif item.kind == OutboxKind.CARD_UPDATE:
            await self._update_card(item)
        elif item.kind == OutboxKind.THREAD_REPLY:
            await self._thread_reply(item)
        elif item.kind == OutboxKind.RETIRE_CARD:
            await self._retire_card(item)
        elif item.kind == OutboxKind.CRISIS:
            await self._post_crisis(item)
        elif item.kind in NOTICE_KINDS:
            await self._post_notice(item)
        elif item.kind == OutboxKind.GROUP_SUMMARY:
            await self._post_summary(item)
        elif item.kind == OutboxKind.GROUP_UPDATE:
            await self._update_summary(item)
        elif item.kind == OutboxKind.GROUP_LINES:
            await self._post_summary_lines(item)
        else:
            raise Retry(f"unknown outbox kind {item.kind!r}", after=MAX_BACKOFF)

    async def _load(self, mention_id: int | None) -> tuple[Mention, Event | None] | None:
        if mention_id is None:
            return None
        async with self._db.session() as session:
            mention = await mention_store.get_mention(session, mention_id=mention_id)
            if mention is None:
                return None
            return mention, await mention_store.last_event(session, mention_id=mention_id)

    async def _post_alert(self, item: OutboxItem) -> None:
        assert item.id is not None
        loaded = await self._load(item.mention_id)
        if loaded is None:
            return  # the mention was deleted; nothing left to post
        mention, last = loaded
        if mention.channel and mention.ts:
            return  # already posted (for example by an earlier attempt that we then confirmed)
        if mention.state == MentionState.MERGED:
            return  # it joined another story before its alert went out (bot/clustering.py)
        async with self._db.session() as session:
            channel = await route_store.channel_for(session, department=mention.department)
        if channel is None:
            raise NoRoute(mention.department)
        if item.attempts > 0:
            found = await self._find_posted(channel, item.id, since=item.created_at)
            if found is not None:
                await self._record_message(mention, channel, found)
                return
        card = await self._alert_card(mention, last)
        response = await self._post_once(
            item,
            channel,
            text=alert_fallback_text(card),
            blocks=alert_blocks(card),
            event_type=METADATA_EVENT_TYPE,
            payload={"mention_id": mention.id, "outbox_id": item.id},
        )
        await self._record_message(mention, str(response["channel"]), str(response["ts"]))

    async def _alert_card(self, mention: Mention, last: Event | None) -> AlertCard:
        """The card, with every watch the post matched and its story's "Also seen on" line."""
        assert mention.id is not None
        async with self._db.session() as session:
            story = await cluster_store.story_summary(
                session, mention_id=mention.id, links=STORY_LINKS_SHOWN
            )
        line = None if story is None else StoryLine(story.sources, story.others, story.links)
        return replace(card_for(mention, last), watches=tuple(mention.watches), story=line)

    async def _record_message(self, mention: Mention, channel: str, ts: str) -> None:
        assert mention.id is not None
        async with self._db.session() as session:
            await mention_store.set_message(session, mention_id=mention.id, channel=channel, ts=ts)
            # Thread replies waiting for this message can go now.
            await outbox.release_thread_items(session, mention_id=mention.id, now=self._clock())
        mention.channel, mention.ts = channel, ts
        self.kick()

    async def _find_posted(
        self,
        channel: str,
        outbox_id: int,
        *,
        since: datetime,
        event_type: str = METADATA_EVENT_TYPE,
    ) -> str | None:
        """The ts of a message an earlier attempt already posted for this outbox item."""
        found = await find_message(
            self._client,
            channel=channel,
            matches=_posted_for(event_type, outbox_id),
            oldest=f"{since.timestamp() - 60:.6f}",
        )
        return None if found is None else str(found["ts"])

    async def _update_card(self, item: OutboxItem) -> None:
        assert item.id is not None
        loaded = await self._load(item.mention_id)
        if loaded is None:
            return
        mention, last = loaded
        if not (mention.channel and mention.ts):
            return  # not posted yet: the alert will show the current state when it goes out
        card = await self._alert_card(mention, last)
        await self._client.chat_update(
            channel=mention.channel,
            ts=mention.ts,
            text=alert_fallback_text(card),
            blocks=alert_blocks(card),
        )
        assert mention.id is not None
        async with self._db.session() as session:
            # Every older pending update is now shown; skip them.
            await outbox.mark_superseded(
                session, mention_id=mention.id, kind=OutboxKind.CARD_UPDATE, up_to_id=item.id
            )

    async def _thread_reply(self, item: OutboxItem) -> None:
        """A short note about an event in the alert's thread, posted at most once."""
        assert item.id is not None
        loaded = await self._load(item.mention_id)
        if loaded is None:
            return
        mention, _ = loaded
        event = await self._event(item.payload.get("event_id"))
        if event is None:
            return
        channel, thread_ts, grouped = await self._thread_of(mention)
        if item.attempts > 0 and await self._find_notice(channel, item.id, thread_ts=thread_ts):
            return
        card = card_for(mention, event)
        text = event_reply_text(card_event(event), card)  # type: ignore[arg-type]
        await self._post_once(
            item,
            channel,
            text=grouped_note(grouped, text) if grouped is not None else text,
            thread_ts=thread_ts,
            event_type=NOTICE_EVENT_TYPE,
            payload={"outbox_id": item.id, "mention_id": item.mention_id or 0},
        )

    async def _thread_of(self, mention: Mention) -> tuple[str, str, GroupedMention | None]:
        """Where notes about a mention go: its alert's thread, or, for a mention alerted in a
        summary, the summary's thread (with the mention named, since it has no card)."""
        assert mention.id is not None
        if mention.channel and mention.ts:
            return mention.channel, mention.ts, None
        async with self._db.session() as session:
            group = await alert_groups.group_of(session, mention_id=mention.id)
        if group is not None and group.channel and group.ts:
            return group.channel, group.ts, _grouped(mention)
        raise Retry(
            "waiting for the alert to be posted", after=WAITING_FOR_PARENT, count_attempt=False
        )

    async def _retire_card(self, item: OutboxItem) -> None:
        loaded = await self._load(item.mention_id)
        if loaded is None:
            return
        mention, _ = loaded
        event = await self._event(item.payload.get("event_id"))
        channel, ts = str(item.payload["channel"]), str(item.payload["ts"])
        card = card_for(mention, event)
        blocks, text = retired_blocks(card)
        await self._client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)

    async def _post_crisis(self, item: OutboxItem) -> None:
        """One crisis alert to one department; posted at most once, like an alert."""
        assert item.id is not None
        spike_id, department = item.payload.get("spike_id"), item.payload.get("department")
        if type(spike_id) is not int or not isinstance(department, str):
            log.error("crisis outbox item %s has a malformed payload: %r", item.id, item.payload)
            return
        crisis = await load_crisis(self._db, spike_id=spike_id)
        if crisis is None:
            return  # the spike was deleted; nothing left to post
        async with self._db.session() as session:
            channel = await route_store.channel_for(session, department=department)
        if channel is None:
            raise NoRoute(department)
        if item.attempts > 0:
            found = await self._find_posted(channel, item.id, since=item.created_at)
            if found is not None:
                await self._spike_alerted(spike_id)
                return
        blocks, text = crisis_blocks(await self._crisis_card(crisis))
        await self._post_once(
            item,
            channel,
            text=text,
            blocks=blocks,
            event_type=METADATA_EVENT_TYPE,
            payload={"spike_id": spike_id, "outbox_id": item.id},
        )
        await self._spike_alerted(spike_id)

    async def _post_notice(self, item: OutboxItem) -> None:
        """A text Earful composed (SLA pings, escalations, reminders), posted at most once.

        Like alerts, the message carries its outbox id in metadata, so a retry after Slack
        took the post but the answer was lost finds it instead of posting again.
        """
        assert item.id is not None
        payload = item.payload
        mention = None
        if item.mention_id is not None:
            loaded = await self._load(item.mention_id)
            if loaded is None:
                return  # the mention was deleted; the notice is about nothing any more
            mention = loaded[0]
        thread_ts: str | None = None
        grouped: GroupedMention | None = None
        if item.kind == OutboxKind.THREAD_NOTE:
            if mention is None:
                return
            channel, thread_ts, grouped = await self._thread_of(mention)
        elif item.kind == OutboxKind.DIRECT_MESSAGE:
            opened = await self._client.conversations_open(users=str(payload.get("user")))
            channel = str(opened["channel"]["id"])
        else:
            department = str(payload.get("department"))
            async with self._db.session() as session:
                routed = await route_store.channel_for(session, department=department)
            if routed is None:
                raise NoRoute(department)
            channel = routed
        if item.attempts > 0 and await self._find_notice(channel, item.id, thread_ts=thread_ts):
            return
        text = str(payload.get("text") or "")
        if payload.get("link") and mention is not None:
            permalink = await self._permalink(mention)
            if permalink:
                text += " " + mrkdwn.link(permalink, "Open the alert")
            elif mention.url:
                text += " " + mrkdwn.link(mention.url, "Open the post")
        if grouped is not None:
            text = grouped_note(grouped, text)
        await self._post_once(
            item,
            channel,
            text=text,
            thread_ts=thread_ts,
            event_type=NOTICE_EVENT_TYPE,
            payload={"outbox_id": item.id, "mention_id": item.mention_id or 0},
        )

    async def _post_once(
        self,
        item: OutboxItem,
        channel: str,
        *,
        text: str,
        event_type: str,
        payload: dict[str, Any],
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> Any:
        """Post a message that a retry can find again by the outbox id in its metadata.

        The attempt is recorded before the call: if Slack takes the post but the answer is
        lost, the next attempt looks for the message instead of posting a second one. The
        record is conditional on the item still pending, so an alert a summary took over in
        the meantime is never posted as well.
        """
        assert item.id is not None
        self._pacer.check(channel)
        async with self._db.session() as session:
            claimed = await outbox.mark_attempt(session, item_id=item.id)
        if not claimed:
            raise TakenOver
        item.attempts += 1
        # The slot last, right before the call, so the spacing Slack sees is the interval.
        await self._pacer.turn(channel)
        try:
            return await self._posting_client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
                metadata={"event_type": event_type, "event_payload": payload},
            )
        except SlackApiError as exc:
            if _rate_limited(exc):
                self._pacer.pause(channel, seconds=_retry_after(exc))
            raise

    async def _find_notice(
        self,
        channel: str,
        outbox_id: int,
        *,
        thread_ts: str | None,
        event_type: str = NOTICE_EVENT_TYPE,
    ) -> bool:
        """Whether an earlier attempt already posted this notice (in the thread, if any)."""
        found = await find_message(
            self._client,
            channel=channel,
            matches=_posted_for(event_type, outbox_id),
            thread_ts=thread_ts,
        )
        return found is not None

    async def _spike_alerted(self, spike_id: int) -> None:
        async with self._db.session() as session:
            await stats.mark_spike_alerted(session, spike_id=spike_id)

    async def _crisis_card(self, crisis: CrisisData) -> CrisisCard:
        examples = [
            CrisisExample(
                source=m.source,
                priority=m.priority,
                title=m.title,
                text=m.text,
                url=m.url,
                alert_url=await self._permalink(m),
            )
            for m in crisis.examples
        ]
        lead = crisis.lead
        cluster_url = None
        if lead is not None:
            cluster_url = await self._permalink(lead) or lead.url
        spike = crisis.spike
        return CrisisCard(
            watch_name=spike.watch_name,
            kind=spike.kind,
            reason=describe(spike.kind, spike.observed, spike.expected, spike.p_value),
            meaning=in_words(spike.kind, spike.observed, spike.expected, spike.p_value),
            started_at=spike.started_at,
            examples=tuple(examples),
            cluster_size=crisis.cluster.size if crisis.cluster is not None else None,
            cluster_url=cluster_url,
        )

    async def _permalink(self, mention: Mention) -> str | None:
        """A link to the mention's alert, if it was posted (bot/permalinks.py)."""
        return await self._permalinks.link(mention.channel, mention.ts)

    async def _event(self, event_id: Any) -> Event | None:
        if not isinstance(event_id, int):
            return None
        async with self._db.session() as session:
            return await session.get(Event, event_id)

    # ------------------------------------------------------------ summaries (grouped bursts)

    async def _group(self, item: OutboxItem) -> AlertGroup | None:
        group_id = item.payload.get("group_id")
        if type(group_id) is not int:
            log.error("outbox item %s has a malformed payload: %r", item.id, item.payload)
            return None
        async with self._db.session() as session:
            return await session.get(AlertGroup, group_id)

    async def _group_channel(self, group: AlertGroup) -> str:
        async with self._db.session() as session:
            channel = await route_store.channel_for(session, department=group.department)
        if channel is None:
            raise NoRoute(group.department)
        return channel

    async def _summary_card(self, group: AlertGroup) -> SummaryCard | None:
        assert group.id is not None
        async with self._db.session() as session:
            counts = await alert_groups.counts(session, group_id=group.id)
        if counts is None:
            return None
        return SummaryCard(
            department=group.department,
            size=counts.group.size,
            since=counts.group.created_at,
            by_priority=tuple(counts.by_priority),
            by_watch=tuple(counts.by_watch),
            by_intent=tuple(counts.by_intent),
            by_source=tuple(counts.by_source),
            by_sentiment=tuple(counts.by_sentiment),
            examples=tuple(_grouped(m) for m in counts.examples),
        )

    async def _post_summary(self, item: OutboxItem) -> None:
        """The summary alert of a burst; posted at most once, like an alert."""
        assert item.id is not None
        group = await self._group(item)
        if group is None or group.ts:
            return  # gone, or already posted (an earlier attempt we then confirmed)
        assert group.id is not None
        channel = await self._group_channel(group)
        ts = None
        if item.attempts > 0:
            ts = await self._find_posted(channel, item.id, since=item.created_at)
        if ts is None:
            card = await self._summary_card(group)
            if card is None:
                return
            blocks, text = summary_blocks(card)
            response = await self._post_once(
                item,
                channel,
                text=text,
                blocks=blocks,
                event_type=METADATA_EVENT_TYPE,
                payload={"group_id": group.id, "outbox_id": item.id},
            )
            channel, ts = str(response["channel"]), str(response["ts"])
        async with self._db.session() as session:
            await alert_groups.set_message(session, group_id=group.id, channel=channel, ts=ts)
            await outbox.release_group_items(session, group_id=group.id, now=self._clock())
        self.kick()

    async def _update_summary(self, item: OutboxItem) -> None:
        """More mentions joined a posted summary: show its new counts in place."""
        assert item.id is not None
        group = await self._group(item)
        if group is None or not (group.channel and group.ts):
            return  # not posted yet: the summary shows the latest counts when it goes out
        assert group.id is not None
        card = await self._summary_card(group)
        if card is None:
            return
        blocks, text = summary_blocks(card)
        await self._client.chat_update(channel=group.channel, ts=group.ts, text=text, blocks=blocks)
        async with self._db.session() as session:
            await outbox.mark_group_updates_done(session, group_id=group.id, up_to_id=item.id)

    async def _post_summary_lines(self, item: OutboxItem) -> None:
        """One thread reply under a summary, listing some of its mentions; posted at most once.

        Its metadata names the mentions it lists, so what was alerted can be read back from
        Slack itself.
        """
        assert item.id is not None
        group = await self._group(item)
        raw_ids = item.payload.get("mention_ids")
        if group is None or not isinstance(raw_ids, list):
            return
        assert group.id is not None
        if not (group.channel and group.ts):
            raise Retry(
                "waiting for the summary to be posted",
                after=WAITING_FOR_PARENT,
                count_attempt=False,
            )
        mention_ids = [i for i in raw_ids if type(i) is int]
        if item.attempts > 0 and await self._find_notice(
            group.channel, item.id, thread_ts=group.ts, event_type=GROUPED_EVENT_TYPE
        ):
            return
        async with self._db.session() as session:
            mentions = await alert_groups.mentions(session, mention_ids=mention_ids)
            before = await alert_groups.members_before(
                session, group_id=group.id, mention_id=min(mention_ids, default=0)
            )
        if not mentions:
            return
        blocks, text = lines_blocks(
            [_grouped(m) for m in mentions], first=before + 1, total=group.size
        )
        await self._post_once(
            item,
            group.channel,
            text=text,
            blocks=blocks,
            thread_ts=group.ts,
            event_type=GROUPED_EVENT_TYPE,
            payload={
                "outbox_id": item.id,
                "group_id": group.id,
                "mention_ids": [m.id for m in mentions],
            },
        )


def _grouped(mention: Mention) -> GroupedMention:
    assert mention.id is not None
    return GroupedMention(
        mention_id=mention.id,
        priority=mention.priority,
        watch_name=mention.watch_name,
        source=mention.source,
        author=mention.author,
        title=mention.title,
        text=mention.text,
        url=mention.url,
        sentiment_label=mention.sentiment_label,
    )
