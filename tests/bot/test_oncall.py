"""Follow-the-sun on-call: who covers when, across zones, midnight and DST; command parsing."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from bot.errors import CommandError
from bot.oncall import ALL_DAYS, WEEKDAYS, Shift, next_on_call, on_call_now, parse_days
from bot.sla_commands import OnCallClear, OnCallRemove, OnCallSet, OnCallShow, parse_oncall
from watchers.departments import Department

ANA = Shift("U0ANA", 9 * 60, 17 * 60, "Europe/Paris", WEEKDAYS)
KAI = Shift("U0KAI", 9 * 60, 17 * 60, "Asia/Tokyo", WEEKDAYS)
NED = Shift("U0NED", 9 * 60, 17 * 60, "America/New_York", WEEKDAYS)
NIGHT = Shift("U0OWL", 22 * 60, 6 * 60, "America/New_York", 1 << 4)  # Friday nights only


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        ("2026-06-10T01:00", ["U0KAI"]),  # Wednesday 10:00 in Tokyo, night in Europe/US
        ("2026-06-10T08:00", ["U0ANA"]),  # 10:00 Paris (CEST), 17:00 Tokyo: Kai just left
        ("2026-06-10T14:00", ["U0ANA", "U0NED"]),  # 16:00 Paris, 10:00 New York
        ("2026-06-10T20:00", ["U0NED"]),  # 16:00 New York
        ("2026-06-10T23:30", []),  # a gap nobody covers
        ("2026-06-13T10:00", []),  # Saturday: weekday shifts don't start
    ],
)
def test_follow_the_sun_picks_whoever_is_inside_their_local_hours(
    instant: str, expected: list[str]
) -> None:
    assert on_call_now([ANA, KAI, NED], at(instant)) == expected


def test_an_overnight_shift_belongs_to_the_day_it_starts() -> None:
    # Friday 22:00 New York (EDT, UTC-4) is Saturday 02:00 UTC.
    assert NIGHT.covers(at("2026-06-13T02:00"))
    # Saturday 05:59 New York: still Friday's shift.
    assert NIGHT.covers(at("2026-06-13T09:59"))
    assert not NIGHT.covers(at("2026-06-13T10:00"))  # 06:00: over
    # Thursday night: the shift only starts on Fridays.
    assert not NIGHT.covers(at("2026-06-12T02:00"))
    # Saturday night 23:00: Saturday is not a start day.
    assert not NIGHT.covers(at("2026-06-14T03:00"))


def test_daylight_saving_moves_the_utc_window_with_the_local_clock() -> None:
    # Paris moves from UTC+1 to UTC+2 on Sunday 2026-03-29.
    every_day = Shift("U0ANA", 9 * 60, 17 * 60, "Europe/Paris", ALL_DAYS)
    assert every_day.window_on(date(2026, 3, 28)) == (
        at("2026-03-28T08:00"),
        at("2026-03-28T16:00"),
    )
    assert every_day.window_on(date(2026, 3, 29)) == (
        at("2026-03-29T07:00"),
        at("2026-03-29T15:00"),
    )
    assert every_day.covers(at("2026-03-28T08:30"))
    assert not every_day.covers(at("2026-03-29T15:30"))  # 17:30 local after the change
    # An overnight shift across the spring-forward night is an hour shorter in real time.
    night = Shift("U0OWL", 22 * 60, 6 * 60, "Europe/Paris", ALL_DAYS)
    start, end = night.window_on(date(2026, 3, 28)) or (None, None)
    assert (start, end) == (at("2026-03-28T21:00"), at("2026-03-29T04:00"))
    assert night.covers(at("2026-03-29T03:59")) and not night.covers(at("2026-03-29T04:00"))
    # New York falls back on 2026-11-01: 01:30 happens twice, both inside 22:00-06:00.
    ny = Shift("U0OWL", 22 * 60, 6 * 60, "America/New_York", ALL_DAYS)
    assert ny.covers(at("2026-11-01T05:30")) and ny.covers(at("2026-11-01T06:30"))
    assert ny.window_on(date(2026, 10, 31)) == (at("2026-11-01T02:00"), at("2026-11-01T11:00"))


def test_next_on_call_when_nobody_covers_now() -> None:
    assert next_on_call([ANA, KAI], at("2026-06-10T23:30")) == ("U0KAI", at("2026-06-11T00:00"))
    assert next_on_call([], at("2026-06-10T23:30")) is None


def test_days_parse_ranges_lists_and_wrapping() -> None:
    assert parse_days("mon-fri", example="x") == WEEKDAYS
    assert parse_days("fri-mon", example="x") == 0b111_0001
    assert parse_days("sat,sun", example="x") == 0b110_0000
    assert parse_days("daily", example="x") == ALL_DAYS
    with pytest.raises(CommandError, match="not a set of days"):
        parse_days("mon-funday", example="x")


def test_oncall_command_per_person_and_shared_options() -> None:
    command = parse_oncall(
        [
            "support",
            "<@U0ANA>:09:00-17:00@europe/paris",
            "<@U0KAI>",
            "<@U0OWL>:22:00-06:00@America/New_York:fri",
            "hours=08:00-16:00",
            "tz=Asia/Tokyo",
            "days=mon-fri",
        ]
    )
    assert isinstance(command, OnCallSet) and command.mode == "replace"
    assert command.department is Department.SUPPORT
    assert command.shifts == (
        Shift("U0ANA", 540, 1020, "Europe/Paris", WEEKDAYS),
        Shift("U0KAI", 480, 960, "Asia/Tokyo", WEEKDAYS),
        Shift("U0OWL", 1320, 360, "America/New_York", 1 << 4),
    )
    assert parse_oncall([]) == OnCallShow()
    assert parse_oncall(["pr", "clear"]) == OnCallClear(Department.PR)
    assert parse_oncall(["pr", "remove", "<@U0ANA>"]) == OnCallRemove(Department.PR, "U0ANA")
    added = parse_oncall(["pr", "add", "<@U0ANA>"])
    assert isinstance(added, OnCallSet) and added.mode == "add"
    assert added.shifts == (Shift("U0ANA", 0, 1440, "UTC", ALL_DAYS),)


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (["support", "<@U0ANA>", "tz=Europe/Pariss"], "not an IANA time zone"),
        (["support", "<@U0ANA>@Mars/Olympus"], "not an IANA time zone"),
        (["support", "<@U0ANA>", "hours=9-17"], "not a time range"),
        (["support", "<@U0ANA>", "hours=25:00-26:00"], "impossible time"),
        (["support", "@ana"], "Mention people with @"),
        (["support", "<@U0ANA>", "<@U0ANA>"], "listed twice"),
        (["supprot", "<@U0ANA>"], "not a department"),
        (["support"], "Say who is on call"),
    ],
)
def test_oncall_command_errors_say_what_is_wrong(tokens: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message) as raised:
        parse_oncall(tokens)
    assert raised.value.example
