"""Editing the routing table from Slack: commands, the modal, and a polled mention obeying it.

Everything goes through the real Bolt app over HTTP with signed requests; Slack's side is the
fake Web API, which checks every view and message against Block Kit's limits.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from bot.routing_modal import RoutingActionId, RoutingBlockId, RoutingCallbackId
from storage import routing_rules as rule_store
from storage.models import Mention, RoutingRule
from tests.e2e.test_alert_flow import add_watch, all_text, wait_until
from tests.fakes.slack_api import FakeSlackApi, block_kit_problems
from tests.fakes.slack_requests import (
    FORM,
    block_action,
    post_signed,
    slash_command,
    view_submission,
)
from tests.support.earful import ADMIN, Earful
from tests.support.feeds import FeedItem, FeedServer, rss
from watchers.departments import WatchKind
from watchers.enrich import enrich
from watchers.routing import DEFAULT_ROUTING, primary_intent

NOT_ADMIN = "U0BOB"


async def stored_rules(earful: Earful) -> list[tuple[str, str, str, list[str], str | None]]:
    async with earful.runtime.db.session() as session:
        rules = await rule_store.list_rules(session)
    return [(r.intent, r.kind, r.department, r.cc, r.updated_by) for r in rules]


def kind_section(reply: dict[str, Any], kind: str) -> str:
    for block in reply["blocks"]:
        text = (block.get("text") or {}).get("text", "")
        if block["type"] == "section" and text.startswith(f"*{kind.capitalize()} watches*"):
            return str(text)
    raise AssertionError(f"no section for {kind} watches in {all_text(reply['blocks'])}")


async def test_rules_by_command_are_listed_and_reset(earful: Earful) -> None:
    reply = await earful.command("route complaint competitor support cc=product,pr")
    assert reply["response_type"] == "ephemeral"
    assert "Complaint on a competitor watch → *support (cc product, pr)*" in reply["text"]
    assert await stored_rules(earful) == [
        ("complaint", "competitor", "support", ["product", "pr"], ADMIN)
    ]

    routes = await earful.command("routes")
    assert block_kit_problems(routes["blocks"]) == []
    competitor = kind_section(routes, "competitor")
    assert f":pencil2: complaint → *support (cc product, pr)* · by <@{ADMIN}>" in competitor
    # The untouched rules are still listed, grouped by destination, and not marked.
    assert "purchase intent" in competitor and "→ *sales* (cc competitive)" in competitor
    assert ":pencil2:" not in kind_section(routes, "brand")
    # The channel list is still there, with the existing form of `route`.
    assert "Department channels" in all_text(routes["blocks"])

    # "none" is the no-clear-intent rule; "all" sets it on every kind in one go.
    reply = await earful.command("route none all research")
    assert reply["text"].count(":white_check_mark:") == len(WatchKind)
    # Topic watches already send it to research: no team rule is kept for that one.
    assert "that is the default" in reply["text"]
    assert {(r[0], r[1]) for r in await stored_rules(earful)} == {
        ("complaint", "competitor"),
        ("*", "brand"),
        ("*", "competitor"),
        ("*", "product"),
        ("*", "person"),
    }

    reply = await earful.command("route reset complaint competitor")
    assert "back to the default: *sales (cc competitive)*" in reply["text"]
    reply = await earful.command("route reset complaint competitor")
    assert "no team rule" in reply["text"]
    reply = await earful.command("route reset none all")
    assert reply["text"].count("back to the default") == 4
    assert await stored_rules(earful) == []
    routes = await earful.command("routes")
    assert not any(":pencil2:" in kind_section(routes, kind) for kind in WatchKind)
    assert "(0 in all)" in all_text(routes["blocks"])

    # The department-first form still sets a channel.
    reply = await earful.command("route sales <#C0SALES|sales>")
    assert "<#C0SALES>" in reply["text"]


async def test_only_admins_edit_and_garbage_saves_nothing(earful: Earful) -> None:
    refused = await earful.command("route complaint brand sales", user_id=NOT_ADMIN)
    assert "Only Earful admins" in refused["text"] and NOT_ADMIN in refused["text"]
    refused = await earful.command("route reset complaint brand", user_id=NOT_ADMIN)
    assert "Only Earful admins" in refused["text"]

    for text, fragment in [
        ("route complaint brand finance", "`finance` is not a department"),
        ("route complaint all sales cc=sales", "can't include sales"),
        ("route gossip brand sales", "is not one of the departments"),
        ("route complaint brand", "an intent, a watch kind and a department"),
    ]:
        reply = await earful.command(text)
        assert reply["text"].startswith(":warning:") and fragment in reply["text"], reply
        # Every refusal shows a command that would work.
        assert "Example:" in all_text(reply["blocks"])
        assert block_kit_problems(reply["blocks"]) == []
    assert await stored_rules(earful) == []

    help_text = all_text((await earful.command("help", user_id=NOT_ADMIN))["blocks"])
    for example in ("route complaint competitor sales cc=competitive", "route reset", "route edit"):
        assert example in help_text
    # Anyone may read the table.
    routes = await earful.command("routes", user_id=NOT_ADMIN)
    assert "Routing rules" in all_text(routes["blocks"])


def submitted(view: dict[str, Any], **choices: Any) -> dict[str, Any]:
    """The modal's state as Slack reports it: what it was prefilled with, changed by choices."""
    values: dict[str, Any] = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        element = block["element"]
        state: dict[str, Any] = {"type": element["type"]}
        if element["type"] == "multi_static_select":
            state["selected_options"] = element.get("initial_options", [])
        else:
            state["selected_option"] = element.get("initial_option")
        values[block["block_id"]] = {element["action_id"]: state}
    for action_id, chosen in choices.items():
        block_id = RoutingBlockId[action_id.upper()].value
        action = RoutingActionId[action_id.upper()].value
        option = lambda value: {"text": {"type": "plain_text", "text": value}, "value": value}  # noqa: E731
        if isinstance(chosen, list):
            values[block_id][action]["selected_options"] = [option(v) for v in chosen]
        else:
            values[block_id][action]["selected_option"] = option(chosen)
    return values


