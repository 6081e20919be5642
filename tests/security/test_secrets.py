"""Secrets never reach logs or error messages, even at DEBUG and when everything goes wrong.

``earful check`` and ``earful run`` run as subprocesses with distinctive fake secrets while
Slack refuses the token, the database cannot be reached, sources fail (one of them echoing the
credentials it was sent back in its error page) and a listener blows up; everything they print
is then searched for every secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web

from tests.e2e.test_cli import CLEAN_ENV, free_port
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_requests import FORM, SlackRequestSigner, post_signed, slash_command
from tests.support.earful_process import EarfulProcess
from tests.support.leaks import assert_no_leaks

BOT_TOKEN = "xoxb-1111-2222-BotTokenSECRETbotTOKEN"
APP_TOKEN = "xapp-1-A111-2222-AppTokenSECRETappTOKEN"
SIGNING_SECRET = "SigningSECRETsigningSECRET0123456789"
DB_PASSWORD = "DbPasswordSECRETdbPASSWORD"
SOURCE_SECRETS = {
    "REDDIT_CLIENT_SECRET": "RedditSECRETredditSECRET",
    "GITHUB_TOKEN": "ghp_GithubTokenSECRETgithubTOKEN",
    "BLUESKY_APP_PASSWORD": "BlueskySECRET-bluesky-SECRET",
    "MASTODON_ACCESS_TOKEN": "MastodonSECRETmastodonSECRET",
    "STACKEXCHANGE_KEY": "StackExchangeKeySECRET",
}
SECRETS = [BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, DB_PASSWORD, *SOURCE_SECRETS.values()]


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **CLEAN_ENV,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "EARFUL_LOG_LEVEL": "DEBUG",
        "REDDIT_CLIENT_ID": "earful-test",
        "BLUESKY_IDENTIFIER": "earful.test",
        **SOURCE_SECRETS,
        **extra,
    }


async def run_to_end(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode(errors="replace")


@pytest.fixture
async def echoing_api() -> AsyncIterator[str]:
    """An API that refuses every request and quotes the credentials it was sent."""

    async def refuse(request: web.Request) -> web.Response:
        told = {k: v for k, v in request.headers.items() if k.lower() in ("authorization",)}
        body = json.dumps(
            {"message": "Bad credentials", "you_sent": told, "query": request.query_string}
        )
        return web.Response(status=401, text=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/"
    await runner.cleanup()


async def test_check_with_everything_failing_prints_no_secret(
    tmp_path: Path, fake_slack: FakeSlackApi
) -> None:
    refusing_slack = FakeSlackApi(tokens=["xoxb-some-other-token"])
    await refusing_slack.start()
    try:
        env = environment(
            tmp_path,
            SLACK_APP_TOKEN=APP_TOKEN,
            SLACK_API_URL=refusing_slack.url,
            DATABASE_URL=f"postgresql://earful:{DB_PASSWORD}@127.0.0.1:{free_port()}/earful",
        )
        code, out = await run_to_end("check", env=env, cwd=tmp_path)
    finally:
        await refusing_slack.stop()
    assert code == 1, out
    assert "FAIL database" in out and "FAIL Slack token" in out, out
    assert_no_leaks(out, SECRETS)


async def test_run_against_an_unreachable_database_prints_no_secret(tmp_path: Path) -> None:
    env = environment(
        tmp_path,
        DATABASE_URL=f"postgresql://earful:{DB_PASSWORD}@127.0.0.1:{free_port()}/earful",
        PORT=str(free_port()),
        EARFUL_HOST="127.0.0.1",
    )
    code, out = await run_to_end("run", env=env, cwd=tmp_path)
    assert code != 0, out
    assert "127.0.0.1" in out  # it did say what it could not reach
    assert_no_leaks(out, SECRETS)


async def test_run_with_failing_slack_sources_and_listeners_logs_no_secret(
    tmp_path: Path,
    fake_slack: FakeSlackApi,
    echoing_api: str,
) -> None:
    signer = SlackRequestSigner(SIGNING_SECRET)
    env = environment(
        tmp_path,
        SLACK_API_URL=fake_slack.url,
        DATABASE_URL=f"sqlite:///{tmp_path}/earful.db",
        PORT=str(free_port()),
        EARFUL_HOST="127.0.0.1",
        EARFUL_ADMINS="U0ALICE",
        EARFUL_FETCH_ALLOW_PRIVATE="true",
        EARFUL_POLL_TICK_SECONDS="0.2",
        EARFUL_GITHUB_API_URL=echoing_api,
        EARFUL_REDDIT_URL=echoing_api,
        EARFUL_REDDIT_OAUTH_URL=echoing_api,
        EARFUL_BLUESKY_API_URL=echoing_api,
        EARFUL_BLUESKY_AUTH_URL=echoing_api + "xrpc/",
        EARFUL_STACKEXCHANGE_API_URL=echoing_api,
        MASTODON_INSTANCE=echoing_api,
    )
    # Slack refuses the token once: the first request meets invalid_auth.
    fake_slack.fail("auth.test", error="invalid_auth")
    earful = EarfulProcess(env, tmp_path)
    await earful.start()
    try:
        async with aiohttp.ClientSession() as http:
            await earful.wait_healthy()
            url = earful.events_url

            async def command(text: str) -> str:
                body = slash_command(text, user_id="U0ALICE")
                response = await post_signed(http, url, body, FORM, signer)
                return await response.text()

            await command("help")  # answered while Slack refuses the token
            sources = ",".join(
                [
                    f"rss:http://127.0.0.1:{free_port()}/feed",
                    "github",
                    "reddit:r/acme",
                    "bluesky",
                    "stackexchange:stackoverflow",
                ]
            )
            reply = await command(f'watch add acme "acme" sources={sources} every=1m')
            assert "saved" in reply, reply
            # A listener that blows up: a signed payload no listener expects.
            garbage = {"type": "block_actions", "actions": None, "user": {"id": "U0ALICE"}}
            response = await post_signed(
                http, url, urlencode({"payload": json.dumps(garbage)}).encode(), FORM, signer
            )
            assert response.status < 500
            await wait_for_failures(command)
    finally:
        await earful.stop()
    out = earful.output()
    assert "Bad credentials" in out or "HTTP 401" in out or "failing" in out, out[-3000:]
    assert_no_leaks(out, SECRETS)


async def wait_for_failures(command: object) -> None:
    """Until /earful status reports the sources failing (each was polled and refused)."""
    assert callable(command)
    async with asyncio.timeout(30):
        while True:
            status = await command("status")
            if status.count("fail") + status.count("blocked") >= 3:
                return
            await asyncio.sleep(0.2)


del os
