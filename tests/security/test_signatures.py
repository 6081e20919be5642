"""Who may talk to Earful: signed, fresh, first-time requests only, through the real app."""

from __future__ import annotations

import time

import aiohttp
import pytest
from sqlalchemy import select

from bot.replay_guard import ReplayGuard
from storage.db import Database
from storage.models import SeenSlackRequest
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_requests import (
    FORM,
    JSON,
    SlackRequestSigner,
    app_home_opened,
    event_callback,
    post_signed,
    slash_command,
)
from tests.security.conftest import SlackFacing, StartInstance


async def send(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], ctype: str = FORM
) -> tuple[int, str]:
    async with http.post(url, data=body, headers={"Content-Type": ctype, **headers}) as response:
        return response.status, await response.text()


async def test_bad_stale_and_missing_signatures_are_refused(
    instance: SlackFacing, http: aiohttp.ClientSession, slack_signer: SlackRequestSigner
) -> None:
    body = slash_command("help")
    now = int(time.time())
    refused = {
        "tampered": slack_signer.headers(body, tamper=True),
        "six minutes old": slack_signer.headers(body, timestamp=now - 360),
        "six minutes ahead": slack_signer.headers(body, timestamp=now + 360),
        "signed by someone else": SlackRequestSigner("not-the-secret-0123456789").headers(body),
        "no signature": {"X-Slack-Request-Timestamp": str(now)},
        "not a timestamp": {**slack_signer.headers(body), "X-Slack-Request-Timestamp": "soon"},
        "nothing": {},
    }
    for case, headers in refused.items():
        status, _ = await send(http, instance.url, body, headers)
        assert status == 401, case
    # The control: the same body, properly signed now, is served.
    status, text = await send(http, instance.url, body, slack_signer.headers(body))
    assert status == 200 and "watch add" in text


async def test_a_replayed_request_is_refused(
    instance: SlackFacing, http: aiohttp.ClientSession, slack_signer: SlackRequestSigner
) -> None:
    body = slash_command("help")
    headers = slack_signer.headers(body)
    first = await send(http, instance.url, body, headers)
    assert first[0] == 200 and "watch add" in first[1]
    for _ in range(2):
        status, text = await send(http, instance.url, body, headers)
        assert status == 401
        assert "watch add" not in text
    # Another request from the same person a second later is a new signature: served.
    other = slash_command("help")
    status, _ = await send(http, instance.url, other, slack_signer.headers(other))
    assert status == 200


async def test_slack_retries_are_not_refused_and_repeats_do_nothing(
    instance: SlackFacing,
    http: aiohttp.ClientSession,
    slack_signer: SlackRequestSigner,
    fake_slack: FakeSlackApi,
) -> None:
    # Slack redelivers an event it got no timely 2xx for as a new request, signed at the time
    # it is sent, with X-Slack-Retry-Num: that must be served like any first delivery.
    body = event_callback(app_home_opened("U0ALICE"))
    signed_at = int(time.time())
    first = await post_signed(http, instance.url, body, JSON, slack_signer, timestamp=signed_at)
    assert first.status == 200
    first.release()
    await fake_slack.wait_for("views.publish", 1)
    retry = await post_signed(
        http, instance.url, body, JSON, slack_signer, timestamp=signed_at + 1, retry_num=1
    )
    assert retry.status == 200
    retry.release()
    await fake_slack.wait_for("views.publish", 2)

    # The very same bytes again, whatever unsigned retry header they carry, are acknowledged
    # (so that Slack would stop) but handled no further.
    for retry_num in (None, 2):
        again = await post_signed(
            http,
            instance.url,
            body,
            JSON,
            slack_signer,
            timestamp=signed_at + 1,
            retry_num=retry_num,
        )
        assert again.status == (401 if retry_num is None else 200)
        again.release()
    # A third, fresh delivery is served again: a marker that the two above were not queued.
    fresh = await post_signed(
        http, instance.url, body, JSON, slack_signer, timestamp=signed_at + 2, retry_num=3
    )
    assert fresh.status == 200
    fresh.release()
    await fake_slack.wait_for("views.publish", 3)
    assert len(fake_slack.calls_to("views.publish")) == 3


async def test_a_request_replayed_to_another_replica_is_refused(
    database_url: str,
    start_instance: StartInstance,
    http: aiohttp.ClientSession,
    slack_signer: SlackRequestSigner,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share PostgreSQL; a SQLite deployment is one process")
    first, second = await start_instance(), await start_instance()
    body = slash_command("help")
    headers = slack_signer.headers(body)
    assert (await send(http, first.url, body, headers))[0] == 200
    assert (await send(http, second.url, body, headers))[0] == 401
    assert (await send(http, first.url, body, headers))[0] == 401
    # Both replicas serve requests they have not seen, in either order.
    for target in (second, first):
        fresh = slash_command("help")
        assert (await send(http, target.url, fresh, slack_signer.headers(fresh)))[0] == 200


async def test_signatures_are_forgotten_once_slack_would_refuse_them_anyway(db: Database) -> None:
    now = [1_800_000_000.0]
    guard = ReplayGuard(db, clock=lambda: now[0])
    assert await guard.first_sighting("v0=old", str(int(now[0])))
    assert not await guard.first_sighting("v0=old", str(int(now[0])))
    # Past the five minutes Bolt accepts, plus the allowance for replicas' clocks, the
    # timestamp is refused by verification anyway: the signature need not be remembered.
    now[0] += 5 * 60 + 61
    assert await guard.first_sighting("v0=new", str(int(now[0])))
    await guard.prune()
    assert len(guard) == 1
    if db.dialect == "postgresql":
        async with db.session() as session:
            kept = (await session.execute(select(SeenSlackRequest.signature))).scalars().all()
        assert kept == ["v0=new"]
        # A restarted replica still refuses what the shared table remembers.
        restarted = ReplayGuard(db, clock=lambda: now[0])
        assert not await restarted.first_sighting("v0=new", str(int(now[0])))
        await restarted.close()
    await guard.close()