async def submit(
    earful: Earful, view: dict[str, Any], values: dict[str, Any], *, user_id: str = ADMIN
) -> tuple[int, str]:
    body = view_submission(
        view["callback_id"],
        values,
        private_metadata=view["private_metadata"],
        user_id=user_id,
        blocks=view["blocks"],
    )
    response = await post_signed(earful.http, earful.url, body, FORM, earful.signer)
    return response.status, await response.text()


def initial(view: dict[str, Any], block_id: RoutingBlockId) -> Any:
    [block] = [b for b in view["blocks"] if b.get("block_id") == block_id]
    element = block["element"]
    if "initial_options" in element:
        return [o["value"] for o in element["initial_options"]]
    return (element.get("initial_option") or {}).get("value")


async def test_rule_by_modal(earful: Earful, fake_slack: FakeSlackApi) -> None:
    # The button under /earful routes opens the editor with the click's trigger_id.
    routes = await earful.command("routes")
    click = block_action(
        RoutingActionId.OPEN_EDITOR,
        user_id=ADMIN,
        channel_id="C0SUPPORT",
        message_blocks=routes["blocks"],
        is_ephemeral=True,
        trigger_id="13345224609.738474920.8088930838d88f008e0",
    )
    response = await post_signed(earful.http, earful.url, click, FORM, earful.signer)
    assert response.status == 200
    [opened] = await fake_slack.wait_for("views.open")
    assert opened.ok and opened.args["trigger_id"] == "13345224609.738474920.8088930838d88f008e0"
    assert opened.args["view"]["callback_id"] == RoutingCallbackId.EDIT

    # `/earful route edit <intent> <kind>` opens it on that rule, prefilled with its route.
    body = slash_command("route edit complaint competitor", user_id=ADMIN, trigger_id="1.2.abc")
    response = await post_signed(earful.http, earful.url, body, FORM, earful.signer)
    # An opened modal is the answer: the ack is empty, so no ephemeral message appears.
    assert response.status == 200 and await response.text() == ""
    calls = await fake_slack.wait_for("views.open", count=2)
    assert calls[1].args["trigger_id"] == "1.2.abc"
    view = calls[1].args["view"]
    assert initial(view, RoutingBlockId.INTENT) == "complaint"
    assert initial(view, RoutingBlockId.KIND) == "competitor"
    assert initial(view, RoutingBlockId.DEPARTMENT) == "sales"
    assert initial(view, RoutingBlockId.CC) == ["competitive"]

    # Copying the department itself is refused inline, on the cc input; nothing is saved.
    status, text = await submit(earful, view, submitted(view, cc=["competitive", "sales"]))
    assert status == 200
    answer = json.loads(text)
    assert answer["response_action"] == "errors"
    assert (
        set(answer["errors"]) == {RoutingBlockId.CC}
        and "sales" in answer["errors"]["routing_cc_block"]
    )
    # A tampered value is refused too, on its own input.
    status, text = await submit(earful, view, submitted(view, department="finance"))
    assert set(json.loads(text)["errors"]) == {RoutingBlockId.DEPARTMENT}
    # So is a non-admin, whatever the form showed them.
    status, text = await submit(
        earful, view, submitted(view, department="support"), user_id=NOT_ADMIN
    )
    assert "Only Earful admins" in json.dumps(json.loads(text)["errors"])
    assert await stored_rules(earful) == []

    status, text = await submit(earful, view, submitted(view, department="support", cc=["product"]))
    assert status == 200 and text == ""
    assert await stored_rules(earful) == [
        ("complaint", "competitor", "support", ["product"], ADMIN)
    ]
    # The admin is told where they ran the command (private_metadata carried the channel).
    await fake_slack.wait_for("chat.postEphemeral")
    [note] = fake_slack.ephemerals("C0SUPPORT", ADMIN)
    assert "Routing rule saved" in note["text"] and "support (cc product)" in note["text"]

    # Choosing the default again in the modal removes the team rule.
    status, _ = await submit(earful, view, submitted(view, department="sales", cc=["competitive"]))
    assert status == 200
    assert await stored_rules(earful) == []


