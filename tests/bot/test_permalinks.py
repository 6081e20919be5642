"""Permalinks to Earful's messages: built from the workspace's address, as Slack gives them."""

from __future__ import annotations

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.permalinks import Permalinks, _checked_workspace
from tests.fakes.slack_api import FakeSlackApi

BOT_TOKEN = "xoxb-1-2-permalinks"


def _client(fake_slack: FakeSlackApi) -> AsyncWebClient:
    return AsyncWebClient(token=BOT_TOKEN, base_url=fake_slack.url)


async def _posted(client: AsyncWebClient, channel: str, count: int) -> list[str]:
    return [
        str((await client.chat_postMessage(channel=channel, text=f"alert {i}"))["ts"])
        for i in range(count)
    ]


async def test_links_are_slacks_own_without_a_call_per_message(
    fake_slack: FakeSlackApi,
) -> None:
    client = _client(fake_slack)
    timestamps = await _posted(client, "C0SUPPORT", 3)
    expected = {
        i: (await client.chat_getPermalink(channel="C0SUPPORT", message_ts=ts))["permalink"]
        for i, ts in enumerate(timestamps)
    }
    asked_before = len(fake_slack.calls_to("chat.getPermalink"))
    permalinks = Permalinks(client)

    first = await permalinks.links([(i, "C0SUPPORT", ts) for i, ts in enumerate(timestamps)])
    again = await permalinks.links([(9, "C0SUPPORT", timestamps[0])])

    assert first == expected
    assert again == {9: expected[0]}
    assert len(fake_slack.calls_to("chat.getPermalink")) == asked_before
    assert len(fake_slack.calls_to("auth.test")) == 1  # once per process, not per page


async def test_unposted_messages_have_no_link(fake_slack: FakeSlackApi) -> None:
    permalinks = Permalinks(_client(fake_slack))

    assert await permalinks.links([(1, None, None), (2, "C0SUPPORT", None)]) == {}
    assert not fake_slack.calls_to("auth.test")


async def test_without_the_workspace_address_each_link_is_asked_for(
    fake_slack: FakeSlackApi,
) -> None:
    client = _client(fake_slack)
    [ts] = await _posted(client, "C0SUPPORT", 1)
    fake_slack.fail("auth.test", error="ratelimited")
    permalinks = Permalinks(client)

    links = await permalinks.links([(1, "C0SUPPORT", ts), (2, "C0SUPPORT", "1.2")])

    # The posted alert's link comes from Slack; the unknown message gets none.
    assert links[1].endswith(f"/archives/C0SUPPORT/p{ts.replace('.', '')}")
    assert 2 not in links
    assert len(fake_slack.calls_to("chat.getPermalink")) == 2
    # The failure is remembered for a while rather than paid for on every page.
    await permalinks.links([(1, "C0SUPPORT", ts)])
    assert len(fake_slack.calls_to("auth.test")) == 1


async def test_ids_that_do_not_look_like_slacks_are_asked_for(fake_slack: FakeSlackApi) -> None:
    client = _client(fake_slack)
    await _posted(client, "C0SUPPORT", 1)
    permalinks = Permalinks(client)

    links = await permalinks.links([(1, "C0SUPPORT/../x", "1.2"), (2, "C0SUPPORT", "1.2?x=1")])

    assert links == {}
    assert len(fake_slack.calls_to("chat.getPermalink")) == 2
    fake_slack.take_violations()  # Slack answers these with errors; that is the point


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://acme.slack.com/", "https://acme.slack.com/"),
        ("https://acme.enterprise.slack.com", "https://acme.enterprise.slack.com/"),
        ("http://acme.slack.com/", None),
        ("javascript:alert(1)//acme.slack.com/", None),
        ("https://acme.slack.com/?next=https://evil.example", None),
        ("https://user@acme.slack.com/", "https://acme.slack.com/"),
        (None, None),
        (42, None),
    ],
)
def test_only_an_https_workspace_address_is_used(url: object, expected: str | None) -> None:
    assert _checked_workspace(url) == expected
