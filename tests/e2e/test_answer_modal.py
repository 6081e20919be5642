"""Answering an alert in the answer modal, through the real app over signed HTTP requests.

The card's *Answer…* button, choosing a saved answer, inline validation errors, the submission
(state, audit event, thread reply, knowledge base), permissions and ``/earful answers`` — each
a request Slack would send, each effect read back from the fake Slack or the database.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.answers import answer_terms
from bot.ids import ActionId, AnswerActionId, AnswerBlockId, AnswerCallbackId
from storage import answers as answer_store
from storage import leads as lead_store
from storage import mentions as mention_store
from storage import outbox
from storage.models import Mention, OutboxKind, SavedAnswer
from storage.types import utcnow
from tests.fakes.slack_api import APP_ID, TEAM_ID, FakeSlackApi, view_problems
from tests.fakes.slack_requests import (
    FORM,
    VERIFICATION_TOKEN,
    post_signed,
    view_submission,
)
from tests.support.earful import Earful

ADMIN = "U0ALICE"
BOB = "U0BOB"
CAROL = "U0CAROL"
DANA = "U0DANA"
CHANNEL = "C0SUPPORT"
DRAFT = "answer_draft.0"


@pytest.fixture(autouse=True)
def more_people(fake_slack: FakeSlackApi) -> None:
    fake_slack.add_user(CAROL, "carol", real_name="Carol Chen")
    fake_slack.add_user(DANA, "dana", real_name="Dana Diaz")


async def wait_until(predicate: Callable[[], Awaitable[bool]], within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


class Alert:
    """One posted alert and the modal people open on it."""

    def __init__(self, earful: Earful, mention_id: int, ts: str) -> None:
        self.earful = earful
        self.fake = earful.slack
        self.mention_id = mention_id
        self.ts = ts

    @property
    def card(self) -> dict[str, Any]:
        [message] = [m for m in self.fake.messages(CHANNEL) if m["ts"] == self.ts]
        return message

    def thread(self) -> list[str]:
        return [
            m["text"]
            for m in self.fake.messages(CHANNEL)
            if m.get("thread_ts") == self.ts and m["ts"] != self.ts
        ]

    async def mention(self) -> Mention:
        async with self.earful.runtime.db.session() as session:
            mention = await mention_store.get_mention(session, mention_id=self.mention_id)
        assert mention is not None
        return mention

    async def click(self, user: str, action_id: str = ActionId.WRITE_ANSWER) -> str:
        """Click on the card; returns the trigger_id Slack sent with the click."""
        trigger_id = f"{time.time_ns()}.1.{user}"
        status = await self.earful.click(
            CHANNEL, self.card, action_id, user_id=user, trigger_id=trigger_id
        )
        assert status == 200
        return trigger_id

    async def open_modal(self, user: str) -> dict[str, Any]:
        """Click *Answer…* and return the modal Earful opened (as Slack stores it)."""
        before = len(self.fake.calls_to("views.open"))
        trigger_id = await self.click(user)

        async def opened() -> bool:
            return len(self.fake.calls_to("views.open")) > before

        await wait_until(opened)
        call = self.fake.calls_to("views.open")[-1]
        assert call.args["trigger_id"] == trigger_id

        async def answered() -> bool:
            return call.response is not None

        await wait_until(answered)
        assert call.ok, call.response
        return self.fake.view(str(call.response["view"]["id"]))  # type: ignore[index]

    async def submit(
        self, view: dict[str, Any], values: dict[str, Any], *, user: str
    ) -> dict[str, Any]:
        """Submit the modal with ``values`` as its state; returns Earful's ack (may be {})."""
        body = view_submission(
            AnswerCallbackId.SUBMIT,
            values,
            private_metadata=view["private_metadata"],
            user_id=user,
            view_id=view["id"],
            blocks=view["blocks"],
        )
        response = await post_signed(
            self.earful.http, self.earful.url, body, FORM, self.earful.signer
        )
        assert response.status == 200
        text = await response.text()
        return json.loads(text) if text else {}


