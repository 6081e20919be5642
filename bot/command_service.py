"""Runs a parsed ``/earful`` command and builds its ephemeral reply."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import answers, digest_commands, job_status, sla_commands
from bot import command_parser as cp
from bot import queue_commands as qc
from bot.catalog import compiled_query
from bot.digest import Digests
from bot.errors import CommandError, NotAllowed, NotFound
from bot.mutes import Mutes
from bot.permalinks import Permalinks
from bot.queues import Queues
from bot.replies import (
    Reply,
    format_interval,
    help_reply,
    leads_reply,
    routes_reply,
    status_reply,
    text_reply,
    watch_list_reply,
    watch_test_reply,
)
from bot.routing_editor import RoutingEditor
from bot.routing_modal import editor_button
from bot.settings import Settings
from bot.slack_client import build_posting_client
from storage import leads as lead_store
from storage import mentions as mention_store
from storage import outbox
from storage import posts as post_store
from storage import routes as route_store
from storage import watches as watch_store
from storage.db import Database
from storage.models import FetchedPost, SourceState
from storage.types import utcnow
from watchers.http import address_refusal
from watchers.matcher import Matcher, WatchRule
from watchers.query import PostFields
from watchers.registry import source_url

log = logging.getLogger(__name__)

MAX_CONTEXT_TEXT = 3000  # Slack's limit for one text object

ADMIN_ONLY = (
    cp.WatchAdd,
    cp.WatchSetPaused,
    cp.WatchRemove,
    cp.WatchExclude,
    cp.RouteSet,
    cp.LeadSet,
    cp.RuleSet,
    cp.RuleReset,
    cp.RouteEdit,
)
TEST_DAYS = post_store.RETENTION.days


class CommandService:
    def __init__(
        self,
        db: Database,
        *,
        settings: Settings,
        client: AsyncWebClient,
        on_outbox: Callable[[], None] = lambda: None,
        on_watches_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._client = client
        self._on_outbox = on_outbox
        self._on_watches_changed = on_watches_changed
        # Routing edits reach the pollers the way watch edits do: the catalog reloads both.
        self.routing = RoutingEditor(
            db, admins=settings.admins, client=client, on_changed=on_watches_changed
        )
        # Queue lists and mute rules; handlers/queues.py reaches them here for their buttons.
        self.permalinks = Permalinks(client)
        self.queues = Queues(db, client=client, permalinks=self.permalinks)
        self.mutes = Mutes(db, admins=settings.admins, client=client)
        # The executive digest; handlers/digest.py and the scheduler reach it here.
        self.digests = Digests(
            db,
            client=client,
            posting_client=build_posting_client(settings),
            permalinks=self.permalinks,
        )

    async def run(self, *, user_id: str, text: str, channel_id: str | None = None) -> Reply:
        """Parse and run; domain errors become friendly replies, never exceptions."""
        command = cp.parse_command(
            text,
            allow_private=self._settings.fetch_allow_private,
            min_interval=self._settings.min_interval_seconds,
        )
        if isinstance(command, ADMIN_ONLY) and user_id not in self._settings.admins:
            raise NotAllowed(
                "Only Earful admins can change watches, routes and leads. Ask an admin to add your "
                f"user ID (`{user_id}`) to EARFUL_ADMINS."
            )
        return await self._dispatch(command, user_id=user_id, channel_id=channel_id)

    async def _dispatch(
        self, command: cp.Command, *, user_id: str, channel_id: str | None = None
    ) -> Reply:
        if isinstance(command, cp.Help):
            return help_reply()
        if isinstance(command, cp.WatchAdd):
            return await self._watch_add(command, user_id=user_id)
        if isinstance(command, cp.WatchList):
            return await self._watch_list()
        if isinstance(command, cp.WatchSetPaused):
            return await self._watch_pause(command)
        if isinstance(command, cp.WatchRemove):
            return await self._watch_remove(command)
        if isinstance(command, cp.WatchExclude):
            return await self._watch_exclude(command)
        if isinstance(command, cp.WatchTest):
            return await self._watch_test(command)
        if isinstance(command, cp.RouteSet):
            return await self._route_set(command, user_id=user_id)
        if isinstance(command, cp.Routes):
            return await self._routes()
        if isinstance(command, cp.RuleSet):
            return await self.routing.set_rules(command, user_id=user_id)
        if isinstance(command, cp.RuleReset):
            return await self.routing.reset_rules(command, user_id=user_id)
        if isinstance(command, cp.RouteEdit):
            # The modal needs the command's trigger_id, which handlers/views.py has; this
            # path (no trigger) offers the editor behind a button instead.
            return Reply(
                text="Open the routing editor",
                blocks=[editor_button(command.intent, command.kind)],
            )
        if isinstance(command, cp.Status):
            return await self._status()
        if isinstance(command, cp.LeadSet):
            return await self._lead_set(command, user_id=user_id)
        if isinstance(command, cp.Leads):
            return await self._leads()
        if isinstance(command, answers.AnswerSearch | answers.AnswerDelete):
            return await answers.run_command(
                command, db=self._db, admins=self._settings.admins, user_id=user_id
            )
        if isinstance(command, qc.QueueCommand):
            return await qc.run_queue_command(
                command,
                queues=self.queues,
                mutes=self.mutes,
                user_id=user_id,
                channel_id=channel_id,
            )
        if isinstance(command, sla_commands.SlaCommand):
            return await sla_commands.run(
                command, db=self._db, user_id=user_id, is_admin=user_id in self._settings.admins
            )
        if isinstance(command, digest_commands.DigestCommand):
            return await digest_commands.run(
                command,
                db=self._db,
                digests=self.digests,
                client=self._client,
                find_channel=self._find_channel,
                user_id=user_id,
                is_admin=user_id in self._settings.admins,
                channel_id=channel_id,
            )
        raise CommandError("I don't know that command.", example="/earful help")

    async def _watch_add(self, command: cp.WatchAdd, *, user_id: str) -> Reply:
        notes = []
        for spec in command.sources:
            url = source_url(spec)
            if url is not None:
                note = await self._check_resolves_publicly(url)
                if note:
                    notes.append(note)
        async with self._db.session() as session:
            try:
                await watch_store.create_watch(
                    session,
                    name=command.name,
                    query=command.query,
                    kind=command.kind.value,
                    department=command.department.value if command.department else None,
                    sources=command.sources,
                    interval_seconds=command.interval_seconds,
                    created_by=user_id,
                    exclude=command.exclude,
                )
            except watch_store.WatchExists:
                raise CommandError(
                    f"A watch named `{command.name}` already exists. Pick another name, or "
                    f"`/earful watch remove {command.name}` first.",
                    example=cp.WATCH_ADD_EXAMPLE,
                ) from None
        self._on_watches_changed()
        lines = [
            f":white_check_mark: Watch *{command.name}* saved: `{_esc(command.query)}` on "
            f"{len(command.sources)} source(s), every {format_interval(command.interval_seconds)}, "
            f"kind {command.kind.value}"
            + (f", department {command.department.value}" if command.department else "")
            + ". First poll now; `/earful status` shows how it goes.",
            *notes,
        ]
        return text_reply("\n".join(lines))

    async def _check_resolves_publicly(self, url: str) -> str | None:
        """Refuse a feed host that resolves to a private address, now rather than at fetch time.

        Fetching checks again on every request (names can change); this is for quick feedback.
        A name that does not resolve right now is accepted with a note: DNS may be down.
        """
        if self._settings.fetch_allow_private:
            return None
        from yarl import URL

        host = URL(url).raw_host or ""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, None, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError):
            return (
                f":warning: I couldn't resolve `{_esc(host)}` right now; `/earful status` will "
                "show whether polling works."
            )
        for info in infos:
            address = str(info[4][0])
            kind = address_refusal(address)
            if kind is not None:
                raise CommandError(
                    f"Refusing `{_esc(url)}`: it resolves to a {kind} address ({address}).",
                    example=cp.WATCH_ADD_EXAMPLE,
                )
        return None

    async def _watch_list(self) -> Reply:
        async with self._db.read() as session:
            watches = await watch_store.list_watches(session)
            states = _group(await watch_store.source_states(session))
        return watch_list_reply(watches, states)

    async def _watch_pause(self, command: cp.WatchSetPaused) -> Reply:
        async with self._db.session() as session:
            watch = await watch_store.set_paused(session, name=command.name, paused=command.paused)
        if watch is None:
            raise NotFound(
                f"There is no watch named `{command.name}`. `/earful watch list` shows them."
            )
        self._on_watches_changed()
        verb = "paused" if command.paused else "resumed"
        return text_reply(f"Watch *{command.name}* {verb}.")

    async def _watch_remove(self, command: cp.WatchRemove) -> Reply:
        async with self._db.session() as session:
            removed = await watch_store.delete_watch(session, name=command.name)
        self._on_watches_changed()
        if not removed:
            raise NotFound(
                f"There is no watch named `{command.name}`. `/earful watch list` shows them."
            )
        return text_reply(
            f"Watch *{command.name}* removed. Its mentions and their history are kept."
        )

    async def _watch_exclude(self, command: cp.WatchExclude) -> Reply:
        async with self._db.session() as session:
            watch = await watch_store.set_exclude(
                session, name=command.name, exclude=command.exclude
            )
        if watch is None:
            raise NotFound(
                f"There is no watch named `{command.name}`. `/earful watch list` shows them."
            )
        self._on_watches_changed()
        if command.exclude is None:
            return text_reply(f"Watch *{command.name}* no longer excludes anything.")
        return text_reply(
            f"Watch *{command.name}* now skips posts matching `{_esc(command.exclude)}`."
        )

    async def _watch_test(self, command: cp.WatchTest) -> Reply:
        query = compiled_query(command.query)
        exact = [s for s in command.sources if ":" in s]
        kinds = tuple(s for s in command.sources if ":" not in s)
        async with self._db.read() as session:
            posts = await post_store.recent_posts(
                session,
                since=utcnow() - timedelta(days=TEST_DAYS),
                sources=exact,
                source_kinds=kinds,
            )
        matcher = Matcher([WatchRule(key=0, query=query)])
        # Matching thousands of posts is CPU work: keep it off the event loop.
        hits = await asyncio.to_thread(_test_matches, matcher, posts)
        return watch_test_reply(command.query, examined=len(posts), days=TEST_DAYS, matches=hits)

    async def _route_set(self, command: cp.RouteSet, *, user_id: str) -> Reply:
        channel_id = command.channel_id or await self._find_channel(command.channel_name or "")
        async with self._db.session() as session:
            await route_store.set_route(
                session,
                department=command.department.value,
                channel_id=channel_id,
                updated_by=user_id,
            )
            # Alerts that were waiting for a channel can go out now.
            await outbox.release_waiting(session, now=utcnow())
        self._on_outbox()
        return text_reply(
            f":white_check_mark: *{command.department.value}* alerts now go to <#{channel_id}>. "
            "For a private channel, invite Earful there first (`/invite @earful`)."
        )

    async def _find_channel(self, name: str) -> str:
        cursor: str | None = None
        try:
            for _ in range(20):
                kwargs: dict[str, Any] = {
                    "types": "public_channel,private_channel",
                    "exclude_archived": True,
                    "limit": 1000,
                }
                if cursor:
                    kwargs["cursor"] = cursor
                response = await self._client.conversations_list(**kwargs)
                channel: dict[str, Any]
                for channel in response.get("channels", []):
                    if channel.get("name") == name:
                        return str(channel["id"])
                cursor = (response.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
        except SlackApiError as exc:
            log.warning("conversations.list failed: %s", exc.response.get("error"))
        raise CommandError(
            f"I can't find a channel named #{_esc(name)}. Pick it from the # menu so Slack "
            "sends its ID, or invite Earful to it.",
            example=cp.ROUTE_EXAMPLE,
        )

    async def _routes(self) -> Reply:
        async with self._db.read() as session:
            routes = await route_store.list_routes(session)
            pending = await mention_store.pending_alert_count_by_department(session)
        routing = await self.routing.load()
        edited_by = {key: rule.updated_by for key, rule in routing.edits.items()}
        return routes_reply(routes, pending, table=routing.table, edited_by=edited_by)

    async def _lead_set(self, command: cp.LeadSet, *, user_id: str) -> Reply:
        department = command.department.value
        async with self._db.session() as session:
            if command.user_id is None:
                removed = await lead_store.clear_lead(session, department=department)
            else:
                await lead_store.set_lead(
                    session, department=department, user_id=command.user_id, updated_by=user_id
                )
        if command.user_id is None:
            if not removed:
                return text_reply(f"*{department}* has no lead.")
            return text_reply(f"*{department}* has no lead any more.")
        return text_reply(
            f":white_check_mark: <@{command.user_id}> now leads *{department}*: they can "
            "answer, resolve, dismiss and reroute its mentions, whoever claimed them."
        )

    async def _leads(self) -> Reply:
        async with self._db.read() as session:
            leads = await lead_store.list_leads(session)
        return leads_reply(leads)

    async def _status(self) -> Reply:
        async with self._db.read() as session:
            watches = await watch_store.list_watches(session)
            states = _group(await watch_store.source_states(session))
            pending = await mention_store.pending_alert_count_by_department(session)
            queued = await outbox.pending_count(session)
            scheduler = await job_status.load(session)
        reply = status_reply(watches, states, pending_alerts=pending, outbox_pending=queued)
        # In the closing context block: the reply already holds as many blocks as Slack allows.
        reply.blocks[-1]["elements"].append(
            {"type": "mrkdwn", "text": job_status.summary(scheduler)[:MAX_CONTEXT_TEXT]}
        )
        return reply


def _test_matches(
    matcher: Matcher, posts: list[FetchedPost]
) -> list[tuple[FetchedPost, tuple[str, ...]]]:
    hits = []
    for post in posts:
        text = f"{post.title}\n{post.text}" if post.title else post.text
        fields = PostFields(
            source=post.source, author=post.author, language=post.language, url=post.url
        )
        for _, match in matcher.match(text, fields):
            hits.append((post, match.terms))
    return hits


def _group(states: list[SourceState]) -> dict[int, list[SourceState]]:
    grouped: dict[int, list[SourceState]] = {}
    for state in states:
        grouped.setdefault(state.watch_id, []).append(state)
    return grouped


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")
