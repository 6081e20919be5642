"""``earful classify``: what Earful would decide about posts read from a JSON Lines file.

Each input line is one post (``{"id", "text", optional "title", "source", "author", "url",
"published", "author_reach"}``). It is matched against the watches (the database's, or a
``--watches`` file) with the same catalog, matcher and scoring code the pollers run, and one
JSON line comes out per input line: the watches it matched, its sentiment, intents and their
trigger words, the department (and why), and the priority (and why). Nothing is stored and
Slack is not needed. Teams use it to tune queries and rules; ``bench/triage_eval.py`` uses it
to measure them.

The input is streamed in batches, so a file of any size runs in bounded memory. A bad line
becomes an output line with an ``error`` and never stops the run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.catalog import SourceWatches, build_source_watches, compiled_exclusion, compiled_query
from bot.polling import Found, match_posts
from bot.scoring import ScoreInput, score_batch
from storage import routing_rules as rule_store
from storage import watches as watch_store
from storage.db import Database, redact_url
from storage.models import Watch
from watchers.base import Post
from watchers.departments import Department, WatchKind
from watchers.enrich import Enrichment
from watchers.query import QuerySyntaxError
from watchers.routing import RoutingTable

log = logging.getLogger(__name__)

# Lines matched and scored together: large enough to amortize a batch, small enough that
# output keeps flowing and memory stays flat on a file of millions of posts.
BATCH_LINES = 500
# A post longer than this is not a social post; the scorers cap what they read anyway.
MAX_LINE_CHARS = 1_000_000
SOURCE_WHEN_UNSAID = "classify"


class ClassifyError(Exception):
    """The arguments cannot be used (no such file, a bad watches file, no database)."""


@dataclass(frozen=True, slots=True)
class WatchSet:
    """The watches to match and the routing table in force, from a file or the database."""

    catalog: SourceWatches
    routing: RoutingTable | None  # None: the packaged defaults
    origin: str  # where they came from, for the summary line

    def __len__(self) -> int:
        return len(self.catalog.watches)


def build_watch_set(
    watches: Sequence[Watch], *, routing: RoutingTable | None, origin: str
) -> WatchSet:
    """Compile watches the way ``bot.catalog`` does for a source, but for every source.

    A post in a file has no poll behind it, so a watch's ``sources`` do not restrict it.
    """
    return WatchSet(build_source_watches(watches), routing, origin)


def _text_field(entry: Mapping[str, Any], key: str, where: str, *, required: bool) -> str | None:
    value = entry.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ClassifyError(f"{where}: '{key}' must be a non-empty string")
    return value.strip()


def parse_watch_file(path: Path) -> list[Watch]:
    """Watches from a YAML or JSON list of ``{name, query, kind, exclude?, dept?}``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ClassifyError(f"cannot read watches file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ClassifyError(f"{path}: not valid YAML or JSON: {exc}") from None
    if isinstance(data, Mapping) and isinstance(data.get("watches"), list):
        data = data["watches"]
    if not isinstance(data, list) or not data:
        raise ClassifyError(f"{path}: expected a non-empty list of watches")
    watches: list[Watch] = []
    names: set[str] = set()
    for number, entry in enumerate(data, start=1):
        where = f"{path}: watch {number}"
        if not isinstance(entry, Mapping):
            raise ClassifyError(f"{where}: expected a mapping with name, query and kind")
        name = _text_field(entry, "name", where, required=True)
        assert name is not None
        where = f"{path}: watch {name!r}"
        if name in names:
            raise ClassifyError(f"{where}: the name is used twice")
        names.add(name)
        query = _text_field(entry, "query", where, required=True)
        exclude = _text_field(entry, "exclude", where, required=False)
        kind = entry.get("kind", WatchKind.BRAND.value)
        if kind not in set(WatchKind):
            known = ", ".join(k.value for k in WatchKind)
            raise ClassifyError(f"{where}: kind {kind!r} is not one of {known}")
        dept = entry.get("dept", entry.get("department"))
        if dept is not None and dept not in set(Department):
            known = ", ".join(d.value for d in Department)
            raise ClassifyError(f"{where}: dept {dept!r} is not one of {known}")
        assert query is not None
        for label, text in (("query", query), ("exclude", exclude)):
            if text is None:
                continue
            try:
                compiled_query(text)
            except QuerySyntaxError as exc:
                raise ClassifyError(f"{where}: {label} does not parse: {exc}") from None
        watches.append(
            Watch(
                id=number,
                name=name,
                query=query,
                kind=str(kind),
                department=dept,
                sources=[],
                exclude=exclude,
                interval_seconds=0,
            )
        )
    return watches


def load_watch_file(path: Path) -> WatchSet:
    return build_watch_set(parse_watch_file(path), routing=None, origin=str(path))


def _require_existing_database(database_url: str) -> None:
    try:
        url = make_url(database_url)
    except Exception as exc:
        raise ClassifyError(f"DATABASE_URL is not a database URL: {exc}") from None
    if url.get_backend_name() == "sqlite":
        path = url.database
        # Connecting would create an empty file and then fail on the missing tables.
        if not path or path == ":memory:" or not Path(path).expanduser().exists():
            raise ClassifyError(
                f"no database at {redact_url(database_url)}: "
                "set DATABASE_URL or pass --watches FILE"
            )


async def load_database_watches(database_url: str) -> WatchSet:
    """The active watches and the routing table in force, as the pollers load them."""
    _require_existing_database(database_url)
    shown = redact_url(database_url)
    try:
        db = Database(database_url)
    except ValueError as exc:
        raise ClassifyError(str(exc)) from None
    try:
        async with db.session() as session:
            active = [w for w in await watch_store.list_watches(session) if not w.paused]
            rules = await rule_store.list_rules(session)
    except SQLAlchemyError as exc:
        raise ClassifyError(
            f"cannot read watches from {shown} ({type(exc).__name__}); "
            "is it an Earful database (earful db upgrade)?"
        ) from None
    finally:
        await db.dispose()
    usable: list[Watch] = []
    for watch in active:
        try:
            compiled_query(watch.query)
            compiled_exclusion(watch.exclude)
        except QuerySyntaxError:
            # The pollers skip such a watch too (see bot.catalog); so does classify.
            log.exception("watch %s has a query that no longer parses", watch.name)
            continue
        usable.append(watch)
    return build_watch_set(usable, routing=rule_store.effective_table(rules), origin=shown)


@dataclass(frozen=True, slots=True)
class _Parsed:
    line: int
    id: Any
    post: Post


@dataclass(frozen=True, slots=True)
class _Bad:
    line: int
    id: Any
    error: str


def _published(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("'published' must be an ISO 8601 date string")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"'published' is not an ISO 8601 date: {value[:40]!r}") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _optional_str(entry: Mapping[str, Any], key: str) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"'{key}' must be a string")
    return value


