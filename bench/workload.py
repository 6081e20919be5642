"""What the load benches share: realistic posts, watches over made-up brands, an RSS feed of
them, ``earful run`` as a subprocess (its environment, start-up, signed commands and stop), the
resident memory of a process tree, and percentiles.

Post texts are real app reviews (``/work/shared/data/app_reviews_labeled.csv``, or the copy
named by ``EARFUL_BENCH_REVIEWS``) with a watched brand written into each, so their length,
tone and vocabulary are those of what Earful reads; a small built-in set stands in when the
file is missing, so the benches still run anywhere.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web

from tests.fakes.slack_requests import FORM, SlackRequestSigner, slash_command
from tests.support.earful_process import healthy

ROOT = Path(__file__).resolve().parents[1]
SIGNING_SECRET = "bench-signing-secret-0123456789"
BOT_TOKEN = "xoxb-1-2-benchtoken"
ADMIN = "U0ADMIN"
REVIEWS = Path(os.environ.get("EARFUL_BENCH_REVIEWS", "/work/shared/data/app_reviews_labeled.csv"))
_FALLBACK = (
    "The app keeps crashing every time I open my account settings, please fix this",
    "Love the new dark mode, it finally feels like a modern app. Great job to the team",
    "I was charged twice for my subscription and support has not replied for a week",
    "Would be great if you added an export to CSV, I need it for my monthly reports",
    "Login fails with an error message since the last update on my android phone",
    "Honestly the best customer service I have had, they fixed my order in minutes",
    "Switched from a competitor last month and the sync is so much faster here",
    "Is anyone else seeing the checkout page hang forever? Cannot buy anything today",
)
_SYLLABLES = ("ac", "me", "zo", "ra", "ki", "lo", "vex", "tri", "qua", "nor", "bel", "dun")


def review_texts() -> list[str]:
    if not REVIEWS.exists():
        return list(_FALLBACK)
    with REVIEWS.open(newline="", encoding="utf-8") as handle:
        texts = [row["text"].strip() for row in csv.DictReader(handle) if row.get("text")]
    return [text for text in texts if text] or list(_FALLBACK)


def brand_names(count: int, *, seed: int = 7) -> list[str]:
    """``count`` distinct made-up brand names (two or three syllables plus a number)."""
    rng = random.Random(seed)
    names: dict[str, None] = {}
    while len(names) < count:
        parts = rng.choices(_SYLLABLES, k=rng.choice((2, 3)))
        names["".join(parts) + str(rng.randrange(10, 99))] = None
    return list(names)


@dataclass(frozen=True, slots=True)
class BenchPost:
    external_id: str
    title: str
    text: str
    url: str
    author: str
    published_at: datetime


def make_posts(count: int, *, brands: Sequence[str], tag: str, seed: int = 11) -> list[BenchPost]:
    """``count`` posts, each a review with one of ``brands`` written in where people put it."""
    rng = random.Random(seed)
    texts = review_texts()
    now = datetime.now(UTC).replace(microsecond=0)
    posts = []
    for number in range(count):
        brand = rng.choice(brands)
        words = rng.choice(texts).split()
        at = rng.randrange(len(words) + 1)
        text = " ".join([*words[:at], brand.capitalize(), *words[at:]])
        posts.append(
            BenchPost(
                external_id=f"{tag}-{number}",
                title=f"{brand.capitalize()} review",
                text=text,
                url=f"https://reviews.example/{tag}/{number}",
                author=f"user{rng.randrange(100_000)}",
                published_at=now - timedelta(seconds=count - number),
            )
        )
    return posts


def rss_feed(posts: Sequence[BenchPost], *, title: str = "bench") -> bytes:
    items = "".join(
        "<item>"
        f'<guid isPermaLink="false">{escape(post.external_id)}</guid>'
        f"<title>{escape(post.title)}</title>"
        f"<link>{escape(post.url)}</link>"
        f"<description>{escape(post.text)}</description>"
        f"<author>{escape(post.author)}@reviews.example ({escape(post.author)})</author>"
        f"<pubDate>{format_datetime(post.published_at)}</pubDate>"
        "</item>"
        for post in posts
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>https://reviews.example/</link>"
        f"<description>bench</description>{items}</channel></rss>"
    ).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) of ``values``, interpolated; NaN when there are none."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 10) - 1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (``VmRSS`` from /proc)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def tree_rss_mb(pid: int) -> dict[str, float]:
    """Resident memory in MB of ``pid`` (``main``) and of every process below it, each named
    by what it is and its pid."""
    figures = {"main": rss_mb(pid)}
    for child, what in descendants(pid):
        figures[f"{what} ({child})"] = rss_mb(child)
    return figures


def descendants(pid: int, *, parent: str = "") -> list[tuple[int, str]]:
    """Every process below ``pid`` (the scoring pool's forkserver, its workers, the resource
    tracker), with a short description taken from its command line."""
    found = []
    for child in _children(pid):
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        if parent == "forkserver":
            what = "scoring worker"
        elif "forkserver" in cmdline:
            what = "forkserver"
        elif "resource_tracker" in cmdline:
            what = "resource tracker"
        else:
            what = "scoring worker"
        found.append((child, what))
        found += descendants(child, parent=what)
    return found


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if not children.exists():
        return []
    return [int(part) for part in children.read_text().split()]


def fresh_postgres(url: str, *, suffix: str = "") -> tuple[str, Callable[[], None]]:
    """A new, empty database on the server of ``url``, and how to drop it afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"earful_bench_{os.getpid()}{suffix}"
    admin = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    fresh = make_url(admin).set(database=name).render_as_string(hide_password=False)
    return fresh, drop


