from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from bot.command_parser import parse_command
from bot.errors import CommandError, NotAllowed, NotFound
from bot.mutes import Mutes, matching_rule, rule_matches, set_aside_muted
from bot.queue_commands import MuteAdd, MuteKind, MuteList, MuteRemove
from storage import leads as lead_store
from storage import mentions as mention_store
from storage import mutes as mute_store
from storage.db import Database
from storage.models import Event, Mention, MuteRule
from watchers.departments import Department

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ADMIN = "U0ADMIN"


def make(external_id: str = "1", **fields: Any) -> Mention:
    values: dict[str, Any] = {
        "watch_name": "acme",
        "watch_kind": "brand",
        "source": "reddit:r/acme",
        "origin": "reddit",
        "external_id": external_id,
        "url": "https://blog.spam.example/p/1",
        "author": "u/SpamBot",
        "title": "Free   CRYPTO giveaway",
        "text": "click here",
        "department": "support",
        "priority": "P3",
        "found_at": NOW,
        "updated_at": NOW,
        "canonical_url": "https://blog.spam.example/p/1",
        "minhash": b"\x00\x01",
    }
    values.update(fields)
    return Mention(**values)


def rule(kind: str, value: str, **fields: Any) -> MuteRule:
    return MuteRule(id=fields.pop("id", 1), kind=kind, value=value, created_by="U1", **fields)