def values(
    draft: str | None = None,
    note: str | None = None,
    *,
    save: bool = False,
    title: str | None = None,
    draft_block: str = DRAFT,
) -> dict[str, Any]:
    return {
        draft_block: {AnswerActionId.DRAFT: {"type": "plain_text_input", "value": draft}},
        AnswerBlockId.NOTE: {AnswerActionId.NOTE: {"type": "plain_text_input", "value": note}},
        AnswerBlockId.SAVE: {
            AnswerActionId.SAVE: {
                "type": "checkboxes",
                "selected_options": (
                    [{"text": {"type": "plain_text", "text": "Save"}, "value": "save"}]
                    if save
                    else []
                ),
            }
        },
        AnswerBlockId.TITLE: {AnswerActionId.TITLE: {"type": "plain_text_input", "value": title}},
    }


def view_action(
    view: dict[str, Any], action_id: str, selected: dict[str, Any], *, user: str
) -> bytes:
    """block_actions from a modal (container type "view"), as Slack sends a menu choice there."""
    block = next(
        b for b in view["blocks"] if (b.get("element") or {}).get("action_id") == action_id
    )
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {"type": "view", "view_id": view["id"]},
        "trigger_id": f"{time.time_ns()}.2.{user}",
        "team": {"id": TEAM_ID, "domain": "earful-test"},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": view,
        "actions": [
            {
                "type": block["element"]["type"],
                "action_id": action_id,
                "block_id": block["block_id"],
                "selected_option": selected,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


async def post_alert(earful: Earful, *, text: str, title: str, external_id: str = "p1") -> Alert:
    reply = await earful.command(f"route support <#{CHANNEL}|support>", user_id=ADMIN)
    assert "now go to" in reply["text"], reply
    mention = Mention(
        watch_name="acme",
        watch_kind="brand",
        source="reddit:r/acme",
        origin="reddit",
        external_id=external_id,
        url=f"https://www.reddit.com/r/acme/comments/{external_id}",
        author="jane",
        title=title,
        text=text,
        matched_terms=["acme"],
        intents=[{"intent": "refund_request", "triggers": ["refund"]}],
        department="support",
        priority="P2",
        found_at=utcnow(),
        updated_at=utcnow(),
    )
    async with earful.runtime.db.session() as session:
        [stored] = await mention_store.add_mentions(session, mentions=[mention])
        outbox.enqueue(session, kind=OutboxKind.ALERT, mention_id=stored.id)
    earful.runtime.services.delivery.kick()
    ts = ""

    async def posted() -> bool:
        nonlocal ts
        async with earful.runtime.db.session() as session:
            current = await mention_store.get_mention(session, mention_id=stored.id or 0)
        ts = (current.ts if current else None) or ""
        return bool(ts)

    await wait_until(posted)
    return Alert(earful, stored.id or 0, ts)


async def save_answer(earful: Earful, title: str, body: str, **kwargs: Any) -> SavedAnswer:
    intents = kwargs.pop("intents", ())
    async with earful.runtime.db.session() as session:
        return await answer_store.add_answer(
            session,
            title=title,
            body=body,
            terms=answer_terms(title, body, intents),
            intents=intents,
            **{"author": BOB, "department": "support", **kwargs},
        )


def told(fake: FakeSlackApi, user: str, before: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(fake.ephemerals(user=user)) > before

    return check


# --------------------------------------------------------------------------- the happy path


async def test_answer_with_a_saved_answer_and_save_a_new_one(earful: Earful) -> None:
    fake = earful.slack
    login = await save_answer(earful, "Password reset", "Use the reset link on the login page.")
    refund = await save_answer(
        earful, "Refund timing", "Refunds take 5 to 10 days.", intents=("refund_request",)
    )
    shipping = await save_answer(earful, "Refund for a late order", "Late orders are refunded.")
    alert = await post_alert(
        earful, title="Where is my refund?", text="I returned it two weeks ago. No refund yet!"
    )
    assert [b for b in alert.card["blocks"] if b["type"] == "actions"]

    modal = await alert.open_modal(BOB)
    assert view_problems(modal, expected_type="modal") == []
    menu = next(b for b in modal["blocks"] if b["block_id"] == AnswerBlockId.SUGGESTIONS)
    offered = [int(o["value"]) for o in menu["element"]["options"]]
    assert offered[0] == refund.id  # title, body and intent all match
    assert set(offered) == {refund.id, shipping.id}  # the login answer shares no word
    assert login.id not in offered
    [link] = next(b for b in modal["blocks"] if b["block_id"] == AnswerBlockId.ORIGINAL)["elements"]
    assert link["url"] == "https://www.reddit.com/r/acme/comments/p1"
    assert await earful.click(CHANNEL, alert.card, ActionId.OPEN_ORIGINAL, user_id=BOB) == 200

    # Bob types a note, then picks the refund answer: the draft fills, the note stays.
    fake.type_into(
        modal["id"],
        AnswerBlockId.NOTE,
        AnswerActionId.NOTE,
        {"type": "plain_text_input", "value": "Billing confirmed"},
    )
    choice = next(o for o in menu["element"]["options"] if o["value"] == str(refund.id))
    body = view_action(fake.view(modal["id"]), AnswerActionId.PICK, choice, user=BOB)
    response = await post_signed(earful.http, earful.url, body, FORM, earful.signer)
    assert response.status == 200
    await response.read()

    async def updated() -> bool:
        return bool(fake.calls_to("views.update"))

    await wait_until(updated)
    update = fake.calls_to("views.update")[-1]
    assert update.args["view_id"] == modal["id"] and update.args["hash"] == modal["hash"]
    filled = fake.view(modal["id"])
    blocks = {b["block_id"]: b for b in filled["blocks"]}
    assert blocks["answer_draft.1"]["element"]["initial_value"] == "Refunds take 5 to 10 days."
    assert DRAFT not in blocks
    # Slack kept the typed note (same block and action id) and nothing for the new draft block.
    assert filled["state"]["values"] == {
        AnswerBlockId.NOTE: {
            AnswerActionId.NOTE: {"type": "plain_text_input", "value": "Billing confirmed"}
        }
    }

    ack = await alert.submit(
        filled,
        values(
            "Refunds take 5 to 10 days. <!channel> ping & co",
            "Billing confirmed",
            save=True,
            title="Refund timing, short",
            draft_block="answer_draft.1",
        ),
        user=BOB,
    )
    assert ack == {}
    mention = await alert.mention()
    assert (mention.state, mention.owner) == ("answered", BOB)  # unclaimed: Bob took it on

    async with earful.runtime.db.session() as session:
        events = await mention_store.events_for(session, mention_id=alert.mention_id)
        records = await answer_store.answers_for(session, mention_id=alert.mention_id)
        used = await answer_store.get_answer(session, answer_id=refund.id or 0)
        listed = await answer_store.most_used(session, limit=10)
    [event] = events
    assert (event.actor, event.action, event.from_state, event.to_state) == (
        BOB,
        "answer",
        "new",
        "answered",
    )
    [record] = records
    assert record.event_id == event.id and record.author == BOB
    assert record.draft == "Refunds take 5 to 10 days. <!channel> ping & co"
    assert record.note == "Billing confirmed"
    assert record.used_answer_id == refund.id
    assert used is not None and used.use_count == 1
    [saved] = [a for a in listed if a.id == record.saved_answer_id]
    assert (saved.title, saved.department, saved.intents, saved.watch_name, saved.author) == (
        "Refund timing, short",
        "support",
        ["refund_request"],
        "acme",
        BOB,
    )

    # The card and the thread say so; the draft is escaped, not a live @channel.
    async def replied() -> bool:
        return bool(alert.thread())

    await wait_until(replied)
    [reply] = alert.thread()
    assert (
        f"<@{BOB}> answered this: Refunds take 5 to 10 days. &lt;!channel&gt; ping &amp; co"
        in reply
    )
    await wait_until(lambda: _says(alert, "*Answered* by"))
    await wait_until(told(fake, BOB, 0))
    [note] = fake.ephemerals(user=BOB)
    assert note["channel"] == CHANNEL
    assert "Saved for reuse as answer" in note["text"] and "the original" in note["text"]

    # The new answer is in the knowledge base, searchable by anyone.
    found = await earful.command("answers refund short", user_id=CAROL)
    assert f"#{saved.id}" in json.dumps(found["blocks"])


async def _says(alert: Alert, words: str) -> bool:
    return any(words in json.dumps(b) for b in alert.card["blocks"])


# --------------------------------------------------------------------------- inline errors


@pytest.mark.parametrize(
    ("submitted", "block", "words"),
    [
        (values(), DRAFT, "Write a reply draft or an internal note"),
        (values("Hi there", save=True), AnswerBlockId.TITLE, "Give the saved answer a title"),
        (values("x" * 3001), DRAFT, "keep it to 3,000"),
        (values(note="n" * 2001), AnswerBlockId.NOTE, "keep it to 2,000"),
    ],
)
async def test_validation_errors_come_back_inline(
    earful: Earful, submitted: dict[str, Any], block: str, words: str
) -> None:
    alert = await post_alert(earful, title="Refund?", text="Where is my refund")
    modal = await alert.open_modal(BOB)
    ack = await alert.submit(modal, submitted, user=BOB)
    assert ack["response_action"] == "errors"
    assert list(ack["errors"]) == [block]
    assert words in ack["errors"][block]
    mention = await alert.mention()
    assert (mention.state, mention.owner) == ("new", None)
    async with earful.runtime.db.session() as session:
        assert await mention_store.events_for(session, mention_id=alert.mention_id) == []
        assert await answer_store.answers_for(session, mention_id=alert.mention_id) == []
        assert await answer_store.count_answers(session) == 0


# --------------------------------------------------------------------------- permissions


async def test_only_the_claimer_lead_or_an_admin_may_answer(earful: Earful) -> None:
    fake = earful.slack
    alert = await post_alert(earful, title="Refund?", text="Where is my refund")
    await alert.click(BOB, ActionId.CLAIM)

    async def claimed() -> bool:
        return (await alert.mention()).owner == BOB

    await wait_until(claimed)
    modal = await alert.open_modal(BOB)  # kept open while others try

    # Carol is refused on the button: no form opens, she is told why.
    opened = len(fake.calls_to("views.open"))
    await alert.click(CAROL)
    await wait_until(told(fake, CAROL, 0))
    assert "only they" in fake.ephemerals(user=CAROL)[-1]["text"]
    assert len(fake.calls_to("views.open")) == opened

    # A submission from her (a stale or forged form) is refused on the server too, and the
    # modal turns into a notice that keeps her draft to copy.
    ack = await alert.submit(modal, values("My <b>reply</b>"), user=CAROL)
    assert ack["response_action"] == "update"
    assert view_problems(ack["view"], expected_type="modal") == []
    notice = json.dumps(ack["view"])
    assert "only they" in notice and "My &lt;b&gt;reply&lt;/b&gt;" in notice
    assert (await alert.mention()).state == "claimed"

    # The department lead may answer what Bob claimed; Bob stays the owner.
    async with earful.runtime.db.session() as session:
        await lead_store.set_lead(session, department="support", user_id=DANA, updated_by=ADMIN)
    assert await alert.submit(modal, values(note="Handled by phone"), user=DANA) == {}
    mention = await alert.mention()
    assert (mention.state, mention.owner) == ("answered", BOB)
    async with earful.runtime.db.session() as session:
        event = (await mention_store.events_for(session, mention_id=alert.mention_id))[-1]
    assert event.actor == DANA and event.note == "Internal note: Handled by phone"

    # Answered already: a second answer is an illegal transition, shown as a notice.
    again = await alert.submit(modal, values("Again"), user=ADMIN)
    assert again["response_action"] == "update"
    assert "already" in json.dumps(again["view"])


async def test_an_admin_may_answer_what_someone_else_claimed(earful: Earful) -> None:
    alert = await post_alert(earful, title="Refund?", text="Where is my refund")
    await alert.click(BOB, ActionId.CLAIM)

    async def claimed() -> bool:
        return (await alert.mention()).owner == BOB

    await wait_until(claimed)
    modal = await alert.open_modal(ADMIN)
    assert await alert.submit(modal, values("We are on it."), user=ADMIN) == {}
    assert (await alert.mention()).state == "answered"


# --------------------------------------------------------------------------- /earful answers


async def test_answers_command_lists_searches_and_deletes(earful: Earful) -> None:
    empty = await earful.command("answers", user_id=BOB)
    assert "No saved answers yet" in empty["text"]
    mine = await save_answer(earful, "Refund timing", "Refunds take a week.", author=BOB)
    hostile = await save_answer(earful, "<!channel> login", "<@U0ALICE> reset", author=CAROL)

    listing = await earful.command("answers", user_id=BOB)
    assert listing["response_type"] == "ephemeral"
    text = json.dumps(listing["blocks"])
    assert f"#{mine.id}" in text and f"#{hostile.id}" in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text

    search = await earful.command("answers login", user_id=BOB)
    sections = [b for b in search["blocks"] if b["type"] == "section"]
    assert len(sections) == 1 and f"#{hostile.id}" in sections[0]["text"]["text"]

    refused = await earful.command(f"answers delete {hostile.id}", user_id=BOB)
    assert "only they or an admin" in refused["text"]
    deleted = await earful.command(f"answers delete {mine.id}", user_id=BOB)
    assert f"Deleted saved answer #{mine.id}" in deleted["text"]
    by_admin = await earful.command(f"answers delete {hostile.id}", user_id=ADMIN)
    assert "Deleted" in by_admin["text"]
    async with earful.runtime.db.session() as session:
        assert await answer_store.count_answers(session) == 0
    help_text = (await earful.command("help", user_id=BOB))["text"]
    assert "/earful answers" in help_text


# --------------------------------------------------------------------------- the fake itself


async def test_the_fake_keeps_typed_input_only_for_unchanged_inputs(
    fake_slack: FakeSlackApi,
) -> None:
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(token="xoxb-1", base_url=fake_slack.url)

    def modal(draft_block: str) -> dict[str, Any]:
        def field(block_id: str) -> dict[str, Any]:
            return {
                "type": "input",
                "block_id": block_id,
                "label": {"type": "plain_text", "text": block_id},
                "element": {"type": "plain_text_input", "action_id": "text"},
            }

        return {
            "type": "modal",
            "title": {"type": "plain_text", "text": "T"},
            "blocks": [field(draft_block), field("note")],
        }

    opened = (await client.views_open(trigger_id="1.2.3", view=modal("draft.0")))["view"]
    for block_id in ("draft.0", "note"):
        fake_slack.type_into(
            opened["id"], block_id, "text", {"type": "plain_text_input", "value": block_id}
        )
    with pytest.raises(ValueError):
        fake_slack.type_into(opened["id"], "nope", "text", {"value": "x"})
    await client.views_update(view_id=opened["id"], view=modal("draft.1"))
    assert fake_slack.view(opened["id"])["state"]["values"] == {
        "note": {"text": {"type": "plain_text_input", "value": "note"}}
    }
