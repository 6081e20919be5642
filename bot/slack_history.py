"""Finding a message Earful posted earlier, by the metadata it carries, in Slack's history.

Earful tags what it posts with message metadata (an event type and a payload naming the outbox
item or the digest day). A retry whose earlier attempt may have reached Slack, although its
answer was lost, looks for that tag before posting again (bot/delivery.py, bot/digest.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

Message = dict[str, Any]


def metadata_of(message: Message) -> tuple[str | None, dict[str, Any]]:
    """A message's metadata event type and payload (``None`` and ``{}`` when it has none)."""
    metadata: dict[str, Any] = message.get("metadata") or {}
    payload: dict[str, Any] = metadata.get("event_payload") or {}
    return metadata.get("event_type"), payload


async def find_message(
    client: AsyncWebClient,
    *,
    channel: str,
    matches: Callable[[Message], bool],
    thread_ts: str | None = None,
    oldest: str | None = None,
    limit: int = 200,
    pages: int = 10,
) -> Message | None:
    """The first message, newest first, in ``channel`` (or in the thread of ``thread_ts``,
    oldest first) that ``matches``; ``None`` when none does in the first ``pages`` pages.

    Messages are read with their metadata; ``oldest`` (a Slack ts) bounds the channel's
    history. Slack's errors (``SlackApiError``) reach the caller.
    """
    cursor: str | None = None
    for _ in range(pages):
        kwargs: dict[str, Any] = {"channel": channel, "limit": limit, "include_all_metadata": True}
        if oldest is not None:
            kwargs["oldest"] = oldest
        if cursor:
            kwargs["cursor"] = cursor
        if thread_ts is None:
            response = await client.conversations_history(**kwargs)
        else:
            response = await client.conversations_replies(ts=thread_ts, **kwargs)
        message: Message
        for message in response.get("messages", []):
            if matches(message):
                return message
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            break
    return None
