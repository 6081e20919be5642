"""Resident memory of a running Earful with many watches and a large store of mentions.

Run it from the repository root::

    python bench/memory.py [--watches 1000] [--mentions 1000000] [--postgres URL]

It migrates a fresh database (SQLite in a temporary directory, or a new database on the
``--postgres`` server), stores ``--watches`` active watches and ``--mentions`` mentions with
bulk inserts (found over the last 30 days, so a tenth are inside clustering's 72-hour window
and carry a text signature, as stored mentions do), then starts ``python -m bot run`` against
it with its Slack Web API a local fake. Once it has polled (every watch reads one local feed
whose posts mention the watched brands: the catalog and matcher of every watch, and the
clustering index caught up with the window) and answered ``/earful queue``, ``search`` and
``status``, the resident set size (VmRSS) of the main process and of each scoring-pool process
is printed. The issue asks for under 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as a script, Python puts bench/ on the path rather than the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import numpy as np
from sqlalchemy import create_engine, insert, text

from bench.workload import (
    ADMIN,
    SIGNING_SECRET,
    brand_names,
    command,
    database_for,
    earful_env,
    feed_server,
    make_posts,
    review_texts,
    rss_feed,
    start_earful,
    tree_rss_mb,
)
from storage.db import sync_url
from storage.migrate import upgrade
from storage.models import Mention, SourceState, Watch
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_requests import SlackRequestSigner

TARGET_MB = 300
SEED_CHUNK = 10_000
DEPARTMENTS = ("support", "product", "pr", "sales", "hr", "legal", "research")


def signature(rng: random.Random) -> bytes:
    """A stored MinHash signature (64 hash values below 2**32) of some unrelated text."""
    return np.array([rng.getrandbits(32) for _ in range(64)], dtype=np.uint64).tobytes()


def seed(database_url: str, *, watches: int, mentions: int, feed_url: str) -> None:
    """Watches and mentions, written straight into the tables in large batches."""
    rng = random.Random(5)
    brands = brand_names(watches)
    texts = review_texts()
    now = datetime.now(UTC)
    engine = create_engine(sync_url(database_url))
    source = f"rss:{feed_url}"
    with engine.begin() as db:
        db.execute(
            insert(Watch),
            [
                Watch(
                    name=f"w{n}",
                    query=brand,
                    kind="brand" if n < 10 else "competitor",
                    sources=[source],
                    interval_seconds=3600,
                    created_by=ADMIN,
                ).model_dump(exclude={"id"})
                for n, brand in enumerate(brands)
            ],
        )
        ids = [row[0] for row in db.execute(text("SELECT id FROM watch ORDER BY id"))]
        db.execute(
            insert(SourceState),
            [
                SourceState(watch_id=watch_id, source=source, next_poll_at=now).model_dump(
                    exclude={"id"}
                )
                for watch_id in ids
            ],
        )
    window = timedelta(hours=72)
    # Every column with its default, as the model would write it; each row overrides the rest.
    template = Mention(
        watch_name="", watch_kind="", source="", origin="", external_id="", text="",
        department="", priority="",
    ).model_dump(exclude={"id"})  # fmt: skip
    for start in range(0, mentions, SEED_CHUNK):
        rows = []
        for n in range(start, min(start + SEED_CHUNK, mentions)):
            found_at = now - timedelta(seconds=rng.uniform(0, 30 * 86_400))
            watch = rng.randrange(watches)
            rows.append(
                template
                | {
                    "watch_id": ids[watch],
                    "watch_name": f"w{watch}",
                    "watch_kind": "competitor",
                    "watches": [f"w{watch}"],
                    "source": "rss:https://seed.example/feed",
                    "origin": "rss",
                    "external_id": f"seed-{n}",
                    "url": f"https://seed.example/{n}",
                    "author": f"user{n % 50_000}",
                    "title": f"{brands[watch]} review",
                    "text": texts[n % len(texts)],
                    "found_at": found_at,
                    "updated_at": found_at,
                    "matched_terms": [brands[watch]],
                    "sentiment_compound": 0.0,
                    "sentiment_label": "neutral",
                    "intents": [],
                    "department": DEPARTMENTS[n % len(DEPARTMENTS)],
                    "cc": [],
                    "route_rule": "bench",
                    "priority": ("P1", "P2", "P3", "P4")[n % 4],
                    "priority_reason": "bench",
                    "state": "resolved" if n % 3 else "new",
                    "escalation_level": 0,
                    "minhash": signature(rng) if now - found_at < window else None,
                }
            )
        with engine.begin() as db:
            db.execute(insert(Mention), rows)
    engine.dispose()


async def measure(args: argparse.Namespace, database_url: str, workdir: Path) -> dict[str, float]:
    brands = brand_names(args.watches)
    feed = rss_feed(make_posts(args.feed_posts, brands=brands, tag="feed"))

    async with feed_server({"/feed.xml": feed}) as feed_base:
        return await _measure(args, database_url, workdir, brands, f"{feed_base}/feed.xml")


async def _measure(
    args: argparse.Namespace, database_url: str, workdir: Path, brands: list[str], feed_url: str
) -> dict[str, float]:
    started = time.perf_counter()
    await asyncio.to_thread(upgrade, database_url)
    await asyncio.to_thread(
        seed, database_url, watches=args.watches, mentions=args.mentions, feed_url=feed_url
    )
    print(
        f"seeded {args.watches:,} watches and {args.mentions:,} mentions in "
        f"{time.perf_counter() - started:.0f} s"
    )
    async with FakeSlackApi() as slack, aiohttp.ClientSession() as http:
        env = earful_env(slack.url, database_url=database_url, log_level=args.log_level)
        server = start_earful(env, workdir)
        try:
            await server.wait_healthy(http)
            try:
                await wait_polled(database_url, within=args.timeout)
            except RuntimeError:
                tail = server.log_path.read_text(errors="replace").splitlines()[-30:]
                print(*tail, sep="\n", file=sys.stderr)
                raise
            signer = SlackRequestSigner(SIGNING_SECRET)
            for asked in ("queue", f"search {brands[0]}", "status"):
                reply = await command(http, server.events_url, asked, signer=signer)
                if not json.dumps(reply):
                    raise RuntimeError(f"/earful {asked} gave no reply")
            return tree_rss_mb(server.process.pid)
        finally:
            server.stop()


async def wait_polled(database_url: str, *, within: float) -> None:
    """Until the first poll has stored its mentions (the feed's posts all match)."""
    engine = create_engine(sync_url(database_url))
    deadline = time.monotonic() + within
    try:
        while True:
            with engine.connect() as db:
                polled = db.execute(
                    text("SELECT count(*) FROM source_state WHERE last_success_at IS NOT NULL")
                ).scalar_one()
            if polled:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("Earful did not poll in time")
            await asyncio.sleep(0.5)
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watches", type=int, default=1_000)
    parser.add_argument("--mentions", type=int, default=1_000_000)
    parser.add_argument("--feed-posts", type=int, default=200, help="posts in the polled feed")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--log-level", default="WARNING", help="Earful's log level")
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL server to use instead")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="earful-memory-") as tmp:
        database_url, drop = database_for(args.postgres, Path(tmp), "memory")
        try:
            figures = asyncio.run(measure(args, database_url, Path(tmp)))
        finally:
            drop()
    where = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"\nResident memory (MB), {args.watches:,} watches, {args.mentions:,} stored mentions, "
        f"{where}, after a poll and /earful queue, search, status:"
    )
    for name, megabytes in figures.items():
        print(f"  {name:28} {megabytes:7.1f}")
    main_mb = figures["main"]
    print(
        f"\nTarget: main process under {TARGET_MB} MB: {main_mb:.0f} MB, "
        f"{'MEETS' if main_mb < TARGET_MB else 'MISSES'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
