"""The outbox worker: delivers pending Slack posts and updates, never dropping one.

Outages and rate limits only delay items. A new alert is posted at most once: before a retry
of an alert whose earlier attempt may have reached Slack, the channel's recent history is
searched for the message's metadata (which carries the outbox id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import mrkdwn
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
from bot.spikes import CrisisData, load_crisis
from storage import clusters as cluster_store
from storage import mentions as mention_store
from storage import outbox, stats
from storage import routes as route_store
from storage.db import Database
from storage.models import Event, Mention, MentionState, OutboxItem, OutboxKind
from storage.types import utcnow
from watchers.spikes import describe, in_words

log = logging.getLogger(__name__)

METADATA_EVENT_TYPE = "earful_alert"
NOTICE_EVENT_TYPE = "earful_notice"
NOTICE_KINDS = frozenset({OutboxKind.THREAD_NOTE, OutboxKind.DIRECT_MESSAGE, OutboxKind.ROUTE_POST})
NO_ROUTE_RETRY = timedelta(seconds=60)
MAX_BACKOFF = timedelta(hours=1)
PER_CHANNEL_INTERVAL = 1.0  # seconds; Slack allows about one message per second per channel
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
    ) -> None:
        self._db = db
        self._client = client
        self._posting_client = posting_client
        self._clock = clock
        self._idle_seconds = idle_seconds
        self._per_channel_interval = per_channel_interval
        self._wake = asyncio.Event()
        self._last_post: dict[str, float] = {}
        self._flush_lock = asyncio.Lock()
        self.delivered = 0

    def kick(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled."""
        while True:
            try:
                delivered = await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox flush failed; trying again shortly")
                delivered = 0
            if delivered:
                continue
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
            # lands as the event is set (a kick during shutdown), and this loop never ends.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._idle_seconds):
                    await self._wake.wait()
            self._wake.clear()

    async def flush(self, *, limit: int = 50) -> int:
        """Deliver every due item once; returns how many were completed."""
        async with self._flush_lock:
            async with self._db.session() as session:
                items = await outbox.due_items(session, now=self._clock(), limit=limit)
            done = 0
            for item in items:
                if await self._deliver_one(item):
                    done += 1
            self.delivered += done
            return done

    async def _deliver_one(self, item: OutboxItem) -> bool:
        assert item.id is not None
        attempts_before = item.attempts
        try:
            await self._deliver(item)
        except Retry as retry:
            async with self._db.session() as session:
                await outbox.mark_retry(
                    session,
                    item_id=item.id,
                    error=str(retry),
                    next_attempt_at=self._clock() + retry.after,
                    count_attempt=retry.count_attempt,
                )
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

    async def _handle_slack_error(
        self, item: OutboxItem, exc: SlackApiError, *, counted: bool = False
    ) -> None:
        assert item.id is not None
        error = str(exc.response.get("error", "unknown_error"))
        if exc.response.status_code == 429 or error == "ratelimited":
            retry_after = float(exc.response.headers.get("Retry-After", 5) or 5)
            async with self._db.session() as session:
                await outbox.mark_retry(
                    session,
                    item_id=item.id,
                    error="rate limited by Slack",
                    next_attempt_at=self._clock() + timedelta(seconds=retry_after),
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
        assert item.id is not None
        delay = min(timedelta(seconds=2 ** min(item.attempts, 12)), MAX_BACKOFF)
        delay *= 0.75 + random.random() / 2  # jitter, so a recovered Slack isn't stampeded
        async with self._db.session() as session:
            await outbox.mark_retry(
                session,
                item_id=item.id,
                error=reason,
                next_attempt_at=self._clock() + delay,
                count_attempt=not counted,
            )

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
            raise Retry(
                f"no channel routed for {mention.department}: "
                f"/earful route {mention.department} #channel",
                after=NO_ROUTE_RETRY,
                count_attempt=False,
            )
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
        mention.channel, mention.ts = channel, ts
        self.kick()  # thread replies waiting for this message can go now

    async def _find_posted(self, channel: str, outbox_id: int, *, since: datetime) -> str | None:
        """The ts of a message an earlier attempt already posted for this outbox item."""
        oldest = f"{since.timestamp() - 60:.6f}"
        cursor: str | None = None
        for _ in range(10):
            kwargs: dict[str, Any] = {
                "channel": channel,
                "oldest": oldest,
                "limit": 200,
                "include_all_metadata": True,
            }
            if cursor:
                kwargs["cursor"] = cursor
            response = await self._client.conversations_history(**kwargs)
            message: dict[str, Any]
            for message in response.get("messages", []):
                metadata: dict[str, Any] = message.get("metadata") or {}
                payload: dict[str, Any] = metadata.get("event_payload") or {}
                if (
                    metadata.get("event_type") == METADATA_EVENT_TYPE
                    and payload.get("outbox_id") == outbox_id
                ):
                    return str(message["ts"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return None

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
        loaded = await self._load(item.mention_id)
        if loaded is None:
            return
        mention, _ = loaded
        event = await self._event(item.payload.get("event_id"))
        if event is None:
            return
        if not (mention.channel and mention.ts):
            raise Retry(
                "waiting for the alert to be posted", after=NO_ROUTE_RETRY, count_attempt=False
            )
        card = card_for(mention, event)
        await self._pace(mention.channel)
        await self._client.chat_postMessage(
            channel=mention.channel,
            thread_ts=mention.ts,
            text=event_reply_text(card_event(event), card),  # type: ignore[arg-type]
            unfurl_links=False,
            unfurl_media=False,
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
            raise Retry(
                f"no channel routed for {department}: /earful route {department} #channel",
                after=NO_ROUTE_RETRY,
                count_attempt=False,
            )
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
        if item.kind == OutboxKind.THREAD_NOTE:
            if mention is None:
                return
            if not (mention.channel and mention.ts):
                raise Retry(
                    "waiting for the alert to be posted", after=NO_ROUTE_RETRY, count_attempt=False
                )
            channel, thread_ts = mention.channel, mention.ts
        elif item.kind == OutboxKind.DIRECT_MESSAGE:
            opened = await self._client.conversations_open(users=str(payload.get("user")))
            channel = str(opened["channel"]["id"])
        else:
            department = str(payload.get("department"))
            async with self._db.session() as session:
                routed = await route_store.channel_for(session, department=department)
            if routed is None:
                raise Retry(
                    f"no channel routed for {department}: /earful route {department} #channel",
                    after=NO_ROUTE_RETRY,
                    count_attempt=False,
                )
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
        lost, the next attempt looks for the message instead of posting a second one.
        """
        assert item.id is not None
        async with self._db.session() as session:
            await outbox.mark_attempt(session, item_id=item.id)
        item.attempts += 1
        await self._pace(channel)
        return await self._posting_client.chat_postMessage(
            channel=channel,
            thread_ts=thread_ts,
            text=text,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
            metadata={"event_type": event_type, "event_payload": payload},
        )

    async def _find_notice(self, channel: str, outbox_id: int, *, thread_ts: str | None) -> bool:
        """Whether an earlier attempt already posted this notice (in the thread, if any)."""
        cursor: str | None = None
        for _ in range(10):
            kwargs: dict[str, Any] = {"channel": channel, "limit": 200}
            kwargs["include_all_metadata"] = True
            if cursor:
                kwargs["cursor"] = cursor
            if thread_ts is not None:
                response = await self._client.conversations_replies(ts=thread_ts, **kwargs)
            else:
                response = await self._client.conversations_history(**kwargs)
            message: dict[str, Any]
            for message in response.get("messages", []):
                metadata: dict[str, Any] = message.get("metadata") or {}
                found: dict[str, Any] = metadata.get("event_payload") or {}
                if (
                    metadata.get("event_type") == NOTICE_EVENT_TYPE
                    and found.get("outbox_id") == outbox_id
                ):
                    return True
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return False

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
        """A link to the mention's alert, if it was posted and Slack still knows it."""
        if not (mention.channel and mention.ts):
            return None
        try:
            response = await self._client.chat_getPermalink(
                channel=mention.channel, message_ts=mention.ts
            )
        except SlackApiError as exc:
            # A deleted alert or a channel we left: the example still shows, without the link,
            # rather than holding up a crisis alert.
            log.info("no permalink for mention %s: %s", mention.id, exc.response.get("error"))
            return None
        permalink = response.get("permalink")
        return str(permalink) if permalink else None

    async def _event(self, event_id: Any) -> Event | None:
        if not isinstance(event_id, int):
            return None
        async with self._db.session() as session:
            return await session.get(Event, event_id)

    async def _pace(self, channel: str) -> None:
        last = self._last_post.get(channel)
        now = time.monotonic()
        if last is not None and now - last < self._per_channel_interval:
            await asyncio.sleep(self._per_channel_interval - (now - last))
        self._last_post[channel] = time.monotonic()
