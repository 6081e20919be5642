"""Finding an earlier post by its metadata: paging, the page limit, threads and ``oldest``."""

from __future__ import annotations

from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack_history import Message, find_message, metadata_of
from tests.fakes.slack_api import FakeSlackApi

CHANNEL = "C0SUPPORT"


def tagged(number: int) -> dict[str, Any]:
    return {"event_type": "earful_test", "event_payload": {"n": number}}


def is_number(number: int) -> Any:
    def matches(message: Message) -> bool:
        return metadata_of(message) == ("earful_test", {"n": number})

    return matches


async def post(client: AsyncWebClient, number: int, **kwargs: Any) -> str:
    response = await client.chat_postMessage(
        channel=CHANNEL, text=f"post {number}", metadata=tagged(number), **kwargs
    )
    return str(response["ts"])


async def test_pages_through_the_history_up_to_the_page_limit(fake_slack: FakeSlackApi) -> None:
    client = AsyncWebClient(token="xoxb-test", base_url=fake_slack.url)
    stamps = [await post(client, n) for n in range(5)]
    # Newest first, one a page: post 0 is on the fifth page.
    found = await find_message(client, channel=CHANNEL, matches=is_number(0), limit=1)
    assert found is not None and found["ts"] == stamps[0]
    # (The fake shows metadata only to a reader that asks for it.)
    assert len(fake_slack.calls_to("conversations.history")) == 5
    none = await find_message(client, channel=CHANNEL, matches=is_number(0), limit=1, pages=4)
    assert none is None
    # Not there at all: every page is read, and no more.
    assert await find_message(client, channel=CHANNEL, matches=is_number(9), limit=2) is None
    assert len(fake_slack.calls_to("conversations.history")) == 5 + 4 + 3


async def test_looks_in_a_thread_and_after_oldest(fake_slack: FakeSlackApi) -> None:
    client = AsyncWebClient(token="xoxb-test", base_url=fake_slack.url)
    parent = await post(client, 1)
    reply = await post(client, 2, thread_ts=parent)
    # A thread reply is not in the channel's history, only in its thread.
    assert await find_message(client, channel=CHANNEL, matches=is_number(2)) is None
    found = await find_message(client, channel=CHANNEL, matches=is_number(2), thread_ts=parent)
    assert found is not None and found["ts"] == reply
    assert fake_slack.calls_to("conversations.replies")
    # Only what was posted after ``oldest``.
    assert await find_message(client, channel=CHANNEL, matches=is_number(1), oldest=parent) is None
    assert await find_message(client, channel=CHANNEL, matches=is_number(1), oldest="0") is not None