async def test_non_admins_do_not_get_the_editor(earful: Earful, fake_slack: FakeSlackApi) -> None:
    ack = await earful.command("route edit", user_id=NOT_ADMIN)
    assert "Only Earful admins" in ack["text"]
    routes = await earful.command("routes", user_id=NOT_ADMIN)
    click = block_action(
        RoutingActionId.OPEN_EDITOR,
        user_id=NOT_ADMIN,
        channel_id="C0SUPPORT",
        message_blocks=routes["blocks"],
        is_ephemeral=True,
    )
    response = await post_signed(earful.http, earful.url, click, FORM, earful.signer)
    assert response.status == 200
    await fake_slack.wait_for("chat.postEphemeral")
    [note] = fake_slack.ephemerals("C0SUPPORT", NOT_ADMIN)
    assert "Only Earful admins" in note["text"]
    assert fake_slack.calls_to("views.open") == []
    # A bad `route edit` is answered in the ack, with an example.
    ack = await earful.command("route edit gossip brand")
    assert "`gossip` is not an intent" in ack["text"]


async def test_a_polled_mention_follows_the_team_rule(
    earful: Earful, fake_slack: FakeSlackApi, feed_server: FeedServer
) -> None:
    title = "Acme Cloud is a mess"
    text = "Acme cloud support had me on hold for 2 hours and there is still no refund."
    scores = enrich(title=title, text=text, kind=WatchKind.BRAND)
    intent = primary_intent([hit.intent for hit in scores.intents])
    default = (
        DEFAULT_ROUTING.get((intent, WatchKind.BRAND)) or DEFAULT_ROUTING[(None, WatchKind.BRAND)]
    )
    assert default.department.value != "sales", "pick a post the default sends elsewhere"

    await earful.command("route sales <#C0SALES|sales>")
    await earful.command(f"route {default.department.value} <#C0SUPPORT|support>")
    reply = await earful.command(f"route {intent.value if intent else 'none'} brand sales cc=pr")
    assert ":white_check_mark:" in reply["text"]

    feed_url = feed_server.serve(
        "/feed.xml", rss([FeedItem("p1", title, text, "https://example.com/p/1")])
    )
    await add_watch(earful, feed_url)
    await fake_slack.wait_for("chat.postMessage", timeout=15)
    [alert] = fake_slack.messages("C0SALES")
    assert "team rule" in all_text(alert["blocks"])
    assert fake_slack.messages("C0SUPPORT") == []

    async def stored() -> bool:
        async with earful.runtime.db.session() as session:
            return bool((await session.execute(select(Mention))).scalars().all())

    await wait_until(stored)
    async with earful.runtime.db.session() as session:
        [mention] = (await session.execute(select(Mention))).scalars().all()
        rules = (await session.execute(select(RoutingRule))).scalars().all()
    assert (mention.department, mention.cc) == ("sales", ["pr"])
    assert mention.route_rule.endswith("→ sales (team rule)")
    assert len(rules) == 1
