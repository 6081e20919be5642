"""Queues, search, App Home and muting through the real app: signed requests in, fake Slack out."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.ids import ActionId
from bot.queues import ClaimValue, PageRef
from storage import mentions as mention_store
from storage import outbox
from storage.models import Event, Mention, MentionState, MuteRule, OutboxKind
from storage.types import utcnow
from tests.fakes.slack_api import TEAM_DOMAIN, FakeSlackApi, block_kit_problems, view_problems
from tests.fakes.slack_requests import app_home_opened
from tests.support.earful import ADMIN, Earful
from tests.support.feeds import FeedItem, FeedServer, rss

BOB = "U0BOB"
DANA = "U0DANA"  # the support lead in the mute tests


@pytest.fixture(autouse=True)
def more_people(fake_slack: FakeSlackApi) -> None:
    fake_slack.add_user(DANA, "dana", real_name="Dana Diaz")


async def wait_until(predicate: Callable[[], Awaitable[bool]], within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def mention(external_id: str, **fields: Any) -> Mention:
    values: dict[str, Any] = {
        "watch_name": "acme",
        "watch_kind": "brand",
        "source": "rss:https://example.com/feed.xml",
        "origin": "rss:https://example.com/feed.xml",
        "external_id": external_id,
        "url": f"https://example.com/{external_id}",
        "title": f"Post {external_id}",
        "text": "Acme lost my order",
        "matched_terms": ["acme"],
        "department": "support",
        "priority": "P3",
        "found_at": utcnow(),
        "updated_at": utcnow(),
    }
    values.update(fields)
    return Mention(**values)


async def store(earful: Earful, *mentions: Mention, alert: bool = False) -> list[int]:
    async with earful.runtime.db.session() as session:
        stored = await mention_store.add_mentions(session, mentions=list(mentions))
        if alert:
            for item in stored:
                outbox.enqueue(session, kind=OutboxKind.ALERT, mention_id=item.id)
    if alert:
        earful.runtime.services.delivery.kick()
    return [item.id for item in stored if item.id is not None]


async def get(earful: Earful, mention_id: int) -> Mention:
    async with earful.runtime.db.session() as session:
        found = await mention_store.get_mention(session, mention_id=mention_id)
    assert found is not None
    return found


def section_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]


def buttons(blocks: list[dict[str, Any]], action_id: ActionId) -> list[dict[str, Any]]:
    found = []
    for block in blocks:
        elements = block.get("elements", []) if block["type"] == "actions" else []
        if block.get("accessory"):
            elements = [*elements, block["accessory"]]
        found += [e for e in elements if e.get("action_id") == action_id.value]
    return found


async def route_support(earful: Earful) -> None:
    reply = await earful.command("route support <#C0SUPPORT|support>", user_id=ADMIN)
    assert "now go to" in reply["text"], reply


async def test_queue_pages_claims_and_links_in_place(
    earful: Earful, fake_slack: FakeSlackApi
) -> None:
    await route_support(earful)
    now = utcnow()
    # Seven open support mentions of mixed priority and age, one for PR, one already closed.
    ids = await store(
        earful,
        *[
            mention(
                f"s{n}", priority=("P1" if n in (5, 6) else "P3"), found_at=now - timedelta(hours=n)
            )
            for n in range(7)
        ],
        mention("pr1", department="pr", priority="P1"),
        mention("done", state="resolved"),
    )
    [posted] = await store(earful, mention("alerted", priority="P4"), alert=True)

    async def alert_posted() -> bool:
        return bool((await get(earful, posted)).ts)

    await wait_until(alert_posted)

    # Typed in the support channel: support's queue, P1 first (older first), five a page.
    first = await earful.command("queue", user_id=BOB, channel_id="C0SUPPORT")
    assert first["response_type"] == "ephemeral"
    assert not block_kit_problems(first["blocks"])
    texts = section_texts(first["blocks"])
    assert texts[0].startswith("*Open in support*")
    items = texts[1:]
    assert len(items) == 5
    assert items[0].startswith("*P1*") and "6h old" in items[0] and "Post s6" in items[0]
    assert items[1].startswith("*P1*") and "Post s5" in items[1]
    assert all("support" in line for line in items)
    assert not any("Post pr1" in line or "Post done" in line for line in texts)
    assert not buttons(first["blocks"], ActionId.QUEUE_PREVIOUS)
    [next_button] = buttons(first["blocks"], ActionId.QUEUE_NEXT)
    assert "Next" in next_button["text"]["text"]

    # Next replaces the ephemeral message through its response_url.
    message = {"ts": "1700000000.000200", "blocks": first["blocks"]}
    hook = fake_slack.response_url()
    status = await earful.click(
        "C0SUPPORT",
        message,
        ActionId.QUEUE_NEXT,
        user_id=BOB,
        value=next_button["value"],
        response_url=hook,
        is_ephemeral=True,
    )
    assert status == 200
    [page_two] = await fake_slack.wait_for("response_url")
    assert page_two.args["replace_original"] is True
    second = page_two.args["blocks"]
    rest = section_texts(second)[1:]
    assert "Post alerted" in rest[-1]
    assert len(rest) == 3  # s1, s0 (P3, older first after s4..s2) and the P4 alert
    assert [b["text"]["text"] for b in buttons(second, ActionId.QUEUE_PREVIOUS)] == ["← Previous"]
    assert not buttons(second, ActionId.QUEUE_NEXT)
    # The posted alert's Open button is its permalink; an unposted one links the post.
    permalinks = [b["url"] for b in buttons(second, ActionId.QUEUE_OPEN)]
    assert any(
        url.startswith(f"https://{TEAM_DOMAIN}.slack.com/archives/C0SUPPORT/p")
        for url in permalinks
    )
    assert "https://example.com/s0" in permalinks
    # Built from the workspace's address: no Web API call per listed alert inside the ack.
    assert not fake_slack.calls_to("chat.getPermalink")

    # Claim from the list: the mention is Bob's, the list redraws, and his Home follows.
    claim = next(
        b
        for b in buttons(second, ActionId.QUEUE_CLAIM)
        if ClaimValue.model_validate_json(b["value"]).mention_id == ids[0]
    )
    hook = fake_slack.response_url()
    status = await earful.click(
        "C0SUPPORT",
        {"ts": "1700000000.000200", "blocks": second},
        ActionId.QUEUE_CLAIM,
        user_id=BOB,
        value=claim["value"],
        response_url=hook,
        is_ephemeral=True,
    )
    assert status == 200
    [_, redrawn] = await fake_slack.wait_for("response_url", count=2)
    s0 = next(line for line in section_texts(redrawn.args["blocks"]) if "Post s0" in line)
    assert f"claimed by <@{BOB}>" in s0
    claimed = await get(earful, ids[0])
    assert claimed.state == MentionState.CLAIMED and claimed.owner == BOB
    published = await fake_slack.wait_for("views.publish")
    assert published[-1].args["user_id"] == BOB

    mine = await earful.command("mine", user_id=BOB, channel_id="C0GENERAL")
    mine_items = section_texts(mine["blocks"])
    assert mine_items[0].startswith("*Claimed by you") and len(mine_items) == 2
    assert "Post s0" in mine_items[1]

    # Outside a department channel, the queue is everyone's; `queue pr` narrows it.
    everywhere = await earful.command("queue", user_id=BOB, channel_id="C0GENERAL")
    assert section_texts(everywhere["blocks"])[0].startswith("*Open in every department*")
    pr = await earful.command("queue pr", user_id=BOB, channel_id="C0SUPPORT")
    assert [line for line in section_texts(pr["blocks"]) if "Post" in line] == [
        line for line in section_texts(pr["blocks"]) if "Post pr1" in line
    ]


async def test_search_treats_wildcards_literally_and_escapes_text(
    earful: Earful, fake_slack: FakeSlackApi
) -> None:
    now = utcnow()
    await store(
        earful,
        mention("a", text="Acme: 50% off today", found_at=now - timedelta(minutes=3)),
        mention("b", text="Acme: 5000 off today", found_at=now - timedelta(minutes=2)),
        mention("c", text="acme file_name bug <!channel>", found_at=now - timedelta(minutes=1)),
        mention("d", text="acme filexname bug"),
        mention("e", title=None, text="nothing here", author="Percent_Man"),
        mention("m", text="50% muted copy", state="muted"),
    )
    percent = await earful.command('search "50%"', user_id=BOB)
    hits = section_texts(percent["blocks"])[1:]
    assert len(hits) == 1 and "Post a" in hits[0]
    underscore = await earful.command("search file_name", user_id=BOB)
    [hit] = section_texts(underscore["blocks"])[1:]
    assert "Post c" in hit
    by_author = await earful.command("search percent_man", user_id=BOB)
    [author_hit] = section_texts(by_author["blocks"])[1:]
    assert "nothing here" in author_hit and "Percent_Man" in author_hit
    # Newest first, and what a source wrote stays inert.
    acme = await earful.command("search ACME", user_id=BOB)
    titles = [line.split("\n")[1] for line in section_texts(acme["blocks"])[1:]]
    assert [t.rsplit("|", 1)[-1].rstrip(">") for t in titles] == [
        "Post d",
        "Post c",
        "Post b",
        "Post a",
    ]
    assert "<!channel>" not in json.dumps(acme["blocks"])
    nothing = await earful.command("search zzz_nothing", user_id=BOB)
    assert "No mention matches" in json.dumps(nothing["blocks"])


async def test_app_home_stays_within_limits_and_follows_actions(
    earful: Earful, fake_slack: FakeSlackApi
) -> None:
    await route_support(earful)
    await earful.command(f"lead support <@{BOB}|bob>", user_id=ADMIN)
    now = utcnow()
    long_text = "Acme <@U0ADMIN> " + "x" * 5000
    await store(
        earful,
        *[mention(f"mine{n}", owner=BOB, state="claimed", text=long_text) for n in range(40)],
        *[
            mention(f"late{n}", priority="P1", found_at=now - timedelta(hours=2), text=long_text)
            for n in range(40)
        ],
        *[mention(f"new{n}", department="product", priority="P2") for n in range(5)],
    )
    status = await earful.event(app_home_opened(BOB))
    assert status == 200
    [published] = await fake_slack.wait_for("views.publish")
    view = published.args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert not view_problems(view, expected_type="home")
    blocks = view["blocks"]
    assert len(blocks) <= 100
    text = json.dumps(blocks)
    assert "Claimed by you" in text and "Open in support" in text and "SLA breaches" in text
    assert "<@U0ADMIN>" not in text  # source text is escaped
    assert "P1: 40" in text  # the department's open counts, whatever is shown
    breaches = next(
        b["text"]["text"] for b in blocks if "SLA breaches" in b.get("text", {}).get("text", "")
    )
    assert "in support" in breaches

    # Claiming from Home (real Slack sends no response_url from a view; the fake hook only
    # keeps the request local): the mention is Bob's and Home is published again.
    claim = buttons(blocks, ActionId.QUEUE_CLAIM)[0]
    status = await earful.click(
        "C0SUPPORT",
        {"ts": "1700000000.000300", "blocks": blocks},
        ActionId.QUEUE_CLAIM,
        user_id=BOB,
        value=claim["value"],
        response_url=fake_slack.response_url(),
    )
    assert status == 200
    await fake_slack.wait_for("views.publish", count=2)
    claimed = await get(earful, ClaimValue.model_validate_json(claim["value"]).mention_id)
    assert claimed.owner == BOB


async def test_muted_author_is_stored_not_alerted(
    earful: Earful, fake_slack: FakeSlackApi, feed_server: FeedServer
) -> None:
    await route_support(earful)
    refused = await earful.command('mute author="Spam Bot"', user_id=BOB)
    assert "admins and department leads" in refused["text"].lower()
    by_author = await earful.command('mute author="Spam  Bot"', user_id=ADMIN)
    assert "Rule #1" in by_author["text"], by_author
    by_domain = await earful.command(
        "mute domain=https://www.Spam.example/x for=30d", user_id=ADMIN
    )
    assert "Rule #2" in by_domain["text"], by_domain
    feed_url = feed_server.serve(
        "/feed.xml",
        rss(
            [
                FeedItem(
                    "ok",
                    "Acme Cloud is down again",
                    "Acme Cloud crashes on login and support had me on hold for 2 hours",
                    "https://example.com/1",
                ),
                FeedItem(
                    "by-author",
                    "Acme deals",
                    "Acme coupons galore",
                    "https://deals.example/2",
                    author="bot@deals.example (Spam Bot)",
                ),
                FeedItem(
                    "by-domain", "Acme offers", "Acme vouchers", "https://blog.spam.example/3"
                ),
            ]
        ),
    )
    reply = await earful.command(
        f'watch add acme "acme" sources=rss:{feed_url} kind=brand every=1m', user_id=ADMIN
    )
    assert "saved" in reply["text"], reply
    await fake_slack.wait_for("chat.postMessage", timeout=15)

    async def all_stored() -> bool:
        async with earful.runtime.db.session() as session:
            found = (await session.execute(select(Mention))).scalars().all()
        return len(found) == 3 and all(m.ts or m.state == "muted" for m in found)

    await wait_until(all_stored)
    async with earful.runtime.db.session() as session:
        by_id = {m.external_id: m for m in (await session.execute(select(Mention))).scalars()}
        notes = {
            external_id: [
                (e.action, e.note)
                for e in (
                    await session.execute(select(Event).where(Event.mention_id == mention.id))
                ).scalars()
            ]
            for external_id, mention in by_id.items()
        }
        rules = (await session.execute(select(MuteRule).order_by(MuteRule.id))).scalars().all()
    assert by_id["by-author"].author == "Spam Bot"
    assert by_id["by-author"].state == "muted" and by_id["by-author"].ts is None
    assert by_id["by-domain"].state == "muted" and by_id["by-domain"].ts is None
    assert notes["by-author"] == [("mute", "muted by rule #1")]
    assert notes["by-domain"] == [("mute", "muted by rule #2")]
    assert by_id["ok"].state == "new" and by_id["ok"].ts
    assert [rule.hits for rule in rules] == [1, 1]
    posted = json.dumps([c.args for c in fake_slack.calls_to("chat.postMessage")])
    assert "coupons" not in posted and "vouchers" not in posted
    queue = await earful.command("queue all", user_id=BOB)
    assert "Acme deals" not in json.dumps(queue["blocks"])
    assert "Acme Cloud is down again" in json.dumps(queue["blocks"])
    listed = json.dumps((await earful.command("mutes", user_id=BOB))["blocks"])
    assert "*#1* author *spam bot*" in listed and "1 post muted" in listed
    removed = await earful.command("unmute 1", user_id=ADMIN)
    assert "removed" in removed["text"]
    removed = await earful.command("unmute 2", user_id=ADMIN)
    assert "Nothing is muted" in (await earful.command("mutes", user_id=BOB))["text"]


async def test_dismissing_noise_offers_the_lead_a_mute(
    earful: Earful, fake_slack: FakeSlackApi
) -> None:
    await route_support(earful)
    await earful.command(f"lead support <@{DANA}|dana>", user_id=ADMIN)
    [first, second] = await store(
        earful,
        mention("n1", author="@SpamBot", url="https://spam.example/1"),
        mention("n2", author="someone", url="https://ok.example/2"),
        alert=True,
    )

    async def both_posted() -> bool:
        return bool((await get(earful, first)).ts and (await get(earful, second)).ts)

    await wait_until(both_posted)
    card = await alert_card(earful, fake_slack, first)
    other = await alert_card(earful, fake_slack, second)
    # Bob may dismiss an unclaimed mention, but muting is not his to do: no offer.
    await earful.click(
        "C0SUPPORT", other, ActionId.DISMISS, user_id=BOB, selected_option=noise_option(other)
    )
    await fake_slack.wait_for("views.publish")  # published after the offer would have been
    assert (await get(earful, second)).state == "dismissed"
    assert not fake_slack.calls_to("chat.postEphemeral")

    await earful.click(
        "C0SUPPORT", card, ActionId.DISMISS, user_id=DANA, selected_option=noise_option(card)
    )
    [offer] = await fake_slack.wait_for("chat.postEphemeral")
    assert offer.args["user"] == DANA
    offer_blocks = offer.args["blocks"]
    offer_blocks = json.loads(offer_blocks) if isinstance(offer_blocks, str) else offer_blocks
    [author_button] = buttons(offer_blocks, ActionId.MUTE_AUTHOR)
    [domain_button] = buttons(offer_blocks, ActionId.MUTE_DOMAIN)
    assert author_button["text"]["text"] == "Mute author spambot"
    assert domain_button["text"]["text"] == "Mute domain spam.example"
    hook = fake_slack.response_url()
    await earful.click(
        "C0SUPPORT",
        {"ts": "1700000000.000400", "blocks": offer_blocks},
        ActionId.MUTE_AUTHOR,
        user_id=DANA,
        value=author_button["value"],
        response_url=hook,
        is_ephemeral=True,
    )
    [done] = await fake_slack.wait_for("response_url")
    assert done.args["replace_original"] is True and "Rule #1" in done.args["text"]
    async with earful.runtime.db.session() as session:
        rule = (await session.execute(select(MuteRule))).scalars().one()
    assert (rule.kind, rule.value, rule.department, rule.created_by) == (
        "author",
        "spambot",
        "support",
        DANA,
    )


async def alert_card(earful: Earful, fake: FakeSlackApi, mention_id: int) -> dict[str, Any]:
    ts = (await get(earful, mention_id)).ts
    return next(m for m in fake.messages("C0SUPPORT") if m["ts"] == ts)


def noise_option(card: dict[str, Any]) -> str:
    return next(
        str(option["value"])
        for block in card["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element.get("action_id") == ActionId.DISMISS.value
        for option in element["options"]
        if json.loads(option["value"]).get("reason") == "noise"
    )


def test_page_ref_round_trips() -> None:
    ref = PageRef.model_validate_json(
        PageRef(kind="search", text="50%_off", page=3).model_dump_json()
    )
    assert (ref.kind, ref.text, ref.page) == ("search", "50%_off", 3)
