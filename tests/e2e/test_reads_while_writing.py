"""Read-only replies do not wait for a writer, through the real app over signed HTTP requests.

On SQLite one transaction writes at a time, and Earful's write sessions wait in line for it;
during a burst of ingest that line can be seconds long, longer than Slack's 3-second ack. So
every path that only reads answers from a read-only snapshot instead. Here a write session is
held open (SQLite's write lock taken, an uncommitted write pending) while every read-only
command and modal is asked for: each must answer with its normal content before the writer
lets go. On PostgreSQL readers never wait for writers anyway; there the same requests show
that these paths run inside a READ ONLY transaction (a write would be refused).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bot.ids import AnswerActionId, AnswerBlockId
from bot.routing_modal import RoutingBlockId
from storage import leads as lead_store
from storage.db import Database
from tests.e2e.test_answer_modal import (
    post_alert,
    save_answer,
    view_action,
    wait_until,
)
from tests.e2e.test_routing_rules import initial
from tests.fakes.slack_api import Call, FakeSlackApi
from tests.fakes.slack_requests import FORM, post_signed, slash_command
from tests.support.earful import ADMIN, Earful

BOB = "U0BOB"
DANA = "U0DANA"
HELD = "U0HELD"  # the lead the held writer sets and never commits while the reads run
WORKING = "Working on it"  # what a command that missed its ack deadline answers instead
WITHIN = 20.0  # seconds; generous: each read answers in well under a second when it does not wait


@pytest.fixture(autouse=True)
def more_people(fake_slack: FakeSlackApi) -> None:
    fake_slack.add_user(DANA, "dana", real_name="Dana Diaz")


@asynccontextmanager
async def writer_held(db: Database) -> AsyncIterator[None]:
    """A write session that is open (with a write pending) until the block ends."""
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with db.session() as session:
            # A real write: on SQLite it takes the write lock, not only this process's turn.
            await lead_store.set_lead(session, department="pr", user_id=HELD, updated_by=ADMIN)
            await session.flush()
            holding.set()
            await release.wait()

    writer = asyncio.create_task(hold(), name="held writer")
    await asyncio.wait_for(holding.wait(), timeout=WITHIN)
    try:
        yield
    finally:
        release.set()
        await writer


def shown(reply: dict[str, Any]) -> str:
    """Everything a person sees of an ephemeral reply: its text and its blocks."""
    return reply.get("text", "") + "\n" + json.dumps(reply.get("blocks", []))


async def test_read_only_replies_do_not_wait_for_a_writer(
    earful: Earful, fake_slack: FakeSlackApi
) -> None:
    # Something to show in every reply, set up through the same commands people use.
    for command, said in (
        (f"lead support <@{DANA}|dana>", "now leads"),
        (f"oncall support <@{BOB}|bob> hours=09:00-17:00 tz=Europe/Paris", "on-call rota"),
        ("sla support P1 ping=15m", "SLA for support"),
        ("route complaint competitor pr", "Complaint on a competitor watch"),
        ('mute author="Spam Bot"', "Rule #"),
        ("digest subscribe time=07:30 tz=Europe/Paris", "digest goes to"),
    ):
        reply = await earful.command(command, user_id=ADMIN)
        assert said in reply["text"], (command, reply)
    refund = await save_answer(earful, "Refund timing", "Refunds take 5 to 10 days.")
    alert = await post_alert(earful, title="Where is my refund?", text="No refund yet!")
    modal = await alert.open_modal(BOB)  # before the writer: picking an answer is probed below

    async def command(text: str, *, user_id: str = BOB) -> str:
        return shown(await earful.command(text, user_id=user_id))

    async def slack_call(method: str, trigger_id: str | None = None) -> dict[str, Any]:
        """The view Earful sent with its call to ``method`` (the one for ``trigger_id``)."""

        def calls() -> list[Call]:
            found = fake_slack.calls_to(method)
            return [c for c in found if trigger_id in (None, c.args.get("trigger_id"))]

        async def called() -> bool:
            return bool(calls())

        await wait_until(called, within=2 * WITHIN)  # asyncio.wait below decides first
        return dict(calls()[-1].args["view"])

    async def route_editor() -> str:
        """``/earful route edit``: the ack waits for views.open, which waits for the rules."""
        trigger = "9.9.routing"
        body = slash_command("route edit complaint competitor", user_id=ADMIN, trigger_id=trigger)
        response = await post_signed(earful.http, earful.url, body, FORM, earful.signer)
        ack = await response.text()
        if response.status != 200 or ack:
            # An opened modal is the whole answer (an empty ack). Bolt hands a listener that
            # has not acked within 3 seconds over to the next: `/earful`'s fallback reply.
            return f"{response.status} {ack}"
        view = await slack_call("views.open", trigger)
        return f"department={initial(view, RoutingBlockId.DEPARTMENT)}"

    async def answer_modal() -> str:
        """The *Answer…* button: acked at once, then the mention, its lead and suggestions."""
        trigger = await alert.click(BOB)
        return json.dumps(await slack_call("views.open", trigger))

    async def pick_answer() -> str:
        """Choosing a saved answer in the open modal: the mention, the answer, suggestions."""
        menu = next(b for b in modal["blocks"] if b["block_id"] == AnswerBlockId.SUGGESTIONS)
        choice = next(o for o in menu["element"]["options"] if o["value"] == str(refund.id))
        body = view_action(modal, AnswerActionId.PICK, choice, user=BOB)
        response = await post_signed(earful.http, earful.url, body, FORM, earful.signer)
        assert response.status == 200
        await response.read()
        return json.dumps(await slack_call("views.update"))

    # Each read, and what it shows when it answers as usual: what was set up above.
    probes: dict[str, tuple[Callable[[], Awaitable[str]], tuple[str, ...]]] = {
        "routes": (lambda: command("routes"), ("1 team rule", f"<@{ADMIN}>")),
        "leads": (lambda: command("leads"), (f"<@{DANA}>",)),
        "sla": (lambda: command("sla"), ("15m",)),
        "oncall": (lambda: command("oncall"), (f"<@{BOB}>", f"lead <@{DANA}>")),
        "digest": (lambda: command("digest", user_id=ADMIN), ("07:30 Europe/Paris",)),
        "mutes": (lambda: command("mutes"), ("1 mute rule", "spam bot")),
        "answers": (lambda: command("answers"), ("#1 Refund timing",)),
        "answers search": (lambda: command("answers refund"), ("matching “refund”",)),
        "route edit": (route_editor, ("department=pr",)),
        "answer modal": (answer_modal, ("Where is my refund?", "Refund timing")),
        "pick an answer": (pick_answer, ("Refunds take 5 to 10 days.",)),
    }
    async with writer_held(earful.runtime.db):
        tasks = {name: asyncio.ensure_future(probe()) for name, (probe, _) in probes.items()}
        done, pending = await asyncio.wait(tasks.values(), timeout=WITHIN)
        for task in pending:
            task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    answers = {name: task.result() if task in done else None for name, task in tasks.items()}
    wrong = {
        name: (answer or "(still waiting for the writer)")[:300]
        for name, answer in answers.items()
        if answer is None or WORKING in answer or not all(e in answer for e in probes[name][1])
    }
    assert wrong == {}, f"these did not answer as usual while a writer was busy: {wrong}"
    # A snapshot of what was committed: the held writer's uncommitted lead is not in it.
    assert HELD not in str(answers["leads"])
