"""``earful classify``: the installed command in a subprocess, and in-process through typer."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.classify import WatchSet, classify_lines, load_watch_file
from bot.cli import cli
from storage import routing_rules as rule_store
from storage import watches as watch_store
from storage.db import Database
from watchers.departments import Department, Intent, WatchKind
from watchers.enrich import enrich

REPO = Path(__file__).parents[2]
# No Slack settings at all: classify must not need them.
CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("SLACK_", "EARFUL_", "DATABASE_URL", "PORT"))
}

POSTS: list[dict[str, Any]] = [
    {
        "id": "r1",
        "text": "@acme the app crashes on login since the update, still no fix",
        "source": "reddit:r/acme",
        "author": "u1",
        "url": "https://reddit.com/r/acme/1",
        "published": "2024-05-01T10:00:00Z",
    },
    {"id": 2, "text": "Looking for an alternative to Globex, their support is useless"},
    {"id": "hn3", "title": "Feature request", "text": "Please add SSO to Acme"},
    {"id": "x4", "text": "Nothing to do with anyone here"},
    {"id": "big", "text": "Cancelling my Acme subscription", "author_reach": 50_000},
]
WATCHES_YAML = """
- {name: acme, query: acme, kind: brand}
- name: globex
  query: globex
  kind: competitor
  exclude: '"globex careers"'
