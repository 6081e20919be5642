"""Muting: authors, domains and phrases whose posts are stored but never alerted.

Who may mute: Earful admins (for every department, or one with ``dept=``) and department
leads (for the departments they lead). Muting silences posts for everyone in a department,
so it takes the people who answer for that department's queue; anyone else who dismisses
noise is not offered the button. Removing a rule takes an admin, the rule's author or the
lead of the rule's department. Anyone may list the rules.

Rules apply at ingest (:func:`set_aside_muted`, called by the poller where new mentions are
built): a muted post is stored in the ``muted`` state with a "muted by rule #n" event, never
joins a story (its link and text signature are not kept, so a later post by someone else is
not folded under it) and appears in no queue. Muting and unmuting never touch mentions already
stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot import mrkdwn
from bot.cards import ActionValue
from bot.errors import CommandError, NotAllowed, NotFound
from bot.ids import ActionId
from bot.queue_commands import (
    MuteAdd,
    MuteKind,
    MuteList,
    MuteRemove,
    normalize_author,
    normalize_domain,
    normalize_mute_value,
)
from bot.replies import Reply, error_reply, text_reply
from storage import clusters as cluster_store
from storage import leads as lead_store
from storage import mentions as mention_store
from storage import mutes as mute_store
from storage.db import Database
from storage.models import DismissReason, Mention, MentionState, MuteRule
from storage.types import utcnow

log = logging.getLogger(__name__)

_T = TypeVar("_T")
MAX_LISTED = 30
VALUE_SHOWN = 80


# ----------------------------------------------------------------- matching (pure)


def post_domain(url: str | None) -> str | None:
    if not url:
        return None
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return normalize_domain(host) if host else None


def _phrase_haystack(mention: Mention) -> str:
    return " ".join(f"{mention.title or ''} {mention.text}".lower().split())


def rule_matches(rule: MuteRule, mention: Mention, *, haystack: str | None = None) -> bool:
    if rule.department is not None and rule.department != mention.department:
        return False
    if rule.source is not None and rule.source not in (
        mention.source,
        mention.source.partition(":")[0],
    ):
        return False
    if rule.kind == MuteKind.AUTHOR:
        return mention.author is not None and normalize_author(mention.author) == rule.value
    if rule.kind == MuteKind.DOMAIN:
        domain = post_domain(mention.url)
        return domain is not None and (domain == rule.value or domain.endswith("." + rule.value))
    if rule.kind == MuteKind.PHRASE:
        return rule.value in (haystack if haystack is not None else _phrase_haystack(mention))
    return False


def matching_rule(rules: Sequence[MuteRule], mention: Mention) -> MuteRule | None:
    """The oldest rule that mutes ``mention``, if any."""
    haystack = _phrase_haystack(mention)
    for rule in rules:
        if rule_matches(rule, mention, haystack=haystack):
            return rule
    return None


async def set_aside_muted(
    db: Database, mentions: Sequence[tuple[Mention, _T]], *, now: datetime
) -> list[tuple[Mention, _T]]:
    """Store the muted ones of freshly built mentions; return the rest, to be filed and alerted.

    Runs in its own short transaction before the poller's: a crash in between leaves the muted
    posts stored (and so skipped as known next time), which is what muting wants anyway.
    """
    if not mentions:
        return []
    async with db.session() as session:
        rules = await mute_store.active_rules(session, now=now)
        if not rules:
            return list(mentions)
        kept: list[tuple[Mention, _T]] = []
        muted: list[tuple[Mention, int]] = []
        for mention, extra in mentions:
            rule = matching_rule(rules, mention)
            if rule is None or rule.id is None:
                kept.append((mention, extra))
                continue
            # Out of every story: nothing may join a muted post, nor it a story.
            mention.canonical_url = None
            mention.minhash = None
            muted.append((mention, rule.id))
        if muted:
            # Mentions are only ever inserted under the clustering lock, so a poller filing
            # the same post in bulk (bot/clustering.py) never races with this insert.
            await cluster_store.lock_clustering(session)
            stored = await mute_store.store_muted(session, muted=muted, now=now)
            log.info("muted %d new mention(s) at ingest", len(stored))
    return kept


# ----------------------------------------------------------------- builders (pure)


def describe_rule(rule: MuteRule) -> str:
    value = mrkdwn.truncate(rule.value, VALUE_SHOWN)
    what = f'phrase "{value}"' if rule.kind == MuteKind.PHRASE else f"{rule.kind} *{value}*"
    scope = [f"in {rule.department}" if rule.department else "everywhere"]
    if rule.source:
        scope.append(f"on {mrkdwn.truncate(rule.source, VALUE_SHOWN)}")
    return f"{what} ({', '.join(scope)})"


def mutes_reply(rules: Sequence[MuteRule], *, total: int) -> Reply:
    if not rules:
        return text_reply("Nothing is muted. `/earful mute author=…` mutes an author.")
    lines = []
    for rule in rules:
        until = f", until {mrkdwn.date(rule.expires_at)}" if rule.expires_at else ""
        hits = f"{rule.hits} post{'s' if rule.hits != 1 else ''} muted"
        by = mrkdwn.user(rule.created_by) or "someone"
        lines.append(f"*#{rule.id}* {describe_rule(rule)} — {hits}, by {by}{until}")
    blocks: list[dict[str, Any]] = [
        SectionBlock(
            text=MarkdownTextObject(text=f"*Mute rules ({total})*\n" + "\n".join(lines)[:2900])
        ).to_dict()
    ]
    note = "`/earful unmute &lt;number&gt;` removes one."
    if total > len(rules):
        note = f"Showing the newest {len(rules)}. " + note
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=note)]).to_dict())
    return Reply(text=f"{total} mute rule(s)", blocks=blocks)


class MuteOffer(BaseModel):
    """What a "Mute this author/domain" button carries back."""

    mention_id: int
    kind: MuteKind


def offer_blocks(
    mention: Mention, *, author: str | None, domain: str | None
) -> list[dict[str, Any]]:
    assert mention.id is not None
    buttons = []
    if author:
        buttons.append(
            ButtonElement(
                text=mrkdwn.plain(f"Mute author {author}", 75),
                action_id=ActionId.MUTE_AUTHOR.value,
                value=MuteOffer(mention_id=mention.id, kind=MuteKind.AUTHOR).model_dump_json(),
            )
        )
    if domain:
        buttons.append(
            ButtonElement(
                text=mrkdwn.plain(f"Mute domain {domain}", 75),
                action_id=ActionId.MUTE_DOMAIN.value,
                value=MuteOffer(mention_id=mention.id, kind=MuteKind.DOMAIN).model_dump_json(),
            )
        )
    return [
        SectionBlock(
            text=MarkdownTextObject(
                text=f"Dismissed as noise. Keep posts like this out of *{mention.department}* "
                "from now on?"
            )
        ).to_dict(),
        ActionsBlock(elements=buttons).to_dict(),
    ]


# ----------------------------------------------------------------- the service


class Mutes:
    def __init__(
        self,
        db: Database,
        *,
        admins: Collection[str],
        client: AsyncWebClient,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._admins = frozenset(admins)
        self._client = client
        self._clock = clock

    async def run(self, command: MuteAdd | MuteRemove | MuteList, *, user_id: str) -> Reply:
        if isinstance(command, MuteAdd):
            return await self.mute(command, user_id=user_id)
        if isinstance(command, MuteRemove):
            return await self.unmute(command.rule_id, user_id=user_id)
        return await self.list()

    async def _department_for(self, user_id: str, asked: str | None) -> str | None:
        """The department a new rule of ``user_id`` applies to (None: all), or NotAllowed."""
        if user_id in self._admins:
            return asked
        async with self._db.read() as session:
            leads = await lead_store.list_leads(session)
        led = sorted(department for department, lead in leads.items() if lead == user_id)
        if not led:
            raise NotAllowed(
                "Only Earful admins and department leads can mute: a mute hides posts from "
                "everyone in the department. Ask your department's lead (`/earful leads`)."
            )
        if asked is None:
            if len(led) > 1:
                raise CommandError(
                    "You lead " + ", ".join(led) + "; say which one with `dept=`.",
                    example=f"/earful mute author=spambot dept={led[0]}",
                )
            return led[0]
        if asked not in led:
            raise NotAllowed(f"You can mute for {', '.join(led)}, which you lead, not for {asked}.")
        return asked

    async def mute(self, command: MuteAdd, *, user_id: str) -> Reply:
        department = await self._department_for(
            user_id, command.department.value if command.department else None
        )
        now = self._clock()
        async with self._db.session() as session:
            rule = await mute_store.add_rule(
                session,
                kind=command.kind.value,
                value=command.value,
                source=command.source,
                department=department,
                created_by=user_id,
                now=now,
                expires_at=now + command.duration if command.duration else None,
            )
        return _muted_reply(rule)

    async def unmute(self, rule_id: int, *, user_id: str) -> Reply:
        async with self._db.session() as session:
            rule = await mute_store.get_rule(session, rule_id=rule_id)
            if rule is None or rule.removed_at is not None:
                raise NotFound(f"There is no mute rule #{rule_id}. `/earful mutes` lists them.")
            lead = (
                await lead_store.lead_for(session, department=rule.department)
                if rule.department
                else None
            )
            if user_id not in self._admins and user_id not in (rule.created_by, lead):
                raise NotAllowed(
                    f"Rule #{rule_id} can be removed by whoever made it, "
                    + (f"the {rule.department} lead " if rule.department else "")
                    + "or an admin."
                )
            await mute_store.remove_rule(
                session, rule_id=rule_id, removed_by=user_id, now=self._clock()
            )
        return text_reply(
            f":loud_sound: Rule #{rule_id} removed: {describe_rule(rule)} is alerted again from "
            "now on. Posts it muted stay muted."
        )

    async def list(self) -> Reply:
        async with self._db.read() as session:
            rules = await mute_store.active_rules(session, now=self._clock())
        newest = sorted(rules, key=lambda rule: rule.id or 0, reverse=True)[:MAX_LISTED]
        return mutes_reply(newest, total=len(rules))

    async def may_mute(self, user_id: str, department: str) -> bool:
        if user_id in self._admins:
            return True
        async with self._db.read() as session:
            return await lead_store.lead_for(session, department=department) == user_id

    async def offer_after_dismissal(
        self, *, user_id: str, channel_id: str | None, value: str | None
    ) -> None:
        """After a Dismiss → noise, offer whoever may mute to mute the author or domain.

        Only when the mention now stands dismissed as noise by this very person, so a refused
        or failed dismissal offers nothing. Never raises: this runs after the ack.
        """
        try:
            choice = ActionValue.decode(str(value or "")[:2000])
            if choice.reason != DismissReason.NOISE.value or not channel_id:
                return
            async with self._db.read() as session:
                mention = await mention_store.get_mention(session, mention_id=choice.mention_id)
                last = await mention_store.last_event(session, mention_id=choice.mention_id)
            if (
                mention is None
                or mention.state != MentionState.DISMISSED
                or last is None
                or last.actor != user_id
                or last.reason != DismissReason.NOISE.value
                or not await self.may_mute(user_id, mention.department)
            ):
                return
            author = normalize_author(mention.author) if mention.author else None
            domain = post_domain(mention.url)
            if not author and not domain:
                return
            await self._client.chat_postEphemeral(
                channel=channel_id,
                user=user_id,
                text="Mute this author or domain?",
                blocks=offer_blocks(mention, author=author, domain=domain),
            )
        except ValueError:
            return  # not a button of ours
        except SlackApiError as exc:
            log.warning("could not offer %s to mute: %s", user_id, exc.response.get("error"))
        except Exception:
            log.exception("offering %s to mute failed", user_id)

    async def mute_from_offer(self, *, user_id: str, value: str | None) -> Reply:
        """The "Mute author/domain" button: a rule for the mention's department."""
        try:
            offer = MuteOffer.model_validate_json(str(value or "")[:2000])
        except ValidationError:
            return error_reply("That button is not attached to a mention.")
        try:
            async with self._db.read() as session:
                mention = await mention_store.get_mention(session, mention_id=offer.mention_id)
            if mention is None:
                raise NotFound("That mention no longer exists.")
            if not await self.may_mute(user_id, mention.department):
                raise NotAllowed("Only Earful admins and department leads can mute.")
            raw = mention.author if offer.kind is MuteKind.AUTHOR else post_domain(mention.url)
            if not raw:
                raise NotFound(f"That mention has no {offer.kind.value} to mute.")
            command = MuteAdd(kind=offer.kind, value=normalize_mute_value(offer.kind, raw))
            now = self._clock()
            async with self._db.session() as session:
                rule = await mute_store.add_rule(
                    session,
                    kind=command.kind.value,
                    value=command.value,
                    source=None,
                    department=mention.department,
                    created_by=user_id,
                    now=now,
                    expires_at=None,
                )
            return _muted_reply(rule)
        except CommandError as exc:
            return error_reply(str(exc), example=exc.example)
        except (NotAllowed, NotFound) as exc:
            return error_reply(str(exc))


def _muted_reply(rule: MuteRule) -> Reply:
    until = f" until {mrkdwn.date(rule.expires_at)}" if rule.expires_at else ""
    return text_reply(
        f":mute: Rule #{rule.id}: posts matching {describe_rule(rule)} are stored but not "
        f"alerted"
        f"{until}. `/earful unmute {rule.id}` undoes it."
    )
