"""The digest through the real app: signed slash commands and clicks in, fake Slack out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from storage import digest_subscriptions as store
from storage import mentions as mention_store
from storage.models import Mention
from storage.types import utcnow
from tests.fakes.slack_api import FakeSlackApi, block_kit_problems
from tests.fakes.slack_requests import channel_ref
from tests.support.earful import ADMIN, Earful

BOB = "U0BOB"  # not an admin


def mention(key: str, **fields: Any) -> Mention:
    found = utcnow() - timedelta(hours=2)
    values: dict[str, Any] = {
        "watch_name": "acme",
        "watch_kind": "brand",
        "watches": ["acme"],
        "source": "hn",
        "origin": "hn",
        "external_id": key,
        "url": f"https://news.example/{key}",
        "text": f"Acme lost my order {key} <!channel>",
        "department": "support",
        "priority": "P2",
        "primary_intent": "complaint",
        "sentiment_compound": -0.5,
        "sentiment_label": "negative",
        "found_at": found,
        "updated_at": found,
    }
    values.update(fields)
    return Mention(**values)


async def seed(earful: Earful) -> None:
    async with earful.runtime.db.session() as session:
        await mention_store.add_mentions(
            session,
            mentions=[mention("m1"), mention("m2", department="sales", priority="P3")],
        )


def reply_text(reply: dict[str, Any]) -> str:
    return str(reply.get("text", "")) + str(reply.get("blocks", ""))


async def test_subscribe_in_a_dm_takes_the_persons_slack_time_zone(earful: Earful) -> None:
    reply = await earful.command("digest subscribe time=07:30 depts=support,pr", user_id=BOB)
    assert reply["response_type"] == "ephemeral"
    assert "your DMs every day at 07:30 Europe/London (support, pr)" in reply_text(reply)
    async with earful.runtime.db.session() as session:
        sub = await store.get_subscription(session, target=BOB)
    assert sub is not None and not sub.is_channel
    assert (sub.send_minute, sub.tz, sub.departments) == (450, "Europe/London", ["support", "pr"])
    shown = await earful.command("digest", user_id=BOB)
    assert "daily at 07:30 Europe/London (support, pr)" in reply_text(shown)
    gone = await earful.command("digest unsubscribe", user_id=BOB)
    assert "No more digests for you." in reply_text(gone)
    async with earful.runtime.db.session() as session:
        assert await store.get_subscription(session, target=BOB) is None


async def test_only_admins_send_the_digest_to_a_channel(earful: Earful) -> None:
    execs = channel_ref("C0EXECS", "execs")
    refused = await earful.command(f"digest subscribe channel={execs}", user_id=BOB)
    assert "Only Earful admins can send the digest to a channel." in reply_text(refused)
    reply = await earful.command(
        f"digest subscribe channel={execs} time=07:00 tz=america/new_york", user_id=ADMIN
    )
    assert "<#C0EXECS> every day at 07:00 America/New_York" in reply_text(reply)
    async with earful.runtime.db.session() as session:
        sub = await store.get_subscription(session, target="C0EXECS")
    assert sub is not None and sub.is_channel and sub.tz == "America/New_York"
    bad = await earful.command("digest subscribe time=25:00", user_id=BOB)
    assert "is not a time" in reply_text(bad)


async def test_preview_is_an_ephemeral_digest_without_charts(
    earful: Earful, fake_slack: FakeSlackApi
) -> None:
    await seed(earful)
    reply = await earful.command("digest preview", user_id=BOB)
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith("Earful daily digest: 2 mentions")
    assert block_kit_problems(reply["blocks"]) == []
    assert "<!channel>" not in str(reply["blocks"])
    assert not fake_slack.calls_to("files.getUploadURLExternal")


async def test_digest_now_then_drill_down_and_export_from_it(
    earful: Earful, fake_slack: FakeSlackApi
) -> None:
    await seed(earful)
    reply = await earful.command("digest now", user_id=BOB)
    assert "on its way to your DMs" in reply_text(reply)
    await fake_slack.wait_for("files.completeUploadExternal")
    digest, charts = fake_slack.messages("D0BOB")
    assert digest["text"].startswith("Earful daily digest: 2 mentions")
    assert charts["thread_ts"] == digest["ts"] and len(charts["files"]) == 3

    # The "Mentions (2)" button lists both, ephemerally.
    hook = fake_slack.response_url()
    status = await earful.click("D0BOB", digest, "digest_drill.0", user_id=BOB, response_url=hook)
    assert status == 200
    (listed,) = await fake_slack.wait_for("response_url")
    assert listed.args["response_type"] == "ephemeral"
    assert listed.args["replace_original"] is False
    text = str(listed.args["blocks"])
    assert "news.example/m1" in text and "news.example/m2" in text

    # A menu row (department: support) lists only that department's.
    menu_block = next(b for b in digest["blocks"] if b.get("block_id") == "digest_departments")
    support = next(
        o for o in menu_block["accessory"]["options"] if o["text"]["text"].startswith("support")
    )
    status = await earful.click(
        "D0BOB",
        digest,
        "digest_drill_menu",
        user_id=BOB,
        block_id="digest_departments",
        selected_option=support,
        response_url=fake_slack.response_url(),
    )
    assert status == 200
    calls = await fake_slack.wait_for("response_url", 2)
    text = str(calls[1].args["blocks"])
    assert "news.example/m1" in text and "news.example/m2" not in text

    # Export: a CSV of the period, in the conversation, and the command line to do it again.
    status = await earful.click(
        "D0BOB", digest, "digest_export", user_id=BOB, response_url=fake_slack.response_url()
    )
    assert status == 200
    calls = await fake_slack.wait_for("response_url", 3)
    assert "earful export --since" in str(calls[2].args["blocks"])
    csv_file = next(f for f in fake_slack.files.values() if f["name"].endswith(".csv"))
    assert csv_file["shares"][0]["channel"] == "D0BOB"
    assert b"news.example/m1" in csv_file["content"]


async def test_a_broken_drill_value_answers_politely(
    earful: Earful, fake_slack: FakeSlackApi
) -> None:
    message = {"ts": "1700000000.000100", "text": "digest"}
    status = await earful.click(
        "C0EXECS",
        message,
        "digest_drill.3",
        user_id=BOB,
        value="not json",
        response_url=fake_slack.response_url(),
    )
    assert status == 200
    (answer,) = await fake_slack.wait_for("response_url")
    assert "not attached to a digest number" in str(answer.args)


async def test_the_runtime_runs_the_digest_job_every_minute(earful: Earful) -> None:
    job = earful.runtime.scheduler.get_job("digests")
    assert job is not None
    assert job.trigger.interval == timedelta(minutes=1)
