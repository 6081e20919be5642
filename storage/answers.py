"""Saved answers (the knowledge base) and what people wrote when they answered a mention."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import MentionAnswer, SavedAnswer
from storage.types import utcnow


async def add_answer(
    session: AsyncSession,
    *,
    title: str,
    body: str,
    terms: Sequence[str],
    author: str,
    department: str | None = None,
    intents: Sequence[str] = (),
    watch_name: str | None = None,
    mention_id: int | None = None,
) -> SavedAnswer:
    answer = SavedAnswer(
        title=title,
        body=body,
        terms=" ".join(terms),
        author=author,
        department=department,
        intents=list(intents),
        watch_name=watch_name,
        mention_id=mention_id,
    )
    session.add(answer)
    await session.flush()
    return answer


async def get_answer(session: AsyncSession, *, answer_id: int) -> SavedAnswer | None:
    return await session.get(SavedAnswer, answer_id)


async def delete_answer(session: AsyncSession, *, answer_id: int) -> bool:
    result = await session.execute(delete(SavedAnswer).where(col(SavedAnswer.id) == answer_id))
    return bool(getattr(result, "rowcount", 0))


async def count_answers(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(SavedAnswer))).scalar_one())


async def most_used(session: AsyncSession, *, limit: int) -> list[SavedAnswer]:
    stmt = (
        select(SavedAnswer)
        .order_by(col(SavedAnswer.use_count).desc(), col(SavedAnswer.id).desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def candidates(
    session: AsyncSession, *, terms: Sequence[str], limit: int
) -> list[SavedAnswer]:
    """Answers whose terms contain any of ``terms`` (most used first), at most ``limit``.

    ``terms`` are normalised words (lower case, no LIKE wildcards: bot/answers.py makes them),
    matched against the normalised ``terms`` column, so plain LIKE behaves alike on both engines.
    """
    wanted = [t for t in dict.fromkeys(terms) if t]
    if not wanted:
        return []
    stmt = (
        select(SavedAnswer)
        .where(
            or_(*(col(SavedAnswer.terms).like(f"%{_escape_like(t)}%", escape="\\") for t in wanted))
        )
        .order_by(col(SavedAnswer.use_count).desc(), col(SavedAnswer.id).desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


def _escape_like(term: str) -> str:
    # Callers pass words without wildcards; escaping anyway keeps a future caller honest.
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def count_use(session: AsyncSession, *, answer_id: int) -> bool:
    """One more reply started from this answer; False when it is gone.

    A single UPDATE, so concurrent uses all count.
    """
    result = await session.execute(
        update(SavedAnswer)
        .where(col(SavedAnswer.id) == answer_id)
        .values(use_count=col(SavedAnswer.use_count) + 1, last_used_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


async def record_answer(
    session: AsyncSession,
    *,
    mention_id: int,
    event_id: int | None,
    author: str,
    draft: str | None,
    note: str | None,
    saved_answer_id: int | None = None,
    used_answer_id: int | None = None,
) -> MentionAnswer:
    record = MentionAnswer(
        mention_id=mention_id,
        event_id=event_id,
        author=author,
        draft=draft,
        note=note,
        saved_answer_id=saved_answer_id,
        used_answer_id=used_answer_id,
    )
    session.add(record)
    await session.flush()
    return record


async def answers_for(session: AsyncSession, *, mention_id: int) -> list[MentionAnswer]:
    stmt = (
        select(MentionAnswer)
        .where(col(MentionAnswer.mention_id) == mention_id)
        .order_by(col(MentionAnswer.id))
    )
    return list((await session.execute(stmt)).scalars())
