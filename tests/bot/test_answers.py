"""The knowledge base and the answer modal without Slack: parsing, ranking, builders, storage."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot import command_parser as cp
from bot.answer_modal import (
    DRAFT_LIMIT,
    NOTE_LIMIT,
    TITLE_LIMIT,
    AnswerForm,
    AnswerMetadata,
    answer_view,
    check_form,
    notice_view,
    picked_answer_id,
    quote_post,
    read_form,
)
from bot.answers import (
    AnswerDelete,
    AnswerSearch,
    KnowledgeBase,
    answer_terms,
    answers_reply,
    bm25,
    mention_terms,
    parse_answers,
    rank,
    words,
)
from bot.errors import CommandError, NotAllowed, NotFound
from bot.ids import AnswerActionId, AnswerBlockId, AnswerCallbackId
from storage import answers as answer_store
from storage import mentions as mention_store
from storage.db import Database
from storage.models import Mention, SavedAnswer
from storage.types import utcnow
from tests.fakes.slack_api import block_kit_problems, view_problems

AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
HOSTILE = [
    "<!channel>",
    "<!here>",
    "<@U123>",
    "<#C123|general>",
    "<https://evil.example|bank.com>",
    "&lt;!channel&gt;",
    "<!chan\u200bnel>",
    "\u202e<!here>\u2066",
]
LIVE = ("<!channel", "<!here", "<@U123", "<#C123", "<https://evil", "\u200b", "\u202e")


def make_answer(
    answer_id: int,
    title: str,
    body: str,
    *,
    intents: tuple[str, ...] = (),
    department: str | None = "support",
    use_count: int = 0,
    author: str = "U0BOB",
) -> SavedAnswer:
    return SavedAnswer(
        id=answer_id,
        title=title,
        body=body,
        intents=list(intents),
        department=department,
        terms=" ".join(answer_terms(title, body, intents)),
        author=author,
        use_count=use_count,
        created_at=AT,
    )


def make_mention(**changes: Any) -> Mention:
    values: dict[str, Any] = {
        "id": 7,
        "watch_name": "acme",
        "watch_kind": "brand",
        "source": "reddit:r/acme",
        "origin": "reddit",
        "external_id": "t3_1",
        "url": "https://www.reddit.com/r/acme/comments/1",
        "author": "jane",
        "title": "Where is my refund?",
        "text": "I returned my order two weeks ago and still no refund from Acme.",
        "published_at": AT,
        "intents": [{"intent": "refund_request", "triggers": ["refund"]}],
        "department": "support",
        "priority": "P2",
    }
    values.update(changes)
    return Mention(**values)


# --------------------------------------------------------------------------- commands


def test_parse_answers_search_list_and_delete() -> None:
    assert parse_answers([]) == AnswerSearch("")
    assert parse_answers(["refund", "lost order"]) == AnswerSearch("refund lost order")
    assert parse_answers(["delete", "12"]) == AnswerDelete(12)
    assert parse_answers(["rm", "#3"]) == AnswerDelete(3)
    # Through the shared parser, with Slack's escaping undone first.
    assert cp.parse_command('answers "refund &amp; return"') == AnswerSearch("refund & return")
    assert cp.parse_command("answers delete 5") == AnswerDelete(5)


@pytest.mark.parametrize(
    "tokens", [["delete"], ["delete", "twelve"], ["delete", "1", "2"], ["delete", "-1"]]
)
def test_parse_answers_delete_needs_one_number(tokens: list[str]) -> None:
    with pytest.raises(CommandError) as caught:
        parse_answers(tokens)
    assert caught.value.example == "/earful answers delete 12"


def test_search_text_is_bounded() -> None:
    command = parse_answers(["x" * 1000])
    assert isinstance(command, AnswerSearch) and len(command.text) == 300


# --------------------------------------------------------------------------- words and BM25


def test_words_fold_case_width_plurals_and_drop_stopwords() -> None:
    assert words("The REFUNDS for my Orders, please!") == ["refund", "order"]
    assert words("ＡＣＭＥ queries status access") == ["acme", "query", "status", "access"]
    assert words("bug_report 2024 a b") == ["bug", "report"]
    assert words("Überweisung fehlt") == ["überweisung", "fehlt"]


def test_bm25_matches_the_formula_on_a_small_case() -> None:
    # N = 2, df = 1: idf = ln(1 + 1.5 / 1.5) = ln 2; tf = 1 and |d| = avgdl, so the tf part is 1.
    scores = bm25(["refund"], [["refund", "order"], ["login", "error"]])
    assert scores[0] == pytest.approx(math.log(2))
    assert scores[1] == 0


def test_bm25_rare_terms_and_short_documents_weigh_more() -> None:
    documents = [
        ["order", "refund"],
        ["order", "shipping"],
        ["order", "invoice"],
        ["order", "refund", "shipping", "invoice", "login", "password"],
    ]
    scores = bm25(["order"], documents)
    # "order" is everywhere: it says little, but still prefers the shorter documents.
    assert scores[0] == scores[1] == scores[2] > scores[3] > 0
    rare = bm25(["refund", "order"], documents)
    assert rare[0] > rare[1]
    # Repeating a query word does not count it twice.
    assert bm25(["refund", "refund"], documents) == bm25(["refund"], documents)
    assert bm25(["refund"], []) == []


def test_rank_orders_by_score_then_department_then_use() -> None:
    answers = [
        make_answer(1, "Password reset", "Use the reset link on the login page."),
        make_answer(2, "Refund timing", "Refunds take 5 to 10 days after we receive the order."),
        make_answer(
            3,
            "Refund timing",
            "Refunds take 5 to 10 days after we receive the order.",
            department="sales",
        ),
        make_answer(4, "Shipping delays", "Orders ship within 48 hours.", use_count=9),
    ]
    ranked = rank(mention_terms(make_mention()), answers, department="support")
    ids = [r.answer.id for r in ranked]
    # Same text: the one written for the mention's department first. No shared word: left out.
    assert ids[:2] == [2, 3]
    assert 1 not in ids
    assert ranked[0].score > ranked[1].score
    assert rank(["refund"], answers, limit=1)[0].answer.id in (2, 3)


def test_intents_count_as_terms_of_their_own() -> None:
    answers = [
        make_answer(1, "Returns", "How returns work.", intents=("refund_request",)),
        make_answer(2, "Returns", "How returns work.", intents=("bug_report",)),
    ]
    query = mention_terms(make_mention(title="Returns?", text="how do returns work"))
    assert [r.answer.id for r in rank(query, answers)] == [1, 2]


# --------------------------------------------------------------------------- the modal


def _all_text(view: dict[str, Any]) -> str:
    return json.dumps(view, ensure_ascii=False)


def test_the_modal_is_valid_and_complete() -> None:
    suggestions = [make_answer(i, f"Answer {i}", "Refunds take a week.") for i in (5, 2, 9)]
    view = answer_view(
        make_mention(),
        suggestions=suggestions,
        metadata=AnswerMetadata(mention_id=7, channel_id="C0SUPPORT"),
    )
    assert view_problems(view, expected_type="modal") == []
    assert view["callback_id"] == AnswerCallbackId.SUBMIT
    ids = [b.get("block_id") for b in view["blocks"]]
    assert ids == [
        AnswerBlockId.POST,
        AnswerBlockId.ORIGINAL,
        AnswerBlockId.SUGGESTIONS,
        "answer_draft.0",
        AnswerBlockId.NOTE,
        AnswerBlockId.SAVE,
        AnswerBlockId.TITLE,
    ]
    [button] = view["blocks"][1]["elements"]
    assert button["url"] == "https://www.reddit.com/r/acme/comments/1"
    assert button["text"]["text"] == "Open the original to reply there"
    menu = view["blocks"][2]
    assert menu["dispatch_action"] is True
    assert [o["value"] for o in menu["element"]["options"]] == ["5", "2", "9"]  # order kept
    draft = view["blocks"][3]["element"]
    assert draft["type"] == "plain_text_input" and draft["multiline"] is True
    assert draft["max_length"] == DRAFT_LIMIT
    assert AnswerMetadata.decode(view["private_metadata"]) == AnswerMetadata(7, "C0SUPPORT")


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://example.com/x", None, "https://"])
def test_only_http_links_to_the_original(url: str | None) -> None:
    view = answer_view(make_mention(url=url), suggestions=[], metadata=AnswerMetadata(7))
    assert view_problems(view, expected_type="modal") == []
    assert AnswerBlockId.ORIGINAL not in [b.get("block_id") for b in view["blocks"]]
    assert "no web link" in _all_text(view)
    assert "javascript" not in _all_text(view)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_post_and_answer_text_is_inert(hostile: str) -> None:
    mention = make_mention(title=hostile, text=f"{hostile}\n" * 40, author=hostile)
    answer = make_answer(3, hostile * 20, hostile * 100)
    view = answer_view(
        mention,
        suggestions=[answer],
        metadata=AnswerMetadata(7, "C1", used_answer_id=3),
        form=AnswerForm(draft=hostile, note=hostile, save=True, title=hostile),
    )
    assert view_problems(view, expected_type="modal") == []
    post = view["blocks"][0]["text"]["text"]
    for live in LIVE:
        assert live not in post
    [option] = view["blocks"][2]["element"]["options"]
    assert len(option["text"]["text"]) <= 75 and "\u200b" not in option["text"]["text"]
    notice = notice_view("Nope.", form=AnswerForm(draft=hostile * 300, note=hostile))
    assert view_problems(notice, expected_type="modal") == []
    for block in notice["blocks"][1:]:
        for live in LIVE:
            assert live not in block["text"]["text"]


def test_a_huge_post_is_quoted_within_limits() -> None:
    mention = make_mention(title="🔥" * 500, text="line of text 🔥\n" * 2000, author="a" * 900)
    quoted = quote_post(mention)
    assert len(quoted.encode("utf-16-le")) // 2 <= 3000
    assert quoted.count("\n>") <= 12
    view = answer_view(
        mention,
        suggestions=[make_answer(i, "t" * 300, "b") for i in range(1, 101)],
        metadata=AnswerMetadata(7),
        form=AnswerForm(draft="d" * 5000, note="n" * 5000, title="t" * 500),
    )
    assert view_problems(view, expected_type="modal") == []
    assert block_kit_problems(view["blocks"], max_blocks=100) == []


def test_a_picked_answer_gets_a_new_draft_block_and_keeps_the_rest() -> None:
    metadata = AnswerMetadata(7, "C1", revision=2, used_answer_id=9)
    form = AnswerForm(draft="From the base", note="Checked with billing", save=True, title="T")
    view = answer_view(
        make_mention(),
        suggestions=[make_answer(9, "Refunds", "From the base")],
        metadata=metadata,
        form=form,
    )
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    assert blocks["answer_draft.2"]["element"]["initial_value"] == "From the base"
    assert blocks[AnswerBlockId.NOTE]["element"]["initial_value"] == "Checked with billing"
    assert blocks[AnswerBlockId.SAVE]["element"]["initial_options"][0]["value"] == "save"
    assert blocks[AnswerBlockId.SUGGESTIONS]["element"]["initial_option"]["value"] == "9"


def state(
    draft: str | None = None,
    note: str | None = None,
    save: bool = False,
    title: str | None = None,
    *,
    revision: int = 0,
) -> dict[str, Any]:
    return {
        f"answer_draft.{revision}": {
            AnswerActionId.DRAFT: {"type": "plain_text_input", "value": draft}
        },
        AnswerBlockId.NOTE: {AnswerActionId.NOTE: {"type": "plain_text_input", "value": note}},
        AnswerBlockId.SAVE: {
            AnswerActionId.SAVE: {
                "type": "checkboxes",
                "selected_options": [{"value": "save"}] if save else [],
            }
        },
        AnswerBlockId.TITLE: {AnswerActionId.TITLE: {"type": "plain_text_input", "value": title}},
    }


@pytest.mark.parametrize(
    ("values", "errors"),
    [
        (state(), {"answer_draft.0": "Write a reply draft or an internal note (or both)."}),
        (state("  ", " \n "), {"answer_draft.0": "Write a reply draft or an internal note"}),
        (state("Hi", save=True), {AnswerBlockId.TITLE: "Give the saved answer a title."}),
        (state(note="n", save=True, title="T"), {"answer_draft.0": "Write the reply you want"}),
        (state("x" * (DRAFT_LIMIT + 1)), {"answer_draft.0": "keep it to 3,000"}),
        (state(note="x" * (NOTE_LIMIT + 1)), {AnswerBlockId.NOTE: "keep it to 2,000"}),
        (
            state("Hi", save=True, title="t" * (TITLE_LIMIT + 1)),
            {AnswerBlockId.TITLE: f"keep it to {TITLE_LIMIT}"},
        ),
        (state("Hi"), {}),
        (state(note="Only a note"), {}),
        (state("Hi", save=True, title="Refunds"), {}),
    ],
)
def test_check_form_names_the_block_of_each_problem(
    values: dict[str, Any], errors: dict[str, str]
) -> None:
    metadata = AnswerMetadata(7)
    found = check_form(read_form(values, metadata), metadata)
    assert set(found) == set(errors)
    for block_id, words_ in errors.items():
        assert words_ in found[block_id]


def test_read_form_follows_the_draft_revision() -> None:
    values = state("new draft", "a note", True, "  Refund   timing ", revision=3)
    form = read_form(values, AnswerMetadata(7, revision=3))
    assert form == AnswerForm("new draft", "a note", True, "Refund timing")
    assert read_form(values, AnswerMetadata(7, revision=0)).draft == ""
    picked = {AnswerBlockId.SUGGESTIONS: {AnswerActionId.PICK: {"selected_option": {"value": "4"}}}}
    assert picked_answer_id(picked) == 4
    assert picked_answer_id({}) is None


@pytest.mark.parametrize(
    "raw", ["", "[]", "{}", '{"m": "7", "r": 0}', '{"m": 7, "r": -1}', '{"m": 7, "r": 0, "u": "x"}']
)
def test_metadata_refuses_what_it_did_not_write(raw: str) -> None:
    with pytest.raises(ValueError):
        AnswerMetadata.decode(raw)


# --------------------------------------------------------------------------- /earful answers reply


def mrkdwn_texts(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn":
            yield str(value["text"])
        for item in value.values():
            yield from mrkdwn_texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from mrkdwn_texts(item)


def test_answers_reply_escapes_and_stays_within_limits() -> None:
    found = [make_answer(i, f"<!channel> {i}" * 30, "<@U123> " * 500) for i in range(1, 30)]
    reply = answers_reply(found, query="<!here>", total=29)
    assert block_kit_problems(reply.blocks) == []
    # Plain text is never parsed by Slack; every mrkdwn text must be inert.
    marked = json.dumps(list(mrkdwn_texts(reply.blocks)), ensure_ascii=False)
    assert "<!channel" not in marked and "<@U123" not in marked and "<!here" not in marked
    assert len(reply.blocks) <= 50
    assert "…and 19 more" in marked
    assert "<words>" not in marked  # our own placeholders are escaped too


# --------------------------------------------------------------------------- storage, both engines


async def add(db: Database, title: str, body: str, **kwargs: Any) -> SavedAnswer:
    intents = kwargs.pop("intents", ())
    async with db.session() as session:
        return await answer_store.add_answer(
            session,
            title=title,
            body=body,
            terms=answer_terms(title, body, intents),
            intents=intents,
            **{"author": "U0BOB", "department": "support", **kwargs},
        )


async def test_search_ranks_and_lists(db: Database) -> None:
    kb = KnowledgeBase(db, admins={"U0ADMIN"})
    assert "No saved answers yet" in (await kb.search("")).text
    refund = await add(db, "Refund timing", "Refunds take 5 to 10 days.")
    await add(db, "Password reset", "Use the reset link on the login page.")
    both = await add(db, "Refund after a reset", "If your password reset failed, refunds wait.")
    async with db.session() as session:
        await answer_store.count_use(session, answer_id=both.id or 0)

    reply = await kb.search("refunds")
    lines = [b["text"]["text"] for b in reply.blocks if b["type"] == "section"]
    assert [line.split("*")[1] for line in lines] == [f"#{refund.id}", f"#{both.id}"]
    listing = await kb.search("")
    first = next(b for b in listing.blocks if b["type"] == "section")["text"]["text"]
    assert first.startswith(f"*#{both.id}*")  # the most used first
    assert "No saved answer matches" in (await kb.search("zebra")).text


async def test_candidates_are_bounded_and_need_a_shared_word(db: Database) -> None:
    for n in range(6):
        await add(db, f"Refund {n}", "body")
    await add(db, "Other", "nothing in common")
    async with db.session() as session:
        found = await answer_store.candidates(session, terms=["refund"], limit=4)
        none = await answer_store.candidates(session, terms=[], limit=4)
    assert len(found) == 4 and all("refund" in a.terms for a in found)
    assert none == []


async def test_delete_is_for_the_author_or_an_admin(db: Database) -> None:
    kb = KnowledgeBase(db, admins={"U0ADMIN"})
    mine = await add(db, "Mine", "body", author="U0BOB")
    theirs = await add(db, "Theirs", "body", author="U0CAROL")
    with pytest.raises(NotAllowed, match="only they or an admin"):
        await kb.delete(theirs.id or 0, user_id="U0BOB")
    assert "Deleted saved answer" in (await kb.delete(mine.id or 0, user_id="U0BOB")).text
    assert "Deleted" in (await kb.delete(theirs.id or 0, user_id="U0ADMIN")).text
    with pytest.raises(NotFound):
        await kb.delete(mine.id or 0, user_id="U0BOB")
    async with db.session() as session:
        assert await answer_store.count_answers(session) == 0


async def test_suggestions_for_a_stored_mention(db: Database) -> None:
    mention = make_mention(id=None, found_at=utcnow(), updated_at=utcnow())
    async with db.session() as session:
        [stored] = await mention_store.add_mentions(session, mentions=[mention])
    # Added first, so only the department boost (not the newest-first tie-break) puts it first.
    same_department = await add(db, "Refund status", "Refunds take a week.")
    other_department = await add(db, "Refund status", "Refunds take a week.", department="sales")
    await add(db, "Login", "Reset your password.")
    kb = KnowledgeBase(db, admins=())
    found = await kb.suggest(stored)
    assert [a.id for a in found] == [same_department.id, other_department.id]
    assert await kb.suggest(make_mention(title="", text="the and of")) == []
