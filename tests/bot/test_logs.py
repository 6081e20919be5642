"""Log formats, correlation ids and secret redaction, through the real logging configuration."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from bot.logs import configure_logging, correlated, correlation_id, start_correlation

TOKEN = "xoxb-2024-5555-SuperSecretBotToken"
APP_TOKEN = "xapp-1-A0123-777-SecretAppToken"
log = logging.getLogger("earful.test")


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.captureWarnings(False)


def json_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


@pytest.mark.usefixtures("restore_root_logging")
async def test_json_records_carry_the_id_of_the_work_they_belong_to(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")

    async def listener() -> None:
        await asyncio.sleep(0)
        log.info("from a task the request started")

    log.info("before any request")
    with correlated("req", request_type="command", team="T0TEAM"):
        log.info("handling")
        task = asyncio.create_task(listener())
    log.info("between requests")  # the request's id must not leak into what follows
    await task
    with correlated("req", request_type="block_actions"):
        log.warning("second request")

    records = json_lines(capsys.readouterr().err)
    by_message = {record["message"]: record for record in records}
    assert set(by_message) == {
        "before any request",
        "handling",
        "from a task the request started",
        "between requests",
        "second request",
    }
    first = by_message["handling"]
    assert first["correlation_id"].startswith("req-")
    assert first["request_type"] == "command" and first["team"] == "T0TEAM"
    assert first["level"] == "INFO" and first["logger"] == "earful.test" and "time" in first
    # A task started while handling the request (as Bolt runs listeners) keeps its id.
    assert (
        by_message["from a task the request started"]["correlation_id"] == first["correlation_id"]
    )
    assert "correlation_id" not in by_message["before any request"]
    assert "correlation_id" not in by_message["between requests"]
    second = by_message["second request"]
    assert second["correlation_id"].startswith("req-")
    assert second["correlation_id"] != first["correlation_id"]
    assert second["request_type"] == "block_actions" and "team" not in second


@pytest.mark.usefixtures("restore_root_logging")
async def test_each_poll_task_has_its_own_id(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")

    async def poll(name: str) -> str | None:
        start_correlation("poll", source="rss")
        log.info("polling %s", name)
        await asyncio.sleep(0)
        log.info("polled %s", name)
        return correlation_id()

    ids = await asyncio.gather(poll("a"), poll("b"))
    assert correlation_id() is None  # the caller's context is untouched
    records = json_lines(capsys.readouterr().err)
    for name, poll_id in zip("ab", ids, strict=True):
        mine = [r for r in records if r["message"].endswith(f" {name}")]
        assert [r["correlation_id"] for r in mine] == [poll_id, poll_id]
        assert all(r["source"] == "rss" for r in mine)
    assert ids[0] != ids[1]


@pytest.mark.usefixtures("restore_root_logging")
def test_text_format_shows_the_id_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")
    log.info("outside")
    with correlated("job") as job_id:
        log.info("inside")
    outside, inside = capsys.readouterr().err.splitlines()
    assert outside.endswith("INFO earful.test: outside")
    assert inside.endswith(f"INFO earful.test [{job_id}]: inside")


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.usefixtures("restore_root_logging")
def test_secrets_are_redacted_in_every_format(
    log_format: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", log_format)
    with correlated("req"):
        log.warning("Slack said no to %s", TOKEN)
        log.info(f"socket mode with {APP_TOKEN}")
        try:
            raise RuntimeError(f"auth failed for token={TOKEN}")
        except RuntimeError:
            log.exception("listener failed")
        log.info("where am I", stack_info=True, extra={"token": TOKEN})

    err = capsys.readouterr().err
    assert TOKEN not in err and APP_TOKEN not in err
    assert "SuperSecret" not in err and "SecretAppToken" not in err
    assert "xoxb-…redacted" in err and "xapp-…redacted" in err
    if log_format == "json":
        records = json_lines(err)
        assert len(records) == 4
        failed = next(r for r in records if r["message"] == "listener failed")
        assert "RuntimeError: auth failed for token=xoxb-…redacted" in failed["exception"]
        assert "stack" in records[-1]


@pytest.mark.usefixtures("restore_root_logging")
def test_configured_secrets_are_redacted_even_without_a_recognisable_shape(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bot.settings import load_settings

    settings = load_settings(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET="8f3c2a9d1e7b4c6a5f0e9d8c7b6a5f4e",
        DATABASE_URL="postgresql://earful:Db-Pass-Wd-31337@db.internal:5432/earful",
        GITHUB_TOKEN="ghp_ExampleGithubTokenValue0123456789",
        REDDIT_CLIENT_SECRET="reddit-secret-value-xyz",
    )
    secrets = settings.secret_values()
    assert "Db-Pass-Wd-31337" in secrets and "8f3c2a9d1e7b4c6a5f0e9d8c7b6a5f4e" in secrets
    configure_logging("INFO", "json", secrets=secrets)
    log.error("verifier got secret 8f3c2a9d1e7b4c6a5f0e9d8c7b6a5f4e from env")
    try:
        raise ConnectionError("could not connect as earful:Db-Pass-Wd-31337@db.internal")
    except ConnectionError:
        log.exception("database unreachable")
    log.warning("GitHub refused ghp_ExampleGithubTokenValue0123456789; reddit-secret-value-xyz")

    err = capsys.readouterr().err
    for secret in secrets:
        assert secret not in err
    assert err.count("…redacted") >= 4
    assert len(json_lines(err)) == 3


@pytest.mark.usefixtures("restore_root_logging")
async def test_a_run_skipped_behind_a_long_one_is_not_a_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A poll of a big burst outlasts the tick: APScheduler skips the next runs and says so at
    # WARNING every tick. Earful's log keeps its warnings for what needs a person.
    from apscheduler.events import EVENT_JOB_MAX_INSTANCES
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    configure_logging("INFO", "text")
    release = asyncio.Event()
    skipped = asyncio.Event()

    async def long_poll() -> None:
        await release.wait()

    scheduler = AsyncIOScheduler()
    scheduler.add_listener(lambda _: skipped.set(), mask=EVENT_JOB_MAX_INSTANCES)
    scheduler.add_job(long_poll, "interval", seconds=0.05, max_instances=1, id="poll")
    scheduler.start()
    try:
        await asyncio.wait_for(skipped.wait(), timeout=30)
        log.warning("a real warning")
    finally:
        release.set()
        scheduler.shutdown(wait=False)
    err = capsys.readouterr().err
    assert "a real warning" in err
    assert "skipped" not in err
