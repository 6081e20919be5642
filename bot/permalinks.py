"""Links to Earful's own messages in Slack, without a Web API call per message.

A queue page or a digest lists up to a few dozen alerts; asking ``chat.getPermalink`` for each
costs a round trip apiece inside a command's 3-second ack, and a Tier 4 rate-limit budget that
a few busy people paging through queues would spend in a minute. A message's permalink is the
workspace's address (from ``auth.test``, asked once per process) followed by
``archives/<channel>/p<ts without its dot>`` — the form ``chat.getPermalink`` answers with.
Until the workspace's address is known (``auth.test`` failing), each link is asked for as before.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Hashable, Iterable
from typing import TypeVar
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

_CHANNEL = re.compile(r"[CGD][A-Z0-9]{2,30}")
_TS = re.compile(r"\d{1,12}\.\d{1,9}")
# After a failed auth.test, links are looked up one by one for this long before asking again.
RETRY_SECONDS = 300.0

K = TypeVar("K", bound=Hashable)


class Permalinks:
    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._workspace: str | None = None
        self._lock = asyncio.Lock()
        self._retry_at = 0.0

    async def links(self, messages: Iterable[tuple[K, str | None, str | None]]) -> dict[K, str]:
        """``{key: permalink}`` for each ``(key, channel, ts)``; a message without a channel
        and ts, or whose link Slack will not give, is left out."""
        posted = [(key, channel, ts) for key, channel, ts in messages if channel and ts]
        if not posted:
            return {}
        workspace = await self._workspace_url()
        found: dict[K, str] = {}
        asked: list[tuple[K, str, str]] = []
        for key, channel, ts in posted:
            if workspace and _CHANNEL.fullmatch(channel) and _TS.fullmatch(ts):
                found[key] = f"{workspace}archives/{channel}/p{ts.replace('.', '')}"
            else:
                asked.append((key, channel, ts))
        answers = await asyncio.gather(*(self._ask(channel, ts) for _, channel, ts in asked))
        for (key, _, _), link in zip(asked, answers, strict=True):
            if link:
                found[key] = link
        return found

    async def link(self, channel: str | None, ts: str | None) -> str | None:
        return (await self.links([(0, channel, ts)])).get(0)

    async def _workspace_url(self) -> str | None:
        if self._workspace is not None:
            return self._workspace
        loop = asyncio.get_running_loop()
        async with self._lock:
            if self._workspace is not None or loop.time() < self._retry_at:
                return self._workspace
            try:
                response = await self._client.auth_test()
                self._workspace = _checked_workspace(response.get("url"))
            except SlackApiError as exc:
                log.info(
                    "auth.test failed (%s): asking for each permalink", exc.response.get("error")
                )
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.info("auth.test failed (%s): permalinks asked one by one", type(exc).__name__)
            if self._workspace is None:
                self._retry_at = loop.time() + RETRY_SECONDS
            return self._workspace

    async def _ask(self, channel: str, ts: str) -> str | None:
        try:
            response = await self._client.chat_getPermalink(channel=channel, message_ts=ts)
        except SlackApiError as exc:
            log.info("no permalink for %s/%s: %s", channel, ts, exc.response.get("error"))
            return None
        permalink = response.get("permalink")
        return str(permalink) if permalink else None


def _checked_workspace(url: object) -> str | None:
    """The workspace's address as ``https://host/``, or None if ``url`` is not one."""
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        return None
    if not re.fullmatch(r"[A-Za-z0-9.-]+", parts.hostname):
        return None
    return f"https://{parts.hostname}/"
