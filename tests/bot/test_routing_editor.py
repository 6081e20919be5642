"""The routing pieces around the modal: catalog refresh, process-pool scoring, pure builders."""

from __future__ import annotations

from bot.catalog import WatchCatalog
from bot.replies import routes_reply
from bot.routing_modal import (
    EditorMetadata,
    RoutingBlockId,
    RuleChoice,
    editor_view,
    parse_button_value,
    read_submission,
)
from bot.scoring import ScoreInput, Scorer
from storage import routing_rules as rule_store
from storage.db import Database
from tests.fakes.slack_api import block_kit_problems, view_problems
from watchers.departments import Department, Intent, WatchKind
from watchers.routing import DEFAULT_ROUTING

COMPLAINT = "Acme support had me on hold for 2 hours and there is still no refund. Awful."


async def test_catalog_picks_up_an_edit_after_invalidate(db: Database) -> None:
    catalog = WatchCatalog(db, max_age_seconds=3600)
    await catalog.for_source("hn")
    assert catalog.routing == dict(DEFAULT_ROUTING)
    async with db.session() as session:
        await rule_store.set_rule(
            session,
            intent=None,
            kind=WatchKind.TOPIC,
            department=Department.SALES,
            cc=(),
            updated_by="U0ALICE",
        )
    await catalog.for_source("hn")
    assert catalog.routing[(None, WatchKind.TOPIC)].department is Department.RESEARCH
    catalog.invalidate()
    await catalog.for_source("hn")
    assert catalog.routing[(None, WatchKind.TOPIC)].department is Department.SALES


async def test_the_process_pool_scores_with_the_edited_table() -> None:
    item = ScoreInput(None, COMPLAINT, WatchKind.BRAND, None, None)
    scorer = Scorer(workers=1)
    try:
        [default] = await scorer.score([item])
        primary = default.intents[0].intent if default.intents else None
        rules = [
            rule_store.RoutingRule(
                intent=rule_store.intent_column(primary),
                kind="brand",
                department="legal",
                cc=["hr"],
            )
        ]
        table = rule_store.effective_table(rules)
        [edited] = await scorer.score([item], routing=table)
    finally:
        scorer.close()
    assert default.department is not Department.LEGAL
    assert (edited.department, edited.cc) == (Department.LEGAL, (Department.HR,))
    assert edited.route_rule.endswith("→ legal (team rule)")


def test_editor_view_is_prefilled_and_within_limits() -> None:
    view = editor_view(
        table=DEFAULT_ROUTING,
        defaults=DEFAULT_ROUTING,
        intent=Intent.BUG_REPORT,
        kind=WatchKind.PRODUCT,
        metadata=EditorMetadata(channel_id="C0SUPPORT"),
    )
    assert view_problems(view, expected_type="modal") == []
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    default = DEFAULT_ROUTING[(Intent.BUG_REPORT, WatchKind.PRODUCT)]
    department = blocks[RoutingBlockId.DEPARTMENT]["element"]["initial_option"]["value"]
    assert department == default.department.value
    cc = blocks[RoutingBlockId.CC]["element"].get("initial_options", [])
    assert [o["value"] for o in cc] == [d.value for d in default.cc]
    assert EditorMetadata.decode(view["private_metadata"]).channel_id == "C0SUPPORT"


def _values(intent: str, kind: str, department: str, cc: list[str]) -> dict[str, object]:
    def pick(value: str) -> dict[str, object]:
        return {"text": {"type": "plain_text", "text": value}, "value": value}

    return {
        "routing_intent_block": {"routing_intent": {"selected_option": pick(intent)}},
        "routing_kind_block": {"routing_kind": {"selected_option": pick(kind)}},
        "routing_department_block": {"routing_department": {"selected_option": pick(department)}},
        "routing_cc_block": {"routing_cc": {"selected_options": [pick(c) for c in cc]}},
    }


def test_submission_is_read_or_refused_per_block() -> None:
    assert read_submission(_values("*", "topic", "sales", ["research", "research"])) == RuleChoice(
        None, WatchKind.TOPIC, Department.SALES, (Department.RESEARCH,)
    )
    errors = read_submission(_values("gossip", "blog", "finance", []))
    assert set(errors) == {
        RoutingBlockId.INTENT,
        RoutingBlockId.KIND,
        RoutingBlockId.DEPARTMENT,
    }
    assert set(read_submission(_values("press", "brand", "pr", ["pr"]))) == {RoutingBlockId.CC}
    assert read_submission({}) == {
        RoutingBlockId.INTENT: "Pick an intent.",
        RoutingBlockId.KIND: "Pick a kind of watch.",
        RoutingBlockId.DEPARTMENT: "Pick the department that gets the alert.",
    }


def test_button_values_round_trip_and_garbage_starts_on_the_default() -> None:
    assert parse_button_value("*|topic") == (None, WatchKind.TOPIC)
    assert parse_button_value("praise|person") == (Intent.PRAISE, WatchKind.PERSON)
    assert parse_button_value("open") == (Intent.COMPLAINT, None)
    assert parse_button_value("<script>|x") == (Intent.COMPLAINT, None)


def test_routes_reply_stays_within_block_kit_limits_with_every_rule_edited() -> None:
    table = rule_store.effective_table(
        rule_store.RoutingRule(
            intent=rule_store.intent_column(intent),
            kind=kind.value,
            department="competitive",
            cc=[d.value for d in Department if d is not Department.COMPETITIVE],
        )
        for kind in WatchKind
        for intent in (*Intent, None)
    )
    edited_by = {key: "U0ALICE" for key in table}
    edited_by[(None, WatchKind.BRAND)] = "<!channel>"  # not a user id: not rendered as a mention
    reply = routes_reply({}, {}, table=table, edited_by=edited_by)
    assert block_kit_problems(reply.blocks) == []
    text = str(reply.blocks)
    assert "<!channel>" not in text and "<@U0ALICE>" in text
    # Nothing was cut to fit: every edited rule is on its own marked line.
    assert text.count(":pencil2: ") == len(WatchKind) * (len(Intent) + 1) + 1
