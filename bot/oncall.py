"""Follow-the-sun on-call: who covers a department right now, from hours in local time.

A shift is local wall-clock hours (``09:00-17:00``) in an IANA time zone on some days of the
week. A shift whose end is not after its start runs past midnight (``22:00-06:00``) and belongs
to the day it starts on: a Friday night shift still covers Saturday 03:00. Local times are
computed with zoneinfo from the UTC instant, so daylight-saving changes move a shift's UTC
window with the person's clock, and a 09:00-17:00 shift on a DST day is simply 7 or 9 hours.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from bot.errors import CommandError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAYS = 0b111_1111
WEEKDAYS = 0b001_1111
MINUTES_PER_DAY = 24 * 60

_HOURS = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


@dataclass(frozen=True, slots=True)
class Shift:
    user_id: str
    start_minute: int  # 0…1439, local
    end_minute: int  # 1…1440, local; <= start means the shift ends the next day
    tz: str
    days: int = ALL_DAYS  # bit 0 = Monday: the days the shift starts on

    @property
    def overnight(self) -> bool:
        return self.end_minute <= self.start_minute

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def starts_on(self, day: date) -> bool:
        return bool(self.days >> day.weekday() & 1)

    def covers(self, now: datetime) -> bool:
        """Whether the person is on call at the instant ``now``."""
        local = now.astimezone(self.zone())
        minute = local.hour * 60 + local.minute
        today = local.date()
        if not self.overnight:
            return self.starts_on(today) and self.start_minute <= minute < self.end_minute
        if self.starts_on(today) and minute >= self.start_minute:
            return True
        return self.starts_on(today - timedelta(days=1)) and minute < self.end_minute

    def window_on(self, day: date) -> tuple[datetime, datetime] | None:
        """The UTC instants of the shift that starts on local ``day``, or None if it doesn't."""
        if not self.starts_on(day):
            return None
        zone = self.zone()
        start = _local_instant(day, self.start_minute, zone)
        end_day = day + timedelta(days=1) if self.overnight else day
        end = _local_instant(end_day, self.end_minute, zone)
        return start, end


def _local_instant(day: date, minute: int, zone: ZoneInfo) -> datetime:
    if minute >= MINUTES_PER_DAY:
        day, minute = day + timedelta(days=1), minute - MINUTES_PER_DAY
    wall = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)
    # A wall time skipped by a spring-forward gap does not exist; round trip through UTC
    # lands on the first real instant after it, which is when the person's clock shows it.
    return wall.astimezone(UTC)


def on_call_now(shifts: Iterable[Shift], now: datetime) -> list[str]:
    """The people covering at ``now``, in rota order, each once."""
    return list(dict.fromkeys(s.user_id for s in shifts if s.covers(now)))


def next_on_call(shifts: Sequence[Shift], now: datetime) -> tuple[str, datetime] | None:
    """Who comes on next and when, within the coming week (for "nobody is on call now")."""
    best: tuple[str, datetime] | None = None
    for shift in shifts:
        local_today = now.astimezone(shift.zone()).date()
        for offset in range(-1, 8):
            window = shift.window_on(local_today + timedelta(days=offset))
            if window is None or window[0] <= now:
                continue
            if best is None or window[0] < best[1]:
                best = (shift.user_id, window[0])
            break
    return best


# ---------------------------------------------------------------- parsing (for commands)


def parse_hours(value: str, *, example: str) -> tuple[int, int]:
    """``09:00-17:00`` → (540, 1020); ``22:00-06:00`` runs overnight; ``00:00-24:00`` all day."""
    match = _HOURS.match(value.strip())
    if match is None:
        raise CommandError(
            f"`{_show(value)}` is not a time range; write hours like 09:00-17:00 (24-hour "
            "clock, local to the person), or 22:00-06:00 for a shift past midnight.",
            example=example,
        )
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise CommandError(
            f"`{_show(value)}` has an impossible time; hours go from 00:00 to 24:00.",
            example=example,
        )
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end or (start == 0 and end == MINUTES_PER_DAY):
        return 0, MINUTES_PER_DAY
    return start, end


@cache
def _zones_by_lower_name() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def parse_zone(value: str, *, example: str) -> str:
    """An IANA zone name, matched without regard to case; anything else is refused."""
    name = value.strip()
    canonical = _zones_by_lower_name().get(name.lower())
    if canonical is None:
        raise CommandError(
            f"`{_show(value)}` is not an IANA time zone; use a name like Europe/Paris, "
            "America/New_York, Asia/Tokyo or UTC.",
            example=example,
        )
    try:
        ZoneInfo(canonical)
    except (ZoneInfoNotFoundError, ValueError):
        raise CommandError(
            f"The time zone `{_show(value)}` is not installed here.", example=example
        ) from None
    return canonical


def parse_days(value: str, *, example: str) -> int:
    """``mon-fri``, ``sat,sun``, ``fri-mon`` (wraps), ``daily``/``all``, ``weekdays``."""
    text = value.strip().lower()
    if text in ("all", "daily", "every", "everyday", "mon-sun"):
        return ALL_DAYS
    if text in ("weekdays", "workdays"):
        return WEEKDAYS
    if text in ("weekends", "weekend"):
        return 0b110_0000
    mask = 0
    for part in (p.strip() for p in text.split(",")):
        first, sep, last = part.partition("-")
        a, b = _day(first, value, example), _day(last, value, example) if sep else None
        if b is None:
            mask |= 1 << a
            continue
        day = a
        while True:
            mask |= 1 << day
            if day == b:
                break
            day = (day + 1) % 7
    return mask


def _day(word: str, whole: str, example: str) -> int:
    key = word.strip()[:3]
    if key not in DAY_NAMES or not word.strip():
        raise CommandError(
            f"`{_show(whole)}` is not a set of days; use mon-fri, sat,sun, fri-mon or daily.",
            example=example,
        )
    return DAY_NAMES.index(key)


# ---------------------------------------------------------------- formatting


def format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def format_hours(shift: Shift) -> str:
    if shift.start_minute == 0 and shift.end_minute == MINUTES_PER_DAY:
        return "all day"
    return f"{format_minute(shift.start_minute)}–{format_minute(shift.end_minute)}"


def format_days(days: int) -> str:
    if days == ALL_DAYS:
        return "every day"
    if days == WEEKDAYS:
        return "Mon–Fri"
    chosen = [i for i in range(7) if days >> i & 1]
    runs: list[tuple[int, int]] = []
    for i in chosen:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    names = [n.capitalize() for n in DAY_NAMES]
    return ", ".join(names[a] if a == b else f"{names[a]}–{names[b]}" for a, b in runs)


def _show(value: str, limit: int = 60) -> str:
    value = value.replace("`", "'").replace("\n", " ")
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
