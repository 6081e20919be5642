"""The ``earful`` command line (also ``python -m bot``)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from dotenv import load_dotenv

from bot.logs import configure_logging
from bot.settings import Settings, SettingsError, load_settings

cli = typer.Typer(
    help="Earful: social listening for every department, in Slack.",
    no_args_is_help=True,
    add_completion=False,
)
db_cli = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
cli.add_typer(db_cli, name="db")


def _settings(env_file: Path | None) -> Settings:
    # Real environment variables win over .env, so a deployment can override one value.
    load_dotenv(env_file or Path.cwd() / ".env", override=False)
    try:
        return load_settings()
    except SettingsError as exc:
        typer.echo("Earful's configuration has problems:", err=True)
        for problem in exc.problems:
            typer.echo(f"  - {problem}", err=True)
        typer.echo("Set them in the environment or in .env (see .env.example).", err=True)
        raise typer.Exit(2) from None


EnvFile = Annotated[
    Path | None, typer.Option("--env-file", help="Read settings from this file instead of ./.env")
]


@cli.command()
def run(env_file: EnvFile = None) -> None:
    """Start Earful: Socket Mode if SLACK_APP_TOKEN is set, else HTTP on PORT at /slack/events."""
    settings = _settings(env_file)
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secret_values())
    from bot.runtime import serve

    asyncio.run(serve(settings))


@cli.command()
def check(
    env_file: EnvFile = None,
    offline: Annotated[bool, typer.Option(help="Skip the call to Slack's auth.test")] = False,
) -> None:
    """Validate the configuration, the database and the Slack token; say what is wrong."""
    settings = _settings(env_file)
    failures = asyncio.run(_check(settings, offline=offline))
    if failures:
        raise typer.Exit(1)
    typer.echo("Everything looks right.")


async def _check(settings: Settings, *, offline: bool) -> int:
    from slack_sdk.errors import SlackApiError

    from bot.slack_client import build_client
    from storage.db import Database, redact_url
    from storage.migrate import current

    failures = 0
    mode = "Socket Mode" if settings.socket_mode else f"HTTP on port {settings.port}"
    typer.echo(f"ok   settings ({mode})")
    if not settings.admins:
        typer.echo("warn EARFUL_ADMINS is empty: nobody can add watches or routes from Slack")
    if settings.fetch_allow_private:
        typer.echo("warn EARFUL_FETCH_ALLOW_PRIVATE is on: feeds may point at private addresses")
    db = Database(settings.database_url)
    if await db.ping():
        revision = await asyncio.to_thread(current, settings.database_url)
        note = (
            f"schema {revision}"
            if revision
            else "empty (earful run or earful db upgrade creates it)"
        )
        typer.echo(f"ok   database {redact_url(settings.database_url)}: {note}")
    else:
        failures += 1
        typer.echo(f"FAIL database {redact_url(settings.database_url)}: cannot connect")
    await db.dispose()
    if not offline:
        client = build_client(settings)
        try:
            auth = await client.auth_test()
            typer.echo(f"ok   Slack token: bot {auth.get('user')} in workspace {auth.get('team')}")
        except SlackApiError as exc:
            failures += 1
            typer.echo(f"FAIL Slack token: Slack says {exc.response.get('error')}")
        except Exception as exc:
            failures += 1
            typer.echo(f"FAIL Slack API unreachable: {type(exc).__name__}: {exc}")
    return failures


@db_cli.command("upgrade")
def db_upgrade(
    env_file: EnvFile = None,
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Bring the database schema up to date."""
    load_dotenv(env_file or Path.cwd() / ".env", override=False)
    import os

    from storage.db import redact_url
    from storage.migrate import upgrade

    url = os.environ.get("DATABASE_URL", "sqlite:///earful.db")
    configure_logging("INFO")
    upgrade(url, revision)
    typer.echo(f"Database {redact_url(url)} is at {revision}.")


@cli.command()
def scan(
    once: Annotated[bool, typer.Option("--once", help="Poll every watch once, then exit")] = True,
    env_file: EnvFile = None,
) -> None:
    """Poll every active watch once without Slack; new mentions are stored and queued."""
    settings = _settings(env_file)
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secret_values())
    outcomes = asyncio.run(_scan(settings))
    for outcome in outcomes:
        typer.echo(json.dumps(outcome))


async def _scan(settings: Settings) -> list[dict[str, object]]:
    from bot.polling import Poller
    from bot.runtime import fetch_policy
    from bot.scoring import Scorer
    from storage.db import Database
    from storage.migrate import upgrade
    from watchers.http import HttpFetcher

    await asyncio.to_thread(upgrade, settings.database_url)
    db = Database(settings.database_url)
    fetcher = HttpFetcher(fetch_policy(settings))
    scorer = Scorer(0)
    poller = Poller(db, fetcher=fetcher, scorer=scorer, source_settings=settings.source_settings())
    try:
        outcomes = await poller.tick(everything=True)
    finally:
        await fetcher.close()
        scorer.close()
        await db.dispose()
    return [
        {
            "watch": o.watch,
            "source": o.source,
            "posts": o.posts,
            "new_mentions": o.new_mentions,
            "error": o.error,
        }
        for o in outcomes
    ]


