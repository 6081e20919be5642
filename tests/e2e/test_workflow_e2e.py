"""People work an alert from Slack: every transition and permission, through the real app.

Each click, menu choice, reaction and slash command is a signed request to the running Bolt
app; the card, the thread and the ephemeral notes are read back from the fake Slack.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from bot.cards import ActionValue
from bot.ids import ActionId, BlockId
from storage import mentions as mention_store
from storage import outbox
from storage.models import Event, Mention, OutboxKind
from storage.types import utcnow
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_requests import JSON, event_callback, post_signed, reaction_added
from tests.support.earful import Earful

ADMIN = "U0ALICE"  # an Earful admin (EARFUL_ADMINS in tests/support/earful.py)
BOB = "U0BOB"
CAROL = "U0CAROL"
DANA = "U0DANA"  # made the support lead in some tests


@pytest.fixture(autouse=True)
def more_people(fake_slack: FakeSlackApi) -> None:
    fake_slack.add_user(CAROL, "carol", real_name="Carol Chen")
    fake_slack.add_user(DANA, "dana", real_name="Dana Diaz")


async def wait_until(predicate: Callable[[], Awaitable[bool]], within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def post_alert(
    earful: Earful,
    *,
    external_id: str = "p1",
    department: str = "support",
    channel: str = "C0SUPPORT",
) -> tuple[int, dict[str, Any]]:
    """A stored mention whose alert Earful posts through its outbox; returns it and the card."""
    reply = await earful.command(f"route {department} <#{channel}|{department}>", user_id=ADMIN)
    assert "now go to" in reply["text"], reply
    mention = Mention(
        watch_name="acme",
        watch_kind="brand",
        source="rss:https://example.com/feed.xml",
        origin="rss:https://example.com/feed.xml",
        external_id=external_id,
        url=f"https://example.com/{external_id}",
        title="Acme lost my order",
        text="Acme support never answered my ticket about a lost order",
        matched_terms=["acme"],
        department=department,
        priority="P2",
        found_at=utcnow(),
        updated_at=utcnow(),
    )
    async with earful.runtime.db.session() as session:
        [stored] = await mention_store.add_mentions(session, mentions=[mention])
        outbox.enqueue(session, kind=OutboxKind.ALERT, mention_id=stored.id)
    assert stored.id is not None
    earful.runtime.services.delivery.kick()
    alert: dict[str, Any] = {}

    async def posted() -> bool:
        nonlocal alert
        async with earful.runtime.db.session() as session:
            current = await mention_store.get_mention(session, mention_id=stored.id or 0)
        if current is None or not current.ts:
            return False
        alert = card(earful.slack, channel, current.ts)
        return True

    await wait_until(posted)
    return stored.id, alert


def card(fake: FakeSlackApi, channel: str, ts: str) -> dict[str, Any]:
    [message] = [m for m in fake.messages(channel) if m["ts"] == ts]
    return message


def state_line(message: dict[str, Any]) -> str:
    for block in message.get("blocks", []):
        if block.get("block_id") == BlockId.ALERT_STATE:
            return str(block["elements"][0]["text"])
    raise AssertionError("the card has no state line")


def action_ids(message: dict[str, Any]) -> list[str]:
    return [
        element["action_id"]
        for block in message.get("blocks", [])
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def option(message: dict[str, Any], action_id: ActionId, **wanted: str) -> str:
    """The value of the menu option whose ActionValue has ``wanted`` (reason= or department=)."""
    for block in message["blocks"]:
        for element in block.get("elements", []) or []:
            if element.get("action_id") != action_id.value:
                continue
            for choice in element["options"]:
                decoded = ActionValue.decode(choice["value"])
                if all(getattr(decoded, k) == v for k, v in wanted.items()):
                    return str(choice["value"])
    raise AssertionError(f"no {action_id} option with {wanted}")


def thread(fake: FakeSlackApi, channel: str, ts: str) -> list[str]:
    return [m["text"] for m in fake.messages(channel) if m.get("thread_ts") == ts and m["ts"] != ts]


async def events_of(earful: Earful, mention_id: int) -> list[Event]:
    async with earful.runtime.db.session() as session:
        return await mention_store.events_for(session, mention_id=mention_id)


async def mention_now(earful: Earful, mention_id: int) -> Mention:
    async with earful.runtime.db.session() as session:
        mention = await mention_store.get_mention(session, mention_id=mention_id)
    assert mention is not None
    return mention


class Desk:
    """One alert in one channel, worked through the real app."""

    def __init__(self, earful: Earful, mention_id: int, channel: str, alert: dict[str, Any]):
        self.earful = earful
        self.fake = earful.slack
        self.mention_id = mention_id
        self.channel = channel
        self.ts = str(alert["ts"])
        self.transitions = 0  # successful ones: each updates the card and replies in the thread
        self._told_before: dict[str, int] = {}  # ephemeral notes each person had already

    @property
    def card(self) -> dict[str, Any]:
        return card(self.fake, self.channel, self.ts)

    async def click(
        self,
        action_id: ActionId,
        user: str,
        *,
        on: dict[str, Any] | None = None,
        **menu: str,
    ) -> None:
        message = on or self.card
        selected = option(message, action_id, **menu) if menu else None
        status = await self.earful.click(
            self.channel, message, action_id, user_id=user, selected_option=selected
        )
        assert status == 200

    async def react(self, user: str, emoji: str, ts: str | None = None) -> None:
        body = reaction_added(user, emoji, self.channel, ts or self.ts)
        assert await self.earful.event(body) == 200

    async def succeeds(self, state_words: str) -> None:
        """The last action went through: the card says ``state_words`` and the thread grew."""
        self.transitions += 1
        await wait_until(self.card_says(state_words))
        await wait_until(self.thread_has(self.transitions))

    async def refused(self, user: str, *words: str) -> str:
        """The last action was refused: ``user`` was told why, ephemerally, and nothing moved."""
        before = self._told_before.get(user, 0)

        async def told() -> bool:
            return len(self.fake.ephemerals(user=user)) > before

        # The refusal is sent after the ack; wait for it rather than for a fixed time.
        await wait_until(told)
        notes = self.fake.ephemerals(user=user)
        assert len(notes) == before + 1, notes
        self._told_before[user] = len(notes)
        note = notes[-1]
        assert note["channel"] == self.channel
        for word in words:
            assert word in note["text"], note["text"]
        assert len(await events_of(self.earful, self.mention_id)) == self.transitions
        return str(note["text"])

    def card_says(self, words: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return words in state_line(self.card)

        return check

    def thread_has(self, count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return len(thread(self.fake, self.channel, self.ts)) >= count

        return check


async def open_desk(earful: Earful, **kwargs: str) -> Desk:
    mention_id, alert = await post_alert(earful, **kwargs)
    return Desk(earful, mention_id, kwargs.get("channel", "C0SUPPORT"), alert)


# --- every transition ----------------------------------------------------------------------


async def test_every_transition_from_the_card(earful: Earful) -> None:
    desk = await open_desk(earful)
    first = desk.card
    assert state_line(first).startswith("🆕 *New* — unclaimed")
    assert action_ids(first)[:2] == [ActionId.CLAIM, ActionId.ANSWER]

    await desk.click(ActionId.CLAIM, BOB)
    await desk.succeeds(f"*Claimed* by <@{BOB}>")
    assert ActionId.CLAIM not in action_ids(desk.card)

    await desk.click(ActionId.ANSWER, BOB)
    await desk.succeeds(f"*Answered* by <@{BOB}>")
    assert ActionId.ANSWER not in action_ids(desk.card)

    await desk.click(ActionId.ESCALATE, CAROL)  # anyone may raise the alarm
    await desk.succeeds("*Escalated* (level 1)")
    assert f"claimed by <@{BOB}>" in state_line(desk.card)
    await desk.click(ActionId.ESCALATE, CAROL)
    await desk.succeeds("*Escalated* (level 2)")

    await desk.click(ActionId.RESOLVE, BOB)
    await desk.succeeds(f"*Resolved* by <@{BOB}>")
    assert action_ids(desk.card) == [ActionId.REOPEN, ActionId.OPEN_ORIGINAL]

    await desk.click(ActionId.REOPEN, CAROL)
    await desk.succeeds(f"*New* — unclaimed · reopened by <@{CAROL}>")

    await desk.click(ActionId.DISMISS, CAROL, reason="not_ours")
    await desk.succeeds(f"*Dismissed* by <@{CAROL}>")
    assert "(not ours)" in state_line(desk.card)

    events = await events_of(earful, desk.mention_id)
    assert [(e.actor, e.action, e.from_state, e.to_state, e.note, e.reason) for e in events] == [
        (BOB, "claim", "new", "claimed", None, None),
        (BOB, "answer", "claimed", "answered", None, None),
        (CAROL, "escalate", "answered", "escalated", "level 1", None),
        (CAROL, "escalate", "escalated", "escalated", "level 2", None),
        (BOB, "resolve", "escalated", "resolved", None, None),
        (CAROL, "reopen", "resolved", "new", None, None),
        (CAROL, "dismiss", "new", "dismissed", "not ours", "not_ours"),
    ]
    # One short reply per transition, in order, in the alert's thread.
    assert thread(earful.slack, desk.channel, desk.ts) == [
        f"👀 <@{BOB}> claimed this.",
        f"💬 <@{BOB}> answered this.",
        f"🚨 <@{CAROL}> escalated this: level 1",
        f"🚨 <@{CAROL}> escalated this: level 2",
        f"✅ <@{BOB}> resolved this.",
        f"🔄 <@{CAROL}> reopened this.",
        f"🚫 <@{CAROL}> dismissed this: not ours",
    ]
    assert earful.slack.ephemerals() == []


async def test_reroute_moves_the_alert_and_leaves_a_pointer(earful: Earful) -> None:
    await earful.command("route product <#C0PRODUCT|product>", user_id=ADMIN)
    desk = await open_desk(earful)
    await desk.click(ActionId.CLAIM, BOB)
    await desk.succeeds("*Claimed*")

    await desk.click(ActionId.REROUTE, CAROL, department="product")
    await desk.refused(CAROL, f"*claimed* by <@{BOB}>", "only they", "admin", "reroute")

    await desk.click(ActionId.REROUTE, BOB, department="product")

    async def moved() -> bool:
        return bool(earful.slack.messages("C0PRODUCT", include_replies=False))

    await wait_until(moved)
    [new_alert] = earful.slack.messages("C0PRODUCT", include_replies=False)
    assert state_line(new_alert).startswith("🆕 *New* — unclaimed · rerouted by")
    assert "(support → product)" in state_line(new_alert)
    # The old card says where the mention went and can no longer be acted on.
    await wait_until(lambda: _retired(earful.slack, desk.channel, desk.ts))
    old = desk.card
    assert "Rerouted to Product" in json.dumps(old["blocks"], ensure_ascii=False)
    assert action_ids(old) == []
    # The new department reads in the new alert's thread where it came from.
    await wait_until(lambda: _has_thread(earful.slack, "C0PRODUCT", new_alert["ts"]))
    assert thread(earful.slack, "C0PRODUCT", new_alert["ts"]) == [
        f"↪️ <@{BOB}> rerouted this to Product: support → product"
    ]
    mention = await mention_now(earful, desk.mention_id)
    assert (mention.department, mention.state, mention.owner) == ("product", "new", None)
    assert (mention.channel, mention.ts) == ("C0PRODUCT", new_alert["ts"])

    # The moved alert is worked like any other, by its new department.
    moved_desk = Desk(earful, desk.mention_id, "C0PRODUCT", new_alert)
    await moved_desk.click(ActionId.CLAIM, CAROL)
    await wait_until(moved_desk.card_says(f"*Claimed* by <@{CAROL}>"))
    actions = [e.action for e in await events_of(earful, desk.mention_id)]
    assert actions == ["claim", "reroute", "claim"]


async def _retired(fake: FakeSlackApi, channel: str, ts: str) -> bool:
    return "Rerouted to" in json.dumps(card(fake, channel, ts)["blocks"], ensure_ascii=False)


async def _has_thread(fake: FakeSlackApi, channel: str, ts: str) -> bool:
    return bool(thread(fake, channel, ts))


# --- who may do what -------------------------------------------------------------------------


async def test_permissions_are_checked_on_the_server(earful: Earful) -> None:
    desk = await open_desk(earful)
    unclaimed = desk.card
    await desk.click(ActionId.CLAIM, BOB)
    await desk.succeeds(f"*Claimed* by <@{BOB}>")

    # Someone else clicking Claim on the (stale) card is told who has it.
    await desk.click(ActionId.CLAIM, CAROL, on=unclaimed)
    await desk.refused(CAROL, f"<@{BOB}> has already claimed this", "*claimed*")
    # Carol may not answer, resolve or dismiss Bob's mention: the buttons are on her screen,
    # the server says no and says why.
    for action_id, menu in (
        (ActionId.ANSWER, {}),
        (ActionId.RESOLVE, {}),
        (ActionId.DISMISS, {"reason": "spam"}),
    ):
        await desk.click(action_id, CAROL, **menu)
        text = await desk.refused(CAROL, f"*claimed* by <@{BOB}>", "the department lead")
        assert "admin" in text
    assert (await mention_now(earful, desk.mention_id)).state == "claimed"

    # Leads are set by admins only, and shown to everyone.
    denied = await earful.command(f"lead support <@{BOB}|bob>", user_id=BOB)
    assert "admin" in denied["text"].lower()
    assert "<@" not in json.dumps((await earful.command("leads", user_id=BOB))["blocks"])
    made = await earful.command(f"lead support <@{DANA}|dana>", user_id=ADMIN)
    assert f"<@{DANA}> now leads *support*" in made["text"]
    leads = json.dumps(await earful.command("leads", user_id=CAROL), ensure_ascii=False)
    assert f"*support* → <@{DANA}>" in leads and "*pr* → _no lead_" in leads
    bad = await earful.command("lead support dana", user_id=ADMIN)
    assert "not a person" in bad["text"] and "Example" in bad["text"]
    bad = await earful.command(f"lead mars <@{DANA}>", user_id=ADMIN)
    assert "not a department" in bad["text"]

    # Now the refusal names the support lead, and the lead may act on Bob's mention.
    await desk.click(ActionId.RESOLVE, CAROL)
    await desk.refused(CAROL, "the support lead")
    await desk.click(ActionId.ANSWER, DANA)
    await desk.succeeds(f"*Answered* by <@{BOB}>")  # Bob still holds it
    await desk.click(ActionId.RESOLVE, DANA)
    await desk.succeeds("*Resolved*")

    # A closed mention refuses everything but Reopen, saying where it stands.
    await desk.click(ActionId.RESOLVE, CAROL, on=unclaimed)
    await desk.refused(CAROL, f"already *resolved*, held by <@{BOB}>", "Reopen it first")

    # Anyone may reopen; an admin may then dismiss a mention Bob claimed again.
    await desk.click(ActionId.REOPEN, CAROL)
    await desk.succeeds("*New*")
    await desk.click(ActionId.CLAIM, BOB)
    await desk.succeeds("*Claimed*")
    await desk.click(ActionId.DISMISS, ADMIN, reason="spam")
    await desk.succeeds(f"*Dismissed* by <@{ADMIN}>")

    # Removing the lead takes the power away again.
    removed = await earful.command("lead support none", user_id=ADMIN)
    assert "no lead any more" in removed["text"]
    await desk.click(ActionId.REOPEN, BOB)
    await desk.succeeds("*New*")
    await desk.click(ActionId.CLAIM, BOB)
    await desk.succeeds("*Claimed*")
    await desk.click(ActionId.RESOLVE, DANA)
    await desk.refused(DANA, "the department lead")

    actors = [(e.action, e.actor) for e in await events_of(earful, desk.mention_id)]
    assert actors == [
        ("claim", BOB),
        ("answer", DANA),
        ("resolve", DANA),
        ("reopen", CAROL),
        ("claim", BOB),
        ("dismiss", ADMIN),
        ("reopen", BOB),
        ("claim", BOB),
    ]


async def test_a_dismissal_needs_a_reason(earful: Earful) -> None:
    desk = await open_desk(earful)
    # A card posted before Dismiss became a menu sends a plain button value, with no reason.
    status = await earful.click(
        desk.channel,
        {"ts": desk.ts, "text": ""},
        ActionId.DISMISS,
        user_id=BOB,
        value=ActionValue(desk.mention_id).encode(),
    )
    assert status == 200
    await desk.refused(BOB, "Say why you dismiss it", "noise", "not ours", "spam")
    assert (await mention_now(earful, desk.mention_id)).state == "new"


# --- reactions ---------------------------------------------------------------------------------


async def test_reactions_act_like_the_buttons(earful: Earful) -> None:
    desk = await open_desk(earful)
    await desk.react(BOB, "eyes")
    await desk.succeeds(f"*Claimed* by <@{BOB}>")
    await desk.react(CAROL, "rotating_light")
    await desk.succeeds("*Escalated* (level 1)")
    await desk.react(CAROL, "rotating_light::skin-tone-3")  # tones do not change the meaning
    await desk.succeeds("*Escalated* (level 2)")

    # Same rules as the buttons: Carol may not resolve Bob's mention, and is told so.
    await desk.react(CAROL, "white_check_mark")
    text = await desk.refused(CAROL, f"*escalated* (level 2), held by <@{BOB}>")
    assert text.startswith("Your :white_check_mark: changed nothing.")

    # Other reactions, reactions elsewhere and removed reactions do nothing at all.
    await desk.react(CAROL, "tada")
    reply_ts = next(
        m["ts"]
        for m in earful.slack.messages(desk.channel)
        if m.get("thread_ts") == desk.ts and m["ts"] != desk.ts
    )
    await desk.react(BOB, "white_check_mark", ts=reply_ts)  # Earful's reply, not an alert
    await desk.react(BOB, "white_check_mark", ts="1600000000.000001")  # no such message
    removed = {**reaction_added(BOB, "eyes", desk.channel, desk.ts), "type": "reaction_removed"}
    response = await post_signed(
        earful.http, earful.url, event_callback(removed), JSON, earful.signer
    )
    assert response.status == 200
    # The events above are acked before they are handled; one more that does act, then check
    # that it is the only thing that happened since.
    await desk.react(BOB, "heavy_check_mark")
    await desk.succeeds(f"*Resolved* by <@{BOB}>")
    assert [e.action for e in await events_of(earful, desk.mention_id)] == [
        "claim",
        "escalate",
        "escalate",
        "resolve",
    ]
    assert len(earful.slack.ephemerals()) == 1

    # A closed alert refuses a claim, and says where it stands.
    await desk.react(CAROL, "eyes")
    await desk.refused(CAROL, f"already *resolved*, held by <@{BOB}>", "Reopen it first")


async def test_dismissing_by_reaction_records_noise(earful: Earful) -> None:
    desk = await open_desk(earful)
    await desk.react(CAROL, "no_entry_sign")
    await desk.succeeds(f"*Dismissed* by <@{CAROL}>")
    assert "(noise)" in state_line(desk.card)
    [event] = await events_of(earful, desk.mention_id)
    assert (event.action, event.reason, event.note) == ("dismiss", "noise", "noise")
    assert thread(earful.slack, desk.channel, desk.ts) == [f"🚫 <@{CAROL}> dismissed this: noise"]


# --- at the same time --------------------------------------------------------------------------


async def test_concurrent_clicks_end_in_one_state_that_the_card_shows(earful: Earful) -> None:
    await earful.command(f"lead support <@{DANA}|dana>", user_id=ADMIN)
    desk = await open_desk(earful)
    await desk.click(ActionId.CLAIM, BOB)
    await desk.succeeds("*Claimed*")
    claimed = desk.card
    clicks: list[tuple[ActionId, str, dict[str, str]]] = [
        (ActionId.RESOLVE, BOB, {}),
        (ActionId.DISMISS, ADMIN, {"reason": "duplicate"}),
        (ActionId.ANSWER, DANA, {}),
        (ActionId.RESOLVE, CAROL, {}),
        *[(ActionId.ESCALATE, user, {}) for user in (CAROL, DANA, ADMIN)],
    ]
    await asyncio.gather(
        *(desk.click(action_id, user, on=claimed, **menu) for action_id, user, menu in clicks)
    )

    async def settled() -> bool:
        events = await events_of(earful, desk.mention_id)
        told = len(earful.slack.ephemerals())
        return len(events) - 1 + told == len(clicks)

    await wait_until(settled)
    events = await events_of(earful, desk.mention_id)
    mention = await mention_now(earful, desk.mention_id)
    chain = [(e.from_state, e.to_state) for e in events]
    for (_, before), (after, _) in itertools.pairwise(chain):
        assert before == after, chain
    assert mention.state == events[-1].to_state
    # Carol is never allowed to resolve Bob's mention; exactly one of resolve/dismiss won.
    assert ("resolve", CAROL) not in [(e.action, e.actor) for e in events]
    assert sum(e.action in ("resolve", "dismiss") for e in events) == 1
    assert mention.state in ("resolved", "dismissed")

    # Once the outbox is drained, the card shows the final state.
    expected = "*Resolved*" if mention.state == "resolved" else "*Dismissed*"
    await wait_until(desk.card_says(expected))
    await wait_until(desk.thread_has(len(events)))
    assert len(thread(earful.slack, desk.channel, desk.ts)) == len(events)
    async with earful.runtime.db.session() as session:
        assert len((await session.execute(select(Event))).scalars().all()) == len(events)
