"""The digest composed from a seeded database, sent to the fake Slack with its charts."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.digest import Digests, export_command
from bot.digest_charts import Chart
from bot.digest_schedule import window_for
from storage import mentions as mention_store
from storage.db import Database
from storage.digest_data import DigestData, DrillDown
from storage.models import DigestSubscription, Mention
from tests.fakes.slack_api import FakeSlackApi, block_kit_problems

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The digest of Tuesday 24 November 2026 at 08:00 UTC: Monday 08:00 → Tuesday 08:00.
WINDOW = window_for(date(2026, 11, 24), 8 * 60, "UTC")
HOSTILE = '<!channel> =HYPERLINK("https://evil.example") <@U0BOSS>'


def make(key: str, found_at: datetime, **fields: Any) -> Mention:
    values: dict[str, Any] = {
        "watch_name": "acme",
        "watch_kind": "brand",
        "watches": ["acme"],
        "source": "hn",
        "origin": "test",
        "external_id": key,
        "text": f"post {key}",
        "department": "support",
        "priority": "P3",
        "found_at": found_at,
        "updated_at": found_at,
    }
    values.update(fields)
    return Mention(**values)


@pytest.fixture
async def client(fake_slack: FakeSlackApi) -> AsyncIterator[AsyncWebClient]:
    yield AsyncWebClient(token="xoxb-digest-test", base_url=fake_slack.url)


async def seed(db: Database, client: AsyncWebClient) -> dict[str, int]:
    """Three mentions in the period (two support, one sales) and one the day before."""
    # The P1's alert is in #support, so the digest can link to it.
    alert = await client.chat_postMessage(channel="C0SUPPORT", text="alert")
    monday = datetime(2026, 11, 23, tzinfo=UTC)
    rows = [
        make(
            "a1",
            monday + timedelta(hours=10),
            priority="P1",
            text=HOSTILE,
            author=HOSTILE,
            url="https://news.example/a1",
            primary_intent="complaint",
            sentiment_compound=-0.6,
            sentiment_label="negative",
            channel="C0SUPPORT",
            ts=alert["ts"],
        ),
        make(
            "a2",
            monday + timedelta(hours=12),
            source="reddit:r/acme",
            priority="P2",
            state="escalated",
            escalation_level=1,
            primary_intent="complaint",
            sentiment_compound=-0.4,
            sentiment_label="negative",
        ),
        make(
            "a3",
            monday + timedelta(hours=20),
            source="rss:https://blog.example/feed",
            department="sales",
            author="=cmd|' /C calc'!A0",
            primary_intent="purchase_intent",
            sentiment_compound=0.5,
            sentiment_label="positive",
        ),
        make("b1", monday - timedelta(hours=12)),
    ]
    async with db.session() as session:
        stored = await mention_store.add_mentions(session, mentions=rows)
    return {m.external_id: int(m.id or 0) for m in stored}


def digests(db: Database, client: AsyncWebClient, **kwargs: Any) -> Digests:
    return Digests(db, client=client, posting_client=client, **kwargs)


async def test_the_digest_shows_the_seeded_numbers(db: Database, client: AsyncWebClient) -> None:
    ids = await seed(db, client)
    service = digests(db, client)
    data, message = await service.compose(WINDOW)
    assert data.total.count == 3 and data.total.previous == 1
    assert message.text.startswith("Earful daily digest: 3 mentions (▲ +2 (+200%)), 1 open")
    assert block_kit_problems(message.blocks) == []
    by_id = {b.get("block_id"): b for b in message.blocks}
    departments = by_id["digest_departments"]["text"]["text"]
    assert "• *support* 2  ▲ +1 (+100%)" in departments
    assert "• *sales* 1  ▲ +1 (new)" in departments
    sources = by_id["digest_sources"]["text"]["text"]
    assert "*reddit* 1" in sources and "*rss* 1" in sources and "*hn* 1" in sources
    text = str(message.blocks)
    assert "<!channel>" not in text
    # The P1 links to its alert in #support (a permalink from Slack).
    assert "/archives/C0SUPPORT/p" in text
    # The support row's menu lists exactly the two support mentions.
    option = by_id["digest_departments"]["accessory"]["options"][0]
    reply = await service.drill(option["value"])
    assert block_kit_problems(reply.blocks) == []
    listed = str(reply.blocks)
    assert "/archives/C0SUPPORT/p" in listed and "post a2" in listed and "post a3" not in listed
    assert sorted(ids) == ["a1", "a2", "a3", "b1"]


async def test_send_posts_the_text_then_uploads_charts_into_its_thread(
    db: Database, client: AsyncWebClient, fake_slack: FakeSlackApi
) -> None:
    await seed(db, client)
    ts = await digests(db, client).send("C0EXECS", WINDOW)
    digest, charts_message = fake_slack.messages("C0EXECS")
    assert digest["ts"] == ts and digest["text"].startswith("Earful daily digest")
    steps = ["files.getUploadURLExternal"] * 3 + ["upload"] * 3 + ["files.completeUploadExternal"]
    assert fake_slack.upload_flow() == steps
    assert charts_message["thread_ts"] == ts
    assert [f["name"] for f in charts_message["files"]] == [
        "sentiment.png",
        "share_of_voice.png",
        "volume_by_department.png",
    ]
    for stored in fake_slack.files.values():
        assert stored["content"].startswith(PNG_SIGNATURE)
        assert stored["alt_txt"] and len(stored["alt_txt"]) <= 1000
        assert stored["shares"] == [{"channel": "C0EXECS", "thread_ts": ts}]


async def test_a_failed_upload_still_delivers_the_text(
    db: Database, client: AsyncWebClient, fake_slack: FakeSlackApi
) -> None:
    await seed(db, client)
    fake_slack.fail("files.getUploadURLExternal", error="file_uploads_disabled")
    ts = await digests(db, client).send("C0EXECS", WINDOW)
    (message,) = fake_slack.messages("C0EXECS")
    assert message["ts"] == ts and "3 mentions" in message["text"]
    assert not fake_slack.calls_to("files.completeUploadExternal")


async def test_a_failed_rendering_still_delivers_the_text(
    db: Database, client: AsyncWebClient, fake_slack: FakeSlackApi
) -> None:
    async def broken(_: DigestData) -> list[Chart]:
        raise RuntimeError("matplotlib fell over")

    await seed(db, client)
    await digests(db, client, render=broken).send("C0EXECS", WINDOW)
    assert len(fake_slack.messages("C0EXECS")) == 1
    assert fake_slack.upload_flow() == []


async def test_a_retried_day_is_not_posted_twice(
    db: Database, client: AsyncWebClient, fake_slack: FakeSlackApi
) -> None:
    await seed(db, client)
    service = digests(db, client)
    sub = DigestSubscription(
        id=7, target="U0ALICE", send_minute=480, tz="UTC", departments=[], created_by="U0ALICE"
    )
    await service.deliver(sub, WINDOW, 1)
    await service.deliver(sub, WINDOW, 2)  # the first attempt's answer was lost, say
    dm = fake_slack.calls_to("conversations.open")[0].response
    assert dm is not None
    channel = dm["channel"]["id"]
    top_level = fake_slack.messages(channel, include_replies=False)
    assert len(top_level) == 1
    # A new day is posted even on a retry.
    await service.deliver(sub, window_for(date(2026, 11, 25), 480, "UTC"), 2)
    assert len(fake_slack.messages(channel, include_replies=False)) == 2


async def test_export_uploads_a_csv_of_the_period(
    db: Database, client: AsyncWebClient, fake_slack: FakeSlackApi
) -> None:
    await seed(db, client)
    service = digests(db, client)
    data, _ = await service.compose(WINDOW)
    reply = await service.export(
        value=data.total.drill.to_value(), user_id="U0ALICE", channel_id="C0EXECS"
    )
    assert "3 item(s)" in reply.text
    assert export_command(data.total.drill) in str(reply.blocks)
    (stored,) = fake_slack.files.values()
    assert stored["name"].endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(stored["content"].decode("utf-8"))))
    assert [r["text"] for r in rows] == [HOSTILE, "post a2", "post a3"]
    # A spreadsheet must not run what a stranger wrote as a formula.
    assert rows[2]["author"] == "'=cmd|' /C calc'!A0"
    assert [r["priority"] for r in rows] == ["P1", "P2", "P3"]


def test_export_command_names_the_period() -> None:
    drill = DrillDown(start=WINDOW.start, end=WINDOW.end)
    assert export_command(drill) == (
        "earful export --since 2026-11-23T08:00:00Z --until 2026-11-24T08:00:00Z --format csv"
    )
