"""App Home: my claimed mentions, the open queue by department, today's numbers."""

from __future__ import annotations

import logging
from datetime import datetime, time
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import (
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.mrkdwn import escape
from storage import mentions as mention_store
from storage.db import Database
from storage.models import Mention
from storage.types import utcnow
from watchers.departments import Department, Priority

log = logging.getLogger(__name__)


def home_blocks(
    *, mine: list[Mention], open_counts: dict[tuple[str, str], int], found_today: int
) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [HeaderBlock(text="Earful").to_dict()]
    blocks.append(
        SectionBlock(
            text=MarkdownTextObject(text=f"*Mentions found today:* {found_today}")
        ).to_dict()
    )
    blocks.append(DividerBlock().to_dict())
    blocks.append(SectionBlock(text=MarkdownTextObject(text="*Claimed by you*")).to_dict())
    if not mine:
        blocks.append(
            ContextBlock(elements=[MarkdownTextObject(text="Nothing claimed.")]).to_dict()
        )
    for mention in mine:
        snippet = escape((mention.title or mention.text)[:140])
        where = f" · <#{mention.channel}>" if mention.channel else ""
        line = f"*{mention.priority}* {mention.department} · {mention.state}{where}\n{snippet}"
        blocks.append(SectionBlock(text=MarkdownTextObject(text=line)).to_dict())
    blocks.append(DividerBlock().to_dict())
    lines = []
    for department in Department:
        counts = [
            f"{priority.value}: {open_counts[(department.value, priority.value)]}"
            for priority in Priority
            if open_counts.get((department.value, priority.value))
        ]
        if counts:
            lines.append(f"• *{department.value}* — " + ", ".join(counts))
    blocks.append(
        SectionBlock(
            text=MarkdownTextObject(
                text="*Open by department*\n" + ("\n".join(lines) or "All clear.")
            )
        ).to_dict()
    )
    return blocks


class Home:
    def __init__(self, db: Database, *, client: AsyncWebClient) -> None:
        self._db = db
        self._client = client

    async def publish(self, *, user_id: str) -> None:
        midnight = datetime.combine(utcnow().date(), time.min, tzinfo=utcnow().tzinfo)
        try:
            async with self._db.session() as session:
                mine = await mention_store.claimed_by(session, owner=user_id)
                counts = await mention_store.open_counts(session)
                today = await mention_store.found_since(session, since=midnight)
            view = {
                "type": "home",
                "blocks": home_blocks(mine=mine, open_counts=counts, found_today=today),
            }
            await self._client.views_publish(user_id=user_id, view=view)
        except SlackApiError as exc:
            log.warning("views.publish for %s failed: %s", user_id, exc.response.get("error"))
        except Exception:
            log.exception("building App Home for %s failed", user_id)
