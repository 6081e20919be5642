"""``/earful digest …``: subscribe to the executive digest, unsubscribe, send or preview it.

    /earful digest                                   your subscriptions and this channel's
    /earful digest subscribe [time=08:00] [tz=Europe/Paris] [depts=support,pr]
    /earful digest subscribe channel=#exec time=07:30 tz=America/New_York   (admins)
    /earful digest unsubscribe [channel=#exec]
    /earful digest now [weekly] [depts=…] [channel=#exec]                   (channel: admins)
    /earful digest preview [weekly] [depts=…]

Without ``tz=`` a DM subscription takes the person's Slack time zone (users.info), a channel's
UTC. The digest goes out daily at that local time; on Mondays the weekly report replaces it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import mrkdwn
from bot.digest import Digests
from bot.digest_schedule import last_due_day, occurrence, window_now
from bot.errors import CommandError, NotAllowed
from bot.oncall import parse_zone
from bot.replies import Reply, text_reply
from storage import digest_subscriptions as store
from storage.db import Database
from storage.types import utcnow
from watchers.departments import Department

SUBSCRIBE_EXAMPLE = "/earful digest subscribe time=08:00 tz=Europe/Paris depts=support,pr"
CHANNEL_EXAMPLE = "/earful digest subscribe channel=#exec time=07:30 tz=America/New_York"
DEFAULT_MINUTE = 8 * 60
DEFAULT_TZ = "UTC"
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_CHANNEL = re.compile(r"^<#([CG][A-Z0-9]{2,})>$|^([CG][A-Z0-9]{8,})$")


@dataclass(frozen=True, slots=True)
class DigestShow:
    pass


@dataclass(frozen=True, slots=True)
class DigestSubscribe:
    send_minute: int
    tz: str | None  # None: the person's Slack time zone (a DM) or UTC (a channel)
    departments: tuple[str, ...]
    channel: str | None  # a channel id, "#name", or None for a DM


@dataclass(frozen=True, slots=True)
class DigestUnsubscribe:
    channel: str | None


@dataclass(frozen=True, slots=True)
class DigestNow:
    weekly: bool
    departments: tuple[str, ...]
    channel: str | None


@dataclass(frozen=True, slots=True)
class DigestPreview:
    weekly: bool
    departments: tuple[str, ...]


DigestCommand = DigestShow | DigestSubscribe | DigestUnsubscribe | DigestNow | DigestPreview
ChannelFinder = Callable[[str], Awaitable[str]]


# ---------------------------------------------------------------- parsing


def parse_digest(tokens: list[str]) -> DigestCommand:
    if not tokens:
        return DigestShow()
    verb, rest = tokens[0].lower(), tokens[1:]
    if verb == "subscribe":
        options = _options(rest, ("time", "tz", "depts", "channel"), SUBSCRIBE_EXAMPLE)
        return DigestSubscribe(
            send_minute=parse_time(options["time"]) if "time" in options else DEFAULT_MINUTE,
            tz=parse_zone(options["tz"], example=SUBSCRIBE_EXAMPLE) if "tz" in options else None,
            departments=parse_departments(options.get("depts")),
            channel=_channel(options.get("channel")),
        )
    if verb == "unsubscribe":
        options = _options(rest, ("channel",), "/earful digest unsubscribe channel=#exec")
        return DigestUnsubscribe(channel=_channel(options.get("channel")))
    if verb in ("now", "preview"):
        weekly = bool(rest) and rest[0].lower() in ("weekly", "week")
        if weekly:
            rest = rest[1:]
        keys = ("depts", "channel") if verb == "now" else ("depts",)
        options = _options(rest, keys, f"/earful digest {verb} weekly depts=support")
        departments = parse_departments(options.get("depts"))
        if verb == "preview":
            return DigestPreview(weekly=weekly, departments=departments)
        return DigestNow(
            weekly=weekly, departments=departments, channel=_channel(options.get("channel"))
        )
    raise CommandError(
        f"`digest {_show(verb)}` is not a digest command; use `subscribe`, `unsubscribe`, "
        "`now` or `preview`.",
        example=SUBSCRIBE_EXAMPLE,
    )


def _options(tokens: list[str], keys: tuple[str, ...], example: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        key = key.strip().lower()
        if key in ("dept", "department", "departments"):
            key = "depts"
        if not sep or key not in keys or not value.strip():
            allowed = ", ".join(f"`{k}=`" for k in keys)
            raise CommandError(
                f"`{_show(token)}` is not an option here; use {allowed}.", example=example
            )
        options[key] = value.strip()
    return options


def parse_time(value: str) -> int:
    """``08:00`` → 480 (24-hour local time)."""
    match = _TIME.match(value.strip())
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise CommandError(
            f"`{_show(value)}` is not a time; use 24-hour HH:MM such as 08:00 or 17:30.",
            example=SUBSCRIBE_EXAMPLE,
        )
    return int(match.group(1)) * 60 + int(match.group(2))


def parse_departments(value: str | None) -> tuple[str, ...]:
    if not value or value.lower() in ("all", "*", "any"):
        return ()
    found: list[str] = []
    for part in value.split(","):
        name = part.strip().lower()
        if not name:
            continue
        try:
            department = Department(name).value
        except ValueError:
            raise CommandError(
                f"`{_show(part)}` is not a department; use one of: "
                + ", ".join(d.value for d in Department)
                + ".",
                example=SUBSCRIBE_EXAMPLE,
            ) from None
        if department not in found:
            found.append(department)
    return tuple(found)


def _channel(value: str | None) -> str | None:
    if value is None:
        return None
    match = _CHANNEL.match(value)
    if match is not None:
        return match.group(1) or match.group(2)
    name = value.removeprefix("#").strip().lower()
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,79}", name):
        raise CommandError(
            f"`{_show(value)}` is not a channel; pick it from the # menu.", example=CHANNEL_EXAMPLE
        )
    return f"#{name}"


def _show(value: str, limit: int = 60) -> str:
    text = value if len(value) <= limit else value[: limit - 1] + "…"
    return mrkdwn.escape(text).replace("`", "'")


def format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


# ---------------------------------------------------------------- running


async def run(
    command: DigestCommand,
    *,
    db: Database,
    digests: Digests,
    client: AsyncWebClient,
    find_channel: ChannelFinder,
    user_id: str,
    is_admin: bool,
    channel_id: str | None,
) -> Reply:
    if isinstance(command, DigestShow):
        return await _show_subscriptions(db, user_id=user_id, channel_id=channel_id)
    if isinstance(command, DigestSubscribe):
        target = await _target(command.channel, find_channel, is_admin=is_admin)
        tz = command.tz or (DEFAULT_TZ if target else await user_zone(client, user_id))
        now = utcnow()
        async with db.session() as session:
            await store.subscribe(
                session,
                target=target or user_id,
                is_channel=target is not None,
                send_minute=command.send_minute,
                tz=tz,
                departments=command.departments,
                created_by=user_id,
                done_through=last_due_day(now, command.send_minute, tz),
                now=now,
            )
        upcoming = last_due_day(now, command.send_minute, tz)
        next_send = occurrence(upcoming, command.send_minute, tz)
        if next_send <= now:
            next_send = occurrence(upcoming + timedelta(days=1), command.send_minute, tz)
        where = f"<#{target}>" if target else "your DMs"
        scope = ", ".join(command.departments) if command.departments else "every department"
        return text_reply(
            f":white_check_mark: The digest goes to {where} every day at "
            f"{format_minute(command.send_minute)} {mrkdwn.escape(tz)} ({scope}); on Mondays "
            f"it is the weekly report, with week-over-week changes. First one: "
            f"{mrkdwn.date(next_send)}."
        )
    if isinstance(command, DigestUnsubscribe):
        target = await _target(command.channel, find_channel, is_admin=is_admin)
        async with db.session() as session:
            removed = await store.unsubscribe(session, target=target or user_id)
        where = f"<#{target}>" if target else "you"
        if not removed:
            return text_reply(f"There was no digest subscription for {where}.")
        return text_reply(f"No more digests for {where}.")
    if isinstance(command, DigestNow):
        target = await _target(command.channel, find_channel, is_admin=is_admin)
        tz = await user_zone(client, user_id)
        window = window_now(utcnow(), DEFAULT_MINUTE, tz, weekly=command.weekly)

        async def send() -> None:
            channel = target or await digests.dm_channel(user_id)
            await digests.send(channel, window, departments=command.departments)

        digests.send_in_background(send(), what=f"digest now for {user_id}")
        where = f"<#{target}>" if target else "your DMs"
        return text_reply(f":hourglass_flowing_sand: The digest is on its way to {where}.")
    tz = await user_zone(client, user_id)
    window = window_now(utcnow(), DEFAULT_MINUTE, tz, weekly=command.weekly)
    return await digests.preview(window, departments=command.departments)


async def _target(
    channel: str | None, find_channel: ChannelFinder, *, is_admin: bool
) -> str | None:
    if channel is None:
        return None
    if not is_admin:
        raise NotAllowed("Only Earful admins can send the digest to a channel.")
    if channel.startswith("#"):
        return await find_channel(channel[1:])
    return channel


async def user_zone(client: AsyncWebClient, user_id: str) -> str:
    """The person's Slack time zone if Slack says and we know it, else UTC."""
    try:
        response = await client.users_info(user=user_id)
    except SlackApiError:
        return DEFAULT_TZ
    zone = str((response.get("user") or {}).get("tz") or "")
    try:
        return parse_zone(zone, example=SUBSCRIBE_EXAMPLE) if zone else DEFAULT_TZ
    except CommandError:
        return DEFAULT_TZ


async def _show_subscriptions(db: Database, *, user_id: str, channel_id: str | None) -> Reply:
    async with db.read() as session:
        mine = await store.get_subscription(session, target=user_id)
        here = await store.get_subscription(session, target=channel_id) if channel_id else None
    lines = []
    for subscription, where in ((mine, "your DMs"), (here, f"<#{channel_id}>")):
        if subscription is None:
            continue
        scope = ", ".join(subscription.departments) or "every department"
        lines.append(
            f"• {where}: daily at {format_minute(subscription.send_minute)} "
            f"{mrkdwn.escape(subscription.tz)} ({scope})"
        )
    if not lines:
        return text_reply(
            "No digest subscriptions here. `" + SUBSCRIBE_EXAMPLE + "` subscribes you."
        )
    return text_reply("*Digest subscriptions*\n" + "\n".join(lines))