# ----------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mute author=@SpamBot", MuteAdd(MuteKind.AUTHOR, "spambot")),
        ("mute author=u/SpamBot", MuteAdd(MuteKind.AUTHOR, "spambot")),
        ("mute domain=https://www.Spam.Example/x?y", MuteAdd(MuteKind.DOMAIN, "spam.example")),
        (
            'mute phrase="Free   Crypto" source=reddit for=2w dept=pr',
            MuteAdd(
                MuteKind.PHRASE,
                "free crypto",
                source="reddit",
                department=Department.PR,
                duration=timedelta(days=14),
            ),
        ),
        (
            "mute author=x source=reddit:r/Acme",
            MuteAdd(MuteKind.AUTHOR, "x", source="reddit:r/acme"),
        ),
        ("unmute #12", MuteRemove(12)),
        ("mutes", MuteList()),
    ],
)
def test_parses_mute_commands(text: str, expected: object) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mute", "Say what to mute"),
        ("mute spambot", "say what to mute"),
        ("mute author=a domain=b.com", "one thing at a time"),
        ("mute domain=localhost", "not a domain"),
        ('mute phrase="ab"', "at least 3"),
        ("mute author=x for=forever", "not a duration"),
        ("mute author=x for=400d", "between a minute"),
        ("mute author=x source=myspace", "not a source"),
        ("mute author=x colour=red", "don't know the option"),
        ("unmute spambot", "number of a mute rule"),
    ],
)
def test_rejects_bad_mute_commands(text: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        parse_command(text)


# ----------------------------------------------------------------- matching


def test_author_domain_and_phrase_rules() -> None:
    post = make()
    assert rule_matches(rule("author", "spambot"), post)
    assert not rule_matches(rule("author", "spambot2"), post)
    assert rule_matches(rule("domain", "spam.example"), post)
    assert rule_matches(rule("domain", "blog.spam.example"), post)
    assert not rule_matches(rule("domain", "notspam.example"), make(url="https://x.example"))
    assert not rule_matches(rule("domain", "spam.example"), make(url="https://notspam.example/"))
    assert rule_matches(rule("phrase", "free crypto giveaway"), post)
    assert not rule_matches(rule("phrase", "crypto free"), post)
    assert not rule_matches(rule("author", "spambot"), make(author=None))


def test_source_and_department_narrow_a_rule() -> None:
    post = make()
    assert rule_matches(rule("author", "spambot", source="reddit"), post)
    assert rule_matches(rule("author", "spambot", source="reddit:r/acme"), post)
    assert not rule_matches(rule("author", "spambot", source="reddit:r/other"), post)
    assert not rule_matches(rule("author", "spambot", source="hn"), post)
    assert rule_matches(rule("author", "spambot", department="support"), post)
    assert not rule_matches(rule("author", "spambot", department="pr"), post)


def test_the_oldest_matching_rule_takes_the_credit() -> None:
    rules = [
        rule("author", "other", id=1),
        rule("phrase", "giveaway", id=2),
        rule("author", "spambot", id=3),
    ]
    found = matching_rule(rules, make())
    assert found is not None and found.id == 2


# ----------------------------------------------------------------- at ingest


async def _add_rule(db: Database, **fields: Any) -> int:
    values: dict[str, Any] = {
        "kind": "author",
        "value": "spambot",
        "source": None,
        "department": None,
        "created_by": ADMIN,
        "now": NOW - timedelta(days=1),
        "expires_at": None,
    }
    values.update(fields)
    async with db.session() as session:
        added = await mute_store.add_rule(session, **values)
    assert added.id is not None
    return added.id


async def test_muted_mentions_are_stored_with_an_event_and_the_rest_pass(db: Database) -> None:
    rule_id = await _add_rule(db)
    await _add_rule(db, value="someone", expires_at=NOW - timedelta(minutes=1))  # expired
    removed = await _add_rule(db, value="goodperson")
    async with db.session() as session:
        assert await mute_store.remove_rule(session, rule_id=removed, removed_by=ADMIN, now=NOW)
    batch = [
        (make("1"), "keys-1"),
        (make("2", author="someone"), "keys-2"),
        (make("3", author="GoodPerson"), "keys-3"),
        (make("4", author="@spambot"), "keys-4"),
    ]
    kept = await set_aside_muted(db, batch, now=NOW)
    assert [(m.external_id, extra) for m, extra in kept] == [("2", "keys-2"), ("3", "keys-3")]
    async with db.session() as session:
        muted = (await session.execute(select(Mention))).scalars().all()
        events = (await session.execute(select(Event).order_by(Event.id))).scalars().all()
        stored_rule = await mute_store.get_rule(session, rule_id=rule_id)
    assert sorted((m.external_id, m.state) for m in muted) == [("1", "muted"), ("4", "muted")]
    # Out of every story: a later copy by someone else must not be folded under a muted post.
    assert all(m.canonical_url is None and m.minhash is None for m in muted)
    assert [(e.action, e.to_state, e.note) for e in events] == [
        ("mute", "muted", f"muted by rule #{rule_id}"),
        ("mute", "muted", f"muted by rule #{rule_id}"),
    ]
    assert stored_rule is not None and stored_rule.hits == 2 and stored_rule.last_hit_at == NOW

    # The same posts seen again (another poller got there first) are not counted twice.
    again = await set_aside_muted(db, [(make("1"), "keys-1")], now=NOW)
    assert again == []
    async with db.session() as session:
        stored_rule = await mute_store.get_rule(session, rule_id=rule_id)
    assert stored_rule is not None and stored_rule.hits == 2


async def test_without_rules_every_mention_passes(db: Database) -> None:
    batch = [(make("1"), None)]
    assert await set_aside_muted(db, batch, now=NOW) == batch
    async with db.session() as session:
        assert await mention_store.count_mentions(session) == 0


# ----------------------------------------------------------------- who may mute


@pytest.fixture
def mutes(db: Database) -> Mutes:
    # Nothing here calls Slack; the client only has to exist.
    return Mutes(db, admins={ADMIN}, client=AsyncWebClient(token="xoxb-unused"), clock=lambda: NOW)


async def test_admins_mute_everywhere_leads_their_department_others_not(
    db: Database, mutes: Mutes
) -> None:
    async with db.session() as session:
        await lead_store.set_lead(session, department="support", user_id="U0LEAD", updated_by=None)
        await lead_store.set_lead(session, department="pr", user_id="U0TWO", updated_by=None)
        await lead_store.set_lead(session, department="hr", user_id="U0TWO", updated_by=None)
    with pytest.raises(NotAllowed, match="admins and department leads"):
        await mutes.mute(MuteAdd(MuteKind.AUTHOR, "x"), user_id="U0BOB")
    await mutes.mute(MuteAdd(MuteKind.AUTHOR, "a"), user_id=ADMIN)
    await mutes.mute(MuteAdd(MuteKind.AUTHOR, "b"), user_id="U0LEAD")
    with pytest.raises(NotAllowed, match="not for pr"):
        await mutes.mute(MuteAdd(MuteKind.AUTHOR, "c", department=Department.PR), user_id="U0LEAD")
    with pytest.raises(CommandError, match="dept="):
        await mutes.mute(MuteAdd(MuteKind.AUTHOR, "d"), user_id="U0TWO")
    await mutes.mute(
        MuteAdd(MuteKind.AUTHOR, "e", duration=timedelta(days=1), department=Department.HR),
        user_id="U0TWO",
    )
    async with db.session() as session:
        rules = await mute_store.active_rules(session, now=NOW)
    assert [(r.value, r.department, r.expires_at) for r in rules] == [
        ("a", None, None),
        ("b", "support", None),
        ("e", "hr", NOW + timedelta(days=1)),
    ]
    listed = await mutes.list()
    assert listed.text == "3 mute rule(s)"


async def test_unmute_takes_the_author_the_lead_or_an_admin(db: Database, mutes: Mutes) -> None:
    async with db.session() as session:
        await lead_store.set_lead(session, department="support", user_id="U0LEAD", updated_by=None)
    by_lead = await _add_rule(db, department="support", created_by="U0LEAD")
    by_admin = await _add_rule(db, department="support", created_by=ADMIN)
    global_rule = await _add_rule(db, created_by=ADMIN)
    with pytest.raises(NotAllowed):
        await mutes.unmute(global_rule, user_id="U0LEAD")
    with pytest.raises(NotAllowed):
        await mutes.unmute(by_lead, user_id="U0BOB")
    assert "removed" in (await mutes.unmute(by_admin, user_id="U0LEAD")).text
    assert "removed" in (await mutes.unmute(by_lead, user_id="U0LEAD")).text
    assert "removed" in (await mutes.unmute(global_rule, user_id=ADMIN)).text
    with pytest.raises(NotFound):
        await mutes.unmute(global_rule, user_id=ADMIN)
    assert "Nothing is muted" in (await mutes.list()).text
