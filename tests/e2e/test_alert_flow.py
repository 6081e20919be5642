"""A feed post becomes an alert in the routed channel, and people work it from Slack."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

from sqlalchemy import select

from bot.ids import ActionId
from storage import mentions as mention_store
from storage.models import Mention, SourceState
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_requests import FORM, post_signed, reaction_added, slash_command
from tests.support.earful import Earful
from tests.support.feeds import FeedItem, FeedServer, rss

HOSTILE = (
    "Acme Cloud crashes on login and support had me on hold for 2 hours. "
    "<!channel> <@U0ADMIN> see <https://evil.example|bank.com> for a refund"
)


def all_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


async def add_watch(earful: Earful, feed_url: str, name: str = "acme") -> None:
    reply = await earful.command(
        f'watch add {name} "acme OR \\"acme cloud\\" -acmeville" sources=rss:{feed_url} '
        "kind=brand every=1m"
    )
    assert "saved" in reply["text"], reply


async def wait_until(predicate: Any, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_feed_post_to_claimed_and_resolved_alert(
    earful: Earful, fake_slack: FakeSlackApi, feed_server: FeedServer
) -> None:
    feed_url = feed_server.serve(
        "/feed.xml",
        rss(
            [
                FeedItem("post-1", "Acme Cloud is down again", HOSTILE, "https://example.com/p/1"),
                FeedItem(
                    "post-2",
                    "Weekend trip",
                    "We visited Acmeville, lovely",
                    "https://example.com/p/2",
                ),
            ]
        ),
    )
    reply = await earful.command("route support <#C0SUPPORT|support>")
    assert "support" in reply["text"] and reply["response_type"] == "ephemeral"
    await add_watch(earful, feed_url)

    [post] = await fake_slack.wait_for("chat.postMessage", timeout=15)
    assert post.args["channel"] == "C0SUPPORT"
    [alert] = fake_slack.messages("C0SUPPORT")
    blocks_json = all_text(alert["blocks"])
    # The hostile text is there, but inert: no broadcast, no mention, no disguised link.
    assert "&lt;!channel&gt;" in blocks_json
    assert "<!channel>" not in blocks_json and "<@U0ADMIN>" not in blocks_json
    assert "<https://evil.example" not in blocks_json
    assert "<!channel>" not in alert["text"]
    assert "*Acme Cloud*" in blocks_json or "*acme cloud*" in blocks_json.lower()
    # Only the matching post became a mention; acmeville is excluded by the query.
    await wait_until(lambda: _posted(earful))
    async with earful.runtime.db.session() as session:
        mentions = (await session.execute(select(Mention))).scalars().all()
    assert [m.external_id for m in mentions] == ["post-1"]
    assert mentions[0].department == "support" and mentions[0].channel == "C0SUPPORT"

    status = await earful.click("C0SUPPORT", alert, ActionId.CLAIM, user_id="U0BOB")
    assert status == 200
    await fake_slack.wait_for("chat.update")
    [claimed] = fake_slack.messages("C0SUPPORT", include_replies=False)
    assert "<@U0BOB>" in all_text(claimed["blocks"])

    # Someone else clicking Claim on the (now stale) card is told who has it.
    await earful.click("C0SUPPORT", alert, ActionId.CLAIM, user_id="U0ALICE")
    [note] = await fake_slack.wait_for("chat.postEphemeral")
    assert note.args["user"] == "U0ALICE" and "<@U0BOB>" in note.args["text"]

    await earful.click("C0SUPPORT", claimed, ActionId.RESOLVE, user_id="U0BOB")
    await fake_slack.wait_for("chat.update", count=2)
    [resolved] = fake_slack.messages("C0SUPPORT", include_replies=False)
    assert "resolved" in all_text(resolved["blocks"]).lower()
    replies = [
        m
        for m in fake_slack.messages("C0SUPPORT")
        if m.get("thread_ts") == alert["ts"] and m["ts"] != alert["ts"]
    ]
    await wait_until(lambda: _thread_count(fake_slack, alert["ts"], 2))

    async with earful.runtime.db.session() as session:
        events = await mention_store.events_for(session, mention_id=mentions[0].id or 0)
    assert [(e.action, e.actor) for e in events] == [
        ("found", None),
        ("claim", "U0BOB"),
        ("resolve", "U0BOB"),
    ]
    del replies


async def _posted(earful: Earful) -> bool:
    async with earful.runtime.db.session() as session:
        mentions = (await session.execute(select(Mention))).scalars().all()
    return bool(mentions) and all(m.ts for m in mentions)


async def _thread_count(fake: FakeSlackApi, ts: str, count: int) -> bool:
    return (
        len([m for m in fake.messages("C0SUPPORT") if m.get("thread_ts") == ts and m["ts"] != ts])
        >= count
    )


async def test_reroute_escalate_dismiss_and_reactions(
    earful: Earful, fake_slack: FakeSlackApi, feed_server: FeedServer
) -> None:
    feed_url = feed_server.serve(
        "/feed.xml",
        rss(
            [
                FeedItem(
                    "p1",
                    "Acme pricing",
                    "Is acme cloud worth buying? How do I compare plans?",
                    "https://example.com/1",
                )
            ]
        ),
    )
    await earful.command("route support <#C0SUPPORT|support>")
    await earful.command("route sales <#C0SALES|sales>")
    await earful.command("route product <#C0PRODUCT|product>")
    await add_watch(earful, feed_url)
    await fake_slack.wait_for("chat.postMessage", timeout=15)
    await wait_until(lambda: _posted(earful))
    async with earful.runtime.db.session() as session:
        [mention] = (await session.execute(select(Mention))).scalars().all()
    first_channel = mention.channel
    assert first_channel in ("C0SUPPORT", "C0SALES")
    [alert] = fake_slack.messages(first_channel or "")

    await earful.click(
        first_channel or "",
        alert,
        ActionId.REROUTE,
        user_id="U0BOB",
        selected_option=_option(alert, "product"),
    )
    await wait_until(lambda: _has_messages(fake_slack, "C0PRODUCT", 1))
    [moved] = fake_slack.messages("C0PRODUCT", include_replies=False)
    # The old card says where the mention went and has no buttons left.
    await fake_slack.wait_for("chat.update")
    [old] = fake_slack.messages(first_channel or "", include_replies=False)
    assert "product" in all_text(old["blocks"]).lower()
    assert ActionId.CLAIM.value not in all_text(old["blocks"])

    # Reactions act like buttons on the new card, once Earful has recorded where it is (a
    # reaction is looked up by channel and ts; Slack shows the message a moment before that).
    await wait_until(lambda: _message_is(earful, "C0PRODUCT", moved["ts"]))
    assert (
        await earful.event(
            reaction_added("U0BOB", "eyes", "C0PRODUCT", moved["ts"], item_user="U0EARFUL")
        )
        == 200
    )
    await wait_until(lambda: _owner_is(earful, "U0BOB"))
    assert (
        await earful.event(
            reaction_added(
                "U0BOB", "rotating_light", "C0PRODUCT", moved["ts"], item_user="U0EARFUL"
            )
        )
        == 200
    )
    await wait_until(lambda: _state_is(earful, "escalated"))
    assert (
        await earful.event(
            reaction_added("U0BOB", "tada", "C0PRODUCT", moved["ts"], item_user="U0EARFUL")
        )
        == 200
    )
    await earful.click(
        "C0PRODUCT",
        moved,
        ActionId.DISMISS,
        user_id="U0BOB",
        selected_option=_option(moved, "noise", ActionId.DISMISS),
    )
    await wait_until(lambda: _state_is(earful, "dismissed"))
    async with earful.runtime.db.session() as session:
        events = await mention_store.events_for(session, mention_id=mention.id or 0)
    assert [e.action for e in events] == ["found", "reroute", "claim", "escalate", "dismiss"]


def _option(
    message: dict[str, Any], choice: str, action_id: ActionId = ActionId.REROUTE
) -> dict[str, Any]:
    for block in message["blocks"]:
        for element in block.get("elements", []) or []:
            if element.get("action_id") == action_id.value:
                for option in element["options"]:
                    if choice in json.dumps(option):
                        return option
    raise AssertionError(f"no {action_id} option for {choice}")


async def _message_is(earful: Earful, channel: str, ts: str) -> bool:
    async with earful.runtime.db.session() as session:
        [mention] = (await session.execute(select(Mention))).scalars().all()
    return (mention.channel, mention.ts) == (channel, ts)


async def _has_messages(fake: FakeSlackApi, channel: str, n: int) -> bool:
    return len(fake.messages(channel, include_replies=False)) >= n


async def _owner_is(earful: Earful, owner: str) -> bool:
    async with earful.runtime.db.session() as session:
        [mention] = (await session.execute(select(Mention))).scalars().all()
    return mention.owner == owner


async def _state_is(earful: Earful, state: str) -> bool:
    async with earful.runtime.db.session() as session:
        [mention] = (await session.execute(select(Mention))).scalars().all()
    return mention.state == state


async def test_alerts_wait_for_a_route_then_go_out(
    earful: Earful, fake_slack: FakeSlackApi, feed_server: FeedServer
) -> None:
    feed_url = feed_server.serve(
        "/feed.xml",
        rss([FeedItem("p1", "Acme", "acme support never answered my ticket", "https://e.com/1")]),
    )
    await add_watch(earful, feed_url)
    await wait_until(lambda: _mentions(earful, 1))
    routes = await earful.command("routes")
    assert "waiting" in json.dumps(routes)
    assert not fake_slack.calls_to("chat.postMessage")
    await earful.command("route support <#C0SUPPORT|support>")
    await fake_slack.wait_for("chat.postMessage", timeout=10)


async def _mentions(earful: Earful, n: int) -> bool:
    async with earful.runtime.db.session() as session:
        return len((await session.execute(select(Mention))).scalars().all()) >= n


async def test_broken_feed_marks_only_its_watch_unhealthy(
    earful: Earful, fake_slack: FakeSlackApi, feed_server: FeedServer
) -> None:
    good = feed_server.serve(
        "/good.xml", rss([FeedItem("g1", "Acme", "acme is great", "https://e.com/g1")])
    )
    faults = {
        "timeout": feed_server.serve("/slow.xml", rss([]), delay=3.0),
        "error500": feed_server.serve("/500.xml", b"oops", status=500, content_type="text/plain"),
        "malformed": feed_server.serve(
            "/bad.xml", b"<rss><channel><item><title>acme</ti", content_type="application/xml"
        ),
        "huge": feed_server.serve("/huge.xml", b"<rss>" + b"a" * 400_000 + b"</rss>"),
    }
    await earful.command("route pr <#C0PRCOMMS|pr-comms>")
    await earful.command("route support <#C0SUPPORT|support>")
    for name, url in faults.items():
        await add_watch(earful, url, name=name)
    await add_watch(earful, good, name="good")
    await fake_slack.wait_for("chat.postMessage", timeout=15)

    async def all_polled() -> bool:
        async with earful.runtime.db.session() as session:
            states = (await session.execute(select(SourceState))).scalars().all()
        return len(states) == 5 and all(s.last_poll_at for s in states)

    await wait_until(all_polled, within=15)
    async with earful.runtime.db.session() as session:
        states = {s.source: s for s in (await session.execute(select(SourceState))).scalars()}
    for url in faults.values():
        state = states["rss:" + url]
        assert state.consecutive_failures >= 1 and state.last_error, url
    assert states["rss:" + good].last_error is None
    status = json.dumps(await earful.command("status"))
    assert "failing" in status and "timed out" in status.lower()


async def test_signature_and_garbage(earful: Earful, fake_slack: FakeSlackApi) -> None:
    body = slash_command("help")
    bad = await post_signed(earful.http, earful.url, body, FORM, earful.signer, tamper=True)
    assert bad.status == 401
    stale = await post_signed(
        earful.http, earful.url, body, FORM, earful.signer, timestamp=int(time.time()) - 600
    )
    assert stale.status == 401
    unsigned = await earful.http.post(earful.url, data=body, headers={"Content-Type": FORM})
    assert unsigned.status == 401

    reply = await earful.command('watch add "unterminated')
    assert reply["response_type"] == "ephemeral"
    assert "double quote is not closed" in reply["text"] and "Example" in reply["text"]
    reply = await earful.command("\x00\x01 ((( \u202e <!here>")
    assert reply["response_type"] == "ephemeral" and "<!here>" not in reply["text"]

    help_reply = await earful.command("help")
    for command in ("watch add", "watch list", "watch pause", "route", "routes", "status"):
        assert command in json.dumps(help_reply)

    # Watches and routes are for admins only; nothing is saved for anyone else.
    denied = await earful.command(
        'watch add x "acme" sources=rss:https://example.com/f', user_id="U0BOB"
    )
    assert "admin" in denied["text"].lower()
    listing = await earful.command("watch list", user_id="U0BOB")
    assert "No watches" in listing["text"] or re.search(r"\b0 watch", listing["text"])


async def test_twenty_concurrent_claim_clicks_have_one_winner(
    earful: Earful, fake_slack: FakeSlackApi, feed_server: FeedServer
) -> None:
    feed_url = feed_server.serve(
        "/feed.xml",
        rss([FeedItem("p1", "Acme", "acme support never answered my ticket", "https://e.com/1")]),
    )
    await earful.command("route support <#C0SUPPORT|support>")
    await add_watch(earful, feed_url)
    await fake_slack.wait_for("chat.postMessage", timeout=15)
    await wait_until(lambda: _posted(earful))
    [alert] = fake_slack.messages("C0SUPPORT")
    users = [f"U0CLICK{n:02d}" for n in range(20)]
    statuses = await asyncio.gather(
        *(earful.click("C0SUPPORT", alert, ActionId.CLAIM, user_id=user) for user in users)
    )
    assert statuses == [200] * 20
    told = await fake_slack.wait_for("chat.postEphemeral", count=19)
    async with earful.runtime.db.session() as session:
        [mention] = (await session.execute(select(Mention))).scalars().all()
        events = await mention_store.events_for(session, mention_id=mention.id or 0)
    assert mention.owner in users and mention.state == "claimed"
    assert [e.actor for e in events if e.action == "claim"] == [mention.owner]
    assert {call.args["user"] for call in told} == set(users) - {mention.owner}
    assert all(f"<@{mention.owner}>" in call.args["text"] for call in told)


async def test_watch_test_and_exclusions(
    earful: Earful, fake_slack: FakeSlackApi, feed_server: FeedServer
) -> None:
    feed_url = feed_server.serve(
        "/feed.xml",
        rss(
            [
                FeedItem(
                    "1",
                    "Outage",
                    "Acme cloud outage in eu-west, status page is red",
                    "https://e.com/1",
                ),
                FeedItem("2", "Jobs", "Acme is hiring engineers in Acmeville", "https://e.com/2"),
                FeedItem("3", "Cats", "my cat sleeps all day", "https://e.com/3"),
            ]
        ),
    )
    await earful.command("route support <#C0SUPPORT|support>")
    await earful.command("route hr <#C0GENERAL|general>")
    reply = await earful.command(
        f'watch add acme "acme" sources=rss:{feed_url} exclude="hiring OR careers"'
    )
    assert "saved" in reply["text"]
    await wait_until(lambda: _mentions(earful, 1))
    async with earful.runtime.db.session() as session:
        mentions = (await session.execute(select(Mention))).scalars().all()
    assert [m.external_id for m in mentions] == ["1"], "the hiring post is excluded"

    # Trying a query looks at every post fetched recently, matched or not; nothing is saved.
    tested = await earful.command('watch test "cat OR outage"', user_id="U0BOB")
    text = json.dumps(tested)
    assert "matches *2* of 3" in text
    assert "*cat*" in text and "*outage*" in text
    tested = await earful.command('watch test "cat" sources=hn', user_id="U0BOB")
    assert "matches *0* of 0" in json.dumps(tested)
    broken = await earful.command('watch test "cat AND"', user_id="U0BOB")
    assert "query has a problem" in broken["text"]

    listing = json.dumps(await earful.command("watch list"))
    assert "excludes" in listing and "hiring OR careers" in listing
    cleared = await earful.command("watch exclude acme none")
    assert "no longer excludes" in cleared["text"]
    denied = await earful.command('watch exclude acme "x"', user_id="U0BOB")
    assert "admin" in denied["text"].lower()