@cli.command()
def classify(
    file: Annotated[
        str, typer.Argument(help="JSON Lines of posts ({id, text, title?, …}); - for stdin")
    ],
    watches: Annotated[
        Path | None,
        typer.Option(
            "--watches", help="YAML/JSON list of {name, query, kind, exclude?, dept?} to match"
        ),
    ] = None,
    classify_all: Annotated[
        bool, typer.Option("--all", help="Also classify posts that match no watch")
    ] = False,
    kind: Annotated[
        str, typer.Option("--kind", help="Watch kind assumed for posts no watch matched")
    ] = "brand",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout")
    ] = None,
    env_file: EnvFile = None,
) -> None:
    """Say what Earful would decide about each post: watches, sentiment, intents, route,
    priority. Watches come from DATABASE_URL unless --watches is given. No Slack needed."""
    from bot.classify import (
        ClassifyError,
        classify_lines,
        load_database_watches,
        load_watch_file,
    )
    from watchers.departments import WatchKind

    configure_logging("WARNING")
    try:
        if kind not in set(WatchKind):
            known = ", ".join(k.value for k in WatchKind)
            raise ClassifyError(f"--kind {kind!r} is not one of {known}")
        if watches is not None:
            watch_set = load_watch_file(watches)
        else:
            # Only the database is needed: no Slack settings are read or checked.
            load_dotenv(env_file or Path.cwd() / ".env", override=False)
            import os

            url = os.environ.get("DATABASE_URL", "sqlite:///earful.db")
            watch_set = asyncio.run(load_database_watches(url))
        if not len(watch_set) and not classify_all:
            raise ClassifyError(
                f"no active watches in {watch_set.origin}: add one, pass --watches, or use --all"
            )
        source = sys.stdin if file == "-" else open(file, encoding="utf-8")  # noqa: SIM115
    except (ClassifyError, OSError) as exc:
        message = f"{exc.filename}: {exc.strerror}" if isinstance(exc, OSError) else str(exc)
        typer.echo(f"earful classify: {message}", err=True)
        raise typer.Exit(2) from None
    counts = {"posts": 0, "matched": 0, "errors": 0}
    try:
        out = sys.stdout if output is None else output.open("w", encoding="utf-8")
    except OSError as exc:
        typer.echo(f"earful classify: {exc.filename}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    try:
        for record in classify_lines(
            source, watch_set, unmatched_kind=WatchKind(kind) if classify_all else None
        ):
            counts["posts"] += 1
            if "error" in record:
                counts["errors"] += 1
            elif record["watches"]:
                counts["matched"] += 1
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
    finally:
        if source is not sys.stdin:
            source.close()
        if out is not sys.stdout:
            out.close()
    typer.echo(
        f"classified {counts['posts']} line(s): {counts['matched']} matched a watch "
        f"of {len(watch_set)} from {watch_set.origin}, {counts['errors']} bad line(s)",
        err=True,
    )


@cli.command()
def export(
    since: Annotated[
        str, typer.Option("--since", help="From this date or ISO datetime (UTC unless offset)")
    ],
    until: Annotated[
        str,
        typer.Option("--until", help="Up to this datetime, or to the end of this date"),
    ],
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "csv",
    department: Annotated[
        list[str] | None,
        typer.Option("--department", help="Only this department (repeat for more)"),
    ] = None,
    include_muted: Annotated[
        bool, typer.Option("--include-muted", help="Also export muted posts")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout")
    ] = None,
    env_file: EnvFile = None,
) -> None:
    """Export the mentions found in a period as CSV or JSON Lines (DATABASE_URL; no Slack)."""
    from bot.export import FORMATS, ExportError, export_range
    from bot.export import export as write_export
    from storage.db import Database

    configure_logging("WARNING")
    load_dotenv(env_file or Path.cwd() / ".env", override=False)
    import os

    url = os.environ.get("DATABASE_URL", "sqlite:///earful.db")
    try:
        if fmt not in FORMATS:
            raise ExportError(f"--format {fmt!r}: use {' or '.join(FORMATS)}")
        wanted = export_range(
            since=since, until=until, departments=department or (), include_muted=include_muted
        )
        out = sys.stdout if output is None else output.open("w", encoding="utf-8", newline="")
    except ExportError as exc:
        typer.echo(f"earful export: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"earful export: {exc.filename}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None

    async def run_export() -> int:
        db = Database(url)
        try:
            return await write_export(db, out, wanted, fmt="csv" if fmt == "csv" else "jsonl")
        finally:
            await db.dispose()

    try:
        written = asyncio.run(run_export())
    finally:
        if out is not sys.stdout:
            out.close()
    typer.echo(
        f"exported {written} mention(s) found from {wanted.since.isoformat()} "
        f"to {wanted.until.isoformat()}",
        err=True,
    )


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)
