"""SLAs and on-call through the real app: signed slash commands, then a ping and an escalation
delivered to the fake Slack, with the SLA clock moved by the test."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.sla import SlaEngine
from storage.types import utcnow
from tests.e2e.test_workflow_e2e import post_alert, thread, wait_until
from tests.fakes.slack_api import FakeSlackApi
from tests.support.earful import Earful

ADMIN = "U0ALICE"
BOB = "U0BOB"


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


async def test_oncall_commands_validate_show_and_refuse_non_admins(earful: Earful) -> None:
    refused = await earful.command("oncall support <@U0BOB|bob>", user_id=BOB)
    assert "Only Earful admins" in refused["text"]

    bad_zone = await earful.command("oncall support <@U0BOB|bob> tz=Europe/Pariss")
    assert "not an IANA time zone" in bad_zone["text"] and "Example" in bad_zone["text"]

    reply = await earful.command(
        "oncall support <@U0BOB|bob>:00:00-24:00@Europe/Paris:daily <@U0ALICE|alice> "
        "hours=22:00-06:00 tz=asia/tokyo days=fri"
    )
    assert "The *support* on-call rota is now" in reply["text"], reply
    assert "<@U0BOB> all day Europe/Paris, every day" in reply["text"]
    assert "<@U0ALICE> 22:00–06:00 Asia/Tokyo, Fri" in reply["text"]
    assert "On call right now: <@U0BOB>" in reply["text"]

    shown = await earful.command("oncall", user_id=BOB)
    text = "\n".join(b["text"]["text"] for b in shown["blocks"] if b["type"] == "section")
    assert "*support* — On call now: <@U0BOB>" in text
    assert "on call now" in text and "<!date^" in text

    cleared = await earful.command("oncall support clear")
    assert "(2 removed)" in cleared["text"]
    assert "No on-call rotas yet" in (await earful.command("oncall"))["text"]


async def test_sla_table_edits_and_errors(earful: Earful) -> None:
    table = await earful.command("sla", user_id=BOB)
    assert "15m/30m/4h" in table["text"] and "off/off/1d" in table["text"]
    refused = await earful.command("sla support P1 ping=5m", user_id=BOB)
    assert "Only Earful admins" in refused["text"]
    wrong = await earful.command("sla support P1 ping=5 minutes")
    assert "not a step" in wrong["text"] or "not a duration" in wrong["text"]
    assert "ping=15m escalate=30m remind=4h" in wrong["text"]
    edited = await earful.command("sla support P1 ping=5m escalate=off")
    assert "SLA for support P1: ping 5m, escalate off" in edited["text"], edited
    assert "5m*/off*/4h" in edited["text"]
    reset = await earful.command("sla support P1 reset")
    assert "support" in reset["text"] and "5m*" not in reset["text"]


async def test_unclaimed_alert_pings_on_call_in_thread_and_dm_then_escalates_to_exec(
    earful: Earful, fake_slack: FakeSlackApi
) -> None:
    mention_id, alert = await post_alert(earful)
    await earful.command("route exec <#C0EXECS|execs>")
    await earful.command("lead support <@U0ALICE|alice>")
    await earful.command("oncall support <@U0BOB|bob>")
    runtime = earful.runtime
    clock = Clock()
    sla = SlaEngine(runtime.db, workflow=runtime.services.workflow, clock=clock)
    await sla.sync()
    clock.now += timedelta(minutes=61)  # post_alert's mention is a P2: ping after 1 h
    assert await sla.tick() == 1
    await runtime.services.delivery.flush()
    notes = thread(fake_slack, "C0SUPPORT", alert["ts"])
    assert any("Unclaimed for 1 h" in n and "<@U0BOB>" in n for n in notes), notes
    [dm] = fake_slack.messages("D0BOB")
    assert "unclaimed for 1 h" in dm["text"] and "Open the alert" in dm["text"]

    clock.now += timedelta(minutes=180)  # escalate after 4 h
    assert await sla.tick() == 1

    async def exec_posted() -> bool:
        await runtime.services.delivery.flush()
        return bool(fake_slack.messages("C0EXECS"))

    await wait_until(exec_posted)
    [post] = fake_slack.messages("C0EXECS")
    assert "unclaimed for 4 h" in post["text"] and "<@U0ALICE>" in post["text"]
    assert f"/archives/C0SUPPORT/p{alert['ts'].replace('.', '')}" in post["text"]
    notes = thread(fake_slack, "C0SUPPORT", alert["ts"])
    assert any("Earful escalated this" in n for n in notes), notes
    assert await sla.tick() == 0
    await runtime.services.delivery.flush()
    assert len(fake_slack.messages("C0EXECS")) == 1
    assert mention_id
