from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from watchers.departments import Department, Intent, Priority, WatchKind
from watchers.enrich import Enrichment, enrich
from watchers.intents import load_rules
from watchers.routing import Route


def test_an_angry_complaint_from_a_big_account_is_p1_for_support() -> None:
    result = enrich(
        title=None,
        text=(
            "@acme your app keeps crashing and support never replies. "
            "Worst experience ever, cancelling my subscription!! #NeverAgain"
        ),
        kind=WatchKind.BRAND,
        author_reach=25_000,
    )
    assert result.sentiment.label == "negative"
    assert result.sentiment.compound <= -0.6
    assert {hit.intent for hit in result.intents} == {
        Intent.CHURN_RISK,
        Intent.COMPLAINT,
        Intent.BUG_REPORT,
    }
    # Cancelling makes it an account at risk: support saves it, sales is told.
    assert (result.department, result.cc) == (Department.SUPPORT, (Department.SALES,))
    assert result.route_rule == "churn risk on a brand watch → support"
    assert result.priority is Priority.P1
    assert result.priority_reason.startswith("strongly negative churn risk (−0.")
    assert result.priority_reason.endswith("large audience (25,000 followers)")


def test_a_competitors_unhappy_customer_goes_to_sales() -> None:
    result = enrich(
        title=None,
        text="Globex support is useless, looking for an alternative to Globex",
        kind=WatchKind.COMPETITOR,
    )
    assert (result.department, result.cc) == (Department.SALES, (Department.COMPETITIVE,))


def test_a_calm_customer_leaving_is_p2_for_support_and_sales() -> None:
    result = enrich(
        title=None,
        text="We will not be renewing our Acme contract in March; moving the team to Globex.",
        kind=WatchKind.BRAND,
    )
    assert result.sentiment.compound > -0.6  # calm: the tone alone would not make it urgent
    assert result.intents[0].intent is Intent.CHURN_RISK
    assert (result.department, result.cc) == (Department.SUPPORT, (Department.SALES,))
    assert (result.priority, result.priority_reason) == (Priority.P2, "churn risk")


def test_a_competitors_leaving_customer_is_a_lead_for_sales() -> None:
    result = enrich(
        title=None,
        text="Looking for an alternative to Globex, any ideas?",
        kind=WatchKind.COMPETITOR,
    )
    assert (result.department, result.cc) == (Department.SALES, (Department.COMPETITIVE,))
    assert result.route_rule == "churn risk on a competitor watch → sales"


def test_a_bug_report_goes_to_product_with_support_copied() -> None:
    result = enrich(title=None, text="Export doesn't work since 4.2", kind=WatchKind.PRODUCT)
    assert [hit.intent for hit in result.intents] == [Intent.BUG_REPORT]
    assert (result.department, result.cc) == (Department.PRODUCT, (Department.SUPPORT,))
    assert result.sentiment.label == "negative"


def test_a_factual_complaint_reads_negative() -> None:
    result = enrich(title=None, text="Still no refund from Acme, 3 weeks now", kind=WatchKind.BRAND)
    assert result.sentiment.label == "negative"
    assert result.department is Department.SUPPORT


def test_the_title_is_scored_too() -> None:
    result = enrich(
        title="Ask HN: Is there a way to self-host Acme?",
        text="We need it on-prem for compliance reasons.",
        kind=WatchKind.PRODUCT,
    )
    assert Intent.QUESTION in [hit.intent for hit in result.intents]
    assert result.department is Department.SUPPORT


def test_the_watch_override_wins() -> None:
    result = enrich(
        title=None,
        text="How do I export to CSV?",
        kind=WatchKind.BRAND,
        department_override=Department.PRODUCT,
    )
    assert (result.department, result.route_rule) == (Department.PRODUCT, "watch sets department")


def test_a_quiet_neutral_mention() -> None:
    result = enrich(title=None, text="Acme released version 4.2 on Tuesday.", kind=WatchKind.TOPIC)
    assert result.intents == ()
    assert result.sentiment.label == "neutral"
    assert (result.department, result.priority) == (Department.RESEARCH, Priority.P4)


def test_custom_rules_and_routing_are_passed_through(tmp_path: Path) -> None:
    path = tmp_path / "intents.yml"
    path.write_text("intents:\n  praise:\n    patterns: [slaps]\n", encoding="utf-8")
    result = enrich(
        title=None,
        text="acme slaps",
        kind=WatchKind.BRAND,
        rules=load_rules(path),
        routing={(Intent.PRAISE, WatchKind.BRAND): Route(Department.SALES, (), "custom")},
    )
    assert [hit.intent for hit in result.intents] == [Intent.PRAISE]
    assert (result.department, result.route_rule) == (Department.SALES, "custom")


def test_the_result_is_a_frozen_picklable_value() -> None:
    # The caller may run enrich in a process pool, which pickles the result back.
    result = enrich(title="Bug", text="it crashes on start", kind=WatchKind.PRODUCT)
    assert pickle.loads(pickle.dumps(result)) == result
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.priority = Priority.P1  # type: ignore[misc]
    assert isinstance(result, Enrichment)


def test_triage_does_not_import_slack_or_storage() -> None:
    code = (
        "import sys, watchers.enrich\n"
        "bad = sorted(m for m in sys.modules"
        " if m.split('.')[0] in {'slack_bolt', 'slack_sdk', 'storage', 'bot', 'handlers'})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