- {name: acme-ceo, query: '"jane acme"', kind: person, dept: pr}
"""


def jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def run(
    *args: str, stdin: str = "", env: dict[str, str] | None = None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "classify", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**CLEAN_ENV, "PYTHONPATH": str(REPO), **(env or {})},
        cwd=cwd,
        timeout=120,
        check=False,
    )


def lines_of(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def watches_file(tmp_path: Path) -> Path:
    path = tmp_path / "watches.yml"
    path.write_text(WATCHES_YAML, encoding="utf-8")
    return path


def test_the_installed_command_classifies_a_file_like_production(
    tmp_path: Path, watches_file: Path
) -> None:
    posts = tmp_path / "posts.jsonl"
    posts.write_text(jsonl(POSTS), encoding="utf-8")
    done = run(str(posts), "--watches", str(watches_file), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = lines_of(done.stdout)
    assert [row["id"] for row in out] == ["r1", 2, "hn3", "x4", "big"]
    assert [row["line"] for row in out] == [1, 2, 3, 4, 5]

    bug = out[0]
    assert (bug["watches"], bug["terms"], bug["kind"]) == (["acme"], ["acme"], "brand")
    # The same answer as the enrichment the pollers run, field by field.
    expected = enrich(title=None, text=POSTS[0]["text"], kind=WatchKind.BRAND)
    assert bug["sentiment"] == {
        "compound": expected.sentiment.compound,
        "label": expected.sentiment.label,
    }
    assert bug["sentiment"]["label"] == "negative"
    assert bug["intents"] == [
        {"intent": h.intent.value, "triggers": list(h.triggers)} for h in expected.intents
    ]
    assert bug["intents"][0]["intent"] == "bug_report"
    assert (bug["department"], bug["cc"]) == ("product", ["support"])
    assert bug["route_rule"] == "bug report on a brand watch → product"
    assert (bug["priority"], bug["priority_reason"]) == (
        expected.priority.value,
        expected.priority_reason,
    )

    lead = out[1]
    assert (lead["watches"], lead["department"], lead["cc"]) == (
        ["globex"],
        "sales",
        ["competitive"],
    )
    assert {i["intent"] for i in lead["intents"]} >= {"churn_risk", "complaint"}

    request = out[2]
    assert request["intents"][0] == {
        "intent": "feature_request",
        "triggers": ["Feature request", "Please add"],
    }
    assert request["department"] == "product"

    # No watch matched and no --all: reported, not scored.
    assert out[3] == {
        "line": 4,
        "id": "x4",
        "watches": [],
        "terms": [],
        "kind": None,
        "sentiment": None,
        "intents": [],
        "department": None,
        "cc": [],
        "route_rule": None,
        "priority": None,
        "priority_reason": None,
    }
    # A customer leaving, with a large audience: churn is P2, the audience raises it.
    assert (out[4]["priority"], out[4]["department"]) == ("P1", "support")
    assert out[4]["priority_reason"] == "churn risk, large audience (50,000 followers)"
    assert "classified 5 line(s): 4 matched a watch of 3" in done.stderr


def test_bad_lines_become_error_lines_and_the_run_goes_on(
    tmp_path: Path, watches_file: Path
) -> None:
    stdin = "\n".join(
        [
            '{"id": 1, "text": "acme is down again"}',
            "{not json",
            '{"id": 3}',
            '{"id": 4, "text": "   "}',
            "[1, 2]",
            "",
            '{"id": 7, "text": "acme", "published": "last tuesday"}',
            '{"id": 8, "text": "acme", "author_reach": "lots"}',
            '{"id": 9, "text": "acme rocks"}',
        ]
    )
    done = run("-", "--watches", str(watches_file), stdin=stdin, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = lines_of(done.stdout)
    errors = {row["line"]: row for row in out if "error" in row}
    assert sorted(errors) == [2, 3, 4, 5, 7, 8]
    assert errors[2]["error"].startswith("invalid JSON")
    assert errors[3] == {"line": 3, "id": 3, "error": "missing 'text' (a non-empty string)"}
    assert errors[5]["error"] == "expected a JSON object"
    assert "ISO 8601" in errors[7]["error"]
    assert "author_reach" in errors[8]["error"]
    good = [row for row in out if "error" not in row]
    assert [row["id"] for row in good] == [1, 9]
    assert good[0]["intents"][0]["intent"] == "bug_report"
    assert "6 bad line(s)" in done.stderr


@pytest.mark.parametrize(
    ("args", "watches", "message"),
    [
        (["missing.jsonl"], WATCHES_YAML, "missing.jsonl: No such file"),
        (["-"], "- {name: a, query: acme, kind: galaxy}\n", "kind 'galaxy' is not one of"),
        (["-"], "- {name: a, query: 'acme AND'}\n", "query does not parse"),
        (["-"], "- {name: a, query: acme, dept: finance}\n", "dept 'finance'"),
        (["-"], "- {name: a, query: x}\n- {name: a, query: y}\n", "used twice"),
        (["-"], "{}\n", "expected a non-empty list"),
        (["-"], "- {name: a}\n", "'query' must be a non-empty string"),
        (["-", "--kind", "planet"], WATCHES_YAML, "--kind 'planet'"),
    ],
)
def test_unusable_arguments_exit_2_with_the_reason(
    tmp_path: Path, args: list[str], watches: str, message: str
) -> None:
    path = tmp_path / "w.yml"
    path.write_text(watches, encoding="utf-8")
    done = run(*args, "--watches", str(path), cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_no_database_is_an_unusable_argument_not_a_new_file(tmp_path: Path) -> None:
    done = run("-", env={"DATABASE_URL": f"sqlite:///{tmp_path}/none.db"}, cwd=tmp_path)
    assert done.returncode == 2
    assert "no database at" in done.stderr
    assert not (tmp_path / "none.db").exists()


def test_in_process_with_json_watches_all_and_output_file(tmp_path: Path) -> None:
    watches = tmp_path / "watches.json"
    watches.write_text(json.dumps([{"name": "acme", "query": "acme", "kind": "product"}]))
    target = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        cli,
        [
            "classify",
            "-",
            "--watches",
            str(watches),
            "--all",
            "--kind",
            "competitor",
            "-o",
            str(target),
        ],
        input=jsonl(POSTS[1:4]),
    )
    assert result.exit_code == 0, result.output
    out = lines_of(target.read_text(encoding="utf-8"))
    # Unmatched posts are classified as the --kind watch; matched ones keep their watch's kind.
    assert [(row["watches"], row["kind"]) for row in out] == [
        ([], "competitor"),
        (["acme"], "product"),
        ([], "competitor"),
    ]
    assert (out[0]["department"], out[0]["route_rule"]) == (
        "sales",
        "churn risk on a competitor watch → sales",
    )
    assert out[2]["route_rule"] == "no clear intent on a competitor watch → competitive"


async def seed(url: str) -> None:
    db = Database(url)
    try:
        async with db.session() as session:
            for name, query, kind, department in [
                ("acme", "acme", "brand", None),
                ("globex", "globex", "competitor", None),
                ("ceo", '"jane doe"', "person", "pr"),
            ]:
                await watch_store.create_watch(
                    session,
                    name=name,
                    query=query,
                    kind=kind,
                    department=department,
                    sources=["hn"],
                    interval_seconds=300,
                    created_by="U1",
                )
            await watch_store.create_watch(
                session,
                name="paused",
                query="acme",
                kind="topic",
                department=None,
                sources=["hn"],
                interval_seconds=300,
                created_by="U1",
            )
            await watch_store.set_paused(session, name="paused", paused=True)
            # A team edit in Slack: feature requests on the brand go to research, cc product.
            await rule_store.set_rule(
                session,
                intent=Intent.FEATURE_REQUEST,
                kind=WatchKind.BRAND,
                department=Department.RESEARCH,
                cc=[Department.PRODUCT],
                updated_by="U1",
            )
    finally:
        await db.dispose()


DB_POSTS = [
    {"id": 1, "text": "It would be great if Acme had an offline mode"},
    {"id": 2, "text": "Jane Doe on stage at the Acme keynote"},
    {"id": 3, "text": "Globex crashed again"},
]


def test_watches_and_team_routes_come_from_the_database(database_url: str, tmp_path: Path) -> None:
    asyncio.run(seed(database_url))
    done = run("-", stdin=jsonl(DB_POSTS), env={"DATABASE_URL": database_url}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = lines_of(done.stdout)
    # The paused watch matches nothing; the team rule is in force, as the pollers load it.
    assert (out[0]["watches"], out[0]["department"], out[0]["cc"]) == (
        ["acme"],
        "research",
        ["product"],
    )
    assert out[0]["route_rule"].endswith("(team rule)")
    # Filed under the brand (catalog's ranking), the person watch listed too; the person
    # watch's department override applies only when it is the primary watch.
    assert out[1]["watches"] == ["acme", "ceo"]
    assert out[2]["watches"] == ["globex"]
    assert out[2]["department"] == "competitive"

    in_process = CliRunner().invoke(
        cli, ["classify", "-"], input=jsonl(DB_POSTS), env={"DATABASE_URL": database_url}
    )
    assert in_process.exit_code == 0, in_process.output
    assert [json.loads(line) for line in in_process.stdout.splitlines()] == out


def test_an_empty_database_without_all_is_unusable(database_url: str, tmp_path: Path) -> None:
    done = run("-", env={"DATABASE_URL": database_url}, cwd=tmp_path)
    assert done.returncode == 2
    assert "no active watches" in done.stderr


def test_input_is_streamed_in_batches(watches_file: Path) -> None:
    pulled = 0

    def lines() -> Iterator[str]:
        nonlocal pulled
        for number in range(10_000):
            pulled += 1
            yield json.dumps({"id": number, "text": "acme"}) + "\n"

    watch_set: WatchSet = load_watch_file(watches_file)
    results = classify_lines(lines(), watch_set, batch_lines=50)
    first = next(results)
    assert first["id"] == 0
    assert pulled == 50  # one batch read, not the whole input