def database_for(postgres: str | None, workdir: Path, name: str) -> tuple[str, Callable[[], None]]:
    """A fresh database for one run and how to drop it: a new database on the ``postgres``
    server when given, else a SQLite file ``name``.db in ``workdir`` (nothing to drop)."""
    if postgres:
        return fresh_postgres(postgres, suffix=f"_{name}")
    return f"sqlite:///{workdir / name}.db", lambda: None


@asynccontextmanager
async def feed_server(feeds: Mapping[str, bytes]) -> AsyncIterator[str]:
    """Serve ``feeds`` (path → RSS document, looked up at each request, so the caller may add
    to it) on a free local port; yields the base URL."""

    async def feed(request: web.Request) -> web.Response:
        body = feeds.get(request.path)
        if body is None:
            return web.Response(status=404)
        return web.Response(body=body, content_type="application/rss+xml")

    app = web.Application()
    app.router.add_get("/{name}", feed)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# ----------------------------------------------------------------- Earful as a subprocess


@dataclass
class Server:
    """A process serving Slack's requests on ``base``, its output in ``log_path``."""

    name: str
    process: subprocess.Popen[bytes]
    base: str
    log_path: Path

    @property
    def events_url(self) -> str:
        return self.base + "/slack/events"

    async def wait_healthy(self, http: aiohttp.ClientSession, *, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if await healthy(http, self.base):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start; see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_process(name: str, args: Sequence[str], env: dict[str, str], workdir: Path) -> Server:
    """``python *args`` from the repository root, on ``env["PORT"]``, logging to
    ``workdir / f"{name}.log"``."""
    log_path = workdir / f"{name}.log"
    port = int(env["PORT"])
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, *args], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
    return Server(name, process, f"http://127.0.0.1:{port}", log_path)


def base_env(slack_url: str, port: int) -> dict[str, str]:
    """This environment without Earful's settings, plus the bench's Slack app on ``port``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SLACK_", "EARFUL_", "DATABASE_URL", "PORT"))
    }
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack_url,
        PORT=str(port),
        EARFUL_HOST="127.0.0.1",
        PYTHONPATH=str(ROOT),
    )
    return env


def earful_env(slack_url: str, *, database_url: str, log_level: str) -> dict[str, str]:
    """``earful run``'s environment: ``base_env`` on a free port, ADMIN its admin, polling
    local feeds as fast as they answer."""
    env = base_env(slack_url, free_port())
    env.update(
        DATABASE_URL=database_url,
        EARFUL_ADMINS=ADMIN,
        EARFUL_FETCH_ALLOW_PRIVATE="true",
        EARFUL_FETCH_PER_HOST_RATE="1000",
        EARFUL_POLL_TICK_SECONDS="1",
        EARFUL_LOG_LEVEL=log_level,
    )
    return env


def start_earful(env: dict[str, str], workdir: Path) -> Server:
    return start_process("earful", ["-m", "bot", "run"], env, workdir)


async def command(
    http: aiohttp.ClientSession, url: str, text: str, *, signer: SlackRequestSigner
) -> dict[str, Any]:
    """``/earful text`` from ADMIN, signed; Earful's reply."""
    body = slash_command(text, user_id=ADMIN)
    headers = {"Content-Type": FORM, **signer.headers(body)}
    async with http.post(url, data=body, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"/earful {text}: HTTP {response.status}")
        return dict(json.loads(await response.text()))
