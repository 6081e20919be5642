"""Department leads: one per department, set by an admin."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.models import DepartmentLead
from storage.types import utcnow


async def set_lead(
    session: AsyncSession, *, department: str, user_id: str, updated_by: str | None
) -> None:
    """Make ``user_id`` the lead of ``department``, replacing whoever led it.

    One statement, so two admins setting a lead at once leave one lead, never an error.
    """
    values = {
        "department": department,
        "user_id": user_id,
        "updated_by": updated_by,
        "updated_at": utcnow(),
    }
    dialect = session.get_bind().dialect.name
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_fn(DepartmentLead.__table__).values(**values)  # type: ignore[attr-defined]
    stmt = stmt.on_conflict_do_update(
        index_elements=["department"],
        set_={k: stmt.excluded[k] for k in ("user_id", "updated_by", "updated_at")},
    )
    await session.execute(stmt)


async def clear_lead(session: AsyncSession, *, department: str) -> bool:
    """Remove the department's lead; False when it had none."""
    result = await session.execute(
        delete(DepartmentLead).where(col(DepartmentLead.department) == department)
    )
    return bool(getattr(result, "rowcount", 0))


async def lead_for(session: AsyncSession, *, department: str) -> str | None:
    lead = await session.get(DepartmentLead, department)
    return lead.user_id if lead else None


async def list_leads(session: AsyncSession) -> dict[str, str]:
    """Department → lead's Slack user id."""
    result = await session.execute(select(DepartmentLead))
    return {lead.department: lead.user_id for lead in result.scalars()}