def parse_line(number: int, line: str) -> _Parsed | _Bad | None:
    """One input line as a post, or why it is not one; None for a blank line."""
    if not line.strip():
        return None
    if len(line) > MAX_LINE_CHARS:
        return _Bad(number, None, f"line longer than {MAX_LINE_CHARS:,} characters")
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as exc:
        return _Bad(number, None, f"invalid JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(entry, dict):
        return _Bad(number, None, "expected a JSON object")
    post_id = entry.get("id")
    if isinstance(post_id, dict | list):
        return _Bad(number, None, "'id' must be a string or a number")
    text = entry.get("text")
    if not isinstance(text, str) or not text.strip():
        return _Bad(number, post_id, "missing 'text' (a non-empty string)")
    reach = entry.get("author_reach")
    if reach is not None and (isinstance(reach, bool) or not isinstance(reach, int)):
        return _Bad(number, post_id, "'author_reach' must be a whole number")
    try:
        post = Post(
            source=_optional_str(entry, "source") or SOURCE_WHEN_UNSAID,
            external_id=str(post_id) if post_id is not None else f"line-{number}",
            url=_optional_str(entry, "url"),
            author=_optional_str(entry, "author"),
            title=_optional_str(entry, "title"),
            text=text,
            published_at=_published(entry.get("published")),
            language=_optional_str(entry, "language"),
            author_reach=reach,
        )
    except ValueError as exc:
        return _Bad(number, post_id, str(exc))
    return _Parsed(number, post_id, post)


def _unmatched(post: Post, kind: WatchKind) -> Found:
    # A post no watch matched, classified as if a watch of `kind` had (``--all``).
    stand_in = Watch(name="", query="", kind=kind.value, interval_seconds=0)
    return Found(post=post, primary=stand_in, watches=(), terms=())


def _record(item: _Parsed, found: Found | None, scores: Enrichment | None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "line": item.line,
        "id": item.id,
        "watches": [w.name for w in found.watches] if found else [],
        "terms": list(found.terms) if found else [],
        "kind": found.primary.kind if found and scores else None,
        "sentiment": None,
        "intents": [],
        "department": None,
        "cc": [],
        "route_rule": None,
        "priority": None,
        "priority_reason": None,
    }
    if scores is not None:
        record.update(
            sentiment={
                "compound": round(scores.sentiment.compound, 4),
                "label": scores.sentiment.label,
            },
            intents=[
                {"intent": hit.intent.value, "triggers": list(hit.triggers)}
                for hit in scores.intents
            ],
            department=scores.department.value,
            cc=[d.value for d in scores.cc],
            route_rule=scores.route_rule,
            priority=scores.priority.value,
            priority_reason=scores.priority_reason,
        )
    return record


def _classify_batch(
    batch: list[_Parsed | _Bad], watch_set: WatchSet, *, unmatched_kind: WatchKind | None
) -> Iterator[dict[str, Any]]:
    parsed = [item for item in batch if isinstance(item, _Parsed)]
    matched = {
        id(found.post): found
        for found in match_posts(watch_set.catalog, [item.post for item in parsed])
    }
    chosen: list[tuple[_Parsed, Found]] = []
    for item in parsed:
        found = matched.get(id(item.post))
        if found is None and unmatched_kind is not None:
            found = _unmatched(item.post, unmatched_kind)
        if found is not None:
            chosen.append((item, found))
    # The same inputs the pollers build (bot.polling), scored by the same function their
    # Scorer runs: what classify says is what an alert would say.
    enrichments = score_batch(
        [
            ScoreInput(
                title=found.post.title,
                text=found.post.text,
                kind=WatchKind(found.primary.kind),
                department_override=(
                    Department(found.primary.department) if found.primary.department else None
                ),
                author_reach=found.post.author_reach,
            )
            for _, found in chosen
        ],
        routing=watch_set.routing,
    )
    scored = {
        item.line: (found, scores)
        for (item, found), scores in zip(chosen, enrichments, strict=True)
    }
    for entry in batch:
        if isinstance(entry, _Bad):
            yield {"line": entry.line, "id": entry.id, "error": entry.error}
            continue
        found_scores = scored.get(entry.line)
        if found_scores is None:
            yield _record(entry, matched.get(id(entry.post)), None)
        else:
            yield _record(entry, *found_scores)


def classify_lines(
    lines: Iterable[str],
    watch_set: WatchSet,
    *,
    unmatched_kind: WatchKind | None = None,
    batch_lines: int = BATCH_LINES,
) -> Iterator[dict[str, Any]]:
    """One result per non-blank input line, in input order, reading ``lines`` lazily.

    ``unmatched_kind`` set (``--all``) classifies posts that match no watch as if a watch of
    that kind had matched them; otherwise they come out with no scores.
    """
    numbered = enumerate(lines, start=1)
    while True:
        chunk = list(islice(numbered, batch_lines))
        if not chunk:
            return
        batch = [p for number, line in chunk if (p := parse_line(number, line)) is not None]
        yield from _classify_batch(batch, watch_set, unmatched_kind=unmatched_kind)
