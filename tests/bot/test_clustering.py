"""Stories: copies of one story join its cluster, and a spreading story speaks up once."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlmodel import col

from bot.cards import CardEvent, StoryLine, alert_blocks, event_reply_text, story_text
from bot.clustering import (
    Clusterer,
    KnownPost,
    StoryKeys,
    crossed,
    post_text,
    spreading_note,
    story_keys,
)
from bot.scoring import sign_batch
from storage import clusters as cluster_store
from storage import mentions as mention_store
from storage.db import Database
from storage.models import Cluster, Event, Mention, MentionState, OutboxItem, OutboxKind
from tests.bot.test_cards import make_card
from tests.fakes.slack_api import block_kit_problems
from watchers.base import Post
from watchers.departments import Priority
from watchers.priority import with_traction

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
STORY = (
    "Acme Cloud suffered a major outage this morning, taking down customer dashboards and the "
    "public API for nearly three hours before engineers restored service"
)
RETOLD = "BREAKING: " + STORY + " according to the status page #acme"
OTHER = (
    "Acme announced a new partnership with Globex to bring analytics dashboards to small "
    "businesses across Europe starting next quarter"
)
_serial = 0


def post(
    text: str,
    *,
    source: str = "rss:https://news.example/feed.xml",
    url: str | None = None,
    reach: int | None = None,
    external_id: str | None = None,
) -> Post:
    global _serial
    _serial += 1
    return Post(
        source=source,
        external_id=external_id or f"p{_serial}",
        url=url if url is not None else f"https://{source.partition(':')[0]}.example/{_serial}",
        author="someone",
        title=None,
        text=text,
        published_at=NOW,
        author_reach=reach,
    )


def mention_of(item: Post, keys: StoryKeys, *, found_at: datetime = NOW) -> Mention:
    return Mention(
        watch_name=sorted(keys.watches)[0],
        watch_kind="brand",
        watches=sorted(keys.watches),
        source=item.source,
        origin=item.source.partition(":")[0],
        external_id=item.external_id,
        url=item.url,
        author_reach=item.author_reach,
        text=item.text,
        found_at=found_at,
        matched_terms=["acme"],
        department="support",
        priority="P3",
        priority_reason="complaint",
        canonical_url=keys.canonical_url,
        minhash=keys.minhash_bytes,
        updated_at=found_at,
    )


def keys_of(item: Post, watches: tuple[str, ...]) -> StoryKeys:
    [signed] = sign_batch([post_text(item)])
    return story_keys(item, origin=item.source.partition(":")[0], watches=watches, signed=signed)


def filed(item: Post, watches: tuple[str, ...] = ("acme",)) -> tuple[Mention, StoryKeys]:
    keys = keys_of(item, watches)
    return mention_of(item, keys), keys


async def file(
    db: Database, clusterer: Clusterer, *items: tuple[Mention, StoryKeys], now: datetime = NOW
) -> list[Mention]:
    async with db.session() as session:
        done = await clusterer.file(session, mentions=list(items), now=now)
    return [f.mention for f in done]


async def rows(db: Database, model: type, *where: object) -> list:  # type: ignore[type-arg]
    async with db.session() as session:
        return list((await session.execute(select(model).where(*where))).scalars())  # type: ignore[arg-type]


async def outbox_kinds(db: Database, mention_id: int) -> list[str]:
    items = await rows(db, OutboxItem, col(OutboxItem.mention_id) == mention_id)
    return [item.kind for item in sorted(items, key=lambda i: i.id)]


# ------------------------------------------------------------------------------ pure rules


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [(1, 2, None), (2, 3, 3), (3, 9, None), (9, 10, 10), (2, 26, 25), (25, 26, None)],
)
def test_a_threshold_counts_once_when_crossed(old: int, new: int, expected: int | None) -> None:
    assert crossed(old, new, (3, 10, 25, 100)) == expected


def test_spreading_note_counts_sites_not_subreddits() -> None:
    note = spreading_note(posts=12, sources=["reddit", "reddit:r/acme", "hn", "rss:https://x/f"])
    assert note == "now on 3 sources, 12 posts"


def test_traction_raises_one_level_and_replaces_its_own_reason() -> None:
    priority, reason = with_traction(Priority.P3, "complaint", note="now on 2 sources, 3 posts")
    assert (priority, reason) == (Priority.P2, "complaint; spreading: now on 2 sources, 3 posts")
    priority, reason = with_traction(priority, reason, note="now on 4 sources, 10 posts")
    assert (priority, reason) == (Priority.P1, "complaint; spreading: now on 4 sources, 10 posts")
    assert with_traction(Priority.P1, reason, note="x")[0] is Priority.P1


def test_a_shared_link_is_the_story_on_link_sharing_sources_only() -> None:
    article = "https://www.news.example/acme-outage?utm_source=hn&utm_medium=social"
    on_hn = post(
        f"Acme outage {article}", source="hn", url="https://news.ycombinator.com/item?id=1"
    )
    in_feed = post("Acme outage", url="https://news.example/acme-outage/?utm_source=rss")
    issue = post(f"Acme SDK fails, see {article}", source="github", url="https://github.com/a/1")
    keys = {
        name: keys_of(item, ("acme",))
        for name, item in {"hn": on_hn, "rss": in_feed, "github": issue}.items()
    }
    assert (
        keys["hn"].canonical_url == keys["rss"].canonical_url == "https://news.example/acme-outage"
    )
    assert keys["github"].canonical_url == "https://github.com/a/1"


def test_story_line_escapes_and_fits_block_kit() -> None:
    story = StoryLine(
        sources=("reddit:r/x", "hn", "reddit", "rss:https://<!channel>.example/f"),
        others=7,
        links=(
            ("reddit:r/x", "https://reddit.example/r/x/1?a=<b>&c=|d"),
            ("hn", "javascript:alert(1)"),
            ("rss:https://evil.example/f", "https://news.example/" + "a" * 600),
        ),
    )
    text = story_text(story)
    assert text.startswith("🧵 *Also seen on* Reddit, Hacker News, RSS (+7): ")
    assert "<!channel>" not in text and "javascript" not in text and "a" * 600 not in text
    assert "<https://reddit.example/r/x/1?a=%3Cb%3E&amp;c=%7Cd|Reddit · r/x>" in text
    blocks = alert_blocks(make_card(story=story, watches=("acme", "<@U0BOSS>")))
    assert block_kit_problems(blocks) == []
    rendered = json.dumps(blocks, ensure_ascii=False)
    assert "Also seen on" in rendered
    assert "Watches: acme, &lt;@U0BOSS&gt;" in rendered
    assert "Also seen on" not in json.dumps(alert_blocks(make_card()))


def test_traction_reply_is_the_note() -> None:
    card = make_card()
    note = "Spreading: now on 2 sources, 3 posts <!here>"
    event = CardEvent(actor=None, action="traction", at=NOW, note=note)
    assert event_reply_text(event, card) == "📈 Spreading: now on 2 sources, 3 posts &lt;!here&gt;"
    assert mention_store.TRACTION_ACTION == "traction"


# ---------------------------------------------------------------------- through the database


async def test_copies_of_a_story_join_it_and_update_the_lead_card(db: Database) -> None:
    clusterer = Clusterer()
    article = "https://news.example/acme-outage"
    [lead] = await file(db, clusterer, filed(post(STORY, url=article + "?utm_source=rss")))
    [by_link] = await file(
        db,
        clusterer,
        filed(
            post(f"Look at this {article}?fbclid=1", source="hn", url="https://hn.example/i/1"),
            ("acme", "globex"),
        ),
    )
    [by_text] = await file(db, clusterer, filed(post(RETOLD, source="reddit:r/acme")))
    [other] = await file(db, clusterer, filed(post(OTHER)))
    [elsewhere] = await file(db, clusterer, filed(post(RETOLD, source="hn"), ("globex",)))

    assert lead.state == MentionState.NEW and other.state == MentionState.NEW
    assert elsewhere.state == MentionState.NEW, "a story of other watches is another story"
    assert by_link.state == by_text.state == MentionState.MERGED
    [cluster] = await rows(db, Cluster)
    assert cluster.lead_mention_id == lead.id and cluster.size == 3
    assert cluster.sources == ["rss:https://news.example/feed.xml", "hn", "reddit:r/acme"]
    stored = {m.id: m for m in await rows(db, Mention)}
    assert {stored[i].cluster_id for i in (lead.id, by_link.id, by_text.id)} == {cluster.id}
    assert stored[other.id].cluster_id is None

    assert by_link.id is not None and by_text.id is not None and lead.id is not None
    assert await outbox_kinds(db, by_link.id) == [] == await outbox_kinds(db, by_text.id)
    [merge] = await rows(db, Event, col(Event.mention_id) == by_text.id)
    assert (merge.action, merge.to_state) == ("merge", "merged")
    assert merge.note == f"same story as mention {lead.id} (near-duplicate text)"
    kinds = await outbox_kinds(db, lead.id)
    assert kinds[0] == OutboxKind.ALERT and kinds.count(OutboxKind.ALERT) == 1
    assert kinds.count(OutboxKind.CARD_UPDATE) >= 2
    # Three posts: the first threshold, one note, and the lead's priority rises.
    assert kinds.count(OutboxKind.THREAD_REPLY) == 1
    assert stored[lead.id].priority == "P2"
    assert stored[lead.id].priority_reason == "complaint; spreading: now on 3 sources, 3 posts"

    async with db.session() as session:
        summary = await cluster_store.story_summary(session, mention_id=lead.id, links=3)
        assert await cluster_store.story_summary(session, mention_id=by_text.id, links=3) is None
    assert summary is not None
    assert summary.others == 2 and summary.sources == ("hn", "reddit:r/acme")
    assert [source for source, _ in summary.links] == ["reddit:r/acme", "hn"]


async def test_one_batch_with_many_copies_makes_one_story(db: Database) -> None:
    clusterer = Clusterer()
    copies = [filed(post(RETOLD if i % 2 else STORY, source=f"reddit:r/s{i}")) for i in range(4)]
    stored = await file(db, clusterer, *copies)
    assert [m.state for m in stored] == ["new", "merged", "merged", "merged"]
    [cluster] = await rows(db, Cluster)
    assert cluster.size == 4 and cluster.traction_notified_size == 3
    alerts = await rows(db, OutboxItem, col(OutboxItem.kind) == OutboxKind.ALERT)
    assert [a.mention_id for a in alerts] == [stored[0].id]
    # The story's first alert is not out yet: its copies are velocity, not traction.
    assert await rows(db, OutboxItem, col(OutboxItem.kind) == OutboxKind.THREAD_REPLY) == []
    assert stored[0].priority == "P3"


async def test_a_threshold_is_noted_once_even_after_a_restart(db: Database) -> None:
    first = Clusterer()
    [lead] = await file(db, first, filed(post(STORY)))
    await file(db, first, *(filed(post(RETOLD, source="hn")) for _ in range(3)))
    # A new process: the index is rebuilt from the database and nothing is said twice.
    second = Clusterer()
    await file(db, second, *(filed(post(RETOLD, source="reddit")) for _ in range(6)))
    assert lead.id is not None
    replies = [
        item
        for item in await rows(db, OutboxItem, col(OutboxItem.mention_id) == lead.id)
        if item.kind == OutboxKind.THREAD_REPLY
    ]
    notes = [
        e.note
        for e in await rows(db, Event, col(Event.mention_id) == lead.id)
        if e.action == "traction"
    ]
    assert notes == [
        "Spreading: now on 2 sources, 3 posts",
        "Spreading: now on 3 sources, 10 posts",
    ]
    assert len(replies) == 2
    [cluster] = await rows(db, Cluster)
    assert (cluster.size, cluster.traction_notified_size) == (10, 10)
    [stored_lead] = await rows(db, Mention, col(Mention.id) == lead.id)
    assert stored_lead.priority == "P1"
    async with db.session() as session:
        last = await mention_store.last_event(session, mention_id=lead.id)
    assert last is not None and last.action == "found", "notes do not change the state line"


async def test_a_big_audience_joining_is_traction(db: Database) -> None:
    clusterer = Clusterer()
    [lead] = await file(db, clusterer, filed(post(STORY, reach=120)))
    await file(db, clusterer, filed(post(RETOLD, source="bluesky", reach=250_000)))
    await file(db, clusterer, filed(post(RETOLD, source="mastodon", reach=300_000)))
    notes = [
        e.note
        for e in await rows(db, Event, col(Event.mention_id) == lead.id)
        if e.action == "traction"
    ]
    assert notes == [
        "Spreading: a post with a reach of 250,000 joined",
        "Spreading: now on 3 sources, 3 posts",
    ]
    [cluster] = await rows(db, Cluster)
    assert cluster.peak_reach == 300_000


async def test_a_known_post_that_grows_is_traction_once(db: Database) -> None:
    clusterer = Clusterer()
    story = post(STORY, source="hn", reach=42)
    [lead] = await file(db, clusterer, filed(story))
    assert lead.id is not None

    async def seen_again(points: int) -> int:
        async with db.session() as session:
            known = await mention_store.known_posts(
                session, origin="hn", external_ids=[story.external_id]
            )
            mention_id, reach = known[story.external_id]
            grown = dataclasses.replace(story, author_reach=points)
            return await clusterer.refresh(
                session, known=[KnownPost(mention_id, reach, grown)], now=NOW
            )

    assert await seen_again(60) == 0
    assert await seen_again(150) == 1
    assert await seen_again(140) == 0 and await seen_again(900) == 0
    [stored] = await rows(db, Mention, col(Mention.id) == lead.id)
    assert stored.author_reach == 900
    assert (
        stored.priority_reason == "complaint; spreading: the post now has a reach of 150 (was 60)"
    )
    assert (await outbox_kinds(db, lead.id)).count(OutboxKind.THREAD_REPLY) == 1


async def test_old_stories_are_not_joined(db: Database) -> None:
    clusterer = Clusterer(window=timedelta(hours=72))
    old = filed(post(STORY))
    old[0].found_at = NOW - timedelta(days=4)
    await file(db, clusterer, old, now=NOW - timedelta(days=4))
    [again] = await file(db, clusterer, filed(post(RETOLD)))
    assert again.state == MentionState.NEW
    assert len(clusterer) == 1, "the old signature left the index"


async def test_velocity_counts_the_story_in_the_batch_and_before(db: Database) -> None:
    clusterer = Clusterer()
    await file(db, clusterer, *(filed(post(STORY, source="hn")) for _ in range(3)))
    batch = [filed(post(RETOLD))[1], filed(post(RETOLD))[1], filed(post(OTHER))[1]]
    async with db.session() as session:
        await clusterer.catch_up(session, now=NOW)
        assert await clusterer.velocities(session, batch, now=NOW) == [5, 5, 1]


def distinct_story(seed: int) -> str:
    """A text of its own: no two seeds share enough word 3-grams to be one story."""
    words = random.Random(seed).sample(range(100_000), 20)
    return "acme " + " ".join(f"w{word}" for word in words)


async def test_two_processes_storing_one_story_at_once_make_one_story(database_url: str) -> None:
    """Two pollers in two processes (two engines, two indexes) race on copies of stories:
    even rounds share a link, odd rounds retell a text."""
    one, two = Database(database_url), Database(database_url)
    rounds = 6
    try:
        clusterers = (Clusterer(), Clusterer())
        for engine, clusterer in zip((one, two), clusterers, strict=True):
            async with engine.session() as session:
                await clusterer.catch_up(session, now=NOW)  # both indexes loaded, then stale
        for round_ in range(rounds):
            if round_ % 2:
                text = distinct_story(round_)
                copies = (post(text, source="hn"), post(text + " via r/acme", source="reddit"))
            else:
                link = f"https://news.example/story-{round_}"
                copies = (
                    post(f"acme {link}?utm_source=hn", source="hn"),
                    post(f"acme news {link}?ref=reddit", source="reddit"),
                )
            await asyncio.gather(
                file(one, clusterers[0], filed(copies[0])),
                file(two, clusterers[1], filed(copies[1])),
            )
        mentions = await rows(one, Mention)
        assert len(mentions) == 2 * rounds
        assert sum(m.state == MentionState.NEW for m in mentions) == rounds
        clusters = await rows(one, Cluster)
        assert len(clusters) == rounds and all(c.size == 2 for c in clusters)
        alerts = await rows(one, OutboxItem, col(OutboxItem.kind) == OutboxKind.ALERT)
        assert len(alerts) == rounds
    finally:
        await one.dispose()
        await two.dispose()


async def test_a_post_that_links_two_unalerted_stories_makes_them_one(db: Database) -> None:
    """Parallel sources: a link-only HN story and a retold Reddit post are stored first as two
    stories; the blog post that carries both the link and the text joins them into one."""
    clusterer = Clusterer()
    article = "https://news.example/acme-outage"
    [hn] = await file(
        db, clusterer, filed(post(f"Acme down {article}?ref=hn", source="hn", url="https://h/1"))
    )
    [reddit] = await file(db, clusterer, filed(post(RETOLD, source="reddit")))
    assert hn.state == reddit.state == MentionState.NEW
    [blog] = await file(db, clusterer, filed(post(STORY, url=article + "?utm_source=rss")))
    assert hn.id is not None and reddit.id is not None
    stored = {m.id: m for m in await rows(db, Mention)}
    [cluster] = await rows(db, Cluster)
    assert cluster.lead_mention_id == hn.id and cluster.size == 3
    assert stored[reddit.id].state == MentionState.MERGED == stored[blog.id].state
    assert {m.cluster_id for m in stored.values()} == {cluster.id}
    pending_alerts = [
        item
        for item in await rows(db, OutboxItem, col(OutboxItem.kind) == OutboxKind.ALERT)
        if item.status == "pending"
    ]
    assert [item.mention_id for item in pending_alerts] == [hn.id]
    notes = [e.note for e in await rows(db, Event, col(Event.mention_id) == reddit.id)]
    assert notes[-1] == f"same story as mention {hn.id} (a later post retells both)"


@pytest.mark.parametrize("posted", [("reddit",), ("hn", "reddit")])
async def test_a_posted_alert_is_never_folded_into_another_story(
    db: Database, posted: tuple[str, ...]
) -> None:
    clusterer = Clusterer()
    article = "https://news.example/acme-outage"
    [hn] = await file(
        db, clusterer, filed(post(f"Acme down {article}?ref=hn", source="hn", url="https://h/1"))
    )
    [reddit] = await file(db, clusterer, filed(post(RETOLD, source="reddit")))
    leads = {"hn": hn, "reddit": reddit}
    async with db.session() as session:
        for name in posted:
            mention_id = leads[name].id
            assert mention_id is not None
            await mention_store.set_message(session, mention_id=mention_id, channel="C1", ts=name)
    await file(db, clusterer, filed(post(STORY, url=article + "?utm_source=rss")))
    stored = {m.source: m for m in await rows(db, Mention)}
    [cluster] = await rows(db, Cluster)
    if posted == ("reddit",):
        # The card people already see leads; the unseen one folds into it.
        assert cluster.lead_mention_id == reddit.id and cluster.size == 3
        assert stored["hn"].state == MentionState.MERGED
    else:
        # Both are out: the older leads and the other stays a story of its own.
        assert cluster.lead_mention_id == hn.id and cluster.size == 2
        assert stored["reddit"].state == MentionState.NEW and stored["reddit"].cluster_id is None


async def test_a_batchs_rows_keep_the_order_of_its_decisions(db: Database) -> None:
    """New stories' events and alerts are written in bulk, yet every event and outbox row of a
    batch gets its id in the order the decisions were made (delivery goes by id)."""
    clusterer = Clusterer()
    stored = await file(
        db,
        clusterer,
        filed(post(STORY)),
        filed(post(RETOLD, source="reddit:r/acme")),  # joins the first: its card is updated
        filed(post(OTHER)),
        filed(post(RETOLD, source="hn")),  # joins again, after another new story
    )
    first, _, other, _ = stored
    items = sorted(await rows(db, OutboxItem), key=lambda item: item.id)
    assert [(item.kind, item.mention_id) for item in items] == [
        (OutboxKind.ALERT, first.id),
        (OutboxKind.CARD_UPDATE, first.id),
        (OutboxKind.ALERT, other.id),
        (OutboxKind.CARD_UPDATE, first.id),
    ]
    events = sorted(await rows(db, Event), key=lambda event: event.id)
    assert [(event.action, event.mention_id) for event in events] == [
        ("found", first.id),
        ("merge", stored[1].id),
        ("found", other.id),
        ("merge", stored[3].id),
    ]
