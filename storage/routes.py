"""Which channel each department's alerts go to."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Route
from storage.types import utcnow


async def set_route(
    session: AsyncSession, *, department: str, channel_id: str, updated_by: str | None
) -> Route:
    route = await session.get(Route, department)
    if route is None:
        route = Route(department=department, channel_id=channel_id, updated_by=updated_by)
        session.add(route)
    else:
        route.channel_id = channel_id
        route.updated_by = updated_by
        route.updated_at = utcnow()
    await session.flush()
    return route


async def list_routes(session: AsyncSession) -> dict[str, Route]:
    result = await session.execute(select(Route))
    return {route.department: route for route in result.scalars()}


async def channel_for(session: AsyncSession, *, department: str) -> str | None:
    route = await session.get(Route, department)
    return route.channel_id if route else None
