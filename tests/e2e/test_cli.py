"""The installed ``earful`` command, as a newcomer runs it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_requests import FORM, SlackRequestSigner, post_signed, slash_command

CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("SLACK_", "EARFUL_", "DATABASE_URL", "PORT"))
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_cli(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode()


async def test_check_names_what_is_missing(tmp_path: Path) -> None:
    code, out = await run_cli("check", "--offline", env=CLEAN_ENV, cwd=tmp_path)
    assert code == 2
    assert "SLACK_BOT_TOKEN is missing" in out and "SLACK_SIGNING_SECRET is missing" in out

    (tmp_path / ".env").write_text(
        "SLACK_BOT_TOKEN=xoxb-your-bot-token\nSLACK_SIGNING_SECRET=abc\nEARFUL_ADMINS=bob\n"
    )
    code, out = await run_cli("check", "--offline", env=CLEAN_ENV, cwd=tmp_path)
    assert code == 2
    assert "SLACK_BOT_TOKEN still holds the placeholder" in out
    assert "SLACK_SIGNING_SECRET looks too short" in out
    assert "EARFUL_ADMINS" in out and "bob" in out


async def test_check_against_slack(tmp_path: Path, fake_slack: FakeSlackApi) -> None:
    env = {
        **CLEAN_ENV,
        "SLACK_BOT_TOKEN": "xoxb-1-2-secretvalue",
        "SLACK_SIGNING_SECRET": "0123456789abcdef",
        "SLACK_API_URL": fake_slack.url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/e.db",
    }
    code, out = await run_cli("check", env=env, cwd=tmp_path)
    assert code == 0, out
    assert "ok   Slack token" in out and "xoxb-1-2-secretvalue" not in out


async def test_earful_run_serves_signed_requests_and_stops_cleanly(
    tmp_path: Path, fake_slack: FakeSlackApi, slack_signer: SlackRequestSigner, signing_secret: str
) -> None:
    port = free_port()
    env = {
        **CLEAN_ENV,
        "SLACK_BOT_TOKEN": "xoxb-1-2-secretvalue",
        "SLACK_SIGNING_SECRET": signing_secret,
        "SLACK_API_URL": fake_slack.url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/earful.db",
        "PORT": str(port),
        "EARFUL_HOST": "127.0.0.1",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(base + "/healthz") as health:
                        if health.status == 200:
                            assert (await health.json())["database"] is True
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("earful run did not become healthy")
            response = await post_signed(
                http, base + "/slack/events", slash_command("help"), FORM, slack_signer
            )
            assert response.status == 200
            assert "watch add" in json.dumps(await response.json())
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0, out.decode()
    assert "xoxb-1-2-secretvalue" not in out.decode() and signing_secret not in out.decode()


async def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    env = {**CLEAN_ENV, "DATABASE_URL": f"sqlite:///{tmp_path}/fresh.db"}
    code, out = await run_cli("db", "upgrade", env=env, cwd=tmp_path)
    assert code == 0, out
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config, current

    head = ScriptDirectory.from_config(alembic_config(env["DATABASE_URL"])).get_current_head()
    assert head is not None and current(env["DATABASE_URL"]) == head
