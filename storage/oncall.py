"""On-call rotas: who covers a department, when, in which time zone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import OnCallShift
from storage.types import utcnow


@dataclass(frozen=True, slots=True)
class ShiftValues:
    user_id: str
    start_minute: int
    end_minute: int
    tz: str
    days: int


async def replace_rota(
    session: AsyncSession,
    *,
    department: str,
    shifts: Sequence[ShiftValues],
    updated_by: str | None,
) -> None:
    """Make ``shifts`` the department's whole rota, in this order, in one transaction."""
    await session.execute(delete(OnCallShift).where(col(OnCallShift.department) == department))
    now = utcnow()
    for position, shift in enumerate(shifts):
        session.add(
            OnCallShift(
                department=department,
                user_id=shift.user_id,
                start_minute=shift.start_minute,
                end_minute=shift.end_minute,
                tz=shift.tz,
                days=shift.days,
                position=position,
                updated_by=updated_by,
                updated_at=now,
            )
        )
    await session.flush()


async def upsert_shift(
    session: AsyncSession, *, department: str, shift: ShiftValues, updated_by: str | None
) -> None:
    """Add one person to the rota, or change their hours; one statement, so it cannot race."""
    values = {
        "department": department,
        "user_id": shift.user_id,
        "start_minute": shift.start_minute,
        "end_minute": shift.end_minute,
        "tz": shift.tz,
        "days": shift.days,
        "position": 1_000,  # after the people set together; the listing orders by it, then id
        "updated_by": updated_by,
        "updated_at": utcnow(),
    }
    dialect = session.get_bind().dialect.name
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_fn(OnCallShift.__table__).values(**values)  # type: ignore[attr-defined]
    stmt = stmt.on_conflict_do_update(
        index_elements=["department", "user_id"],
        set_={
            k: stmt.excluded[k]
            for k in ("start_minute", "end_minute", "tz", "days", "updated_by", "updated_at")
        },
    )
    await session.execute(stmt)


async def remove_person(session: AsyncSession, *, department: str, user_id: str) -> bool:
    result = await session.execute(
        delete(OnCallShift).where(
            col(OnCallShift.department) == department, col(OnCallShift.user_id) == user_id
        )
    )
    return bool(getattr(result, "rowcount", 0))


async def clear_rota(session: AsyncSession, *, department: str) -> int:
    result = await session.execute(
        delete(OnCallShift).where(col(OnCallShift.department) == department)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def rota(session: AsyncSession, *, department: str | None = None) -> list[OnCallShift]:
    """Shifts in rota order (department, then as they were given)."""
    stmt = select(OnCallShift).order_by(
        col(OnCallShift.department), col(OnCallShift.position), col(OnCallShift.id)
    )
    if department is not None:
        stmt = stmt.where(col(OnCallShift.department) == department)
    return list((await session.execute(stmt)).scalars())
